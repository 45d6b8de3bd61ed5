/*
 * moe.c - routing and expert batching (see moe.h).
 */
#include "moe.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "matvec.h"
#include "prefetch.h"
#include "provider.h"
#include "quant.h"
#include "splitfmt.h"

uint64_t moe_scratch_bytes(const struct moe_hparams *hp, int n_batch)
{
    uint64_t B = (uint64_t)n_batch, K = (uint64_t)hp->n_expert_used;
    /* xq_tok: B rows of n_embd floats bound any quantized row */
    uint64_t floats = B * hp->n_expert + B * K + B * K * hp->n_embd * 2 + B * hp->n_embd + B * K * hp->n_ff_exp * 2 + hp->n_embd +
                      hp->n_expert * 2ull + K + B;
    uint64_t ints = B * K * 4 + 2ull * hp->n_expert + K;
    return floats * sizeof(float) + ints * sizeof(int32_t);
}

int moe_scratch_init(struct moe_scratch *s, const struct moe_hparams *hp, int n_batch)
{
    size_t B = (size_t)n_batch, K = (size_t)hp->n_expert_used;
    memset(s, 0, sizeof(*s));
#define ALLOC(field, count)                                        \
    do {                                                           \
        s->field = calloc((count), sizeof(*s->field));             \
        if (!s->field)                                             \
            goto oom;                                              \
    } while (0)
    ALLOC(router, B * hp->n_expert);
    ALLOC(topk_id, B * K);
    ALLOC(topk_w, B * K);
    ALLOC(xg, B * K * hp->n_embd);
    s->xq_tok = calloc(B * hp->n_embd, sizeof(float));
    if (!s->xq_tok)
        goto oom;
    ALLOC(hg, B * K * hp->n_ff_exp);
    ALLOC(hu, B * K * hp->n_ff_exp);
    ALLOC(yg, B * K * hp->n_embd);
    ALLOC(g_tok, B * K);
    ALLOC(g_slot, B * K);
    ALLOC(g_row, B * K);
    ALLOC(obs_w, B);
    ALLOC(b_row0, (size_t)hp->n_expert);
    ALLOC(b_rows, (size_t)hp->n_expert);
    ALLOC(pf_x, (size_t)hp->n_embd);
    ALLOC(pf_logits, (size_t)hp->n_expert);
    ALLOC(pf_ids, K);
    ALLOC(sel, (size_t)hp->n_expert);
    ALLOC(pf_w, K);
#undef ALLOC
    return 0;
oom:
    moe_scratch_free(s);
    return -1;
}

void moe_scratch_free(struct moe_scratch *s)
{
    free(s->router);
    free(s->topk_id);
    free(s->topk_w);
    free(s->g_row);
    free(s->obs_w);
    free(s->xg);
    free(s->xq_tok);
    free(s->hg);
    free(s->hu);
    free(s->yg);
    free(s->g_tok);
    free(s->g_slot);
    free(s->b_row0);
    free(s->b_rows);
    free(s->pf_x);
    free(s->pf_logits);
    free(s->pf_ids);
    free(s->sel);
    free(s->pf_w);
    memset(s, 0, sizeof(*s));
}

/* ids[0..k) = indices of the k largest v[0..n), largest first, ties to the
 * lower index. k is small (the experts used per token). */
static void topk(const float *v, int n, int k, int32_t *ids)
{
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int e = 0; e < n; e++) {
            bool taken = false;
            for (int i = 0; i < j; i++)
                taken |= ids[i] == e;
            if (!taken && (best < 0 || v[e] > v[best]))
                best = e;
        }
        ids[j] = best;
    }
}

/* --cache-bias: sel[e] += f->cache_bias for the experts of layer il in the
 * cache (their ranking in the top-k only; the weights stay the router's). */
static void cache_bias_add(const struct fwd *f, int il, float *sel, int ne)
{
    for (int e = 0; e < ne; e++)
        if (provider_resident(f->prov, il, e))
            sel[e] += f->cache_bias;
}

/* Router logits (plus bias) to each row's top-k ids and weights. Softmax
 * over all experts, top-k (ties to the lower id), optional renormalisation;
 * or top-k of the logits and a softmax over the k selected. With
 * --cache-bias the top-k ranks the biased logits; the weights are the
 * router's own. */
