/*
 * synth.h - the synthetic-model generator: a GGUF (or a split directory) with
 * the exact tensor names, shapes, types, metadata and tokenizer layout of a
 * named real MoE model, filled with random but valid quantized blocks.
 *
 * Owns: the presets (published hyper-parameters of Qwen3-30B-A3B,
 * Qwen3-235B-A22B, Qwen3-Coder-480B-A35B, Mixtral-8x7B, DeepSeek-V3-671B,
 * Kimi-K2 (1T), Qwen3.5-35B-A3B, Qwen3.6-35B-A3B, Qwen3.5-122B-A10B,
 * Qwen3.5-397B-A17B, gpt-oss-20b, gpt-oss-120b, and small tiny/demo shapes), llama.cpp's per-tensor type mix for a quantization scheme, the
 * random block writer and the synthetic byte-level BPE / SentencePiece
 * vocabularies.
 * Must not: print or exit (progress goes through the callback, errors into the
 * caller's buffer), or hold more than one bounded chunk of tensor data in
 * memory (SYNTH_CHUNK bytes plus one expert slice), whatever the model size.
 * Called by synth_main.c (moestream-synth), tests/test_synth.c and bench/.
 *
 * Value scales (so activations stay finite through every layer): every
 * quantized matrix dequantizes to values of standard deviation
 * 1/sqrt(ne[0]) (ne[0] = fan-in, the row length), K-quant minimums centre the
 * values on zero; norm weights are 1 +- 0.1 (uniform); routers
 * (ffn_gate_inp, F32) have standard deviation 2/sqrt(n_embd), times a
 * per-expert gain when routing skew is on (see synth_options.routing_skew).
 *
 * Determinism: the bytes of a tensor depend only on the seed, the tensor's
 * index in the file and, for stacked expert tensors, the expert index, so a
 * given (preset, options) always produces the same file.
 */
#ifndef MOESTREAM_SYNTH_H
#define MOESTREAM_SYNTH_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of tensor data generated and written at once. */
#define SYNTH_CHUNK (8u << 20)

enum synth_arch {
    SYNTH_ARCH_QWEN3MOE,   /* QK-norm, gpt2 BPE tokenizer with qwen2 pre-tokenizer */
    SYNTH_ARCH_LLAMA,      /* Mixtral: llama arch with experts, SentencePiece tokenizer */
    SYNTH_ARCH_QWEN35MOE,  /* Qwen3.5/3.6-MoE: delta-net + gated attention, shared expert, qwen35 pre-tokenizer */
    SYNTH_ARCH_GPTOSS,     /* gpt-oss: biases, sinks, sliding window, YaRN; BPE with gpt-4o pre-tokenizer (bench/synth_oss.c) */
    SYNTH_ARCH_DEEPSEEK2,  /* DeepSeek-V3 / Kimi-K2: MLA, dense lead layers, shared expert (bench/synth_ds2.c) */
};

/* Quantization schemes, named as llama-quantize names them. */
enum synth_quant {
    SYNTH_Q4_K_M,
    SYNTH_Q8_0,
    SYNTH_Q2_K,
    SYNTH_Q4_0,
    /* Q2_K_XL-like (the dynamic 2-bit mixes people run DeepSeek-V3/R1 at),
     * restricted to types with kernels here: routed gate/up Q2_K, routed
     * down Q3_K, everything pinned Q4_K/Q6_K (attn_k_b/v_b Q8_0). Other
     * architectures: the q2_k mix. */
    SYNTH_Q2_K_XL,
    /* MXFP4_MOE as the published gpt-oss GGUFs: routed experts MXFP4,
     * attention, embeddings and output Q8_0, the rest F32 */
    SYNTH_MXFP4_MOE,
    /* IQ1_S-like (the 1.58-bit dynamic mixes: DeepSeek-R1 in 131 GB): routed
     * gate/up IQ1_S, routed down IQ2_XXS, everything else as q2_k_xl (other
     * architectures: as q2_k) */
    SYNTH_IQ1_S,
};

