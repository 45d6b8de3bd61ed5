/*
 * hparams.h - the types the model and the architectures share: the
 * hyper-parameters read from the manifest and a view of one pinned tensor.
 * Plain data, no functions; included by src/model.h and src/arch.h so that
 * the architecture registry does not depend on the model module.
 */
#ifndef MOESTREAM_HPARAMS_H
#define MOESTREAM_HPARAMS_H

#include <stdbool.h>
#include <stdint.h>

/* The hyper-parameters every architecture has, plus the options of the
 * shared blocks. An architecture may keep more in its own bound data. */
struct model_hparams {
    char arch_name[32];     /* general.architecture */
    int n_layer;
    int n_embd;
    int n_head;
    int n_head_kv;
    int head_dim;           /* key_length == value_length */
    int n_vocab;
    int n_expert;           /* routed experts per MoE layer (largest) */
    int n_expert_used;      /* experts per token (largest) */
    int n_ff_exp;           /* routed expert hidden size */
    int n_ctx_train;
    float rope_base;
    float rms_eps;
    bool qk_norm;           /* per-head RMSNorm of q and k (Qwen3) */
    bool rope_neox;         /* NEOX (half-split) rotation; else interleaved pairs */
    bool norm_topk;         /* renormalise the top-k router weights */

    /* deepseek2 (DeepSeek-V2/V3/R1, Kimi-K2): MLA, dense lead layers,
     * shared experts, DeepSeek-V3 routing, YaRN. Zero for the others. */
    int n_layer_dense_lead; /* first layers with a dense FFN */
    int n_ff_dense;         /* their hidden size */
    int n_expert_shared;    /* shared experts (one FFN of n_ff_exp * count) */
    int q_lora_rank;        /* 0: plain q projection */
    int kv_lora_rank;
    int head_dim_k_mla;     /* per-head query/key size (no-rope + rope part) */
    int head_dim_v_mla;     /* per-head value size */
    bool mla_kv_b_whole;    /* attn_kv_b unsplit (GGUFs converted before the MLA split) */
    int n_rot;              /* rope dims per head (rope.dimension_count; deepseek2 and
                             * qwen35moe read it; 0 = head_dim where optional) */
    int expert_gating;      /* enum moe_gating */
    int n_expert_groups, n_expert_groups_used;
    float expert_weights_scale;
    int rope_scaling;       /* enum rope_scaling */
    float rope_scale_factor;
    int rope_n_ctx_orig;
    float rope_yarn_log_mul;     /* the GGUF value */
    float rope_yarn_beta_fast, rope_yarn_beta_slow;

    /* qwen35moe (Qwen3.5/3.6-MoE): gated delta-net layers with a gated
     * full-attention layer every full_attn_interval-th, a shared expert, and
     * NextN/MTP blocks after the trunk (n_layer counts the trunk only). */
    int n_layer_nextn;      /* blocks after the trunk (not run) */
    int n_ff_shexp;         /* shared expert hidden size (0 = none) */
    int full_attn_interval; /* layer il is full attention when (il + 1) % it == 0 */
    int ssm_d_conv;         /* causal conv kernel length */
    int ssm_d_state;        /* key (= value) head size of a delta-net head */
    int ssm_n_group;        /* key heads */
    int ssm_dt_rank;        /* value heads */
    int ssm_d_inner;        /* value heads * value head size */

    /* gpt-oss (src/arch_gptoss.c); zero for the other architectures
     * (rope_n_ctx_orig above is its YaRN original context too) */
    int n_swa;              /* sliding window in positions (the current one included); 0 = none */
    int swa_period;         /* layer il slides when il % swa_period < swa_period - 1 */
    float rope_freq_scale;  /* YaRN: 1 / scaling factor; 0 = no rope scaling */
    float yarn_beta_fast, yarn_beta_slow;

    /* Runtime, not from the file: set by model_open from struct model_opts
     * (as moe_topk overrides n_expert_used), read by state_bytes/state_init. */
    bool kv_f16;            /* attention KV cache in IEEE half (src/attn.h); deepseek2's
                             * MLA latent cache stays float32 */
};

/* A view of one pinned tensor; data points into the pinned arena. */
struct mtensor {
    const void *data;
    int type;               /* enum quant_type */
    int64_t ne[4];          /* ne[0] = row length */
};

#endif
