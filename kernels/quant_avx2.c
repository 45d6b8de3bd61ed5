/*
 * quant_avx2.c - AVX2/FMA/F16C dot products of one weight row with one
 * activation row, one per weight format (the fast paths beside the scalar
 * references in quant_ref.c), and for Q8_0, Q4_K, Q6_K and the 16-entry
 * table formats (Q4_0, IQ4_NL, MXFP4) with several activation rows at once.
 *
 * Owns: quant_install_avx2(), which points traits[t].vec_dot (and
 * vec_dot_multi for Q8_0/Q4_K/Q6_K/Q4_0/IQ4_NL/MXFP4) at these kernels and traits[Q8_0/Q8_K].from_float_simd at activation quantizers
 * whose output is byte-identical to the references (about 13x faster).
 * Must not: allocate, touch vec_dot_ref/from_float, or be called on a CPU
 * without AVX2+FMA+F16C (quant.c checks before installing).
 * Called through the traits table by matvec.c; tests compare each kernel
 * with the reference.
 *
 * Integer technique: _mm256_maddubs_epi16 multiplies unsigned weight bytes
 * by signed activation bytes into int16 pairs, _mm256_madd_epi16 applies an
 * int16 sub-block scale (or 1) into int32 lanes, and one float FMA per block
 * applies the block scales. Signed weights (Q8_0, IQ4_NL, MXFP4, Q4_0, Q5_0,
 * IQ4_XS) use the sign trick |w| * (a with w's sign); offset weights of the
 * K-quants (Q3_K's -4, Q6_K's -32, Q2_K/Q4_K/Q5_K's mins) are corrected
 * once per super-block with the Q8_K bsums. Every int16 intermediate stays
 * below 32767 for activations in [-127, 127], which the Q8_0/Q8_K
 * quantizers guarantee.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "quant_k4_simd.h"
#include "quant_ref.h"

void quant_install_avx2(struct quant_traits *traits);

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

/* 8 int32 partial sums of w[i] * a[i] for 32 signed bytes each. */
static inline __m256i dot_s8_s8(__m256i w, __m256i a)
{
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* 16 packed nibbles -> 32 bytes: low nibbles (elements 0..15), then high
 * nibbles (elements 16..31): the Q4_0/IQ4_NL/MXFP4 element order. */
static inline __m256i nibbles_32(const uint8_t *qs)
{
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* byte i = 0xFF when bit i of bits is set, else 0 (i = 0..31). */
static inline __m256i bytes_from_bits(uint32_t bits)
{
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL,
                                           0x0101010101010101LL, 0x0000000000000000LL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    v = _mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfeLL));
    return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
}

/* Shuffle control giving int16 element k in the low lane and k+1 in the
 * high lane of a vector whose two 128-bit lanes hold the same 8 int16. */
static inline __m256i pair_ctrl(int k)
{
    const int8_t lo0 = (int8_t)(2 * k), lo1 = (int8_t)(2 * k + 1);
    const int8_t hi0 = (int8_t)(2 * k + 2), hi1 = (int8_t)(2 * k + 3);
    return _mm256_setr_epi8(lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1, lo0, lo1,
                            hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1, hi0, hi1);
}

/* Shuffle control broadcasting int16 element k over the whole vector. */
static inline __m256i one_ctrl(int k)
{
    return _mm256_set1_epi16((short)((2 * k) | ((2 * k + 1) << 8)));
}

/* unpack_k4_scales: quant_k4_simd.h */

/* Q3_K: 12 packed bytes -> 16 signed scales (6-bit value - 32). Scale k
 * has its low 4 bits in byte k (k < 8, low nibble) or k - 8 (high nibble),
 * its high 2 bits at bit 2 * (k / 4) of byte 8 + k % 4. Kept in registers:
 * assembling it in memory costs a store-forwarding stall per super-block. */
static inline __m128i unpack_q3k_scales(const uint8_t *scales)
{
    uint32_t hi4;
    memcpy(&hi4, scales + 8, sizeof(hi4));
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m128i lo8 = _mm_loadl_epi64((const __m128i *)scales);
    const __m128i lo = _mm_unpacklo_epi64(_mm_and_si128(lo8, m4), _mm_and_si128(_mm_srli_epi16(lo8, 4), m4));
    const __m128i hi = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32((int)hi4), _mm_setr_epi32(0, 2, 4, 6)),
                                     _mm_set1_epi8(0x03));
    return _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi8(32));
}

