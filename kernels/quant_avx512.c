/*
 * quant_avx512.c - AVX-512 (F/BW/VL/DQ/VNNI) dot products of one weight row
 * with one activation row, one per weight format, and for Q8_0, the
 * K-quants (Q2_K..Q6_K, IQ4_XS) and the 4-bit 32-element formats (Q4_0,
 * Q5_0, IQ4_NL, MXFP4) with several activation rows at once.
 *
 * Owns: quant_install_avx512(), which replaces traits[t].vec_dot and
 * traits[t].vec_dot_multi (NULL where there is no multi-row kernel) for the
 * formats below. quant.c runs quant_install_avx2() on the table first, so
 * anything without a kernel here keeps its AVX2 kernel (and the AVX2
 * activation quantizers stay installed). Must not: allocate, touch
 * vec_dot_ref, or run on a CPU without the features in the Makefile's
 * ISA_AVX512 flags (quant.c checks before installing).
 * Called through the traits table by matvec.c; tests compare each kernel
 * with the reference.
 *
 * Integer technique: VNNI _mm*_dpbusd_epi32 (u8 x s8, four products into
 * an int32 lane, no saturation) for the 32-element formats, with signed
 * weights against the activations made unsigned (a + 128), the offset's
 * product 128 * sum w removed once per weight block for every row. The
 * K-quants use 512-bit maddubs (u8 x s8 -> int16 pairs) followed by
 * _mm512_dpwssd_epi32 against a vector of int16 sub-block scales, and the
 * Q8_K bsums for the offsets and mins once per super-block. Q8_0 and
 * IQ4_XS use the sign trick instead (|w| against the activations with w's
 * sign: Q8_0 into a 256-bit dpbusd per block, IQ4_XS into maddubs +
 * dpwssd with its sub-block scales, pair sums below 2 * 127 * 127). All
 * other weight bytes that meet maddubs are at most 6 bits, so no int16
 * pair sum can saturate for activations in
 * [-127, 127].
 *
 * Port pressure (Intel: 512-bit integer ops on ports 0 and 5 only, the
 * integer dot products on port 0, vpermw two port-5 uops): the K-quant
 * and IQ4_XS scale vectors are vpshufb of a lane-broadcast, the nibble
 * halves a broadcast load plus a masked shift, and the Q4_K/Q5_K mins meet
 * the bsums in one vpmaddwd; the weights are prefetched 1 KiB ahead
 * (prefetch_block). In 16-bit activation mode (two activation rows per
 * weight row) this took, on the shared 2-core Xeon VM (one thread, rows of
 * 2048 in L2, medians of 3 alternating runs, GB/s of weights): Q4_K 8.8 ->
 * 11.7, Q5_K 10.3 -> 12.2, Q6_K 17.4 -> 19.1, Q8_0 8.9 -> 12.7, IQ4_XS
 * 7.7 -> 9.0 (bench/README.md has the full table).
 *
 * Measured earlier on the 2-core AVX-512 dev VM (AMD EPYC, L2-resident rows
 * of 4096, one thread, GB/s of weights; AVX2 kernel in brackets): Q4_K 32
 * (26), Q6_K 55 (32), Q5_K 34 (23), Q3_K 23 (12), Q2_K 23 (15), Q8_0 44
 * (39), Q4_0 20 (14), Q5_0 21 (14), IQ4_NL 19 (14), MXFP4 17 (14), IQ4_XS
 * 26 (16). Streaming from DRAM reads 10-25 GB/s per core there.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "quant_k4_simd.h"
#include "quant_ref.h"

void quant_install_avx512(struct quant_traits *traits);

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

/* 16 packed nibbles -> 32 bytes: low nibbles (elements 0..15), then high. */
static inline __m256i nibbles_32(const uint8_t *qs)
{
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* 64 bytes = [v | v >> s] (s applied per 16-bit lane; caller masks). */
static inline __m512i dup_shift(__m256i v, int s)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, s), 1);
}

/* Q5_0 weight bytes: nibble + 16 where the block's qh bit is set (0..31). */
static inline __m256i q5_0_bytes(const block_q5_0 *b)
{
    uint32_t qh;
    memcpy(&qh, b->qh, sizeof(qh));
    const __m256i nib = nibbles_32(b->qs);
    return _mm256_mask_add_epi8(nib, (__mmask32)qh, nib, _mm256_set1_epi8(16));
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

/* vpermw index: int16 lane i takes element base + i / (32 / per), i.e.
 * 'per' consecutive scales each repeated over 32/per lanes. */
static inline __m512i scale_idx(int base, int per)
{
    int16_t idx[32];
    for (int i = 0; i < 32; i++)
        idx[i] = (int16_t)(base + i / (32 / per));
    return _mm512_loadu_si512(idx);
}

/* sc16[k] * bsums[k] over the 16 sub-blocks, in 8 int32 lanes (sc16: 16
 * int16). Kept as a vector: one horizontal sum per row, not per block. */
static inline __m256i scaled_bsums(__m256i sc16, const int16_t *bsums)
{
    return _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)bsums));
}

/* quant_e8m0_to_fp32_half(), inlined: 2^(e - 128), as float bits */
static inline float e8m0_half_to_f32(uint8_t e)
{
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

/* Software prefetch of the weight bytes KPF_DIST ahead of the block being
 * unpacked (rows are contiguous, so this runs into the next row at the end
 * of one): the kernels are busy enough that the hardware prefetcher alone
 * leaves DRAM latency exposed. */
#ifndef KPF_DIST
#define KPF_DIST 1024
#endif
static inline void prefetch_block(const void *blk, size_t size)
{
    quant_prefetch_range((const char *)blk + KPF_DIST, size);
}

/* --- several activation rows per pass over the weights ------------------- */

/*
 * A *_rows() body computes s[k * ss] = dot(w, a + k * as) for k < na, na a
 * compile-time constant once inlined: the weight bytes of a block are
 * unpacked once, then every activation row runs exactly the single-row
 * kernel's operations on them (same integer steps, same float accumulators
 * in the same order). vec_dot is the na = 1 instance of the same body, so
 * vec_dot_multi is bit-identical to vec_dot row by row by construction.
 * MULTI_G rows keep their accumulators in registers (the K-quants hold
 * three per row: float, mins, int32). Measured on the dev VM (one thread,
 * n = 2048, CPU time): 8 rows run Q4_K/Q6_K/Q8_0 5-15% faster than 4, and
 * 2.1x (Q4_K, Q6_K) / 1.7x (Q8_0) faster than 8 vec_dot calls.
 */
#define MULTI_G 8
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#define ROWS_FOR(k) _Pragma("GCC unroll 8") for (int k = 0; k < na; k++)

/* dot(n, s, w, a) = rows with na = 1; dot_multi: groups of MULTI_G rows,
 * then the remainder as 4 + 2 + 1 */
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
static_assert(MULTI_G == 8, "DEFINE_DOTS handles a remainder of at most 7 rows");

/* --- float weights, float activations ------------------------------------ */

/* s = W[n] . x[n]; W F32, x F32 */
static void dot_f32_avx512(int64_t n, float *s, const void *w, const void *a)
{
    const float *x = w, *y = a;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), acc1);
        acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32), acc2);
        acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48), acc3);
    }
    for (; i + 16 <= n; i += 16)
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), acc0);
    if (i < n) {
        const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, x + i), _mm512_maskz_loadu_ps(k, y + i), acc1);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

