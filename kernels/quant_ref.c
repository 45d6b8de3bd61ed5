/*
 * quant_ref.c - scalar reference kernels for every supported block format:
 * fp16/bf16 conversion, dequantization, activation quantization and dots.
 *
 * Owns: the arithmetic definition of the formats (bit layouts follow ggml's
 * ggml-common.h and dequantize_row_* in ggml-quants.c; rounding order of the
 * float products is ggml's, so dequantization matches gguf-py to an ulp).
 * Must not: allocate, print, keep state, or use SIMD intrinsics. Called via
 * the traits table (quant.c) and by the SIMD variants' tests.
 *
 * Design: each format has one "unpack" function turning a block into small
 * signed integers plus integer sub-block scales (and mins), and both the
 * dequantizer and the dot are written on top of it, so a layout bug shows up
 * in the fixture-checked dequantization and cannot hide in the dot alone.
 * 32-element formats unpack to struct ref_blk32 (y = d * q [+ m]), 256-element
 * formats to struct ref_blk256 (y = (d * sc[s]) * q - (dmin * mn[s])).
 */
#include "quant_ref.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

/* ---- conversions ---- */

static inline uint32_t ref_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static inline float ref_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

float quant_fp16_to_fp32(qhalf h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in binary32 */
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    }
    if (exp == 31)
        return ref_bits_f32(sign | 0x7f800000u | (mant << 13));
    return ref_bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

qhalf quant_fp32_to_fp16(float f)
{
    uint32_t x = ref_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) /* inf, or NaN kept quiet */
        return (qhalf)(sign | 0x7c00 | (x > 0x7f800000u ? 0x200 : 0));
    if (x >= 0x477ff000u) /* >= 65520 rounds (ties to even) to inf */
        return (qhalf)(sign | 0x7c00);
    if (x < 0x38800000u) { /* below 2^-14: subnormal half, step 2^-24 */
        float v = rintf(ref_bits_f32(x) * 16777216.0f); /* exact scaling, RNE */
        return (qhalf)(sign | (uint16_t)v);
    }
    /* normal: rebias exponent, round mantissa to 10 bits, ties to even */
    x += 0xfffu + ((x >> 13) & 1u);
    return (qhalf)(sign | (uint16_t)((x - (112u << 23)) >> 13));
}

float quant_bf16_to_fp32(uint16_t h)
{
    return ref_bits_f32((uint32_t)h << 16);
}

