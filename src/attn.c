/*
 * attn.c - GQA attention over per-sequence KV caches (see attn.h).
 */
#include "attn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "fvec.h"
#include "seq.h"

uint64_t attn_kv_bytes(int n_layer, int n_ctx, int n_kv, enum attn_kv_type t)
{
    return 2ull * n_layer * (uint64_t)n_ctx * n_kv * (t == ATTN_KV_F16 ? sizeof(uint16_t) : sizeof(float));
}

int attn_kv_init(struct attn_kv *kv, int n_layer, int n_ctx, int n_kv, enum attn_kv_type t)
{
    size_t n = (size_t)n_layer * n_ctx * n_kv;
    memset(kv, 0, sizeof(*kv));
    kv->type = t;
    kv->n_layer = n_layer;
    kv->n_ctx = n_ctx;
    kv->n_kv = n_kv;
    bool ok;
    if (t == ATTN_KV_F16) {
        kv->k16 = calloc(n, sizeof(uint16_t));
        kv->v16 = calloc(n, sizeof(uint16_t));
        ok = kv->k16 && kv->v16;
    } else {
        kv->k = calloc(n, sizeof(float));
        kv->v = calloc(n, sizeof(float));
        ok = kv->k && kv->v;
    }
    if (!ok) {
        attn_kv_free(kv);
        return -1;
    }
    return 0;
}

void attn_kv_free(struct attn_kv *kv)
{
    free(kv->k);
    free(kv->v);
    free(kv->k16);
    free(kv->v16);
    kv->k = kv->v = NULL;
    kv->k16 = kv->v16 = NULL;
}

uint64_t attn_scratch_bytes(const struct attn_hparams *hp, int n_batch, int n_ctx, int n_threads)
{
    uint64_t B = (uint64_t)n_batch, nq = (uint64_t)hp->n_head * hp->head_dim,
             nkv = (uint64_t)hp->n_head_kv * hp->head_dim;
    return (B * nq * 2 + B * nkv * 2 + (uint64_t)n_threads * n_ctx * (uint64_t)(hp->n_head / hp->n_head_kv) + B * hp->head_dim + (hp->q_gate ? B * nq * 2 : 0)) *
               sizeof(float) +
           B * sizeof(void *);
}

int attn_scratch_init(struct attn_scratch *s, const struct attn_hparams *hp, int n_batch, int n_ctx,
                      int n_threads)
{
    size_t B = (size_t)n_batch, nq = (size_t)hp->n_head * hp->head_dim, nkv = (size_t)hp->n_head_kv * hp->head_dim;
    memset(s, 0, sizeof(*s));
    s->q = calloc(B * nq, sizeof(float));
    s->k = calloc(B * nkv, sizeof(float));
    s->v = calloc(B * nkv, sizeof(float));
    s->att = calloc(B * nq, sizeof(float));
    s->scores = calloc((size_t)n_threads * n_ctx * (size_t)(hp->n_head / hp->n_head_kv), sizeof(float));
    s->rope_cos = calloc(B * (hp->head_dim / 2), sizeof(float));
    s->rope_sin = calloc(B * (hp->head_dim / 2), sizeof(float));
    s->kv = calloc(B, sizeof(*s->kv));
    if (hp->q_gate && !(s->qg = calloc(B * nq * 2, sizeof(float)))) {
        attn_scratch_free(s);
        return -1;
    }
    if (!s->q || !s->k || !s->v || !s->att || !s->scores || !s->rope_cos || !s->rope_sin || !s->kv) {
        attn_scratch_free(s);
        return -1;
    }
    return 0;
}

void attn_scratch_free(struct attn_scratch *s)
{
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att);
    free(s->scores);
    free(s->rope_cos);
    free(s->rope_sin);
    free(s->kv);
    free(s->qg);
    memset(s, 0, sizeof(*s));
}

