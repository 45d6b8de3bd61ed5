/*
 * quant_b32_avx512.c - AVX-512 VNNI (+VBMI) kernels for two 32-element block
 * formats, MXFP4 and Q8_0 weights against Q8_0 activations: a four-row
 * kernel for decode and a sixteen-row tile for prompts, with one exactly
 * defined arithmetic per (row, activation row).
 *
 * Owns: quant_install_b32_avx512(), which, on a CPU with VBMI, sets
 * vec_dot_x4 and gemm16 of MXFP4 and Q8_0 and replaces their vec_dot and
 * vec_dot_multi by the four-row kernel with the row repeated, so every entry
 * point gives the same bits. Runs after quant_install_avx512(). Must not
 * allocate or touch vec_dot_ref.
 *
 * Arithmetic, per weight row and activation row (canonical: both kernels
 * here do exactly this; tests compare matvec, matmul and per-row vec_dot bit
 * for bit):
 *   per block b, the exact integer isum_b = sum of q * a over its 32
 *   elements (MXFP4: q the doubled e2m1 value, -12..12; Q8_0: the int8);
 *   s_b = d_w * d_a in float (MXFP4: d_w = 2^(e - 128), the halved e8m0
 *   scale, exact; Q8_0: the fp16 scale; d_a the activation's fp16 scale);
 *   acc[b % 8] = fma((float)isum_b, s_b, acc[b % 8]), blocks in order;
 *   result = ((acc[0] + acc[1]) + (acc[2] + acc[3]))
 *          + ((acc[4] + acc[5]) + (acc[6] + acc[7])).
 * |isum_b| <= 32 * 128 * 128 < 2^24: the conversion to float is exact.
 * (Eight accumulators, not four: with four, one near-tie position of the
 * gpt-oss fixture, reference top-2 gap 0.023 logits, flipped in the default
 * mixed-precision mode, top-1 0.978 < llama.cpp's 0.985; the 8-bit
 * activations' noise there is about that size, so the summation order
 * decides it either way. With eight, 0.985.)
 *
 * Four rows (decode). A group of four consecutive blocks of one row is one
 * 512-bit vector, block j in 128-bit lane j (MXFP4: the 16 packed bytes of
 * block j, picked out of the 68-byte group by one vpermi2b; Q8_0: two vectors
 * of two blocks). The activations of the group are arranged the same way
 * once per four rows. vpdpbusd needs one unsigned operand: the weights are
 * offset (MXFP4: table value + 12; Q8_0: w + 128, an xor) and the integer
 * sum starts from -offset * (sum of the activations), computed once per
 * activation row and group. The four rows' lane sums are then reduced into
 * one vector, lane 4 j + r = isum of row r, block j, so the float tail (one
 * conversion, one multiply, one fma) runs once per 16 (row, block) pairs;
 * lane 4 j + r of the even / odd groups' vector is acc[j] / acc[4 + j] of
 * row r.
 *
 * Sixteen rows (prompts). Per group of four blocks the sixteen rows are
 * transposed (16 x 16 dwords), so lane r of a vector holds four consecutive
 * quants of row r; a vpdpbusd of that vector with four activation bytes
 * broadcast is 64 multiply-adds, and the 32 such vectors of a group serve
 * every activation row. Here the weights stay signed and the activations are
 * made unsigned (a + 128, an xor of a 32-byte copy per activation row and
 * block); the integer sums start from -128 * (sum of the weights) per row
 * and block, computed once per tile. The exact integers, hence the bits,
 * equal the four-row kernel's.
 */
#pragma GCC target("avx512vbmi")
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "quant_ref.h"
#include "quant_tile_simd.h"

void quant_install_b32_avx512(struct quant_traits *traits);

#define B32_INLINE static inline __attribute__((always_inline))
/* activation rows whose accumulators one pass over four weight rows keeps */
#define B32_ACT_GROUP 8
/* tile: activation rows that share each weight vector from registers */
#define B32_TILE_T 8
/* blocks per group: the accumulators acc[b % 4] */
#define B32_G 4

/* --- shared helpers ------------------------------------------------------- */

