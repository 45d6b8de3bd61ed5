/*
 * quant_lowbit_avx512.c - AVX-512 (BW, VBMI, VNNI) dots of HQ2 / HQ3 weights
 * with Q8_KH activations (format in quant_lowbit.h).
 *
 * Owns: quant_install_lowbit_avx512(), which sets vec_dot and vec_dot_multi
 * of QT_HQ2 / QT_HQ3. One pass over the packed bytes, few instructions per
 * weight byte (a 2-bit weight carries 4x the multiply work of an int8 one,
 * so the per-byte instruction count decides whether the dot keeps up with
 * memory):
 * - the codebook is decoded by vpermb, which reads only the low 6 bits of
 *   each index byte: one 64-entry table per 2-bit field position (entry i =
 *   level of field f of i) decodes fields 0, 1 and 2 of 64 packed bytes
 *   without a shift or a mask; field 3 takes one 16-bit shift first;
 * - HQ3's high index bit (one 64-bit mask per 64 weights, qh read as
 *   little-endian uint64) selects a second table by a merge-masked vpermb;
 * - the levels are stored offset by +128 (unsigned bytes, as vpdpbusd
 *   wants); the 128 * sum(activations) this adds is taken off by starting
 *   the block's integer sum from the -128 * sum that Q8_KH stores in its
 *   bsums field (a zero-extending 4-byte load, no arithmetic);
 * - several activation rows per unpack (dot_multi), the block's float scale
 *   applied with one multiply by a broadcast load of the activation scale.
 * Integer sums are exact; the float accumulation order differs from the
 * reference (tested within a tolerance). Must not allocate.
 */
/* vpermb (VBMI) for this file only: the rest of the AVX-512 set does not
 * need it, and the install below checks the CPU for it */
#pragma GCC target("avx512vbmi")
#include <immintrin.h>
#include <string.h>

#include "quant.h"
#include "quant_lowbit.h"

void quant_install_lowbit_avx512(struct quant_traits *traits);

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define ROWS_FOR(k) _Pragma("GCC unroll 8") for (int k = 0; k < na; k++)
#define MULTI_G 8
/* bytes ahead of the block being decoded that are prefetched (rows are
 * contiguous, so this runs into the next row at the end of one). A 66-byte
 * block is decoded in a few ns, so the distance must be far larger than the
 * K-quants' 1024: kbench --mb 256 --cpu-time, HQ2 1 thread, x Q4_K in the
 * same run: 512 0.72, 1024 0.89, 2048 1.03, 4096 1.02-1.03, 8192 0.96,
 * 16384 1.02 (2 threads: 4096 1.23, 16384 1.05). */
#ifndef LB_PF_DIST
#define LB_PF_DIST 4096
#endif

/* vpermb tables, built at install: lb_tab[hq3][t][i] = level + 128 of field
 * f = t % 3 of index byte i (bits 2f..2f+1, the other bits ignored), from
 * the low half of the codebook (t < 3) or the high half (t >= 3, HQ3's
 * high bit set) */
static uint8_t lb_tab[2][6][64] __attribute__((aligned(64)));

static void lb_tables_init(void)
{
    for (int hq3 = 0; hq3 < 2; hq3++)
        for (int t = 0; t < 6; t++)
            for (int i = 0; i < 64; i++) {
                const int f = t % 3, base = hq3 && t >= 3 ? 4 : 0;
                const int8_t *lv = hq3 ? quant_hq3_levels : quant_hq2_levels;
                lb_tab[hq3][t][i] = (uint8_t)(lv[base + ((i >> (2 * f)) & 3)] + 128);
            }
}

/*
 * s[k * ss] = w . a_k for k < na (na a constant once inlined). hq3 selects
 * the 8-level format.
 */
