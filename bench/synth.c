/*
 * synth.c - synthetic MoE models (see synth.h for the contract).
 *
 * Order of this file: presets, random numbers, the tensor table and llama.cpp's
 * type mix, random quantized blocks, the synthetic vocabularies, metadata,
 * and the writers. Nothing here prints; synth_main.c owns the terminal.
 */
#include "synth.h"
#include "synth_impl.h"
#include "errmsg.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_writer.h"
#include "quant.h"
#include "split.h"
#include "splitfmt.h"

/* ---------------------------------------------------------------- presets */

/* Published hyper-parameters (HF config.json of each model). */
static const struct synth_shape shapes[] = {
    { .name = "qwen3-30b-a3b", .model_name = "Qwen3-30B-A3B (synthetic)",
      .arch = SYNTH_ARCH_QWEN3MOE, .n_layer = 48, .n_embd = 2048, .n_head = 32,
      .n_head_kv = 4, .head_dim = 128, .n_expert = 128, .n_expert_used = 8,
      .n_ff = 6144, .n_ff_exp = 768, .n_vocab = 151936, .n_ctx = 40960,
      .rope_base = 1e6f, .rms_eps = 1e-6f },
    { .name = "qwen3-235b-a22b", .model_name = "Qwen3-235B-A22B (synthetic)",
      .arch = SYNTH_ARCH_QWEN3MOE, .n_layer = 94, .n_embd = 4096, .n_head = 64,
      .n_head_kv = 4, .head_dim = 128, .n_expert = 128, .n_expert_used = 8,
      .n_ff = 12288, .n_ff_exp = 1536, .n_vocab = 151936, .n_ctx = 40960,
      .rope_base = 1e6f, .rms_eps = 1e-6f },
    { .name = "qwen3-coder-480b-a35b", .model_name = "Qwen3-Coder-480B-A35B (synthetic)",
      .arch = SYNTH_ARCH_QWEN3MOE, .n_layer = 62, .n_embd = 6144, .n_head = 96,
      .n_head_kv = 8, .head_dim = 128, .n_expert = 160, .n_expert_used = 8,
      .n_ff = 8192, .n_ff_exp = 2560, .n_vocab = 151936, .n_ctx = 262144,
      .rope_base = 1e7f, .rms_eps = 1e-6f },
    { .name = "mixtral-8x7b", .model_name = "Mixtral-8x7B (synthetic)",
      .arch = SYNTH_ARCH_LLAMA, .n_layer = 32, .n_embd = 4096, .n_head = 32,
      .n_head_kv = 8, .head_dim = 128, .n_expert = 8, .n_expert_used = 2,
      .n_ff = 14336, .n_ff_exp = 14336, .n_vocab = 32000, .n_ctx = 32768,
      .rope_base = 1e6f, .rms_eps = 1e-5f },
    /* DeepSeek-V3/R1 (config.json of deepseek-ai/DeepSeek-V3). */
    { .name = "deepseek-v3-671b", .model_name = "DeepSeek-V3-671B (synthetic)",
      .arch = SYNTH_ARCH_DEEPSEEK2, .n_layer = 61, .n_embd = 7168, .n_head = 128,
      .n_head_kv = 1, .head_dim = 576, .n_expert = 256, .n_expert_used = 8,
      .n_ff = 18432, .n_ff_exp = 2048, .n_vocab = 129280, .n_ctx = 163840,
      .rope_base = 10000.0f, .rms_eps = 1e-6f, .n_dense_lead = 3, .n_expert_shared = 1,
      .n_group = 8, .n_group_used = 4, .q_lora_rank = 1536, .kv_lora_rank = 512,
      .dk_nope = 128, .n_rot = 64, .dv = 128, .w_scale = 2.5f, .yarn_factor = 40.0f,
      .yarn_orig_ctx = 4096 },
    /* Kimi-K2 (config.json of moonshotai/Kimi-K2-Instruct): 1.04T. */
    { .name = "kimi-k2", .model_name = "Kimi-K2-1T (synthetic)",
      .arch = SYNTH_ARCH_DEEPSEEK2, .n_layer = 61, .n_embd = 7168, .n_head = 64,
      .n_head_kv = 1, .head_dim = 576, .n_expert = 384, .n_expert_used = 8,
      .n_ff = 18432, .n_ff_exp = 2048, .n_vocab = 163840, .n_ctx = 131072,
      .rope_base = 50000.0f, .rms_eps = 1e-6f, .n_dense_lead = 1, .n_expert_shared = 1,
      .n_group = 1, .n_group_used = 1, .q_lora_rank = 1536, .kv_lora_rank = 512,
      .dk_nope = 128, .n_rot = 64, .dv = 128, .w_scale = 2.827f, .yarn_factor = 32.0f,
      .yarn_orig_ctx = 4096 },
    /* Tests: the deepseek2 layout at n_embd 256 (~5 MB at q2_k_xl; rows fit
     * every K-quant: q_lora 256, n_head * dv 256). */
    { .name = "tiny-ds2", .model_name = "moestream tiny deepseek2 (synthetic)",
      .arch = SYNTH_ARCH_DEEPSEEK2, .n_layer = 3, .n_embd = 256, .n_head = 4,
      .n_head_kv = 1, .head_dim = 80, .n_expert = 16, .n_expert_used = 4,
      .n_ff = 512, .n_ff_exp = 256, .n_vocab = 512, .n_ctx = 4096,
      .rope_base = 10000.0f, .rms_eps = 1e-6f, .n_dense_lead = 1, .n_expert_shared = 1,
      .n_group = 4, .n_group_used = 2, .q_lora_rank = 256, .kv_lora_rank = 64,
      .dk_nope = 32, .n_rot = 16, .dv = 64, .w_scale = 2.5f, .yarn_factor = 40.0f,
      .yarn_orig_ctx = 4096 },
    /* Qwen3.5/3.6-MoE (config.json text_config): 3 gated delta-net layers then
     * one gated full-attention layer; head_dim 256 with a quarter rotary;
     * linear attention 16 key heads, value heads of 128; one shared expert.
     * 35B-A3B and Qwen3.6-35B-A3B share every shape. */
    { .name = "qwen3.5-35b-a3b", .model_name = "Qwen3.5-35B-A3B (synthetic)",
      .arch = SYNTH_ARCH_QWEN35MOE, .n_layer = 40, .n_embd = 2048, .n_head = 16,
      .n_head_kv = 2, .head_dim = 256, .n_expert = 256, .n_expert_used = 8,
      .n_ff = 512, .n_ff_exp = 512, .n_vocab = 248320, .n_ctx = 262144,
      .rope_base = 1e7f, .rms_eps = 1e-6f, .n_ff_shexp = 512, .n_rot = 64,
      .full_attn_interval = 4, .ssm_d_conv = 4, .ssm_d_state = 128, .ssm_n_group = 16,
      .ssm_dt_rank = 32 },
    { .name = "qwen3.6-35b-a3b", .model_name = "Qwen3.6-35B-A3B (synthetic)",
      .arch = SYNTH_ARCH_QWEN35MOE, .n_layer = 40, .n_embd = 2048, .n_head = 16,
      .n_head_kv = 2, .head_dim = 256, .n_expert = 256, .n_expert_used = 8,
      .n_ff = 512, .n_ff_exp = 512, .n_vocab = 248320, .n_ctx = 262144,
      .rope_base = 1e7f, .rms_eps = 1e-6f, .n_ff_shexp = 512, .n_rot = 64,
      .full_attn_interval = 4, .ssm_d_conv = 4, .ssm_d_state = 128, .ssm_n_group = 16,
      .ssm_dt_rank = 32 },
    { .name = "qwen3.5-122b-a10b", .model_name = "Qwen3.5-122B-A10B (synthetic)",
      .arch = SYNTH_ARCH_QWEN35MOE, .n_layer = 48, .n_embd = 3072, .n_head = 32,
      .n_head_kv = 2, .head_dim = 256, .n_expert = 256, .n_expert_used = 8,
      .n_ff = 1024, .n_ff_exp = 1024, .n_vocab = 248320, .n_ctx = 262144,
      .rope_base = 1e7f, .rms_eps = 1e-6f, .n_ff_shexp = 1024, .n_rot = 64,
      .full_attn_interval = 4, .ssm_d_conv = 4, .ssm_d_state = 128, .ssm_n_group = 16,
      .ssm_dt_rank = 64 },
    { .name = "qwen3.5-397b-a17b", .model_name = "Qwen3.5-397B-A17B (synthetic)",
      .arch = SYNTH_ARCH_QWEN35MOE, .n_layer = 60, .n_embd = 4096, .n_head = 32,
      .n_head_kv = 2, .head_dim = 256, .n_expert = 512, .n_expert_used = 10,
      .n_ff = 1024, .n_ff_exp = 1024, .n_vocab = 248320, .n_ctx = 262144,
      .rope_base = 1e7f, .rms_eps = 1e-6f, .n_ff_shexp = 1024, .n_rot = 64,
      .full_attn_interval = 4, .ssm_d_conv = 4, .ssm_d_state = 128, .ssm_n_group = 16,
      .ssm_dt_rank = 64 },
    /* gpt-oss (HF config.json): every layer routed, sliding window 128 on even
     * layers, YaRN x32 over 4096; the published GGUFs are MXFP4_MOE. */
    { .name = "gpt-oss-20b", .model_name = "gpt-oss-20b (synthetic)",
      .arch = SYNTH_ARCH_GPTOSS, .n_layer = 24, .n_embd = 2880, .n_head = 64,
      .n_head_kv = 8, .head_dim = 64, .n_expert = 32, .n_expert_used = 4,
      .n_ff = 2880, .n_ff_exp = 2880, .n_vocab = 201088, .n_ctx = 131072,
      .rope_base = 150000.0f, .rms_eps = 1e-5f, .n_swa = 128, .yarn_factor = 32.0f,
      .yarn_orig_ctx = 4096 },
    { .name = "gpt-oss-120b", .model_name = "gpt-oss-120b (synthetic)",
      .arch = SYNTH_ARCH_GPTOSS, .n_layer = 36, .n_embd = 2880, .n_head = 64,
      .n_head_kv = 8, .head_dim = 64, .n_expert = 128, .n_expert_used = 4,
      .n_ff = 2880, .n_ff_exp = 2880, .n_vocab = 201088, .n_ctx = 131072,
      .rope_base = 150000.0f, .rms_eps = 1e-5f, .n_swa = 128, .yarn_factor = 32.0f,
      .yarn_orig_ctx = 4096 },
    /* Tests: a ~3 MB gpt-oss (every structural feature, small sizes). */
    { .name = "tiny-gpt-oss", .model_name = "moestream tiny gpt-oss (synthetic)",
      .arch = SYNTH_ARCH_GPTOSS, .n_layer = 2, .n_embd = 256, .n_head = 8,
      .n_head_kv = 2, .head_dim = 64, .n_expert = 8, .n_expert_used = 2,
      .n_ff = 256, .n_ff_exp = 256, .n_vocab = 512, .n_ctx = 4096,
      .rope_base = 150000.0f, .rms_eps = 1e-5f, .n_swa = 32, .yarn_factor = 32.0f,
      .yarn_orig_ctx = 4096 },
    /* Demo: ~250 MB at Q4_K_M, big enough that a RAM budget below it streams. */
    { .name = "demo", .model_name = "moestream demo (synthetic)",
      .arch = SYNTH_ARCH_QWEN3MOE, .n_layer = 8, .n_embd = 512, .n_head = 8,
      .n_head_kv = 2, .head_dim = 64, .n_expert = 64, .n_expert_used = 8,
      .n_ff = 1536, .n_ff_exp = 512, .n_vocab = 4096, .n_ctx = 4096,
      .rope_base = 1e6f, .rms_eps = 1e-6f },
    /* Tests: ~2 MB, every row length a multiple of 256 so every K-quant fits. */
    { .name = "tiny", .model_name = "moestream tiny (synthetic)",
      .arch = SYNTH_ARCH_QWEN3MOE, .n_layer = 3, .n_embd = 256, .n_head = 4,
      .n_head_kv = 2, .head_dim = 64, .n_expert = 16, .n_expert_used = 4,
      .n_ff = 512, .n_ff_exp = 256, .n_vocab = 512, .n_ctx = 1024,
      .rope_base = 1e6f, .rms_eps = 1e-6f },
};
#define N_SHAPES (sizeof(shapes) / sizeof(shapes[0]))

