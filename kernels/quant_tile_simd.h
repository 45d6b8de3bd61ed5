/*
 * quant_tile_simd.h - the helpers of the sixteen-row tile kernels (AVX-512):
 * the 16 x 16 dword transpose, four-byte broadcasts, the row offsets of a
 * tile and the prefetch of its next blocks.
 *
 * Owns: nothing but these inline functions, shared by quant_tile_avx512.c
 * (K-quants) and quant_b32_avx512.c (MXFP4, Q8_0). Include only from files
 * compiled with the AVX-512 flags.
 */
#ifndef MOESTREAM_QUANT_TILE_SIMD_H
#define MOESTREAM_QUANT_TILE_SIMD_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TILE_INLINE static inline __attribute__((always_inline))

/* 16 x 16 dword transpose: in[r] = row r (16 dwords); out[c] lane r = in[r] dword c */
TILE_INLINE void tile_transpose16(const __m512i in[16], __m512i out[16])
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
TILE_INLINE __m512i bcast4(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return _mm512_set1_epi32(v);
}

/* byte offsets of the sixteen rows (rows past nr repeat row nr - 1), also
 * stored to off[] */
static inline __m512i tile_offsets(int nr, size_t row_size, int32_t off[16])
{
    const __m512i offs = _mm512_mullo_epi32(
        _mm512_min_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(nr - 1)),
        _mm512_set1_epi32((int)row_size));
    _mm512_storeu_si512(off, offs);
    return offs;
}

/* the next block of every row, while this one computes */
TILE_INLINE void tile_prefetch_next(const uint8_t *blk, const int32_t off[16], size_t block)
{
    for (int r = 0; r < 16; r++)
        for (size_t o = 0; o < block; o += 64)
            __builtin_prefetch(blk + off[r] + block + o, 0, 3);
}

#endif
