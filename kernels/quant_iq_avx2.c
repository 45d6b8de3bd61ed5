/*
 * quant_iq_avx2.c - AVX2 (with FMA, F16C) dot products of one weight row
 * with one activation row for the codebook formats (IQ2_XXS, IQ2_XS,
 * IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M), TQ1_0, TQ2_0, and Q4_1/Q5_1, which
 * quant_avx2.c does not cover.
 *
 * Owns: quant_install_iq_avx2(), called by quant.c after
 * quant_install_avx2(); it replaces traits[t].vec_dot of these formats and
 * their vec_dot_multi (multi-row kernels for the IQ and TQ formats, NULL
 * for Q4_1/Q5_1). Must not: allocate, touch vec_dot_ref,
 * or run on a CPU without AVX2/FMA/F16C (quant.c checks first).
 *
 * Technique, per 32 weights (one sub-block): one gather fetches the
 * codebook entries as 32 unsigned magnitudes; the sign bits (one per
 * weight once decoded) are expanded to a byte mask that flips the
 * matching activations (sign_epi8); maddubs gives int16 pairs (no
 * saturation: magnitudes <= 62, |a| <= 127) and madd weights them with the
 * int16 sub-block scale into int32. The super-block's integer sum is exact;
 * only the float adds across super-blocks differ from the reference. IQ1
 * weights are stored as 8 * grid + delta + 9 and TQ2_0's as q, with the
 * offsets removed through the Q8_K bsums; TQ1_0 likewise.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "quant_grids.h"
#include "quant_iq_ref.h"
#include "quant_iq_simd.h"
#include "quant_ref.h"

void quant_install_iq_avx2(struct quant_traits *traits);

/* --- helpers ------------------------------------------------------------ */

static inline float fp16_to_f32(qhalf h)
{
    return _cvtsh_ss(h);
}

static inline float hsum_f32_8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 32-bit mask -> 32 bytes, 0xff where the element's bit is set */
static inline __m256i mask_bytes(uint32_t m)
{
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                          3, 3, 3, 3, 3, 3, 3);
    const __m256i bits = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)m), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bits), bits);
}

/* sign_epi8 operand: -1 where bit k of 'neg' is set, else +1 */
static inline __m256i sign_bytes(uint32_t neg)
{
    return _mm256_or_si256(mask_bytes(neg), _mm256_set1_epi8(1));
}

/* 32 activations with the signs of sign_bytes() applied (|a| <= 127) */
static inline __m256i act_sign(const int8_t *act, __m256i sgn)
{
    return _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)act), sgn);
}

/* sumi += sc . pairs(w * a): int16 scale per pair lane */
static inline __m256i step32(__m256i sumi, __m256i w, __m256i a, __m256i sc)
{
    return _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), sc));
}

/* int16 scale lanes: sc0 for the first 16 weights, sc1 for the next 16 */
static inline __m256i scale2(int sc0, int sc1)
{
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)sc0)), _mm_set1_epi16((short)sc1), 1);
}

static inline uint32_t load_u32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline __m256 finish(__m256 acc, __m256i sumi, float d)
{
    return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
}

/* --- several activation rows per pass over the weights ------------------- */

/*
 * A *_rows() body computes s[k * ss] = dot(w, a + k * as) for k < na (na a
 * compile-time constant once inlined): the codebook lookups, signs and
 * scales of a super-block are decoded once, then every activation row runs
 * exactly the single-row steps on them. vec_dot is the na = 1 instance of
 * the same body, so vec_dot_multi equals vec_dot row by row, bit for bit.
 * Four rows fit the 16 ymm registers (two accumulators per row).
 */
#define MULTI_G 4
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define ROWS_FOR(k) _Pragma("GCC unroll 4") for (int k = 0; k < na; k++)
#define ROW_Q8K(k) ((const block_q8_K *)(a + (size_t)(k) * as))