static const char *const shape_names[] = {
    "qwen3-30b-a3b", "qwen3-235b-a22b", "qwen3-coder-480b-a35b", "mixtral-8x7b",
    "deepseek-v3-671b", "kimi-k2", "qwen3.5-35b-a3b", "qwen3.6-35b-a3b", "qwen3.5-122b-a10b",
    "qwen3.5-397b-a17b", "gpt-oss-20b", "gpt-oss-120b", "demo", "tiny-ds2", "tiny-gpt-oss", "tiny", NULL,
};

const struct synth_shape *synth_find_shape(const char *name)
{
    for (size_t i = 0; i < N_SHAPES; i++)
        if (name && strcmp(shapes[i].name, name) == 0)
            return &shapes[i];
    return NULL;
}

const char *const *synth_shape_names(void)
{
    return shape_names;
}

static const struct {
    const char *name;
    enum synth_quant q;
    uint32_t file_type; /* general.file_type (llama_ftype) */
} quants[] = {
    { "q4_k_m", SYNTH_Q4_K_M, 15 },
    { "q8_0", SYNTH_Q8_0, 7 },
    { "q2_k", SYNTH_Q2_K, 10 },
    { "q4_0", SYNTH_Q4_0, 2 },
    { "q2_k_xl", SYNTH_Q2_K_XL, 10 },
    { "mxfp4_moe", SYNTH_MXFP4_MOE, 38 },
    { "iq1_s", SYNTH_IQ1_S, 24 },
};

