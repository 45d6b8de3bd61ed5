/*
 * mla.c - multi-head latent attention, absorbed (see mla.h).
 */
#include "mla.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "matvec.h"
#include "quant.h"
#include "seq.h"

static int mla_width(const struct mla_hparams *hp)
{
    return hp->kv_lora_rank + hp->n_rot;
}

static int imax(int a, int b)
{
    return a > b ? a : b;
}

uint64_t mla_cache_bytes(const struct mla_hparams *hp, int n_layer, int n_ctx)
{
    return (uint64_t)n_layer * n_ctx * mla_width(hp) * sizeof(float);
}

int mla_cache_init(struct mla_cache *c, const struct mla_hparams *hp, int n_layer, int n_ctx)
{
    c->width = mla_width(hp);
    c->n_layer = n_layer;
    c->n_ctx = n_ctx;
    c->lat = calloc((size_t)n_layer * n_ctx * c->width, sizeof(float));
    return c->lat ? 0 : -1;
}

void mla_cache_free(struct mla_cache *c)
{
    free(c->lat);
    c->lat = NULL;
}

/* Element counts of the scratch buffers, in mla_scratch order. */
#define MLA_NBUF 11
static void scratch_sizes(const struct mla_hparams *hp, int n_batch, int n_ctx, int n_threads, size_t n[MLA_NBUF])
{
    size_t B = (size_t)n_batch, dk = (size_t)hp->dk_nope + hp->n_rot;
    n[0] = B * hp->q_lora_rank;
    n[1] = B * hp->n_head * dk;
    n[2] = B * mla_width(hp);
    n[3] = B * hp->n_head * mla_width(hp);
    n[4] = B * hp->n_head * hp->kv_lora_rank;
    /* n[5]: bytes/4 of the quantized per-head inputs (F32 is the widest act format) */
    n[5] = (B * hp->n_head * matvec_act_size(QT_F32, imax(hp->dk_nope, hp->kv_lora_rank), MATVEC_ACT16) + 3) / 4;
    n[6] = B * hp->n_head * imax(hp->kv_lora_rank, hp->dv);
    n[7] = B * hp->n_head * hp->dv;
    n[8] = (size_t)n_threads * n_ctx;
    n[9] = B * (hp->n_rot / 2);
    n[10] = (size_t)hp->n_head * hp->kv_lora_rank; /* whole attn_kv_b: one dequantized row per head */
}

uint64_t mla_scratch_bytes(const struct mla_hparams *hp, int n_batch, int n_ctx, int n_threads)
{
    size_t n[MLA_NBUF];
    scratch_sizes(hp, n_batch, n_ctx, n_threads, n);
    uint64_t floats = 0;
    for (int i = 0; i < MLA_NBUF; i++)
        floats += n[i];
    floats += n[9]; /* sin beside cos */
    return floats * sizeof(float) + (uint64_t)n_batch * sizeof(void *);
}

int mla_scratch_init(struct mla_scratch *s, const struct mla_hparams *hp, int n_batch, int n_ctx, int n_threads)
{
    size_t n[MLA_NBUF];
    scratch_sizes(hp, n_batch, n_ctx, n_threads, n);
    memset(s, 0, sizeof(*s));
    float *hq = NULL;
    float **dst[MLA_NBUF] = { &s->qa, &s->q, &s->kv, &s->qcat, &s->olat, &hq, &s->g_out, &s->att, &s->scores,
                              &s->rope_cos, &s->kvb_row };
    for (int i = 0; i < MLA_NBUF; i++)
        *dst[i] = calloc(n[i] ? n[i] : 1, sizeof(float));
    s->hq = hq;
    s->rope_sin = calloc(n[9] ? n[9] : 1, sizeof(float));
    s->cache = calloc((size_t)n_batch, sizeof(*s->cache));
    bool ok = s->rope_sin && s->cache;
    for (int i = 0; i < MLA_NBUF; i++)
        ok = ok && *dst[i];
    if (!ok) {
        mla_scratch_free(s);
        return -1;
    }
    return 0;
}