uint16_t quant_fp32_to_bf16(float f)
{
    uint32_t x = ref_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

float quant_e8m0_to_fp32_half(uint8_t e)
{
    return ldexpf(1.0f, (int)e - 128);
}

/* ---- tables ---- */

const int8_t quant_kvalues_iq4nl[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};

const int8_t quant_kvalues_mxfp4[16] = {
    0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12,
};

/* IQ3_S grid: index -> 4 magnitudes (bytes, little-endian order = element order) */
const uint32_t quant_iq3s_grid[512] = {
    0x01010101, 0x01010103, 0x01010105, 0x0101010b, 0x0101010f, 0x01010301, 0x01010303, 0x01010305,
    0x01010309, 0x0101030d, 0x01010501, 0x01010503, 0x0101050b, 0x01010707, 0x01010901, 0x01010905,
    0x0101090b, 0x0101090f, 0x01010b03, 0x01010b07, 0x01010d01, 0x01010d05, 0x01010f03, 0x01010f09,
    0x01010f0f, 0x01030101, 0x01030103, 0x01030105, 0x01030109, 0x01030301, 0x01030303, 0x0103030b,
    0x01030501, 0x01030507, 0x0103050f, 0x01030703, 0x0103070b, 0x01030909, 0x01030d03, 0x01030d0b,
    0x01030f05, 0x01050101, 0x01050103, 0x0105010b, 0x0105010f, 0x01050301, 0x01050307, 0x0105030d,
    0x01050503, 0x0105050b, 0x01050701, 0x01050709, 0x01050905, 0x0105090b, 0x0105090f, 0x01050b03,
    0x01050b07, 0x01050f01, 0x01050f07, 0x01070107, 0x01070303, 0x0107030b, 0x01070501, 0x01070505,
    0x01070703, 0x01070707, 0x0107070d, 0x01070909, 0x01070b01, 0x01070b05, 0x01070d0f, 0x01070f03,
    0x01070f0b, 0x01090101, 0x01090307, 0x0109030f, 0x01090503, 0x01090509, 0x01090705, 0x01090901,
    0x01090907, 0x01090b03, 0x01090f01, 0x010b0105, 0x010b0109, 0x010b0501, 0x010b0505, 0x010b050d,
    0x010b0707, 0x010b0903, 0x010b090b, 0x010b090f, 0x010b0d0d, 0x010b0f07, 0x010d010d, 0x010d0303,
    0x010d0307, 0x010d0703, 0x010d0b05, 0x010d0f03, 0x010f0101, 0x010f0105, 0x010f0109, 0x010f0501,
    0x010f0505, 0x010f050d, 0x010f0707, 0x010f0b01, 0x010f0b09, 0x03010101, 0x03010103, 0x03010105,
    0x03010109, 0x03010301, 0x03010303, 0x03010307, 0x0301030b, 0x0301030f, 0x03010501, 0x03010505,
    0x03010703, 0x03010709, 0x0301070d, 0x03010b09, 0x03010b0d, 0x03010d03, 0x03010f05, 0x03030101,
    0x03030103, 0x03030107, 0x0303010d, 0x03030301, 0x03030309, 0x03030503, 0x03030701, 0x03030707,
    0x03030903, 0x03030b01, 0x03030b05, 0x03030f01, 0x03030f0d, 0x03050101, 0x03050305, 0x0305030b,
    0x0305030f, 0x03050501, 0x03050509, 0x03050705, 0x03050901, 0x03050907, 0x03050b0b, 0x03050d01,
    0x03050f05, 0x03070103, 0x03070109, 0x0307010f, 0x03070301, 0x03070307, 0x03070503, 0x0307050f,
    0x03070701, 0x03070709, 0x03070903, 0x03070d05, 0x03070f01, 0x03090107, 0x0309010b, 0x03090305,
    0x03090309, 0x03090703, 0x03090707, 0x03090905, 0x0309090d, 0x03090b01, 0x03090b09, 0x030b0103,
    0x030b0301, 0x030b0307, 0x030b0503, 0x030b0701, 0x030b0705, 0x030b0b03, 0x030d0501, 0x030d0509,
    0x030d050f, 0x030d0909, 0x030d090d, 0x030f0103, 0x030f0107, 0x030f0301, 0x030f0305, 0x030f0503,
    0x030f070b, 0x030f0903, 0x030f0d05, 0x030f0f01, 0x05010101, 0x05010103, 0x05010107, 0x0501010b,
    0x0501010f, 0x05010301, 0x05010305, 0x05010309, 0x0501030d, 0x05010503, 0x05010507, 0x0501050f,
    0x05010701, 0x05010705, 0x05010903, 0x05010907, 0x0501090b, 0x05010b01, 0x05010b05, 0x05010d0f,
    0x05010f01, 0x05010f07, 0x05010f0b, 0x05030101, 0x05030105, 0x05030301, 0x05030307, 0x0503030f,
    0x05030505, 0x0503050b, 0x05030703, 0x05030709, 0x05030905, 0x05030b03, 0x05050103, 0x05050109,
    0x0505010f, 0x05050503, 0x05050507, 0x05050701, 0x0505070f, 0x05050903, 0x05050b07, 0x05050b0f,
    0x05050f03, 0x05050f09, 0x05070101, 0x05070105, 0x0507010b, 0x05070303, 0x05070505, 0x05070509,
    0x05070703, 0x05070707, 0x05070905, 0x05070b01, 0x05070d0d, 0x05090103, 0x0509010f, 0x05090501,
    0x05090507, 0x05090705, 0x0509070b, 0x05090903, 0x05090f05, 0x05090f0b, 0x050b0109, 0x050b0303,
    0x050b0505, 0x050b070f, 0x050b0901, 0x050b0b07, 0x050b0f01, 0x050d0101, 0x050d0105, 0x050d010f,
    0x050d0503, 0x050d0b0b, 0x050d0d03, 0x050f010b, 0x050f0303, 0x050f050d, 0x050f0701, 0x050f0907,
    0x050f0b01, 0x07010105, 0x07010303, 0x07010307, 0x0701030b, 0x0701030f, 0x07010505, 0x07010703,
    0x07010707, 0x0701070b, 0x07010905, 0x07010909, 0x0701090f, 0x07010b03, 0x07010d07, 0x07010f03,
    0x07030103, 0x07030107, 0x0703010b, 0x07030309, 0x07030503, 0x07030507, 0x07030901, 0x07030d01,
    0x07030f05, 0x07030f0d, 0x07050101, 0x07050305, 0x07050501, 0x07050705, 0x07050709, 0x07050b01,
    0x07070103, 0x07070301, 0x07070309, 0x07070503, 0x07070507, 0x0707050f, 0x07070701, 0x07070903,
    0x07070907, 0x0707090f, 0x07070b0b, 0x07070f07, 0x07090107, 0x07090303, 0x0709030d, 0x07090505,
    0x07090703, 0x07090b05, 0x07090d01, 0x07090d09, 0x070b0103, 0x070b0301, 0x070b0305, 0x070b050b,
    0x070b0705, 0x070b0909, 0x070b0b0d, 0x070b0f07, 0x070d030d, 0x070d0903, 0x070f0103, 0x070f0107,
    0x070f0501, 0x070f0505, 0x070f070b, 0x09010101, 0x09010109, 0x09010305, 0x09010501, 0x09010509,
    0x0901050f, 0x09010705, 0x09010903, 0x09010b01, 0x09010f01, 0x09030105, 0x0903010f, 0x09030303,
    0x09030307, 0x09030505, 0x09030701, 0x0903070b, 0x09030907, 0x09030b03, 0x09030b0b, 0x09050103,
    0x09050107, 0x09050301, 0x0905030b, 0x09050503, 0x09050707, 0x09050901, 0x09050b0f, 0x09050d05,
    0x09050f01, 0x09070109, 0x09070303, 0x09070307, 0x09070501, 0x09070505, 0x09070703, 0x0907070b,
    0x09090101, 0x09090105, 0x09090509, 0x0909070f, 0x09090901, 0x09090f03, 0x090b010b, 0x090b010f,
    0x090b0503, 0x090b0d05, 0x090d0307, 0x090d0709, 0x090d0d01, 0x090f0301, 0x090f030b, 0x090f0701,
    0x090f0907, 0x090f0b03, 0x0b010105, 0x0b010301, 0x0b010309, 0x0b010505, 0x0b010901, 0x0b010909,
    0x0b01090f, 0x0b010b05, 0x0b010d0d, 0x0b010f09, 0x0b030103, 0x0b030107, 0x0b03010b, 0x0b030305,
    0x0b030503, 0x0b030705, 0x0b030f05, 0x0b050101, 0x0b050303, 0x0b050507, 0x0b050701, 0x0b05070d,
    0x0b050b07, 0x0b070105, 0x0b07010f, 0x0b070301, 0x0b07050f, 0x0b070909, 0x0b070b03, 0x0b070d0b,
    0x0b070f07, 0x0b090103, 0x0b090109, 0x0b090501, 0x0b090705, 0x0b09090d, 0x0b0b0305, 0x0b0b050d,
    0x0b0b0b03, 0x0b0b0b07, 0x0b0d0905, 0x0b0f0105, 0x0b0f0109, 0x0b0f0505, 0x0d010303, 0x0d010307,
    0x0d01030b, 0x0d010703, 0x0d010707, 0x0d010d01, 0x0d030101, 0x0d030501, 0x0d03050f, 0x0d030d09,
    0x0d050305, 0x0d050709, 0x0d050905, 0x0d050b0b, 0x0d050d05, 0x0d050f01, 0x0d070101, 0x0d070309,
    0x0d070503, 0x0d070901, 0x0d09050b, 0x0d090907, 0x0d090d05, 0x0d0b0101, 0x0d0b0107, 0x0d0b0709,
    0x0d0b0d01, 0x0d0d010b, 0x0d0d0901, 0x0d0f0303, 0x0d0f0307, 0x0f010101, 0x0f010109, 0x0f01010f,
    0x0f010501, 0x0f010505, 0x0f01070d, 0x0f010901, 0x0f010b09, 0x0f010d05, 0x0f030105, 0x0f030303,
    0x0f030509, 0x0f030907, 0x0f03090b, 0x0f050103, 0x0f050109, 0x0f050301, 0x0f05030d, 0x0f050503,
    0x0f050701, 0x0f050b03, 0x0f070105, 0x0f070705, 0x0f07070b, 0x0f070b07, 0x0f090103, 0x0f09010b,
    0x0f090307, 0x0f090501, 0x0f090b01, 0x0f0b0505, 0x0f0b0905, 0x0f0d0105, 0x0f0d0703, 0x0f0f0101,
};

/* ---- 32-element formats ---- */

struct ref_blk32 {
    float d;       /* scale */
    float m;       /* additive min (Q4_1, Q5_1); 0 otherwise */
    bool has_min;
    int8_t q[32];  /* signed quant values in element order */
};

static void ref_unpack_q4_0(const void *src, int64_t i, struct ref_blk32 *b)
{
    const block_q4_0 *x = (const block_q4_0 *)src + i;
    b->d = quant_fp16_to_fp32(x->d);
    b->m = 0.0f;
    b->has_min = false;
    for (int j = 0; j < 16; j++) {
        b->q[j] = (int8_t)((x->qs[j] & 0x0f) - 8);
        b->q[j + 16] = (int8_t)((x->qs[j] >> 4) - 8);
    }
}

static void ref_unpack_q4_1(const void *src, int64_t i, struct ref_blk32 *b)
{
    const block_q4_1 *x = (const block_q4_1 *)src + i;
    b->d = quant_fp16_to_fp32(x->d);
    b->m = quant_fp16_to_fp32(x->m);
    b->has_min = true;
    for (int j = 0; j < 16; j++) {
        b->q[j] = (int8_t)(x->qs[j] & 0x0f);
        b->q[j + 16] = (int8_t)(x->qs[j] >> 4);
    }
}

/* 5th bit of element j is bit j of the little-endian u32 qh */
static void ref_unpack_q5(const uint8_t qh8[4], const uint8_t qs[16], int off, int8_t q[32])
{
    uint32_t qh;
    memcpy(&qh, qh8, sizeof(qh));
    for (int j = 0; j < 16; j++) {
        int h0 = (int)((qh >> j) & 1u) << 4;
        int h1 = (int)((qh >> (j + 16)) & 1u) << 4;
        q[j] = (int8_t)(((qs[j] & 0x0f) | h0) - off);
        q[j + 16] = (int8_t)(((qs[j] >> 4) | h1) - off);
    }
}

static void ref_unpack_q5_0(const void *src, int64_t i, struct ref_blk32 *b)
{
    const block_q5_0 *x = (const block_q5_0 *)src + i;
    b->d = quant_fp16_to_fp32(x->d);
    b->m = 0.0f;
    b->has_min = false;
    ref_unpack_q5(x->qh, x->qs, 16, b->q);
}

static void ref_unpack_q5_1(const void *src, int64_t i, struct ref_blk32 *b)
{
    const block_q5_1 *x = (const block_q5_1 *)src + i;
    b->d = quant_fp16_to_fp32(x->d);
    b->m = quant_fp16_to_fp32(x->m);
    b->has_min = true;
    ref_unpack_q5(x->qh, x->qs, 0, b->q);
}

static void ref_unpack_q8_0(const void *src, int64_t i, struct ref_blk32 *b)
{
    const block_q8_0 *x = (const block_q8_0 *)src + i;
    b->d = quant_fp16_to_fp32(x->d);
    b->m = 0.0f;
    b->has_min = false;
    memcpy(b->q, x->qs, 32);
}

static void ref_unpack_iq4_nl(const void *src, int64_t i, struct ref_blk32 *b)
{
    const block_iq4_nl *x = (const block_iq4_nl *)src + i;
    b->d = quant_fp16_to_fp32(x->d);
    b->m = 0.0f;
    b->has_min = false;
    for (int j = 0; j < 16; j++) {
        b->q[j] = quant_kvalues_iq4nl[x->qs[j] & 0x0f];
        b->q[j + 16] = quant_kvalues_iq4nl[x->qs[j] >> 4];
    }
}

static void ref_unpack_mxfp4(const void *src, int64_t i, struct ref_blk32 *b)
{
    const block_mxfp4 *x = (const block_mxfp4 *)src + i;
    b->d = quant_e8m0_to_fp32_half(x->e);
    b->m = 0.0f;
    b->has_min = false;
    for (int j = 0; j < 16; j++) {
        b->q[j] = quant_kvalues_mxfp4[x->qs[j] & 0x0f];
        b->q[j + 16] = quant_kvalues_mxfp4[x->qs[j] >> 4];
    }
}

typedef void (*ref_unpack32_fn)(const void *src, int64_t i, struct ref_blk32 *b);

static inline void ref_to_float32(ref_unpack32_fn unpack, const void *src, float *dst, int64_t n)
{
    struct ref_blk32 b;
    for (int64_t i = 0; i < n / 32; i++) {
        unpack(src, i, &b);
        float *y = dst + i * 32;
        if (b.has_min)
            for (int j = 0; j < 32; j++)
                y[j] = (float)b.q[j] * b.d + b.m;
        else
            for (int j = 0; j < 32; j++)
                y[j] = (float)b.q[j] * b.d;
    }
}

/* s = sum over blocks of d_w * d_a * sum(q_w * q_a) [+ m_w * d_a * sum(q_a)];
 * weights 32-element format, activations Q8_0 */
static inline void ref_dot32(ref_unpack32_fn unpack, int64_t n, float *s, const void *w, const void *a)
{
    const block_q8_0 *y = a;
    struct ref_blk32 b;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / 32; i++) {
        unpack(w, i, &b);
        const float da = quant_fp16_to_fp32(y[i].d);
        int32_t sumi = 0, suma = 0;
        for (int j = 0; j < 32; j++) {
            sumi += (int32_t)b.q[j] * y[i].qs[j];
            suma += y[i].qs[j];
        }
        sumf += (b.d * da) * (float)sumi;
        if (b.has_min)
            sumf += (b.m * da) * (float)suma;
    }
    *s = sumf;
}

