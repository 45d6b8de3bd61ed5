/*
 * quant_lowbit_avx512.c - AVX-512 (BW, VNNI) dots of HQ2 / HQ3 weights with
 * Q8_KH activations (format in quant_lowbit.h).
 *
 * Owns: quant_install_lowbit_avx512(), which sets vec_dot and vec_dot_multi
 * of QT_HQ2 / QT_HQ3. One pass over the packed bytes: the 2-bit (and high
 * bit) indices of 64 weights are picked out of one 64-byte load with a shift
 * and a mask, turned into codebook bytes by one vpshufb (the codebook sits in
 * a register), and multiplied with the activation bytes by vpdpbusd. The
 * codebook is stored offset by +128 (unsigned bytes, as vpdpbusd wants);
 * 128 * sum(activations), from the Q8_K block sums, is taken off per block.
 * Integer sums are exact; the float accumulation order differs from the
 * reference (tested within a tolerance). Must not allocate.
 */
#include <immintrin.h>
#include <string.h>

#include "quant.h"
#include "quant_lowbit.h"

void quant_install_lowbit_avx512(struct quant_traits *traits);

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define ROWS_FOR(k) _Pragma("GCC unroll 8") for (int k = 0; k < na; k++)
#define MULTI_G 8

ALWAYS_INLINE float lb_fp16(qhalf h)
{
    return _cvtsh_ss(h);
}

/* the codebook + 128, replicated into each 128-bit lane for vpshufb */
ALWAYS_INLINE __m512i lb_lut(const int8_t *lv, int nl)
{
    uint8_t t[16] = { 0 };
    for (int i = 0; i < nl; i++)
        t[i] = (uint8_t)(lv[i] + 128);
    return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)t));
}

/* 128 * sum of the block's activations, as 16 int32 lanes that add up to it */
ALWAYS_INLINE __m512i lb_offset(const block_q8_K *y)
{
    return _mm512_slli_epi32(_mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)y->bsums)), 7);
}

/*
 * s[k * ss] = w . a_k for k < na (na a constant once inlined). hq3 selects
 * the 8-level format: the high index bit of 64 weights is one 64-bit mask
 * (qh read as little-endian uint64), merged with a masked byte add.
 */
ALWAYS_INLINE void lb_rows(int64_t n, float *s, size_t ss, const void *w, const void *a, size_t as, int na,
                           int hq3)
{
    const __m512i lut = hq3 ? lb_lut(quant_hq3_levels, 8) : lb_lut(quant_hq2_levels, 4);
    const __m512i m3 = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
    const size_t bsz = hq3 ? sizeof(block_hq3) : sizeof(block_hq2);
    const uint8_t *wb = w;
    __m512 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++, wb += bsz) {
        __builtin_prefetch(wb + 1024, 0, 3);
        /* plain variables, not an array: gcc -O2 does not unroll a loop over
         * one and keeps it on the stack: 4.96 GB/s with a u[4] array) */
        const __m512i v = _mm512_loadu_si512(wb + offsetof(block_hq2, qs));
        __m512i u0 = _mm512_and_si512(v, m3);
        __m512i u1 = _mm512_and_si512(_mm512_srli_epi16(v, 2), m3);
        __m512i u2 = _mm512_and_si512(_mm512_srli_epi16(v, 4), m3);
        __m512i u3 = _mm512_and_si512(_mm512_srli_epi16(v, 6), m3);
        if (hq3) {
            uint64_t h0, h1, h2, h3;
            const uint8_t *qh = wb + offsetof(block_hq3, qh);
            memcpy(&h0, qh, 8);
            memcpy(&h1, qh + 8, 8);
            memcpy(&h2, qh + 16, 8);
            memcpy(&h3, qh + 24, 8);
            u0 = _mm512_mask_add_epi8(u0, (__mmask64)h0, u0, four);
            u1 = _mm512_mask_add_epi8(u1, (__mmask64)h1, u1, four);
            u2 = _mm512_mask_add_epi8(u2, (__mmask64)h2, u2, four);
            u3 = _mm512_mask_add_epi8(u3, (__mmask64)h3, u3, four);
        }
        u0 = _mm512_shuffle_epi8(lut, u0);
        u1 = _mm512_shuffle_epi8(lut, u1);
        u2 = _mm512_shuffle_epi8(lut, u2);
        u3 = _mm512_shuffle_epi8(lut, u3);
        float dw;
        {
            qhalf dh;
            memcpy(&dh, wb, sizeof(dh));
            dw = lb_fp16(dh);
        }
        ROWS_FOR(k) {
            const block_q8_K *y = (const block_q8_K *)((const uint8_t *)a + (size_t)k * as) + i;
            __m512i sumi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u0, _mm512_loadu_si512(y->qs));
            sumi = _mm512_dpbusd_epi32(sumi, u1, _mm512_loadu_si512(y->qs + 64));
            sumi = _mm512_dpbusd_epi32(sumi, u2, _mm512_loadu_si512(y->qs + 128));
            sumi = _mm512_dpbusd_epi32(sumi, u3, _mm512_loadu_si512(y->qs + 192));
            sumi = _mm512_sub_epi32(sumi, lb_offset(y));
            acc[k] = _mm512_fmadd_ps(_mm512_set1_ps(dw * y->d), _mm512_cvtepi32_ps(sumi), acc[k]);
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
    traits[QT_HQ2].vec_dot = dot_hq2_avx512;
    traits[QT_HQ2].vec_dot_multi = dot_hq2_avx512_multi;
    traits[QT_HQ3].vec_dot = dot_hq3_avx512;
    traits[QT_HQ3].vec_dot_multi = dot_hq3_avx512_multi;
}