void mla_scratch_free(struct mla_scratch *s)
{
    free(s->qa);
    free(s->q);
    free(s->kv);
    free(s->qcat);
    free(s->olat);
    free(s->hq);
    free(s->g_out);
    free(s->att);
    free(s->scores);
    free(s->rope_cos);
    free(s->rope_sin);
    free(s->cache);
    free(s->kvb_row);
    memset(s, 0, sizeof(*s));
}

void mla_prepare(struct mla_scratch *s, const struct mla_hparams *hp, const struct engine_batch *b)
{
    int half = hp->n_rot / 2;
    for (int t = 0; t < b->n; t++)
        rope_yarn_table(&hp->rope, s->rope_cos + (size_t)t * half, s->rope_sin + (size_t)t * half, b->pos[t]);
}

/* Per-head products in one pool run: y[t][h] = W_h x[t][h] for every head
 * h and row t, W_h head h's [n_out][n_in] slice of W, x and y rows strided.
 * Same kernels (matmul_rows) and so the same numbers as blocks_mm. */
struct ph_job {
    const struct mtensor *W;
    size_t head_bytes, head_off, act_row;
    enum matvec_act act;
    int n_out, n_in, n;
    const uint8_t *xq;
    float *y;              /* [n_head][n][n_out] */
    int chunk, tasks_per_head;
};

static void ph_task(void *ctx, int task, int n_tasks)
{
    (void)n_tasks;
    const struct ph_job *j = ctx;
    int h = task / j->tasks_per_head;
    int64_t r0 = (int64_t)(task % j->tasks_per_head) * j->chunk;
    int64_t r1 = r0 + j->chunk < j->n_out ? r0 + j->chunk : j->n_out;
    matmul_rows(j->y + (size_t)h * j->n * j->n_out, j->n_out,
                (const uint8_t *)j->W->data + h * j->head_bytes + j->head_off,
                j->W->type, r0, r1, j->n_in, j->xq + (size_t)h * j->n * j->act_row, j->n, j->act);
}

/* Head h's matrix starts at byte h * head_bytes + head_off of W. */
static void per_head_mm(struct fwd *f, struct mla_scratch *s, const struct mla_hparams *hp, const struct mtensor *W,
                        size_t head_bytes, size_t head_off, int n_out, int n_in, const float *x, size_t x_row,
                        size_t x_head, float *y, size_t y_row, size_t y_head, int n)
{
    enum matvec_act act = f->act[ENGINE_SITE_ATTN];
    struct ph_job j = { W, head_bytes, head_off, matvec_act_size(W->type, n_in, act), act,
                        n_out, n_in, n, s->hq, s->g_out, 64, (n_out + 63) / 64 };
    for (int h = 0; h < hp->n_head; h++)
        for (int t = 0; t < n; t++)
            matvec_quantize_act(W->type, x + t * x_row + h * x_head,
                                (uint8_t *)s->hq + ((size_t)h * n + t) * j.act_row, n_in, act);
    pool_run(f->pool, ph_task, &j, hp->n_head * j.tasks_per_head);
    for (int h = 0; h < hp->n_head; h++)
        for (int t = 0; t < n; t++)
            memcpy(y + t * y_row + h * y_head, s->g_out + ((size_t)h * n + t) * n_out, sizeof(float) * n_out);
}

/* Whole attn_kv_b (GGUFs converted before the MLA split): head h's rows are
 * dk_nope key rows then dv value rows, each kv_lora_rank long. The absorbed
 * query q_abs = K_h^T q_nope is a sum of dequantized key rows weighted by
 * q_nope, one pool task per head. */
struct kvb_job {
    const struct mla_hparams *hp;
    const struct mtensor *W;
    size_t row_bytes;
    const float *q;        /* [n][n_head * (dk_nope + n_rot)] */
    float *qcat;
    float *rowbuf;         /* [n_head][kv_lora_rank] */
    int n;
};

