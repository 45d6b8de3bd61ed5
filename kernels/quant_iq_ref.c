/*
 * quant_iq_ref.c - scalar references of the IQ 1-3 bit formats and TQ1_0
 * (see quant_iq_ref.h).
 *
 * Each format is unpacked one super-block at a time into a common form:
 * 256 signed integer values q, one small positive integer scale per 16
 * elements and one float step d, with element = (d * sc) * q. The float
 * steps fold the formats' constant factors in exactly (multiplying by a
 * power of two does not round), so the dequantized values are the ones the
 * format's own formula gives, operation for operation:
 * - IQ2_XXS, IQ2_XS, IQ2_S: d(0.5 + s)/4 * grid = (d/8)(2s + 1) * grid.
 * - IQ3_XXS: d(0.5 + s)/2 * grid = (d/4)(2s + 1) * grid.
 * - IQ1_S, IQ1_M: d(2s + 1) * (g +- 1/8) = (d/8)(2s + 1) * (8g +- 1).
 * - TQ1_0: d * (t - 1), t a base-3 digit.
 */
#include "quant_iq_ref.h"

#include <string.h>

#include "quant_grids.h"
#include "quant_ref.h"

struct iq_blk {
    float d;        /* float step of the super-block */
    int16_t sc[16]; /* integer scale of each 16 elements */
    int8_t q[QK_K]; /* signed integer values in element order */
};

typedef void (*iq_unpack_fn)(const void *src, int64_t i, struct iq_blk *b);

/* 8 magnitudes (bytes of a grid entry) with the sign bits 'signs' applied */
static void iq_signed8(uint64_t grid, unsigned signs, int8_t *q)
{
    for (int j = 0; j < 8; j++) {
        const int v = (int)((grid >> (8 * j)) & 0xff);
        q[j] = (int8_t)((signs >> j) & 1u ? -v : v);
    }
}

static void iq_unpack_iq2_xxs(const void *src, int64_t i, struct iq_blk *b)
{
    const block_iq2_xxs *x = (const block_iq2_xxs *)src + i;
    b->d = quant_fp16_to_fp32(x->d) * 0.125f;
    for (int s = 0; s < 8; s++) {
        /* 8 bytes per 32 elements: 4 grid indices, then 4 x 7 sign bits + 4-bit scale */
        uint32_t aux[2];
        memcpy(aux, x->qs + 4 * s, sizeof(aux));
        const int16_t sc = (int16_t)(2 * (aux[1] >> 28) + 1);
        b->sc[2 * s] = b->sc[2 * s + 1] = sc;
        for (int l = 0; l < 4; l++) {
            const unsigned idx = (aux[0] >> (8 * l)) & 0xff;
            iq_signed8(quant_iq2xxs_grid[idx], quant_ksigns_iq2xs[(aux[1] >> (7 * l)) & 127], b->q + 32 * s + 8 * l);
        }
    }
}

static void iq_unpack_iq2_xs(const void *src, int64_t i, struct iq_blk *b)
{
    const block_iq2_xs *x = (const block_iq2_xs *)src + i;
    b->d = quant_fp16_to_fp32(x->d) * 0.125f;
    for (int s = 0; s < 8; s++) {
        /* scale nibble 0 for elements 0..15 of the 32, nibble 1 for 16..31 */
        b->sc[2 * s] = (int16_t)(2 * (x->scales[s] & 0x0f) + 1);
        b->sc[2 * s + 1] = (int16_t)(2 * (x->scales[s] >> 4) + 1);
        for (int l = 0; l < 4; l++) {
            const unsigned v = x->qs[4 * s + l];
            iq_signed8(quant_iq2xs_grid[v & 511], quant_ksigns_iq2xs[v >> 9], b->q + 32 * s + 8 * l);
        }
    }
}