/* e8m0 bytes (one per dword lane, upper bytes zero) -> 2^(e - 128) */
B32_INLINE __m512 b32_e8m0_half(__m512i e)
{
    const __m512i normal = _mm512_slli_epi32(_mm512_sub_epi32(e, _mm512_set1_epi32(1)), 23);
    const __m512i tiny = _mm512_sllv_epi32(_mm512_set1_epi32(0x00200000), e);
    return _mm512_castsi512_ps(
        _mm512_mask_blend_epi32(_mm512_cmplt_epu32_mask(e, _mm512_set1_epi32(2)), normal, tiny));
}

/* lanes 4 j + r = sum of the four int32 of 128-bit lane j of p[r] (exact) */
B32_INLINE __m512i b32_reduce4(__m512i p0, __m512i p1, __m512i p2, __m512i p3)
{
    const __m512i a = _mm512_add_epi32(_mm512_unpacklo_epi32(p0, p1), _mm512_unpackhi_epi32(p0, p1));
    const __m512i b = _mm512_add_epi32(_mm512_unpacklo_epi32(p2, p3), _mm512_unpackhi_epi32(p2, p3));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
}

/* The activation side of one group (blocks b..b + t - 1 of row y, t <= 4):
 * lo / hi = bytes 0..15 / 16..31 of block j in 128-bit lane j, neg =
 * -off * (sum of each lane's bytes), split over the lane's four int32 (added
 * by the row reduction), d = the block scales, lane 4 j + r = d_j. */
struct b32_act {
    __m512i lo, hi, neg;
    __m512 d;
};

/* blocks 0..t-1 of a group of activation rows (the rest zero): blocks 0, 1
 * / 2, 3 in the 256-bit halves of *a01 / *a23, and the scales as a vector,
 * lane 4 j + r = d_j */
B32_INLINE void b32_act_blocks(const block_q8_0 *y, int t, __m512i *a01, __m512i *a23, __m512 *d)
{
    __m256i q[B32_G];
    uint16_t dh[B32_G] = { 0, 0, 0, 0 };
#pragma GCC unroll 4
    for (int j = 0; j < B32_G; j++) {
        q[j] = j < t ? _mm256_loadu_si256((const __m256i *)y[j].qs) : _mm256_setzero_si256();
        if (j < t)
            memcpy(&dh[j], &y[j].d, sizeof(dh[j]));
    }
    *a01 = _mm512_inserti64x4(_mm512_castsi256_si512(q[0]), q[1], 1);
    *a23 = _mm512_inserti64x4(_mm512_castsi256_si512(q[2]), q[3], 1);
    const __m128 d4 = _mm_cvtph_ps(_mm_setr_epi16((short)dh[0], (short)dh[1], (short)dh[2], (short)dh[3], 0, 0, 0, 0));
    *d = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                               _mm512_castps128_ps512(d4));
}

B32_INLINE void b32_act_load(struct b32_act *g, const block_q8_0 *y, int t, __m512i off)
{
    __m512i t01, t23;
    b32_act_blocks(y, t, &t01, &t23, &g->d);
    g->lo = _mm512_shuffle_i64x2(t01, t23, 0x88);
    g->hi = _mm512_shuffle_i64x2(t01, t23, 0xDD);
    const __m512i z = _mm512_setzero_si512();
    g->neg = _mm512_sub_epi32(z, _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(z, off, g->lo), off, g->hi));
}

/* a group's activation side as mx_prep stored it */
B32_INLINE void b32_act_read(struct b32_act *g, const uint8_t *p)
{
    g->lo = _mm512_load_si512(p);
    g->hi = _mm512_load_si512(p + 64);
    g->neg = _mm512_load_si512(p + 128);
    g->d = _mm512_load_ps(p + 192);
}

/* y[r] for rows 0..3 = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] +
 * acc[5]) + (acc[6] + acc[7])), acc[j] in lanes 4 (j % 4) .. + 3 of lo (j < 4)
 * or hi */
B32_INLINE __m512 b32_sum4(__m512 acc)
{
    const __m512 u = _mm512_add_ps(acc, _mm512_shuffle_f32x4(acc, acc, 0xB1));
    return _mm512_add_ps(u, _mm512_shuffle_f32x4(u, u, 0x4E));
}

