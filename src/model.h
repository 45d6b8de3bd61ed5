/*
 * model.h - a loaded split model: hyper-parameters from the manifest, views of
 * the pinned tensors, and the expert provider that streams routed experts.
 *
 * Owns: the split model, its pinned weights (read once into RAM), the
 * provider. Knows tensor names and architectures; never touches files or the
 * ring itself (io/ does). Called by the CLI, session.c and bench/.
 */
#ifndef MOESTREAM_MODEL_H
#define MOESTREAM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pinned.h"
#include "provider.h"
#include "splitfmt.h"

enum model_arch { ARCH_QWEN3MOE = 0, ARCH_MIXTRAL };

struct model_hparams {
    enum model_arch arch;
    char arch_name[32];     /* general.architecture */
    int n_layer;
    int n_embd;
    int n_head;
    int n_head_kv;
    int head_dim;           /* key_length == value_length */
    int n_vocab;
    int n_expert;
    int n_expert_used;
    int n_ff_exp;
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

struct model_layer {
    struct mtensor attn_norm;   /* [n_embd] F32 */
    struct mtensor wq;          /* (n_embd) -> n_head * head_dim */
    struct mtensor wk;          /* (n_embd) -> n_head_kv * head_dim */
    struct mtensor wv;          /* (n_embd) -> n_head_kv * head_dim */
    struct mtensor wo;          /* (n_head * head_dim) -> n_embd */
    struct mtensor q_norm;      /* [head_dim], qk_norm only */
    struct mtensor k_norm;      /* [head_dim], qk_norm only */
    struct mtensor ffn_norm;    /* [n_embd] */
    struct mtensor router;      /* (n_embd) -> n_expert */
    /* expert parts: offsets inside a blob, from the split layer */
    const struct split_part *gate;  /* (n_embd) -> n_ff_exp */
    const struct split_part *up;    /* (n_embd) -> n_ff_exp */
    const struct split_part *down;  /* (n_ff_exp) -> n_embd */
};

struct model_opts {
    struct provider_opts io;    /* cache_bytes is computed from ram_budget */
    uint64_t ram_budget;        /* bytes for everything; 0 = automatic */
    /* The session this model will serve, counted in the budget (its KV cache
     * and scratch): n_ctx 0 = min(the model's context, 4096). */
    int n_ctx;
    int n_batch;                /* 0 = 256, at most n_ctx */
    int n_threads;              /* 0 = 1 */
    bool verify_pinned;         /* XXH3 of every pinned tensor at load */
    uint64_t cache_bytes;       /* nonzero: expert cache size, overriding the budget's share */
};

struct model {
    struct split_model *split;
    struct pinned pinned;
    struct provider *prov;
    struct model_hparams hp;
    struct mtensor tok_embd;    /* [n_vocab] rows of n_embd */
    struct mtensor output_norm;
    struct mtensor output;      /* (n_embd) -> n_vocab */
    struct model_layer *layers; /* [n_layer] */
    uint64_t ram_budget;        /* resolved budget */
    int n_ctx, n_batch;         /* resolved session sizes the budget counted */
    int request_cap;            /* see model_request_cap() */
    uint64_t cache_bytes;       /* part of it for expert slots */
};

/* Reads hyper-parameters only (cheap; no weights). 0 or -errno with err. */
int model_read_hparams(const struct split_model *s, struct model_hparams *hp, char *err, size_t errlen);

/* Opens DIR: manifest, pinned weights, provider under the RAM budget. */
int model_open(struct model **out, const char *dir, const struct model_opts *o, char *err, size_t errlen);
void model_close(struct model *m);

/* Most distinct experts the forward pass asks the provider for at once:
 * half the cache's slots (at least n_expert_used), so a layer's union of
 * experts in prompt processing streams through a small cache in waves.
 * Trace replay uses the same rule so it reproduces the run's reads. */
int model_request_cap(const struct model *m);

/* Reads every expert of every layer into the cache, as far as the cache
 * holds them (for runs that should start warm). progress(done, total) may be
 * NULL. 0, or the provider's error (message in err). */
int model_preload(struct model *m, void (*progress)(uint64_t done, uint64_t total), char *err, size_t errlen);

/* Parses "8G", "512M", "1.5G", "123456" into bytes; 0 on success. */
int model_parse_size(const char *s, uint64_t *out);

#endif
