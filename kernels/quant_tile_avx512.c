/*
 * quant_tile_avx512.c - AVX-512 VNNI tile kernels for prompt processing:
 * sixteen weight rows (one per int32 lane) against many activation rows.
 *
 * Owns: quant_install_tile_avx512(), which sets traits.gemm16 for Q4_K and
 * Q6_K.
 * Runs after quant_install_x4_avx512() and must give, per (row,
 * activation row), exactly the bits of that file's kernel (its header
 * defines the arithmetic: exact integer sums per super-block, one fma per
 * super-block and sum). Must not allocate or touch the other entries.
 * Called by matvec.c for products with many activation rows; tests compare
 * matmul with matvec bit for bit.
 *
 * Technique. Per super-block the packed quants of the sixteen rows are
 * transposed once (two 16 x 16 dword transposes), so that lane r of a
 * vector holds four consecutive quants of row r; one vpdpbusd of that
 * vector with four activation bytes broadcast from memory is 64
 * multiply-adds for sixteen rows, and each such weight vector serves four
 * activation rows from registers. Scales, mins and the block scales of the
 * sixteen rows sit in the same lanes, so the per-row work of a one-row
 * kernel (scale unpacking, horizontal sums, the float tail) is done once
 * per sixteen rows. Decode (one activation row) would pay the transposes
 * for nothing: it keeps the four-row kernel.
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "quant_ref.h"
#include "quant_tile_simd.h"

void quant_install_tile_avx512(struct quant_traits *traits);

/* activation rows that share each weight vector from registers */
#define TILE_T 4

/* --- Q4_K ---------------------------------------------------------------- */

/* One super-block of sixteen rows, unpacked: wv[8 s + c] lane r = the four
 * quants (0..15) of row r at elements 32 s + 4 c .. + 3 (sub-block s);
 * sc[s] the sub-block scales, mm[s] the mins in both int16 halves; d and
 * dm = d and 0 - dmin of every row. */
struct q4k_tile {
    __m512i wv[64];
    __m512i sc[8];
    __m512i mm[8];
    __m512 d, dm;
};

TILE_INLINE void q4k_tile_load(struct q4k_tile *t, const uint8_t *blk, __m512i offs, const int32_t off[16])
{
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (int half = 0; half < 2; half++) {
        __m512i in[16], out[16];
        for (int r = 0; r < 16; r++)
            in[r] = _mm512_loadu_si512(blk + off[r] + offsetof(block_q4_K, qs) + 64 * half);
        tile_transpose16(in, out);
        /* out[m] = qs dword 16 half + m: 64-element group j = 2 half + m / 8,
         * low nibbles in sub-block 2j, high nibbles in 2j + 1, position m % 8 */
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

/* acc/accm[k] += the super-block's terms for activation rows k < nt (<= TILE_T) */
TILE_INLINE void q4k_tile_acts(const struct q4k_tile *t, const block_q8_K *const *y, __m512 *acc, __m512 *accm,
                               const int nt)
{
    __m512i isum[TILE_T], msum[TILE_T];
#pragma GCC unroll 4
    for (int k = 0; k < nt; k++)
        isum[k] = msum[k] = _mm512_setzero_si512();
#pragma GCC unroll 1
    for (int s = 0; s < 8; s++) {
        __m512i p[TILE_T];
#pragma GCC unroll 4
        for (int k = 0; k < nt; k++)
            p[k] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            const __m512i w = t->wv[8 * s + c];
#pragma GCC unroll 4
            for (int k = 0; k < nt; k++)
                p[k] = _mm512_dpbusd_epi32(p[k], w, bcast4(y[k]->qs + 32 * s + 4 * c));
        }
#pragma GCC unroll 4
        for (int k = 0; k < nt; k++) {
            isum[k] = _mm512_add_epi32(isum[k], _mm512_mullo_epi32(p[k], t->sc[s]));
            msum[k] = _mm512_dpwssd_epi32(msum[k], t->mm[s], bcast4(y[k]->bsums + 2 * s));
        }
    }
#pragma GCC unroll 4
    for (int k = 0; k < nt; k++) {
        const __m512 yd = _mm512_set1_ps(y[k]->d);
        acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[k]), _mm512_mul_ps(t->d, yd), acc[k]);
        accm[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(msum[k]), _mm512_mul_ps(t->dm, yd), accm[k]);
    }
}

