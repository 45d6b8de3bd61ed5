/*
 * quant_blocks.h - ggml tensor type ids and the on-disk block structs.
 *
 * Owns: the numeric type ids (equal to the GGUF/ggml ids), and one struct per
 * block format with a bit-layout comment and a size assert. Every size in the
 * project (GGUF reader, splitter, kernels) derives from sizeof() of these
 * structs, never from a hand-typed table. No functions live here.
 *
 * Layout facts follow ggml's ggml-common.h. "half" is an IEEE fp16 stored as
 * uint16_t; "e8m0" is a power-of-two exponent byte.
 */
#ifndef MOESTREAM_QUANT_BLOCKS_H
#define MOESTREAM_QUANT_BLOCKS_H

#include <assert.h>
#include <stdint.h>

enum quant_type {
    QT_F32 = 0,
    QT_F16 = 1,
    QT_Q4_0 = 2,
    QT_Q4_1 = 3,
    /* 4, 5: Q4_2, Q4_3, removed from ggml */
    QT_Q5_0 = 6,
    QT_Q5_1 = 7,
    QT_Q8_0 = 8,
    QT_Q8_1 = 9,
    QT_Q2_K = 10,
    QT_Q3_K = 11,
    QT_Q4_K = 12,
    QT_Q5_K = 13,
    QT_Q6_K = 14,
    QT_Q8_K = 15,
    QT_IQ2_XXS = 16,
    QT_IQ2_XS = 17,
    QT_IQ3_XXS = 18,
    QT_IQ1_S = 19,
    QT_IQ4_NL = 20,
    QT_IQ3_S = 21,
    QT_IQ2_S = 22,
    QT_IQ4_XS = 23,
    QT_I8 = 24,
    QT_I16 = 25,
    QT_I32 = 26,
    QT_I64 = 27,
    QT_F64 = 28,
    QT_IQ1_M = 29,
    QT_BF16 = 30,
    /* 31..33: Q4_0_4_4, Q4_0_4_8, Q4_0_8_8, removed */
    QT_TQ1_0 = 34,
    QT_TQ2_0 = 35,
    /* 36..38: IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8, removed */
    QT_MXFP4 = 39,
    /* moestream's own formats (quant_lowbit.h), far from ggml's ids: they
     * appear only in split manifests made by moestream-split --requant */
    QT_HQ2 = 100,
    QT_HQ3 = 101,
    QT_Q8_KH = 102,
    QT_COUNT = 103,
};

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12
#define QK4_NL 32
#define QK_MXFP4 32

typedef uint16_t qhalf; /* IEEE binary16 bits */

/* d * q, q = nibble - 8; qs[i] low nibble = element i, high = element i+16 */
typedef struct { qhalf d; uint8_t qs[QK4_0 / 2]; } block_q4_0;
static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");

/* d * q + m, q = nibble (0..15) */
typedef struct { qhalf d; qhalf m; uint8_t qs[QK4_1 / 2]; } block_q4_1;
static_assert(sizeof(block_q4_1) == 20, "block_q4_1 size");