/* quant_e8m0_to_fp32_half(), inlined: 2^(e - 128), as float bits */
static inline float e8m0_half_to_f32(uint8_t e)
{
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

/* --- several activation rows per pass over the weights ------------------- */

/*
 * As in quant_avx512.c: a *_rows() body computes s[k * ss] = dot(w, a + k *
 * as) for k < na (a compile-time constant once inlined), unpacking each
 * weight block once and running the single-row operations on every
 * activation row in the same order; vec_dot is its na = 1 instance, so
 * vec_dot_multi is bit-identical to it by construction. AVX2 has 16 ymm
 * registers, so MULTI_G = 2 rows (three accumulators each for the K-quants)
 * stay in registers beside the unpacked weights.
 */
#define MULTI_G 2
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define ROWS_FOR(k) _Pragma("GCC unroll 8") for (int k = 0; k < na; k++)

/* dot(n, s, w, a) = rows with na = 1; dot_multi: pairs of rows, then one */
#define DEFINE_DOTS(dot, rows)                                                                            \
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
        if (n_act - k >= 1)                                                                               \
            rows(n, s + (size_t)k * ss, ss, w, ap + (size_t)k * as, as, 1);                               \
    }
static_assert(MULTI_G == 2, "DEFINE_DOTS handles a remainder of at most one row");

/* --- float weights, float activations ------------------------------------ */

/* s = W[n] . x[n]; W F32, x F32 */
static void dot_f32_avx2(int64_t n, float *s, const void *w, const void *a)
{
    const float *x = w, *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
    float sum = hsum_f32_8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++)
        sum += x[i] * y[i];
    *s = sum;
}

