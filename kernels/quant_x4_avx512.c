/*
 * quant_x4_avx512.c - AVX-512 VNNI kernels that compute four weight rows at
 * once against any number of activation rows (decode: one; prompt: many),
 * with one exactly defined arithmetic per (row, activation row).
 *
 * Owns: quant_install_x4_avx512(), which sets vec_dot_x4 and replaces
 * vec_dot and vec_dot_multi for Q4_K (both become the four-row kernel with
 * the row repeated, so every entry point gives the same bits), and the
 * same for Q5_K and Q6_K. Runs after
 * quant_install_avx512(). Must not allocate or touch vec_dot_ref.
 *
 * Why four rows. A one-row K-quant kernel spends about as many instructions
 * per super-block on its scales, mins and float tail as on the integer dot
 * itself, and repeats that per activation row. Two rows share a 512-bit
 * vector here (one 256-bit half each: the 32 packed bytes of a 64-element
 * group, low nibbles against the group's first 32 activations broadcast to
 * both halves, high nibbles against the next 32), so the 6-bit scales of
 * four rows are unpacked together, and the tail (horizontal sums, float
 * conversion, scaling) is one short sequence per four rows.
 *
 * Arithmetic, per row and activation row (canonical: any kernel that claims
 * these bits, e.g. a wider tile for prompts, must do exactly this):
 *   per super-block, the exact integers
 *     isum = sum over sub-blocks j of sc_j * (sum of q * a over j)
 *     msum = sum over sub-blocks j of m_j * (sum of a over j, from bsums)
 *   then, super-block after super-block, in float
 *     acc  = fma((float)isum, d_w * d_a, acc)
 *     accm = fma((float)msum, (0 - dmin_w) * d_a, accm)
 *   and the result is acc + accm.
 * Integers cannot overflow: |sc * q * a| <= 63 * 15 * 127 per product, and
 * 256 of them stay below 2^31.
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "quant_k4_simd.h"
#include "quant_ref.h"

void quant_install_x4_avx512(struct quant_traits *traits);

#define X4_INLINE static inline __attribute__((always_inline))
/* activation rows whose accumulators one pass over the weights keeps */
#define X4_ACT_GROUP 8



/* vpshufb index: in every 128-bit lane, int16 lanes 0..3 = byte b and lanes
 * 4..7 = byte b + 1 of that lane, zero-extended (the layout vpackssdw gives
 * two vectors of int32 sums: four from the first, then four from the second) */
static inline __m512i x4_pair_to_i16(int b)
{
    int8_t v[64];
    for (int i = 0; i < 64; i++)
        v[i] = (int8_t)(i % 2 ? -128 : b + (i % 16) / 8);
    return _mm512_loadu_si512(v);
}

/* vpshufb index for the mins: in the 128-bit lane holding half h of a row's
 * 64-element group, int16 lanes 2m and 2m+1 = min 4h + m (bytes 8.. of the
 * unpacked scales), so vpmaddwd with the 16 bsums gives min_j * (bsum_2j +
 * bsum_2j+1) in int32 lane j of the row's half */
static inline __m512i x4_mins_idx(void)
{
    int8_t v[64];
    for (int i = 0; i < 64; i++) {
        int lane = i / 16, h = lane % 2, l16 = (i % 16) / 2;
        v[i] = (int8_t)(i % 2 ? -128 : 8 + 4 * h + l16 / 2);
    }
    return _mm512_loadu_si512(v);
}

/* 128-bit lanes [s0, s0, s1, s1] */
X4_INLINE __m512i x4_pair_lanes(__m128i s0, __m128i s1)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_broadcastsi128_si256(s0)),
                              _mm256_broadcastsi128_si256(s1), 1);
}

/* 32 bytes broadcast to both 256-bit halves */
X4_INLINE __m512i x4_bcast32(const void *p)
{
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p));
}

/*
 * y[k * ys + r] = dot(w[r], a + k * as) for r < nr, k < na (na <= X4_ACT_GROUP
 * once inlined with a constant). Per 64-element group j and row pair p the
 * weights are one vector (row 2p in the low half, 2p+1 in the high half);
 * sumi[p][k] collects the scaled integer dot per 32-bit lane, 8 lanes per
 * row, exact.
 */
/* Q5_K is Q4_K with a fifth bit per quant (qh: bit 2j of byte l for element
 * l of sub-block 2j, bit 2j+1 for element l of sub-block 2j+1), quants 0..31:
 * the same body with five = 1 ORs bit 4 in; every product and sum bound
 * above holds with 31 for 15 (|sum of four| <= 4 * 31 * 128 < 2^15). */