/* s = W[n] . x[n]; W F16, x F32 */
static void dot_f16_avx512(int64_t n, float *s, const void *w, const void *a)
{
    const qhalf *x = w;
    const float *y = a;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
    int64_t i = 0;
#define LDH(off) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i + (off))))
    for (; i + 64 <= n; i += 64) {
        acc0 = _mm512_fmadd_ps(LDH(0), _mm512_loadu_ps(y + i), acc0);
        acc1 = _mm512_fmadd_ps(LDH(16), _mm512_loadu_ps(y + i + 16), acc1);
        acc2 = _mm512_fmadd_ps(LDH(32), _mm512_loadu_ps(y + i + 32), acc2);
        acc3 = _mm512_fmadd_ps(LDH(48), _mm512_loadu_ps(y + i + 48), acc3);
    }
    for (; i + 16 <= n; i += 16)
        acc0 = _mm512_fmadd_ps(LDH(0), _mm512_loadu_ps(y + i), acc0);
#undef LDH
    if (i < n) {
        const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        const __m512 wx = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, x + i));
        acc1 = _mm512_fmadd_ps(wx, _mm512_maskz_loadu_ps(k, y + i), acc1);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

/* s = W[n] . x[n]; W BF16, x F32 (bf16 -> f32 is exact: a 16-bit shift) */
static void dot_bf16_avx512(int64_t n, float *s, const void *w, const void *a)
{
    const uint16_t *x = w;
    const float *y = a;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
    int64_t i = 0;
#define LDB(v) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16))
#define LDBI(off) LDB(_mm256_loadu_si256((const __m256i *)(x + i + (off))))
    for (; i + 64 <= n; i += 64) {
        acc0 = _mm512_fmadd_ps(LDBI(0), _mm512_loadu_ps(y + i), acc0);
        acc1 = _mm512_fmadd_ps(LDBI(16), _mm512_loadu_ps(y + i + 16), acc1);
        acc2 = _mm512_fmadd_ps(LDBI(32), _mm512_loadu_ps(y + i + 32), acc2);
        acc3 = _mm512_fmadd_ps(LDBI(48), _mm512_loadu_ps(y + i + 48), acc3);
    }
    for (; i + 16 <= n; i += 16)
        acc0 = _mm512_fmadd_ps(LDBI(0), _mm512_loadu_ps(y + i), acc0);
    if (i < n) {
        const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        acc1 = _mm512_fmadd_ps(LDB(_mm256_maskz_loadu_epi16(k, x + i)), _mm512_maskz_loadu_ps(k, y + i), acc1);
    }
#undef LDBI
#undef LDB
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

/* --- 32-element blocks, Q8_0 activations (256-bit VNNI) ------------------ */

/* s = W[n] . x[n]; W Q8_0, x Q8_0 (na activation rows, see ROWS_FOR). Sign
 * trick |w| * (a with w's sign) into a 256-bit dpbusd per block, two
 * accumulators (even and odd blocks) per row. 256 bits on purpose: a block
 * is 32 bytes, and pairing two blocks in 512 bits costs three shuffle-port
 * uops per pair for the scales; measured on the 2-core Xeon VM (one thread,
 * rows of 2048 in L2, medians of 3) this is 8.9 -> 12.7 GB/s (16-bit
 * activations) and 13.1 -> 21.3 GB/s (8-bit) against the 512-bit pairing. */
ALWAYS_INLINE void q8_0_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                             const int na)
{
    const block_q8_0 *x = w;
    const int64_t nb = n / QK8_0;
    const __m256i z = _mm256_setzero_si256();
    __m256 acc0[MULTI_G], acc1[MULTI_G];
    ROWS_FOR(k) {
        acc0[k] = _mm256_setzero_ps();
        acc1[k] = _mm256_setzero_ps();
    }
#define Q80_ROW(acc, b, wv, wabs, xd)                                                                        \
    do {                                                                                                     \
        const __m256i av = _mm256_loadu_si256((const __m256i *)y[b].qs);                                     \
        const __m256i p = _mm256_dpbusd_epi32(z, wabs, _mm256_sign_epi8(av, wv));                            \
        acc = _mm256_fmadd_ps(_mm256_set1_ps((xd) * fp16_to_f32(y[b].d)), _mm256_cvtepi32_ps(p), acc);       \
    } while (0)
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        prefetch_block(x + i, 2 * sizeof(*x));
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)x[i].qs);
        const __m256i w1 = _mm256_loadu_si256((const __m256i *)x[i + 1].qs);
        const __m256i w0abs = _mm256_abs_epi8(w0), w1abs = _mm256_abs_epi8(w1);
        const float xd0 = fp16_to_f32(x[i].d), xd1 = fp16_to_f32(x[i + 1].d);
        ROWS_FOR(k) {
            const block_q8_0 *y = (const block_q8_0 *)(a + (size_t)k * as);
            Q80_ROW(acc0[k], i, w0, w0abs, xd0);
            Q80_ROW(acc1[k], i + 1, w1, w1abs, xd1);
        }
    }
    for (; i < nb; i++) {
        const __m256i w0 = _mm256_loadu_si256((const __m256i *)x[i].qs);
        const __m256i w0abs = _mm256_abs_epi8(w0);
        const float xd0 = fp16_to_f32(x[i].d);
        ROWS_FOR(k) {
            const block_q8_0 *y = (const block_q8_0 *)(a + (size_t)k * as);
            Q80_ROW(acc0[k], i, w0, w0abs, xd0);
        }
    }