struct synth_shape {
    const char *name;          /* preset name: "qwen3-30b-a3b" */
    const char *model_name;    /* general.name */
    enum synth_arch arch;
    int n_layer;
    int n_embd;
    int n_head;
    int n_head_kv;
    int head_dim;              /* key_length = value_length */
    int n_expert;
    int n_expert_used;
    int n_ff;                  /* feed_forward_length (dense FFN width of the family) */
    int n_ff_exp;              /* expert_feed_forward_length (== n_ff for Mixtral) */
    int n_vocab;
    int n_ctx;                 /* context_length */
    float rope_base;
    float rms_eps;
    /* deepseek2 only (zero elsewhere); n_head_kv = 1 and head_dim =
     * kv_lora_rank + n_rot there (the absorbed MLA layout llama.cpp writes) */
    int n_dense_lead;          /* leading_dense_block_count (FFN width n_ff) */
    int n_expert_shared;
    int n_group, n_group_used;
    int q_lora_rank, kv_lora_rank;
    int dk_nope, n_rot, dv;    /* per head: no-rope key, rope key, value */
    float w_scale;             /* expert_weights_scale */
    float yarn_factor;         /* rope.scaling.factor (YaRN) */
    int yarn_orig_ctx;
    /* SYNTH_ARCH_QWEN35MOE only (n_rot above is its rotary dims too) */
    int n_ff_shexp;            /* shared expert hidden size */
    int full_attn_interval;    /* every n-th layer is full attention */
    int ssm_d_conv;            /* linear_conv_kernel_dim */
    int ssm_d_state;           /* linear key (= value) head dim */
    int ssm_n_group;           /* linear key heads */
    int ssm_dt_rank;           /* linear value heads */
    /* SYNTH_ARCH_GPTOSS only (yarn_factor, yarn_orig_ctx above are its YaRN too) */
    int n_swa;                 /* attention.sliding_window */
};

struct synth_options {
    const char *shape;         /* preset name */
    int n_layer;               /* 0: the preset's; else fewer layers */
    int n_expert;              /* 0: the preset's; else this many experts (>= n_expert_used) */
    enum synth_quant quant;
    /* Router gain spread: expert e's router row is scaled by
     * exp(skew * g_e), g_e evenly spaced in [-1, 1] over a seeded random
     * permutation of the experts. 0 gives every expert the same expected
     * share. With i.i.d. Gaussian router inputs and 128 experts / top-8
     * (simulated): skew 0.5 (the default) -> busiest expert 2.5x its uniform
     * share, the top 1/8 of experts take 29% of selections, the coldest
     * 0.06x; skew 1.0 -> 3.7x, 41%, ~0; skew 1.5 -> 4.5x, 48%. Real hidden
     * states are not i.i.d., so measure with the runtime's --trace-out. */
    float routing_skew;
    uint64_t seed;
    /* Progress: done/total are tensor-data bytes; called after every chunk
     * (rate-limit in the callback). May be NULL. */
    void (*progress)(void *ud, uint64_t done, uint64_t total);
    void *progress_ud;
    volatile sig_atomic_t *cancel; /* when set non-zero: stop, remove the temp file, -ECANCELED */
};

#define SYNTH_DEFAULT_SKEW 0.5f
#define SYNTH_DEFAULT_SEED 1234u

/* What was (or would be) written. */
struct synth_stats {
    int64_t n_tensor;
    uint64_t data_bytes;       /* sum of tensor sizes */
    uint64_t file_bytes;       /* estimated file size (header + aligned data) */
    int64_t type_count[64];    /* tensors per ggml type id */
    uint64_t type_bytes[64];   /* bytes per ggml type id */
};

/* Preset by name (NULL when unknown), and the list of names (NULL-terminated). */
const struct synth_shape *synth_find_shape(const char *name);
const char *const *synth_shape_names(void);
/* "q4_k_m" -> SYNTH_Q4_K_M; -EINVAL for an unknown name. */
int synth_parse_quant(const char *name, enum synth_quant *out);
const char *synth_quant_name(enum synth_quant q);

/* Computes the tensor table for opt without writing anything. 0 or -EINVAL. */
int synth_plan(const struct synth_options *opt, struct synth_stats *stats,
               char *err, size_t errlen);

/* Writes the model to path: checks free space, writes path.tmp-<pid>, fsyncs
 * and renames. Refuses an existing path (-EEXIST). stats may be NULL.
 * 0 or -errno with one line in err. */
int synth_write_gguf(const struct synth_options *opt, const char *path,
                     struct synth_stats *stats, char *err, size_t errlen);

/* Writes a split directory (splitfmt.h) at dir: generates a temporary GGUF
 * beside dir, converts it with split_convert and removes it (so needs twice
 * the model size free while it runs). 0 or -errno with one line in err. */
int synth_write_split(const struct synth_options *opt, const char *dir,
                      struct synth_stats *stats, char *err, size_t errlen);

/* The gain of expert e's router row (exposed for tests and the docs). */
float synth_router_gain(const struct synth_options *opt, int n_expert, int e);

#endif