static void gemm_q4_K_tile(int64_t n, float *y, size_t ys, const uint8_t *w, size_t row_size, int nr, const void *a,
                           size_t as, int n_out, int passes)
{
    const int na = n_out * passes;
    const int64_t nb = n / QK_K;
    int32_t off[16];
    const __m512i offs = tile_offsets(nr, row_size, off);
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
    __m512 acc[QUANT_GEMM16_MAX_ACT], accm[QUANT_GEMM16_MAX_ACT];
    for (int k = 0; k < na; k++)
        acc[k] = accm[k] = _mm512_setzero_ps();
    struct q4k_tile t;
    const uint8_t *ap = a;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *blk = w + (size_t)i * sizeof(block_q4_K);
        tile_prefetch_next(blk, off, sizeof(block_q4_K));
        q4k_tile_load(&t, blk, offs, off);
        int k = 0;
        for (; k + TILE_T <= na; k += TILE_T) {
            const block_q8_K *yk[TILE_T];
            for (int q = 0; q < TILE_T; q++)
                yk[q] = (const block_q8_K *)(const void *)(ap + (size_t)(k + q) * as) + i;
            q4k_tile_acts(&t, yk, acc + k, accm + k, TILE_T);
        }
        for (; k < na; k++) {
            const block_q8_K *yk = (const block_q8_K *)(const void *)(ap + (size_t)k * as) + i;
            q4k_tile_acts(&t, &yk, acc + k, accm + k, 1);
        }
    }
    if (passes == 1) {
        for (int k = 0; k < na; k++)
            _mm512_mask_storeu_ps(y + (size_t)k * ys, keep, _mm512_add_ps(acc[k], accm[k]));
        return;
    }
    for (int k = 0; k < n_out; k++)
        _mm512_mask_storeu_ps(y + (size_t)k * ys, keep,
                              _mm512_add_ps(_mm512_add_ps(acc[2 * k], accm[2 * k]),
                                            _mm512_add_ps(acc[2 * k + 1], accm[2 * k + 1])));
}

/* --- Q6_K ---------------------------------------------------------------- */

/* One super-block of sixteen rows: wv[4 s + c] lane r = the four stored
 * quants (q + 32, 0..63) of row r at elements 16 s + 4 c .. + 3 (sub-block
 * s); sc[s] the signed sub-block scales; scp[p] = scales 2p, 2p+1 as an
 * int16 pair; d of every row. */
struct q6k_tile {
    __m512i wv[64];
    __m512i sc[16];
    __m512i scp[8];
    __m512 d;
};

TILE_INLINE void q6k_tile_load(struct q6k_tile *t, const uint8_t *blk, __m512i offs, const int32_t off[16])
{
    const __m512i m4 = _mm512_set1_epi8(0x0F), m3 = _mm512_set1_epi8(0x03);
    __m512i in[16], qh[16];
    for (int r = 0; r < 16; r++)
        in[r] = _mm512_loadu_si512(blk + off[r] + offsetof(block_q6_K, qh));
    tile_transpose16(in, qh); /* qh[p]: qh dword p (half h = p / 8, position c = p % 8) */
    for (int h = 0; h < 2; h++) {
        __m512i ql[16];
        for (int r = 0; r < 16; r++)
            in[r] = _mm512_loadu_si512(blk + off[r] + offsetof(block_q6_K, ql) + 64 * h);
        tile_transpose16(in, ql); /* ql[m]: ql dword 16 h + m */
        for (int qq = 0; qq < 4; qq++)
            for (int c = 0; c < 8; c++) {
                const __m512i l = ql[(qq & 1) * 8 + c];
                const __m512i lo = qq >= 2 ? _mm512_and_si512(_mm512_srli_epi16(l, 4), m4) : _mm512_and_si512(l, m4);
                const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(qh[8 * h + c], 2 * qq), m3);
                /* element group 32 qq + 4 c of half h: sub-block 8 h + 2 qq + c / 4 */
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
        t->scp[2 * q] = _mm512_or_si512(_mm512_and_si512(lo16, _mm512_set1_epi32(0xFFFF)), _mm512_slli_epi32(hi16, 16));
        t->scp[2 * q + 1] =
            _mm512_or_si512(_mm512_srli_epi32(lo16, 16), _mm512_andnot_si512(_mm512_set1_epi32(0xFFFF), hi16));
    }
}

