/*
 * quant_iq_avx512.c - AVX-512 (F/BW/VL/DQ/VNNI) dot products of one weight
 * row with one activation row for the codebook formats (IQ2_XXS, IQ2_XS,
 * IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M) and the ternary TQ1_0/TQ2_0, which
 * quant_avx512.c does not cover. (Q4_1/Q5_1 keep their AVX2 kernels from quant_iq_avx2.c:
 * a 512-bit version measured slower, its per-block scalar scale work
 * dominating.)
 *
 * Owns: quant_install_iq_avx512(), called by quant.c after
 * quant_install_avx512(); it replaces traits[t].vec_dot of these formats
 * and their vec_dot_multi (multi-row kernels, bit-identical to vec_dot).
 * Must not: allocate, touch vec_dot_ref, or run on a CPU without the
 * Makefile's ISA_AVX512 features (quant.c checks first).
 *
 * Technique, per 64 weights (two 32-element sub-blocks): the codebook
 * entries of the 8 (or 16) indices are fetched with one gather into a
 * vector of unsigned magnitudes; the format's sign bits, which are exactly
 * one bit per weight in element order once expanded, become a 64-bit mask
 * that negates the matching activations (mask_sub); maddubs multiplies
 * magnitudes by activations into int16 pairs (|pair| <= 2 * 62 * 127, no
 * saturation) and dpwssd adds them weighted by the int16 sub-block scale.
 * The integer sum of a super-block is exact, so the float result differs
 * from the reference only in the order of the per-super-block float adds.
 * IQ1_S/IQ1_M store 8 * grid + delta + 9 (0..18) and remove the 9 with the
 * Q8_K bsums; TQ1_0/TQ2_0 store the digit q (0..2) and remove the 1 the
 * same way (TQ1_0's base-3 digits come from 16-bit multiplies, see
 * quant_iq_simd.h).
 *
 * Measured (moestream-kbench --mb 1 --cpu-time, 2-pass activations, one
 * thread, median of 3 runs, Intel Xeon (Emerald Rapids) 2-vCPU VM; GB/s of
 * weights, AVX2 kernel in brackets, Q4_K 9.9 for scale): IQ2_XXS 3.4 (2.0),
 * IQ2_XS 4.1 (2.0), IQ2_S 3.9 (2.4), IQ3_XXS 4.5 (2.9), IQ3_S 6.1 (3.7),
 * IQ1_S 2.5 (1.5), IQ1_M 2.6 (1.1), TQ2_0 9.1 (5.1). Per weight that is
 * 73-80% of Q4_K's rate: the GB/s are lower mostly because these formats
 * spend 1.6-3.4 bits per weight against Q4_K's 4.5. The gathers (8 or 16
 * table loads per 64 weights) bound them; vec_dot_multi over 8 rows runs
 * 3-4x faster per row than vec_dot.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "quant_grids.h"
#include "quant_iq_ref.h"
#include "quant_iq_simd.h"
#include "quant_ref.h"

void quant_install_iq_avx512(struct quant_traits *traits);

/* --- helpers ------------------------------------------------------------ */

static inline float fp16_to_f32(qhalf h)
{
    return _cvtsh_ss(h);
}

/* 64 activations with the ones where 'neg' is set negated (|a| <= 127) */
static inline __m512i act_signed(const int8_t *act, __mmask64 neg)
{
    const __m512i a = _mm512_loadu_si512(act);
    return _mm512_mask_sub_epi8(a, neg, _mm512_setzero_si512(), a);
}

/* sumi += sc . pairs(w * a): w unsigned magnitudes, a signed, sc int16 per pair */
static inline __m512i step64(__m512i sumi, __m512i w, __m512i a, __m512i sc)
{
    return _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(w, a), sc);
}

/* vpermw index for 64 elements starting at sub-block 'first' of a list of
 * per-'len'-element scales: int16 lane l covers elements 2l, 2l + 1 */
static inline __m512i scale_index(int first, int len)
{
    int16_t idx[32];
    for (int l = 0; l < 32; l++)
        idx[l] = (int16_t)(first + 2 * l / len);
    return _mm512_loadu_si512(idx);
}