/* dot = rows with na = 1; dot_multi: groups of MULTI_G rows, then 2 + 1 */
#define DEFINE_DOTS(dot, rows)                                                                       \
    static void dot(int64_t n, float *s, const void *w, const void *a)                              \
    {                                                                                                \
        rows(n, s, 1, w, a, 0, 1);                                                                   \
    }                                                                                                \
    static void dot##_multi(int64_t n, float *s, size_t ss, const void *w, const void *a, size_t as, \
                            int n_act)                                                               \
    {                                                                                                \
        const uint8_t *ap = a;                                                                       \
        int k = 0;                                                                                   \
        for (; k + MULTI_G <= n_act; k += MULTI_G)                                                   \
            rows(n, s + (size_t)k * ss, ss, w, ap + (size_t)k * as, as, MULTI_G);                    \
        if (n_act - k >= 2) {                                                                        \
            rows(n, s + (size_t)k * ss, ss, w, ap + (size_t)k * as, as, 2);                          \
            k += 2;                                                                                  \
        }                                                                                            \
        if (n_act - k >= 1)                                                                          \
            rows(n, s + (size_t)k * ss, ss, w, ap + (size_t)k * as, as, 1);                          \
    }
static_assert(MULTI_G == 4, "DEFINE_DOTS handles a remainder of at most 3 rows");

/* --- IQ2_XXS ------------------------------------------------------------- */

/* s = W[n] . x[n]; W IQ2_XXS, x Q8_K */
ALWAYS_INLINE void iq2_xxs_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                                const int na)
{
    const block_iq2_xxs *x = w;
    const int64_t nb = n / QK_K;
    __m256 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        uint32_t raw[16], signs[8];
        memcpy(raw, x[i].qs, sizeof(raw));
        /* 8 bytes per 32 weights: 4 grid indices, then 4 x 7 sign bits + scale (odd words) */
        const __m256i odd = _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7);
        const __m256i w0 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)x[i].qs), odd);
        const __m256i w1 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(x[i].qs + 16)), odd);
        _mm256_storeu_si256((__m256i *)signs, ksigns_from_packed(_mm256_permute2x128_si256(w0, w1, 0x20)));
        __m256i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm256_setzero_si256();
        for (int sb = 0; sb < 8; sb++) {
            const int sc = (int)(2 * (raw[2 * sb + 1] >> 28) + 1);
            const __m128i gi = _mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)raw[2 * sb]));
            const __m256i g = _mm256_i32gather_epi64((const long long *)quant_iq2xxs_grid, gi, 8);
            const __m256i sgn = sign_bytes(signs[sb]);
            const __m256i scv = _mm256_set1_epi16((short)sc);
            ROWS_FOR(k) sumi[k] = step32(sumi[k], g, act_sign(ROW_Q8K(k)[i].qs + 32 * sb, sgn), scv);
        }
        const float dw = fp16_to_f32(x[i].d) * 0.125f;
        ROWS_FOR(k) acc[k] = finish(acc[k], sumi[k], dw * ROW_Q8K(k)[i].d);
    }
    ROWS_FOR(k) s[(size_t)k * ss] = hsum_f32_8(acc[k]);
}
DEFINE_DOTS(dot_iq2_xxs_avx2, iq2_xxs_rows)

/* --- IQ2_XS -------------------------------------------------------------- */