X4_INLINE void k45_x4_rows(int64_t n, float *y, size_t ys, const uint8_t *const *w, int nr, const uint8_t *a,
                           size_t as, const int na, const int five)
{
    /* block_q4_K and block_q5_K share d, dmin and scales; Q5_K has qh before qs */
    const size_t bsize = five ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const size_t qs_off = five ? offsetof(block_q5_K, qs) : offsetof(block_q4_K, qs);
    const __m512i m10 = _mm512_set1_epi8(0x10);
    const int64_t nb = n / QK_K;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i midx = x4_mins_idx();
    /* float lanes per 128-bit lane r: [d_r, -dmin_r, d_r, -dmin_r] */
    const __m512i dd_idx = _mm512_setr_epi32(0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7);
    __m512 acc[X4_ACT_GROUP];
#pragma GCC unroll 8
    for (int k = 0; k < na; k++)
        acc[k] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const block_q4_K *b0 = (const block_q4_K *)(const void *)(w[0] + (size_t)i * bsize);
        const block_q4_K *b1 = (const block_q4_K *)(const void *)(w[1] + (size_t)i * bsize);
        const block_q4_K *b2 = (const block_q4_K *)(const void *)(w[2] + (size_t)i * bsize);
        const block_q4_K *b3 = (const block_q4_K *)(const void *)(w[3] + (size_t)i * bsize);
        const uint8_t *q0 = (const uint8_t *)b0 + qs_off, *q1 = (const uint8_t *)b1 + qs_off;
        const uint8_t *q2 = (const uint8_t *)b2 + qs_off, *q3 = (const uint8_t *)b3 + qs_off;
        quant_x4_prefetch(w, i, 1, bsize);
        /* Q5_K: the 32 qh bytes of rows 0/1 and 2/3, one row per 256-bit half */
        __m512i qh0 = _mm512_setzero_si512(), qh1 = _mm512_setzero_si512();
        if (five) {
            const size_t ho = offsetof(block_q5_K, qh);
            qh0 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const void *)((const uint8_t *)b0 + ho))),
                                     _mm256_loadu_si256((const void *)((const uint8_t *)b1 + ho)), 1);
            qh1 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const void *)((const uint8_t *)b2 + ho))),
                                     _mm256_loadu_si256((const void *)((const uint8_t *)b3 + ho)), 1);
        }
        /* d and dmin of the four rows (fp16 pairs) -> [d, -dmin] per row */
        uint32_t h0, h1, h2, h3;
        memcpy(&h0, &b0->d, 4);
        memcpy(&h1, &b1->d, 4);
        memcpy(&h2, &b2->d, 4);
        memcpy(&h3, &b3->d, 4);
        __m256 f8 = _mm256_cvtph_ps(_mm_setr_epi32((int)h0, (int)h1, (int)h2, (int)h3));
        f8 = _mm256_mask_sub_ps(f8, 0xAA, _mm256_setzero_ps(), f8);
        const __m512 ddz = _mm512_permutexvar_ps(dd_idx, _mm512_castps256_ps512(f8));
        const __m512i sp0 = x4_pair_lanes(unpack_k4_scales(b0->scales), unpack_k4_scales(b1->scales));
        const __m512i sp1 = x4_pair_lanes(unpack_k4_scales(b2->scales), unpack_k4_scales(b3->scales));
        __m512i s0[X4_ACT_GROUP], s1[X4_ACT_GROUP];