static void route(struct fwd *f, struct moe_scratch *s, const struct moe_hparams *hp, const struct moe_weights *mw,
                  int il, const struct engine_batch *b)
{
    int ne = hp->n_expert, k = hp->n_expert_used;
    for (int t = 0; t < b->n; t++) {
        float *p = s->router + (size_t)t * ne;
        int32_t *id = s->topk_id + (size_t)t * k;
        float *w = s->topk_w + (size_t)t * k;
        if (mw->router_b) {
            const float *rb = mw->router_b->data;
            for (int e = 0; e < ne; e++)
                p[e] += rb[e];
        }
        const float *rank = p;
        if (f->cache_bias != 0.0f) {
            memcpy(s->sel, p, sizeof(float) * (size_t)ne);
            cache_bias_add(f, il, s->sel, ne);
            rank = s->sel;
        }
        if (hp->gating == MOE_GATING_SOFTMAX_SELECTED) {
            topk(rank, ne, k, id);
            float mx = p[id[0]];
            for (int j = 1; j < k; j++)
                mx = p[id[j]] > mx ? p[id[j]] : mx;
            double sum = 0;
            for (int j = 0; j < k; j++) {
                w[j] = expf(p[id[j]] - mx);
                sum += w[j];
            }
            for (int j = 0; j < k; j++)
                w[j] = (float)(w[j] / sum);
        } else {
            float mx = -INFINITY;
            for (int e = 0; e < ne; e++)
                if (p[e] > mx)
                    mx = p[e];
            double sum = 0;
            for (int e = 0; e < ne; e++) {
                p[e] = expf(p[e] - mx);
                sum += p[e];
            }
            for (int e = 0; e < ne; e++)
                p[e] = (float)(p[e] / sum);
            topk(rank, ne, k, id); /* rank is p (now probabilities) without a bias */
            for (int j = 0; j < k; j++)
                w[j] = p[id[j]];
            if (hp->norm_topk) {
                double ws = 0;
                for (int j = 0; j < k; j++)
                    ws += w[j];
                for (int j = 0; j < k; j++)
                    w[j] = (float)(w[j] / ws);
            }
        }
        if (f->route_fn)
            f->route_fn(f->route_ctx, b->pos[t], il, id, w, k);
    }
}

/* True when the layer uses a router variant rather than the plain softmax. */
static bool route_is_ext(const struct moe_hparams *hp, const struct moe_weights *w)
{
    return hp->gating == MOE_GATING_SIGMOID || hp->n_group > 1 || w->probs_b != NULL || hp->w_scale != 0.0f;
}

/* One row of the extended router (DeepSeek-V3): p = scores of the logits
 * (in place), sel = p + bias, groups outside the best n_group_used (ranked
 * by the sum of their two best sel) masked, top-k of sel (ties to the lower
 * id), weights p of the chosen, renormalised (sum clamped as llama.cpp
 * does), times w_scale. With f (--cache-bias), the cached experts of layer
 * il get the bias added to sel. */
static void route_ext_row(const struct moe_hparams *hp, const struct moe_weights *w, float *p, float *sel,
                          int32_t *id, float *wt, const struct fwd *f, int il)
{
    int ne = hp->n_expert, k = hp->n_expert_used;
    if (hp->gating == MOE_GATING_SIGMOID) {
        for (int e = 0; e < ne; e++)
            p[e] = 1.0f / (1.0f + expf(-p[e]));
    } else {
        float mx = -INFINITY;
        for (int e = 0; e < ne; e++)
            mx = p[e] > mx ? p[e] : mx;
        double sum = 0;
        for (int e = 0; e < ne; e++) {
            p[e] = expf(p[e] - mx);
            sum += p[e];
        }
        for (int e = 0; e < ne; e++)
            p[e] = (float)(p[e] / sum);
    }
    const float *bias = w->probs_b ? w->probs_b->data : NULL;
    for (int e = 0; e < ne; e++)
        sel[e] = bias ? p[e] + bias[e] : p[e];
    if (f && f->cache_bias != 0.0f)
        cache_bias_add(f, il, sel, ne);
    if (hp->n_group > 1 && hp->n_group_used < hp->n_group) {
        int per = ne / hp->n_group;
        float gscore[MOE_MAX_GROUPS];
        int32_t top[2], gkeep[MOE_MAX_GROUPS];
        for (int g = 0; g < hp->n_group; g++) {
            int n2 = per < 2 ? per : 2;
            topk(sel + (size_t)g * per, per, n2, top);
            gscore[g] = 0;
            for (int i = 0; i < n2; i++)
                gscore[g] += sel[(size_t)g * per + top[i]];
        }
        topk(gscore, hp->n_group, hp->n_group_used, gkeep);
        for (int g = 0; g < hp->n_group; g++) {
            bool keep = false;
            for (int i = 0; i < hp->n_group_used; i++)
                keep |= gkeep[i] == g;
            if (!keep)
                for (int e = g * per; e < (g + 1) * per; e++)
                    sel[e] = -INFINITY;
        }
    }
    topk(sel, ne, k, id);
    for (int j = 0; j < k; j++)
        wt[j] = p[id[j]];
    if (hp->norm_topk) {
        float ws = 0;
        for (int j = 0; j < k; j++)
            ws += wt[j];
        if (ws < 6.103515625e-5f)
            ws = 6.103515625e-5f;
        for (int j = 0; j < k; j++)
            wt[j] /= ws;
    }
    if (hp->w_scale != 0.0f)
        for (int j = 0; j < k; j++)
            wt[j] *= hp->w_scale;
}

