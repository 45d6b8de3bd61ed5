/*
 * moe.h - the routed mixture-of-experts feed-forward block for the rows of
 * one step: router projection (optional bias), routing (softmax over all
 * experts, top-k with ties to the lower id, optional renormalisation; top-k
 * of the logits with a softmax over the selected ones (gpt-oss); or the
 * DeepSeek-V3 router: sigmoid scores, a selection-only bias, group-limited
 * top-k, renormalised weights times a routed scaling factor), the union of the
 * rows' experts streamed through io/expert_stream.h, each expert computed on
 * every row routed to it as it arrives (gather, gate and up, SwiGLU or the
 * clamped gpt-oss SwiGLU, down; optional per-expert biases from the blob),
 * and the weighted sum in slot order, so the numbers never depend on arrival
 * order, on what was cached, or on the other rows of the step.
 * (The one exception is opt-in: --cache-bias ranks cached experts higher, so
 * with it the choice of experts depends on the cache by design.)
 *
 * Owns: the MoE scratch and the expert batching. Optional router lookahead
 * (decode): the next layer's router on this layer's state starts its likely
 * experts' reads early.
 */
#ifndef MOESTREAM_MOE_H
#define MOESTREAM_MOE_H

#include <stdbool.h>
#include <stdint.h>

#include "fwd.h"

struct split_part;

/* Expert groups at most (DeepSeek-V3 and Kimi-K2 use 8 and 1). */
#define MOE_MAX_GROUPS 64

enum moe_gating {
    MOE_GATING_SOFTMAX = 0,        /* softmax over all experts, then top-k */
    MOE_GATING_SIGMOID = 1,        /* DeepSeek-V3: sigmoid scores */
    MOE_GATING_SOFTMAX_SELECTED,   /* gpt-oss: top-k of the logits, softmax over those k */
};

enum moe_act {
    MOE_ACT_SWIGLU = 0,            /* silu(gate) * up */
    /* gpt-oss: g = min(gate, limit), u = clamp(up, -limit, limit),
     * g * sigmoid(alpha * g) * (u + 1) */
    MOE_ACT_SWIGLU_OAI,
};

struct moe_hparams {
    int n_embd, n_expert, n_expert_used, n_ff_exp;
    bool norm_topk;        /* renormalise the top-k weights */
    /* Router variants; all zero is the softmax router above, unchanged. */
    int gating;            /* enum moe_gating: scores of the experts */
    int n_group;           /* > 1: experts in n_group groups; the best */
    int n_group_used;      /*   n_group_used groups (by their top-2 sum) only */
    float w_scale;         /* nonzero: the weights times this (routed scaling) */
    int act;               /* enum moe_act */
    float act_alpha, act_limit;    /* MOE_ACT_SWIGLU_OAI */
};

/* One layer's MoE weights: the router (pinned) and the parts of an expert
 * blob (offsets and types inside each blob). */
struct moe_weights {
    const struct mtensor *router;            /* (n_embd) -> n_expert */
    const struct split_part *gate, *up, *down;
    const struct mtensor *ffn_norm;          /* for the lookahead of the layer before */
    const struct mtensor *probs_b;           /* F32 [n_expert] selection-only bias, or NULL */
    /* Options (NULL: none), all F32: the router's bias [n_expert] (pinned)
     * and per-expert biases [n_ff_exp], [n_ff_exp], [n_embd] in the blob. */
    const struct mtensor *router_b;
    const struct split_part *gate_b, *up_b, *down_b;
};

struct moe_scratch {
    float *router;         /* [B][n_expert] logits, then probabilities */
    int32_t *topk_id;      /* [B][K] */
    float *topk_w;         /* [B][K] */
    float *out;            /* [B][K][n_embd] one row per (row, slot) */
    float *xg;             /* [B*K][n_embd] gathered inputs */
    float *hg, *hu;        /* [B*K][n_ff_exp] gate (then the activation), up */
    float *yg;             /* [B*K][n_embd] expert outputs */
    int32_t *g_tok, *g_slot; /* [B*K] row and slot of a gathered row */
    int32_t *b_row0, *b_rows; /* [n_expert] gathered rows of each expert of a batch */
    float *pf_x;           /* [n_embd] lookahead input */
    float *pf_logits;      /* [n_expert] */
    int32_t *pf_ids;       /* [K] */
    float *sel;            /* [n_expert] selection scores of one row */
    float *pf_w;           /* [K] lookahead weights (unused) */
};

uint64_t moe_scratch_bytes(const struct moe_hparams *hp, int n_batch);
int moe_scratch_init(struct moe_scratch *s, const struct moe_hparams *hp, int n_batch);
void moe_scratch_free(struct moe_scratch *s);

/* Work of the layer that needs no expert weights (a shared expert): run
 * while the layer's expert reads are in flight. It must not touch x: its
 * result is added after the routed experts, where it always was, so the
 * numbers do not depend on when it ran. */
struct moe_overlap {
    void (*fn)(void *ctx);
    void *ctx;
};

/* x[n][n_embd] += MoE(xb) for layer il, xb the rows normed with the layer's
 * ffn_norm. next (may be NULL) is layer il + 1's MoE, for the lookahead of
 * single-row steps when the prefetch policy wants it; x is the residual stream that the
 * lookahead norms with next->ffn_norm. ov (may be NULL) runs once, right
 * after the layer's reads started (after any prefetch of the next layer was
 * started). 0 or the stream's error (f->err). */
int moe_forward(struct fwd *f, struct moe_scratch *s, const struct moe_hparams *hp, const struct moe_weights *w,
                const struct moe_weights *next, float rms_eps, int il, const struct engine_batch *b,
                const float *xb, float *x, const struct moe_overlap *ov);

/* The shared expert (Qwen3.5/Qwen3-Next, DeepSeek-style dense FFN next to
 * the routed experts): x += g * down(silu(gate xb) * up xb), with
 * g = sigmoid(gate_inp . xb) when gate_inp is bound, else 1. Pinned weights,
 * no I/O; each row's numbers depend on that row only. */
struct moe_shared_weights {
    const struct mtensor *gate_inp;          /* [n_embd] -> 1, or NULL */
    const struct mtensor *gate, *up, *down;  /* n_embd -> n_ff, n_ff -> n_embd */
};

struct moe_shared_scratch {
    float *hg, *hu;        /* [B][n_ff] */
    float *y;              /* [B][n_embd] */
    float *g;              /* [B] gate logits */
};

uint64_t moe_shared_scratch_bytes(int n_embd, int n_ff, int n_batch);
int moe_shared_scratch_init(struct moe_shared_scratch *s, int n_embd, int n_ff, int n_batch);
void moe_shared_scratch_free(struct moe_shared_scratch *s);
void moe_shared_forward(struct fwd *f, struct moe_shared_scratch *s, const struct moe_shared_weights *w, int n_embd,
                        int n_ff, int n, const float *xb, float *x);
/* moe_shared_forward in two halves: compute into s (y and the gate), then
 * add to x. Between them s must not be reused; the sum equals the one call. */
void moe_shared_compute(struct fwd *f, struct moe_shared_scratch *s, const struct moe_shared_weights *w, int n_embd,
                        int n_ff, int n, const float *xb);
void moe_shared_apply(const struct moe_shared_scratch *s, const struct moe_shared_weights *w, int n_embd, int n,
                      float *x);

#endif
