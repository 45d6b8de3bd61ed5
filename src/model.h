/*
 * model.h - a loaded split model: its architecture (src/arch.h), hyper-
 * parameters, the pinned weights (read once into RAM) and the plan of the
 * RAM budget. Immutable after model_open and shareable by any number of
 * engines and sequences: the mutable parts (expert cache, scratch, states)
 * live in the engine (src/engine.h) and the sequences (src/seq.h).
 *
 * Owns: the split handle, the pinned arena, the architecture's bound layer
 * tensors, and the budget arithmetic (through io/budget.h). Never touches
 * file descriptors or the ring itself.
 */
#ifndef MOESTREAM_MODEL_H
#define MOESTREAM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hparams.h"
#include "provider.h"

struct split_model;
struct split_layer;
struct split_part;
struct gguf_ctx;
struct arch_ops;

struct model_opts {
    struct provider_opts io;    /* for the engines; cache_bytes comes from the plan */
    uint64_t ram_budget;        /* bytes for everything; 0 = automatic */
    /* What the engine will hold, counted in the budget: n_seq sequences of
     * n_ctx positions (0 = min(the model's context, 4096)), steps of n_batch
     * rows (0 = 256, at most n_ctx * n_seq), n_threads (0 = 1). */
    int n_ctx;
    int n_batch;
    int n_seq;                  /* 0 = 1 */
    int n_threads;
    bool verify_pinned;         /* XXH3 of every pinned tensor at load */
    uint64_t cache_bytes;       /* nonzero: expert cache size, overriding the budget's share */
    int moe_topk;               /* nonzero: route each token to this many experts instead of the
                                   model's expert_used_count (a lossy speed lever, at most that) */
    bool kv_f16;                /* attention KV cache in F16 instead of F32 (half the state bytes,
                                   slightly less exact logits); deepseek2's MLA cache stays F32 */
};

/* The budget as resolved at load. */
struct model_plan {
    uint64_t ram_budget;
    uint64_t cache_bytes;       /* expert slots */
    uint64_t state_bytes;       /* one sequence's state (all layers) */
    uint64_t scratch_bytes;     /* one engine's scratch */
    int n_ctx, n_batch, n_seq, n_threads;
    int request_cap;            /* experts per provider request (io/budget.h) */
};

struct model;

/* Opens DIR: manifest, architecture, pinned weights, budget. 0 or -errno
 * with one line in err. */
int model_open(struct model **out, const char *dir, const struct model_opts *o, char *err, size_t errlen);
void model_close(struct model *m);

/* Reads hyper-parameters only (cheap; no weights). 0 or -errno with err. */
int model_read_hparams(const struct split_model *s, struct model_hparams *hp, char *err, size_t errlen);

const struct model_hparams *model_hparams(const struct model *m);
const struct model_plan *model_plan(const struct model *m);
const struct arch_ops *model_arch(const struct model *m);
const struct split_model *model_split(const struct model *m);
const struct gguf_ctx *model_manifest(const struct model *m);
const struct provider_opts *model_io_opts(const struct model *m);
/* The architecture's bound layers (its own struct; see its arch_*.c). */
const void *model_layers(const struct model *m);

/* Parses "8G", "512M", "1.5G", "123456" into bytes; 0, -EINVAL or -ERANGE. */
int model_parse_size(const char *s, uint64_t *out);

#endif