/* s = W[n] . x[n]; W IQ2_XS, x Q8_K */
ALWAYS_INLINE void iq2_xs_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                               const int na)
{
    const block_iq2_xs *x = w;
    const int64_t nb = n / QK_K;
    __m256 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        uint32_t signs[8];
        /* 32 u16: 9-bit grid index, 7-bit sign index -> 32 sign bytes */
        const __m256i r0 = _mm256_loadu_si256((const __m256i *)x[i].qs);
        const __m256i r1 = _mm256_loadu_si256((const __m256i *)(x[i].qs + 16));
        const __m256i sb8 = _mm256_packus_epi16(with_parity256(_mm256_srli_epi16(r0, 9)),
                                                with_parity256(_mm256_srli_epi16(r1, 9)));
        _mm256_storeu_si256((__m256i *)signs, _mm256_permute4x64_epi64(sb8, _MM_SHUFFLE(3, 1, 2, 0)));
        __m256i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm256_setzero_si256();
        for (int sb = 0; sb < 8; sb++) {
            const __m128i gi = _mm_and_si128(_mm_cvtepu16_epi32(_mm_loadl_epi64((const __m128i *)(x[i].qs + 4 * sb))),
                                             _mm_set1_epi32(511));
            const __m256i g = _mm256_i32gather_epi64((const long long *)quant_iq2xs_grid, gi, 8);
            const __m256i sc = scale2(2 * (x[i].scales[sb] & 0x0f) + 1, 2 * (x[i].scales[sb] >> 4) + 1);
            const __m256i sgn = sign_bytes(signs[sb]);
            const __m256i scv = sc;
            ROWS_FOR(k) sumi[k] = step32(sumi[k], g, act_sign(ROW_Q8K(k)[i].qs + 32 * sb, sgn), scv);
        }
        const float dw = fp16_to_f32(x[i].d) * 0.125f;
        ROWS_FOR(k) acc[k] = finish(acc[k], sumi[k], dw * ROW_Q8K(k)[i].d);
    }
    ROWS_FOR(k) s[(size_t)k * ss] = hsum_f32_8(acc[k]);
}
DEFINE_DOTS(dot_iq2_xs_avx2, iq2_xs_rows)

/* --- IQ2_S --------------------------------------------------------------- */

/* s = W[n] . x[n]; W IQ2_S, x Q8_K */
ALWAYS_INLINE void iq2_s_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                              const int na)
{
    const block_iq2_s *x = w;
    const int64_t nb = n / QK_K;
    const __m128i hsh = _mm_setr_epi32(0, 2, 4, 6);
    __m256 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *signs = x[i].qs + QK_K / 8;
        __m256i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm256_setzero_si256();
        for (int sb = 0; sb < 8; sb++) {
            /* 10-bit index: qs byte, 2 bits of qh[sb] at bit 2l */
            const __m128i lo = _mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)load_u32(x[i].qs + 4 * sb)));
            const __m128i hi = _mm_slli_epi32(
                _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32(x[i].qh[sb]), hsh), _mm_set1_epi32(3)), 8);
            const __m256i g = _mm256_i32gather_epi64((const long long *)quant_iq2s_grid, _mm_or_si128(lo, hi), 8);
            const __m256i sc = scale2(2 * (x[i].scales[sb] & 0x0f) + 1, 2 * (x[i].scales[sb] >> 4) + 1);
            const __m256i sgn = sign_bytes(load_u32(signs + 4 * sb));
            const __m256i scv = sc;
            ROWS_FOR(k) sumi[k] = step32(sumi[k], g, act_sign(ROW_Q8K(k)[i].qs + 32 * sb, sgn), scv);
        }
        const float dw = fp16_to_f32(x[i].d) * 0.125f;
        ROWS_FOR(k) acc[k] = finish(acc[k], sumi[k], dw * ROW_Q8K(k)[i].d);
    }
    ROWS_FOR(k) s[(size_t)k * ss] = hsum_f32_8(acc[k]);
}
DEFINE_DOTS(dot_iq2_s_avx2, iq2_s_rows)

/* --- IQ3_XXS ------------------------------------------------------------- */