/* ---- 256-element formats ---- */

struct ref_blk256 {
    float d;          /* super-block scale */
    float dmin;       /* super-block min scale; 0 when the format has no mins */
    bool has_min;
    int sub_len;      /* elements per sub-block: 16 or 32 */
    int16_t sc[16];   /* integer sub-block scales, [QK_K / sub_len] used */
    int16_t mn[16];   /* integer sub-block mins (Q2_K, Q4_K, Q5_K) */
    int8_t q[QK_K];   /* signed quant values in element order */
};

static void ref_unpack_q2_k(const void *src, int64_t i, struct ref_blk256 *b)
{
    const block_q2_K *x = (const block_q2_K *)src + i;
    b->d = quant_fp16_to_fp32(x->d);
    b->dmin = quant_fp16_to_fp32(x->dmin);
    b->has_min = true;
    b->sub_len = 16;
    for (int s = 0; s < 16; s++) {
        b->sc[s] = x->scales[s] & 0x0f;
        b->mn[s] = x->scales[s] >> 4;
    }
    /* each 128-element half: 32 bytes, 4 shifts of 2 bits, 32 elements per shift */
    for (int h = 0; h < 2; h++)
        for (int sh = 0; sh < 4; sh++)
            for (int l = 0; l < 32; l++)
                b->q[h * 128 + sh * 32 + l] = (int8_t)((x->qs[h * 32 + l] >> (2 * sh)) & 3);
}