/* s = W[n] . x[n]; W F16, x F32 */
static void dot_f16_avx2(int64_t n, float *s, const void *w, const void *a)
{
    const qhalf *x = w;
    const float *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
#define LDH(off) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + (off))))
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(LDH(0), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(LDH(8), _mm256_loadu_ps(y + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(LDH(16), _mm256_loadu_ps(y + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(LDH(24), _mm256_loadu_ps(y + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(LDH(0), _mm256_loadu_ps(y + i), acc0);
#undef LDH
    float sum = hsum_f32_8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++)
        sum += fp16_to_f32(x[i]) * y[i];
    *s = sum;
}

/* s = W[n] . x[n]; W BF16, x F32 */
static void dot_bf16_avx2(int64_t n, float *s, const void *w, const void *a)
{
    const uint16_t *x = w;
    const float *y = a;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
#define LDB(off) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x + i + (off)))), 16))
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(LDB(0), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(LDB(8), _mm256_loadu_ps(y + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(LDB(16), _mm256_loadu_ps(y + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(LDB(24), _mm256_loadu_ps(y + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(LDB(0), _mm256_loadu_ps(y + i), acc0);
#undef LDB
    float sum = hsum_f32_8(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    for (; i < n; i++) {
        uint32_t bits = (uint32_t)x[i] << 16;
        float f;
        memcpy(&f, &bits, sizeof(f));
        sum += f * y[i];
    }
    *s = sum;
}

/* --- 32-element blocks, Q8_0 activations --------------------------------- */

/* s = W[n] . x[n]; W Q8_0, x Q8_0 (na activation rows, see ROWS_FOR) */
ALWAYS_INLINE void q8_0_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                             const int na)
{
    const block_q8_0 *x = w;
    const int64_t nb = n / QK8_0;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc0[MULTI_G], acc1[MULTI_G];
    ROWS_FOR(k) {
        acc0[k] = _mm256_setzero_ps();
        acc1[k] = _mm256_setzero_ps();
    }
    /* dot_s8_s8 split: |w| once per block, a with w's sign per row */
#define Q80_ROW(acc, b, wv, wabs, xd)                                                                        \
    do {                                                                                                     \
        const __m256i av = _mm256_loadu_si256((const __m256i *)y[b].qs);                                     \
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, _mm256_sign_epi8(av, wv)), ones);     \
        acc = _mm256_fmadd_ps(_mm256_set1_ps((xd) * fp16_to_f32(y[b].d)), _mm256_cvtepi32_ps(p), acc);       \
    } while (0)
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)x[i].qs);
        const __m256i w1 = _mm256_loadu_si256((const __m256i *)x[i + 1].qs);
        const __m256i w0abs = _mm256_sign_epi8(w0, w0), w1abs = _mm256_sign_epi8(w1, w1);
        const float xd0 = fp16_to_f32(x[i].d), xd1 = fp16_to_f32(x[i + 1].d);
        ROWS_FOR(k) {
            const block_q8_0 *y = (const block_q8_0 *)(a + (size_t)k * as);
            Q80_ROW(acc0[k], i, w0, w0abs, xd0);
            Q80_ROW(acc1[k], i + 1, w1, w1abs, xd1);
        }
    }
    for (; i < nb; i++) {
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)x[i].qs);
        const __m256i w0abs = _mm256_sign_epi8(w0, w0);
        const float xd0 = fp16_to_f32(x[i].d);
        ROWS_FOR(k) {
            const block_q8_0 *y = (const block_q8_0 *)(a + (size_t)k * as);
            Q80_ROW(acc0[k], i, w0, w0abs, xd0);
        }
    }
#undef Q80_ROW
    ROWS_FOR(k) s[(size_t)k * ss] = hsum_f32_8(_mm256_add_ps(acc0[k], acc1[k]));
}
DEFINE_DOTS(dot_q8_0_avx2, q8_0_rows)

/* s = W[n] . x[n]; W Q5_0, x Q8_0 */
static void dot_q5_0_avx2(int64_t n, float *s, const void *w, const void *a)
{
    const block_q5_0 *x = w;
    const block_q8_0 *y = a;
    const int64_t nb = n / QK5_0;
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof(qh));
        /* q - 16 = nibble - 16 * (1 - high bit) */
        __m256i off = _mm256_andnot_si256(bytes_from_bits(qh), bit4);
        __m256i w0 = _mm256_sub_epi8(nibbles_32(x[i].qs), off);
        __m256i p = dot_s8_s8(w0, _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(fp16_to_f32(x[i].d) * fp16_to_f32(y[i].d)),
                              _mm256_cvtepi32_ps(p), acc);
    }
    *s = hsum_f32_8(acc);
}

/* Rows body of the 32-element formats whose weight is a 16-entry int8 table
 * entry (Q4_0: nibble - 8, IQ4_NL, MXFP4), one scale per block (see the
 * *_rows() contract above). The table lookup, |w| and the block scale are
 * computed once per block for all rows; each row then runs the sign trick
 * (|w| against a with w's sign, maddubs + madd) and one FMA per block, two
 * accumulators (even and odd blocks). The weights are prefetched 1 KiB
 * ahead, one line per two blocks (34 bytes). scale(b) is the block's
 * weight scale as a float. */
#define ROW_Q80(k) ((const block_q8_0 *)(a + (size_t)(k) * as))
#define LUT4_ROWS(T, table, scale)                                                                          \
    do {                                                                                                    \
        const T *x = w;                                                                                     \
        const int64_t nb = n / 32;                                                                          \
        const __m256i ones = _mm256_set1_epi16(1);                                                          \
        __m256 acc0[MULTI_G], acc1[MULTI_G];                                                                \
        ROWS_FOR(k) acc0[k] = acc1[k] = _mm256_setzero_ps();                                                \
        int64_t i = 0;                                                                                      \
        for (; i + 2 <= nb; i += 2) {                                                                       \
            __builtin_prefetch((const char *)(x + i) + 1024, 0, 3);                                         \
            const __m256i w0 = _mm256_shuffle_epi8(table, nibbles_32(x[i].qs));                             \
            const __m256i w1 = _mm256_shuffle_epi8(table, nibbles_32(x[i + 1].qs));                         \
            const __m256i w0a = _mm256_sign_epi8(w0, w0), w1a = _mm256_sign_epi8(w1, w1);                   \
            const float ws0 = scale(i), ws1 = scale(i + 1);                                                 \
            ROWS_FOR(k) {                                                                                   \
                const block_q8_0 *y = ROW_Q80(k);                                                           \
                const __m256i a0 = _mm256_loadu_si256((const __m256i *)y[i].qs);                            \
                const __m256i a1 = _mm256_loadu_si256((const __m256i *)y[i + 1].qs);                        \
                const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(w0a, _mm256_sign_epi8(a0, w0)), ones); \
                const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(w1a, _mm256_sign_epi8(a1, w1)), ones); \
                acc0[k] = _mm256_fmadd_ps(_mm256_set1_ps(ws0 * fp16_to_f32(y[i].d)), _mm256_cvtepi32_ps(p0), acc0[k]); \
                acc1[k] = _mm256_fmadd_ps(_mm256_set1_ps(ws1 * fp16_to_f32(y[i + 1].d)), _mm256_cvtepi32_ps(p1), acc1[k]); \
            }                                                                                               \
        }                                                                                                   \
        for (; i < nb; i++) {                                                                               \
            const __m256i w0 = _mm256_shuffle_epi8(table, nibbles_32(x[i].qs));                             \
            const __m256i w0a = _mm256_sign_epi8(w0, w0);                                                   \
            const float ws0 = scale(i);                                                                     \
            ROWS_FOR(k) {                                                                                   \
                const block_q8_0 *y = ROW_Q80(k);                                                           \
                const __m256i a0 = _mm256_loadu_si256((const __m256i *)y[i].qs);                            \
                const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(w0a, _mm256_sign_epi8(a0, w0)), ones); \
                acc0[k] = _mm256_fmadd_ps(_mm256_set1_ps(ws0 * fp16_to_f32(y[i].d)), _mm256_cvtepi32_ps(p0), acc0[k]); \
            }                                                                                               \
        }                                                                                                   \
        ROWS_FOR(k) s[(size_t)k * ss] = hsum_f32_8(_mm256_add_ps(acc0[k], acc1[k]));                        \
    } while (0)
#define FP16_SCALE(b) fp16_to_f32(x[b].d)

/* the 16 int8 table entries in both 128-bit lanes */
static inline __m256i lut4_table(const int8_t *t)
{
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)t));
}