B32_INLINE void b32_store4(float *y, __m512 lo, __m512 hi, int nr)
{
    const __m512 v = _mm512_add_ps(b32_sum4(lo), b32_sum4(hi));
    _mm_mask_storeu_ps(y, (__mmask8)((1u << nr) - 1), _mm512_castps512_ps128(v));
}

/* --- MXFP4, four rows ----------------------------------------------------- */

/* vpermi2b index: lane j byte i = byte 17 j + 1 + i of a 68-byte group (the
 * packed quants of block j) */
static inline __m512i mx_qs_idx(void)
{
    int8_t v[64];
    for (int i = 0; i < 64; i++)
        v[i] = (int8_t)(17 * (i / 16) + 1 + i % 16);
    return _mm512_loadu_si512(v);
}

/* vpermi2b index for the exponents: dword 4 j + r, byte 0 = byte 17 j of
 * table (r % 2) (used with masks that keep r = 0, 1 or r = 2, 3) */
static inline __m512i mx_e_idx(void)
{
    int8_t v[64];
    for (int i = 0; i < 64; i++)
        v[i] = (int8_t)((i / 4) % 2 * 64 + 17 * (i / 16));
    return _mm512_loadu_si512(v);
}

/* 64-entry vpermb table: entry i = doubled e2m1 value of nibble i % 16,
 * plus bias */
static inline __m512i mx_table64(int bias)
{
    int8_t v[64];
    for (int i = 0; i < 64; i++)
        v[i] = (int8_t)(quant_kvalues_mxfp4[i % 16] + bias);
    return _mm512_loadu_si512(v);
}

/* the 68 bytes of blocks b..b + t - 1 of a row (t <= 4; the rest zero) */
B32_INLINE void mx_group_load(const uint8_t *p, int t, __m512i *l0, __m512i *l1)
{
    if (t == B32_G) {
        *l0 = _mm512_loadu_si512(p);
        *l1 = _mm512_maskz_loadu_epi8(0xF, p + 64);
    } else {
        *l0 = _mm512_maskz_loadu_epi8(((__mmask64)1 << (17 * t)) - 1, p);
        *l1 = _mm512_setzero_si512();
    }
}

/* y[k * ys + r] = dot(w[r], a + k * as) for r < nr, k < na (na <= B32_ACT_GROUP,
 * a constant once inlined) */
B32_INLINE void mx_x4_rows(int64_t n, float *y, size_t ys, const uint8_t *const *w, int nr, const uint8_t *a,
                           size_t as, const int na, const int prepped)
{
    const int64_t nb = n / QK_MXFP4;
    /* the same group of the next four rows (see quant_x4_avx512.c) */
    const ptrdiff_t pf = 4 * (w[1] - w[0]);
    const __m512i qidx = mx_qs_idx(), eidx = mx_e_idx(), tab = mx_table64(12), off = _mm512_set1_epi8(12);
    const __mmask64 m01 = 0x0011001100110011ull, m23 = 0x1100110011001100ull;
    __m512 acc[2][B32_ACT_GROUP];
#pragma GCC unroll 8
    for (int k = 0; k < na; k++)
        acc[0][k] = acc[1][k] = _mm512_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += 2 * B32_G)
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const int64_t b = b0 + h * B32_G;
        if (b >= nb)
            break;
        const int t = nb - b < B32_G ? (int)(nb - b) : B32_G;
        __m512i wl[4], wh[4], l0[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const uint8_t *p = w[r] + (size_t)b * sizeof(block_mxfp4);
            __builtin_prefetch(p + pf, 0, 3);
            __builtin_prefetch(p + pf + 64, 0, 3);
            __m512i l1;
            mx_group_load(p, t, &l0[r], &l1);
            const __m512i q = _mm512_permutex2var_epi8(l0[r], qidx, l1);
            wl[r] = _mm512_permutexvar_epi8(q, tab);
            wh[r] = _mm512_permutexvar_epi8(_mm512_srli_epi16(q, 4), tab);
        }
        const __m512i e = _mm512_or_si512(_mm512_maskz_permutex2var_epi8(m01, l0[0], eidx, l0[1]),
                                          _mm512_maskz_permutex2var_epi8(m23, l0[2], eidx, l0[3]));
        const __m512 dw = b32_e8m0_half(e);
        const __mmask16 keep = (__mmask16)((1u << (4 * t)) - 1);
