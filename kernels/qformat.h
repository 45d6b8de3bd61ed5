/*
 * qformat.h - format facts of the ggml block types: name, elements per block,
 * bytes per block. No arithmetic, no ISA code: this is all the GGUF reader,
 * the split format and the splitter need to size tensors, so format/ links
 * against this file alone (the compute traits live in quant.h).
 *
 * Owns: QFORMAT_LIST, the one list of (id, name, block elements, block bytes,
 * quantized?) that both this table and quant.c's traits table expand.
 */
#ifndef MOESTREAM_QFORMAT_H
#define MOESTREAM_QFORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quant_blocks.h"

/* X(id, name, elements per block, bytes per block, quantized) */
#define QFORMAT_LIST(X)                                                       \
    X(QT_F32, "F32", 1, sizeof(float), false)                                 \
    X(QT_F16, "F16", 1, sizeof(qhalf), false)                                 \
    X(QT_Q4_0, "Q4_0", QK4_0, sizeof(block_q4_0), true)                       \
    X(QT_Q4_1, "Q4_1", QK4_1, sizeof(block_q4_1), true)                       \
    X(QT_Q5_0, "Q5_0", QK5_0, sizeof(block_q5_0), true)                       \
    X(QT_Q5_1, "Q5_1", QK5_1, sizeof(block_q5_1), true)                       \
    X(QT_Q8_0, "Q8_0", QK8_0, sizeof(block_q8_0), true)                       \
    X(QT_Q8_1, "Q8_1", QK8_1, sizeof(block_q8_1), true)                       \
    X(QT_Q2_K, "Q2_K", QK_K, sizeof(block_q2_K), true)                        \
    X(QT_Q3_K, "Q3_K", QK_K, sizeof(block_q3_K), true)                        \
    X(QT_Q4_K, "Q4_K", QK_K, sizeof(block_q4_K), true)                        \
    X(QT_Q5_K, "Q5_K", QK_K, sizeof(block_q5_K), true)                        \
    X(QT_Q6_K, "Q6_K", QK_K, sizeof(block_q6_K), true)                        \
    X(QT_Q8_K, "Q8_K", QK_K, sizeof(block_q8_K), true)                        \
    X(QT_IQ2_XXS, "IQ2_XXS", QK_K, sizeof(block_iq2_xxs), true)               \
    X(QT_IQ2_XS, "IQ2_XS", QK_K, sizeof(block_iq2_xs), true)                  \
    X(QT_IQ3_XXS, "IQ3_XXS", QK_K, sizeof(block_iq3_xxs), true)               \
    X(QT_IQ1_S, "IQ1_S", QK_K, sizeof(block_iq1_s), true)                     \
    X(QT_IQ4_NL, "IQ4_NL", QK4_NL, sizeof(block_iq4_nl), true)                \
    X(QT_IQ3_S, "IQ3_S", QK_K, sizeof(block_iq3_s), true)                     \
    X(QT_IQ2_S, "IQ2_S", QK_K, sizeof(block_iq2_s), true)                     \
    X(QT_IQ4_XS, "IQ4_XS", QK_K, sizeof(block_iq4_xs), true)                  \
    X(QT_I8, "I8", 1, sizeof(int8_t), false)                                  \
    X(QT_I16, "I16", 1, sizeof(int16_t), false)                               \
    X(QT_I32, "I32", 1, sizeof(int32_t), false)                               \
    X(QT_I64, "I64", 1, sizeof(int64_t), false)                               \
    X(QT_F64, "F64", 1, sizeof(double), false)                                \
    X(QT_IQ1_M, "IQ1_M", QK_K, sizeof(block_iq1_m), true)                     \
    X(QT_BF16, "BF16", 1, sizeof(uint16_t), false)                            \
    X(QT_TQ1_0, "TQ1_0", QK_K, sizeof(block_tq1_0), true)                     \
    X(QT_TQ2_0, "TQ2_0", QK_K, sizeof(block_tq2_0), true)                     \
    X(QT_MXFP4, "MXFP4", QK_MXFP4, sizeof(block_mxfp4), true)                \
    X(QT_HQ2, "HQ2", QK_K, sizeof(block_hq2), true)                           \
    X(QT_HQ3, "HQ3", QK_K, sizeof(block_hq3), true)                           \
    X(QT_Q8_KH, "Q8_KH", QK_K, sizeof(block_q8_K), true)

struct qformat {
    const char *name;       /* "Q4_K", as ggml names it; "unknown" */
    int64_t blck_size;      /* elements per block; 0 for an unknown id */
    size_t type_size;       /* bytes per block */
    bool is_quantized;
};

/* Facts for id t (any integer read from a file); blck_size 0 when unknown. */
const struct qformat *qformat_get(int t);
bool qformat_known(int t);
const char *qformat_name(int t);
/* Bytes of a row of n elements; 0 when n is not a multiple of the block
 * size, n is negative or t is unknown. */
size_t qformat_row_size(int t, int64_t n);

#endif