int attn_swa_ring(int n_swa, int n_ctx)
{
    return n_swa + ATTN_SWA_CHUNK < n_ctx ? n_swa + ATTN_SWA_CHUNK : n_ctx;
}

void attn_prepare(struct attn_scratch *s, const struct attn_hparams *hp, const struct engine_batch *b)
{
    int half = hp->head_dim / 2, n_rot = hp->n_rot ? hp->n_rot : hp->head_dim;
    for (int t = 0; t < b->n; t++) {
        if (hp->rope_yarn)
            blocks_rope_table_yarn(s->rope_cos + (size_t)t * half, s->rope_sin + (size_t)t * half, b->pos[t],
                                   n_rot, hp->rope_base, &hp->yarn);
        else
            blocks_rope_table(s->rope_cos + (size_t)t * half, s->rope_sin + (size_t)t * half, b->pos[t], n_rot,
                              hp->rope_base);
    }
}

struct attn_job {
    struct attn_scratch *s;
    const struct attn_hparams *hp;
    const struct attn_weights *w;
    const struct engine_batch *b;
    int layer, n_ctx_max;
    int t0, t1;            /* rows of this pass */
};

/* Element offsets, within a layer's cache, of the keys (or values) first +
 * r, r < nr, of head kvh (a ring when the sequence is longer than the
 * cache: slot (first + r) % n_ctx). A head's rows are contiguous, so a
 * block of them is one sequential read. */
static void attn_slots(const struct attn_kv *kv, int hd, int kvh, int first, int nr, size_t *off)
{
    size_t h = (size_t)kvh * kv->n_ctx * hd;
    int slot = first % kv->n_ctx;
    for (int r = 0; r < nr; r++, slot = slot + 1 == kv->n_ctx ? 0 : slot + 1)
        off[r] = h + (size_t)slot * hd;
}

/* Scores of the group's query heads q0 against keys i0 .. i0 + nk - 1 of
 * head kvh (layer offset lo), a block of keys at a time, into scg (stride
 * per head); an F16 cache takes the same blocks and order, the rows widened
 * inside the kernel. */
static void attn_scores(const struct attn_kv *kv, size_t lo, int hd, int kvh, int i0, int nk, int group,
                        const float *q0, float *scg, int stride)
{
    enum { KB = 16 };
    size_t off[KB];
    for (int i = 0; i < nk; i += KB) {
        int nr = nk - i < KB ? nk - i : KB;
        attn_slots(kv, hd, kvh, i0 + i, nr, off);
        if (kv->type == ATTN_KV_F16) {
            const uint16_t *rows[KB];
            for (int r = 0; r < nr; r++)
                rows[r] = kv->k16 + lo + off[r];
            for (int g = 0; g < group; g++)
                fvec_dot_rows_f16(hd, q0 + (size_t)g * hd, rows, nr, scg + (size_t)g * stride + i);
        } else {
            const float *rows[KB];
            for (int r = 0; r < nr; r++)
                rows[r] = kv->k + lo + off[r];
            for (int g = 0; g < group; g++)
                fvec_dot_rows(hd, q0 + (size_t)g * hd, rows, nr, scg + (size_t)g * stride + i);
        }
    }
}

/* att (the group's heads) += the weights scg times values i0 .. of head
 * kvh, a block of value rows (in cache) for every head at once */
static void attn_values(const struct attn_kv *kv, size_t lo, int hd, int kvh, int i0, int nk, int group,
                        float *att, const float *scg, int stride)
{
    enum { VB = 64 };
    size_t off[VB];
    for (int i = 0; i < nk; i += VB) {
        int nr = nk - i < VB ? nk - i : VB;
        attn_slots(kv, hd, kvh, i0 + i, nr, off);
        if (kv->type == ATTN_KV_F16) {
            const uint16_t *rows[VB];
            for (int r = 0; r < nr; r++)
                rows[r] = kv->v16 + lo + off[r];
            fvec_axpy_rows_heads_f16(hd, group, att, hd, scg + i, stride, rows, nr);
        } else {
            const float *rows[VB];
            for (int r = 0; r < nr; r++)
                rows[r] = kv->v + lo + off[r];
            fvec_axpy_rows_heads(hd, group, att, hd, scg + i, stride, rows, nr);
        }
    }
}