int synth_parse_quant(const char *name, enum synth_quant *out)
{
    for (size_t i = 0; i < sizeof(quants) / sizeof(quants[0]); i++) {
        if (strcasecmp(name, quants[i].name) == 0) {
            *out = quants[i].q;
            return 0;
        }
    }
    return -EINVAL;
}

const char *synth_quant_name(enum synth_quant q)
{
    for (size_t i = 0; i < sizeof(quants) / sizeof(quants[0]); i++)
        if (quants[i].q == q)
            return quants[i].name;
    return "?";
}

static uint32_t quant_file_type(enum synth_quant q)
{
    for (size_t i = 0; i < sizeof(quants) / sizeof(quants[0]); i++)
        if (quants[i].q == q)
            return quants[i].file_type;
    return 0;
}


/* --------------------------------------------------------- half floats */

/* binary32 -> binary16, round to nearest even, subnormals kept (synthetic
 * scales of wide matrices can fall below fp16's normal range). */
static qhalf f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffffu;
    if (exp >= 31)
        return (qhalf)(sign | 0x7bffu); /* clamp to the largest finite value */
    if (exp <= 0) {
        if (exp < -10)
            return (qhalf)sign;
        man |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t h = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return (qhalf)(sign | h);
    }
    uint32_t h = ((uint32_t)exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++;
    if (h >= 0x7c00u)
        h = 0x7bffu;
    return (qhalf)(sign | h);
}

/* Block scales of wide matrices fall below fp16's normal range (6.1e-5), as
 * in real Q6_K files; subnormals are kept (precision about 6e-8 absolute), and
 * the floor keeps every scale positive. */
static float clamp_scale(float d)
{
    return d < 1.2e-7f ? 1.2e-7f : d;
}

/* --------------------------------------------------- tensor table and mix */

/* llama.cpp's use_more_bits(): the first and last eighth of the layers and
 * every third layer in between get more bits in the _M mixes. */
bool synth_use_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* The type llama-quantize picks for a tensor (llama_tensor_get_type, for the
 * four supported schemes and this model family). */
static int mix_type(const struct synth_shape *sh, enum synth_quant q, enum tkind k, int layer)
{
    if (sh->arch == SYNTH_ARCH_DEEPSEEK2)
        return synth_ds2_type(sh, q, k, layer);
    if (q == SYNTH_IQ1_S && (k == TK_GATE_EXPS || k == TK_UP_EXPS))
        return QT_IQ1_S;
    if (q == SYNTH_IQ1_S && k == TK_DOWN_EXPS)
        return QT_IQ2_XXS;
    if (q == SYNTH_Q2_K_XL || q == SYNTH_IQ1_S)
        q = SYNTH_Q2_K;
    int def = q == SYNTH_Q4_K_M ? QT_Q4_K : q == SYNTH_Q8_0 || q == SYNTH_MXFP4_MOE ? QT_Q8_0
            : q == SYNTH_Q2_K ? QT_Q2_K : QT_Q4_0;
    if (q == SYNTH_MXFP4_MOE && (k == TK_GATE_EXPS || k == TK_UP_EXPS || k == TK_DOWN_EXPS))
        return QT_MXFP4;
    int n_gqa = sh->n_head / sh->n_head_kv;
    bool eight = sh->n_expert == 8; /* llama.cpp special-cases 8-expert models (Mixtral) */
    switch (k) {
    case TK_OUTPUT_NORM: case TK_ATTN_NORM: case TK_Q_NORM: case TK_K_NORM:
    case TK_FFN_NORM: case TK_ROUTER: case TK_SSM_CONV: case TK_SSM_DT: case TK_SSM_A:
    case TK_SSM_NORM: case TK_SH_GATE_INP: case TK_BIAS: case TK_SINKS: case TK_EXPS_BIAS:
        return QT_F32; /* 1-D, ffn_gate_inp and ssm_conv1d are never quantized */
    case TK_QKV: /* the fused delta-net q/k/v input projection */
        if (q == SYNTH_Q4_K_M)
            return QT_Q5_K;
        return q == SYNTH_Q2_K ? QT_Q3_K : def;
    case TK_OUTPUT:
        return def == QT_Q8_0 ? QT_Q8_0 : QT_Q6_K;
    case TK_EMBD:
        return def;
    case TK_V:
        if (eight)
            return QT_Q8_0;
        if (q == SYNTH_Q2_K)
            return n_gqa >= 4 ? QT_Q4_K : QT_Q3_K;
        if (q == SYNTH_Q4_K_M && synth_use_more_bits(layer, sh->n_layer))
            return QT_Q6_K;
        return def;
    case TK_K:
        return eight ? QT_Q8_0 : def;
    case TK_O:
        if (eight && (q == SYNTH_Q2_K || q == SYNTH_Q4_K_M))
            return QT_Q5_K;
        if (q == SYNTH_Q2_K)
            return QT_Q3_K;
        return def;
    case TK_DOWN_EXPS: case TK_SH_DOWN:
        if (q == SYNTH_Q2_K)
            return QT_Q3_K;
        if (q == SYNTH_Q4_K_M && synth_use_more_bits(layer, sh->n_layer))
            return QT_Q6_K;
        return def;
    case TK_Q: case TK_GATE_EXPS: case TK_UP_EXPS: case TK_ZGATE: case TK_SSM_BETA:
    case TK_SSM_ALPHA: case TK_SSM_OUT: case TK_SH_GATE: case TK_SH_UP:
        return def;
    default: /* deepseek2 kinds: synth_ds2_type */
        break;
    }
    return def;
}

