/*
 * arch.h - the architecture ops table and its registry, keyed by
 * general.architecture. An architecture owns its hyper-parameter reading,
 * its layer struct and tensor binding (layers without experts included), the
 * layout of a sequence's state (KV cache, recurrent state, latent cache ...),
 * its scratch, and its forward pass over rows of (sequence, position, token).
 *
 * Shared blocks (src/blocks.h, src/attn.h, src/moe.h) do the arithmetic;
 * the expert stream (io/expert_stream.h) does the I/O protocol; an
 * architecture file should read like the model, top to bottom.
 */
#ifndef MOESTREAM_ARCH_H
#define MOESTREAM_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hparams.h"

struct gguf_ctx;
struct model;
struct split_model;

struct fwd;
struct engine_batch;
struct split_part;

/* Where bind() finds tensors: a loaded split model (views into the pinned
 * arena, expert parts of the blobs), or a GGUF before it is split (shapes
 * and types only: data pointers are NULL), so the splitter refuses a model
 * the runtime cannot run before writing anything. One bind function serves
 * both; it must not read tensor data. */
struct arch_binder;

/* A pinned tensor by name, checked against ne0 (and ne1 when > 0) and for a
 * kernel; missing and !required leaves *t zeroed and returns 0. 0 or -errno
 * with the binder's error set (naming tensor, expected and actual). */
int arch_bind_tensor(struct arch_binder *b, struct mtensor *t, const char *name, int64_t ne0, int64_t ne1,
                     bool required);
/* The per-expert part `name` ("ffn_up_exps.weight") of layer il, checked
 * against the per-expert shape [ne0, ne1] and for a dot kernel. */
int arch_bind_part(struct arch_binder *b, int il, const struct split_part **out, const char *name, int64_t ne0,
                   int64_t ne1);
/* Routed experts of layer il (0 for a layer without). */
int arch_layer_experts(struct arch_binder *b, int il);
const struct model_hparams *arch_binder_hparams(const struct arch_binder *b);
/* Sets the binder's error (printf-style) and returns -EINVAL. */
int arch_bind_fail(struct arch_binder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Binder over a loaded split (model.c). err must outlive the binder. */
struct arch_binder *arch_binder_split(const struct model_hparams *hp, const struct split_model *s,
                                      const uint8_t *pinned_base, char *err, size_t errlen);
void arch_binder_free(struct arch_binder *b);

/* Checks that the GGUF g (path for messages) is a model the runtime can run:
 * a known architecture, consistent hyper-parameters, and every tensor the
 * architecture binds present with its shape and a type that has a kernel.
 * 0, or -ENOTSUP / -EINVAL with one line in err. */
int arch_check_gguf(const struct gguf_ctx *g, const char *path, char *err, size_t errlen);

struct arch_ops {
    const char *name;            /* general.architecture */
    const char *family;          /* what users know it as, for messages */
    /* A sequence's state can be cut back to an earlier position (a KV or
     * latent cache indexed by position); false for recurrent or ring state,
     * which only restarts from position 0 (src/seq.h seq_rewind). */
    bool rewindable;
    /* Fills hp from the manifest (defaults first). 0 or -errno with err. */
    int (*read_hparams)(const struct gguf_ctx *g, struct model_hparams *hp, char *err, size_t errlen);
    /* Binds the layer tensors through b; *layers is the architecture's own
     * struct. 0 or -errno with the binder's error set. */
    int (*bind)(struct arch_binder *b, void **layers);
    void (*unbind)(void *layers);
    /* One sequence's state for n_ctx positions: bytes, allocation (zeroed),
     * reset to "no tokens seen", free. */
    uint64_t (*state_bytes)(const struct model_hparams *hp, int n_ctx);
    int (*state_init)(const struct model *m, int n_ctx, void **state);
    void (*state_reset)(const struct model *m, void *state);
    void (*state_free)(void *state);
    /* An engine's scratch for steps of n_batch rows over contexts up to
     * n_ctx with n_threads threads: bytes, allocation, free. */
    uint64_t (*scratch_bytes)(const struct model_hparams *hp, int n_batch, int n_ctx, int n_threads);
    int (*scratch_init)(const struct model *m, int n_batch, int n_ctx, int n_threads, void **scratch);
    void (*scratch_free)(void *scratch);
    /* One forward step over b's rows; logits of the rows b selects. 0 or a
     * negative error with f->err set. Allocates nothing. */
    int (*forward)(struct fwd *f, const struct engine_batch *b, float *logits);
};

/* The ops for an architecture name, or NULL. */
const struct arch_ops *arch_find(const char *name);
/* "qwen3moe, llama" - the supported names, for messages. */
const char *arch_names(void);

/* Reads the hyper-parameters most architectures share under "ARCH.*"
 * (block_count, embedding_length, heads, experts, lengths, rope base, eps,
 * context, vocabulary size from tokenizer.ggml.tokens) and checks them. */
int arch_read_common(const struct gguf_ctx *g, const char *arch, struct model_hparams *hp, char *err,
                     size_t errlen);

/* "ARCH.KEY" as an unsigned integer (at most 2^30) into *out, or as a finite
 * float; a missing optional key (and a missing float) keeps *out. Errors name
 * the key: "model: manifest key ARCH.KEY is missing ...". */
int arch_key_u32(const struct gguf_ctx *g, const char *arch, const char *key, int *out, bool required, char *err,
                 size_t errlen);
int arch_key_f32(const struct gguf_ctx *g, const char *arch, const char *key, float *out, char *err,
                 size_t errlen);

extern const struct arch_ops arch_qwen3moe;
extern const struct arch_ops arch_llama;
extern const struct arch_ops arch_deepseek2;
extern const struct arch_ops arch_qwen35moe;
extern const struct arch_ops arch_gptoss;

#endif
