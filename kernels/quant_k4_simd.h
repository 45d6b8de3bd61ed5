/*
 * quant_k4_simd.h - the Q4_K/Q5_K scale unpacking shared by the SIMD files
 * (quant_avx2.c, quant_avx512.c, quant_x4_avx512.c; all compile with at
 * least the AVX2 flags). Header-only, no state.
 */
#ifndef MOESTREAM_QUANT_K4_SIMD_H
#define MOESTREAM_QUANT_K4_SIMD_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/* Q4_K/Q5_K: 12 packed bytes -> bytes 0..7 = the 6-bit sub-block scales,
 * bytes 8..15 = the 6-bit mins. Scale/min j < 4 are the low 6 bits of bytes
 * j / j + 4; j >= 4 take their low 4 bits from byte j + 4 (low / high
 * nibble) and their top 2 bits from bits 6-7 of bytes j - 4 / j. Built in
 * registers (a round trip through memory stalls store forwarding). */
static inline __m128i unpack_k4_scales(const uint8_t *scales)
{
    uint32_t u0, u1, u2;
    memcpy(&u0, scales, 4);
    memcpy(&u1, scales + 4, 4);
    memcpy(&u2, scales + 8, 4);
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    const uint32_t sc_lo = u0 & m6, mn_lo = u1 & m6;
    const uint32_t sc_hi = (u2 & m4) | (((u0 >> 6) & m2) << 4);
    const uint32_t mn_hi = ((u2 >> 4) & m4) | (((u1 >> 6) & m2) << 4);
    return _mm_setr_epi32((int)sc_lo, (int)sc_hi, (int)mn_lo, (int)mn_hi);
}

#endif
