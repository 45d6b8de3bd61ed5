/*
 * quant_lowbit_avx2.c - AVX2 dots of HQ2 / HQ3 weights with Q8_KH
 * activations (format in quant_lowbit.h).
 *
 * Owns: quant_install_lowbit_avx2(), which sets vec_dot and vec_dot_multi
 * of QT_HQ2 / QT_HQ3. One pass over the packed bytes: 32 indices per shift
 * and mask of a 32-byte load, two vpshufb into the codebook (magnitudes, and
 * signed levels whose sign goes onto the activations with vpsignb), then
 * vpmaddubsw (|level| <= 127 and |a| <= 127: no int16 saturation) and
 * vpmaddwd. Integer sums are exact; float order differs from the reference
 * (tested within a tolerance). Must not allocate.
 */
#include <immintrin.h>
#include <string.h>

#include "quant.h"
#include "quant_lowbit.h"

void quant_install_lowbit_avx2(struct quant_traits *traits);

#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define ROWS_FOR(k) _Pragma("GCC unroll 8") for (int k = 0; k < na; k++)
#define MULTI_G 8

/* the codebook (signed, or magnitudes) replicated into both 128-bit lanes */
ALWAYS_INLINE __m256i lb2_lut(const int8_t *lv, int nl, int magnitude)
{
    int8_t t[16] = { 0 };
    for (int i = 0; i < nl; i++)
        t[i] = (int8_t)(magnitude && lv[i] < 0 ? -lv[i] : lv[i]);
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)t));
}

/* bytes 0xff where bit i of the 32-bit mask m is set (byte i) */
ALWAYS_INLINE __m256i lb2_bits_to_bytes(uint32_t m)
{
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                          3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)m), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* s[k * ss] = w . a_k for k < na; hq3 selects the 8-level format */
ALWAYS_INLINE void lb2_rows(int64_t n, float *s, size_t ss, const void *w, const void *a, size_t as, int na, int hq3)
{
    const __m256i lut_s = hq3 ? lb2_lut(quant_hq3_levels, 8, 0) : lb2_lut(quant_hq2_levels, 4, 0);
    const __m256i lut_m = hq3 ? lb2_lut(quant_hq3_levels, 8, 1) : lb2_lut(quant_hq2_levels, 4, 1);
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4), ones = _mm256_set1_epi16(1);
    const size_t bsz = hq3 ? sizeof(block_hq3) : sizeof(block_hq2);
    const uint8_t *wb = w;
    __m256 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++, wb += bsz) {
        __builtin_prefetch(wb + 4096, 0, 3); /* 1024 -> 4096: HQ2 0.64 -> 0.70 x Q4_K (kbench --isa avx2 --mb 256, 1 thread) */
        qhalf dh;
        memcpy(&dh, wb, sizeof(dh));
        const float dw = _cvtsh_ss(dh);
        __m256i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm256_setzero_si256();
        /* unrolled: gcc -O2 would keep the small arrays below on the stack */
        _Pragma("GCC unroll 2") for (int h = 0; h < 2; h++) { /* elements 64 g + 32 h .. + 31, g = 0..3 */
            const __m256i v = _mm256_loadu_si256((const __m256i *)(wb + offsetof(block_hq2, qs) + 32 * h));
            uint32_t hb[4] = { 0 };
            if (hq3) {
                uint64_t q[4];
                memcpy(q, wb + offsetof(block_hq3, qh), sizeof(q));
                _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++)
                    hb[g] = (uint32_t)(q[g] >> (32 * h));
            }
            _Pragma("GCC unroll 4") for (int g = 0; g < 4; g++) {
                __m256i idx = _mm256_and_si256(_mm256_srli_epi16(v, 2 * g), m3);
                if (hq3)
                    idx = _mm256_or_si256(idx, _mm256_and_si256(lb2_bits_to_bytes(hb[g]), four));
                const __m256i mag = _mm256_shuffle_epi8(lut_m, idx), sgn = _mm256_shuffle_epi8(lut_s, idx);
                ROWS_FOR(k) {
                    const block_q8_K *y = (const block_q8_K *)((const uint8_t *)a + (size_t)k * as) + i;
                    const __m256i ya = _mm256_loadu_si256((const __m256i *)(y->qs + 64 * g + 32 * h));
                    const __m256i p = _mm256_maddubs_epi16(mag, _mm256_sign_epi8(ya, sgn));
                    sumi[k] = _mm256_add_epi32(sumi[k], _mm256_madd_epi16(p, ones));
                }
            }
        }
        ROWS_FOR(k) {
            const block_q8_K *y = (const block_q8_K *)((const uint8_t *)a + (size_t)k * as) + i;
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dw * y->d), _mm256_cvtepi32_ps(sumi[k]), acc[k]);
        }
    }
    ROWS_FOR(k) {
        __m128 t = _mm_add_ps(_mm256_castps256_ps128(acc[k]), _mm256_extractf128_ps(acc[k], 1));
        t = _mm_add_ps(t, _mm_movehl_ps(t, t));
        t = _mm_add_ss(t, _mm_movehdup_ps(t));
        s[(size_t)k * ss] = _mm_cvtss_f32(t) * (1.0f / 127.0f);
    }
}