/* acc[k] += the super-block's term for activation rows k < nt (<= TILE_T) */
TILE_INLINE void q6k_tile_acts(const struct q6k_tile *t, const block_q8_K *const *y, __m512 *acc, const int nt)
{
    __m512i isum[TILE_T], corr[TILE_T];
#pragma GCC unroll 4
    for (int k = 0; k < nt; k++)
        isum[k] = corr[k] = _mm512_setzero_si512();
#pragma GCC unroll 2
    for (int s = 0; s < 16; s++) {
        __m512i p[TILE_T];
#pragma GCC unroll 4
        for (int k = 0; k < nt; k++)
            p[k] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const __m512i w = t->wv[4 * s + c];
#pragma GCC unroll 4
            for (int k = 0; k < nt; k++)
                p[k] = _mm512_dpbusd_epi32(p[k], w, bcast4(y[k]->qs + 16 * s + 4 * c));
        }
#pragma GCC unroll 4
        for (int k = 0; k < nt; k++)
            isum[k] = _mm512_add_epi32(isum[k], _mm512_mullo_epi32(p[k], t->sc[s]));
        if (s % 2) {
#pragma GCC unroll 4
            for (int k = 0; k < nt; k++)
                corr[k] = _mm512_dpwssd_epi32(corr[k], t->scp[s / 2], bcast4(y[k]->bsums + s - 1));
        }
    }
#pragma GCC unroll 4
    for (int k = 0; k < nt; k++) {
        /* quants were stored + 32: subtract 32 * sum(scale * bsum) */
        const __m512i is = _mm512_sub_epi32(isum[k], _mm512_slli_epi32(corr[k], 5));
        acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_mul_ps(t->d, _mm512_set1_ps(y[k]->d)), acc[k]);
    }
}

static void gemm_q6_K_tile(int64_t n, float *y, size_t ys, const uint8_t *w, size_t row_size, int nr, const void *a,
                           size_t as, int n_out, int passes)
{
    const int na = n_out * passes;
    const int64_t nb = n / QK_K;
    int32_t off[16];
    const __m512i offs = tile_offsets(nr, row_size, off);
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
    __m512 acc[QUANT_GEMM16_MAX_ACT];
    for (int k = 0; k < na; k++)
        acc[k] = _mm512_setzero_ps();
    struct q6k_tile t;
    const uint8_t *ap = a;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *blk = w + (size_t)i * sizeof(block_q6_K);
        tile_prefetch_next(blk, off, sizeof(block_q6_K));
        q6k_tile_load(&t, blk, offs, off);
        int k = 0;
        for (; k + TILE_T <= na; k += TILE_T) {
            const block_q8_K *yk[TILE_T];
            for (int q = 0; q < TILE_T; q++)
                yk[q] = (const block_q8_K *)(const void *)(ap + (size_t)(k + q) * as) + i;
            q6k_tile_acts(&t, yk, acc + k, TILE_T);
        }
        for (; k < na; k++) {
            const block_q8_K *yk = (const block_q8_K *)(const void *)(ap + (size_t)k * as) + i;
            q6k_tile_acts(&t, &yk, acc + k, 1);
        }
    }
    if (passes == 1) {
        for (int k = 0; k < na; k++)
            _mm512_mask_storeu_ps(y + (size_t)k * ys, keep, acc[k]);
        return;
    }
    for (int k = 0; k < n_out; k++)
        _mm512_mask_storeu_ps(y + (size_t)k * ys, keep, _mm512_add_ps(acc[2 * k], acc[2 * k + 1]));
}

void quant_install_tile_avx512(struct quant_traits *traits)
{
    traits[QT_Q4_K].gemm16 = gemm_q4_K_tile;
    traits[QT_Q6_K].gemm16 = gemm_q6_K_tile;
}