#undef Q80_ROW
    ROWS_FOR(k) s[(size_t)k * ss] = hsum_f32_8(_mm256_add_ps(acc0[k], acc1[k]));
}
DEFINE_DOTS(dot_q8_0_avx512, q8_0_rows)

/* Two blocks' nibbles -> 64 bytes in element order: [lo(b0), hi(b0),
 * lo(b1), hi(b1)] (each 16 bytes), i.e. block b0's 32 weights then b1's. */
static inline __m512i nibbles_pair(const uint8_t *q0, const uint8_t *q1)
{
    /* [q0 q0 q1 q1] from two broadcast loads and a blend (no shuffle port),
     * then the odd 128-bit lanes shifted down by a nibble */
    const __m512i v = _mm512_mask_blend_epi64(0xF0, _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)q0)),
                                              _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)q1)));
    const __m512i sh = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
    return _mm512_and_si512(_mm512_srlv_epi64(v, sh), _mm512_set1_epi8(0x0F));
}

/* 8 fp16 values 'stride' bytes apart from p, as floats (one gather) */
static inline __m256 fp16_strided8(const void *p, __m256i offs)
{
    const __m256i v = _mm256_i32gather_epi32((const int *)p, offs, 1);
    return _mm256_cvtph_ps(_mm256_cvtepi32_epi16(v));
}

/* 16 fp16 values at byte offsets offs from p, as floats (one gather) */
static inline __m512 fp16_strided16(const void *p, __m512i offs)
{
    const __m512i v = _mm512_i32gather_epi32(offs, p, 1);
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v));
}

/* 16 e8m0 bytes at byte offsets offs from p -> 2^(e - 128) */
static inline __m512 e8m0_half_strided16(const void *p, __m512i offs)
{
    const __m512i e = _mm512_and_si512(_mm512_i32gather_epi32(offs, p, 1), _mm512_set1_epi32(0xff));
    const __m512i normal = _mm512_slli_epi32(_mm512_sub_epi32(e, _mm512_set1_epi32(1)), 23);
    const __m512i tiny = _mm512_sllv_epi32(_mm512_set1_epi32(0x00200000), e);
    return _mm512_castsi512_ps(_mm512_mask_blend_epi32(_mm512_cmplt_epu32_mask(e, _mm512_set1_epi32(2)), normal, tiny));
}

/* 8 e8m0 bytes 'stride' bytes apart from p -> 2^(e - 128) (see e8m0_half_to_f32) */
static inline __m256 e8m0_half_strided8(const void *p, __m256i offs)
{
    const __m256i e = _mm256_and_si256(_mm256_i32gather_epi32((const int *)p, offs, 1), _mm256_set1_epi32(0xff));
    const __m256i normal = _mm256_slli_epi32(_mm256_sub_epi32(e, _mm256_set1_epi32(1)), 23);
    const __m256i tiny = _mm256_sllv_epi32(_mm256_set1_epi32(0x00200000), e);
    return _mm256_castsi256_ps(_mm256_mask_blend_epi32(_mm256_cmplt_epu32_mask(e, _mm256_set1_epi32(2)), normal, tiny));
}

/* Rows body shared by the 4-bit (and Q5_0's 5-bit) 32-element formats (see
 * the *_rows() contract above: na activation rows, each running the
 * single-row steps). The weights are decoded once per block pair into
 * signed bytes (ws2(b): blocks b and b+1; ws1(b): block b alone, odd tail)
 * and meet the activations made unsigned, a + 128 (one xor): dpbusd gives
 * sum (a + 128) * w = sum a * w + 128 * sum w, and the second term depends
 * on the weights only, so each row's dpbusd starts from -128 * sum w,
 * computed once per pair for every row. One dpbusd per row and pair (the
 * offset form, unsigned weights against signed activations, needs two and a
 * subtraction per row). The integer sums are the same exact values either
 * way. Eight blocks per step: their weight scales (scale8(b): 8 floats)
 * times a row's activation scales come from two gathers, and each 512-bit
 * pair of blocks takes its two products from that vector with one permute
 * (two accumulators per row hide the FMA latency); the weights of the step
 * are prefetched KPF_DIST ahead. scale(b) is the block's weight scale
 * (tails). */
#define ROW_Q80(k) ((const block_q8_0 *)(a + (size_t)(k) * as))
/* np block pairs from block i on, the products scaled by lanes 2p, 2p + 1
 * of the rows' scale vectors sc[k] (one permute per pair and row) */
#define S8_PAIRS(ws2, np, sc)                                                                                  \
    _Pragma("GCC unroll 8") for (int p = 0; p < (np); p++) {                                                    \
        const int64_t b = i + 2 * p;                                                                           \
        const __m512i wv = ws2(b);                                                                             \
        const __m512i nc = _mm512_sub_epi32(z, _mm512_dpbusd_epi32(z, x80, wv));                               \
        const __m512i pidx = _mm512_inserti64x4(_mm512_set1_epi32(2 * p), _mm256_set1_epi32(2 * p + 1), 1);    \
        ROWS_FOR(k) {                                                                                          \
            const block_q8_0 *y = ROW_Q80(k);                                                                  \
            const __m512i av = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)y[b].qs)), \
                                                  _mm256_loadu_si256((const __m256i *)y[b + 1].qs), 1);        \
            const __m512i pr = _mm512_dpbusd_epi32(nc, _mm512_xor_si512(av, x80), wv);                         \
            const __m512 scp = _mm512_permutexvar_ps(pidx, sc[k]);                                             \
            if (p % 2)                                                                                         \
                acc2[k] = _mm512_fmadd_ps(scp, _mm512_cvtepi32_ps(pr), acc2[k]);                               \
            else                                                                                               \
                acc[k] = _mm512_fmadd_ps(scp, _mm512_cvtepi32_ps(pr), acc[k]);                                 \
        }                                                                                                      \
    }