/* d * (q - 16), q = nibble | (bit from qh) << 4 */
typedef struct { qhalf d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;
static_assert(sizeof(block_q5_0) == 22, "block_q5_0 size");

/* d * q + m, q 5-bit as in q5_0 */
typedef struct { qhalf d; qhalf m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1;
static_assert(sizeof(block_q5_1) == 24, "block_q5_1 size");

/* d * q, q int8 */
typedef struct { qhalf d; int8_t qs[QK8_0]; } block_q8_0;
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");

/* d * q; s = d * sum(q) */
typedef struct { qhalf d; qhalf s; int8_t qs[QK8_1]; } block_q8_1;
static_assert(sizeof(block_q8_1) == 36, "block_q8_1 size");

/* 16 sub-blocks of 16: scales[i] low nibble = scale, high = min (4-bit);
 * qs: 2-bit quants; x = d * sc * q - dmin * m */
typedef struct { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; qhalf d; qhalf dmin; } block_q2_K;
static_assert(sizeof(block_q2_K) == 84, "block_q2_K size");

/* 16 sub-blocks of 16: hmask = high bit, qs = low 2 bits, 6-bit scales packed in 12 bytes */
typedef struct { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; qhalf d; } block_q3_K;
static_assert(sizeof(block_q3_K) == 110, "block_q3_K size");

/* 8 sub-blocks of 32: 6-bit scales and mins packed in 12 bytes; 4-bit quants */
typedef struct { qhalf d; qhalf dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; } block_q4_K;
static_assert(sizeof(block_q4_K) == 144, "block_q4_K size");

/* as q4_K with a fifth bit in qh */
typedef struct { qhalf d; qhalf dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } block_q5_K;
static_assert(sizeof(block_q5_K) == 176, "block_q5_K size");

/* 16 sub-blocks of 16: 6-bit quants (ql low 4, qh high 2), int8 scales; x = d * sc * (q - 32) */
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; qhalf d; } block_q6_K;
static_assert(sizeof(block_q6_K) == 210, "block_q6_K size");

/* activation format for K-quant dots: float scale, int8 quants, sums of 16 */
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;
static_assert(sizeof(block_q8_K) == 292, "block_q8_K size");

/* 2.0625 bpw: qs = 8 groups of (4 grid indices, 4x7 sign bits + 4-bit scale) */
typedef struct { qhalf d; uint16_t qs[QK_K / 8]; } block_iq2_xxs;
static_assert(sizeof(block_iq2_xxs) == 66, "block_iq2_xxs size");

/* 2.3125 bpw: qs = 9-bit grid index + 7-bit sign index, 4-bit scales */
typedef struct { qhalf d; uint16_t qs[QK_K / 8]; uint8_t scales[QK_K / 32]; } block_iq2_xs;
static_assert(sizeof(block_iq2_xs) == 74, "block_iq2_xs size");

/* 2.5625 bpw: 10-bit grid indices (qs low 8, qh high 2), explicit signs */
typedef struct { qhalf d; uint8_t qs[QK_K / 4]; uint8_t qh[QK_K / 32]; uint8_t scales[QK_K / 32]; } block_iq2_s;
static_assert(sizeof(block_iq2_s) == 82, "block_iq2_s size");

/* 3.0625 bpw: 8-bit grid indices then packed signs/scales */
typedef struct { qhalf d; uint8_t qs[3 * QK_K / 8]; } block_iq3_xxs;
static_assert(sizeof(block_iq3_xxs) == 98, "block_iq3_xxs size");

/* 3.4375 bpw: 9-bit grid indices (qs + qh), explicit signs, 4-bit scales */
typedef struct { qhalf d; uint8_t qs[QK_K / 4]; uint8_t qh[QK_K / 32]; uint8_t signs[QK_K / 8]; uint8_t scales[QK_K / 64]; } block_iq3_s;
static_assert(sizeof(block_iq3_s) == 110, "block_iq3_s size");

/* 1.5625 bpw: 11-bit grid indices (qs + 3 bits of qh), 3-bit scales, delta sign */
typedef struct { qhalf d; uint8_t qs[QK_K / 8]; uint16_t qh[QK_K / 32]; } block_iq1_s;
static_assert(sizeof(block_iq1_s) == 50, "block_iq1_s size");

/* 1.75 bpw: no d field; the fp16 scale is spread over the top nibbles of scales */
typedef struct { uint8_t qs[QK_K / 8]; uint8_t qh[QK_K / 16]; uint8_t scales[QK_K / 32]; } block_iq1_m;
static_assert(sizeof(block_iq1_m) == 56, "block_iq1_m size");

/* d * kvalues_iq4nl[nibble]; nibble order as q4_0 */
typedef struct { qhalf d; uint8_t qs[QK4_NL / 2]; } block_iq4_nl;
static_assert(sizeof(block_iq4_nl) == 18, "block_iq4_nl size");

/* 8 sub-blocks of 32 with 6-bit scales (scales_l low 4 bits, scales_h high 2), non-linear 4-bit values */
typedef struct { qhalf d; uint16_t scales_h; uint8_t scales_l[QK_K / 64]; uint8_t qs[QK_K / 2]; } block_iq4_xs;
static_assert(sizeof(block_iq4_xs) == 136, "block_iq4_xs size");

/* ternary, 1.6875 bpw: base-3 packed, 5 trits per byte in qs, 4 per byte in qh */
typedef struct { uint8_t qs[(QK_K - 4 * QK_K / 64) / 5]; uint8_t qh[QK_K / 64]; qhalf d; } block_tq1_0;
static_assert(sizeof(block_tq1_0) == 54, "block_tq1_0 size");

/* ternary, 2.0625 bpw: 2 bits per weight, value = q - 1 */
typedef struct { uint8_t qs[QK_K / 4]; qhalf d; } block_tq2_0;
static_assert(sizeof(block_tq2_0) == 66, "block_tq2_0 size");

/* MXFP4: e8m0 shared exponent, 32 fp4 (e2m1) values, nibble order as q4_0 */
typedef struct { uint8_t e; uint8_t qs[QK_MXFP4 / 2]; } block_mxfp4;
static_assert(sizeof(block_mxfp4) == 17, "block_mxfp4 size");

/* HQ2, 2.0625 bpw (quant_lowbit.h): 256 Hadamard-rotated weights, value =
 * d * quant_hq2_levels[idx] / 127; qs[j] bits 2k..2k+1 = idx of element 64k + j */
typedef struct { qhalf d; uint8_t qs[QK_K / 4]; } block_hq2;
static_assert(sizeof(block_hq2) == 66, "block_hq2 size");

/* HQ3, 3.0625 bpw: as HQ2 with 8 levels; idx = low 2 bits as in HQ2 |
 * bit (j % 8) of qh[j / 8] << 2 for element j */
typedef struct { qhalf d; uint8_t qs[QK_K / 4]; uint8_t qh[QK_K / 8]; } block_hq3;
static_assert(sizeof(block_hq3) == 98, "block_hq3 size");

#endif