/* int16 lanes x -> 2x + 1 */
static inline __m256i odd_scales(__m256i x)
{
    return _mm256_or_si256(_mm256_slli_epi16(x, 1), _mm256_set1_epi16(1));
}

/* bytes holding a 7-bit value each -> bit 7 set to their parity */
static inline __m512i with_parity(__m512i y)
{
    __m512i p = _mm512_xor_si512(y, _mm512_srli_epi16(y, 4));
    p = _mm512_xor_si512(p, _mm512_srli_epi16(p, 2));
    p = _mm512_xor_si512(p, _mm512_srli_epi16(p, 1));
    return _mm512_or_si512(y, _mm512_slli_epi16(_mm512_and_si512(p, _mm512_set1_epi8(1)), 7));
}

/* qword j of v: the sign bits of the 64 weights of block pair j */
static inline uint64_t qword(__m256i v, int j)
{
    switch (j) {
    case 0: return (uint64_t)_mm256_extract_epi64(v, 0);
    case 1: return (uint64_t)_mm256_extract_epi64(v, 1);
    case 2: return (uint64_t)_mm256_extract_epi64(v, 2);
    default: return (uint64_t)_mm256_extract_epi64(v, 3);
    }
}

static inline uint64_t load_u64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* the super-block's float step times the activation's, into acc */
static inline __m512 finish(__m512 acc, __m512i sumi, float d)
{
    return _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
}

/* --- several activation rows per pass over the weights ------------------- */

/*
 * A *_rows() body computes s[k * ss] = dot(w, a + k * as) for k < na (na a
 * compile-time constant once inlined): the codebook lookups, signs and
 * scales of a super-block are decoded once, then every activation row runs
 * exactly the single-row steps on them. vec_dot is the na = 1 instance of
 * the same body, so vec_dot_multi equals vec_dot row by row, bit for bit.
 * Eight rows keep their two accumulators each in registers.
 */
#define MULTI_G 8
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define ROWS_FOR(k) _Pragma("GCC unroll 8") for (int k = 0; k < na; k++)
#define ROW_Q8K(k) ((const block_q8_K *)(a + (size_t)(k) * as))

/* dot = rows with na = 1; dot_multi: groups of MULTI_G rows, then 4 + 2 + 1 */
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
        if (n_act - k >= 4) {                                                                        \
            rows(n, s + (size_t)k * ss, ss, w, ap + (size_t)k * as, as, 4);                          \
            k += 4;                                                                                  \
        }                                                                                            \
        if (n_act - k >= 2) {                                                                        \
            rows(n, s + (size_t)k * ss, ss, w, ap + (size_t)k * as, as, 2);                          \
            k += 2;                                                                                  \
        }                                                                                            \
        if (n_act - k >= 1)                                                                          \
            rows(n, s + (size_t)k * ss, ss, w, ap + (size_t)k * as, as, 1);                          \
    }
static_assert(MULTI_G == 8, "DEFINE_DOTS handles a remainder of at most 7 rows");

/* --- IQ2_XXS ------------------------------------------------------------- */

/* s = W[n] . x[n]; W IQ2_XXS, x Q8_K */
ALWAYS_INLINE void iq2_xxs_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                                const int na)
{
    const block_iq2_xxs *x = w;
    const int64_t nb = n / QK_K;
    const __m512i sidx[4] = { scale_index(0, 32), scale_index(2, 32), scale_index(4, 32), scale_index(6, 32) };
    __m512 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        /* 8 qwords, one per 32 weights: 4 index bytes, then signs + scale */
        const __m512i raw = _mm512_loadu_si512(x[i].qs);
        const __m256i aux1 = _mm512_cvtepi64_epi32(_mm512_srli_epi64(raw, 32));
        const __m256i idx8 = _mm512_cvtepi64_epi32(raw); /* 32 index bytes in order */
        const __m256i signs = ksigns_from_packed(aux1);
        const __m512i sc = _mm512_zextsi256_si512(
            odd_scales(_mm256_zextsi128_si256(_mm256_cvtepi32_epi16(_mm256_srli_epi32(aux1, 28)))));
        __m512i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m128i ib = j < 2 ? _mm256_castsi256_si128(idx8) : _mm256_extracti128_si256(idx8, 1);
            const __m256i gi = _mm256_cvtepu8_epi32(j % 2 ? _mm_srli_si128(ib, 8) : ib);
            const __m512i g = _mm512_i32gather_epi64(gi, (const long long *)quant_iq2xxs_grid, 8);
            const __mmask64 neg = (__mmask64)qword(signs, j);
            const __m512i scj = _mm512_permutexvar_epi16(sidx[j], sc);
            ROWS_FOR(k) sumi[k] = step64(sumi[k], g, act_signed(ROW_Q8K(k)[i].qs + 64 * j, neg), scj);
        }
        const float dw = fp16_to_f32(x[i].d) * 0.125f;
        ROWS_FOR(k) acc[k] = finish(acc[k], sumi[k], dw * ROW_Q8K(k)[i].d);
    }
    ROWS_FOR(k) s[(size_t)k * ss] = _mm512_reduce_add_ps(acc[k]);
}
DEFINE_DOTS(dot_iq2_xxs_avx512, iq2_xxs_rows)