int synth_plan_add(struct plan *p, enum tkind k, int layer, const char *base,
                    uint32_t n_dims, int64_t ne0, int64_t ne1, int64_t ne2,
                    char *err, size_t errlen)
{
    char name[64];
    /* "exp_probs_b.bias" keeps its suffix; others are ".weight" */
    snprintf(name, sizeof(name), strchr(base, '.') ? "%s" : "%s.weight", base);
    return synth_plan_add_named(p, k, layer, name, n_dims, ne0, ne1, ne2, err, errlen);
}

int synth_plan_add_named(struct plan *p, enum tkind k, int layer, const char *name,
                         uint32_t n_dims, int64_t ne0, int64_t ne1, int64_t ne2,
                         char *err, size_t errlen)
{
    struct stensor *t = &p->t[p->n_tensor];
    if (layer >= 0)
        snprintf(t->name, sizeof(t->name), "blk.%d.%s", layer, name);
    else
        snprintf(t->name, sizeof(t->name), "%s", name);
    t->kind = k;
    t->layer = layer;
    t->type = mix_type(&p->sh, p->opt->quant, k, layer);
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = ne2;
    t->ne[3] = 1;
    uint64_t row = quant_row_size(t->type, ne0);
    if (row == 0)
        return errmsg_set(err, errlen, -EINVAL,
                    "synth: %s: row length %" PRId64 " is not a multiple of the %s block size",
                    t->name, ne0, quant_traits(t->type)->name);
    t->size = row * (uint64_t)ne1 * (uint64_t)ne2;
    t->sigma = 1.0f / sqrtf((float)ne0);
    p->data_bytes += t->size;
    p->n_tensor++;
    return 0;
}

static void plan_free(struct plan *p)
{
    free(p->t);
    p->t = NULL;
}

static int plan_build(struct plan *p, const struct synth_options *opt, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    const struct synth_shape *base = synth_find_shape(opt->shape);
    if (!base)
        return errmsg_set(err, errlen, -EINVAL, "synth: unknown shape '%s'", opt->shape ? opt->shape : "");
    p->sh = *base;
    p->opt = opt;
    if (opt->n_layer < 0 || opt->n_layer > base->n_layer)
        return errmsg_set(err, errlen, -EINVAL, "synth: --layers %d: expected 1..%d for %s",
                    opt->n_layer, base->n_layer, base->name);
    if (opt->n_layer)
        p->sh.n_layer = opt->n_layer;
    /* fewer layers keep at least one MoE layer */
    if (p->sh.n_dense_lead >= p->sh.n_layer)
        p->sh.n_dense_lead = p->sh.n_layer - 1;
    if (opt->n_expert && (opt->n_expert < base->n_expert_used || opt->n_expert > 4096))
        return errmsg_set(err, errlen, -EINVAL, "synth: --experts %d: expected %d..4096 for %s",
                    opt->n_expert, base->n_expert_used, base->name);
    if (opt->n_expert)
        p->sh.n_expert = opt->n_expert;
    if (!(opt->routing_skew >= 0.0f && opt->routing_skew <= 10.0f))
        return errmsg_set(err, errlen, -EINVAL, "synth: routing skew %g: expected 0..10",
                    (double)opt->routing_skew);

    const struct synth_shape *s = &p->sh;
    p->t = calloc((size_t)s->n_layer * SYNTH_MAX_LAYER_TENSORS + 3, sizeof(*p->t));
    if (!p->t)
        return errmsg_set(err, errlen, -ENOMEM, "synth: out of memory for the tensor table");
    int64_t e = s->n_embd, nq = (int64_t)s->n_head * s->head_dim;
    int64_t nkv = (int64_t)s->n_head_kv * s->head_dim, ff = s->n_ff_exp, ne = s->n_expert;
    int rc = synth_plan_add(p, TK_EMBD, -1, "token_embd", 2, e, s->n_vocab, 1, err, errlen);
    int n_attn_seen = 0; /* qwen35moe: full-attention layers planned so far */
    for (int L = 0; L < s->n_layer && rc == 0; L++) {
        if (s->arch == SYNTH_ARCH_DEEPSEEK2) {
            rc = synth_ds2_layer(p, L, err, errlen);
            continue;
        }
        if (s->arch == SYNTH_ARCH_QWEN35MOE) {
            rc = synth_q35_layer(p, L, &n_attn_seen, err, errlen);
            continue;
        }
        if (s->arch == SYNTH_ARCH_GPTOSS) {
            rc = synth_oss_layer(p, L, err, errlen);
            continue;
        }
        bool qwen = s->arch == SYNTH_ARCH_QWEN3MOE;
        rc = synth_plan_add(p, TK_ATTN_NORM, L, "attn_norm", 1, e, 1, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_Q, L, "attn_q", 2, e, nq, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_K, L, "attn_k", 2, e, nkv, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_V, L, "attn_v", 2, e, nkv, 1, err, errlen);
        if (qwen) {
            rc = rc ? rc : synth_plan_add(p, TK_Q_NORM, L, "attn_q_norm", 1, s->head_dim, 1, 1, err, errlen);
            rc = rc ? rc : synth_plan_add(p, TK_K_NORM, L, "attn_k_norm", 1, s->head_dim, 1, 1, err, errlen);
        }
        rc = rc ? rc : synth_plan_add(p, TK_O, L, "attn_output", 2, nq, e, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_FFN_NORM, L, "ffn_norm", 1, e, 1, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_ROUTER, L, "ffn_gate_inp", 2, e, ne, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_GATE_EXPS, L, "ffn_gate_exps", 3, e, ff, ne, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_UP_EXPS, L, "ffn_up_exps", 3, e, ff, ne, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_DOWN_EXPS, L, "ffn_down_exps", 3, ff, e, ne, err, errlen);
    }
    rc = rc ? rc : synth_plan_add(p, TK_OUTPUT_NORM, -1, "output_norm", 1, e, 1, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_OUTPUT, -1, "output", 2, e, s->n_vocab, 1, err, errlen);
    if (rc)
        plan_free(p);
    return rc;
}