ALWAYS_INLINE void lb_rows(int64_t n, float *s, size_t ss, const void *w, const void *a, size_t as, int na,
                           int hq3)
{
    const uint8_t(*tab)[64] = lb_tab[hq3];
    const __m512i t0 = _mm512_load_si512(tab[0]), t1 = _mm512_load_si512(tab[1]), t2 = _mm512_load_si512(tab[2]);
    __m512i h0 = t0, h1 = t1, h2 = t2;
    if (hq3) {
        h0 = _mm512_load_si512(tab[3]);
        h1 = _mm512_load_si512(tab[4]);
        h2 = _mm512_load_si512(tab[5]);
    }
    const __m512i ms6 = _mm512_set1_epi64(0x3e362e261e160e06ll); /* byte j: bits 8j + 6 .. */
    const size_t bsz = hq3 ? sizeof(block_hq3) : sizeof(block_hq2);
    const uint8_t *wb = w;
    __m512 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++, wb += bsz) {
        __builtin_prefetch(wb + LB_PF_DIST, 0, 3);
        if (hq3)
            __builtin_prefetch(wb + LB_PF_DIST + 64, 0, 3);
        /* plain variables, not an array: gcc -O2 keeps a small array on the stack */
        const __m512i v = _mm512_loadu_si512(wb + offsetof(block_hq2, qs));
        /* field 3 to the low bits by vpmultishiftqb (the shuffle port; a
         * shift would take the port of the dot products) */
        const __m512i v3 = _mm512_multishift_epi64_epi8(ms6, v);
        __m512i u0 = _mm512_permutexvar_epi8(v, t0);
        __m512i u1 = _mm512_permutexvar_epi8(v, t1);
        __m512i u2 = _mm512_permutexvar_epi8(v, t2);
        __m512i u3 = _mm512_permutexvar_epi8(v3, t0);
        if (hq3) {
            uint64_t q0, q1, q2, q3;
            const uint8_t *qh = wb + offsetof(block_hq3, qh);
            memcpy(&q0, qh, 8);
            memcpy(&q1, qh + 8, 8);
            memcpy(&q2, qh + 16, 8);
            memcpy(&q3, qh + 24, 8);
            u0 = _mm512_mask_permutexvar_epi8(u0, (__mmask64)q0, v, h0);
            u1 = _mm512_mask_permutexvar_epi8(u1, (__mmask64)q1, v, h1);
            u2 = _mm512_mask_permutexvar_epi8(u2, (__mmask64)q2, v, h2);
            u3 = _mm512_mask_permutexvar_epi8(u3, (__mmask64)q3, v3, h0);
        }
        __m512 vdw;
        {
            qhalf dh;
            memcpy(&dh, wb, sizeof(dh));
            vdw = _mm512_set1_ps(_cvtsh_ss(dh));
        }
        ROWS_FOR(k) {
            const block_q8_K *y = (const block_q8_K *)((const uint8_t *)a + (size_t)k * as) + i;
            /* lane 0: -128 * the block's activation sum (the +128 of the levels) */
            int32_t off;
            memcpy(&off, y->bsums, sizeof(off));
            __m512i sumi = _mm512_zextsi128_si512(_mm_cvtsi32_si128(off));
            sumi = _mm512_dpbusd_epi32(sumi, u0, _mm512_loadu_si512(y->qs));
            sumi = _mm512_dpbusd_epi32(sumi, u1, _mm512_loadu_si512(y->qs + 64));
            sumi = _mm512_dpbusd_epi32(sumi, u2, _mm512_loadu_si512(y->qs + 128));
            sumi = _mm512_dpbusd_epi32(sumi, u3, _mm512_loadu_si512(y->qs + 192));
            acc[k] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(sumi), vdw), _mm512_set1_ps(y->d), acc[k]);
        }
    }
    ROWS_FOR(k) s[(size_t)k * ss] = _mm512_reduce_add_ps(acc[k]) * (1.0f / 127.0f);
}

ALWAYS_INLINE void hq2_rows(int64_t n, float *s, size_t ss, const void *w, const void *a, size_t as, int na)
{
    lb_rows(n, s, ss, w, a, as, na, 0);
}

ALWAYS_INLINE void hq3_rows(int64_t n, float *s, size_t ss, const void *w, const void *a, size_t as, int na)
{
    lb_rows(n, s, ss, w, a, as, na, 1);
}

/* dot = rows with na = 1; dot_multi: groups of 8 rows, then 4 + 2 + 1 */
#define LB_DEFINE_DOTS(dot, rows)                                                                         \
    static void dot(int64_t n, float *s, const void *w, const void *a)                                   \
    {                                                                                                     \
        rows(n, s, 1, w, a, 0, 1);                                                                        \
    }                                                                                                     \
    static void dot##_multi(int64_t n, float *s, size_t ss, const void *w, const void *a, size_t as,     \
                            int n_act)                                                                    \
    {                                                                                                     \
        const uint8_t *ap = a;                                                                            \
        int k = 0;                                                                                        \
        for (; k + MULTI_G <= n_act; k += MULTI_G)                                                        \
            rows(n, s + (size_t)k * ss, ss, w, ap + (size_t)k * as, as, MULTI_G);                         \
        if (n_act - k >= 4) {                                                                             \
            rows(n, s + (size_t)k * ss, ss, w, ap + (size_t)k * as, as, 4);                               \
            k += 4;                                                                                       \
        }                                                                                                 \
        if (n_act - k >= 2) {                                                                             \
            rows(n, s + (size_t)k * ss, ss, w, ap + (size_t)k * as, as, 2);                               \
            k += 2;                                                                                       \
        }                                                                                                 \
        if (n_act - k >= 1)                                                                               \
            rows(n, s + (size_t)k * ss, ss, w, ap + (size_t)k * as, as, 1);                               \
    }

LB_DEFINE_DOTS(dot_hq2_avx512, hq2_rows)
LB_DEFINE_DOTS(dot_hq3_avx512, hq3_rows)

void quant_install_lowbit_avx512(struct quant_traits *traits)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512vbmi"))
        return; /* the AVX2 dots installed before stay */
    lb_tables_init();
    traits[QT_HQ2].vec_dot = dot_hq2_avx512;
    traits[QT_HQ2].vec_dot_multi = dot_hq2_avx512_multi;
    traits[QT_HQ3].vec_dot = dot_hq3_avx512;
    traits[QT_HQ3].vec_dot_multi = dot_hq3_avx512_multi;
}