/* s = W[n] . x[n]; W IQ3_XXS, x Q8_K */
ALWAYS_INLINE void iq3_xxs_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                                const int na)
{
    const block_iq3_xxs *x = w;
    const int64_t nb = n / QK_K;
    __m256 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        /* 64 index bytes, then one u32 per 32 weights: 4 x 7 sign bits + scale */
        const uint8_t *aux = x[i].qs + QK_K / 4;
        uint32_t signs[8];
        _mm256_storeu_si256((__m256i *)signs, ksigns_from_packed(_mm256_loadu_si256((const __m256i *)aux)));
        __m256i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm256_setzero_si256();
        for (int sb = 0; sb < 8; sb++) {
            const __m256i gi = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(x[i].qs + 8 * sb)));
            const __m256i g = _mm256_i32gather_epi32((const int *)quant_iq3xxs_grid, gi, 4);
            const int sc = (int)(2 * (load_u32(aux + 4 * sb) >> 28) + 1);
            const __m256i sgn = sign_bytes(signs[sb]);
            const __m256i scv = _mm256_set1_epi16((short)sc);
            ROWS_FOR(k) sumi[k] = step32(sumi[k], g, act_sign(ROW_Q8K(k)[i].qs + 32 * sb, sgn), scv);
        }
        const float dw = fp16_to_f32(x[i].d) * 0.25f;
        ROWS_FOR(k) acc[k] = finish(acc[k], sumi[k], dw * ROW_Q8K(k)[i].d);
    }
    ROWS_FOR(k) s[(size_t)k * ss] = hsum_f32_8(acc[k]);
}
DEFINE_DOTS(dot_iq3_xxs_avx2, iq3_xxs_rows)

/* --- IQ3_S --------------------------------------------------------------- */

/* s = W[n] . x[n]; W IQ3_S, x Q8_K */
ALWAYS_INLINE void iq3_s_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                              const int na)
{
    const block_iq3_s *x = w;
    const int64_t nb = n / QK_K;
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    __m256 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm256_setzero_si256();
        for (int sb = 0; sb < 8; sb++) {
            /* 9-bit index: qs byte, bit m of qh[sb] for the m-th index */
            const __m256i lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(x[i].qs + 8 * sb)));
            const __m256i hb = _mm256_and_si256(_mm256_set1_epi32(x[i].qh[sb]), bit);
            const __m256i hi = _mm256_and_si256(_mm256_cmpeq_epi32(hb, bit), _mm256_set1_epi32(256));
            const __m256i g = _mm256_i32gather_epi32((const int *)quant_iq3s_grid, _mm256_or_si256(lo, hi), 4);
            const int sc = 2 * ((x[i].scales[sb / 2] >> (4 * (sb % 2))) & 0x0f) + 1;
            const __m256i sgn = sign_bytes(load_u32(x[i].signs + 4 * sb));
            const __m256i scv = _mm256_set1_epi16((short)sc);
            ROWS_FOR(k) sumi[k] = step32(sumi[k], g, act_sign(ROW_Q8K(k)[i].qs + 32 * sb, sgn), scv);
        }
        const float dw = fp16_to_f32(x[i].d);
        ROWS_FOR(k) acc[k] = finish(acc[k], sumi[k], dw * ROW_Q8K(k)[i].d);
    }
    ROWS_FOR(k) s[(size_t)k * ss] = hsum_f32_8(acc[k]);
}
DEFINE_DOTS(dot_iq3_s_avx2, iq3_s_rows)

/* --- IQ1_S, IQ1_M -------------------------------------------------------- */

/* 4 IQ1 grid entries (32 values -1..1) -> 8 (g + 1): 0, 8, 16 */
static inline __m256i iq1_base(__m128i gi)
{
    const __m256i g = _mm256_i32gather_epi64((const long long *)quant_iq1s_grid, gi, 8);
    return _mm256_slli_epi16(_mm256_add_epi8(g, _mm256_set1_epi8(1)), 3);
}

