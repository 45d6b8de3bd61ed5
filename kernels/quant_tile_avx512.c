/*
 * quant_tile_avx512.c - AVX-512 VNNI tile kernels: 16 weight rows at once
 * (one row per int32 lane) against any number of activation rows, for
 * decode (one activation row, matvec) and prompt processing (many, matmul).
 *
 * Owns: quant_install_tile_avx512(), which replaces vec_dot, vec_dot_multi
 * and sets gemm for Q4_K and Q6_K. Must not allocate or touch
 * vec_dot_ref. Called through the traits table by matvec.c; tests compare
 * gemm with vec_dot bit for bit and vec_dot with the reference.
 *
 * Technique. For each super-block the packed quants of 16 rows are
 * transposed (two 16 x 16 dword transposes) so that lane r of vector k holds
 * four consecutive quants of row r; one vpdpbusd of that vector with four
 * activation bytes broadcast from memory is 64 multiply-adds for 16 rows.
 * The scale, minimum and block scale of every row sit in the same lanes, so
 * the per-super-block work that a one-row kernel repeats per row and per
 * activation row (scale unpacking, offsets, horizontal sums) is done once
 * for 16 rows; the transposed weights stay in L1 for every activation row.
 *
 * Arithmetic (the same for every row count and activation count, so gemm,
 * vec_dot_multi and vec_dot give the same bits): per super-block the
 * integer sums are exact (isum = sum over sub-blocks of scale x the integer
 * dot, msum = sum of min x the activation sums), then in float
 *   acc  = fma((float)isum, d_w * d_a, acc)
 *   accm = fma((float)msum, (-dmin_w) * d_a, accm)
 * over the super-blocks in order, and the result is acc + accm.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "quant_ref.h"

void quant_install_tile_avx512(struct quant_traits *traits);

#define TILE_ALWAYS_INLINE static inline __attribute__((always_inline))
/* activation rows whose float accumulators live on the stack per call */
#define TILE_ACT_CHUNK 32

/* 16 x 16 dword transpose: in[r] = row r (16 dwords); out[c] lane r = in[r] dword c */
TILE_ALWAYS_INLINE void tile_transpose16(const __m512i in[16], __m512i out[16])
{
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(in[2 * i], in[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(in[2 * i], in[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    /* u[4i + c] 128-bit lane L = dword 4L + c of rows 4i..4i+3 */
    for (int c = 0; c < 4; c++) {
        const __m512i a0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88);
        const __m512i a1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xDD);
        const __m512i b0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88);
        const __m512i b1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xDD);
        out[c] = _mm512_shuffle_i32x4(a0, b0, 0x88);
        out[8 + c] = _mm512_shuffle_i32x4(a0, b0, 0xDD);
        out[4 + c] = _mm512_shuffle_i32x4(a1, b1, 0x88);
        out[12 + c] = _mm512_shuffle_i32x4(a1, b1, 0xDD);
    }
}

/* four bytes at p, broadcast to every dword lane */
TILE_ALWAYS_INLINE __m512i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return _mm512_set1_epi32(v);
}

/* byte offsets of the 16 rows of a tile; rows past nr repeat row nr - 1 */
static inline __m512i tile_row_offsets(int nr, size_t row_size)
{
    const __m512i r = _mm512_min_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                       _mm512_set1_epi32(nr - 1));
    return _mm512_mullo_epi32(r, _mm512_set1_epi32((int)row_size));
}

/* --- Q4_K ---------------------------------------------------------------- */

/* One super-block of 16 rows, unpacked: wv[8 * sb + c] lane r = the four
 * quants (0..15) of row r at elements 32 sb + 4c .. + 3; sc[sb] / mm[sb] the
 * sub-block scales / mins (the min in both int16 halves); d, dm = d and
 * -dmin of every row. */
struct q4k_tile {
    __m512i wv[64];
    __m512i sc[8];
    __m512i mm[8];
    __m512 d, dm;
};