static void route_ext(struct fwd *f, struct moe_scratch *s, const struct moe_hparams *hp,
                      const struct moe_weights *w, int il, const struct engine_batch *b)
{
    int k = hp->n_expert_used;
    for (int t = 0; t < b->n; t++) {
        int32_t *id = s->topk_id + (size_t)t * k;
        float *wt = s->topk_w + (size_t)t * k;
        route_ext_row(hp, w, s->router + (size_t)t * hp->n_expert, s->sel, id, wt, f, il);
        if (f->route_fn)
            f->route_fn(f->route_ctx, b->pos[t], il, id, wt, k);
    }
}

/* Rows of one pool task in the batched expert products: at least
 * MOE_TASK_ROWS, else as long as an even spread allows (moe_split_tasks). */
#define MOE_TASK_ROWS 64
#define MOE_TASKS_PER_THREAD 8

struct moe_ctx {
    struct fwd *f;
    struct moe_scratch *s;
    const struct moe_hparams *hp;
    const struct moe_weights *w, *next;
    const struct moe_overlap *ov;
    bool lookahead;
    const struct engine_batch *b;
    const float *xb, *x;
    float rms_eps;
    int il;
    /* the batch being computed */
    const int32_t *ids;
    const uint8_t *const *blobs;
    int phase;             /* 0: gate and up; 1: down */
    int tasks_per_expert;
    int64_t task_rows;     /* output rows per task (moe_split_tasks) */
    enum matvec_act act;   /* precision of the phase's activations */
    size_t act_row;        /* bytes of one quantized activation row */
    bool act_in_task;      /* phase 0 applies the activation (no biases to add first) */
    bool xq_tok_ready;     /* s->xq_tok holds this layer's rows */
    int row_base;          /* first gathered row of the batch (rows of earlier batches of the layer stay) */
    int rows;              /* end of the batch's gathered rows */
};

/* Sets the phase's task_rows and tasks_per_expert for nb experts of `rows`
 * output rows each: about MOE_TASKS_PER_THREAD tasks per thread, in
 * multiples of MOE_TASK_ROWS. Long tasks matter in decode: each task starts cold streams through its
 * rows, and 64-row tasks ran the expert products about 13% slower than
 * 384-row ones (30B shape, 2 threads). Too few tasks leave a thread idle at
 * the end of a product: 8 tasks per thread decoded about 10% faster than 4
 * (57.1 against 52.0 tok/s on an 8-layer cut of the 30B shape, medians of 4
 * alternating runs). A decode batch of 8 experts on 2 threads gets two tasks
 * per expert and matrix. */
static void moe_split_tasks(struct moe_ctx *c, int64_t rows, int nb)
{
    int64_t want = (int64_t)MOE_TASKS_PER_THREAD * c->f->n_threads;
    int64_t per = (rows * nb + want - 1) / want;
    per = (per + MOE_TASK_ROWS - 1) / MOE_TASK_ROWS * MOE_TASK_ROWS;
    c->task_rows = per < rows ? per : rows;
    c->tasks_per_expert = (int)((rows + c->task_rows - 1) / c->task_rows);
}

