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
};

/* A view of one pinned tensor; data points into the pinned arena. */
struct mtensor {
    const void *data;
    int type;               /* enum quant_type */
    int64_t ne[4];          /* ne[0] = row length */
};

#endif