/* rows[r] = byte offset of row r (rows past the matrix repeat the last) */
TILE_ALWAYS_INLINE void q4k_tile_load(struct q4k_tile *t, const uint8_t *w, __m512i offs, int64_t i)
{
    const uint8_t *blk = w + (size_t)i * sizeof(block_q4_K);
    int32_t off[16];
    _mm512_storeu_si512(off, offs);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (int half = 0; half < 2; half++) {
        __m512i in[16], out[16];
        for (int r = 0; r < 16; r++)
            in[r] = _mm512_loadu_si512(blk + off[r] + offsetof(block_q4_K, qs) + 64 * half);
        tile_transpose16(in, out);
        /* out[m] = qs dword 16 half + m of every row: j = 2 half + m / 8,
         * low nibbles = sub-block 2j, high = 2j + 1, element group m % 8 */
        for (int m = 0; m < 16; m++) {
            const int j = 2 * half + m / 8, c = m % 8;
            t->wv[8 * (2 * j) + c] = _mm512_and_si512(out[m], m4);
            t->wv[8 * (2 * j + 1) + c] = _mm512_and_si512(_mm512_srli_epi16(out[m], 4), m4);
        }
    }
    const __m512i dd = _mm512_i32gather_epi32(offs, blk, 1);
    const __m512i u0 = _mm512_i32gather_epi32(offs, blk + offsetof(block_q4_K, scales), 1);
    const __m512i u1 = _mm512_i32gather_epi32(offs, blk + offsetof(block_q4_K, scales) + 4, 1);
    const __m512i u2 = _mm512_i32gather_epi32(offs, blk + offsetof(block_q4_K, scales) + 8, 1);
    t->d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
    t->dm = _mm512_sub_ps(_mm512_setzero_ps(), _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16))));
    /* bytes of sc_lo/mn_lo = scales/mins 0..3, of sc_hi/mn_hi = 4..7 */
    const __m512i m6 = _mm512_set1_epi8(0x3F), m30 = _mm512_set1_epi8(0x30);
    const __m512i sc_lo = _mm512_and_si512(u0, m6), mn_lo = _mm512_and_si512(u1, m6);
    const __m512i sc_hi = _mm512_or_si512(_mm512_and_si512(u2, m4), _mm512_and_si512(_mm512_srli_epi32(u0, 2), m30));
    const __m512i mn_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u2, 4), m4),
                                          _mm512_and_si512(_mm512_srli_epi32(u1, 2), m30));
    const __m512i ff = _mm512_set1_epi32(0xFF);
    for (int q = 0; q < 4; q++) {
        t->sc[q] = _mm512_and_si512(_mm512_srli_epi32(sc_lo, 8 * q), ff);
        t->sc[4 + q] = _mm512_and_si512(_mm512_srli_epi32(sc_hi, 8 * q), ff);
        const __m512i ml = _mm512_and_si512(_mm512_srli_epi32(mn_lo, 8 * q), ff);
        const __m512i mh = _mm512_and_si512(_mm512_srli_epi32(mn_hi, 8 * q), ff);
        t->mm[q] = _mm512_or_si512(ml, _mm512_slli_epi32(ml, 16));
        t->mm[4 + q] = _mm512_or_si512(mh, _mm512_slli_epi32(mh, 16));
    }
}

/* isum and msum (see the header) of the tile against one Q8_K block */
TILE_ALWAYS_INLINE void q4k_tile_dot(const struct q4k_tile *t, const block_q8_K *y, __m512i *isum, __m512i *msum)
{
    __m512i s = _mm512_setzero_si512(), m = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int sb = 0; sb < 8; sb++) {
        __m512i p0 = _mm512_setzero_si512(), p1 = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int c = 0; c < 8; c += 2) {
            p0 = _mm512_dpbusd_epi32(p0, t->wv[8 * sb + c], bcast4(y->qs + 32 * sb + 4 * c));
            p1 = _mm512_dpbusd_epi32(p1, t->wv[8 * sb + c + 1], bcast4(y->qs + 32 * sb + 4 * c + 4));
        }
        s = _mm512_add_epi32(s, _mm512_mullo_epi32(_mm512_add_epi32(p0, p1), t->sc[sb]));
        int32_t bs;
        memcpy(&bs, y->bsums + 2 * sb, sizeof(bs));
        m = _mm512_dpwssd_epi32(m, t->mm[sb], _mm512_set1_epi32(bs));
    }
    *isum = s;
    *msum = m;
}