#define DOT_S8_ROWS(ws2, ws1, scale, scale8, scale16)                                                          \
    do {                                                                                                       \
        const __m512i z = _mm512_setzero_si512();                                                              \
        const __m512i x80 = _mm512_set1_epi8((char)0x80);                                                      \
        const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);          \
        const __m512i yoffs = _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)sizeof(block_q8_0)));            \
        const __m512i xoffs = _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)sizeof(*x)));                    \
        __m512 acc[MULTI_G], acc2[MULTI_G];                                                                    \
        __m256 acc1[MULTI_G];                                                                                  \
        ROWS_FOR(k) {                                                                                          \
            acc[k] = acc2[k] = _mm512_setzero_ps();                                                            \
            acc1[k] = _mm256_setzero_ps();                                                                     \
        }                                                                                                      \
        int64_t i = 0;                                                                                         \
        for (; i + 16 <= nb; i += 16) {                                                                        \
            prefetch_block(x + i, 16 * sizeof(*x));                                                            \
            const __m512 ws16 = scale16(i);                                                                    \
            __m512 sc[MULTI_G];                                                                                \
            ROWS_FOR(k) sc[k] = _mm512_mul_ps(ws16, fp16_strided16(&ROW_Q80(k)[i].d, yoffs));                  \
            S8_PAIRS(ws2, 8, sc);                                                                              \
        }                                                                                                      \
        if (i + 8 <= nb) {                                                                                     \
            const __m256 ws8 = scale8(i);                                                                      \
            __m512 sc[MULTI_G];                                                                                \
            ROWS_FOR(k) sc[k] = _mm512_castps256_ps512(                                                        \
                _mm256_mul_ps(ws8, fp16_strided8(&ROW_Q80(k)[i].d, _mm512_castsi512_si256(yoffs))));           \
            S8_PAIRS(ws2, 4, sc);                                                                              \
            i += 8;                                                                                            \
        }                                                                                                      \
        ROWS_FOR(k) acc[k] = _mm512_add_ps(acc[k], acc2[k]);                                                   \
        for (; i + 2 <= nb; i += 2) {                                                                          \
            const __m512i wv = ws2(i);                                                                         \
            const __m512i nc = _mm512_sub_epi32(z, _mm512_dpbusd_epi32(z, x80, wv));                           \
            const float ws0 = scale(i), ws1_ = scale(i + 1);                                                   \
            ROWS_FOR(k) {                                                                                      \
                const block_q8_0 *y = ROW_Q80(k);                                                              \
                const __m512i av = _mm512_inserti64x4(                                                         \
                    _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)y[i].qs)),                      \
                    _mm256_loadu_si256((const __m256i *)y[i + 1].qs), 1);                                      \
                const __m512i pr = _mm512_dpbusd_epi32(nc, _mm512_xor_si512(av, x80), wv);                     \
                const __m512 sc = _mm512_insertf32x8(_mm512_set1_ps(ws0 * fp16_to_f32(y[i].d)),                \
                                                     _mm256_set1_ps(ws1_ * fp16_to_f32(y[i + 1].d)), 1);       \
                acc[k] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(pr), acc[k]);                                  \
            }                                                                                                  \
        }                                                                                                      \
        for (; i < nb; i++) {                                                                                  \
            const __m256i wv = ws1(i);                                                                         \
            const __m256i x80h = _mm512_castsi512_si256(x80);                                                  \
            const __m256i nc = _mm256_sub_epi32(_mm256_setzero_si256(),                                        \
                                                _mm256_dpbusd_epi32(_mm256_setzero_si256(), x80h, wv));        \
            const float ws = scale(i);                                                                         \
            ROWS_FOR(k) {                                                                                      \
                const block_q8_0 *y = ROW_Q80(k);                                                              \
                const __m256i av = _mm256_loadu_si256((const __m256i *)y[i].qs);                               \
                const __m256i p0 = _mm256_dpbusd_epi32(nc, _mm256_xor_si256(av, x80h), wv);                    \
                acc1[k] = _mm256_fmadd_ps(_mm256_set1_ps(ws * fp16_to_f32(y[i].d)), _mm256_cvtepi32_ps(p0), acc1[k]); \
            }                                                                                                  \
        }                                                                                                      \
        ROWS_FOR(k) s[(size_t)k * ss] = _mm512_reduce_add_ps(acc[k]) + hsum_f32_8(acc1[k]);                    \
    } while (0)

#define FP16_SCALE(b) fp16_to_f32(x[b].d)
#define FP16_SCALE8(b) fp16_strided8(&x[b].d, _mm512_castsi512_si256(xoffs))
#define FP16_SCALE16(b) fp16_strided16(&x[b].d, xoffs)

/* s = W[n] . x[n]; W Q4_0, x Q8_0 (nibble - 8) */
ALWAYS_INLINE void q4_0_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                             const int na)
{
    const block_q4_0 *x = w;
    const int64_t nb = n / QK4_0;
#define WS2(b) _mm512_sub_epi8(nibbles_pair(x[b].qs, x[(b) + 1].qs), _mm512_set1_epi8(8))
#define WS1(b) _mm256_sub_epi8(nibbles_32(x[b].qs), _mm256_set1_epi8(8))
    DOT_S8_ROWS(WS2, WS1, FP16_SCALE, FP16_SCALE8, FP16_SCALE16);
#undef WS1
#undef WS2
}
DEFINE_DOTS(dot_q4_0_avx512, q4_0_rows)

/* Q5_0 pair: qh bit i of each block adds 16 to its element i */
static inline __m512i q5_0_pair(const block_q5_0 *b)
{
    uint32_t h0, h1;
    memcpy(&h0, b[0].qh, sizeof(h0));
    memcpy(&h1, b[1].qh, sizeof(h1));
    const __m512i nib = nibbles_pair(b[0].qs, b[1].qs);
    return _mm512_mask_add_epi8(nib, (__mmask64)h0 | (__mmask64)h1 << 32, nib, _mm512_set1_epi8(16));
}

/* s = W[n] . x[n]; W Q5_0, x Q8_0 (5-bit value - 16) */
ALWAYS_INLINE void q5_0_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                             const int na)
{
    const block_q5_0 *x = w;
    const int64_t nb = n / QK5_0;
#define WS2(b) _mm512_sub_epi8(q5_0_pair(&x[b]), _mm512_set1_epi8(16))
#define WS1(b) _mm256_sub_epi8(q5_0_bytes(&x[b]), _mm256_set1_epi8(16))
    DOT_S8_ROWS(WS2, WS1, FP16_SCALE, FP16_SCALE8, FP16_SCALE16);
#undef WS1
#undef WS2
}
DEFINE_DOTS(dot_q5_0_avx512, q5_0_rows)