ALWAYS_INLINE void hq2_rows(int64_t n, float *s, size_t ss, const void *w, const void *a, size_t as, int na)
{
    lb2_rows(n, s, ss, w, a, as, na, 0);
}

ALWAYS_INLINE void hq3_rows(int64_t n, float *s, size_t ss, const void *w, const void *a, size_t as, int na)
{
    lb2_rows(n, s, ss, w, a, as, na, 1);
}

/* --- Q8_KH activations: the rotation in registers ------------------------- */

/* the Q8_K quantizer of this ISA (byte-identical to the reference), from the
 * traits table at install time */
static quant_from_float_fn lb2_q8k;

/* y[256] = R x[256] with exactly the reference's operations per element
 * (sign flip, the same a + b / a - b at every butterfly stage, * 1/16), so
 * the result is bit-identical to quant_lowbit_rotate */
static void lb2_rotate(const float *x, float *y)
{
    __m256 v[32];
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    for (int i = 0; i < 32; i++) {
        const __m256i m = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(quant_lowbit_sign[i]), bit), bit);
        const __m256 sgn = _mm256_and_ps(_mm256_castsi256_ps(m), _mm256_set1_ps(-0.0f));
        __m256 t = _mm256_xor_ps(_mm256_loadu_ps(x + 8 * i), sgn);
        __m256 p = _mm256_permute_ps(t, 0xb1); /* h = 1 */
        t = _mm256_blend_ps(_mm256_add_ps(t, p), _mm256_sub_ps(p, t), 0xaa);
        p = _mm256_permute_ps(t, 0x4e);        /* h = 2 */
        t = _mm256_blend_ps(_mm256_add_ps(t, p), _mm256_sub_ps(p, t), 0xcc);
        p = _mm256_permute2f128_ps(t, t, 1);   /* h = 4 */
        v[i] = _mm256_blend_ps(_mm256_add_ps(t, p), _mm256_sub_ps(p, t), 0xf0);
    }
    for (int h = 1; h < 32; h *= 2)            /* h = 8 .. 128 elements */
        for (int i = 0; i < 32; i += 2 * h)
            for (int j = i; j < i + h; j++) {
                const __m256 a = v[j], b = v[j + h];
                v[j] = _mm256_add_ps(a, b);
                v[j + h] = _mm256_sub_ps(a, b);
            }
    for (int i = 0; i < 32; i++)
        _mm256_storeu_ps(y + 8 * i, _mm256_mul_ps(v[i], _mm256_set1_ps(1.0f / 16.0f)));
}

static void from_float_q8_kh_avx2(const float *src, void *dst, int64_t n)
{
    float r[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++) {
        lb2_rotate(src + b * QK_K, r);
        lb2_q8k(r, (block_q8_K *)dst + b, QK_K);
        quant_q8_kh_offset((block_q8_K *)dst + b);
    }
}

/* dot = rows with na = 1; dot_multi: groups of 8 rows, then 4 + 2 + 1 */
#define LB2_DEFINE_DOTS(dot, rows)                                                                        \
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

LB2_DEFINE_DOTS(dot_hq2_avx2, hq2_rows)
LB2_DEFINE_DOTS(dot_hq3_avx2, hq3_rows)

void quant_install_lowbit_avx2(struct quant_traits *traits)
{
    traits[QT_HQ2].vec_dot = dot_hq2_avx2;
    traits[QT_HQ2].vec_dot_multi = dot_hq2_avx2_multi;
    traits[QT_HQ3].vec_dot = dot_hq3_avx2;
    traits[QT_HQ3].vec_dot_multi = dot_hq3_avx2_multi;
    lb2_q8k = traits[QT_Q8_K].from_float_simd ? traits[QT_Q8_K].from_float_simd : traits[QT_Q8_K].from_float;
    traits[QT_Q8_KH].from_float_simd = from_float_q8_kh_avx2;
}