static void iq_unpack_iq2_s(const void *src, int64_t i, struct iq_blk *b)
{
    const block_iq2_s *x = (const block_iq2_s *)src + i;
    b->d = quant_fp16_to_fp32(x->d) * 0.125f;
    const uint8_t *signs = x->qs + QK_K / 8;
    for (int s = 0; s < 8; s++) {
        b->sc[2 * s] = (int16_t)(2 * (x->scales[s] & 0x0f) + 1);
        b->sc[2 * s + 1] = (int16_t)(2 * (x->scales[s] >> 4) + 1);
        for (int l = 0; l < 4; l++) {
            /* 10-bit index: 8 bits in qs, 2 bits of qh[s] at bit 2l */
            const unsigned idx = x->qs[4 * s + l] | (((unsigned)x->qh[s] << (8 - 2 * l)) & 0x300);
            iq_signed8(quant_iq2s_grid[idx], signs[4 * s + l], b->q + 32 * s + 8 * l);
        }
    }
}

static void iq_unpack_iq3_xxs(const void *src, int64_t i, struct iq_blk *b)
{
    const block_iq3_xxs *x = (const block_iq3_xxs *)src + i;
    b->d = quant_fp16_to_fp32(x->d) * 0.25f;
    const uint8_t *scales_signs = x->qs + QK_K / 4;
    for (int s = 0; s < 8; s++) {
        uint32_t aux;
        memcpy(&aux, scales_signs + 4 * s, sizeof(aux));
        const int16_t sc = (int16_t)(2 * (aux >> 28) + 1);
        b->sc[2 * s] = b->sc[2 * s + 1] = sc;
        for (int l = 0; l < 4; l++) {
            /* two 4-value grid entries make one group of 8 */
            const uint64_t g = (uint64_t)quant_iq3xxs_grid[x->qs[8 * s + 2 * l]] |
                               (uint64_t)quant_iq3xxs_grid[x->qs[8 * s + 2 * l + 1]] << 32;
            iq_signed8(g, quant_ksigns_iq2xs[(aux >> (7 * l)) & 127], b->q + 32 * s + 8 * l);
        }
    }
}

/* 8 values 8 * g + delta, g the signed bytes of an IQ1 grid entry, delta +-1 */
static void iq1_group(unsigned idx, int delta, int8_t *q)
{
    const uint64_t g = quant_iq1s_grid[idx];
    for (int j = 0; j < 8; j++)
        q[j] = (int8_t)(8 * (int8_t)(uint8_t)(g >> (8 * j)) + delta);
}

static void iq_unpack_iq1_s(const void *src, int64_t i, struct iq_blk *b)
{
    const block_iq1_s *x = (const block_iq1_s *)src + i;
    b->d = quant_fp16_to_fp32(x->d) * 0.125f;
    for (int s = 0; s < 8; s++) {
        /* qh[s]: 4 x 3 high index bits, 3-bit scale at bit 12, delta sign at bit 15 */
        const unsigned qh = x->qh[s];
        const int16_t sc = (int16_t)(2 * ((qh >> 12) & 7) + 1);
        const int delta = qh & 0x8000 ? -1 : 1;
        b->sc[2 * s] = b->sc[2 * s + 1] = sc;
        for (int l = 0; l < 4; l++)
            iq1_group(x->qs[4 * s + l] | (((qh >> (3 * l)) & 7) << 8), delta, b->q + 32 * s + 8 * l);
    }
}

qhalf quant_iq1m_scale(const block_iq1_m *b)
{
    uint16_t sc[4];
    memcpy(sc, b->scales, sizeof(sc));
    return (qhalf)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000));
}

static void iq_unpack_iq1_m(const void *src, int64_t i, struct iq_blk *b)
{
    const block_iq1_m *x = (const block_iq1_m *)src + i;
    b->d = quant_fp16_to_fp32(quant_iq1m_scale(x)) * 0.125f;
    uint16_t sc[4];
    memcpy(sc, x->scales, sizeof(sc));
    for (int s = 0; s < 8; s++) {
        /* two 3-bit scales per 32 elements (one per 16), 6 bits per 32 in sc[] */
        const unsigned w = sc[s / 2] >> (6 * (s % 2));
        b->sc[2 * s] = (int16_t)(2 * (w & 7) + 1);
        b->sc[2 * s + 1] = (int16_t)(2 * ((w >> 3) & 7) + 1);
        /* qh byte per 16 elements: low nibble for group 0, high for group 1:
         * 3 high index bits, then the delta sign */
        for (int l = 0; l < 4; l++) {
            const unsigned h = (unsigned)x->qh[2 * s + l / 2] >> (4 * (l % 2));
            iq1_group(x->qs[4 * s + l] | ((h & 7) << 8), h & 8 ? -1 : 1, b->q + 32 * s + 8 * l);
        }
    }
}