/* s = W[n] . x[n]; W IQ1_S, x Q8_K (weights 8 g + delta + 9, 9 removed via bsums) */
ALWAYS_INLINE void iq1_s_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                              const int na)
{
    const block_iq1_s *x = w;
    const int64_t nb = n / QK_K;
    const __m128i hsh = _mm_setr_epi32(0, 3, 6, 9);
    __m256 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm256_setzero_si256();
        int32_t off[MULTI_G];
        ROWS_FOR(k) off[k] = 0;
        for (int sb = 0; sb < 8; sb++) {
            const unsigned qh = x[i].qh[sb];
            const int sc = (int)(2 * ((qh >> 12) & 7) + 1);
            const __m128i lo = _mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)load_u32(x[i].qs + 4 * sb)));
            const __m128i hb = _mm_srlv_epi32(_mm_set1_epi32((int)qh), hsh);
            const __m128i hi = _mm_slli_epi32(_mm_and_si128(hb, _mm_set1_epi32(7)), 8);
            const __m256i wv = _mm256_add_epi8(iq1_base(_mm_or_si128(lo, hi)), _mm256_set1_epi8(qh & 0x8000 ? 0 : 2));
            const __m256i scv = _mm256_set1_epi16((short)sc);
            ROWS_FOR(k) sumi[k] =
                step32(sumi[k], wv, _mm256_loadu_si256((const __m256i *)(ROW_Q8K(k)[i].qs + 32 * sb)), scv);
            ROWS_FOR(k) off[k] += sc * (ROW_Q8K(k)[i].bsums[2 * sb] + ROW_Q8K(k)[i].bsums[2 * sb + 1]);
        }
        ROWS_FOR(k) sumi[k] = _mm256_sub_epi32(sumi[k], _mm256_setr_epi32(9 * off[k], 0, 0, 0, 0, 0, 0, 0));
        const float dw = fp16_to_f32(x[i].d) * 0.125f;
        ROWS_FOR(k) acc[k] = finish(acc[k], sumi[k], dw * ROW_Q8K(k)[i].d);
    }
    ROWS_FOR(k) s[(size_t)k * ss] = hsum_f32_8(acc[k]);
}
DEFINE_DOTS(dot_iq1_s_avx2, iq1_s_rows)

/* s = W[n] . x[n]; W IQ1_M, x Q8_K */
ALWAYS_INLINE void iq1_m_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                              const int na)
{
    const block_iq1_m *x = w;
    const int64_t nb = n / QK_K;
    const __m128i hsh = _mm_setr_epi32(0, 4, 0, 4);
    const __m256i bcast_q = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 8, 8, 8, 8, 8, 8, 8, 8,
                                             0, 0, 0, 0, 0, 0, 0, 0, 8, 8, 8, 8, 8, 8, 8, 8);
    __m256 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = fp16_to_f32(quant_iq1m_scale(&x[i]));
        uint16_t sw[4];
        memcpy(sw, x[i].scales, sizeof(sw));
        __m256i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm256_setzero_si256();
        int32_t off[MULTI_G];
        ROWS_FOR(k) off[k] = 0;
        for (int sb = 0; sb < 8; sb++) {
            /* qh bytes 2sb, 2sb + 1: low / high nibble per group of 8: 3 index bits, delta sign */
            const unsigned h0 = x[i].qh[2 * sb], h1 = x[i].qh[2 * sb + 1];
            const __m128i lo = _mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)load_u32(x[i].qs + 4 * sb)));
            const __m128i nib = _mm_srlv_epi32(_mm_setr_epi32((int)h0, (int)h0, (int)h1, (int)h1), hsh);
            const __m128i hi = _mm_slli_epi32(_mm_and_si128(nib, _mm_set1_epi32(7)), 8);
            /* +2 for the groups whose delta is +1 (nibble bit 3 clear), spread over the group's 8 bytes */
            const __m128i d2 =
                _mm_xor_si128(_mm_srli_epi32(_mm_and_si128(nib, _mm_set1_epi32(8)), 2), _mm_set1_epi32(2));
            const __m256i dv = _mm256_shuffle_epi8(_mm256_cvtepu32_epi64(d2), bcast_q);
            const __m256i wv = _mm256_add_epi8(iq1_base(_mm_or_si128(lo, hi)), dv);
            const unsigned sv = (unsigned)sw[sb / 2] >> (6 * (sb % 2));
            const int sc0 = (int)(2 * (sv & 7) + 1), sc1 = (int)(2 * ((sv >> 3) & 7) + 1);
            const __m256i scv = scale2(sc0, sc1);
            ROWS_FOR(k) sumi[k] =
                step32(sumi[k], wv, _mm256_loadu_si256((const __m256i *)(ROW_Q8K(k)[i].qs + 32 * sb)), scv);
            ROWS_FOR(k) off[k] += sc0 * ROW_Q8K(k)[i].bsums[2 * sb] + sc1 * ROW_Q8K(k)[i].bsums[2 * sb + 1];
        }
        ROWS_FOR(k) sumi[k] = _mm256_sub_epi32(sumi[k], _mm256_setr_epi32(9 * off[k], 0, 0, 0, 0, 0, 0, 0));
        const float dw = d * 0.125f;
        ROWS_FOR(k) acc[k] = finish(acc[k], sumi[k], dw * ROW_Q8K(k)[i].d);
    }
    ROWS_FOR(k) s[(size_t)k * ss] = hsum_f32_8(acc[k]);
}
DEFINE_DOTS(dot_iq1_m_avx2, iq1_m_rows)