#pragma GCC unroll 8
        for (int k = 0; k < na; k++) {
            struct b32_act g;
            if (prepped)
                b32_act_read(&g, a + (size_t)k * as + (size_t)(b / B32_G) * sizeof(struct b32_act));
            else
                b32_act_load(&g, (const block_q8_0 *)(const void *)(a + (size_t)k * as) + b, t, off);
            __m512i p[4];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
                p[r] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(g.neg, wl[r], g.lo), wh[r], g.hi);
            const __m512 f = _mm512_cvtepi32_ps(b32_reduce4(p[0], p[1], p[2], p[3]));
            acc[h][k] = _mm512_mask3_fmadd_ps(f, _mm512_mul_ps(dw, g.d), acc[h][k], keep);
        }
    }
#pragma GCC unroll 8
    for (int k = 0; k < na; k++)
        b32_store4(y + (size_t)k * ys, acc[0][k], acc[1][k], nr);
}

/* --- Q8_0, four rows ------------------------------------------------------ */

/* rows (w[r] - w[0]) must fit the int32 offsets of one gather */
static int b32_rows_close(const uint8_t *const *w)
{
    for (int r = 1; r < 4; r++) {
        const ptrdiff_t d = w[r] - w[0];
        if (d > INT32_MAX / 2 || d < -(INT32_MAX / 2))
            return 0;
    }
    return 1;
}

/* The activation side of one Q8_0 group: blocks 0, 1 / 2, 3 in the 256-bit
 * halves of a01 / a23, n01 / n23 = -128 * their sums (spread over each
 * half's eight int32), d as in struct b32_act. */
struct q80_act {
    __m512i a01, a23, n01, n23;
    __m512 d;
};

B32_INLINE void q80_act_load(struct q80_act *g, const block_q8_0 *yk, int t)
{
    const __m512i x80 = _mm512_set1_epi8((char)0x80), z = _mm512_setzero_si512();
    b32_act_blocks(yk, t, &g->a01, &g->a23, &g->d);
    g->n01 = _mm512_sub_epi32(z, _mm512_dpbusd_epi32(z, x80, g->a01));
    g->n23 = _mm512_sub_epi32(z, _mm512_dpbusd_epi32(z, x80, g->a23));
}

B32_INLINE void q80_act_read(struct q80_act *g, const uint8_t *p)
{
    g->a01 = _mm512_load_si512(p);
    g->a23 = _mm512_load_si512(p + 64);
    g->n01 = _mm512_load_si512(p + 128);
    g->n23 = _mm512_load_si512(p + 192);
    g->d = _mm512_load_ps(p + 256);
}

B32_INLINE void q80_x4_rows(int64_t n, float *y, size_t ys, const uint8_t *const *w, int nr, const uint8_t *a,
                            size_t as, const int na, const int prepped)
{
    const int64_t nb = n / QK8_0;
    const ptrdiff_t pf = 4 * (w[1] - w[0]);
    const __m512i x80 = _mm512_set1_epi8((char)0x80);
    /* lane 4 j + r: the scale of block j of row r, relative to w[0] */
    const __m512i doffs = _mm512_add_epi32(
        _mm512_setr_epi32(0, (int)(w[1] - w[0]), (int)(w[2] - w[0]), (int)(w[3] - w[0]), 0, (int)(w[1] - w[0]),
                          (int)(w[2] - w[0]), (int)(w[3] - w[0]), 0, (int)(w[1] - w[0]), (int)(w[2] - w[0]),
                          (int)(w[3] - w[0]), 0, (int)(w[1] - w[0]), (int)(w[2] - w[0]), (int)(w[3] - w[0])),
        _mm512_setr_epi32(0, 0, 0, 0, 34, 34, 34, 34, 68, 68, 68, 68, 102, 102, 102, 102));
    __m512 acc[2][B32_ACT_GROUP];
#pragma GCC unroll 8
    for (int k = 0; k < na; k++)
        acc[0][k] = acc[1][k] = _mm512_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += 2 * B32_G)
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        const int64_t b = b0 + h * B32_G;
        if (b >= nb)
            break;
        const int t = nb - b < B32_G ? (int)(nb - b) : B32_G;
        const __mmask16 keep = (__mmask16)((1u << (4 * t)) - 1);
        __m512i u01[4], u23[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const block_q8_0 *x = (const block_q8_0 *)(const void *)w[r] + b;
            __builtin_prefetch((const char *)x + pf, 0, 3);
            __builtin_prefetch((const char *)x + pf + 64, 0, 3);
            __builtin_prefetch((const char *)x + pf + 128, 0, 3);
            __m256i q[B32_G];
#pragma GCC unroll 4
            for (int j = 0; j < B32_G; j++)
                q[j] = j < t ? _mm256_loadu_si256((const __m256i *)x[j].qs) : _mm256_setzero_si256();
            u01[r] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(q[0]), q[1], 1), x80);
            u23[r] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(q[2]), q[3], 1), x80);
        }
        const __m512i dh = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), keep, doffs,
                                                       w[0] + (size_t)b * sizeof(block_q8_0), 1);
        const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dh));