/* --- IQ2_XS -------------------------------------------------------------- */

/* scales[8] (two nibbles per 32 weights) -> 16 int16 scales 2s + 1, one per 16 */
static inline __m256i nibble_scales16(const uint8_t *scales)
{
    const __m128i v = _mm_loadl_epi64((const __m128i *)scales);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    const __m128i nib = _mm_unpacklo_epi8(_mm_and_si128(v, m4), _mm_and_si128(_mm_srli_epi16(v, 4), m4));
    return odd_scales(_mm256_cvtepu8_epi16(nib));
}

/* s = W[n] . x[n]; W IQ2_XS, x Q8_K */
ALWAYS_INLINE void iq2_xs_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                               const int na)
{
    const block_iq2_xs *x = w;
    const int64_t nb = n / QK_K;
    const __m512i sidx[4] = { scale_index(0, 16), scale_index(4, 16), scale_index(8, 16), scale_index(12, 16) };
    __m512 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        /* 32 u16: 9-bit grid index, 7-bit sign index */
        const __m512i raw = _mm512_loadu_si512(x[i].qs);
        const __m256i signs = _mm512_cvtepi16_epi8(with_parity(_mm512_srli_epi16(raw, 9)));
        const __m512i sc = _mm512_zextsi256_si512(nibble_scales16(x[i].scales));
        __m512i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            /* 8 grid indices: the low 9 bits of 8 u16, read again from memory (a load, not a shuffle) */
            const __m128i q16 = _mm_loadu_si128((const __m128i *)(x[i].qs + 8 * j));
            const __m256i gi = _mm256_and_si256(_mm256_cvtepu16_epi32(q16), _mm256_set1_epi32(511));
            const __m512i g = _mm512_i32gather_epi64(gi, (const long long *)quant_iq2xs_grid, 8);
            const __mmask64 neg = (__mmask64)qword(signs, j);
            const __m512i scj = _mm512_permutexvar_epi16(sidx[j], sc);
            ROWS_FOR(k) sumi[k] = step64(sumi[k], g, act_signed(ROW_Q8K(k)[i].qs + 64 * j, neg), scj);
        }
        const float dw = fp16_to_f32(x[i].d) * 0.125f;
        ROWS_FOR(k) acc[k] = finish(acc[k], sumi[k], dw * ROW_Q8K(k)[i].d);
    }
    ROWS_FOR(k) s[(size_t)k * ss] = _mm512_reduce_add_ps(acc[k]);
}
DEFINE_DOTS(dot_iq2_xs_avx512, iq2_xs_rows)

/* --- IQ2_S --------------------------------------------------------------- */