/* Causal GQA attention for (row, KV head) pairs, split over pool tasks: the
 * query heads that share a KV head run together, so each key and value row
 * is read once per group (not once per query head) while it is in cache.
 * Keys from pos - n_swa + 1 (or 0) to pos; slot i % n_ctx of the row's
 * cache. Per (row, head) the arithmetic does not depend on the batch. */
static void attn_task(void *ctx, int task, int n_tasks)
{
    const struct attn_job *j = ctx;
    const struct attn_hparams *hp = j->hp;
    struct attn_scratch *s = j->s;
    int hd = hp->head_dim, n_kv = hp->n_head_kv * hd, group = hp->n_head / hp->n_head_kv;
    int total = (j->t1 - j->t0) * hp->n_head_kv;
    const float *sinks = j->w->sinks ? j->w->sinks->data : NULL;
    float *scg = s->scores + (size_t)task * j->n_ctx_max * group;
    float inv = 1.0f / sqrtf((float)hd);
    for (int p = task; p < total; p += n_tasks) {
        int t = j->t0 + p / hp->n_head_kv, kvh = p % hp->n_head_kv;
        const struct attn_kv *kv = s->kv[t];
        const size_t lo = (size_t)j->layer * kv->n_ctx * n_kv;
        int pos = j->b->pos[t];
        int i0 = j->w->n_swa > 0 && pos - j->w->n_swa + 1 > 0 ? pos - j->w->n_swa + 1 : 0;
        int nk = pos + 1 - i0;
        const float *q0 = s->q + (size_t)t * hp->n_head * hd + (size_t)kvh * group * hd;
        attn_scores(kv, lo, hd, kvh, i0, nk, group, q0, scg, j->n_ctx_max);
        float *att = s->att + (size_t)t * hp->n_head * hd + (size_t)kvh * group * hd;
        for (int g = 0; g < group; g++) {
            int h = kvh * group + g;
            float *sc = scg + (size_t)g * j->n_ctx_max;
            float mx = fvec_scale_max(nk, sc, inv);
            if (sinks && sinks[h] > mx)
                mx = sinks[h];
            double sum = fvec_exp_sum(nk, sc, mx);
            if (sinks)
                sum += expf(sinks[h] - mx);
            fvec_normalize(nk, sc, sum);
        }
        memset(att, 0, sizeof(float) * (size_t)group * hd);
        attn_values(kv, lo, hd, kvh, i0, nk, group, att, scg, j->n_ctx_max);
    }
}

struct attn_prep_job {
    struct attn_scratch *s;
    const struct attn_hparams *hp;
    const struct attn_weights *w;
    const struct engine_batch *b;
    int layer, t0, t1;
};

/* Row t, query heads [h0, h1) and KV heads [g0, g1): QK-norm and rope of q
 * and k, then those KV heads' k and v into the row's cache slot (each row
 * writes only its own slot). */