/* The gated activation of gathered rows [r0, r1), columns [c0, c1):
 * hg = act(hg, hu), element by element. */
static void moe_activation(const struct moe_hparams *hp, struct moe_scratch *s, int r0, int r1, int64_t c0,
                           int64_t c1)
{
    for (int r = r0; r < r1; r++) {
        float *g = s->hg + (size_t)r * hp->n_ff_exp, *u = s->hu + (size_t)r * hp->n_ff_exp;
        if (hp->act == MOE_ACT_SWIGLU_OAI) {
            float alpha = hp->act_alpha, limit = hp->act_limit;
            for (int64_t i = c0; i < c1; i++) {
                float gv = g[i] < limit ? g[i] : limit;
                float uv = u[i] < -limit ? -limit : u[i] > limit ? limit : u[i];
                g[i] = gv / (1.0f + expf(alpha * -gv)) * (uv + 1.0f);
            }
        } else {
            for (int64_t i = c0; i < c1; i++)
                g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
        }
    }
}

/* One task: a range of output rows of one expert of the batch, for all of
 * that expert's gathered rows. */
static void ebatch_task(void *ctx, int task, int n_tasks)
{
    (void)n_tasks;
    const struct moe_ctx *c = ctx;
    const struct moe_hparams *hp = c->hp;
    struct moe_scratch *s = c->s;
    int i = task / c->tasks_per_expert, ch = task % c->tasks_per_expert;
    int row0 = s->b_row0[i], rows = s->b_rows[i];
    const uint8_t *blob = c->blobs[i];
    const uint8_t *xq = (const uint8_t *)c->f->aq.xq + (size_t)row0 * c->act_row;
    int64_t r0 = (int64_t)ch * c->task_rows;
    if (c->phase == 0) {
        int64_t r1 = r0 + c->task_rows < hp->n_ff_exp ? r0 + c->task_rows : hp->n_ff_exp;
        matmul_rows(s->hg + (size_t)row0 * hp->n_ff_exp, hp->n_ff_exp, blob + c->w->gate->offset, c->w->gate->type,
                    r0, r1, hp->n_embd, xq, rows, c->act);
        matmul_rows(s->hu + (size_t)row0 * hp->n_ff_exp, hp->n_ff_exp, blob + c->w->up->offset, c->w->up->type, r0,
                    r1, hp->n_embd, xq, rows, c->act);
        if (c->act_in_task)
            moe_activation(hp, s, row0, row0 + rows, r0, r1);
    } else {
        int64_t r1 = r0 + c->task_rows < hp->n_embd ? r0 + c->task_rows : hp->n_embd;
        matmul_rows(s->yg + (size_t)row0 * hp->n_embd, hp->n_embd, blob + c->w->down->offset, c->w->down->type, r0,
                    r1, hp->n_ff_exp, xq, rows, c->act);
    }
}

/* Gathered row r = a copy of its token's quantized row (xq_tok), rows
 * spread over the tasks. */
static void gather_task(void *ctx, int task, int n_tasks)
{
    const struct moe_ctx *c = ctx;
    struct moe_scratch *s = c->s;
    int nr = c->rows - c->row_base, per = (nr + n_tasks - 1) / n_tasks;
    int r0 = c->row_base + task * per, r1 = r0 + per < c->rows ? r0 + per : c->rows;
    for (int r = r0; r < r1; r++)
        memcpy((char *)c->f->aq.xq + (size_t)r * c->act_row, (const char *)s->xq_tok + (size_t)s->g_tok[r] * c->act_row,
               c->act_row);
}

/* y[r][0..n) += the F32 bias part of each expert of the batch, for the
 * gathered rows of that expert. */
static void add_part_bias(float *y, int n, const struct split_part *part, const uint8_t *const *blobs, int nb,
                          const struct moe_scratch *s)
{
    for (int i = 0; i < nb; i++) {
        const float *bias = (const float *)(const void *)(blobs[i] + part->offset);
        for (int r = s->b_row0[i]; r < s->b_row0[i] + s->b_rows[i]; r++)
            for (int e = 0; e < n; e++)
                y[(size_t)r * n + e] += bias[e];
    }
}

/* Hands each expert's gathered rows (kind 0: input, 1: down input) to the
 * activation hook, with each row's router weight. */