/* s = W[n] . x[n]; W IQ2_S, x Q8_K */
ALWAYS_INLINE void iq2_s_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                              const int na)
{
    const block_iq2_s *x = w;
    const int64_t nb = n / QK_K;
    const __m512i sidx[4] = { scale_index(0, 16), scale_index(4, 16), scale_index(8, 16), scale_index(12, 16) };
    /* group k of a pair takes qh byte k / 4 (of two), bits 2 (k % 4) */
    const __m256i hsel = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    const __m256i hsh = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    __m512 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *signs = x[i].qs + QK_K / 8;
        const __m512i sc = _mm512_zextsi256_si512(nibble_scales16(x[i].scales));
        __m512i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m256i lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(x[i].qs + 8 * j)));
            const __m256i qh = _mm256_permutevar8x32_epi32(
                _mm256_cvtepu8_epi32(_mm_cvtsi32_si128(x[i].qh[2 * j] | x[i].qh[2 * j + 1] << 8)), hsel);
            const __m256i hi = _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(qh, hsh), _mm256_set1_epi32(3)), 8);
            const __m512i g = _mm512_i32gather_epi64(_mm256_or_si256(lo, hi), (const long long *)quant_iq2s_grid, 8);
            const __mmask64 neg = (__mmask64)load_u64(signs + 8 * j);
            const __m512i scj = _mm512_permutexvar_epi16(sidx[j], sc);
            ROWS_FOR(k) sumi[k] = step64(sumi[k], g, act_signed(ROW_Q8K(k)[i].qs + 64 * j, neg), scj);
        }
        const float dw = fp16_to_f32(x[i].d) * 0.125f;
        ROWS_FOR(k) acc[k] = finish(acc[k], sumi[k], dw * ROW_Q8K(k)[i].d);
    }
    ROWS_FOR(k) s[(size_t)k * ss] = _mm512_reduce_add_ps(acc[k]);
}
DEFINE_DOTS(dot_iq2_s_avx512, iq2_s_rows)

/* --- IQ3_XXS ------------------------------------------------------------- */

/* s = W[n] . x[n]; W IQ3_XXS, x Q8_K */
ALWAYS_INLINE void iq3_xxs_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                                const int na)
{
    const block_iq3_xxs *x = w;
    const int64_t nb = n / QK_K;
    const __m512i sidx[4] = { scale_index(0, 32), scale_index(2, 32), scale_index(4, 32), scale_index(6, 32) };
    __m512 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        /* 64 index bytes, then one u32 per 32 weights: 4 x 7 sign bits + scale */
        const __m256i aux = _mm256_loadu_si256((const __m256i *)(x[i].qs + QK_K / 4));
        const __m256i signs = ksigns_from_packed(aux);
        const __m512i sc = _mm512_zextsi256_si512(
            odd_scales(_mm256_zextsi128_si256(_mm256_cvtepi32_epi16(_mm256_srli_epi32(aux, 28)))));
        __m512i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m512i gi = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(x[i].qs + 16 * j)));
            const __m512i g = _mm512_i32gather_epi32(gi, (const int *)quant_iq3xxs_grid, 4);
            const __mmask64 neg = (__mmask64)qword(signs, j);
            const __m512i scj = _mm512_permutexvar_epi16(sidx[j], sc);
            ROWS_FOR(k) sumi[k] = step64(sumi[k], g, act_signed(ROW_Q8K(k)[i].qs + 64 * j, neg), scj);
        }
        const float dw = fp16_to_f32(x[i].d) * 0.25f;
        ROWS_FOR(k) acc[k] = finish(acc[k], sumi[k], dw * ROW_Q8K(k)[i].d);
    }
    ROWS_FOR(k) s[(size_t)k * ss] = _mm512_reduce_add_ps(acc[k]);
}
DEFINE_DOTS(dot_iq3_xxs_avx512, iq3_xxs_rows)

/* --- IQ3_S --------------------------------------------------------------- */

