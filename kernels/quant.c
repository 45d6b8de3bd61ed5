/*
 * quant.c - the traits table indexed by ggml type id, and ISA selection.
 * Geometry comes from sizeof() of the block structs in quant_blocks.h; the
 * function pointers are the scalar references of quant_ref.c. The SIMD files
 * replace only vec_dot / vec_dot_multi and set from_float_simd (quant_install_avx2 /
 * quant_install_avx512, defined in quant_avx2.c / quant_avx512.c); to_float,
 * from_float and vec_dot_ref stay the references. Must not allocate, print
 * or exit.
 */
#include "quant.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fvec.h"
#include "qformat.h"
#include "quant_iq_ref.h"
#include "quant_lowbit.h"
#include "quant_ref.h"

/* geometry only (types without kernels) */
#define GEOM(id, nm, blck, sz, q) [id] = { .name = nm, .blck_size = blck, .type_size = sz, .is_quantized = q }
/* geometry + reference dequantization and dot, with the dot's activation type */
#define GEOMK(id, nm, blck, sz, q, fmt, act)                                                  \
    [id] = { .name = nm, .blck_size = blck, .type_size = sz, .is_quantized = q,               \
             .to_float = quant_to_float_##fmt##_ref, .vec_dot = quant_dot_##fmt##_ref,        \
             .vec_dot_ref = quant_dot_##fmt##_ref, .vec_dot_type = act }
/* GEOMK plus an activation quantizer (weight types that are also dot inputs) */
#define GEOMKA(id, nm, blck, sz, q, fmt, act)                                                 \
    [id] = { .name = nm, .blck_size = blck, .type_size = sz, .is_quantized = q,               \
             .to_float = quant_to_float_##fmt##_ref, .from_float = quant_from_float_##fmt##_ref, \
             .vec_dot = quant_dot_##fmt##_ref, .vec_dot_ref = quant_dot_##fmt##_ref,          \
             .vec_dot_type = act }
/* geometry + dequantization + activation quantizer (activation-only types) */
#define GEOMA(id, nm, blck, sz, q, fmt)                                                       \
    [id] = { .name = nm, .blck_size = blck, .type_size = sz, .is_quantized = q,               \
             .to_float = quant_to_float_##fmt##_ref, .from_float = quant_from_float_##fmt##_ref, \
             .vec_dot_type = id }

/* One initializer for both the pristine reference table and the live one,
 * so the live table is usable (reference kernels) before quant_init(). */
#define QUANT_TRAITS_INIT {                                                                  \
    GEOMKA(QT_F32, "F32", 1, sizeof(float), false, f32, QT_F32),                               \
    GEOMKA(QT_F16, "F16", 1, sizeof(qhalf), false, f16, QT_F32),                               \
    GEOMK(QT_Q4_0, "Q4_0", QK4_0, sizeof(block_q4_0), true, q4_0, QT_Q8_0),                   \
    GEOMK(QT_Q4_1, "Q4_1", QK4_1, sizeof(block_q4_1), true, q4_1, QT_Q8_0),                   \
    GEOMK(QT_Q5_0, "Q5_0", QK5_0, sizeof(block_q5_0), true, q5_0, QT_Q8_0),                   \
    GEOMK(QT_Q5_1, "Q5_1", QK5_1, sizeof(block_q5_1), true, q5_1, QT_Q8_0),                   \
    GEOMKA(QT_Q8_0, "Q8_0", QK8_0, sizeof(block_q8_0), true, q8_0, QT_Q8_0),                   \
    GEOM(QT_Q8_1, "Q8_1", QK8_1, sizeof(block_q8_1), true),                                   \
    GEOMK(QT_Q2_K, "Q2_K", QK_K, sizeof(block_q2_K), true, q2_k, QT_Q8_K),                    \
    GEOMK(QT_Q3_K, "Q3_K", QK_K, sizeof(block_q3_K), true, q3_k, QT_Q8_K),                    \
    GEOMK(QT_Q4_K, "Q4_K", QK_K, sizeof(block_q4_K), true, q4_k, QT_Q8_K),                    \
    GEOMK(QT_Q5_K, "Q5_K", QK_K, sizeof(block_q5_K), true, q5_k, QT_Q8_K),                    \
    GEOMK(QT_Q6_K, "Q6_K", QK_K, sizeof(block_q6_K), true, q6_k, QT_Q8_K),                    \
    GEOMA(QT_Q8_K, "Q8_K", QK_K, sizeof(block_q8_K), true, q8_k),                             \
    GEOMK(QT_IQ2_XXS, "IQ2_XXS", QK_K, sizeof(block_iq2_xxs), true, iq2_xxs, QT_Q8_K),         \
    GEOMK(QT_IQ2_XS, "IQ2_XS", QK_K, sizeof(block_iq2_xs), true, iq2_xs, QT_Q8_K),             \
    GEOMK(QT_IQ3_XXS, "IQ3_XXS", QK_K, sizeof(block_iq3_xxs), true, iq3_xxs, QT_Q8_K),         \
    GEOMK(QT_IQ1_S, "IQ1_S", QK_K, sizeof(block_iq1_s), true, iq1_s, QT_Q8_K),                 \
    GEOMK(QT_IQ4_NL, "IQ4_NL", QK4_NL, sizeof(block_iq4_nl), true, iq4_nl, QT_Q8_0),          \
    GEOMK(QT_IQ3_S, "IQ3_S", QK_K, sizeof(block_iq3_s), true, iq3_s, QT_Q8_K),                \
    GEOMK(QT_IQ2_S, "IQ2_S", QK_K, sizeof(block_iq2_s), true, iq2_s, QT_Q8_K),                 \
    GEOMK(QT_IQ4_XS, "IQ4_XS", QK_K, sizeof(block_iq4_xs), true, iq4_xs, QT_Q8_K),            \
    GEOM(QT_I8, "I8", 1, sizeof(int8_t), false),                                              \
    GEOM(QT_I16, "I16", 1, sizeof(int16_t), false),                                           \
    GEOM(QT_I32, "I32", 1, sizeof(int32_t), false),                                           \
    GEOM(QT_I64, "I64", 1, sizeof(int64_t), false),                                           \
    GEOM(QT_F64, "F64", 1, sizeof(double), false),                                            \
    GEOMK(QT_IQ1_M, "IQ1_M", QK_K, sizeof(block_iq1_m), true, iq1_m, QT_Q8_K),                 \
    GEOMKA(QT_BF16, "BF16", 1, sizeof(uint16_t), false, bf16, QT_F32),                         \
    GEOMK(QT_TQ1_0, "TQ1_0", QK_K, sizeof(block_tq1_0), true, tq1_0, QT_Q8_K),                 \
    GEOMK(QT_TQ2_0, "TQ2_0", QK_K, sizeof(block_tq2_0), true, tq2_0, QT_Q8_K),                \
    GEOMK(QT_MXFP4, "MXFP4", QK_MXFP4, sizeof(block_mxfp4), true, mxfp4, QT_Q8_0),            \
    GEOMK(QT_HQ2, "HQ2", QK_K, sizeof(block_hq2), true, hq2, QT_Q8_KH),                        \
    GEOMK(QT_HQ3, "HQ3", QK_K, sizeof(block_hq3), true, hq3, QT_Q8_KH),                        \
    GEOMA(QT_Q8_KH, "Q8_KH", QK_K, sizeof(block_q8_K), true, q8_kh),                          \
}