#pragma GCC unroll 8
        for (int k = 0; k < na; k++)
            s0[k] = s1[k] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const __m512i w0 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(q0 + 32 * j))),
                                                  _mm256_loadu_si256((const __m256i *)(q1 + 32 * j)), 1);
            const __m512i w1 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(q2 + 32 * j))),
                                                  _mm256_loadu_si256((const __m256i *)(q3 + 32 * j)), 1);
            __m512i lo0 = _mm512_and_si512(w0, m4), hi0 = _mm512_and_si512(_mm512_srli_epi16(w0, 4), m4);
            __m512i lo1 = _mm512_and_si512(w1, m4), hi1 = _mm512_and_si512(_mm512_srli_epi16(w1, 4), m4);
            if (five) {
                /* bit 2j (2j+1) of each qh byte to bit 4: a 16-bit shift moves no
                 * other byte's bit into bit 4 for shifts of at most 4 */
                const __m512i l0 = 2 * j <= 4 ? _mm512_slli_epi16(qh0, 4 - 2 * j) : _mm512_srli_epi16(qh0, 2 * j - 4);
                const __m512i h0 = 2 * j + 1 <= 4 ? _mm512_slli_epi16(qh0, 3 - 2 * j) : _mm512_srli_epi16(qh0, 2 * j - 3);
                const __m512i l1 = 2 * j <= 4 ? _mm512_slli_epi16(qh1, 4 - 2 * j) : _mm512_srli_epi16(qh1, 2 * j - 4);
                const __m512i h1 = 2 * j + 1 <= 4 ? _mm512_slli_epi16(qh1, 3 - 2 * j) : _mm512_srli_epi16(qh1, 2 * j - 3);
                lo0 = _mm512_ternarylogic_epi32(l0, m10, lo0, 0xEA); /* (l0 & 0x10) | lo0 */
                hi0 = _mm512_ternarylogic_epi32(h0, m10, hi0, 0xEA);
                lo1 = _mm512_ternarylogic_epi32(l1, m10, lo1, 0xEA);
                hi1 = _mm512_ternarylogic_epi32(h1, m10, hi1, 0xEA);
            }
            const __m512i ip = x4_pair_to_i16(2 * j);
            const __m512i c0 = _mm512_shuffle_epi8(sp0, ip), c1 = _mm512_shuffle_epi8(sp1, ip);
#pragma GCC unroll 8
            for (int k = 0; k < na; k++) {
                const block_q8_K *yk = (const block_q8_K *)(const void *)(a + (size_t)k * as) + i;
                const __m512i al = x4_bcast32(yk->qs + 64 * j), ah = x4_bcast32(yk->qs + 64 * j + 32);
                const __m512i z = _mm512_setzero_si512();
                /* sums of four products (|sum| <= 4 * 15 * 128: int16), sub-block
                 * 2j's and 2j+1's packed side by side, then scaled in pairs */
                const __m512i p0 = _mm512_packs_epi32(_mm512_dpbusd_epi32(z, lo0, al), _mm512_dpbusd_epi32(z, hi0, ah));
                const __m512i p1 = _mm512_packs_epi32(_mm512_dpbusd_epi32(z, lo1, al), _mm512_dpbusd_epi32(z, hi1, ah));
                s0[k] = _mm512_dpwssd_epi32(s0[k], p0, c0);
                s1[k] = _mm512_dpwssd_epi32(s1[k], p1, c1);
            }
        }
        const __m512i md0 = _mm512_shuffle_epi8(sp0, midx), md1 = _mm512_shuffle_epi8(sp1, midx);
#pragma GCC unroll 8
        for (int k = 0; k < na; k++) {
            const block_q8_K *yk = (const block_q8_K *)(const void *)(a + (size_t)k * as) + i;
            const __m512i bs = x4_bcast32(yk->bsums);
            const __m512i u0 = _mm512_madd_epi16(md0, bs), u1 = _mm512_madd_epi16(md1, bs);
            /* 128-bit lane r: 4 partial isums of row r, then 4 partial msums */
            const __m512i t1 = _mm512_add_epi32(_mm512_shuffle_i32x4(s0[k], s1[k], 0x88),
                                                _mm512_shuffle_i32x4(s0[k], s1[k], 0xDD));
            const __m512i t2 = _mm512_add_epi32(_mm512_shuffle_i32x4(u0, u1, 0x88), _mm512_shuffle_i32x4(u0, u1, 0xDD));
            const __m512i z = _mm512_add_epi32(_mm512_unpacklo_epi32(t1, t2), _mm512_unpackhi_epi32(t1, t2));
            /* lanes [isum, msum, isum, msum] of row r */
            const __m512i z2 = _mm512_add_epi32(z, _mm512_shuffle_epi32(z, _MM_PERM_BADC));
            acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(z2), _mm512_mul_ps(ddz, _mm512_set1_ps(yk->d)), acc[k]);
        }
    }
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
#pragma GCC unroll 8
    for (int k = 0; k < na; k++) {
        /* acc + accm in lane 4r, then rows 0..3 packed */
        const __m512 t = _mm512_add_ps(acc[k], _mm512_permute_ps(acc[k], 0xB1));
        const __m512 c = _mm512_maskz_compress_ps(0x1111, t);
        _mm512_mask_storeu_ps(y + (size_t)k * ys, keep, c);
    }
}