static void moe_observe(struct moe_ctx *c, int nb, int kind)
{
    struct moe_scratch *s = c->s;
    const struct moe_hparams *hp = c->hp;
    int k = hp->n_expert_used, dim = kind ? hp->n_ff_exp : hp->n_embd;
    const float *rows = kind ? s->hg : s->xg;
    for (int i = 0; i < nb; i++) {
        int r0 = s->b_row0[i];
        for (int r = 0; r < s->b_rows[i]; r++)
            s->obs_w[r] = s->topk_w[(size_t)s->g_tok[r0 + r] * k + s->g_slot[r0 + r]];
        c->f->act_fn(c->f->act_ctx, c->il, c->ids[i], kind, rows + (size_t)r0 * dim, s->obs_w, s->b_rows[i], dim);
    }
}

/* Runs the nb experts of a delivered batch on every (row, slot) routed to
 * them: gather, gate and up, silu * up, down into s->yg (rows after those of
 * the layer's earlier batches; s->g_row finds them). Each output
 * row depends only on its own row and expert. */
static int expert_batch(void *ctx, const int32_t *ids, const uint8_t *const *blobs, int nb)
{
    struct moe_ctx *c = ctx;
    struct fwd *f = c->f;
    struct moe_scratch *s = c->s;
    const struct moe_hparams *hp = c->hp;
    const struct moe_weights *w = c->w;
    double t0 = blocks_now();
    int k = hp->n_expert_used, rows = c->row_base, n = c->b->n;
    /* gate and up share their input type in every supported mix; check */
    assert(quant_traits(w->gate->type)->vec_dot_type == quant_traits(w->up->type)->vec_dot_type);
    c->act = f->act[ENGINE_SITE_EXPERT];
    c->act_row = matvec_act_size(w->gate->type, hp->n_embd, c->act);
    /* Without the activation hook (which wants the float rows), every token
     * row is quantized once (all its experts share it) and the gathered rows
     * are copies of those bytes; the activation then runs in the gate/up
     * tasks and the down tasks write each (row, slot) output themselves. */
    c->act_in_task = !f->act_fn && !w->gate_b && !w->up_b && !w->down_b;
    for (int i = 0; i < nb; i++) {
        s->b_row0[i] = rows;
        for (int t = 0; t < n; t++)
            for (int j = 0; j < k; j++)
                if (s->topk_id[(size_t)t * k + j] == ids[i]) {
                    s->g_tok[rows] = t;
                    s->g_slot[rows] = j;
                    s->g_row[(size_t)t * k + j] = rows;
                    if (!c->act_in_task)
                        memcpy(s->xg + (size_t)rows * hp->n_embd, c->xb + (size_t)t * hp->n_embd,
                               sizeof(float) * hp->n_embd);
                    rows++;
                }
        s->b_rows[i] = rows - s->b_row0[i];
    }
    c->rows = rows;
    c->ids = ids;
    c->blobs = blobs;
    c->phase = 0;
    moe_split_tasks(c, hp->n_ff_exp, nb);
    if (c->act_in_task) {
        if (!c->xq_tok_ready) { /* once per layer: later batches of the layer reuse the rows */
            matvec_quantize_rows(f->pool, w->gate->type, c->xb, (size_t)hp->n_embd, s->xq_tok, hp->n_embd, n, c->act);
            c->xq_tok_ready = true;
        }
        if ((size_t)(rows - c->row_base) * c->act_row > (256u << 10)) /* else less than a pool wake-up costs */
            pool_run(f->pool, gather_task, c, f->n_threads);
        else
            gather_task(c, 0, 1);
    } else {
        matvec_quantize_rows(f->pool, w->gate->type, s->xg + (size_t)c->row_base * hp->n_embd, (size_t)hp->n_embd,
                             (char *)f->aq.xq + (size_t)c->row_base * c->act_row, hp->n_embd, rows - c->row_base, c->act);
    }
    blocks_act_dirty(f);
    if (f->act_fn)
        moe_observe(c, nb, 0);
    pool_run(f->pool, ebatch_task, c, nb * c->tasks_per_expert);
    if (!c->act_in_task) {
        if (w->gate_b)
            add_part_bias(s->hg, hp->n_ff_exp, w->gate_b, blobs, nb, s);
        if (w->up_b)
            add_part_bias(s->hu, hp->n_ff_exp, w->up_b, blobs, nb, s);
        moe_activation(hp, s, c->row_base, rows, 0, hp->n_ff_exp);
    }
    if (f->act_fn)
        moe_observe(c, nb, 1);
    c->phase = 1;
    moe_split_tasks(c, hp->n_embd, nb);
    c->act = f->act[ENGINE_SITE_DOWN];
    c->act_row = matvec_act_size(w->down->type, hp->n_ff_exp, c->act);
    matvec_quantize_rows(f->pool, w->down->type, s->hg + (size_t)c->row_base * hp->n_ff_exp, (size_t)hp->n_ff_exp,
                         (char *)f->aq.xq + (size_t)c->row_base * c->act_row, hp->n_ff_exp, rows - c->row_base, c->act);
    pool_run(f->pool, ebatch_task, c, nb * c->tasks_per_expert);
    if (w->down_b)
        add_part_bias(s->yg, hp->n_embd, w->down_b, blobs, nb, s);
    c->row_base = rows;
    f->times.experts_s += blocks_now() - t0;
    return 0;
}