#pragma GCC unroll 8
        for (int k = 0; k < na; k++) {
            struct q80_act g;
            if (prepped)
                q80_act_read(&g, a + (size_t)k * as + (size_t)(b / B32_G) * sizeof(struct q80_act));
            else
                q80_act_load(&g, (const block_q8_0 *)(const void *)(a + (size_t)k * as) + b, t);
            __m512i p[4];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                const __m512i p01 = _mm512_dpbusd_epi32(g.n01, u01[r], g.a01);
                const __m512i p23 = _mm512_dpbusd_epi32(g.n23, u23[r], g.a23);
                /* 128-bit lane j = the four partial sums of block j */
                p[r] = _mm512_add_epi32(_mm512_shuffle_i64x2(p01, p23, 0x88), _mm512_shuffle_i64x2(p01, p23, 0xDD));
            }
            const __m512 f = _mm512_cvtepi32_ps(b32_reduce4(p[0], p[1], p[2], p[3]));
            acc[h][k] = _mm512_mask3_fmadd_ps(f, _mm512_mul_ps(dw, g.d), acc[h][k], keep);
        }
    }
#pragma GCC unroll 8
    for (int k = 0; k < na; k++)
        b32_store4(y + (size_t)k * ys, acc[0][k], acc[1][k], nr);
}

/* One entry for every activation count (groups of B32_ACT_GROUP, then 4, 2,
 * 1), and the one-row entries: the same kernel with the row in every lane. */