static const struct quant_traits traits_ref[QT_COUNT] = QUANT_TRAITS_INIT;
static struct quant_traits traits[QT_COUNT] = QUANT_TRAITS_INIT;

static void quant_install_ref(struct quant_traits *t)
{
    memcpy(t, traits_ref, sizeof(traits_ref));
}

static const struct quant_traits unknown_traits = { .name = "unknown" };

const struct quant_traits *quant_traits(int t)
{
    if (t < 0 || t >= QT_COUNT || traits[t].blck_size == 0)
        return &unknown_traits;
    return &traits[t];
}

bool quant_type_known(int t)
{
    return qformat_known(t);
}

size_t quant_row_size(int t, int64_t n)
{
    return qformat_row_size(t, n);
}

/*
 * SIMD installers, defined in quant_avx2.c / quant_avx512.c. Each receives the
 * whole table (indexed by type id) already filled with the references (and,
 * for avx512, with the avx2 kernels too, so a format without an avx512 kernel
 * keeps its avx2 one) and may replace traits[t].vec_dot and set
 * from_float_simd, nothing else, except that whoever replaces vec_dot also
 * sets vec_dot_multi (its own, or NULL), since the two must stay
 * bit-identical and so must come from the same file. Referenced
 * strongly on purpose: a static archive does not pull in a member to satisfy
 * a weak reference, so a weak declaration would silently drop the SIMD code.
 */
