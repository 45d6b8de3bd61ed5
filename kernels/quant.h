/*
 * quant.h - per-type traits: block geometry, scalar reference dequantization,
 * activation quantization and the dot product of one weight row with one
 * quantized activation row.
 *
 * Owns: the traits table indexed by enum quant_type, and the choice of ISA
 * variant (reference, avx2, avx512) made once at start-up.
 * Must not: allocate, do I/O or start threads. Called by matvec.c, the GGUF
 * reader (sizes only), the splitter and tests.
 */
#ifndef MOESTREAM_QUANT_H
#define MOESTREAM_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quant_blocks.h"

/* s = sum_i w[i] * a[i] for one row of n elements; w in the weight type,
 * a in the traits' vec_dot_type. n is a multiple of blck_size. */
typedef void (*quant_dot_fn)(int64_t n, float *s, const void *w, const void *a);
/* s[i * s_stride] = dot(w, a + i * a_stride) for i < n_act (a_stride in
 * bytes, n_act >= 1): one weight row against n_act activation rows, the
 * weights unpacked once per group of rows. Bit-identical to n_act calls of
 * the same ISA's vec_dot (every activation row sees the same operations in
 * the same order), so callers may mix the two freely. */
typedef void (*quant_dot_multi_fn)(int64_t n, float *s, size_t s_stride, const void *w, const void *a,
                                   size_t a_stride, int n_act);
/* y[k * ys + r] = dot(w[r], a + k * as) for r < nr (1..4), k < n_act: four
 * weight rows at once (w[nr..3] repeat a row; only nr rows are stored).
 * Where a type has one, its vec_dot and vec_dot_multi are this kernel with
 * the row repeated, so all three give the same bits per (row, activation). */
typedef void (*quant_dot_x4_fn)(int64_t n, float *y, size_t ys, const uint8_t *const *w, int nr, const void *a,
                                size_t as, int n_act);
/* Defines name##_one (a quant_dot_fn) and name##_multi (a quant_dot_multi_fn)
 * from the four-row kernel name: the one row in every lane, nr = 1. For the
 * SIMD files that install a four-row kernel as vec_dot and vec_dot_multi too. */
#define QUANT_X4_ROW_ENTRIES(name)                                                                              \
    static void name##_one(int64_t n, float *s, const void *w, const void *a)                                 \
    {                                                                                                         \
        const uint8_t *r[4] = { w, w, w, w };                                                                 \
        name(n, s, 1, r, 1, a, 0, 1);                                                                         \
    }                                                                                                         \
    static void name##_multi(int64_t n, float *s, size_t ss, const void *w, const void *a, size_t as, int n_act) \
    {                                                                                                         \
        const uint8_t *r[4] = { w, w, w, w };                                                                 \
        name(n, s, ss, r, 1, a, as, n_act);                                                                   \
    }
/*
 * Software prefetch for the four-row kernels. The four rows of a group are
 * adjacent (rows r..r+3 of one matrix), so a group is one contiguous region
 * of G = 4 row sizes that a kernel reads as four interleaved streams a few
 * hundred bytes each: too short for the hardware prefetcher to lock on.
 * Instead, while a kernel works on blocks [b, b + nblk) of a group, it
 * prefetches the matching slice (4 x nblk blocks of bytes) of the region
 * QUANT_X4_PF_GROUPS groups ahead: one sequential stream over the matrix.
 * Measured on this project's 2-core AVX-512 machine (one thread, 256 MiB of
 * rows of 2048, chunks of 384 rows): two groups ahead ran the Q4_K kernel
 * about 15% and Q6_K about 25% faster than prefetching the same block of the
 * next group row by row. Addresses past the matrix, or rows that are not
 * adjacent (the one-row entries pass one row four times), cost a few wasted
 * prefetches and never fault.
 */
#define QUANT_X4_PF_GROUPS 2
/* Prefetches every cache line of [p, p + len) for reading (p need not be
 * mapped: prefetches never fault). */