static void kvb_task(void *ctx, int h, int n_tasks)
{
    (void)n_tasks;
    const struct kvb_job *j = ctx;
    const struct mla_hparams *hp = j->hp;
    int r = hp->kv_lora_rank, wd = mla_width(hp), dk = hp->dk_nope + hp->n_rot;
    float *row = j->rowbuf + (size_t)h * r;
    const struct quant_traits *tr = quant_traits(j->W->type);
    for (int t = 0; t < j->n; t++)
        memset(j->qcat + ((size_t)t * hp->n_head + h) * wd, 0, sizeof(float) * r);
    for (int d = 0; d < hp->dk_nope; d++) {
        tr->to_float((const uint8_t *)j->W->data + ((size_t)h * (hp->dk_nope + hp->dv) + d) * j->row_bytes, row, r);
        for (int t = 0; t < j->n; t++) {
            float qv = j->q[(size_t)t * hp->n_head * dk + (size_t)h * dk + d];
            float *o = j->qcat + ((size_t)t * hp->n_head + h) * wd;
            for (int e = 0; e < r; e++)
                o[e] += qv * row[e];
        }
    }
}

struct mla_job {
    struct mla_scratch *s;
    const struct mla_hparams *hp;
    const struct engine_batch *b;
    int layer, n_ctx_max;
};

/* Causal attention in latent space for (row, head) pairs over pool tasks. */
static void mla_task(void *ctx, int task, int n_tasks)
{
    const struct mla_job *j = ctx;
    const struct mla_hparams *hp = j->hp;
    struct mla_scratch *s = j->s;
    int wd = mla_width(hp), r = hp->kv_lora_rank, total = j->b->n * hp->n_head;
    float *sc = s->scores + (size_t)task * j->n_ctx_max;
    for (int p = task; p < total; p += n_tasks) {
        int t = p / hp->n_head, h = p % hp->n_head;
        const struct mla_cache *c = s->cache[t];
        const float *lat = c->lat + (size_t)j->layer * c->n_ctx * wd;
        const float *q = s->qcat + ((size_t)t * hp->n_head + h) * wd;
        int pos = j->b->pos[t];
        float mx = -INFINITY;
        for (int i = 0; i <= pos; i++) {
            const float *k = lat + (size_t)i * wd;
            float d = 0;
            for (int e = 0; e < wd; e++)
                d += q[e] * k[e];
            sc[i] = d * hp->kq_scale;
            if (sc[i] > mx)
                mx = sc[i];
        }
        double sum = 0;
        for (int i = 0; i <= pos; i++) {
            sc[i] = expf(sc[i] - mx);
            sum += sc[i];
        }
        float *out = s->olat + ((size_t)t * hp->n_head + h) * r;
        memset(out, 0, sizeof(float) * r);
        for (int i = 0; i <= pos; i++) {
            float w = (float)(sc[i] / sum);
            const float *v = lat + (size_t)i * wd;
            for (int e = 0; e < r; e++)
                out[e] += w * v[e];
        }
    }
}