void quant_install_avx2(struct quant_traits *t);
void quant_install_avx512(struct quant_traits *t);
/* the same for the IQ/TQ formats and Q4_1/Q5_1 (quant_iq_avx2.c, quant_iq_avx512.c) */
void quant_install_iq_avx2(struct quant_traits *t);
void quant_install_iq_avx512(struct quant_traits *t);
/* the same for HQ2/HQ3 (quant_lowbit_avx2.c, quant_lowbit_avx512.c) */
void quant_install_lowbit_avx2(struct quant_traits *t);
void quant_install_lowbit_avx512(struct quant_traits *t);
/* four-row kernels (quant_x4_avx512.c): run last, replace vec_dot,
 * vec_dot_multi and set vec_dot_x4 of the types they cover */
void quant_install_x4_avx512(struct quant_traits *t);
/* sixteen-row tiles for prompts (quant_tile_avx512.c): set gemm16 only */
void quant_install_tile_avx512(struct quant_traits *t);
/* four-row and tile kernels of MXFP4 and Q8_0 (quant_b32_avx512.c): run
 * after quant_install_avx512(), replace vec_dot, vec_dot_multi, set
 * vec_dot_x4 and gemm16 of the two types */
void quant_install_b32_avx512(struct quant_traits *t);

static const char *isa_name = "ref";

static bool quant_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}

static bool quant_cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return quant_cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni") &&
           __builtin_cpu_supports("avx512bf16");
}

int quant_select_isa(const char *name)
{
    bool want_avx2 = false, want_avx512 = false;
    if (strcmp(name, "ref") == 0) {
    } else if (strcmp(name, "avx2") == 0) {
        if (!quant_cpu_has_avx2())
            return -ENOTSUP;
        want_avx2 = true;
    } else if (strcmp(name, "avx512") == 0) {
        if (!quant_cpu_has_avx512())
            return -ENOTSUP;
        want_avx2 = want_avx512 = true;
    } else {
        return -EINVAL;
    }
    quant_install_ref(traits);
    if (want_avx2) {
        quant_install_avx2(traits);
        quant_install_iq_avx2(traits);
        quant_install_lowbit_avx2(traits);
    }
    if (want_avx512) {
        quant_install_avx512(traits);
        quant_install_iq_avx512(traits);
        quant_install_lowbit_avx512(traits);
        quant_install_x4_avx512(traits);
        quant_install_tile_avx512(traits);
        quant_install_b32_avx512(traits);
    }
    fvec_select(want_avx512);
    isa_name = want_avx512 ? "avx512" : want_avx2 ? "avx2" : "ref";
    return 0;
}

int quant_init(void)
{
    const char *env = getenv("MOESTREAM_ISA");
    if (env && *env)
        return quant_select_isa(env);
    if (quant_select_isa("avx512") == 0 || quant_select_isa("avx2") == 0)
        return 0;
    return quant_select_isa("ref");
}

const char *quant_isa_name(void)
{
    return isa_name;
}