/* s = W[n] . x[n]; W Q4_0, x Q8_0 (the table: nibble - 8) */
ALWAYS_INLINE void q4_0_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                             const int na)
{
    const __m256i table = _mm256_setr_epi8(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7,
                                           -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
    LUT4_ROWS(block_q4_0, table, FP16_SCALE);
}
DEFINE_DOTS(dot_q4_0_avx2, q4_0_rows)

/* s = W[n] . x[n]; W IQ4_NL, x Q8_0 */
ALWAYS_INLINE void iq4_nl_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                               const int na)
{
    const __m256i table = lut4_table(quant_kvalues_iq4nl);
    LUT4_ROWS(block_iq4_nl, table, FP16_SCALE);
}
DEFINE_DOTS(dot_iq4_nl_avx2, iq4_nl_rows)

/* s = W[n] . x[n]; W MXFP4, x Q8_0 (table of the doubled e2m1 values, the
 * e8m0 scale halved to match) */
ALWAYS_INLINE void mxfp4_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                              const int na)
{
    const __m256i table = lut4_table(quant_kvalues_mxfp4);
#define E8M0_SCALE(b) e8m0_half_to_f32(x[b].e)
    LUT4_ROWS(block_mxfp4, table, E8M0_SCALE);
#undef E8M0_SCALE
}
DEFINE_DOTS(dot_mxfp4_avx2, mxfp4_rows)
#undef FP16_SCALE
#undef LUT4_ROWS
#undef ROW_Q80

/* --- 256-element super-blocks, Q8_K activations --------------------------- */

/* sc16[k] * bsums[k] over the 16 sub-blocks, in 8 int32 lanes (sc16: 16
 * int16). Kept as a vector: one horizontal sum per row, not per block. */
static inline __m256i scaled_bsums(__m256i sc16, const int16_t *bsums)
{
    return _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)bsums));
}

/* Activation row k of a rows() body, as Q8_K blocks */
#define ROW_Q8K(k) ((const block_q8_K *)(a + (size_t)(k) * as))