#define B32_DEFINE(name, rows, check)                                                                          \
    B32_DEFINE_X4(name, rows, check, 0)                                                                       \
    B32_DEFINE_X4(name##_p, rows, check, 1)                                                                   \
    QUANT_X4_ROW_ENTRIES(name)
#define B32_DEFINE_X4(name, rows, check, prepped)                                                              \
    static void name(int64_t n, float *y, size_t ys, const uint8_t *const *w, int nr, const void *a, size_t as,  \
                     int na)                                                                                  \
    {                                                                                                         \
        if (check && !b32_rows_close(w)) {                                                                    \
            for (int r = 0; r < nr; r++) {                                                                    \
                const uint8_t *w1[4] = { w[r], w[r], w[r], w[r] };                                            \
                float s[B32_ACT_GROUP];                                                                       \
                for (int k = 0; k < na; k += B32_ACT_GROUP) {                                                 \
                    const int m = na - k < B32_ACT_GROUP ? na - k : B32_ACT_GROUP;                            \
                    name(n, s, 1, w1, 1, (const uint8_t *)a + (size_t)k * as, as, m);                         \
                    for (int q = 0; q < m; q++)                                                               \
                        y[(size_t)(k + q) * ys + (size_t)r] = s[q];                                           \
                }                                                                                             \
            }                                                                                                 \
            return;                                                                                           \
        }                                                                                                     \
        const uint8_t *ap = a;                                                                                \
        int k = 0;                                                                                            \
        for (; k + B32_ACT_GROUP <= na; k += B32_ACT_GROUP)                                                   \
            rows(n, y + (size_t)k * ys, ys, w, nr, ap + (size_t)k * as, as, B32_ACT_GROUP, prepped);          \
        if (na - k >= 4) {                                                                                    \
            rows(n, y + (size_t)k * ys, ys, w, nr, ap + (size_t)k * as, as, 4, prepped);                      \
            k += 4;                                                                                           \
        }                                                                                                     \
        if (na - k >= 2) {                                                                                    \
            rows(n, y + (size_t)k * ys, ys, w, nr, ap + (size_t)k * as, as, 2, prepped);                      \
            k += 2;                                                                                           \
        }                                                                                                     \
        if (na - k >= 1)                                                                                      \
            rows(n, y + (size_t)k * ys, ys, w, nr, ap + (size_t)k * as, as, 1, prepped);                      \
    }
_Static_assert(B32_ACT_GROUP == 8, "B32_DEFINE handles a remainder of at most 7 rows");

B32_DEFINE(dot_mxfp4_x4, mx_x4_rows, 0)
B32_DEFINE(dot_q8_0_x4, q80_x4_rows, 1)

/* Prepared activations (traits.x4_prep): per activation row, the activation
 * side of every group as the kernels above compute it, 64-byte aligned. */
static size_t mx_prep_size(int64_t n)
{
    return (size_t)((n / QK_MXFP4 + B32_G - 1) / B32_G) * sizeof(struct b32_act);
}

static void mx_prep(int64_t n, const void *a, size_t as, int na, void *out)
{
    const int64_t nb = n / QK_MXFP4;
    const __m512i off = _mm512_set1_epi8(12);
    struct b32_act *o = out;
    for (int k = 0; k < na; k++)
        for (int64_t b = 0; b < nb; b += B32_G, o++)
            b32_act_load(o, (const block_q8_0 *)(const void *)((const uint8_t *)a + (size_t)k * as) + b,
                         nb - b < B32_G ? (int)(nb - b) : B32_G, off);
}

static size_t q80_prep_size(int64_t n)
{
    return (size_t)((n / QK8_0 + B32_G - 1) / B32_G) * sizeof(struct q80_act);
}

static void q80_prep(int64_t n, const void *a, size_t as, int na, void *out)
{
    const int64_t nb = n / QK8_0;
    struct q80_act *o = out;
    for (int k = 0; k < na; k++)
        for (int64_t b = 0; b < nb; b += B32_G, o++)
            q80_act_load(o, (const block_q8_0 *)(const void *)((const uint8_t *)a + (size_t)k * as) + b,
                         nb - b < B32_G ? (int)(nb - b) : B32_G);
}

/* --- sixteen-row tiles ---------------------------------------------------- */

/* One group of four blocks of sixteen rows: wv[j][q] lane r = the four signed
 * quants of row r at elements 4 q .. 4 q + 3 of block j; neg[j] = -128 * the
 * sum of row r's quants in block j; dw[j] the weight scales. */
struct b32_tile {
    __m512i wv[B32_G][8];
    __m512i neg[B32_G];
    __m512 dw[B32_G];
};

B32_INLINE void b32_tile_neg(struct b32_tile *t, int nt)
{
    const __m512i x80 = _mm512_set1_epi8((char)0x80), z = _mm512_setzero_si512();
    for (int j = 0; j < nt; j++) {
        __m512i s = z;
        for (int q = 0; q < 8; q++)
            s = _mm512_dpbusd_epi32(s, x80, t->wv[j][q]);
        t->neg[j] = _mm512_sub_epi32(z, s);
    }
}

static void mx_tile_load(struct b32_tile *t, const uint8_t *blk, __m512i offs, const int32_t off[16], int nt)
{
    const __m512i qidx = mx_qs_idx(), tab = mx_table64(0);
    __m512i in[16], out[16];
    for (int r = 0; r < 16; r++) {
        __m512i l0, l1;
        mx_group_load(blk + off[r], nt, &l0, &l1);
        in[r] = _mm512_permutex2var_epi8(l0, qidx, l1);
    }
    tile_transpose16(in, out); /* out[4 j + c] lane r: packed bytes 4 c.. of block j of row r */
    for (int j = 0; j < B32_G; j++)
        for (int c = 0; c < 4; c++) {
            t->wv[j][c] = _mm512_permutexvar_epi8(out[4 * j + c], tab);
            t->wv[j][4 + c] = _mm512_permutexvar_epi8(_mm512_srli_epi16(out[4 * j + c], 4), tab);
        }
    for (int j = 0; j < nt; j++) {
        const __m512i e = _mm512_i32gather_epi32(offs, blk + j * sizeof(block_mxfp4), 1);
        t->dw[j] = b32_e8m0_half(_mm512_and_si512(e, _mm512_set1_epi32(0xFF)));
    }
    b32_tile_neg(t, nt);
}

static void q80_tile_load(struct b32_tile *t, const uint8_t *blk, __m512i offs, const int32_t off[16], int nt)
{
    for (int h = 0; h < 2; h++) {
        __m512i in[16], out[16];
        for (int r = 0; r < 16; r++) {
            const block_q8_0 *x = (const block_q8_0 *)(const void *)(blk + off[r]) + 2 * h;
            const __m256i q0 = 2 * h < nt ? _mm256_loadu_si256((const __m256i *)x[0].qs) : _mm256_setzero_si256();
            const __m256i q1 = 2 * h + 1 < nt ? _mm256_loadu_si256((const __m256i *)x[1].qs) : _mm256_setzero_si256();
            in[r] = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
        }
        tile_transpose16(in, out); /* out[8 i + c] lane r: dword c of block 2 h + i of row r */
        for (int m = 0; m < 16; m++)
            t->wv[2 * h + m / 8][m % 8] = out[m];
    }
    for (int j = 0; j < nt; j++) {
        const __m512i d = _mm512_i32gather_epi32(offs, blk + j * sizeof(block_q8_0), 1);
        t->dw[j] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d));
    }
    b32_tile_neg(t, nt);
}

