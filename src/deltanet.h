/*
 * deltanet.h - gated delta-net linear attention (Qwen3.5 / Qwen3-Next) for
 * the rows of one step, over a per-sequence recurrent state.
 *
 * Per layer and row (x the normed input):
 *   [q | k | v] = W_qkv x,  z = W_gate x,  beta = sigmoid(W_beta x),
 *   g = softplus(W_alpha x + dt_bias) * a                 (a < 0: a decay)
 *   [q | k | v] = silu(causal depthwise conv over the last d_conv inputs)
 *   q, k = L2-normalised per key head; value head h uses key head h % n_k
 *   per value head: S = exp(g) S;  d = beta (v - S k);  S += d k^T;
 *                   o = S q / sqrt(head size)
 *   out = W_out (rmsnorm(o) * norm * silu(z)) per value head
 *
 * Owns: the state layout of one sequence (conv inputs and the S matrices of
 * every delta-net layer), its scratch, and the arithmetic. A prefill step
 * runs each head's rows in order with that head's S held in cache (one pass
 * over S per row, the same operations as decode, so prefill and decode give
 * the same numbers); heads run in parallel on the pool.
 */
#ifndef MOESTREAM_DELTANET_H
#define MOESTREAM_DELTANET_H

#include <stdint.h>

#include "fwd.h"

struct deltanet_hparams {
    int n_embd;
    int d_conv;            /* conv kernel length */
    int head_dim;          /* key and value head size */
    int n_k_heads, n_v_heads;
    float eps;             /* L2 norm floor and the output RMSNorm epsilon */
};

/* conv channels: q and k of every key head, v of every value head */
static inline int deltanet_conv_dim(const struct deltanet_hparams *hp)
{
    return (2 * hp->n_k_heads + hp->n_v_heads) * hp->head_dim;
}

/* One layer's weights (views into the pinned arena). conv, dt_bias, a and
 * norm are F32. */
struct deltanet_weights {
    const struct mtensor *wqkv;      /* n_embd -> conv_dim */
    const struct mtensor *wgate;     /* n_embd -> n_v * head (z) */
    const struct mtensor *wbeta;     /* n_embd -> n_v */
    const struct mtensor *walpha;    /* n_embd -> n_v */
    const struct mtensor *dt_bias;   /* [n_v] */
    const struct mtensor *a;         /* [n_v] */
    const struct mtensor *conv;      /* [conv_dim][d_conv] */
    const struct mtensor *norm;      /* [head] */
    const struct mtensor *wout;      /* n_v * head -> n_embd */
};

/* One sequence's state for n_layer delta-net layers. */
struct deltanet_state {
    float *conv;           /* [n_layer][d_conv - 1][conv_dim], oldest first */
    float *ssm;            /* [n_layer][n_v][head][head], S[row = v dim][col = k dim] */
    int n_layer;
    size_t conv_layer, ssm_layer;   /* floats per layer */
};

uint64_t deltanet_state_bytes(const struct deltanet_hparams *hp, int n_layer);
int deltanet_state_init(struct deltanet_state *st, const struct deltanet_hparams *hp, int n_layer);
/* Forgets everything (zero state). */
void deltanet_state_reset(struct deltanet_state *st);
void deltanet_state_free(struct deltanet_state *st);

struct deltanet_scratch {
    float *qkv;            /* [B][conv_dim] projection, then conv output */
    float *z;              /* [B][n_v * head] */
    float *beta, *g;       /* [B][n_v] */
    float *o;              /* [B][n_v * head] */
    struct deltanet_state **st;  /* [B] the state of each row's sequence */
};

uint64_t deltanet_scratch_bytes(const struct deltanet_hparams *hp, int n_batch);
int deltanet_scratch_init(struct deltanet_scratch *s, const struct deltanet_hparams *hp, int n_batch);
void deltanet_scratch_free(struct deltanet_scratch *s);

/* out[n][n_embd] = delta-net layer il (index among the delta-net layers)
 * for the rows of b given their normed inputs xb; s->st[t] must point at row
 * t's state, whose layer il advances by the row. */
void deltanet_forward(struct fwd *f, struct deltanet_scratch *s, const struct deltanet_hparams *hp,
                      const struct deltanet_weights *w, int il, const struct engine_batch *b, const float *xb,
                      float *out);

#endif