/* s = W[n] . x[n]; W Q4_K, x Q8_K */
ALWAYS_INLINE void q4_K_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                             const int na)
{
    const block_q4_K *x = w;
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i k1[8];
    for (int k = 0; k < 8; k++)
        k1[k] = one_ctrl(k);
    /* int16 lane l of mins_dup = min(l / 2): one vpmaddwd against the 16
     * bsums gives min(s) * (sum of the 32 activations of sub-block s) */
    int8_t midx_b[32];
    for (int l = 0; l < 32; l++)
        midx_b[l] = (int8_t)(l % 2 ? -128 : 8 + l / 4);
    const __m256i midx = _mm256_loadu_si256((const __m256i *)midx_b);
    __m256 acc[MULTI_G];
    __m256 accm[MULTI_G];
    ROWS_FOR(k) {
        acc[k] = _mm256_setzero_ps();
        accm[k] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < nb; i++) {
        __builtin_prefetch((const char *)(x + i) + 1024, 0, 3);
        __builtin_prefetch((const char *)(x + i) + 1024 + 64, 0, 3);
        __builtin_prefetch((const char *)(x + i) + 1024 + 128, 0, 3);
        const float xd = fp16_to_f32(x[i].d), xdmin = fp16_to_f32(x[i].dmin);
        const __m128i sm = unpack_k4_scales(x[i].scales);
        const __m256i mins_dup = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(sm), midx);
        /* sc: the 8 sub-block scales as int16 in both lanes */
        const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
        __m256i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j));
            const __m256i lo = _mm256_and_si256(qv, m4), hi = _mm256_and_si256(_mm256_srli_epi16(qv, 4), m4);
            const __m256i slo = _mm256_shuffle_epi8(sc, k1[2 * j]);
            const __m256i shi = _mm256_shuffle_epi8(sc, k1[2 * j + 1]);
            ROWS_FOR(k) {
                const int8_t *qa = ROW_Q8K(k)[i].qs + 64 * j;
                const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)qa));
                const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(qa + 32)));
                sumi[k] = _mm256_add_epi32(sumi[k], _mm256_madd_epi16(plo, slo));
                sumi[k] = _mm256_add_epi32(sumi[k], _mm256_madd_epi16(phi, shi));
            }
        }
        ROWS_FOR(k) {
            const block_q8_K *yk = ROW_Q8K(k) + i;
            const float d = yk->d * xd;
            const float dmin = -yk->d * xdmin;
            const __m256i msum = _mm256_madd_epi16(mins_dup, _mm256_loadu_si256((const __m256i *)yk->bsums));
            accm[k] = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(msum), accm[k]);
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[k]), acc[k]);
        }
    }
    ROWS_FOR(k) s[(size_t)k * ss] = hsum_f32_8(acc[k]) + hsum_f32_8(accm[k]);
}
DEFINE_DOTS(dot_q4_K_avx2, q4_K_rows)

/* s = W[n] . x[n]; W Q5_K, x Q8_K */
static void dot_q5_K_avx2(int64_t n, float *s, const void *w, const void *a)
{
    const block_q5_K *x = w;
    const block_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i one = _mm256_set1_epi8(1);
    __m256i k1[8];
    for (int k = 0; k < 8; k++)
        k1[k] = one_ctrl(k);
    __m256 acc = _mm256_setzero_ps();
    __m128 accm = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * fp16_to_f32(x[i].d);
        const float dmin = -y[i].d * fp16_to_f32(x[i].dmin);
        const __m128i sm = unpack_k4_scales(x[i].scales);
        const __m128i mins = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(sm, sm));
        const __m128i bs = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)y[i].bsums),
                                          _mm_loadu_si128((const __m128i *)(y[i].bsums + 8)));
        accm = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(_mm_madd_epi16(mins, bs)), accm);

        const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
        const uint8_t *q = x[i].qs;
        const int8_t *qa = y[i].qs;
        const __m256i qh = _mm256_loadu_si256((const __m256i *)x[i].qh);
        __m256i sumi = _mm256_setzero_si256();
        /* sub-block 2j takes qh bit 2j, sub-block 2j+1 bit 2j+1, as bit 4 */
#define Q5K_STEP(j)                                                                            \
    do {                                                                                             \
        __m256i qv = _mm256_loadu_si256((const __m256i *)(q + 32 * (j)));                            \
        __m256i hlo = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * (j)), one);                         \
        __m256i hhi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * (j) + 1), one);                     \
        __m256i lo = _mm256_or_si256(_mm256_and_si256(qv, m4), _mm256_slli_epi16(hlo, 4));           \
        __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qv, 4), m4),                 \
                                     _mm256_slli_epi16(hhi, 4));                                     \
        __m256i slo = _mm256_shuffle_epi8(sc, k1[2 * (j)]);                                          \
        __m256i shi = _mm256_shuffle_epi8(sc, k1[2 * (j) + 1]);                                      \
        __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(qa + 64 * (j))));      \
        __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(qa + 64 * (j) + 32))); \
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(plo, slo));                                  \
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(phi, shi));                                  \
    } while (0)
        Q5K_STEP(0);
        Q5K_STEP(1);
        Q5K_STEP(2);
        Q5K_STEP(3);
#undef Q5K_STEP
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    __m128 m = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    *s = hsum_f32_8(acc) + _mm_cvtss_f32(m);
}

