/*
 * quant_iq_simd.h - inline helpers shared by quant_iq_avx2.c and
 * quant_iq_avx512.c (both compile with at least the AVX2 flags): decoding
 * of the packed sign fields of the IQ formats and of TQ1_0's base-3
 * digits. Header-only, no state.
 */
#ifndef MOESTREAM_QUANT_IQ_SIMD_H
#define MOESTREAM_QUANT_IQ_SIMD_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "quant_blocks.h"

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

/* TQ1_0 digits: per byte b, ((uint8_t)(b * p) * 3) >> 8 (0, 1 or 2), with
 * the power of 3 p given per 16-bit lane. The low and high byte of each
 * lane are multiplied in the high byte of a 16-bit product, so the mod 256
 * is free, and mulhi by 3 yields the digit. */
static inline __m256i tq1_digits(__m256i v, __m256i p)
{
    const __m256i three = _mm256_set1_epi16(3);
    const __m256i lo = _mm256_mulhi_epu16(_mm256_mullo_epi16(_mm256_slli_epi16(v, 8), p), three);
    const __m256i hi = _mm256_mulhi_epu16(_mm256_mullo_epi16(_mm256_and_si256(v, _mm256_set1_epi16((short)0xff00)), p),
                                          three);
    return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 8));
}

/* The 256 digits (0..2; the weight is digit - 1) of a TQ1_0 block in
 * element order, 32 per vector: qs[0..32) give 5 x 32 (digit k of byte m
 * is element 32k + m), qs[32..48) give 5 x 16 (element 160 + 16k + m), qh
 * gives 4 x 4 (element 240 + 4k + m); the last vector holds digit 4 of
 * qs[32..48) and all of qh. */
static inline void tq1_decode(const block_tq1_0 *b, __m256i t[8])
{
    const __m256i q0 = _mm256_loadu_si256((const __m256i *)b->qs);
    const __m128i q1 = _mm_loadu_si128((const __m128i *)(b->qs + 32));
    uint32_t qh;
    memcpy(&qh, b->qh, sizeof(qh));
    static const short pow3[5] = { 1, 3, 9, 27, 81 };
    for (int k = 0; k < 5; k++)
        t[k] = tq1_digits(q0, _mm256_set1_epi16(pow3[k]));
    const __m256i q11 = _mm256_set_m128i(q1, q1);
    t[5] = tq1_digits(q11, _mm256_setr_m128i(_mm_set1_epi16(1), _mm_set1_epi16(3)));
    t[6] = tq1_digits(q11, _mm256_setr_m128i(_mm_set1_epi16(9), _mm_set1_epi16(27)));
    /* high half: qh repeated 4 times, digit k in bytes 4k..4k+3 (16-bit lanes 2k, 2k + 1) */
    t[7] = tq1_digits(_mm256_setr_m128i(q1, _mm_set1_epi32((int)qh)),
                      _mm256_setr_epi16(81, 81, 81, 81, 81, 81, 81, 81, 1, 1, 3, 3, 9, 9, 27, 27));
}

#endif