void mla_forward(struct fwd *f, struct mla_scratch *s, const struct mla_hparams *hp, const struct mla_weights *w,
                 int il, const struct engine_batch *b, const float *xb, float *out)
{
    int n = b->n, dk = hp->dk_nope + hp->n_rot, wd = mla_width(hp), r = hp->kv_lora_rank;
    int n_q = hp->n_head * dk;
    if (hp->q_lora_rank > 0) {
        struct blocks_mm_part p[2] = {
            { s->qa, w->wq_a->data, w->wq_a->type, hp->q_lora_rank },
            { s->kv, w->wkv_a->data, w->wkv_a->type, wd },
        };
        blocks_mm_fused(f, ENGINE_SITE_ATTN, p, 2, hp->n_embd, xb, n);
        for (int t = 0; t < n; t++) {
            float *qa = s->qa + (size_t)t * hp->q_lora_rank;
            blocks_rmsnorm(qa, qa, w->q_a_norm->data, hp->q_lora_rank, hp->rms_eps);
        }
        blocks_act_dirty(f);
        blocks_mm(f, ENGINE_SITE_ATTN, s->q, w->wq_b->data, w->wq_b->type, n_q, hp->q_lora_rank, s->qa, n);
    } else {
        struct blocks_mm_part p[2] = {
            { s->q, w->wq->data, w->wq->type, n_q },
            { s->kv, w->wkv_a->data, w->wkv_a->type, wd },
        };
        blocks_mm_fused(f, ENGINE_SITE_ATTN, p, 2, hp->n_embd, xb, n);
    }

    /* latent and rope key into the cache; rope queries beside the absorbed ones */
    int64_t work = 0;
    for (int t = 0; t < n; t++) {
        const float *cs = s->rope_cos + (size_t)t * (hp->n_rot / 2), *sn = s->rope_sin + (size_t)t * (hp->n_rot / 2);
        float *kv = s->kv + (size_t)t * wd;
        blocks_rmsnorm(kv, kv, w->kv_a_norm->data, r, hp->rms_eps);
        blocks_rope(kv + r, cs, sn, hp->n_rot, false);
        struct mla_cache *c = s->cache[t];
        memcpy(c->lat + ((size_t)il * c->n_ctx + (size_t)b->pos[t]) * wd, kv, sizeof(float) * wd);
        for (int h = 0; h < hp->n_head; h++) {
            float *qpe = s->q + (size_t)t * n_q + (size_t)h * dk + hp->dk_nope;
            blocks_rope(qpe, cs, sn, hp->n_rot, false);
            memcpy(s->qcat + ((size_t)t * hp->n_head + h) * wd + r, qpe, sizeof(float) * hp->n_rot);
        }
        work += (int64_t)hp->n_head * (b->pos[t] + 1) * wd;
    }
    /* q_abs[t][h] = K_b,h q_nope[t][h] */
    if (hp->kv_b_whole) {
        struct kvb_job kj = { hp, w->wkv_b, quant_row_size(w->wkv_b->type, r), s->q, s->qcat, s->kvb_row, n };
        pool_run(f->pool, kvb_task, &kj, hp->n_head);
    } else {
        per_head_mm(f, s, hp, w->wk_b, (size_t)r * quant_row_size(w->wk_b->type, hp->dk_nope), 0, r, hp->dk_nope,
                    s->q, (size_t)n_q, (size_t)dk, s->qcat, (size_t)hp->n_head * wd, (size_t)wd, n);
    }

    struct mla_job job = { s, hp, b, il, f->n_ctx };
    if (work < (1 << 17))
        mla_task(&job, 0, 1);
    else
        pool_run(f->pool, mla_task, &job, f->n_threads);

    /* att[t][h] = V_b,h olat[t][h] */
    const struct mtensor *wv = hp->kv_b_whole ? w->wkv_b : w->wv_b;
    size_t vrow = quant_row_size(wv->type, r);
    size_t head_bytes = hp->kv_b_whole ? (size_t)(hp->dk_nope + hp->dv) * vrow : (size_t)hp->dv * vrow;
    size_t head_off = hp->kv_b_whole ? (size_t)hp->dk_nope * vrow : 0;
    per_head_mm(f, s, hp, wv, head_bytes, head_off, hp->dv, r, s->olat, (size_t)hp->n_head * r, (size_t)r, s->att,
                (size_t)hp->n_head * hp->dv, (size_t)hp->dv, n);
    blocks_act_dirty(f);
    blocks_mm(f, ENGINE_SITE_ATTN, out, w->wo->data, w->wo->type, hp->n_embd, (int64_t)hp->n_head * hp->dv, s->att, n);
}
