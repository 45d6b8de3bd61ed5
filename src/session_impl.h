/*
 * session_impl.h - the session's fields, shared by session.c (allocation,
 * chunking) and the forward passes (qwen3moe.c). Not for other modules.
 * Shapes use B = n_batch (tokens in one forward step).
 */
#ifndef MOESTREAM_SESSION_IMPL_H
#define MOESTREAM_SESSION_IMPL_H

#include "session.h"

struct session {
    struct model *m;
    struct pool *pool;
    int n_ctx, n_batch, n_threads;
    int n_past;
    float *k_cache;        /* [n_layer][n_ctx][n_head_kv * head_dim] */
    float *v_cache;        /* same */
    float *x;              /* [B][n_embd] residual stream */
    float *xb;             /* [B][n_embd] normed input of a sub-layer */
    float *q;              /* [B][n_head * head_dim] */
    float *k;              /* [B][n_head_kv * head_dim] */
    float *v;              /* [B][n_head_kv * head_dim] */
    float *att;            /* [B][n_head * head_dim] attention output */
    float *tmp;            /* [B][n_embd] */
    float *scores;         /* [n_threads][n_ctx] attention scores */
    float *rope_cos;       /* [B][head_dim / 2] */
    float *rope_sin;       /* [B][head_dim / 2] */
    float *router;         /* [B][n_expert] logits, then probabilities */
    int32_t *topk_id;      /* [B][n_expert_used] */
    float *topk_w;         /* [B][n_expert_used] */
    float *moe_out;        /* [B][n_expert_used][n_embd] one row per (token, slot) */
    /* a batch of experts computed together: their (token, slot) rows are
     * gathered back to back, expert after expert (at most B * K rows) */
    float *xg;             /* [B * K][n_embd] gathered inputs */
    float *hg;             /* [B * K][n_ff_exp] gate, then silu(gate) * up */
    float *hu;             /* [B * K][n_ff_exp] up */
    float *yg;             /* [B * K][n_embd] expert outputs */
    int32_t *g_tok;        /* [B * K] token of gathered row */
    int32_t *g_slot;       /* [B * K] slot of gathered row */
    int32_t *b_exp;        /* [n_expert] experts of the batch */
    int32_t *b_row0;       /* [n_expert] first gathered row of each */
    int32_t *b_rows;       /* [n_expert] rows of each */
    const uint8_t **b_blob; /* [n_expert] their weights */
    int32_t *uniq;         /* [n_expert] distinct experts of a layer in this step */
    int32_t *e_count;      /* [n_expert] */
    void *xq;              /* quantized activations: B * K rows of the largest act size */
    size_t xq_row;         /* bytes per row in xq */
    int xq_type;           /* act type held in xq, -1 when stale */
    const float *xq_src;   /* rows xq was made from */
    int xq_n, xq_rows;
    bool prefetch;
    float *pf_x;           /* [n_embd] layer L's state normed for layer L+1's router */
    float *pf_logits;      /* [n_expert] */
    int32_t *pf_ids;       /* [n_expert_used] guessed experts of layer L+1 */
    session_route_fn route_fn;
    void *route_ctx;
    struct session_times times;
    char err[512];
};

/* The forward pass of one chunk (n <= n_batch) at positions n_past..; fills
 * logits as session_eval documents. Returns 0 or a negative error with
 * s->err set. Implemented per architecture. */
int moe_forward(struct session *s, const int32_t *tokens, int n, float *logits, bool all_logits);

#endif