static void attn_prep_heads(const struct attn_prep_job *j, int t, int h0, int h1, int g0, int g1)
{
    const struct attn_hparams *hp = j->hp;
    struct attn_scratch *s = j->s;
    int hd = hp->head_dim, n_q = hp->n_head * hd, n_kv = hp->n_head_kv * hd;
    int n_rot = hp->n_rot ? hp->n_rot : hd;
    const float *cs = s->rope_cos + (size_t)t * (hd / 2), *sn = s->rope_sin + (size_t)t * (hd / 2);
    for (int h = h0; h < h1; h++) {
        float *q = s->q + (size_t)t * n_q + (size_t)h * hd;
        if (hp->qk_norm)
            blocks_rmsnorm(q, q, j->w->q_norm->data, hd, hp->rms_eps);
        blocks_rope(q, cs, sn, n_rot, hp->rope_neox);
    }
    for (int h = g0; h < g1; h++) {
        float *k = s->k + (size_t)t * n_kv + (size_t)h * hd;
        if (hp->qk_norm)
            blocks_rmsnorm(k, k, j->w->k_norm->data, hd, hp->rms_eps);
        blocks_rope(k, cs, sn, n_rot, hp->rope_neox);
    }
    struct attn_kv *kv = s->kv[t];
    size_t base = (size_t)j->layer * kv->n_ctx * n_kv, slot = (size_t)(j->b->pos[t] % kv->n_ctx);
    for (int h = g0; h < g1; h++) {
        size_t dst = base + ((size_t)h * kv->n_ctx + slot) * hd, src = (size_t)t * n_kv + (size_t)h * hd;
        if (kv->type == ATTN_KV_F16) {
            fvec_to_f16(hd, kv->k16 + dst, s->k + src);
            fvec_to_f16(hd, kv->v16 + dst, s->v + src);
            continue;
        }
        memcpy(kv->k + dst, s->k + src, sizeof(float) * hd);
        memcpy(kv->v + dst, s->v + src, sizeof(float) * hd);
    }
}

/* Rows t0 + task, + n_tasks, ...: every head of the row. */
static void attn_prep_task(void *ctx, int task, int n_tasks)
{
    const struct attn_prep_job *j = ctx;
    for (int t = j->t0 + task; t < j->t1; t += n_tasks)
        attn_prep_heads(j, t, 0, j->hp->n_head, 0, j->hp->n_head_kv);
}

/* Rows of distinct sequences (decode): no row reads another row's cache
 * slot, so the work of (row, KV head) p is that group's QK-norm, rope and
 * cache write, then its attention, all in one pool run (p = task, task +
 * n_tasks, ... as attn_task splits it; the same numbers as the two passes). */
struct attn_fused_job {
    struct attn_prep_job prep;
    struct attn_job attn;
};

static void attn_fused_task(void *ctx, int task, int n_tasks)
{
    const struct attn_fused_job *j = ctx;
    const struct attn_hparams *hp = j->prep.hp;
    int group = hp->n_head / hp->n_head_kv, total = (j->prep.t1 - j->prep.t0) * hp->n_head_kv;
    for (int p = task; p < total; p += n_tasks) {
        int t = j->prep.t0 + p / hp->n_head_kv, kvh = p % hp->n_head_kv;
        attn_prep_heads(&j->prep, t, kvh * group, (kvh + 1) * group, kvh, kvh + 1);
    }
    attn_task((void *)&j->attn, task, n_tasks);
}

/* True when no two rows of b share a sequence. */
static bool attn_rows_distinct(const struct engine_batch *b)
{
    for (int t = 1; t < b->n; t++)
        for (int u = 0; u < t; u++)
            if (b->seq[u] == b->seq[t])
                return false;
    return true;
}

/* y[t][0..n) += bias for the n_rows rows of stride n. */
static void add_bias(float *y, const struct mtensor *bias, int n, int n_rows)
{
    const float *bv = bias->data;
    for (int t = 0; t < n_rows; t++)
        for (int i = 0; i < n; i++)
            y[(size_t)t * n + i] += bv[i];
}

/* Rows that may share sequences (prompts): norm, rope and cache writes of
 * every row first, then the attention. A ring cache holds the window plus
 * ATTN_SWA_CHUNK - 1 positions: rows go in passes of that many, each
 * written then attended, so no row's window is overwritten by a later row
 * of its sequence. */