/* base-3 digit k (0 = most significant of 5) of a byte holding
 * round(v * 256 / 243), as a value -1, 0, 1 */
static int8_t tq1_trit(uint8_t byte, int k)
{
    static const uint8_t pow3[5] = { 1, 3, 9, 27, 81 };
    const uint8_t q = (uint8_t)(byte * pow3[k]);
    return (int8_t)(((unsigned)q * 3 >> 8) - 1);
}

static void iq_unpack_tq1_0(const void *src, int64_t i, struct iq_blk *b)
{
    const block_tq1_0 *x = (const block_tq1_0 *)src + i;
    b->d = quant_fp16_to_fp32(x->d);
    for (int s = 0; s < 16; s++)
        b->sc[s] = 1;
    int8_t *q = b->q;
    /* qs[0..32): 5 digits each, element 32k + m is digit k of byte m */
    for (int k = 0; k < 5; k++)
        for (int m = 0; m < 32; m++)
            *q++ = tq1_trit(x->qs[m], k);
    /* qs[32..48): the same over 16 bytes */
    for (int k = 0; k < 5; k++)
        for (int m = 0; m < 16; m++)
            *q++ = tq1_trit(x->qs[32 + m], k);
    /* qh[0..4): 4 digits each */
    for (int k = 0; k < 4; k++)
        for (int m = 0; m < 4; m++)
            *q++ = tq1_trit(x->qh[m], k);
}

static inline void iq_to_float(iq_unpack_fn unpack, const void *src, float *dst, int64_t n)
{
    struct iq_blk b;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack(src, i, &b);
        for (int s = 0; s < 16; s++) {
            const float dl = b.d * (float)b.sc[s];
            for (int j = 0; j < 16; j++)
                dst[QK_K * i + 16 * s + j] = dl * (float)b.q[16 * s + j];
        }
    }
}

/* s = sum over super-blocks of d_w * d_a * sum_s(sc[s] * sum(q_w * q_a)) */
static inline void iq_dot(iq_unpack_fn unpack, int64_t n, float *s, const void *w, const void *a)
{
    const block_q8_K *y = a;
    struct iq_blk b;
    float sumf = 0.0f;
    for (int64_t i = 0; i < n / QK_K; i++) {
        unpack(w, i, &b);
        int32_t isum = 0;
        for (int sb = 0; sb < 16; sb++) {
            int32_t sumi = 0;
            for (int j = 0; j < 16; j++)
                sumi += (int32_t)b.q[16 * sb + j] * y[i].qs[16 * sb + j];
            isum += b.sc[sb] * sumi;
        }
        sumf += (b.d * y[i].d) * (float)isum;
    }
    *s = sumf;
}

#define IQ_EXPORTS(fmt)                                                              \
    void quant_to_float_##fmt##_ref(const void *src, float *dst, int64_t n)         \
    {                                                                                \
        iq_to_float(iq_unpack_##fmt, src, dst, n);                                   \
    }                                                                                \
    void quant_dot_##fmt##_ref(int64_t n, float *s, const void *w, const void *a)    \
    {                                                                                \
        iq_dot(iq_unpack_##fmt, n, s, w, a);                                         \
    }

IQ_EXPORTS(iq2_xxs)
IQ_EXPORTS(iq2_xs)
IQ_EXPORTS(iq2_s)
IQ_EXPORTS(iq3_xxs)
IQ_EXPORTS(iq1_s)
IQ_EXPORTS(iq1_m)
IQ_EXPORTS(tq1_0)
