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

#include <stddef.h>
#include <stdint.h>

#include "model.h"

struct fwd;
struct engine_batch;

struct arch_ops {
    const char *name;            /* general.architecture */
    const char *family;          /* what users know it as, for messages */
    /* Fills hp from the manifest (defaults first). 0 or -errno with err. */
    int (*read_hparams)(const struct gguf_ctx *g, struct model_hparams *hp, char *err, size_t errlen);
    /* Binds the layer tensors; *layers is the architecture's own struct. */
    int (*bind)(const struct model *m, void **layers, char *err, size_t errlen);
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

extern const struct arch_ops arch_qwen3moe;
extern const struct arch_ops arch_llama;

#endif