X4_INLINE void q4k_x4_rows(int64_t n, float *y, size_t ys, const uint8_t *const *w, int nr, const uint8_t *a,
                           size_t as, const int na)
{
    k45_x4_rows(n, y, ys, w, nr, a, as, na, 0);
}

X4_INLINE void q5k_x4_rows(int64_t n, float *y, size_t ys, const uint8_t *const *w, int nr, const uint8_t *a,
                           size_t as, const int na)
{
    k45_x4_rows(n, y, ys, w, nr, a, as, na, 1);
}

/* --- Q6_K ---------------------------------------------------------------- */

/*
 * Q6_K arithmetic (canonical, as for Q4_K): per super-block the exact integer
 *   isum = sum over sub-blocks of sc * (sum of q * a) - 32 * sum of sc * bsum
 * (the quants are stored + 32), then acc = fma((float)isum, d_w * d_a, acc)
 * super-block after super-block. One row per vector here (a Q6_K
 * super-block half is 64 bytes of low bits): four rows share the tail.
 */

/* vpshufb index: the high byte of int16 lanes 0..3 of 128-bit lane L =
 * scale base + L, of lanes 4..7 = scale base + 4 + L (an arithmetic shift by
 * 8 then sign-extends it): the scales of the sums that vpackssdw of the
 * vectors for scales base.. and base + 4.. puts there */
static inline __m512i x4_q6k_sc_idx(int base)
{
    int8_t b[64];
    for (int i = 0; i < 64; i++)
        b[i] = (int8_t)(i % 2 ? base + 4 * ((i % 16) / 8) + i / 16 : -128);
    return _mm512_loadu_si512(b);
}

/* lanes 0..3 = the lane sums of v[0..3] (exact) */
X4_INLINE __m128i x4_hsum4(__m512i v0, __m512i v1, __m512i v2, __m512i v3)
{
    const __m512i a = _mm512_add_epi32(_mm512_unpacklo_epi32(v0, v1), _mm512_unpackhi_epi32(v0, v1));
    const __m512i b = _mm512_add_epi32(_mm512_unpacklo_epi32(v2, v3), _mm512_unpackhi_epi32(v2, v3));
    const __m512i c = _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
    const __m256i d = _mm256_add_epi32(_mm512_castsi512_si256(c), _mm512_extracti64x4_epi64(c, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(d), _mm256_extracti128_si256(d, 1));
}

X4_INLINE void q6k_x4_rows(int64_t n, float *y, size_t ys, const uint8_t *const *w, int nr, const uint8_t *a,
                           size_t as, const int na)
{
    const int64_t nb = n / QK_K;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    const __m512i idx[2] = { x4_q6k_sc_idx(0), x4_q6k_sc_idx(8) };
    __m128 acc[X4_ACT_GROUP];
#pragma GCC unroll 8
    for (int k = 0; k < na; k++)
        acc[k] = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        quant_x4_prefetch(w, i, 1, sizeof(block_q6_K));
        __m512i wv[4][4], sv[4][2];
        __m256i sc16[4];
        uint16_t dh[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const block_q6_K *x = (const block_q6_K *)(const void *)w[r] + i;
            memcpy(&dh[r], &x->d, sizeof(dh[r]));
            sc16[r] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
            const __m512i raw = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)x->scales));
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                /* low nibbles = elements 0..63 of the half, high nibbles 64..127;
                 * [qh | qh >> 2] supplies bits 4-5 */
                const __m512i L = _mm512_loadu_si512(x->ql + 64 * h);
                const __m512i QH0 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->qh + 32 * h)));
                const __m512i QH = _mm512_mask_srli_epi16(QH0, (__mmask32)0xFFFF0000u, QH0, 2);
                const __m512i ha = _mm512_and_si512(_mm512_slli_epi16(QH, 4), m30);
                const __m512i hb = _mm512_and_si512(QH, m30);
                wv[r][2 * h] = _mm512_ternarylogic_epi32(L, m4, ha, 0xEA);
                wv[r][2 * h + 1] = _mm512_ternarylogic_epi32(_mm512_srli_epi16(L, 4), m4, hb, 0xEA);
            }
            sv[r][0] = _mm512_srai_epi16(_mm512_shuffle_epi8(raw, idx[0]), 8);
            sv[r][1] = _mm512_srai_epi16(_mm512_shuffle_epi8(raw, idx[1]), 8);
        }
        const __m128 d4 = _mm_cvtph_ps(_mm_setr_epi16((short)dh[0], (short)dh[1], (short)dh[2], (short)dh[3], 0, 0, 0, 0));