/* s = W[n] . x[n]; W IQ3_S, x Q8_K */
ALWAYS_INLINE void iq3_s_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                              const int na)
{
    const block_iq3_s *x = w;
    const int64_t nb = n / QK_K;
    const __m512i sidx[4] = { scale_index(0, 32), scale_index(2, 32), scale_index(4, 32), scale_index(6, 32) };
    __m512 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        uint32_t sc4;
        memcpy(&sc4, x[i].scales, sizeof(sc4));
        const __m128i sv = _mm_cvtsi32_si128((int)sc4);
        const __m128i nib = _mm_unpacklo_epi8(_mm_and_si128(sv, _mm_set1_epi8(0x0f)),
                                              _mm_and_si128(_mm_srli_epi16(sv, 4), _mm_set1_epi8(0x0f)));
        const __m512i sc = _mm512_zextsi256_si512(odd_scales(_mm256_cvtepu8_epi16(nib)));
        __m512i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            /* 16 indices: 8 bits in qs, the 9th is bit k of qh[2j] (k < 8) / qh[2j + 1] */
            const __m512i lo = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(x[i].qs + 16 * j)));
            const __mmask16 h = (__mmask16)(x[i].qh[2 * j] | x[i].qh[2 * j + 1] << 8);
            const __m512i gi = _mm512_mask_or_epi32(lo, h, lo, _mm512_set1_epi32(256));
            const __m512i g = _mm512_i32gather_epi32(gi, (const int *)quant_iq3s_grid, 4);
            const __mmask64 neg = (__mmask64)load_u64(x[i].signs + 8 * j);
            const __m512i scj = _mm512_permutexvar_epi16(sidx[j], sc);
            ROWS_FOR(k) sumi[k] = step64(sumi[k], g, act_signed(ROW_Q8K(k)[i].qs + 64 * j, neg), scj);
        }
        const float dw = fp16_to_f32(x[i].d);
        ROWS_FOR(k) acc[k] = finish(acc[k], sumi[k], dw * ROW_Q8K(k)[i].d);
    }
    ROWS_FOR(k) s[(size_t)k * ss] = _mm512_reduce_add_ps(acc[k]);
}
DEFINE_DOTS(dot_iq3_s_avx512, iq3_s_rows)

/* --- IQ1_S, IQ1_M -------------------------------------------------------- */

/* 8 IQ1 grid entries (64 signed values -1..1) -> 8 (g + 1): 0, 8, 16 */
static inline __m512i iq1_base(__m256i gi)
{
    const __m512i g = _mm512_i32gather_epi64(gi, (const long long *)quant_iq1s_grid, 8);
    return _mm512_slli_epi16(_mm512_add_epi8(g, _mm512_set1_epi8(1)), 3);
}

/* sumi -= 9 * sum_k sc[k] * bsums[k]: removes the +9 offset of IQ1 weights */
static inline __m512i iq1_offset(__m512i sumi, __m256i sc16, const int16_t *bsums)
{
    const __m256i m = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)bsums));
    return _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(_mm256_mullo_epi32(m, _mm256_set1_epi32(9))));
}

/* s = W[n] . x[n]; W IQ1_S, x Q8_K */
ALWAYS_INLINE void iq1_s_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                              const int na)
{
    const block_iq1_s *x = w;
    const int64_t nb = n / QK_K;
    const __m512i sidx[4] = { scale_index(0, 16), scale_index(4, 16), scale_index(8, 16), scale_index(12, 16) };
    const __m256i hsh = _mm256_setr_epi32(0, 3, 6, 9, 0, 3, 6, 9);
    const __m256i sel16 = _mm256_setr_epi16(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    __m512 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        /* qh[s]: 4 x 3 high index bits, scale at bit 12, delta sign at 15 */
        const __m128i qh = _mm_loadu_si128((const __m128i *)x[i].qh);
        const __m256i qhd = _mm256_cvtepu16_epi32(qh);
        const __m256i sc16 = odd_scales(
            _mm256_permutexvar_epi16(sel16, _mm256_zextsi128_si256(_mm_and_si128(_mm_srli_epi16(qh, 12),
                                                                                  _mm_set1_epi16(7)))));
        const __m512i sc = _mm512_zextsi256_si512(sc16);
        __m512i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m256i lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(x[i].qs + 8 * j)));
            const __m256i hs = _mm256_permutevar8x32_epi32(qhd, _mm256_setr_epi32(2 * j, 2 * j, 2 * j, 2 * j, 2 * j + 1,
                                                                                   2 * j + 1, 2 * j + 1, 2 * j + 1));
            const __m256i hi = _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(hs, hsh), _mm256_set1_epi32(7)), 8);
            /* weights 8 (g + 1) + 1 + delta: +2 per group of 8 (one qword) where
             * delta is +1 (qh bit 15 clear); bytes <= 18, so qword adds do not carry */
            const __mmask8 plus = _mm256_testn_epi32_mask(hs, _mm256_set1_epi32(0x8000));
            const __m512i base = iq1_base(_mm256_or_si256(lo, hi));
            const __m512i wv = _mm512_mask_add_epi64(base, plus, base, _mm512_set1_epi8(2));
            const __m512i scj = _mm512_permutexvar_epi16(sidx[j], sc);
            ROWS_FOR(k) sumi[k] = step64(sumi[k], wv, _mm512_loadu_si512(ROW_Q8K(k)[i].qs + 64 * j), scj);
        }
        ROWS_FOR(k) sumi[k] = iq1_offset(sumi[k], sc16, ROW_Q8K(k)[i].bsums);
        const float dw = fp16_to_f32(x[i].d) * 0.125f;
        ROWS_FOR(k) acc[k] = finish(acc[k], sumi[k], dw * ROW_Q8K(k)[i].d);
    }
    ROWS_FOR(k) s[(size_t)k * ss] = _mm512_reduce_add_ps(acc[k]);
}
DEFINE_DOTS(dot_iq1_s_avx512, iq1_s_rows)

