/*
 * mla.h - multi-head latent attention (DeepSeek-V2/V3, Kimi-K2) in its
 * absorbed form, for the rows of several sequences in one step.
 *
 * Per row: q = W_qb(rmsnorm(W_qa x)) (q LoRA; or W_q x when q_lora_rank is
 * 0), each head split into a no-rope part (dk_nope) and a rope part (n_rot);
 * W_kva x gives the latent c (kv_lora_rank, RMS-normed) and one shared rope
 * key k_pe. The cache keeps only [c, rope(k_pe)] per position. Each head's
 * no-rope query is absorbed through its k_b slice (q_abs = K_b,h q_nope, in
 * latent space), so score_i = (q_abs . c_i + rope(q_pe) . k_pe_i) * kq_scale;
 * the softmax-weighted sum of the c_i goes through the head's v_b slice to
 * dv values; the heads' values go through W_o.
 *
 * GGUFs converted before llama.cpp split attn_kv_b into attn_k_b/attn_v_b
 * keep one attn_kv_b per layer; the same absorption then runs from it (key
 * rows weighted by the query, value rows as a per-head product).
 *
 * Owns: the latent cache layout [n_layer][n_ctx][kv_lora_rank + n_rot]
 * (float32), the MLA scratch and arithmetic. Allocates only in *_init.
 */
#ifndef MOESTREAM_MLA_H
#define MOESTREAM_MLA_H

#include <stdbool.h>
#include <stdint.h>

#include "fwd.h"
#include "rope_yarn.h"

struct mla_hparams {
    int n_embd, n_head;
    int q_lora_rank;       /* 0: plain wq */
    int kv_lora_rank;
    int dk_nope, n_rot;    /* query/key head = dk_nope + n_rot */
    int dv;                /* value head */
    float rms_eps;
    float kq_scale;
    bool kv_b_whole;       /* attn_kv_b unsplit (older conversions): absorbed at run time */
    struct rope_yarn rope; /* rotation of the n_rot part (interleaved pairs) */
};

/* One layer's weights (views into the pinned arena); wq or wq_a/q_a_norm/wq_b. */
struct mla_weights {
    const struct mtensor *wq, *wq_a, *q_a_norm, *wq_b;
    const struct mtensor *wkv_a, *kv_a_norm;  /* x -> [c, k_pe]; norm of c */
    const struct mtensor *wk_b, *wv_b;        /* [n_head][kv_lora][dk_nope], [n_head][dv][kv_lora] */
    const struct mtensor *wkv_b;              /* kv_b_whole: [n_head][dk_nope + dv][kv_lora] */
    const struct mtensor *wo;
};

struct mla_cache {
    float *lat;            /* [n_layer][n_ctx][kv_lora_rank + n_rot] */
    int n_layer, n_ctx, width;
};

struct mla_scratch {
    float *qa;             /* [B][q_lora_rank] */
    float *q;              /* [B][n_head * (dk_nope + n_rot)] */
    float *kv;             /* [B][kv_lora_rank + n_rot] */
    float *qcat;           /* [B][n_head][kv_lora_rank + n_rot] absorbed query, rope query */
    float *olat;           /* [B][n_head][kv_lora_rank] attention output in latent space */
    void *hq;              /* [n_head][B] per-head inputs quantized for k_b / v_b */
    float *g_out;          /* [n_head][B][max(kv_lora_rank, dv)] per-head outputs */
    float *att;            /* [B][n_head * dv] */
    float *scores;         /* [n_threads][n_ctx] */
    float *rope_cos, *rope_sin; /* [B][n_rot / 2] */
    struct mla_cache **cache;   /* [B] the cache of each row's sequence */
    float *kvb_row;        /* [n_head][kv_lora_rank] (kv_b_whole) */
};

uint64_t mla_cache_bytes(const struct mla_hparams *hp, int n_layer, int n_ctx);
int mla_cache_init(struct mla_cache *c, const struct mla_hparams *hp, int n_layer, int n_ctx);
void mla_cache_free(struct mla_cache *c);

uint64_t mla_scratch_bytes(const struct mla_hparams *hp, int n_batch, int n_ctx, int n_threads);
int mla_scratch_init(struct mla_scratch *s, const struct mla_hparams *hp, int n_batch, int n_ctx, int n_threads);
void mla_scratch_free(struct mla_scratch *s);

/* Rope tables of the batch's rows (once per step). */
void mla_prepare(struct mla_scratch *s, const struct mla_hparams *hp, const struct engine_batch *b);

/* out[n][n_embd] = MLA of layer il for the rows of b given their normed
 * inputs xb[n][n_embd]; s->cache[t] must point at row t's cache. Writes each
 * row's latent and rope key into its cache at its position first. */
void mla_forward(struct fwd *f, struct mla_scratch *s, const struct mla_hparams *hp, const struct mla_weights *w,
                 int il, const struct engine_batch *b, const float *xb, float *out);

#endif