/* s = W[n] . x[n]; W Q6_K, x Q8_K */
ALWAYS_INLINE void q6_K_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                             const int na)
{
    const block_q6_K *x = w;
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m3 = _mm256_set1_epi8(0x03);
    const __m256i c0 = pair_ctrl(0), c2 = pair_ctrl(2), c4 = pair_ctrl(4), c6 = pair_ctrl(6);
    __m256 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float xd = fp16_to_f32(x[i].d);
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        __m256i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h;
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h));
            const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16((h ? _mm_unpackhi_epi64(sc8, sc8) : sc8)));
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                               _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
            const __m256i q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
            const __m256i s0 = _mm256_shuffle_epi8(sc, c0), s2 = _mm256_shuffle_epi8(sc, c2);
            const __m256i s4 = _mm256_shuffle_epi8(sc, c4), s6 = _mm256_shuffle_epi8(sc, c6);
            ROWS_FOR(k) {
                /* each 32-byte vector spans two 16-element sub-blocks */
                const int8_t *qa = ROW_Q8K(k)[i].qs + 128 * h;
                const __m256i p1 = _mm256_maddubs_epi16(q1, _mm256_loadu_si256((const __m256i *)qa));
                const __m256i p2 = _mm256_maddubs_epi16(q2, _mm256_loadu_si256((const __m256i *)(qa + 32)));
                const __m256i p3 = _mm256_maddubs_epi16(q3, _mm256_loadu_si256((const __m256i *)(qa + 64)));
                const __m256i p4 = _mm256_maddubs_epi16(q4, _mm256_loadu_si256((const __m256i *)(qa + 96)));
                sumi[k] = _mm256_add_epi32(sumi[k], _mm256_madd_epi16(p1, s0));
                sumi[k] = _mm256_add_epi32(sumi[k], _mm256_madd_epi16(p2, s2));
                sumi[k] = _mm256_add_epi32(sumi[k], _mm256_madd_epi16(p3, s4));
                sumi[k] = _mm256_add_epi32(sumi[k], _mm256_madd_epi16(p4, s6));
            }
        }
        ROWS_FOR(k) {
            const block_q8_K *yk = ROW_Q8K(k) + i;
            /* weights are stored as q + 32 (0..63): subtract 32 * sum(sc * bsums) */
            const __m256i corr = scaled_bsums(sc16, yk->bsums);
            const __m256i si = _mm256_sub_epi32(sumi[k], _mm256_slli_epi32(corr, 5));
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(yk->d * xd), _mm256_cvtepi32_ps(si), acc[k]);
        }
    }
    ROWS_FOR(k) s[(size_t)k * ss] = hsum_f32_8(acc[k]);
}
DEFINE_DOTS(dot_q6_K_avx2, q6_K_rows)

#undef ROW_Q8K

/* s = W[n] . x[n]; W Q3_K, x Q8_K */
static void dot_q3_K_avx2(int64_t n, float *s, const void *w, const void *a)
{
    const block_q3_K *x = w;
    const block_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const __m256i m3 = _mm256_set1_epi8(0x03);
    const __m256i one = _mm256_set1_epi8(1);
    const __m256i c0 = pair_ctrl(0), c2 = pair_ctrl(2), c4 = pair_ctrl(4), c6 = pair_ctrl(6);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * fp16_to_f32(x[i].d);
        const __m128i sc8 = unpack_q3k_scales(x[i].scales);
        /* u = low2 | hbit << 2 = q + 4: subtract 4 * sum(sc * bsums) */
        const __m256i corr = scaled_bsums(_mm256_cvtepi8_epi16(sc8), y[i].bsums);
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x[i].hmask);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            const int8_t *qa = y[i].qs + 128 * h;
            const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16((h ? _mm_unpackhi_epi64(sc8, sc8) : sc8)));
#define Q3K_STEP(j, ctrl)                                                                              \
    do {                                                                                               \
        __m256i lo = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * (j)), m3);                             \
        __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + (j)), one);                        \
        __m256i u = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));                                     \
        __m256i p = _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)(qa + 32 * (j))));     \
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_shuffle_epi8(sc, ctrl)));            \
    } while (0)
            Q3K_STEP(0, c0);
            Q3K_STEP(1, c2);
            Q3K_STEP(2, c4);
            Q3K_STEP(3, c6);
#undef Q3K_STEP
        }
        sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(corr, 2));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_f32_8(acc);
}

