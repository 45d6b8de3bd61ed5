/*
 * arch_decoder.h - the plain MoE decoder that several architectures share:
 * every layer is pre-norm GQA attention (src/attn.h) then a routed MoE FFN
 * (src/moe.h), with a final norm and output projection; sequence state is a
 * KV cache. The per-architecture files (arch_qwen3moe.c, arch_llama.c) set
 * the flags (QK-norm, rope style, top-k renormalisation) in read_hparams and
 * point their ops table at these functions.
 */
#ifndef MOESTREAM_ARCH_DECODER_H
#define MOESTREAM_ARCH_DECODER_H

#include "arch.h"

int decoder_bind(struct arch_binder *b, void **layers);
void decoder_unbind(void *layers);
uint64_t decoder_state_bytes(const struct model_hparams *hp, int n_ctx);
int decoder_state_init(const struct model *m, int n_ctx, void **state);
void decoder_state_reset(const struct model *m, void *state);
void decoder_state_free(void *state);
uint64_t decoder_scratch_bytes(const struct model_hparams *hp, int n_batch, int n_ctx, int n_threads);
int decoder_scratch_init(const struct model *m, int n_batch, int n_ctx, int n_threads, void **scratch);
void decoder_scratch_free(void *scratch);
int decoder_forward(struct fwd *f, const struct engine_batch *b, float *logits);

#endif