/* s = W[n] . x[n]; W IQ4_NL, x Q8_0 (16-entry table) */
ALWAYS_INLINE void iq4_nl_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                               const int na)
{
    const block_iq4_nl *x = w;
    const int64_t nb = n / QK4_NL;
    const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)quant_kvalues_iq4nl));
#define WS2(b) _mm512_shuffle_epi8(table, nibbles_pair(x[b].qs, x[(b) + 1].qs))
#define WS1(b) _mm256_shuffle_epi8(_mm512_castsi512_si256(table), nibbles_32(x[b].qs))
    DOT_S8_ROWS(WS2, WS1, FP16_SCALE, FP16_SCALE8, FP16_SCALE16);
#undef WS1
#undef WS2
}
DEFINE_DOTS(dot_iq4_nl_avx512, iq4_nl_rows)

/* s = W[n] . x[n]; W MXFP4, x Q8_0 (table of the doubled e2m1 values; the
 * e8m0 scale halved to match, see e8m0_half_to_f32) */
ALWAYS_INLINE void mxfp4_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                              const int na)
{
    const block_mxfp4 *x = w;
    const int64_t nb = n / QK_MXFP4;
    const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)quant_kvalues_mxfp4));
#define WS2(b) _mm512_shuffle_epi8(table, nibbles_pair(x[b].qs, x[(b) + 1].qs))
#define WS1(b) _mm256_shuffle_epi8(_mm512_castsi512_si256(table), nibbles_32(x[b].qs))
#define E8M0_SCALE(b) e8m0_half_to_f32(x[b].e)
#define E8M0_SCALE8(b) e8m0_half_strided8(&x[b].e, _mm512_castsi512_si256(xoffs))
#define E8M0_SCALE16(b) e8m0_half_strided16(&x[b].e, xoffs)
    DOT_S8_ROWS(WS2, WS1, E8M0_SCALE, E8M0_SCALE8, E8M0_SCALE16);
#undef E8M0_SCALE16
#undef E8M0_SCALE8
#undef E8M0_SCALE
#undef WS1
#undef WS2
}
DEFINE_DOTS(dot_mxfp4_avx512, mxfp4_rows)

#undef FP16_SCALE16
#undef FP16_SCALE8
#undef FP16_SCALE
#undef DOT_S8_ROWS
#undef S8_PAIRS
#undef ROW_Q80

/* --- 256-element super-blocks, Q8_K activations (512-bit) ----------------- */

/* Activation row k of a rows() body, as Q8_K blocks */
#define ROW_Q8K(k) ((const block_q8_K *)(a + (size_t)(k) * as))

/*
 * Q4_K/Q5_K super-block plumbing, arranged to keep the shuffle port free
 * (a vpermw is two uops there; the integer dots use the other port):
 * - the 8 scales and 8 mins (unpack_k4_scales) sit in every 128-bit lane,
 *   so one vpshufb per 64 weights gives that step's int16 scale vector
 *   [sc(2j) x 16 | sc(2j+1) x 16] (index k4_sc_idx(j));
 * - the mins meet the Q8_K bsums directly: int16 lane l of mins_dup is
 *   min(l / 2), so one vpmaddwd gives min(s) * (bsums[2s] + bsums[2s+1])
 *   for the 8 sub-blocks (no horizontal add per activation row);
 * - the 32 packed bytes of a step are broadcast-loaded to both halves and
 *   the high half shifted by 4 under a mask (no 256-bit insert).
 */
static inline __m512i k4_sc_idx(int j)
{
    int8_t b[64];
    for (int i = 0; i < 64; i++)
        b[i] = (int8_t)(i % 2 ? -128 : (i < 32 ? 2 * j : 2 * j + 1));
    return _mm512_loadu_si512(b);
}

static inline __m256i k4_mins_idx(void)
{
    int8_t b[32];
    for (int i = 0; i < 32; i++)
        b[i] = (int8_t)(i % 2 ? -128 : 8 + i / 4);
    return _mm256_loadu_si256((const __m256i *)b);
}

/* 64 unsigned nibbles of a 32-byte step: low nibbles, then high nibbles */
static inline __m512i k4_nibbles64(const uint8_t *q, __m512i m4)
{
    const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)q));
    return _mm512_and_si512(_mm512_mask_srli_epi16(v, (__mmask32)0xFFFF0000u, v, 4), m4);
}

/* Q4_K/Q5_K per-row tail of a super-block: the scaled integer sum and the
 * mins (dmin * sum(min * sums of 32 activations)) into row k's accumulators */
#define K4_ROW_ACC(k, i, mins_dup, sumi)                                                           \
    do {                                                                                                      \
        const block_q8_K *yk = ROW_Q8K(k) + (i);                                                              \
        const __m256i msum = _mm256_madd_epi16(mins_dup, _mm256_loadu_si256((const __m256i *)yk->bsums));     \
        const __m512 yd = _mm512_set1_ps(yk->d);                                                              \
        acc[k] = _mm512_fmadd_ps(_mm512_mul_ps(yd, vxd), _mm512_cvtepi32_ps(sumi), acc[k]);                   \
        accm[k] = _mm256_fmadd_ps(_mm256_mul_ps(_mm512_castps512_ps256(yd), vxdmin), _mm256_cvtepi32_ps(msum),   \
                                  accm[k]);                                                                   \
    } while (0)

/* final sum of row k of Q4_K/Q5_K: float lanes, then the mins */
#define K4_ROW_STORE(k) s[(size_t)(k) * ss] = _mm512_reduce_add_ps(acc[k]) + hsum_f32_8(accm[k])

/* Q4_K/Q5_K set-up shared by both bodies */
#define K4_CONSTS                                                                                             \
    const __m512i m4 = _mm512_set1_epi8(0x0F);                                                                \
    const __m512i sidx[4] = { k4_sc_idx(0), k4_sc_idx(1), k4_sc_idx(2), k4_sc_idx(3) };                       \
    const __m256i midx = k4_mins_idx();                                                                       \
    __m512 acc[MULTI_G];                                                                                      \
    __m256 accm[MULTI_G];                                                                                     \
    ROWS_FOR(k) {                                                                                             \
        acc[k] = _mm512_setzero_ps();                                                                         \
        accm[k] = _mm256_setzero_ps();                                                                        \
    }