/* s = W[n] . x[n]; W Q2_K, x Q8_K */
static void dot_q2_K_avx2(int64_t n, float *s, const void *w, const void *a)
{
    const block_q2_K *x = w;
    const block_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const __m256i m3 = _mm256_set1_epi8(0x03);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m256i c0 = pair_ctrl(0), c2 = pair_ctrl(2), c4 = pair_ctrl(4), c6 = pair_ctrl(6);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * fp16_to_f32(x[i].d);
        const float dmin = -y[i].d * fp16_to_f32(x[i].dmin);
        const __m128i raw = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m128i sc8 = _mm_and_si128(raw, m4);
        const __m128i mn8 = _mm_and_si128(_mm_srli_epi16(raw, 4), m4);
        const __m256i msum = scaled_bsums(_mm256_cvtepu8_epi16(mn8), y[i].bsums);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            const int8_t *qa = y[i].qs + 128 * h;
            const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16((h ? _mm_unpackhi_epi64(sc8, sc8) : sc8)));
#define Q2K_STEP(j, ctrl)                                                                          \
    do {                                                                                           \
        __m256i u = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * (j)), m3);                          \
        __m256i p = _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)(qa + 32 * (j)))); \
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_shuffle_epi8(sc, ctrl)));        \
    } while (0)
            Q2K_STEP(0, c0);
            Q2K_STEP(1, c2);
            Q2K_STEP(2, c4);
            Q2K_STEP(3, c6);
#undef Q2K_STEP
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(msum), acc);
    }
    *s = hsum_f32_8(acc);
}

/* s = W[n] . x[n]; W IQ4_XS, x Q8_K */
static void dot_iq4_xs_avx2(int64_t n, float *s, const void *w, const void *a)
{
    const block_iq4_xs *x = w;
    const block_q8_K *y = a;
    const int64_t nb = n / QK_K;
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)quant_kvalues_iq4nl));
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = y[i].d * fp16_to_f32(x[i].d);
        const unsigned sh = x[i].scales_h;
        __m256i sumi = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib += 2) {
            /* 32 bytes = sub-blocks ib and ib+1, 16 bytes each */
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(x[i].qs + 16 * ib));
            const __m256i lo = _mm256_shuffle_epi8(table, _mm256_and_si256(qv, m4));
            const __m256i hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(qv, 4), m4));
            const __m256i v0 = _mm256_permute2x128_si256(lo, hi, 0x20);
            const __m256i v1 = _mm256_permute2x128_si256(lo, hi, 0x31);
            const int ls0 = ((x[i].scales_l[ib / 2] & 0xF) | (((sh >> (2 * ib)) & 3) << 4)) - 32;
            const int ls1 = ((x[i].scales_l[ib / 2] >> 4) | (((sh >> (2 * ib + 2)) & 3) << 4)) - 32;
            const __m256i a0 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 32 * ib));
            const __m256i a1 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 32 * ib + 32));
            const __m256i p0 = _mm256_maddubs_epi16(_mm256_sign_epi8(v0, v0), _mm256_sign_epi8(a0, v0));
            const __m256i p1 = _mm256_maddubs_epi16(_mm256_sign_epi8(v1, v1), _mm256_sign_epi8(a1, v1));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p0, _mm256_set1_epi16((short)ls0)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p1, _mm256_set1_epi16((short)ls1)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum_f32_8(acc);
}

/* --- activation quantizers (bit-identical to quant_ref.c) ------------------ */

/* roundf() semantics, half away from zero, exact for |v| < 2^23: truncate,
 * then step one away from zero when the dropped fraction is >= 0.5. */
static inline __m256i round_half_away(__m256 v)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    const __m256 step = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    return _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(up, step)));
}

/* 32 int32 in four vectors -> 32 int8 in element order (values in range) */
static inline __m256i pack_i32x32(__m256i i0, __m256i i1, __m256i i2, __m256i i3)
{
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline float hmax_f32_8(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* dst[n / 32] blocks Q8_0 = src[n]: d = max|x| / 127, q = roundf(x / d) */
static void from_float_q8_0_avx2(const float *src, void *dst, int64_t n)
{
    block_q8_0 *y = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float *x = src + i * QK8_0;
        __m256 v[4];
        __m256 amax = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[k]));
        }
        const float d = hmax_f32_8(amax) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = quant_fp32_to_fp16(d);
        const __m256 mul = _mm256_set1_ps(id);
        __m256i iv[4];
        for (int k = 0; k < 4; k++)
            iv[k] = round_half_away(_mm256_mul_ps(v[k], mul));
        const __m256i q = pack_i32x32(iv[0], iv[1], iv[2], iv[3]);
        _mm256_storeu_si256((__m256i *)y[i].qs, q);
    }
}