/* acc[k][j] += block j's term for activation rows y[k], k < na (<= B32_TILE_T),
 * j < nt; y[k] = the group's first block of row k */
B32_INLINE void b32_tile_acts(const struct b32_tile *t, const block_q8_0 *const *y, __m512 (*acc)[2 * B32_G],
                              int h, int nt, const int na)
{
    const __m256i x80 = _mm256_set1_epi8((char)0x80);
    for (int j = 0; j < nt; j++) {
        /* the activations made unsigned, a + 128 */
        uint8_t ua[B32_TILE_T][32] __attribute__((aligned(32)));
        __m512 da[B32_TILE_T];
        /* two dependency chains per activation row (even / odd q), added at
         * the end: the sum is the same exact integer */
        __m512i p0[B32_TILE_T], p1[B32_TILE_T];
#pragma GCC unroll 8
        for (int k = 0; k < na; k++) {
            _mm256_store_si256((__m256i *)ua[k],
                               _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)y[k][j].qs), x80));
            qhalf dh;
            memcpy(&dh, &y[k][j].d, sizeof(dh));
            da[k] = _mm512_set1_ps(_cvtsh_ss(dh));
            p0[k] = t->neg[j];
            p1[k] = _mm512_setzero_si512();
        }
        /* read ua back from memory: the four-byte broadcasts are then plain
         * broadcast loads (without the barrier gcc forwards them from the
         * register with two shuffles each) */
        __asm__ volatile("" ::: "memory");
#pragma GCC unroll 4
        for (int q = 0; q < 8; q += 2) {
            const __m512i w0 = t->wv[j][q], w1 = t->wv[j][q + 1];
#pragma GCC unroll 8
            for (int k = 0; k < na; k++) {
                p0[k] = _mm512_dpbusd_epi32(p0[k], bcast4(ua[k] + 4 * q), w0);
                p1[k] = _mm512_dpbusd_epi32(p1[k], bcast4(ua[k] + 4 * q + 4), w1);
            }
        }
#pragma GCC unroll 8
        for (int k = 0; k < na; k++)
            acc[k][4 * h + j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(p0[k], p1[k])),
                                                _mm512_mul_ps(t->dw[j], da[k]), acc[k][4 * h + j]);
    }
}

typedef void (*b32_tile_load_fn)(struct b32_tile *t, const uint8_t *blk, __m512i offs, const int32_t off[16], int nt);