/* per super-block: d and -dmin as vectors (the products with the
 * activation scale round exactly as scalar ones), the scale bytes in every lane, the mins */
#define K4_BLOCK_SCALES(blk)                                                                                  \
    const __m512 vxd = _mm512_set1_ps(fp16_to_f32((blk)->d));                                                \
    const __m256 vxdmin = _mm256_set1_ps(-fp16_to_f32((blk)->dmin));                                          \
    const __m128i sm = unpack_k4_scales((blk)->scales);                                                       \
    const __m512i scb = _mm512_broadcast_i32x4(sm);                                                           \
    const __m256i mins_dup = _mm256_shuffle_epi8(_mm512_castsi512_si256(scb), midx)

/* s = W[n] . x[n]; W Q4_K, x Q8_K */
ALWAYS_INLINE void q4_K_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                             const int na)
{
    const block_q4_K *x = w;
    const int64_t nb = n / QK_K;
    K4_CONSTS
    for (int64_t i = 0; i < nb; i++) {
        prefetch_block(x + i, sizeof(*x));
        K4_BLOCK_SCALES(x + i);
        __m512i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm512_setzero_si512();
        /* 64 elements per step: low nibbles of 32 bytes, then their high nibbles */
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m512i qq = k4_nibbles64(x[i].qs + 32 * j, m4);
            const __m512i scj = _mm512_shuffle_epi8(scb, sidx[j]);
            ROWS_FOR(k) {
                const __m512i p = _mm512_maddubs_epi16(qq, _mm512_loadu_si512(ROW_Q8K(k)[i].qs + 64 * j));
                sumi[k] = _mm512_dpwssd_epi32(sumi[k], p, scj);
            }
        }
        ROWS_FOR(k) K4_ROW_ACC(k, i, mins_dup, sumi[k]);
    }
    ROWS_FOR(k) K4_ROW_STORE(k);
}
DEFINE_DOTS(dot_q4_K_avx512, q4_K_rows)

/* [set1(1 << b) | set1(1 << (b + 1))]: selects bit b in the low 32 bytes,
 * bit b + 1 in the high 32. */
/* sumi += the 128 activations act[0..128) against two 64-byte weight vectors
 * (wa pairs with act[0..64), wb with act[64..128)), each 16-bit pair product
 * weighted by its sub-block scale (sca, scb). Shared by Q6_K, Q3_K and Q2_K. */
static inline __m512i dot128_scaled(__m512i sumi, __m512i wa, __m512i wb, const int8_t *act, __m512i sca,
                                    __m512i scb)
{
    const __m512i pa = _mm512_maddubs_epi16(wa, _mm512_loadu_si512(act));
    const __m512i pb = _mm512_maddubs_epi16(wb, _mm512_loadu_si512(act + 64));
    sumi = _mm512_dpwssd_epi32(sumi, pa, sca);
    return _mm512_dpwssd_epi32(sumi, pb, scb);
}

/* acc += d * (sumi - (sum(sc * bsums) << shift)): removes the offset
 * 1 << shift the weights were stored with (unsigned for maddubs). */
static inline __m512 finish_offset(__m512 acc, __m512i sumi, __m256i sc16, const block_q8_K *yk, int shift,
                                   float xd)
{
    const __m256i corr = scaled_bsums(sc16, yk->bsums);
    const __m512i si = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(_mm256_slli_epi32(corr, shift)));
    return _mm512_fmadd_ps(_mm512_set1_ps(yk->d * xd), _mm512_cvtepi32_ps(si), acc);
}

static inline __m512i bit_pair(int b)
{
    return _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << b)), _mm256_set1_epi8((char)(1 << (b + 1))), 1);
}

/* s = W[n] . x[n]; W Q5_K, x Q8_K */
ALWAYS_INLINE void q5_K_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                             const int na)
{
    const block_q5_K *x = w;
    const int64_t nb = n / QK_K;
    const __m512i sixteen = _mm512_set1_epi8(16);
    const __m512i hb[4] = { bit_pair(0), bit_pair(2), bit_pair(4), bit_pair(6) };
    K4_CONSTS
    for (int64_t i = 0; i < nb; i++) {
        prefetch_block(x + i, sizeof(*x));
        K4_BLOCK_SCALES(x + i);
        const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)x[i].qh));
        __m512i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            __m512i qq = k4_nibbles64(x[i].qs + 32 * j, m4);
            qq = _mm512_mask_add_epi8(qq, _mm512_test_epi8_mask(qh, hb[j]), qq, sixteen);
            const __m512i scj = _mm512_shuffle_epi8(scb, sidx[j]);
            ROWS_FOR(k) {
                const __m512i p = _mm512_maddubs_epi16(qq, _mm512_loadu_si512(ROW_Q8K(k)[i].qs + 64 * j));
                sumi[k] = _mm512_dpwssd_epi32(sumi[k], p, scj);
            }
        }
        ROWS_FOR(k) K4_ROW_ACC(k, i, mins_dup, sumi[k]);
    }
    ROWS_FOR(k) K4_ROW_STORE(k);
}
DEFINE_DOTS(dot_q5_K_avx512, q5_K_rows)

/* Q6_K scale vectors without vpermw: vpshufb puts signed scale base + L
 * (L = the 128-bit lane) in the high byte of every int16 lane of lane L,
 * an arithmetic shift right by 8 sign-extends it. */
static inline __m512i q6k_sc_idx(int base)
{
    int8_t b[64];
    for (int i = 0; i < 64; i++)
        b[i] = (int8_t)(i % 2 ? base + i / 16 : -128);
    return _mm512_loadu_si512(b);
}

