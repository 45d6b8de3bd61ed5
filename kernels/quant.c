/*
 * quant.c - the traits table indexed by ggml type id, and ISA selection.
 * Geometry comes from sizeof() of the block structs in quant_blocks.h.
 * (Function pointers are filled in by the kernels module as formats land.)
 */
#include "quant.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define GEOM(id, nm, blck, sz, q) [id] = { .name = nm, .blck_size = blck, .type_size = sz, .is_quantized = q }

static struct quant_traits traits[QT_COUNT] = {
    GEOM(QT_F32, "F32", 1, sizeof(float), false),
    GEOM(QT_F16, "F16", 1, sizeof(qhalf), false),
    GEOM(QT_Q4_0, "Q4_0", QK4_0, sizeof(block_q4_0), true),
    GEOM(QT_Q4_1, "Q4_1", QK4_1, sizeof(block_q4_1), true),
    GEOM(QT_Q5_0, "Q5_0", QK5_0, sizeof(block_q5_0), true),
    GEOM(QT_Q5_1, "Q5_1", QK5_1, sizeof(block_q5_1), true),
    GEOM(QT_Q8_0, "Q8_0", QK8_0, sizeof(block_q8_0), true),
    GEOM(QT_Q8_1, "Q8_1", QK8_1, sizeof(block_q8_1), true),
    GEOM(QT_Q2_K, "Q2_K", QK_K, sizeof(block_q2_K), true),
    GEOM(QT_Q3_K, "Q3_K", QK_K, sizeof(block_q3_K), true),
    GEOM(QT_Q4_K, "Q4_K", QK_K, sizeof(block_q4_K), true),
    GEOM(QT_Q5_K, "Q5_K", QK_K, sizeof(block_q5_K), true),
    GEOM(QT_Q6_K, "Q6_K", QK_K, sizeof(block_q6_K), true),
    GEOM(QT_Q8_K, "Q8_K", QK_K, sizeof(block_q8_K), true),
    GEOM(QT_IQ2_XXS, "IQ2_XXS", QK_K, sizeof(block_iq2_xxs), true),
    GEOM(QT_IQ2_XS, "IQ2_XS", QK_K, sizeof(block_iq2_xs), true),
    GEOM(QT_IQ3_XXS, "IQ3_XXS", QK_K, sizeof(block_iq3_xxs), true),
    GEOM(QT_IQ1_S, "IQ1_S", QK_K, sizeof(block_iq1_s), true),
    GEOM(QT_IQ4_NL, "IQ4_NL", QK4_NL, sizeof(block_iq4_nl), true),
    GEOM(QT_IQ3_S, "IQ3_S", QK_K, sizeof(block_iq3_s), true),
    GEOM(QT_IQ2_S, "IQ2_S", QK_K, sizeof(block_iq2_s), true),
    GEOM(QT_IQ4_XS, "IQ4_XS", QK_K, sizeof(block_iq4_xs), true),
    GEOM(QT_I8, "I8", 1, sizeof(int8_t), false),
    GEOM(QT_I16, "I16", 1, sizeof(int16_t), false),
    GEOM(QT_I32, "I32", 1, sizeof(int32_t), false),
    GEOM(QT_I64, "I64", 1, sizeof(int64_t), false),
    GEOM(QT_F64, "F64", 1, sizeof(double), false),
    GEOM(QT_IQ1_M, "IQ1_M", QK_K, sizeof(block_iq1_m), true),
    GEOM(QT_BF16, "BF16", 1, sizeof(uint16_t), false),
    GEOM(QT_TQ1_0, "TQ1_0", QK_K, sizeof(block_tq1_0), true),
    GEOM(QT_TQ2_0, "TQ2_0", QK_K, sizeof(block_tq2_0), true),
    GEOM(QT_MXFP4, "MXFP4", QK_MXFP4, sizeof(block_mxfp4), true),
};

static const struct quant_traits unknown_traits = { .name = "unknown" };

const struct quant_traits *quant_traits(int t)
{
    if (t < 0 || t >= QT_COUNT || traits[t].blck_size == 0)
        return &unknown_traits;
    return &traits[t];
}

bool quant_type_known(int t)
{
    return quant_traits(t)->blck_size != 0;
}

size_t quant_row_size(int t, int64_t n)
{
    const struct quant_traits *tr = quant_traits(t);
    if (tr->blck_size == 0 || n < 0 || n % tr->blck_size != 0)
        return 0;
    return (size_t)(n / tr->blck_size) * tr->type_size;
}

static const char *isa_name = "ref";

int quant_select_isa(const char *name)
{
    if (strcmp(name, "ref") != 0)
        return -ENOTSUP;
    isa_name = "ref";
    return 0;
}

int quant_init(void)
{
    const char *env = getenv("MOESTREAM_ISA");
    return quant_select_isa(env ? env : "ref");
}

const char *quant_isa_name(void)
{
    return isa_name;
}