B32_INLINE void b32_gemm(int64_t n, float *y, size_t ys, const uint8_t *w, size_t row_size, int nr, const void *a,
                         size_t as, int n_out, int passes, size_t bsize, b32_tile_load_fn load)
{
    const int na = n_out * passes;
    const int64_t nb = n / 32;
    int32_t off[16];
    const __m512i offs = tile_offsets(nr, row_size, off);
    __m512 acc[QUANT_GEMM16_MAX_ACT][2 * B32_G];
    for (int k = 0; k < na; k++)
        for (int j = 0; j < 2 * B32_G; j++)
            acc[k][j] = _mm512_setzero_ps();
    struct b32_tile t;
    const uint8_t *ap = a;
    for (int64_t b = 0; b < nb; b += B32_G) {
        const int nt = nb - b < B32_G ? (int)(nb - b) : B32_G, h = (int)(b / B32_G) % 2;
        const uint8_t *blk = w + (size_t)b * bsize;
        tile_prefetch_next(blk, off, B32_G * bsize);
        load(&t, blk, offs, off, nt);
        int k = 0;
        for (; k + B32_TILE_T <= na; k += B32_TILE_T) {
            const block_q8_0 *yk[B32_TILE_T];
            for (int q = 0; q < B32_TILE_T; q++)
                yk[q] = (const block_q8_0 *)(const void *)(ap + (size_t)(k + q) * as) + b;
            b32_tile_acts(&t, yk, acc + k, h, nt, B32_TILE_T);
        }
        for (; k < na; k++) {
            const block_q8_0 *yk = (const block_q8_0 *)(const void *)(ap + (size_t)k * as) + b;
            b32_tile_acts(&t, &yk, acc + k, h, nt, 1);
        }
    }
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
    for (int k = 0; k < n_out; k++) {
        __m512 sum = _mm512_setzero_ps();
        for (int q = 0; q < passes; q++) {
            const __m512 *c = acc[k * passes + q];
            const __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c[0], c[1]), _mm512_add_ps(c[2], c[3])),
                                           _mm512_add_ps(_mm512_add_ps(c[4], c[5]), _mm512_add_ps(c[6], c[7])));
            sum = q == 0 ? s : _mm512_add_ps(sum, s); /* (pass 1) + (pass 2), in that order */
        }
        _mm512_mask_storeu_ps(y + (size_t)k * ys, keep, sum);
    }
}

static void gemm_mxfp4_tile(int64_t n, float *y, size_t ys, const uint8_t *w, size_t row_size, int nr,
                            const void *a, size_t as, int n_out, int passes)
{
    b32_gemm(n, y, ys, w, row_size, nr, a, as, n_out, passes, sizeof(block_mxfp4), mx_tile_load);
}

static void gemm_q8_0_tile(int64_t n, float *y, size_t ys, const uint8_t *w, size_t row_size, int nr,
                           const void *a, size_t as, int n_out, int passes)
{
    b32_gemm(n, y, ys, w, row_size, nr, a, as, n_out, passes, sizeof(block_q8_0), q80_tile_load);
}

void quant_install_b32_avx512(struct quant_traits *traits)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512vbmi"))
        return; /* the one-row kernels of quant_avx512.c stay */
    traits[QT_MXFP4].vec_dot = dot_mxfp4_x4_one;
    traits[QT_MXFP4].vec_dot_multi = dot_mxfp4_x4_multi;
    traits[QT_MXFP4].vec_dot_x4 = dot_mxfp4_x4;
    traits[QT_MXFP4].gemm16 = gemm_mxfp4_tile;
    traits[QT_MXFP4].x4_prep_size = mx_prep_size;
    traits[QT_MXFP4].x4_prep = mx_prep;
    traits[QT_MXFP4].vec_dot_x4p = dot_mxfp4_x4_p;
    traits[QT_Q8_0].vec_dot = dot_q8_0_x4_one;
    traits[QT_Q8_0].vec_dot_multi = dot_q8_0_x4_multi;
    traits[QT_Q8_0].vec_dot_x4 = dot_q8_0_x4;
    traits[QT_Q8_0].gemm16 = gemm_q8_0_tile;
    traits[QT_Q8_0].x4_prep_size = q80_prep_size;
    traits[QT_Q8_0].x4_prep = q80_prep;
    traits[QT_Q8_0].vec_dot_x4p = dot_q8_0_x4_p;
}