/* s = W[n] . x[n]; W Q6_K, x Q8_K */
ALWAYS_INLINE void q6_K_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                             const int na)
{
    const block_q6_K *x = w;
    const int64_t nb = n / QK_K;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i m30 = _mm512_set1_epi8(0x30);
    const __m512i idx[4] = { q6k_sc_idx(0), q6k_sc_idx(4), q6k_sc_idx(8), q6k_sc_idx(12) };
    __m512 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        prefetch_block(x + i, sizeof(*x));
        const float xd = fp16_to_f32(x[i].d);
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[i].scales));
        const __m512i raw = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)x[i].scales));
        __m512i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            /* L = ql[0..63] of this half: low nibbles are elements 0..63,
             * high nibbles 64..127; QH = [qh | qh >> 2] supplies bits 4-5 */
            const __m512i L = _mm512_loadu_si512(x[i].ql + 64 * h);
            const __m512i QH0 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[i].qh + 32 * h)));
            const __m512i QH = _mm512_mask_srli_epi16(QH0, (__mmask32)0xFFFF0000u, QH0, 2);
            /* bits 4-5 of each weight: (QH & 3) << 4 and ((QH >> 4) & 3) << 4 */
            const __m512i ha = _mm512_and_si512(_mm512_slli_epi16(QH, 4), m30);
            const __m512i hb = _mm512_and_si512(QH, m30);
            /* (low nibble) | high bits, one ternary-logic op each (A & B) | C */
            const __m512i wa = _mm512_ternarylogic_epi32(L, m4, ha, 0xEA);
            const __m512i wb = _mm512_ternarylogic_epi32(_mm512_srli_epi16(L, 4), m4, hb, 0xEA);
            const __m512i sca = _mm512_srai_epi16(_mm512_shuffle_epi8(raw, idx[2 * h]), 8);
            const __m512i scb = _mm512_srai_epi16(_mm512_shuffle_epi8(raw, idx[2 * h + 1]), 8);
            ROWS_FOR(k) sumi[k] = dot128_scaled(sumi[k], wa, wb, ROW_Q8K(k)[i].qs + 128 * h, sca, scb);
        }
        /* weights are stored as q + 32 (0..63): subtract 32 * sum(sc * bsums) */
        ROWS_FOR(k) acc[k] = finish_offset(acc[k], sumi[k], sc16, ROW_Q8K(k) + i, 5, xd);
    }
    ROWS_FOR(k) s[(size_t)k * ss] = _mm512_reduce_add_ps(acc[k]);
}
DEFINE_DOTS(dot_q6_K_avx512, q6_K_rows)

/* s = W[n] . x[n]; W Q3_K, x Q8_K */
ALWAYS_INLINE void q3_K_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                             const int na)
{
    const block_q3_K *x = w;
    const int64_t nb = n / QK_K;
    const __m512i m3 = _mm512_set1_epi8(0x03);
    const __m512i four = _mm512_set1_epi8(4);
    const __m512i idx[4] = { scale_idx(0, 4), scale_idx(4, 4), scale_idx(8, 4), scale_idx(12, 4) };
    const __m512i hbit[4] = { bit_pair(0), bit_pair(2), bit_pair(4), bit_pair(6) };
    __m512 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        prefetch_block(x + i, sizeof(*x));
        const float xd = fp16_to_f32(x[i].d);
        const __m256i sc16 = _mm256_cvtepi8_epi16(unpack_q3k_scales(x[i].scales));
        const __m512i sc = _mm512_zextsi256_si512(sc16);
        const __m512i hm = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)x[i].hmask));
        __m512i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            __m512i ua = _mm512_and_si512(dup_shift(qv, 2), m3);                       /* shifts 0, 2 */
            __m512i ub = _mm512_and_si512(dup_shift(_mm256_srli_epi16(qv, 4), 2), m3); /* shifts 4, 6 */
            ua = _mm512_mask_add_epi8(ua, _mm512_test_epi8_mask(hm, hbit[2 * h]), ua, four);
            ub = _mm512_mask_add_epi8(ub, _mm512_test_epi8_mask(hm, hbit[2 * h + 1]), ub, four);
            const __m512i sca = _mm512_permutexvar_epi16(idx[2 * h], sc);
            const __m512i scb = _mm512_permutexvar_epi16(idx[2 * h + 1], sc);
            ROWS_FOR(k) sumi[k] = dot128_scaled(sumi[k], ua, ub, ROW_Q8K(k)[i].qs + 128 * h, sca, scb);
        }
        /* u = low2 + 4 * hbit = q + 4: subtract 4 * sum(sc * bsums) */
        ROWS_FOR(k) acc[k] = finish_offset(acc[k], sumi[k], sc16, ROW_Q8K(k) + i, 2, xd);
    }
    ROWS_FOR(k) s[(size_t)k * ss] = _mm512_reduce_add_ps(acc[k]);
}
DEFINE_DOTS(dot_q3_K_avx512, q3_K_rows)

/* s = W[n] . x[n]; W Q2_K, x Q8_K */
ALWAYS_INLINE void q2_K_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                             const int na)
{
    const block_q2_K *x = w;
    const int64_t nb = n / QK_K;
    const __m512i m3 = _mm512_set1_epi8(0x03);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m512i idx[4] = { scale_idx(0, 4), scale_idx(4, 4), scale_idx(8, 4), scale_idx(12, 4) };
    __m512 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        prefetch_block(x + i, sizeof(*x));
        const float xd = fp16_to_f32(x[i].d), xdmin = fp16_to_f32(x[i].dmin);
        const __m128i raw = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), m4));
        const __m512i sc = _mm512_zextsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(raw, m4)));
        __m512i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m256i qv = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * h));
            const __m512i ua = _mm512_and_si512(dup_shift(qv, 2), m3);
            const __m512i ub = _mm512_and_si512(dup_shift(_mm256_srli_epi16(qv, 4), 2), m3);
            const __m512i sca = _mm512_permutexvar_epi16(idx[2 * h], sc);
            const __m512i scb = _mm512_permutexvar_epi16(idx[2 * h + 1], sc);
            ROWS_FOR(k) sumi[k] = dot128_scaled(sumi[k], ua, ub, ROW_Q8K(k)[i].qs + 128 * h, sca, scb);
        }
        ROWS_FOR(k) {
            const block_q8_K *yk = ROW_Q8K(k) + i;
            const float d = yk->d * xd;
            const float dmin = -yk->d * xdmin;
            const __m256i msum = scaled_bsums(mn16, yk->bsums);
            acc[k] = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi[k]), acc[k]);
            acc[k] = _mm512_fmadd_ps(_mm512_set1_ps(dmin), _mm512_cvtepi32_ps(_mm512_zextsi256_si512(msum)), acc[k]);
        }
    }
    ROWS_FOR(k) s[(size_t)k * ss] = _mm512_reduce_add_ps(acc[k]);
}
DEFINE_DOTS(dot_q2_K_avx512, q2_K_rows)