/* --- TQ2_0 --------------------------------------------------------------- */

/* s = W[n] . x[n]; W TQ2_0, x Q8_K (weights q in 0..2, minus the bsums) */
ALWAYS_INLINE void tq2_0_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                              const int na)
{
    const block_tq2_0 *x = w;
    const int64_t nb = n / QK_K;
    const __m256i m3 = _mm256_set1_epi8(3), one16 = _mm256_set1_epi16(1);
    __m256 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            for (int l = 0; l < 4; l++) {
                const __m256i wv = _mm256_and_si256(_mm256_srli_epi16(q, 2 * l), m3);
                ROWS_FOR(k) sumi[k] = step32(
                    sumi[k], wv, _mm256_loadu_si256((const __m256i *)(ROW_Q8K(k)[i].qs + 128 * h + 32 * l)), one16);
            }
        }
        const float dw = fp16_to_f32(x[i].d);
        ROWS_FOR(k) {
            const __m256i bs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)ROW_Q8K(k)[i].bsums), one16);
            acc[k] = finish(acc[k], _mm256_sub_epi32(sumi[k], bs), dw * ROW_Q8K(k)[i].d);
        }
    }
    ROWS_FOR(k) s[(size_t)k * ss] = hsum_f32_8(acc[k]);
}
DEFINE_DOTS(dot_tq2_0_avx2, tq2_0_rows)

/* --- TQ1_0 --------------------------------------------------------------- */

/* s = W[n] . x[n]; W TQ1_0, x Q8_K (weights: base-3 digit in 0..2, minus the bsums) */
ALWAYS_INLINE void tq1_0_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                              const int na)
{
    const block_tq1_0 *x = w;
    const int64_t nb = n / QK_K;
    const __m256i one16 = _mm256_set1_epi16(1);
    __m256 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i t[8];
        tq1_decode(&x[i], t);
        __m256i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm256_setzero_si256();
        for (int c = 0; c < 8; c++)
            ROWS_FOR(k) sumi[k] =
                step32(sumi[k], t[c], _mm256_loadu_si256((const __m256i *)(ROW_Q8K(k)[i].qs + 32 * c)), one16);
        const float dw = fp16_to_f32(x[i].d);
        ROWS_FOR(k) {
            const __m256i bs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)ROW_Q8K(k)[i].bsums), one16);
            acc[k] = finish(acc[k], _mm256_sub_epi32(sumi[k], bs), dw * ROW_Q8K(k)[i].d);
        }
    }
    ROWS_FOR(k) s[(size_t)k * ss] = hsum_f32_8(acc[k]);
}
DEFINE_DOTS(dot_tq1_0_avx2, tq1_0_rows)

/* --- Q4_1, Q5_1 (Q8_0 activations) ---------------------------------------- */