float synth_router_gain(const struct synth_options *opt, int n_expert, int e)
{
    if (opt->routing_skew == 0.0f || n_expert < 2)
        return 1.0f;
    /* rank of e in a seeded permutation (Fisher-Yates over a small table) */
    int *perm = malloc((size_t)n_expert * sizeof(*perm));
    if (!perm)
        return 1.0f;
    for (int i = 0; i < n_expert; i++)
        perm[i] = i;
    struct rng r = { mix64(opt->seed, 0x5eed0e7e4ull) };
    for (int i = n_expert - 1; i > 0; i--) {
        int j = rng_int(&r, 0, i), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    int rank = 0;
    for (int i = 0; i < n_expert; i++)
        if (perm[i] == e)
            rank = i;
    free(perm);
    float g = 1.0f - 2.0f * (float)rank / (float)(n_expert - 1);
    return expf(opt->routing_skew * g);
}

/* ------------------------------------------------------- random blocks */

/*
 * Each generator writes n_blk blocks whose dequantized values have standard
 * deviation about sigma and mean about zero. The quants are uniform random
 * bytes; the scales are chosen from the rms of the quant range:
 *   Q8_0  q in -128..127, rms 73.9        Q4_0  q-8 in -7..7 (0 twice), rms 4.18
 *   Q4_K  sc*(q-7.5) with min = sc*7.5*d, q-7.5 rms 4.61, sc in 32..63 (rms 48.4)
 *   Q5_K  sc*(q-15.5), rms 9.23           Q2_K  sc*(q-1.5) rms 1.118, sc in 8..15 (rms 11.7)
 *   Q3_K  +-sc*(q-4), q-4 rms 2.345, sc in 16..31 (rms 24.0), random sign
 *   Q6_K  +-sc*(q-32), rms 18.48, sc in 32..127 (rms 83.9), random sign
 * Block scales get a +-20% jitter so rows differ.
 */
static float jitter(struct rng *r)
{
    return 0.8f + 0.4f * rng_unif(r);
}

static void gen_q8_0(struct rng *r, float sigma, void *dst, int64_t n_blk)
{
    block_q8_0 *b = dst;
    for (int64_t i = 0; i < n_blk; i++) {
        b[i].d = f32_to_f16(clamp_scale(sigma / 73.9f * jitter(r)));
        rng_fill(r, b[i].qs, sizeof(b[i].qs));
    }
}

static void gen_q4_0(struct rng *r, float sigma, void *dst, int64_t n_blk)
{
    block_q4_0 *b = dst;
    for (int64_t i = 0; i < n_blk; i++) {
        b[i].d = f32_to_f16(clamp_scale(sigma / 4.18f * jitter(r)));
        rng_fill(r, b[i].qs, sizeof(b[i].qs));
        /* nibble 0 (value -8) becomes 8 (value 0): values -7..7, mean exactly 0 */
        for (size_t j = 0; j < sizeof(b[i].qs); j++) {
            uint8_t q = b[i].qs[j];
            q |= (q & 0x0f) ? 0 : 0x08;
            q |= (q & 0xf0) ? 0 : 0x80;
            b[i].qs[j] = q;
        }
    }
}

/* 6-bit scales and mins of Q4_K/Q5_K into their 12-byte packing
 * (the inverse of ggml's get_scale_min_k4). */
static void pack_k4_scales(uint8_t out[12], const uint8_t sc[8], const uint8_t m[8])
{
    for (int j = 0; j < 4; j++) {
        out[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        out[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        out[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
    }
}

static void gen_q4_k(struct rng *r, float sigma, void *dst, int64_t n_blk)
{
    block_q4_K *b = dst;
    for (int64_t i = 0; i < n_blk; i++) {
        uint8_t sc[8];
        for (int j = 0; j < 8; j++)
            sc[j] = (uint8_t)rng_int(r, 32, 63);
        float d = clamp_scale(sigma / (48.4f * 4.61f) * jitter(r));
        qhalf hd = f32_to_f16(d);
        b[i].d = hd;
        b[i].dmin = f32_to_f16(7.5f * d); /* min_j = dmin * sc_j centres q on 7.5 */
        pack_k4_scales(b[i].scales, sc, sc);
        rng_fill(r, b[i].qs, sizeof(b[i].qs));
    }
}

static void gen_q5_k(struct rng *r, float sigma, void *dst, int64_t n_blk)
{
    block_q5_K *b = dst;
    for (int64_t i = 0; i < n_blk; i++) {
        uint8_t sc[8];
        for (int j = 0; j < 8; j++)
            sc[j] = (uint8_t)rng_int(r, 32, 63);
        float d = clamp_scale(sigma / (48.4f * 9.23f) * jitter(r));
        b[i].d = f32_to_f16(d);
        b[i].dmin = f32_to_f16(15.5f * d);
        pack_k4_scales(b[i].scales, sc, sc);
        rng_fill(r, b[i].qh, sizeof(b[i].qh));
        rng_fill(r, b[i].qs, sizeof(b[i].qs));
    }
}

static void gen_q2_k(struct rng *r, float sigma, void *dst, int64_t n_blk)
{
    block_q2_K *b = dst;
    for (int64_t i = 0; i < n_blk; i++) {
        float d = clamp_scale(sigma / (11.7f * 1.118f) * jitter(r));
        b[i].d = f32_to_f16(d);
        b[i].dmin = f32_to_f16(1.5f * d);
        for (int j = 0; j < 16; j++) {
            uint8_t s = (uint8_t)rng_int(r, 8, 15);
            b[i].scales[j] = (uint8_t)(s | (s << 4)); /* min = scale: centred on q = 1.5 */
        }
        rng_fill(r, b[i].qs, sizeof(b[i].qs));
    }
}

static void gen_q3_k(struct rng *r, float sigma, void *dst, int64_t n_blk)
{
    block_q3_K *b = dst;
    for (int64_t i = 0; i < n_blk; i++) {
        b[i].d = f32_to_f16(clamp_scale(sigma / (24.0f * 2.345f) * jitter(r)));
        memset(b[i].scales, 0, sizeof(b[i].scales));
        for (int j = 0; j < 16; j++) {
            int s = rng_int(r, 16, 31);
            if (rng_next(r) & 1)
                s = -s;
            unsigned v = (unsigned)(s + 32); /* stored biased by 32, 6 bits */
            b[i].scales[j % 8] |= (uint8_t)((v & 15) << (4 * (j / 8)));
            b[i].scales[8 + j % 4] |= (uint8_t)((v >> 4) << (2 * (j / 4)));
        }
        rng_fill(r, b[i].hmask, sizeof(b[i].hmask));
        rng_fill(r, b[i].qs, sizeof(b[i].qs));
    }
}

static void gen_q6_k(struct rng *r, float sigma, void *dst, int64_t n_blk)
{
    block_q6_K *b = dst;
    for (int64_t i = 0; i < n_blk; i++) {
        b[i].d = f32_to_f16(clamp_scale(sigma / (83.9f * 18.48f) * jitter(r)));
        for (int j = 0; j < 16; j++) {
            int s = rng_int(r, 32, 127);
            b[i].scales[j] = (int8_t)((rng_next(r) & 1) ? -s : s);
        }
        rng_fill(r, b[i].ql, sizeof(b[i].ql));
        rng_fill(r, b[i].qh, sizeof(b[i].qh));
    }
}

/* MXFP4: value = k[q] * 2^(e - 128) with k the e2m1 values times 2 (rms
 * 5.85 over the 16 codes); the power-of-two scale nearest sigma / 5.85, one
 * step lower for a random third of the blocks so rows differ. */
static void gen_mxfp4(struct rng *r, float sigma, void *dst, int64_t n_blk)
{
    block_mxfp4 *b = dst;
    int e0 = 128 + (int)lroundf(log2f(sigma / 5.85f));
    for (int64_t i = 0; i < n_blk; i++) {
        int e = e0 - (rng_int(r, 0, 2) == 0);
        b[i].e = (uint8_t)(e < 1 ? 1 : e > 254 ? 254 : e);
        rng_fill(r, b[i].qs, sizeof(b[i].qs));
    }
}

/* IQ types (grid indices, signs and scales: every bit pattern is a valid
 * block) whose block starts with the fp16 scale d: random bytes, then d set
 * so that the values have standard deviation sigma. The values are linear in
 * d, so the RMS of 16 blocks at d = 1 (a fixed seed: the same for every
 * call) calibrates it. */
static void gen_iq(struct rng *r, int type, float sigma, void *dst, int64_t n_blk)
{
    const struct quant_traits *tr = quant_traits(type);
    size_t bs = tr->type_size;
    enum { CAL = 16 };
    uint8_t cal[CAL * 128];
    float v[QK_K];
    struct rng cr = { 0x5eed };
    double ss = 0;
    assert(bs <= 128 && tr->blck_size == QK_K && tr->to_float);
    for (int i = 0; i < CAL; i++) {
        uint8_t *b = cal + (size_t)i * bs;
        rng_fill(&cr, b, bs);
        qhalf one = f32_to_f16(1.0f);
        memcpy(b, &one, sizeof(one));
        tr->to_float(b, v, QK_K);
        for (int j = 0; j < QK_K; j++)
            ss += (double)v[j] * v[j];
    }
    float rms = (float)sqrt(ss / (CAL * QK_K));
    uint8_t *b = dst;
    for (int64_t i = 0; i < n_blk; i++, b += bs) {
        rng_fill(r, b, bs);
        qhalf d = f32_to_f16(clamp_scale(sigma / rms * jitter(r)));
        memcpy(b, &d, sizeof(d));
    }
}

/* Generates rows [r0, r0 + nr) of slice `slice` of tensor t into dst. */
static void gen_rows(const struct plan *p, int ti, int64_t slice, int64_t r0, int64_t nr,
                     void *dst)
{
    const struct stensor *t = &p->t[ti];
    struct rng r = { mix64(mix64(p->opt->seed, (uint64_t)ti + 1),
                           ((uint64_t)slice << 32) ^ (uint64_t)r0) };
    if (t->type == QT_F32) {
        float *f = dst;
        int64_t n0 = t->ne[0];
        for (int64_t i = 0; i < nr; i++) {
            float g = 1.0f;
            float sd = 0.0f;
            if (t->kind == TK_PROBS_B) {
                /* selection bias: small offsets around zero */
                for (int64_t j = 0; j < n0; j++)
                    f[i * n0 + j] = 0.1f * (rng_unif(&r) - 0.5f);
                continue;
            }
            if (t->kind == TK_ROUTER) {
                g = synth_router_gain(p->opt, p->sh.n_expert, (int)(r0 + i));
                sd = 2.0f / sqrtf((float)n0) * g;
            }
            for (int64_t j = 0; j < n0; j++) {
                if (t->kind == TK_BIAS || t->kind == TK_EXPS_BIAS) {
                    f[i * n0 + j] = 0.2f * (rng_unif(&r) - 0.5f); /* small, like trained biases */
                } else if (t->kind == TK_SINKS) {
                    f[i * n0 + j] = 2.0f * (rng_unif(&r) - 0.5f);
                } else if (t->kind == TK_ROUTER) {
                    /* Irwin-Hall(4): close enough to normal for a router */
                    float u = rng_unif(&r) + rng_unif(&r) + rng_unif(&r) + rng_unif(&r) - 2.0f;
                    f[i * n0 + j] = u * sd * 1.7320508f;
                } else if (t->kind == TK_SH_GATE_INP) {
                    /* shared-expert gate logit of standard deviation about 1 */
                    f[i * n0 + j] = (rng_unif(&r) - 0.5f) * 3.4641016f / sqrtf((float)n0);
                } else if (t->kind == TK_SSM_CONV) {
                    f[i * n0 + j] = rng_unif(&r) - 0.5f; /* conv taps in [-0.5, 0.5) */
                } else if (t->kind == TK_SSM_A) {
                    /* -exp(A_log): a decay, so the recurrent state stays bounded */
                    f[i * n0 + j] = -(0.5f + 1.5f * rng_unif(&r));
                } else {
                    f[i * n0 + j] = 1.0f + 0.2f * (rng_unif(&r) - 0.5f);
                }
            }
        }
        return;
    }
    int64_t n_blk = nr * (t->ne[0] / quant_traits(t->type)->blck_size);
    switch (t->type) {
    case QT_Q8_0: gen_q8_0(&r, t->sigma, dst, n_blk); break;
    case QT_Q4_0: gen_q4_0(&r, t->sigma, dst, n_blk); break;
    case QT_Q2_K: gen_q2_k(&r, t->sigma, dst, n_blk); break;
    case QT_Q3_K: gen_q3_k(&r, t->sigma, dst, n_blk); break;
    case QT_Q4_K: gen_q4_k(&r, t->sigma, dst, n_blk); break;
    case QT_Q5_K: gen_q5_k(&r, t->sigma, dst, n_blk); break;
    case QT_Q6_K: gen_q6_k(&r, t->sigma, dst, n_blk); break;
    case QT_MXFP4: gen_mxfp4(&r, t->sigma, dst, n_blk); break;
    case QT_IQ1_S: case QT_IQ2_XXS: gen_iq(&r, t->type, t->sigma, dst, n_blk); break;
    default: assert(!"type outside the supported mixes"); break;
    }
}

/* ------------------------------------------------------------ metadata */

static const char qwen_chat_template[] =
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

static int set_metadata(struct gguf_writer *w, const struct plan *p, const struct vocab *v)
{
    const struct synth_shape *s = &p->sh;
    bool q35 = s->arch == SYNTH_ARCH_QWEN35MOE;
    bool qwen = s->arch == SYNTH_ARCH_QWEN3MOE || q35, ds2 = s->arch == SYNTH_ARCH_DEEPSEEK2;
    bool oss = s->arch == SYNTH_ARCH_GPTOSS, bpe = qwen || ds2 || oss;
    const char *arch = q35 ? "qwen35moe" : qwen ? "qwen3moe" : ds2 ? "deepseek2" : oss ? "gpt-oss" : "llama";
    char k[96];
    int rc = 0;
#define KEY(suffix) (snprintf(k, sizeof(k), "%s.%s", arch, suffix), k)
    rc = rc ? rc : gguf_writer_set_str(w, "general.architecture", arch);
    rc = rc ? rc : gguf_writer_set_str(w, "general.type", "model");
    rc = rc ? rc : gguf_writer_set_str(w, "general.name", s->model_name);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)s->n_layer);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)s->n_ctx);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)s->n_embd);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)s->n_ff);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)s->n_head);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)s->n_head_kv);
    if (ds2) {
        rc = rc ? rc : synth_ds2_keys(w, s);
    } else if (qwen || oss) {
        rc = rc ? rc : gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)s->head_dim);
        rc = rc ? rc : gguf_writer_set_u32(w, KEY("attention.value_length"), (uint32_t)s->head_dim);
    } else {
        rc = rc ? rc : gguf_writer_set_u32(w, KEY("vocab_size"), (uint32_t)s->n_vocab);
        rc = rc ? rc : gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)s->head_dim);
    }
    rc = rc ? rc : gguf_writer_set_f32(w, KEY("rope.freq_base"), s->rope_base);
    rc = rc ? rc : gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), s->rms_eps);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("expert_count"), (uint32_t)s->n_expert);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("expert_used_count"), (uint32_t)s->n_expert_used);
    if (qwen || ds2 || oss)
        rc = rc ? rc : gguf_writer_set_u32(w, KEY("expert_feed_forward_length"), (uint32_t)s->n_ff_exp);
    if (q35)
        rc = rc ? rc : synth_q35_keys(w, s);
    if (oss)
        rc = rc ? rc : synth_oss_keys(w, s);