/* y[k * ys + r] = row r . activation k, r < nr (1..16), k < na */
static void gemm_q4_K_tile(int64_t n, float *y, size_t ys, const void *w, size_t row_size, int nr, const void *a,
                           size_t as, int na)
{
    const int64_t nb = n / QK_K;
    const __m512i offs = tile_row_offsets(nr, row_size);
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
    struct q4k_tile t;
    for (int k0 = 0; k0 < na; k0 += TILE_ACT_CHUNK) {
        const int nk = na - k0 < TILE_ACT_CHUNK ? na - k0 : TILE_ACT_CHUNK;
        __m512 acc[TILE_ACT_CHUNK], accm[TILE_ACT_CHUNK];
        for (int k = 0; k < nk; k++)
            acc[k] = accm[k] = _mm512_setzero_ps();
        for (int64_t i = 0; i < nb; i++) {
            q4k_tile_load(&t, w, offs, i);
            for (int k = 0; k < nk; k++) {
                const block_q8_K *yk = (const block_q8_K *)((const uint8_t *)a + (size_t)(k0 + k) * as) + i;
                __m512i isum, msum;
                q4k_tile_dot(&t, yk, &isum, &msum);
                const __m512 yd = _mm512_set1_ps(yk->d);
                acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(t.d, yd), acc[k]);
                accm[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(t.dm, yd), accm[k]);
            }
        }
        for (int k = 0; k < nk; k++)
            _mm512_mask_storeu_ps(y + (size_t)(k0 + k) * ys, keep, _mm512_add_ps(acc[k], accm[k]));
    }
}

static void dot_q4_K_tile(int64_t n, float *s, const void *w, const void *a)
{
    gemm_q4_K_tile(n, s, 1, w, 0, 1, a, 0, 1);
}

static void dot_q4_K_tile_multi(int64_t n, float *s, size_t ss, const void *w, const void *a, size_t as, int n_act)
{
    gemm_q4_K_tile(n, s, ss, w, 0, 1, a, as, n_act);
}

/* --- Q6_K ---------------------------------------------------------------- */

/* One super-block of 16 rows: wv[4 * sb + c] lane r = the four quants + 32
 * (0..63) of row r at elements 16 sb + 4c .. + 3; sc[sb] the signed
 * sub-block scales; scp[p] = scales 2p, 2p+1 as an int16 pair; d of every row. */
struct q6k_tile {
    __m512i wv[64];
    __m512i sc[16];
    __m512i scp[8];
    __m512 d;
};

TILE_ALWAYS_INLINE void q6k_tile_load(struct q6k_tile *t, const uint8_t *w, __m512i offs, int64_t i)
{
    const uint8_t *blk = w + (size_t)i * sizeof(block_q6_K);
    int32_t off[16];
    _mm512_storeu_si512(off, offs);
    const __m512i m4 = _mm512_set1_epi8(0x0F), m3 = _mm512_set1_epi8(0x03);
    __m512i in[16], qh[16];
    for (int r = 0; r < 16; r++)
        in[r] = _mm512_loadu_si512(blk + off[r] + offsetof(block_q6_K, qh));
    tile_transpose16(in, qh); /* qh[p]: qh dword p (h = p / 8, c = p % 8) */
    for (int h = 0; h < 2; h++) {
        __m512i ql[16];
        for (int r = 0; r < 16; r++)
            in[r] = _mm512_loadu_si512(blk + off[r] + offsetof(block_q6_K, ql) + 64 * h);
        tile_transpose16(in, ql); /* ql[m]: ql dword 16h + m */
        for (int qq = 0; qq < 4; qq++)
            for (int c = 0; c < 8; c++) {
                const __m512i l = ql[(qq & 1) * 8 + c];
                const __m512i lo = qq >= 2 ? _mm512_and_si512(_mm512_srli_epi16(l, 4), m4) : _mm512_and_si512(l, m4);
                const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(qh[8 * h + c], 2 * qq), m3);
                /* element group 32h + 8qq + c: sub-block 8h + 2qq + c / 4, c % 4 within */
                t->wv[4 * (8 * h + 2 * qq + c / 4) + c % 4] = _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4));
            }
    }
    const __m512i dd = _mm512_i32gather_epi32(offs, blk + offsetof(block_q6_K, d), 1);
    t->d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd));
    for (int q = 0; q < 4; q++) {
        const __m512i u = _mm512_i32gather_epi32(offs, blk + offsetof(block_q6_K, scales) + 4 * q, 1);
        for (int b = 0; b < 4; b++)
            t->sc[4 * q + b] = _mm512_srai_epi32(_mm512_slli_epi32(u, 24 - 8 * b), 24);
        /* int16 pairs (scale 4q, 4q+1) and (4q+2, 4q+3): sign-extended bytes */
        const __m512i lo16 = _mm512_srai_epi16(_mm512_slli_epi16(u, 8), 8); /* bytes 0, 2 */
        const __m512i hi16 = _mm512_srai_epi16(u, 8);                      /* bytes 1, 3 */
        /* pair (b0, b1) = lo16 low half | hi16 low half << 16 */
        t->scp[2 * q] = _mm512_or_si512(_mm512_and_si512(lo16, _mm512_set1_epi32(0xFFFF)), _mm512_slli_epi32(hi16, 16));
        t->scp[2 * q + 1] = _mm512_or_si512(_mm512_srli_epi32(lo16, 16), _mm512_andnot_si512(_mm512_set1_epi32(0xFFFF), hi16));
    }
}