/* 16 nibble bytes -> 32 weights in element order (low nibbles first) */
static inline __m256i nibbles_32(const uint8_t *qs)
{
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0f));
}

/* d * sum(q * a) + m * sum(a) per block; wq(i) the 32 unsigned weights */
#define DOT_MIN_BODY(T, wq)                                                                                   \
    do {                                                                                                      \
        const T *x = w;                                                                                       \
        const block_q8_0 *y = a;                                                                              \
        const int64_t nb = n / 32;                                                                            \
        const __m256i ones = _mm256_set1_epi8(1), one16 = _mm256_set1_epi16(1);                               \
        __m256 acc = _mm256_setzero_ps();                                                                     \
        for (int64_t i = 0; i < nb; i++) {                                                                    \
            const __m256i av = _mm256_loadu_si256((const __m256i *)y[i].qs);                                  \
            const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(wq(i), av), one16);                      \
            const __m256i sa = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, av), one16);                      \
            const float da = fp16_to_f32(y[i].d);                                                             \
            acc = _mm256_fmadd_ps(_mm256_set1_ps(fp16_to_f32(x[i].d) * da), _mm256_cvtepi32_ps(p), acc);      \
            acc = _mm256_fmadd_ps(_mm256_set1_ps(fp16_to_f32(x[i].m) * da), _mm256_cvtepi32_ps(sa), acc);     \
        }                                                                                                     \
        *s = hsum_f32_8(acc);                                                                                 \
    } while (0)

/* s = W[n] . x[n]; W Q4_1, x Q8_0 */
static void dot_q4_1_avx2(int64_t n, float *s, const void *w, const void *a)
{
#define WQ(b) nibbles_32(x[b].qs)
    DOT_MIN_BODY(block_q4_1, WQ);
#undef WQ
}

/* Q5_1 weights: nibble + 16 where the block's qh bit is set */
static inline __m256i q5_1_bytes(const block_q5_1 *b)
{
    return _mm256_or_si256(nibbles_32(b->qs), _mm256_and_si256(mask_bytes(load_u32(b->qh)), _mm256_set1_epi8(16)));
}

/* s = W[n] . x[n]; W Q5_1, x Q8_0 */
static void dot_q5_1_avx2(int64_t n, float *s, const void *w, const void *a)
{
#define WQ(b) q5_1_bytes(&x[b])
    DOT_MIN_BODY(block_q5_1, WQ);
#undef WQ
}

#undef DOT_MIN_BODY

void quant_install_iq_avx2(struct quant_traits *traits)
{
#define SET(t, fn, multi)                \
    do {                                 \
        traits[t].vec_dot = fn;          \
        traits[t].vec_dot_multi = multi; \
    } while (0)
    SET(QT_Q4_1, dot_q4_1_avx2, NULL);
    SET(QT_Q5_1, dot_q5_1_avx2, NULL);
    SET(QT_IQ2_XXS, dot_iq2_xxs_avx2, dot_iq2_xxs_avx2_multi);
    SET(QT_IQ2_XS, dot_iq2_xs_avx2, dot_iq2_xs_avx2_multi);
    SET(QT_IQ2_S, dot_iq2_s_avx2, dot_iq2_s_avx2_multi);
    SET(QT_IQ3_XXS, dot_iq3_xxs_avx2, dot_iq3_xxs_avx2_multi);
    SET(QT_IQ3_S, dot_iq3_s_avx2, dot_iq3_s_avx2_multi);
    SET(QT_IQ1_S, dot_iq1_s_avx2, dot_iq1_s_avx2_multi);
    SET(QT_IQ1_M, dot_iq1_m_avx2, dot_iq1_m_avx2_multi);
    SET(QT_TQ1_0, dot_tq1_0_avx2, dot_tq1_0_avx2_multi);
    SET(QT_TQ2_0, dot_tq2_0_avx2, dot_tq2_0_avx2_multi);
#undef SET
}