#undef KEY
    rc = rc ? rc : gguf_writer_set_u32(w, "general.quantization_version", 2);
    rc = rc ? rc : gguf_writer_set_u32(w, "general.file_type", quant_file_type(p->opt->quant));

    rc = rc ? rc : gguf_writer_set_str(w, "tokenizer.ggml.model", bpe ? "gpt2" : "llama");
    /* Kimi-K2 is deepseek2 in GGUF with a pre-tokenizer of its own */
    const char *ds2_pre = strcmp(s->name, "kimi-k2") == 0 ? "kimi-k2" : "deepseek-v3";
    rc = rc ? rc : gguf_writer_set_str(w, "tokenizer.ggml.pre", q35 ? "qwen35" : qwen ? "qwen2" : ds2 ? ds2_pre : oss ? "gpt-4o" : "default");
    rc = rc ? rc : gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens",
                                           (const char *const *)v->tok, (uint64_t)v->n);
    if (v->score)
        rc = rc ? rc : gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32,
                                           v->score, (uint64_t)v->n);
    rc = rc ? rc : gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32,
                                       v->type, (uint64_t)v->n);
    if (v->merge)
        rc = rc ? rc : gguf_writer_set_arr_str(w, "tokenizer.ggml.merges",
                                               (const char *const *)v->merge,
                                               (uint64_t)v->n_merge);
    rc = rc ? rc : gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    rc = rc ? rc : gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos);
    if (v->unk >= 0)
        rc = rc ? rc : gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk);
    if (v->pad >= 0)
        rc = rc ? rc : gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad);
    rc = rc ? rc : gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", !qwen && !oss);
    if (!qwen && !oss)
        rc = rc ? rc : gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    if (qwen)
        rc = rc ? rc : gguf_writer_set_str(w, "tokenizer.chat_template", qwen_chat_template);
    return rc;
}

