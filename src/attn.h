/*
 * attn.h - grouped-query attention over a per-sequence KV cache, for rows
 * of several sequences in one step: q/k/v projections (fused), optional
 * per-head RMSNorm of q and k, rotary embeddings, the causal softmax over
 * each row's own sequence, and the output projection.
 *
 * Owns: the KV cache layout [n_layer][n_head_kv][n_ctx][head_dim] (k and
 * v; head-major, so each head's keys are one contiguous stream) in float32
 * or, opted in, IEEE half (half the bytes to hold and to read per token;
 * rows rounded to nearest even when written, widened exactly when read), its
 * scratch, and the attention arithmetic. A cache may hold
 * fewer positions than the sequence (a ring for sliding-window layers):
 * position p lives in slot p % n_ctx. The architecture
 * owns which layers use it and their weights.
 */
#ifndef MOESTREAM_ATTN_H
#define MOESTREAM_ATTN_H

#include <stdbool.h>
#include <stdint.h>

#include "blocks.h"
#include "fwd.h"

/* Element type of a KV cache (values as the GGUF type ids F32 / F16) */
enum attn_kv_type { ATTN_KV_F32 = 0, ATTN_KV_F16 = 1 };

struct attn_kv {
    /* [n_layer][n_kv / head_dim][n_ctx][head_dim]: k, v for ATTN_KV_F32,
     * k16, v16 (IEEE half bits) for ATTN_KV_F16; the other pair NULL */
    float *k, *v;
    uint16_t *k16, *v16;
    enum attn_kv_type type;
    int n_layer, n_ctx, n_kv;
};

struct attn_hparams {
    int n_embd, n_head, n_head_kv, head_dim;
    float rms_eps, rope_base;
    bool qk_norm, rope_neox;
    /* Options (zero = off, the plain path's numbers are unchanged):
     * n_rot: rotate only the first n_rot dims of a head (0 = head_dim);
     * q_gate: wq yields per head [q (head_dim) | gate (head_dim)], and the
     * attention output of each head is multiplied by sigmoid(gate) before wo
     * (Qwen3.5/Qwen3-Next gated attention). */
    int n_rot;
    bool q_gate;
    bool rope_yarn;        /* YaRN-scaled rope tables (yarn below) */
    struct blocks_yarn yarn;
};

/* One layer's weights (views into the pinned arena). */
struct attn_weights {
    const struct mtensor *wq, *wk, *wv, *wo;
    const struct mtensor *q_norm, *k_norm;   /* qk_norm only */
    /* Options (NULL / 0: none). Biases and sinks are F32. */
    const struct mtensor *bq, *bk, *bv, *bo; /* [n_q], [n_kv], [n_kv], [n_embd] */
    const struct mtensor *sinks;             /* [n_head] logit joining each head's softmax */
    int n_swa;             /* sliding window: attend to positions pos - n_swa + 1 .. pos */
};

/* Rows of one sliding-window pass: a ring cache for a window of n_swa must
 * hold attn_swa_ring(n_swa, n_ctx) positions. */
#define ATTN_SWA_CHUNK 32
int attn_swa_ring(int n_swa, int n_ctx);

struct attn_scratch {
    float *q;              /* [B][n_head * head_dim] */
    float *qg;             /* q_gate: [B][2 * n_head * head_dim] projection, then the gates */
    float *k, *v;          /* [B][n_head_kv * head_dim] */
    float *att;            /* [B][n_head * head_dim] */
    float *scores;         /* [n_threads][n_head / n_head_kv][n_ctx] */
    float *rope_cos, *rope_sin; /* [B][head_dim / 2] */
    struct attn_kv **kv;   /* [B] the cache of each row's sequence */
};

/* Bytes of, and allocation (zeroed) of, a cache of n_layer layers of n_ctx
 * positions of n_kv (= n_head_kv * head_dim) keys and values of type t.
 * attn_kv_init: 0 or -1 (out of memory; nothing left allocated). */
uint64_t attn_kv_bytes(int n_layer, int n_ctx, int n_kv, enum attn_kv_type t);
int attn_kv_init(struct attn_kv *kv, int n_layer, int n_ctx, int n_kv, enum attn_kv_type t);
void attn_kv_free(struct attn_kv *kv);

uint64_t attn_scratch_bytes(const struct attn_hparams *hp, int n_batch, int n_ctx, int n_threads);
int attn_scratch_init(struct attn_scratch *s, const struct attn_hparams *hp, int n_batch, int n_ctx,
                      int n_threads);
void attn_scratch_free(struct attn_scratch *s);

/* Rope tables of the batch's rows (once per step, all layers share them). */
void attn_prepare(struct attn_scratch *s, const struct attn_hparams *hp, const struct engine_batch *b);

/* out[n][n_embd] = attention of layer il for the rows of b, given their
 * normed inputs xb[n][n_embd]; s->kv[t] must point at row t's cache. Writes
 * each row's k, v into its cache at its position first. il indexes the cache
 * (an architecture with attention in some layers only passes its own count). */
void attn_forward(struct fwd *f, struct attn_scratch *s, const struct attn_hparams *hp,
                  const struct attn_weights *w, int il, const struct engine_batch *b, const float *xb, float *out);

#endif