/* s = W[n] . x[n]; W IQ1_M, x Q8_K */
ALWAYS_INLINE void iq1_m_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                              const int na)
{
    const block_iq1_m *x = w;
    const int64_t nb = n / QK_K;
    const __m512i sidx[4] = { scale_index(0, 16), scale_index(4, 16), scale_index(8, 16), scale_index(12, 16) };
    const __m256i sel16 = _mm256_setr_epi16(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const __m256i sh16 = _mm256_setr_epi16(0, 3, 6, 9, 0, 3, 6, 9, 0, 3, 6, 9, 0, 3, 6, 9);
    const __m256i hsel = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    const __m256i hsh = _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4);
    __m512 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = fp16_to_f32(quant_iq1m_scale(&x[i]));
        /* 16 3-bit scales, scale k at bit 3 (k % 4) of 16-bit word k / 4 */
        const __m256i sw = _mm256_zextsi128_si256(_mm_loadl_epi64((const __m128i *)x[i].scales));
        const __m256i sc16 = odd_scales(
            _mm256_and_si256(_mm256_srlv_epi16(_mm256_permutexvar_epi16(sel16, sw), sh16), _mm256_set1_epi16(7)));
        const __m512i sc = _mm512_zextsi256_si512(sc16);
        __m512i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m256i lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(x[i].qs + 8 * j)));
            uint32_t qh4;
            memcpy(&qh4, x[i].qh + 4 * j, sizeof(qh4));
            const __m256i hq = _mm256_permutevar8x32_epi32(_mm256_cvtepu8_epi32(_mm_cvtsi32_si128((int)qh4)), hsel);
            /* per group of 8: its qh nibble, 3 index bits then the delta sign */
            const __m256i nib = _mm256_srlv_epi32(hq, hsh);
            const __m256i hi = _mm256_slli_epi32(_mm256_and_si256(nib, _mm256_set1_epi32(7)), 8);
            const __mmask8 plus = _mm256_testn_epi32_mask(nib, _mm256_set1_epi32(8));
            const __m512i base = iq1_base(_mm256_or_si256(lo, hi));
            const __m512i wv = _mm512_mask_add_epi64(base, plus, base, _mm512_set1_epi8(2));
            const __m512i scj = _mm512_permutexvar_epi16(sidx[j], sc);
            ROWS_FOR(k) sumi[k] = step64(sumi[k], wv, _mm512_loadu_si512(ROW_Q8K(k)[i].qs + 64 * j), scj);
        }
        ROWS_FOR(k) sumi[k] = iq1_offset(sumi[k], sc16, ROW_Q8K(k)[i].bsums);
        const float dw = d * 0.125f;
        ROWS_FOR(k) acc[k] = finish(acc[k], sumi[k], dw * ROW_Q8K(k)[i].d);
    }
    ROWS_FOR(k) s[(size_t)k * ss] = _mm512_reduce_add_ps(acc[k]);
}
DEFINE_DOTS(dot_iq1_m_avx512, iq1_m_rows)

/* --- TQ2_0 --------------------------------------------------------------- */

