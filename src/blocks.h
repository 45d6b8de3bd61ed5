/*
 * blocks.h - small shared blocks of the forward passes: RMSNorm, rotary
 * embeddings (NEOX and interleaved pairs; partial rotation by dimension
 * count), and projections through the quantized kernels with a cache of the
 * quantized input, alone or fused (several matrices of one input in one
 * pool run).
 *
 * Owns: the activation-quantization cache protocol (blocks_act_dirty after
 * writing a buffer that may be cached). Allocates nothing.
 */
#ifndef MOESTREAM_BLOCKS_H
#define MOESTREAM_BLOCKS_H

#include <stdbool.h>
#include <stdint.h>

#include "fwd.h"

/* y[n] = x[n] / rms(x) * w[n] (in double, as the reference). */
void blocks_rmsnorm(float *y, const float *x, const float *w, int n, float eps);

/* cos/sin tables of one position for rotation of the first n_rot dims of a
 * head: cs[i], sn[i] for i < n_rot / 2, theta_i = pos * base^(-2i/n_rot). */
void blocks_rope_table(float *cs, float *sn, int pos, int n_rot, float base);
/* YaRN rope scaling (as ggml applies it): frequencies interpolated by
 * freq_scale outside the correction band [beta_fast, beta_slow] rotations of
 * the original context n_ctx_orig, extrapolated inside it (ramp mixed by
 * ext_factor), and cos/sin scaled by attn_factor * (1 + 0.1 ln(1/freq_scale))
 * when ext_factor != 0. */
struct blocks_yarn {
    float freq_scale, ext_factor, attn_factor, beta_fast, beta_slow;
    int n_ctx_orig;
};
void blocks_rope_table_yarn(float *cs, float *sn, int pos, int n_rot, float base, const struct blocks_yarn *y);
/* Rotates the first n_rot dims of v (NEOX: pairs (i, i + n_rot/2); else
 * adjacent pairs (2i, 2i+1)). */
void blocks_rope(float *v, const float *cs, const float *sn, int n_rot, bool neox);

/* Marks the quantized-activation cache stale (its source buffer changed). */
void blocks_act_dirty(struct fwd *f);

/* y[n_tok][n_out] = x[n_tok][n_in] . W^T, W of type wt with rows of n_in,
 * with the activation precision the engine gives call site `site`. */
void blocks_mm(struct fwd *f, enum engine_site site, float *y, const void *W, int wt, int64_t n_out, int64_t n_in,
               const float *x, int n_tok);

/* One output of a fused projection. */
struct blocks_mm_part {
    float *y;              /* [n_tok][n_out] */
    const void *W;
    int wt;
    int64_t n_out;
};
/* Up to 4 projections of the same input in one pool run; same kernels and
 * rows as blocks_mm, so the same numbers. */
void blocks_mm_fused(struct fwd *f, enum engine_site site, const struct blocks_mm_part *parts, int n_parts,
                     int64_t n_in, const float *x, int n_tok);

/* The engine's own allocations for any architecture, in bytes: the
 * quantized-activation cache (n_batch * n_expert_used rows of the largest
 * input width) and the expert stream's scratch. Architectures add this to
 * their scratch_bytes so the budget counts it. */
uint64_t blocks_engine_bytes(const struct model_hparams *hp, int n_batch);
/* Rows and bytes per row of the activation cache. */
size_t blocks_actq_rows(const struct model_hparams *hp, int n_batch);
size_t blocks_actq_row_bytes(const struct model_hparams *hp);

/* xb[t] = rmsnorm(x[t]) * w for t < n (rows of n_embd), then marks the
 * quantized-activation cache stale. */
void blocks_norm_rows(struct fwd *f, float *xb, const float *x, const struct mtensor *w, int n, int n_embd,
                      float eps);

/* x[t] = the token embedding row of b->tok[t], dequantized, for every row. */
void blocks_embed(const struct mtensor *tok_embd, const struct engine_batch *b, float *x, int n_embd);

/* The output head: logits[r][n_vocab] = output . rmsnorm(x[t]) * norm for the
 * rows t the batch asks for (b->out[t] != 0, or the last row without b->out),
 * packed in order; xb is scratch of as many rows. Adds to f->times.output_s.
 * Does nothing but the timing when logits is NULL. */
void blocks_output(struct fwd *f, const struct engine_batch *b, const float *x, float *xb, const struct mtensor *norm,
                   const struct mtensor *output, int n_vocab, int n_embd, float eps, float *logits);

double blocks_now(void);

/* True when every x[0..n) is finite. One multiply-add per element (x * 0 is
 * NaN for Inf and NaN inputs), vectorised; a few microseconds per layer. */
bool blocks_all_finite(const float *x, size_t n);

/* The integrity check of a forward pass: 0 when every x[0..n) is finite,
 * else -EBADMSG with f->err naming layer il (-1: the logits) and what the
 * damage points to. */
int blocks_check_finite(struct fwd *f, const float *x, size_t n, int il);

#endif