/* IQ4_XS scale vectors: vpshufb puts the signed sub-block scale (a byte of
 * the lane-broadcast ls8) in the high byte of every int16 lane, an
 * arithmetic shift sign-extends it: lanes 0-15 get scale 2j, 16-31 2j+1. */
static inline __m512i iq4xs_sc_idx(int j)
{
    int8_t b[64];
    for (int i = 0; i < 64; i++)
        b[i] = (int8_t)(i % 2 ? (i < 32 ? 2 * j : 2 * j + 1) : -128);
    return _mm512_loadu_si512(b);
}

/* s = W[n] . x[n]; W IQ4_XS, x Q8_K. The looked-up values are signed (-127..
 * 113): |w| meets the activations with w's sign (maddubs pairs stay below
 * 2 * 127 * 127), so there is no offset to correct, and the int16 pair sums
 * take their sub-block scale by dpwssd, as in the K-quants. */
ALWAYS_INLINE void iq4_xs_rows(int64_t n, float *s, size_t ss, const void *w, const uint8_t *a, size_t as,
                               const int na)
{
    const block_iq4_xs *x = w;
    const int64_t nb = n / QK_K;
    const __m512i values = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)quant_kvalues_iq4nl));
    const __m512i mags = _mm512_abs_epi8(values);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i z = _mm512_setzero_si512();
    const __m256i sh_l = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    const __m256i sh_h = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i sidx[4] = { iq4xs_sc_idx(0), iq4xs_sc_idx(1), iq4xs_sc_idx(2), iq4xs_sc_idx(3) };
    __m512 acc[MULTI_G];
    ROWS_FOR(k) acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        prefetch_block(x + i, sizeof(*x));
        const float xd = fp16_to_f32(x[i].d);
        uint32_t sl;
        memcpy(&sl, x[i].scales_l, sizeof(sl));
        /* ls[ib] = (4 bits at 4 * ib of scales_l | 2 bits at 2 * ib of scales_h << 4) - 32 */
        const __m256i lo = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)sl), sh_l),
                                            _mm256_set1_epi32(0xF));
        const __m256i hi = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(x[i].scales_h), sh_h),
                                            _mm256_set1_epi32(3));
        const __m256i ls = _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), _mm256_set1_epi32(32));
        const __m512i ls8 = _mm512_broadcast_i32x4(_mm256_cvtepi32_epi8(ls));
        __m512i sumi[MULTI_G];
        ROWS_FOR(k) sumi[k] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            /* 32 bytes = sub-blocks 2j and 2j+1 (16 bytes each); lanes
             * [A, A, B, B], high nibbles in lanes 1 and 3 = element order */
            const __m512i q = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * j)));
            const __m512i t = _mm512_shuffle_i64x2(q, q, _MM_SHUFFLE(1, 1, 0, 0));
            const __m512i v = _mm512_and_si512(_mm512_mask_srli_epi16(t, (__mmask32)0xFF00FF00u, t, 4), m4);
            const __m512i wabs = _mm512_shuffle_epi8(mags, v);
            const __mmask64 neg = _mm512_movepi8_mask(_mm512_shuffle_epi8(values, v));
            const __m512i scj = _mm512_srai_epi16(_mm512_shuffle_epi8(ls8, sidx[j]), 8);
            ROWS_FOR(k) {
                const __m512i av = _mm512_loadu_si512(ROW_Q8K(k)[i].qs + 64 * j);
                const __m512i p = _mm512_maddubs_epi16(wabs, _mm512_mask_sub_epi8(av, neg, z, av));
                sumi[k] = _mm512_dpwssd_epi32(sumi[k], p, scj);
            }
        }
        ROWS_FOR(k) {
            const block_q8_K *yk = ROW_Q8K(k) + i;
            acc[k] = _mm512_fmadd_ps(_mm512_set1_ps(yk->d * xd), _mm512_cvtepi32_ps(sumi[k]), acc[k]);
        }
    }
    ROWS_FOR(k) s[(size_t)k * ss] = _mm512_reduce_add_ps(acc[k]);
}
DEFINE_DOTS(dot_iq4_xs_avx512, iq4_xs_rows)

#undef K4_ROW_STORE
#undef K4_CONSTS
#undef K4_BLOCK_SCALES
#undef K4_ROW_ACC
#undef ROW_Q8K

void quant_install_avx512(struct quant_traits *traits)
{
    /* vec_dot and vec_dot_multi are replaced together: the avx2 multi must
     * not survive beside an avx512 vec_dot (they would differ in rounding) */
#define SET(t, fn, multi)                \
    do {                                 \
        traits[t].vec_dot = fn;          \
        traits[t].vec_dot_multi = multi; \
    } while (0)
    SET(QT_F32, dot_f32_avx512, NULL);
    SET(QT_F16, dot_f16_avx512, NULL);
    SET(QT_BF16, dot_bf16_avx512, NULL);
    SET(QT_Q4_0, dot_q4_0_avx512, dot_q4_0_avx512_multi);
    SET(QT_Q5_0, dot_q5_0_avx512, dot_q5_0_avx512_multi);
    SET(QT_Q8_0, dot_q8_0_avx512, dot_q8_0_avx512_multi);
    SET(QT_IQ4_NL, dot_iq4_nl_avx512, dot_iq4_nl_avx512_multi);
    SET(QT_MXFP4, dot_mxfp4_avx512, dot_mxfp4_avx512_multi);
    SET(QT_Q2_K, dot_q2_K_avx512, dot_q2_K_avx512_multi);
    SET(QT_Q3_K, dot_q3_K_avx512, dot_q3_K_avx512_multi);
    SET(QT_Q4_K, dot_q4_K_avx512, dot_q4_K_avx512_multi);
    SET(QT_Q5_K, dot_q5_K_avx512, dot_q5_K_avx512_multi);
    SET(QT_Q6_K, dot_q6_K_avx512, dot_q6_K_avx512_multi);
    SET(QT_IQ4_XS, dot_iq4_xs_avx512, dot_iq4_xs_avx512_multi);
#undef SET
}