/* Prefetch for decode: the policy (io/prefetch.h) names experts of layer
 * L+1 to read now, overlapping layer L's experts and L+1's attention. Its
 * optional input, router lookahead: layer L+1's router applied to layer L's
 * state after attention (normed with L+1's ffn_norm) usually names most of
 * the experts L+1 will pick. Only timing depends on the guess; never the
 * numbers. */
static void prefetch_next(void *ctx)
{
    struct moe_ctx *c = ctx;
    const struct moe_hparams *hp = c->hp;
    struct moe_scratch *s = c->s;
    const struct moe_weights *N = c->next;
    int ng = 0;
    if (prefetch_wants_lookahead(c->f->pf)) {
        blocks_rmsnorm(s->pf_x, c->x, N->ffn_norm->data, hp->n_embd, c->rms_eps);
        blocks_mm(c->f, ENGINE_SITE_ROUTER, s->pf_logits, N->router->data, N->router->type, hp->n_expert, hp->n_embd, s->pf_x, 1);
        if (route_is_ext(hp, N)) {
            route_ext_row(hp, N, s->pf_logits, s->sel, s->pf_ids, s->pf_w, NULL, 0);
        } else {
            if (N->router_b)
                for (int e = 0; e < hp->n_expert; e++)
                    s->pf_logits[e] += ((const float *)N->router_b->data)[e];
            topk(s->pf_logits, hp->n_expert, hp->n_expert_used, s->pf_ids);
        }
        ng = hp->n_expert_used;
    }
    int n = prefetch_hints(c->f->pf, c->il + 1, s->pf_ids, ng, s->pf_ids, hp->n_expert_used);
    provider_prefetch(c->f->prov, c->il + 1, s->pf_ids, n);
}

/* The layer's reads started: the next layer's guesses go to the disk
 * first, then the overlapped work computes while all of them land. */
static void moe_started(void *ctx)
{
    struct moe_ctx *c = ctx;
    if (c->lookahead)
        prefetch_next(c);
    if (c->ov)
        c->ov->fn(c->ov->ctx);
}

int moe_forward(struct fwd *f, struct moe_scratch *s, const struct moe_hparams *hp, const struct moe_weights *w,
                const struct moe_weights *next, float rms_eps, int il, const struct engine_batch *b,
                const float *xb, float *x, const struct moe_overlap *ov)
{
    int n = b->n, k = hp->n_expert_used;
    double t0 = blocks_now();
    blocks_mm(f, ENGINE_SITE_ROUTER, s->router, w->router->data, w->router->type, hp->n_expert, hp->n_embd, xb, n);
    if (route_is_ext(hp, w))
        route_ext(f, s, hp, w, il, b);
    else
        route(f, s, hp, w, il, b);
    f->times.router_s += blocks_now() - t0;

    struct moe_ctx c = { .f = f, .s = s, .hp = hp, .w = w, .next = next, .ov = ov, .b = b, .xb = xb, .x = x,
                         .rms_eps = rms_eps, .il = il };
    int n_uniq = expert_stream_union(&f->es, s->topk_id, n * k);
    prefetch_observe(f->pf, il, s->topk_id, n * k);
    c.lookahead = prefetch_active(f->pf) && n == 1 && next != NULL;
    int rc = expert_stream_run(f->prov, il, &f->es, n_uniq, f->request_cap, expert_batch,
                               c.lookahead || ov ? moe_started : NULL, &c, &f->times.io_wait_s);
    if (rc == 0 && ov && n_uniq == 0)
        ov->fn(ov->ctx); /* no request, no start: run it anyway */
    if (rc < 0) {
        snprintf(f->err, sizeof(f->err), "%s", provider_error(f->prov));
        return rc;
    }
    for (int t = 0; t < n; t++) {
        float *xr = x + (size_t)t * hp->n_embd;
        for (int j = 0; j < k; j++) {
            float wt = s->topk_w[(size_t)t * k + j];
            const float *y = s->yg + (size_t)s->g_row[(size_t)t * k + j] * hp->n_embd;
            for (int i = 0; i < hp->n_embd; i++)
                xr[i] += wt * y[i];
        }
    }
    return 0;
}