static void ref_unpack_q3_k(const void *src, int64_t i, struct ref_blk256 *b)
{
    const block_q3_K *x = (const block_q3_K *)src + i;
    b->d = quant_fp16_to_fp32(x->d);
    b->dmin = 0.0f;
    b->has_min = false;
    b->sub_len = 16;
    /* 16 6-bit scales: low nibbles in bytes 0..7 (scales 0..7 low, 8..15 high
     * nibble), high 2 bits in bytes 8..11 (byte 8 + s%4, bit pair s/4) */
    for (int s = 0; s < 16; s++) {
        int lo = s < 8 ? (x->scales[s] & 0x0f) : (x->scales[s - 8] >> 4);
        int hi = (x->scales[8 + s % 4] >> (2 * (s / 4))) & 3;
        b->sc[s] = (int16_t)((lo | (hi << 4)) - 32);
        b->mn[s] = 0;
    }
    /* as Q2_K, minus 4 when the element's hmask bit (bit 4*h + sh of byte l) is clear */
    for (int h = 0; h < 2; h++)
        for (int sh = 0; sh < 4; sh++) {
            const uint8_t m = (uint8_t)(1u << (4 * h + sh));
            for (int l = 0; l < 32; l++) {
                int q = (x->qs[h * 32 + l] >> (2 * sh)) & 3;
                b->q[h * 128 + sh * 32 + l] = (int8_t)(q - ((x->hmask[l] & m) ? 0 : 4));
            }
        }
}