/* isum (see the header) of the tile against one Q8_K block */
TILE_ALWAYS_INLINE __m512i q6k_tile_dot(const struct q6k_tile *t, const block_q8_K *y)
{
    __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512(), corr = _mm512_setzero_si512();
#pragma GCC unroll 16
    for (int sb = 0; sb < 16; sb += 2) {
        __m512i p0 = _mm512_setzero_si512(), p1 = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            p0 = _mm512_dpbusd_epi32(p0, t->wv[4 * sb + c], bcast4(y->qs + 16 * sb + 4 * c));
            p1 = _mm512_dpbusd_epi32(p1, t->wv[4 * sb + 4 + c], bcast4(y->qs + 16 * sb + 16 + 4 * c));
        }
        s0 = _mm512_add_epi32(s0, _mm512_mullo_epi32(p0, t->sc[sb]));
        s1 = _mm512_add_epi32(s1, _mm512_mullo_epi32(p1, t->sc[sb + 1]));
        int32_t bs;
        memcpy(&bs, y->bsums + sb, sizeof(bs));
        corr = _mm512_dpwssd_epi32(corr, t->scp[sb / 2], _mm512_set1_epi32(bs));
    }
    /* quants were stored + 32: subtract 32 * sum(scale * bsum) */
    return _mm512_sub_epi32(_mm512_add_epi32(s0, s1), _mm512_slli_epi32(corr, 5));
}

static void gemm_q6_K_tile(int64_t n, float *y, size_t ys, const void *w, size_t row_size, int nr, const void *a,
                           size_t as, int na)
{
    const int64_t nb = n / QK_K;
    const __m512i offs = tile_row_offsets(nr, row_size);
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
    struct q6k_tile t;
    for (int k0 = 0; k0 < na; k0 += TILE_ACT_CHUNK) {
        const int nk = na - k0 < TILE_ACT_CHUNK ? na - k0 : TILE_ACT_CHUNK;
        __m512 acc[TILE_ACT_CHUNK];
        for (int k = 0; k < nk; k++)
            acc[k] = _mm512_setzero_ps();
        for (int64_t i = 0; i < nb; i++) {
            q6k_tile_load(&t, w, offs, i);
            for (int k = 0; k < nk; k++) {
                const block_q8_K *yk = (const block_q8_K *)((const uint8_t *)a + (size_t)(k0 + k) * as) + i;
                const __m512i isum = q6k_tile_dot(&t, yk);
                acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(t.d, _mm512_set1_ps(yk->d)), acc[k]);
            }
        }
        for (int k = 0; k < nk; k++)
            _mm512_mask_storeu_ps(y + (size_t)(k0 + k) * ys, keep, acc[k]);
    }
}

static void dot_q6_K_tile(int64_t n, float *s, const void *w, const void *a)
{
    gemm_q6_K_tile(n, s, 1, w, 0, 1, a, 0, 1);
}

static void dot_q6_K_tile_multi(int64_t n, float *s, size_t ss, const void *w, const void *a, size_t as, int n_act)
{
    gemm_q6_K_tile(n, s, ss, w, 0, 1, a, as, n_act);
}

void quant_install_tile_avx512(struct quant_traits *traits)
{
    traits[QT_Q4_K].vec_dot = dot_q4_K_tile;
    traits[QT_Q4_K].vec_dot_multi = dot_q4_K_tile_multi;
    traits[QT_Q4_K].gemm = gemm_q4_K_tile;
    traits[QT_Q6_K].vec_dot = dot_q6_K_tile;
    traits[QT_Q6_K].vec_dot_multi = dot_q6_K_tile_multi;
    traits[QT_Q6_K].gemm = gemm_q6_K_tile;
}
