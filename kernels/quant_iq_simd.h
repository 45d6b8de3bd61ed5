/*
 * quant_iq_simd.h - inline helpers shared by quant_iq_avx2.c and
 * quant_iq_avx512.c (both compile with at least the AVX2 flags): decoding
 * of the packed sign fields of the IQ formats. Header-only, no state.
 */
#ifndef MOESTREAM_QUANT_IQ_SIMD_H
#define MOESTREAM_QUANT_IQ_SIMD_H

#include <immintrin.h>
#include <stdint.h>

/* bytes holding a 7-bit value each -> bit 7 set to their parity (16-bit
 * shifts: bits 0..3 of each byte, where the parity collects, stay clean) */
static inline __m256i with_parity256(__m256i y)
{
    __m256i p = _mm256_xor_si256(y, _mm256_srli_epi16(y, 4));
    p = _mm256_xor_si256(p, _mm256_srli_epi16(p, 2));
    p = _mm256_xor_si256(p, _mm256_srli_epi16(p, 1));
    return _mm256_or_si256(y, _mm256_slli_epi16(_mm256_and_si256(p, _mm256_set1_epi8(1)), 7));
}

/* dwords each holding four 7-bit sign indices at bits 0, 7, 14, 21 -> the
 * same dwords holding the four sign bytes (the 7 bits, bit 7 their parity) */
static inline __m256i ksigns_from_packed(__m256i x)
{
    const __m256i m7 = _mm256_set1_epi32(0x7f);
    __m256i y = _mm256_and_si256(x, m7);
    y = _mm256_or_si256(y, _mm256_and_si256(_mm256_slli_epi32(x, 1), _mm256_slli_epi32(m7, 8)));
    y = _mm256_or_si256(y, _mm256_and_si256(_mm256_slli_epi32(x, 2), _mm256_slli_epi32(m7, 16)));
    y = _mm256_or_si256(y, _mm256_and_si256(_mm256_slli_epi32(x, 3), _mm256_slli_epi32(m7, 24)));
    return with_parity256(y);
}

#endif