/* Q4_K/Q5_K 6-bit scale and min of sub-block j from the 12 packed bytes */
static void ref_scale_min_k4(int j, const uint8_t *q, int16_t *sc, int16_t *mn)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (int16_t)((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        *mn = (int16_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static void ref_unpack_q4_k(const void *src, int64_t i, struct ref_blk256 *b)
{
    const block_q4_K *x = (const block_q4_K *)src + i;
    b->d = quant_fp16_to_fp32(x->d);
    b->dmin = quant_fp16_to_fp32(x->dmin);
    b->has_min = true;
    b->sub_len = 32;
    for (int s = 0; s < 8; s++)
        ref_scale_min_k4(s, x->scales, &b->sc[s], &b->mn[s]);
    /* each 64 elements: 32 bytes, low nibbles first, then high nibbles */
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            b->q[c * 64 + l] = (int8_t)(x->qs[c * 32 + l] & 0x0f);
            b->q[c * 64 + 32 + l] = (int8_t)(x->qs[c * 32 + l] >> 4);
        }
}

static void ref_unpack_q5_k(const void *src, int64_t i, struct ref_blk256 *b)
{
    const block_q5_K *x = (const block_q5_K *)src + i;
    b->d = quant_fp16_to_fp32(x->d);
    b->dmin = quant_fp16_to_fp32(x->dmin);
    b->has_min = true;
    b->sub_len = 32;
    for (int s = 0; s < 8; s++)
        ref_scale_min_k4(s, x->scales, &b->sc[s], &b->mn[s]);
    /* as Q4_K; sub-block s takes its fifth bit from bit s of qh[l] */
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int h0 = ((x->qh[l] >> (2 * c)) & 1) << 4;
            int h1 = ((x->qh[l] >> (2 * c + 1)) & 1) << 4;
            b->q[c * 64 + l] = (int8_t)((x->qs[c * 32 + l] & 0x0f) | h0);
            b->q[c * 64 + 32 + l] = (int8_t)((x->qs[c * 32 + l] >> 4) | h1);
        }
}

static void ref_unpack_q6_k(const void *src, int64_t i, struct ref_blk256 *b)
{
    const block_q6_K *x = (const block_q6_K *)src + i;
    b->d = quant_fp16_to_fp32(x->d);
    b->dmin = 0.0f;
    b->has_min = false;
    b->sub_len = 16;
    for (int s = 0; s < 16; s++) {
        b->sc[s] = x->scales[s];
        b->mn[s] = 0;
    }
    /* each 128 elements: ql 64 bytes (low nibbles: +0, +32; high: +64, +96),
     * qh 32 bytes with the top 2 bits of the four quarters in bit pairs 0..3 */
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = x->ql + 64 * h;
        const uint8_t *qh = x->qh + 32 * h;
        int8_t *q = b->q + 128 * h;
        for (int l = 0; l < 32; l++) {
            q[l] = (int8_t)(((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32);
            q[l + 32] = (int8_t)(((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32);
            q[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            q[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

static void ref_unpack_q8_k(const void *src, int64_t i, struct ref_blk256 *b)
{
    const block_q8_K *x = (const block_q8_K *)src + i;
    b->d = x->d;
    b->dmin = 0.0f;
    b->has_min = false;
    b->sub_len = 16;
    for (int s = 0; s < 16; s++) {
        b->sc[s] = 1;
        b->mn[s] = 0;
    }
    memcpy(b->q, x->qs, QK_K);
}

static void ref_unpack_iq4_xs(const void *src, int64_t i, struct ref_blk256 *b)
{
    const block_iq4_xs *x = (const block_iq4_xs *)src + i;
    b->d = quant_fp16_to_fp32(x->d);
    b->dmin = 0.0f;
    b->has_min = false;
    b->sub_len = 32;
    for (int s = 0; s < 8; s++) {
        int lo = (x->scales_l[s / 2] >> (4 * (s % 2))) & 0x0f;
        int hi = (x->scales_h >> (2 * s)) & 3;
        b->sc[s] = (int16_t)((lo | (hi << 4)) - 32);
        b->mn[s] = 0;
        const uint8_t *qs = x->qs + 16 * s;
        for (int j = 0; j < 16; j++) {
            b->q[32 * s + j] = quant_kvalues_iq4nl[qs[j] & 0x0f];
            b->q[32 * s + j + 16] = quant_kvalues_iq4nl[qs[j] >> 4];
        }
    }
}

static void ref_unpack_iq3_s(const void *src, int64_t i, struct ref_blk256 *b)
{
    const block_iq3_s *x = (const block_iq3_s *)src + i;
    b->d = quant_fp16_to_fp32(x->d);
    b->dmin = 0.0f;
    b->has_min = false;
    b->sub_len = 32;
    for (int s = 0; s < 8; s++) {
        b->sc[s] = (int16_t)(1 + 2 * ((x->scales[s / 2] >> (4 * (s % 2))) & 0x0f));
        b->mn[s] = 0;
        /* sub-block s: 8 bytes of qs (9th index bit from qh[s]), 4 sign bytes */
        const uint8_t *qs = x->qs + 8 * s;
        const uint8_t *signs = x->signs + 4 * s;
        const unsigned qh = x->qh[s];
        for (int l = 0; l < 4; l++) {
            unsigned i1 = qs[2 * l + 0] | ((qh << (8 - 2 * l)) & 256);
            unsigned i2 = qs[2 * l + 1] | ((qh << (7 - 2 * l)) & 256);
            uint32_t g1 = quant_iq3s_grid[i1], g2 = quant_iq3s_grid[i2];
            for (int j = 0; j < 4; j++) {
                int v1 = (int)((g1 >> (8 * j)) & 0xff);
                int v2 = (int)((g2 >> (8 * j)) & 0xff);
                b->q[32 * s + 8 * l + j] = (int8_t)((signs[l] >> j) & 1 ? -v1 : v1);
                b->q[32 * s + 8 * l + 4 + j] = (int8_t)((signs[l] >> (j + 4)) & 1 ? -v2 : v2);
            }
        }
    }
}

static void ref_unpack_tq2_0(const void *src, int64_t i, struct ref_blk256 *b)
{
    const block_tq2_0 *x = (const block_tq2_0 *)src + i;
    b->d = quant_fp16_to_fp32(x->d);
    b->dmin = 0.0f;
    b->has_min = false;
    b->sub_len = 16;
    for (int s = 0; s < 16; s++) {
        b->sc[s] = 1;
        b->mn[s] = 0;
    }
    /* each 128 elements: 32 bytes, 4 bit pairs, 32 elements per pair; value q - 1 */
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 4; l++)
            for (int m = 0; m < 32; m++)
                b->q[h * 128 + l * 32 + m] = (int8_t)(((x->qs[h * 32 + m] >> (2 * l)) & 3) - 1);
}

typedef void (*ref_unpack256_fn)(const void *src, int64_t i, struct ref_blk256 *b);

static inline void ref_to_float256(ref_unpack256_fn unpack, const void *src, float *dst, int64_t n)
{
    struct ref_blk256 b;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack(src, i, &b);
        float *y = dst + i * QK_K;
        for (int s = 0; s < QK_K / b.sub_len; s++) {
            const float dl = b.d * (float)b.sc[s];
            const float *yend = y + b.sub_len;
            const int8_t *q = b.q + s * b.sub_len;
            if (b.has_min) {
                const float ml = b.dmin * (float)b.mn[s];
                for (; y < yend; q++, y++)
                    *y = dl * (float)*q - ml;
            } else {
                for (; y < yend; q++, y++)
                    *y = dl * (float)*q;
            }
        }
    }
}

/* s = sum over super-blocks of d_w * d_a * sum_s(sc[s] * sum(q_w * q_a))
 *     - dmin_w * d_a * sum_s(mn[s] * sum(q_a)), the last from bsums;
 * weights 256-element format, activations Q8_K */
static inline void ref_dot256(ref_unpack256_fn unpack, int64_t n, float *s, const void *w, const void *a)
{
    const block_q8_K *y = a;
    struct ref_blk256 b;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack(w, i, &b);
        const int per_sub = b.sub_len / 16; /* bsums per sub-block */
        int32_t isum = 0, msum = 0;
        for (int sb = 0; sb < QK_K / b.sub_len; sb++) {
            int32_t sumi = 0;
            for (int l = 0; l < b.sub_len; l++)
                sumi += (int32_t)b.q[sb * b.sub_len + l] * y[i].qs[sb * b.sub_len + l];
            isum += b.sc[sb] * sumi;
            if (b.has_min) {
                int32_t bs = 0;
                for (int c = 0; c < per_sub; c++)
                    bs += y[i].bsums[sb * per_sub + c];
                msum += b.mn[sb] * bs;
            }
        }
        sumf += (b.d * y[i].d) * (float)isum;
        if (b.has_min)
            sumf -= (b.dmin * y[i].d) * (float)msum;
    }
    *s = sumf;
}

/* ---- exported per-format functions ---- */

void quant_to_float_f32_ref(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void quant_to_float_f16_ref(const void *src, float *dst, int64_t n)
{
    const qhalf *x = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = quant_fp16_to_fp32(x[i]);
}

void quant_to_float_bf16_ref(const void *src, float *dst, int64_t n)
{
    const uint16_t *x = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = quant_bf16_to_fp32(x[i]);
}

#define REF_FORMAT32(fmt)                                                                  \
    void quant_to_float_##fmt##_ref(const void *src, float *dst, int64_t n)                \
    {                                                                                      \
        ref_to_float32(ref_unpack_##fmt, src, dst, n);                                     \
    }                                                                                      \
    void quant_dot_##fmt##_ref(int64_t n, float *s, const void *w, const void *a)          \
    {                                                                                      \
        ref_dot32(ref_unpack_##fmt, n, s, w, a);                                           \
    }

/* y[n] = x[n] (32-element formats); s = w[n] . a[n], w fmt, a Q8_0 */
REF_FORMAT32(q4_0)
REF_FORMAT32(q4_1)
REF_FORMAT32(q5_0)
REF_FORMAT32(q5_1)
REF_FORMAT32(q8_0)
REF_FORMAT32(iq4_nl)
REF_FORMAT32(mxfp4)

#define REF_FORMAT256(fmt)                                                                 \
    void quant_to_float_##fmt##_ref(const void *src, float *dst, int64_t n)                \
    {                                                                                      \
        ref_to_float256(ref_unpack_##fmt, src, dst, n);                                    \
    }                                                                                      \
    void quant_dot_##fmt##_ref(int64_t n, float *s, const void *w, const void *a)          \
    {                                                                                      \
        ref_dot256(ref_unpack_##fmt, n, s, w, a);                                          \
    }

/* y[n] = x[n] (256-element formats); s = w[n] . a[n], w fmt, a Q8_K */
REF_FORMAT256(q2_k)
REF_FORMAT256(q3_k)
REF_FORMAT256(q4_k)
REF_FORMAT256(q5_k)
REF_FORMAT256(q6_k)
REF_FORMAT256(iq4_xs)
REF_FORMAT256(iq3_s)
REF_FORMAT256(tq2_0)

void quant_to_float_q8_k_ref(const void *src, float *dst, int64_t n)
{
    ref_to_float256(ref_unpack_q8_k, src, dst, n);
}

/* s = w[n] . a[n]; w F32, a F32 (double accumulator: this is the reference) */
void quant_dot_f32_ref(int64_t n, float *s, const void *w, const void *a)
{
    const float *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)x[i] * y[i];
    *s = (float)sum;
}

/* s = w[n] . a[n]; w F16, a F32 */
void quant_dot_f16_ref(int64_t n, float *s, const void *w, const void *a)
{
    const qhalf *x = w;
    const float *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)quant_fp16_to_fp32(x[i]) * y[i];
    *s = (float)sum;
}

/* s = w[n] . a[n]; w BF16, a F32 */
void quant_dot_bf16_ref(int64_t n, float *s, const void *w, const void *a)
{
    const uint16_t *x = w;
    const float *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)quant_bf16_to_fp32(x[i]) * y[i];
    *s = (float)sum;
}

/* ---- activation quantizers ---- */

void quant_from_float_f32_ref(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void quant_from_float_f16_ref(const float *src, void *dst, int64_t n)
{
    qhalf *y = dst;
    for (int64_t i = 0; i < n; i++)
        y[i] = quant_fp32_to_fp16(src[i]);
}

void quant_from_float_bf16_ref(const float *src, void *dst, int64_t n)
{
    uint16_t *y = dst;
    for (int64_t i = 0; i < n; i++)
        y[i] = quant_fp32_to_bf16(src[i]);
}

/* dst[n / 32] blocks Q8_0 = src[n] */
void quant_from_float_q8_0_ref(const float *src, void *dst, int64_t n)
{
    block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float *x = src + i * QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = quant_fp32_to_fp16(d);
        for (int j = 0; j < QK8_0; j++)
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

/* dst[n / 256] blocks Q8_K = src[n] */
void quant_from_float_q8_k_ref(const float *src, void *dst, int64_t n)
{
    block_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *x = src + i * QK_K;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        /* the extreme element maps to -127; the other sign stays within 127 */
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            int v = (int)lrintf(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}