/* -------------------------------------------------------------- writers */

static void fill_stats(const struct plan *p, struct synth_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->n_tensor = p->n_tensor;
    st->data_bytes = p->data_bytes;
    /* header: tensor infos, KVs, tokenizer (about 16 bytes a token and a merge) */
    uint64_t hdr = (uint64_t)p->n_tensor * 96 + 4096 + (uint64_t)p->sh.n_vocab * 32;
    st->file_bytes = hdr;
    for (int i = 0; i < p->n_tensor; i++) {
        const struct stensor *t = &p->t[i];
        st->file_bytes += (t->size + GGUF_DEFAULT_ALIGNMENT - 1) / GGUF_DEFAULT_ALIGNMENT
                          * GGUF_DEFAULT_ALIGNMENT;
        if (t->type >= 0 && t->type < 64) {
            st->type_count[t->type]++;
            st->type_bytes[t->type] += t->size;
        }
    }
}

int synth_plan(const struct synth_options *opt, struct synth_stats *stats, char *err,
               size_t errlen)
{
    struct plan p;
    int rc = plan_build(&p, opt, err, errlen);
    if (rc)
        return rc;
    if (stats)
        fill_stats(&p, stats);
    plan_free(&p);
    return 0;
}

static int check_space(const char *path, uint64_t need, char *err, size_t errlen)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0)
        return errmsg_set(err, errlen, -errno, "synth: statvfs %s: %s", dir, strerror(errno));
    uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    if (avail < need + (64u << 20))
        return errmsg_set(err, errlen, -ENOSPC,
                    "synth: %s: %.2f GB free, the model needs %.2f GB (plus 64 MB slack)",
                    dir, (double)avail / 1e9, (double)need / 1e9);
    return 0;
}