/* s = W[n] . x[n]; W TQ2_0, x Q8_K (weights q in 0..2, minus the bsums) */
ALWAYS_INLINE void tq2_0_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                              const int na)
{
    const block_tq2_0 *x = w;
    const int64_t nb = n / QK_K;
    const __m512i m3 = _mm512_set1_epi8(3);
    __m512 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m512i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            /* 128 weights: bit pairs 0..3 of 32 bytes, 32 weights per pair */
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            const __m512i w01 = _mm512_and_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 2), 1), m3);
            const __m512i w23 = _mm512_and_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_srli_epi16(q, 4)), _mm256_srli_epi16(q, 6), 1), m3);
            ROWS_FOR(k) {
                const int8_t *act = ROW_Q8K(k)[i].qs + 128 * h;
                sumi[k] = _mm512_dpbusd_epi32(sumi[k], w01, _mm512_loadu_si512(act));
                sumi[k] = _mm512_dpbusd_epi32(sumi[k], w23, _mm512_loadu_si512(act + 64));
            }
        }
        ROWS_FOR(k) {
            const __m256i bs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)ROW_Q8K(k)[i].bsums),
                                                 _mm256_set1_epi16(1));
            sumi[k] = _mm512_sub_epi32(sumi[k], _mm512_zextsi256_si512(bs));
        }
        const float dw = fp16_to_f32(x[i].d);
        ROWS_FOR(k) acc[k] = finish(acc[k], sumi[k], dw * ROW_Q8K(k)[i].d);
    }
    ROWS_FOR(k) s[(size_t)k * ss] = _mm512_reduce_add_ps(acc[k]);
}
DEFINE_DOTS(dot_tq2_0_avx512, tq2_0_rows)

/* --- TQ1_0 --------------------------------------------------------------- */

/* s = W[n] . x[n]; W TQ1_0, x Q8_K (weights: base-3 digit in 0..2, minus the bsums) */
ALWAYS_INLINE void tq1_0_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                              const int na)
{
    const block_tq1_0 *x = w;
    const int64_t nb = n / QK_K;
    __m512 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i t[8];
        tq1_decode(&x[i], t);
        __m256i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++)
            ROWS_FOR(k) sumi[k] = _mm256_dpbusd_epi32(
                sumi[k], t[c], _mm256_loadu_si256((const __m256i *)(ROW_Q8K(k)[i].qs + 32 * c)));
        const float dw = fp16_to_f32(x[i].d);
        ROWS_FOR(k) {
            const __m256i bs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)ROW_Q8K(k)[i].bsums),
                                                 _mm256_set1_epi16(1));
            acc[k] = finish(acc[k], _mm512_zextsi256_si512(_mm256_sub_epi32(sumi[k], bs)), dw * ROW_Q8K(k)[i].d);
        }
    }
    ROWS_FOR(k) s[(size_t)k * ss] = _mm512_reduce_add_ps(acc[k]);
}
DEFINE_DOTS(dot_tq1_0_avx512, tq1_0_rows)

void quant_install_iq_avx512(struct quant_traits *traits)
{
#define SET(t, fn, multi)                \
    do {                                 \
        traits[t].vec_dot = fn;          \
        traits[t].vec_dot_multi = multi; \
    } while (0)
    SET(QT_IQ2_XXS, dot_iq2_xxs_avx512, dot_iq2_xxs_avx512_multi);
    SET(QT_IQ2_XS, dot_iq2_xs_avx512, dot_iq2_xs_avx512_multi);
    SET(QT_IQ2_S, dot_iq2_s_avx512, dot_iq2_s_avx512_multi);
    SET(QT_IQ3_XXS, dot_iq3_xxs_avx512, dot_iq3_xxs_avx512_multi);
    SET(QT_IQ3_S, dot_iq3_s_avx512, dot_iq3_s_avx512_multi);
    SET(QT_IQ1_S, dot_iq1_s_avx512, dot_iq1_s_avx512_multi);
    SET(QT_IQ1_M, dot_iq1_m_avx512, dot_iq1_m_avx512_multi);
    SET(QT_TQ1_0, dot_tq1_0_avx512, dot_tq1_0_avx512_multi);
    SET(QT_TQ2_0, dot_tq2_0_avx512, dot_tq2_0_avx512_multi);
#undef SET
}