#pragma GCC unroll 8
        for (int k = 0; k < na; k++) {
            const block_q8_K *yk = (const block_q8_K *)(const void *)(a + (size_t)k * as) + i;
            const __m256i bs = _mm256_loadu_si256((const __m256i *)yk->bsums);
            __m512i v[4];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                /* sums of four products (|sum| <= 4 * 63 * 128: int16) of
                 * vectors q and q + 1 packed side by side, scaled in pairs */
                const __m512i z = _mm512_setzero_si512();
                __m512i t[4];
#pragma GCC unroll 4
                for (int q = 0; q < 4; q++)
                    t[q] = _mm512_dpbusd_epi32(z, wv[r][q], _mm512_loadu_si512(yk->qs + 64 * q));
                __m512i sumi = _mm512_madd_epi16(_mm512_packs_epi32(t[0], t[1]), sv[r][0]);
                sumi = _mm512_dpwssd_epi32(sumi, _mm512_packs_epi32(t[2], t[3]), sv[r][1]);
                const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(sc16[r], bs), 5);
                v[r] = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(corr));
            }
            const __m128i isum = x4_hsum4(v[0], v[1], v[2], v[3]);
            acc[k] = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), _mm_mul_ps(d4, _mm_set1_ps(yk->d)), acc[k]);
        }
    }
    const __mmask8 keep = (__mmask8)((1u << nr) - 1);
#pragma GCC unroll 8
    for (int k = 0; k < na; k++)
        _mm_mask_storeu_ps(y + (size_t)k * ys, keep, acc[k]);
}

/* One entry for every activation count: groups of X4_ACT_GROUP, then 4, 2, 1
 * (each a constant-count instance of the body, same bits per row), and the
 * one-row entries: the same kernel with the row in every lane. */
#define X4_DEFINE(name, rows)                                                                                  \
    static void name(int64_t n, float *y, size_t ys, const uint8_t *const *w, int nr, const void *a, size_t as,  \
                     int na)                                                                                  \
    {                                                                                                         \
        const uint8_t *ap = a;                                                                                \
        int k = 0;                                                                                            \
        for (; k + X4_ACT_GROUP <= na; k += X4_ACT_GROUP)                                                     \
            rows(n, y + (size_t)k * ys, ys, w, nr, ap + (size_t)k * as, as, X4_ACT_GROUP);                    \
        if (na - k >= 4) {                                                                                    \
            rows(n, y + (size_t)k * ys, ys, w, nr, ap + (size_t)k * as, as, 4);                               \
            k += 4;                                                                                           \
        }                                                                                                     \
        if (na - k >= 2) {                                                                                    \
            rows(n, y + (size_t)k * ys, ys, w, nr, ap + (size_t)k * as, as, 2);                               \
            k += 2;                                                                                           \
        }                                                                                                     \
        if (na - k >= 1)                                                                                      \
            rows(n, y + (size_t)k * ys, ys, w, nr, ap + (size_t)k * as, as, 1);                               \
    }                                                                                                         \
    QUANT_X4_ROW_ENTRIES(name)
_Static_assert(X4_ACT_GROUP == 8, "X4_DEFINE handles a remainder of at most 7 rows");

X4_DEFINE(dot_q4_K_x4, q4k_x4_rows)
X4_DEFINE(dot_q5_K_x4, q5k_x4_rows)
X4_DEFINE(dot_q6_K_x4, q6k_x4_rows)

void quant_install_x4_avx512(struct quant_traits *traits)
{
    traits[QT_Q4_K].vec_dot = dot_q4_K_x4_one;
    traits[QT_Q4_K].vec_dot_multi = dot_q4_K_x4_multi;
    traits[QT_Q4_K].vec_dot_x4 = dot_q4_K_x4;
    traits[QT_Q5_K].vec_dot = dot_q5_K_x4_one;
    traits[QT_Q5_K].vec_dot_multi = dot_q5_K_x4_multi;
    traits[QT_Q5_K].vec_dot_x4 = dot_q5_K_x4;
    traits[QT_Q6_K].vec_dot = dot_q6_K_x4_one;
    traits[QT_Q6_K].vec_dot_multi = dot_q6_K_x4_multi;
    traits[QT_Q6_K].vec_dot_x4 = dot_q6_K_x4;
}