/* Writes the plan's GGUF to tmp (no rename). progress offsets: base of total. */
static int write_gguf_file(const struct plan *p, const char *tmp, uint64_t prog_base,
                           uint64_t prog_total, char *err, size_t errlen)
{
    const struct synth_options *opt = p->opt;
    struct vocab v = { 0 };
    int rc = p->sh.arch != SYNTH_ARCH_LLAMA ? vocab_build_bpe(&v, p->sh.n_vocab, opt->seed)
                                               : vocab_build_spm(&v, p->sh.n_vocab, opt->seed);
    if (rc) {
        errmsg_set(err, errlen, rc, "synth: building the %d-token vocabulary: %s", p->sh.n_vocab,
             strerror(-rc));
        goto out_vocab;
    }
    struct gguf_writer *w = gguf_writer_init(0);
    if (!w) {
        rc = errmsg_set(err, errlen, -ENOMEM, "synth: out of memory for the GGUF writer");
        goto out_vocab;
    }
    rc = set_metadata(w, p, &v);
    if (rc) {
        errmsg_set(err, errlen, rc, "synth: setting metadata: %s", strerror(-rc));
        goto out_writer;
    }
    size_t buf_size = 0;
    for (int i = 0; i < p->n_tensor; i++) {
        const struct stensor *t = &p->t[i];
        rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne);
        if (rc < 0) {
            errmsg_set(err, errlen, rc, "synth: adding tensor %s: %s", t->name, strerror(-rc));
            goto out_writer;
        }
        size_t row = quant_row_size(t->type, t->ne[0]);
        size_t rows = row >= SYNTH_CHUNK ? 1 : SYNTH_CHUNK / row;
        if (rows * row > buf_size)
            buf_size = rows * row;
    }
    uint8_t *buf = malloc(buf_size);
    if (!buf) {
        rc = errmsg_set(err, errlen, -ENOMEM, "synth: out of memory for a %zu-byte buffer", buf_size);
        goto out_writer;
    }
    rc = gguf_writer_begin(w, tmp, err, errlen);
    if (rc)
        goto out_buf;
    uint64_t done = prog_base;
    for (int i = 0; i < p->n_tensor && rc == 0; i++) {
        const struct stensor *t = &p->t[i];
        size_t row = quant_row_size(t->type, t->ne[0]);
        int64_t rows = row >= SYNTH_CHUNK ? 1 : (int64_t)(SYNTH_CHUNK / row);
        for (int64_t sl = 0; sl < t->ne[2] && rc == 0; sl++) {
            for (int64_t r0 = 0; r0 < t->ne[1] && rc == 0; r0 += rows) {
                int64_t nr = t->ne[1] - r0 < rows ? t->ne[1] - r0 : rows;
                gen_rows(p, i, sl, r0, nr, buf);
                rc = gguf_writer_write(w, buf, (size_t)nr * row, err, errlen);
                done += (uint64_t)nr * row;
                if (opt->progress)
                    opt->progress(opt->progress_ud, done, prog_total);
                if (rc == 0 && opt->cancel && *opt->cancel)
                    rc = errmsg_set(err, errlen, -ECANCELED, "synth: cancelled");
            }
        }
    }
    rc = rc ? rc : gguf_writer_finish(w, err, errlen);
out_buf:
    free(buf);
out_writer:
    gguf_writer_free(w);
out_vocab:
    vocab_free(&v);
    return rc;
}

int synth_write_gguf(const struct synth_options *opt, const char *path,
                     struct synth_stats *stats, char *err, size_t errlen)
{
    struct plan p;
    int rc = plan_build(&p, opt, err, errlen);
    if (rc)
        return rc;
    struct synth_stats st;
    fill_stats(&p, &st);
    char tmp[4200];
    struct stat sb;
    if (stat(path, &sb) == 0) {
        rc = errmsg_set(err, errlen, -EEXIST, "synth: %s already exists (remove it first)", path);
        goto out_plan;
    }
    rc = check_space(path, st.file_bytes, err, errlen);
    if (rc)
        goto out_plan;
    snprintf(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid());
    rc = write_gguf_file(&p, tmp, 0, p.data_bytes, err, errlen);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = errmsg_set(err, errlen, -errno, "synth: rename %s -> %s: %s", tmp, path, strerror(errno));
    if (rc) {
        unlink(tmp);
        goto out_plan;
    }
    if (stat(path, &sb) == 0)
        st.file_bytes = (uint64_t)sb.st_size;
    if (stats)
        *stats = st;
out_plan:
    plan_free(&p);
    return rc;
}

struct split_prog {
    const struct synth_options *opt;
    uint64_t base, total;
};

static void split_progress(void *ud, uint64_t done, uint64_t total, const char *stage)
{
    (void)total;
    (void)stage;
    const struct split_prog *sp = ud;
    if (sp->opt->progress)
        sp->opt->progress(sp->opt->progress_ud, sp->base + done, sp->total);
}

int synth_write_split(const struct synth_options *opt, const char *dir,
                      struct synth_stats *stats, char *err, size_t errlen)
{
    struct plan p;
    int rc = plan_build(&p, opt, err, errlen);
    if (rc)
        return rc;
    struct synth_stats st;
    fill_stats(&p, &st);
    char tmp[4200];
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        rc = errmsg_set(err, errlen, -EEXIST, "synth: %s already exists (remove it first)", dir);
        goto out_plan;
    }
    /* the GGUF and the split directory coexist until the conversion ends */
    rc = check_space(dir, 2 * st.file_bytes + (uint64_t)p.n_tensor * SPLIT_BLOB_ALIGN, err, errlen);
    if (rc)
        goto out_plan;
    snprintf(tmp, sizeof(tmp), "%s.synth-%d.gguf", dir, (int)getpid());
    rc = write_gguf_file(&p, tmp, 0, 2 * p.data_bytes, err, errlen);
    if (rc) {
        unlink(tmp);
        goto out_plan;
    }
    struct split_prog sp = { .opt = opt, .base = p.data_bytes, .total = 2 * p.data_bytes };
    struct split_options so = {
        .input = tmp, .output_dir = dir, .force = false,
        .progress = split_progress, .progress_ud = &sp, .cancel = opt->cancel,
    };
    rc = split_convert(&so, NULL, err, errlen);
    unlink(tmp);
    if (rc == 0 && stats)
        *stats = st;
out_plan:
    plan_free(&p);
    return rc;
}