/* dst[n / 256] blocks Q8_K = src[n]: the first element of largest magnitude
 * maps to -127, q = min(127, lrintf(x * iscale)), bsums = sums of 16 */
static void from_float_q8_K_avx2(const float *src, void *dst, int64_t n)
{
    block_q8_K *y = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i ones8 = _mm256_set1_epi8(1);
    const __m256i ones16 = _mm256_set1_epi16(1);
    const __m256i max127 = _mm256_set1_epi32(127);
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        __m256 amax = _mm256_setzero_ps();
        for (int k = 0; k < QK_K; k += 8)
            amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
        const float am = hmax_f32_8(amax);
        if (am == 0.0f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        /* the reference keeps the first element reaching the maximum */
        const __m256 amv = _mm256_set1_ps(am);
        float max = 0.0f;
        for (int k = 0; k < QK_K; k += 8) {
            const __m256 ax = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k));
            const int m = _mm256_movemask_ps(_mm256_cmp_ps(ax, amv, _CMP_EQ_OQ));
            if (m) {
                max = x[k + __builtin_ctz((unsigned)m)];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 mul = _mm256_set1_ps(iscale);
        for (int k = 0; k < QK_K; k += 32) {
            __m256i iv[4];
            for (int l = 0; l < 4; l++) {
                const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + k + 8 * l), mul);
                iv[l] = _mm256_min_epi32(_mm256_cvtps_epi32(v), max127);
            }
            const __m256i q = pack_i32x32(iv[0], iv[1], iv[2], iv[3]);
            _mm256_storeu_si256((__m256i *)(y[i].qs + k), q);
            /* sums of 4, then of 16: lanes 0 and 4 after two horizontal adds */
            __m256i s4 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16);
            s4 = _mm256_hadd_epi32(s4, s4);
            s4 = _mm256_hadd_epi32(s4, s4);
            y[i].bsums[k / 16] = (int16_t)_mm256_extract_epi32(s4, 0);
            y[i].bsums[k / 16 + 1] = (int16_t)_mm256_extract_epi32(s4, 4);
        }
        y[i].d = 1.0f / iscale;
    }
}

void quant_install_avx2(struct quant_traits *traits)
{
    /* activation quantizers: the reference's bytes, 10x faster */
    traits[QT_Q8_0].from_float_simd = from_float_q8_0_avx2;
    traits[QT_Q8_K].from_float_simd = from_float_q8_K_avx2;
    traits[QT_F32].vec_dot = dot_f32_avx2;
    traits[QT_F16].vec_dot = dot_f16_avx2;
    traits[QT_BF16].vec_dot = dot_bf16_avx2;
    traits[QT_Q4_0].vec_dot = dot_q4_0_avx2;
    traits[QT_Q4_0].vec_dot_multi = dot_q4_0_avx2_multi;
    traits[QT_Q5_0].vec_dot = dot_q5_0_avx2;
    traits[QT_Q8_0].vec_dot = dot_q8_0_avx2;
    traits[QT_Q8_0].vec_dot_multi = dot_q8_0_avx2_multi;
    traits[QT_IQ4_NL].vec_dot = dot_iq4_nl_avx2;
    traits[QT_IQ4_NL].vec_dot_multi = dot_iq4_nl_avx2_multi;
    traits[QT_MXFP4].vec_dot = dot_mxfp4_avx2;
    traits[QT_MXFP4].vec_dot_multi = dot_mxfp4_avx2_multi;
    traits[QT_Q2_K].vec_dot = dot_q2_K_avx2;
    traits[QT_Q3_K].vec_dot = dot_q3_K_avx2;
    traits[QT_Q4_K].vec_dot = dot_q4_K_avx2;
    traits[QT_Q4_K].vec_dot_multi = dot_q4_K_avx2_multi;
    traits[QT_Q5_K].vec_dot = dot_q5_K_avx2;
    traits[QT_Q6_K].vec_dot = dot_q6_K_avx2;
    traits[QT_Q6_K].vec_dot_multi = dot_q6_K_avx2_multi;
    traits[QT_IQ4_XS].vec_dot = dot_iq4_xs_avx2;
}