static inline void quant_prefetch_range(const void *p, size_t len)
{
    for (size_t o = 0; o < len; o += 64)
        __builtin_prefetch((const char *)p + o, 0, 3); /* _mm_prefetch is dropped by gcc 12 in some kernels */
}
static inline void quant_x4_prefetch(const uint8_t *const *w, int64_t b, int64_t nblk, size_t block_bytes)
{
    quant_prefetch_range(w[0] + QUANT_X4_PF_GROUPS * 4 * (w[1] - w[0]) + (size_t)b * 4 * block_bytes,
                         4 * (size_t)nblk * block_bytes);
}
/* y[k * ys + r] = dot(row r, a + k * as) for r < nr (1..16), k < n_act
 * (n_act * passes <= QUANT_GEMM16_MAX_ACT): sixteen weight rows starting at
 * w, row_size bytes apart (rows past nr repeat row nr - 1). For prompts: the
 * rows are transposed once per call and shared by every activation row.
 * Gives the bits of the type's vec_dot_x4 per (row, activation). With
 * passes = 2 the activation rows come in pairs (a row, then its residual,
 * as bytes apart) and y[k * ys + r] = dot(row r, pair k's first) +
 * dot(row r, pair k's second), in that order. */
#define QUANT_GEMM16_MAX_ACT 64
typedef void (*quant_gemm16_fn)(int64_t n, float *y, size_t ys, const uint8_t *w, size_t row_size, int nr,
                                const void *a, size_t as, int n_act, int passes);
/* Activations rearranged once for a four-row kernel: x4_prep_size(n) bytes
 * per activation row; x4_prep writes n_act such rows back to back from the
 * rows a + k * as; vec_dot_x4p is vec_dot_x4 reading them (as = the stride
 * of the prepared rows) and gives the same bits. For kernels that would
 * otherwise rearrange the same activations for every four weight rows. */
typedef size_t (*quant_x4_prep_size_fn)(int64_t n);
typedef void (*quant_x4_prep_fn)(int64_t n, const void *a, size_t as, int n_act, void *out);
typedef void (*quant_to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*quant_from_float_fn)(const float *src, void *dst, int64_t n);

struct quant_traits {
    const char *name;             /* "Q4_K", as ggml names it */
    int64_t blck_size;            /* elements per block; 0 for an unknown id */
    size_t type_size;             /* bytes per block, from sizeof(block_*) */
    bool is_quantized;
    quant_to_float_fn to_float;   /* scalar reference; NULL when unsupported */
    quant_from_float_fn from_float; /* set for activation types (F32, F16, BF16, Q8_0, Q8_K) */
    quant_dot_fn vec_dot;         /* best variant for the selected ISA; NULL when unsupported */
    quant_dot_fn vec_dot_ref;     /* scalar reference dot, never replaced */
    quant_dot_multi_fn vec_dot_multi; /* vec_dot over several activation rows; NULL when the
                                       * ISA has none for the type: call vec_dot per row */
    quant_dot_x4_fn vec_dot_x4;   /* four rows at once; NULL when the ISA has none */
    quant_gemm16_fn gemm16;       /* sixteen rows x many activations; NULL: none */
    quant_x4_prep_size_fn x4_prep_size; /* with x4_prep and vec_dot_x4p; NULL: none */
    quant_x4_prep_fn x4_prep;
    quant_dot_x4_fn vec_dot_x4p;
    enum quant_type vec_dot_type; /* what the activations must be quantized to */
    quant_from_float_fn from_float_simd; /* ISA variant of from_float with byte-identical
                                          * output (Q8_0, Q8_K); NULL under ref: use from_float */
};

/* Traits for id t; the returned struct has blck_size 0 when t is not a
 * known ggml type id (t may be any integer read from a file). */
const struct quant_traits *quant_traits(int t);

/* True when t is a known type id (block geometry known). */
bool quant_type_known(int t);

/* Bytes of a row of n elements; 0 when n is not a multiple of the block
 * size or t is unknown. */
size_t quant_row_size(int t, int64_t n);

/* ISA selection. quant_init() picks the best variant the CPU supports,
 * unless the environment variable MOESTREAM_ISA (ref|avx2|avx512) says
 * otherwise. Returns 0, or -EINVAL for an unknown name / -ENOTSUP when the
 * CPU lacks the ISA. Not thread-safe: call once before any kernel runs. */
int quant_init(void);
int quant_select_isa(const char *name);
const char *quant_isa_name(void);

#endif