static void attn_passes(struct fwd *f, struct attn_scratch *s, const struct attn_hparams *hp,
                        const struct attn_weights *w, int il, const struct engine_batch *b)
{
    int n = b->n, hd = hp->head_dim;
    int pass = w->n_swa > 0 ? ATTN_SWA_CHUNK : n;
    for (int t0 = 0; t0 < n; t0 += pass) {
        int t1 = t0 + pass < n ? t0 + pass : n;
        int64_t work = 0;
        for (int t = t0; t < t1; t++) {
            int nk = w->n_swa > 0 && b->pos[t] + 1 > w->n_swa ? w->n_swa : b->pos[t] + 1;
            work += (int64_t)hp->n_head * nk * hd;
        }
        struct attn_prep_job pj = { s, hp, w, b, il, t0, t1 };
        if (t1 - t0 >= 4)
            pool_run(f->pool, attn_prep_task, &pj, f->n_threads);
        else
            attn_prep_task(&pj, 0, 1);

        struct attn_job job = { s, hp, w, b, il, f->n_ctx, t0, t1 };
        /* short contexts: less work than waking the pool costs */
        if (work < (1 << 17))
            attn_task(&job, 0, 1);
        else
            pool_run(f->pool, attn_task, &job, f->n_threads);
    }
}

void attn_forward(struct fwd *f, struct attn_scratch *s, const struct attn_hparams *hp,
                  const struct attn_weights *w, int il, const struct engine_batch *b, const float *xb, float *out)
{
    int n = b->n, hd = hp->head_dim, n_q = hp->n_head * hd, n_kv = hp->n_head_kv * hd;
    struct blocks_mm_part qkv[3] = {
        { hp->q_gate ? s->qg : s->q, w->wq->data, w->wq->type, hp->q_gate ? 2 * n_q : n_q },
        { s->k, w->wk->data, w->wk->type, n_kv },
        { s->v, w->wv->data, w->wv->type, n_kv },
    };
    blocks_mm_fused(f, ENGINE_SITE_ATTN, qkv, 3, hp->n_embd, xb, n);
    if (hp->q_gate) {
        /* [q | gate] per head -> q into s->q, the gates packed in place */
        for (int t = 0; t < n; t++) {
            float *qg = s->qg + (size_t)t * 2 * n_q, *q = s->q + (size_t)t * n_q;
            for (int h = 0; h < hp->n_head; h++)
                memcpy(q + (size_t)h * hd, qg + (size_t)h * 2 * hd, sizeof(float) * hd);
            for (int h = 0; h < hp->n_head; h++)
                memmove(qg + (size_t)h * hd, qg + (size_t)h * 2 * hd + hd, sizeof(float) * hd);
        }
    }

    if (w->bq)
        add_bias(s->q, w->bq, n_q, n);
    if (w->bk)
        add_bias(s->k, w->bk, n_kv, n);
    if (w->bv)
        add_bias(s->v, w->bv, n_kv, n);

    if (n <= 16 && f->n_threads > 1 && attn_rows_distinct(b)) {
        /* decode: one pool run for the whole attention (a sliding window's
         * ring is safe too: each row writes only its own sequence's slot) */
        struct attn_fused_job fj = { { s, hp, w, b, il, 0, n }, { s, hp, w, b, il, f->n_ctx, 0, n } };
        pool_run(f->pool, attn_fused_task, &fj, f->n_threads);
    } else {
        attn_passes(f, s, hp, w, il, b);
    }
    if (hp->q_gate)
        for (int t = 0; t < n; t++) {
            float *a = s->att + (size_t)t * n_q;
            const float *g = s->qg + (size_t)t * 2 * n_q;
            for (int i = 0; i < n_q; i++)
                a[i] *= 1.0f / (1.0f + expf(-g[i]));
        }
    blocks_act_dirty(f);
    blocks_mm(f, ENGINE_SITE_ATTN, out, w->wo->data, w->wo->type, hp->n_embd, n_q, s->att, n);
    if (w->bo)
        add_bias(out, w->bo, hp->n_embd, n);
}