uint64_t moe_shared_scratch_bytes(int n_embd, int n_ff, int n_batch)
{
    return (uint64_t)n_batch * (2ull * n_ff + n_embd + 1) * sizeof(float);
}

int moe_shared_scratch_init(struct moe_shared_scratch *s, int n_embd, int n_ff, int n_batch)
{
    size_t B = (size_t)n_batch;
    memset(s, 0, sizeof(*s));
    s->hg = calloc(B * n_ff, sizeof(float));
    s->hu = calloc(B * n_ff, sizeof(float));
    s->y = calloc(B * n_embd, sizeof(float));
    s->g = calloc(B, sizeof(float));
    if (!s->hg || !s->hu || !s->y || !s->g) {
        moe_shared_scratch_free(s);
        return -1;
    }
    return 0;
}

void moe_shared_scratch_free(struct moe_shared_scratch *s)
{
    free(s->hg);
    free(s->hu);
    free(s->y);
    free(s->g);
    memset(s, 0, sizeof(*s));
}

void moe_shared_compute(struct fwd *f, struct moe_shared_scratch *s, const struct moe_shared_weights *w, int n_embd,
                        int n_ff, int n, const float *xb)
{
    double t0 = blocks_now();
    struct blocks_mm_part gu[2] = {
        { s->hg, w->gate->data, w->gate->type, n_ff },
        { s->hu, w->up->data, w->up->type, n_ff },
    };
    blocks_mm_fused(f, ENGINE_SITE_SHARED, gu, 2, n_embd, xb, n);
    if (w->gate_inp) {
        if (w->gate_inp->type == QT_F32) {
            /* one output: a plain dot product, as the reference does in F32 */
            const float *gw = w->gate_inp->data;
            for (int t = 0; t < n; t++) {
                const float *xr = xb + (size_t)t * n_embd;
                float d = 0;
                for (int i = 0; i < n_embd; i++)
                    d += gw[i] * xr[i];
                s->g[t] = d;
            }
        } else {
            blocks_mm(f, ENGINE_SITE_ROUTER, s->g, w->gate_inp->data, w->gate_inp->type, 1, n_embd, xb, n);
        }
    }
    for (size_t i = 0; i < (size_t)n * n_ff; i++) {
        float g = s->hg[i];
        s->hg[i] = g / (1.0f + expf(-g)) * s->hu[i];
    }
    blocks_act_dirty(f);
    blocks_mm(f, ENGINE_SITE_SHARED, s->y, w->down->data, w->down->type, n_embd, n_ff, s->hg, n);
    blocks_act_dirty(f);
    f->times.experts_s += blocks_now() - t0;
}

void moe_shared_apply(const struct moe_shared_scratch *s, const struct moe_shared_weights *w, int n_embd, int n,
                      float *x)
{
    for (int t = 0; t < n; t++) {
        float sg = w->gate_inp ? 1.0f / (1.0f + expf(-s->g[t])) : 1.0f;
        float *xr = x + (size_t)t * n_embd;
        const float *y = s->y + (size_t)t * n_embd;
        for (int i = 0; i < n_embd; i++)
            xr[i] += sg * y[i];
    }
}

void moe_shared_forward(struct fwd *f, struct moe_shared_scratch *s, const struct moe_shared_weights *w, int n_embd,
                        int n_ff, int n, const float *xb, float *x)
{
    moe_shared_compute(f, s, w, n_embd, n_ff, n, xb);
    moe_shared_apply(s, w, n_embd, n, x);
}
