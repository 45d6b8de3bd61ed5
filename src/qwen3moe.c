/*
 * qwen3moe.c - the forward pass of sparse-MoE decoder models: qwen3moe
 * (Qwen3-30B-A3B, Qwen3-235B-A22B, Qwen3-Coder) and, by flags, llama-arch
 * Mixtral (no QK-norm, interleaved rotary pairs).
 *
 * Per layer, for a batch of n tokens at positions n_past..n_past+n-1:
 *   xb = rmsnorm(x) * attn_norm
 *   q, k, v = Wq xb, Wk xb, Wv xb; per-head rmsnorm of q, k (Qwen3); rope
 *   att = softmax(q k^T / sqrt(head_dim)) v over positions <= own (causal, GQA)
 *   x += Wo att
 *   xb = rmsnorm(x) * ffn_norm
 *   p = softmax(W_router xb); top-k experts; weights renormalised over the k
 *   x += sum_k w_k * down_k(silu(gate_k xb) * up_k xb)
 * then logits = W_out (rmsnorm(x) * output_norm).
 *
 * Experts come from the provider in any order; each (token, slot) output goes
 * to its own row of moe_out and the rows are summed in slot order, so the
 * numbers never depend on arrival order or on what was cached.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "matvec.h"
#include "quant.h"
#include "session_impl.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Marks the quantized-activation cache stale (its source buffer changed). */
static void act_dirty(struct session *s)
{
    s->xq_src = NULL;
}

/* s->xq = x[n_tok][n_in] quantized for weights of type wt, unless it already
 * holds exactly that (several products of one input share it). */
static void act_prepare(struct session *s, int wt, const float *x, int64_t n_in, int n_tok)
{
    int at = quant_traits(wt)->vec_dot_type;
    if (s->xq_src == x && s->xq_type == at && s->xq_n == n_in && s->xq_rows == n_tok)
        return;
    size_t row = matvec_act_size(wt, n_in);
    for (int t = 0; t < n_tok; t++)
        matvec_quantize_act(wt, x + (size_t)t * n_in, (char *)s->xq + (size_t)t * row, n_in);
    s->xq_src = x;
    s->xq_type = at;
    s->xq_n = (int)n_in;
    s->xq_rows = n_tok;
}

/* y[n_tok][n_out] = x[n_tok][n_in] . W^T, W of type wt with rows of n_in. */
static void mm(struct session *s, float *y, const void *W, int wt, int64_t n_out, int64_t n_in,
               const float *x, int n_tok)
{
    act_prepare(s, wt, x, n_in, n_tok);
    if (n_tok == 1)
        matvec(s->pool, y, W, wt, n_out, n_in, s->xq);
    else
        matmul(s->pool, y, W, wt, n_out, n_in, s->xq, n_tok);
}

/* Several projections of the same input in one pool run: the tasks cover
 * row ranges of every matrix, so small ones (k, v) do not each pay for a
 * round of waking the threads. Same kernels and rows as mm(): same numbers. */
struct mm_part {
    float *y;              /* [n_tok][n_out] */
    const void *W;
    int wt;
    int64_t n_out;
};

struct mmf_job {
    const struct mm_part *parts;
    int n_parts;
    int64_t n_in;
    int n_tok;
    const void *xq;
    int64_t chunk;         /* rows per task */
    int task0[5];          /* first task of each part; task0[n_parts] = total */
};

static void mmf_task(void *ctx, int task, int n_tasks)
{
    (void)n_tasks;
    const struct mmf_job *j = ctx;
    int p = 0;
    while (task >= j->task0[p + 1])
        p++;
    const struct mm_part *mp = &j->parts[p];
    int64_t r0 = (int64_t)(task - j->task0[p]) * j->chunk;
    int64_t r1 = r0 + j->chunk < mp->n_out ? r0 + j->chunk : mp->n_out;
    matmul_rows(mp->y, mp->n_out, mp->W, mp->wt, r0, r1, j->n_in, j->xq, j->n_tok);
}

static void mm_fused(struct session *s, const struct mm_part *parts, int n_parts, int64_t n_in, const float *x,
                     int n_tok)
{
    assert(n_parts >= 1 && n_parts <= 4);
    int at = quant_traits(parts[0].wt)->vec_dot_type;
    for (int p = 1; p < n_parts; p++)
        if ((int)quant_traits(parts[p].wt)->vec_dot_type != at) {
            /* different activation formats: one product at a time */
            for (int q = 0; q < n_parts; q++)
                mm(s, parts[q].y, parts[q].W, parts[q].wt, parts[q].n_out, n_in, x, n_tok);
            return;
        }
    act_prepare(s, parts[0].wt, x, n_in, n_tok);
    struct mmf_job j = { parts, n_parts, n_in, n_tok, s->xq, n_tok == 1 ? 64 : 128, { 0 } };
    for (int p = 0; p < n_parts; p++)
        j.task0[p + 1] = j.task0[p] + (int)((parts[p].n_out + j.chunk - 1) / j.chunk);
    pool_run(s->pool, mmf_task, &j, j.task0[n_parts]);
}

static void rmsnorm(float *y, const float *x, const float *w, int n, float eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++)
        y[i] = x[i] * scale * w[i];
}

static void rope(float *v, const float *cs, const float *sn, int head_dim, bool neox)
{
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        float x0 = v[a], x1 = v[b];
        v[a] = x0 * cs[i] - x1 * sn[i];
        v[b] = x0 * sn[i] + x1 * cs[i];
    }
}

struct attn_job {
    struct session *s;
    int layer, n_tok;
};

/* Causal GQA attention for (token, head) pairs, split over pool tasks. */
static void attn_task(void *ctx, int task, int n_tasks)
{
    struct attn_job *j = ctx;
    struct session *s = j->s;
    const struct model_hparams *hp = &s->m->hp;
    int hd = hp->head_dim, n_kv = hp->n_head_kv * hd, group = hp->n_head / hp->n_head_kv;
    int total = j->n_tok * hp->n_head;
    float *sc = s->scores + (size_t)task * s->n_ctx;
    const float *kc = s->k_cache + (size_t)j->layer * s->n_ctx * n_kv;
    const float *vc = s->v_cache + (size_t)j->layer * s->n_ctx * n_kv;
    float inv = 1.0f / sqrtf((float)hd);
    for (int p = task; p < total; p += n_tasks) {
        int t = p / hp->n_head, h = p % hp->n_head, kvh = h / group;
        int pos = s->n_past + t;
        const float *q = s->q + (size_t)t * hp->n_head * hd + (size_t)h * hd;
        float mx = -INFINITY;
        for (int i = 0; i <= pos; i++) {
            const float *k = kc + (size_t)i * n_kv + (size_t)kvh * hd;
            float d = 0;
            for (int e = 0; e < hd; e++)
                d += q[e] * k[e];
            sc[i] = d * inv;
            if (sc[i] > mx)
                mx = sc[i];
        }
        double sum = 0;
        for (int i = 0; i <= pos; i++) {
            sc[i] = expf(sc[i] - mx);
            sum += sc[i];
        }
        float *out = s->att + (size_t)t * hp->n_head * hd + (size_t)h * hd;
        memset(out, 0, sizeof(float) * hd);
        for (int i = 0; i <= pos; i++) {
            float w = (float)(sc[i] / sum);
            const float *v = vc + (size_t)i * n_kv + (size_t)kvh * hd;
            for (int e = 0; e < hd; e++)
                out[e] += w * v[e];
        }
    }
}

static void attention(struct session *s, int il, int n)
{
    const struct model_hparams *hp = &s->m->hp;
    const struct model_layer *L = &s->m->layers[il];
    int hd = hp->head_dim, n_q = hp->n_head * hd, n_kv = hp->n_head_kv * hd;

    for (int t = 0; t < n; t++)
        rmsnorm(s->xb + (size_t)t * hp->n_embd, s->x + (size_t)t * hp->n_embd, L->attn_norm.data, hp->n_embd,
                hp->rms_eps);
    act_dirty(s);
    struct mm_part qkv[3] = {
        { s->q, L->wq.data, L->wq.type, n_q },
        { s->k, L->wk.data, L->wk.type, n_kv },
        { s->v, L->wv.data, L->wv.type, n_kv },
    };
    mm_fused(s, qkv, 3, hp->n_embd, s->xb, n);

    for (int t = 0; t < n; t++) {
        const float *cs = s->rope_cos + (size_t)t * (hd / 2), *sn = s->rope_sin + (size_t)t * (hd / 2);
        for (int h = 0; h < hp->n_head; h++) {
            float *q = s->q + (size_t)t * n_q + (size_t)h * hd;
            if (hp->qk_norm)
                rmsnorm(q, q, L->q_norm.data, hd, hp->rms_eps);
            rope(q, cs, sn, hd, hp->rope_neox);
        }
        for (int h = 0; h < hp->n_head_kv; h++) {
            float *k = s->k + (size_t)t * n_kv + (size_t)h * hd;
            if (hp->qk_norm)
                rmsnorm(k, k, L->k_norm.data, hd, hp->rms_eps);
            rope(k, cs, sn, hd, hp->rope_neox);
        }
        size_t slot = ((size_t)il * s->n_ctx + (size_t)(s->n_past + t)) * n_kv;
        memcpy(s->k_cache + slot, s->k + (size_t)t * n_kv, sizeof(float) * n_kv);
        memcpy(s->v_cache + slot, s->v + (size_t)t * n_kv, sizeof(float) * n_kv);
    }

    struct attn_job job = { s, il, n };
    /* short contexts: less work than waking the pool costs */
    if ((int64_t)n * hp->n_head * (s->n_past + n) * hd < (1 << 17))
        attn_task(&job, 0, 1);
    else
        pool_run(s->pool, attn_task, &job, s->n_threads);
    act_dirty(s);
    mm(s, s->tmp, L->wo.data, L->wo.type, hp->n_embd, n_q, s->att, n);
    for (size_t i = 0; i < (size_t)n * hp->n_embd; i++)
        s->x[i] += s->tmp[i];
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

/* Softmax over all experts, top-k (ties to the lower id), renormalise. */
static void route(struct session *s, int il, int n)
{
    const struct model_hparams *hp = &s->m->hp;
    int ne = hp->n_expert, k = hp->n_expert_used;
    for (int t = 0; t < n; t++) {
        float *p = s->router + (size_t)t * ne;
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
        int32_t *id = s->topk_id + (size_t)t * k;
        float *w = s->topk_w + (size_t)t * k;
        topk(p, ne, k, id);
        for (int j = 0; j < k; j++)
            w[j] = p[id[j]];
        if (hp->norm_topk) {
            double ws = 0;
            for (int j = 0; j < k; j++)
                ws += w[j];
            for (int j = 0; j < k; j++)
                w[j] = (float)(w[j] / ws);
        }
        if (s->route_fn)
            s->route_fn(s->route_ctx, s->n_past + t, il, id, w, k);
    }
}

/* Rows of one pool task in the batched expert products: small enough that a
 * batch of 8 decode experts spreads evenly over the threads. */
#define EXPERT_TASK_ROWS 64

struct ebatch_job {
    struct session *s;
    const struct model_layer *L;
    int phase;             /* 0: gate and up; 1: down */
    int tasks_per_expert;
    size_t act_row;        /* bytes of one quantized activation row */
};

/* One task: a range of output rows of one expert of the batch, for all of
 * that expert's gathered tokens. */
static void ebatch_task(void *ctx, int task, int n_tasks)
{
    (void)n_tasks;
    const struct ebatch_job *j = ctx;
    struct session *s = j->s;
    const struct model_hparams *hp = &s->m->hp;
    int i = task / j->tasks_per_expert, c = task % j->tasks_per_expert;
    int row0 = s->b_row0[i], rows = s->b_rows[i];
    const uint8_t *blob = s->b_blob[i];
    const uint8_t *xq = (const uint8_t *)s->xq + (size_t)row0 * j->act_row;
    int64_t r0 = (int64_t)c * EXPERT_TASK_ROWS;
    if (j->phase == 0) {
        int64_t r1 = r0 + EXPERT_TASK_ROWS < hp->n_ff_exp ? r0 + EXPERT_TASK_ROWS : hp->n_ff_exp;
        matmul_rows(s->hg + (size_t)row0 * hp->n_ff_exp, hp->n_ff_exp, blob + j->L->gate->offset, j->L->gate->type,
                    r0, r1, hp->n_embd, xq, rows);
        matmul_rows(s->hu + (size_t)row0 * hp->n_ff_exp, hp->n_ff_exp, blob + j->L->up->offset, j->L->up->type, r0,
                    r1, hp->n_embd, xq, rows);
    } else {
        int64_t r1 = r0 + EXPERT_TASK_ROWS < hp->n_embd ? r0 + EXPERT_TASK_ROWS : hp->n_embd;
        matmul_rows(s->yg + (size_t)row0 * hp->n_embd, hp->n_embd, blob + j->L->down->offset, j->L->down->type, r0,
                    r1, hp->n_ff_exp, xq, rows);
    }
}

/* Runs the nb experts of the batch (b_exp, b_blob) on every (token, slot)
 * routed to them: gather, gate and up, silu * up, down, scatter to moe_out.
 * Each output row depends only on its own token and expert, so batching
 * never changes the numbers. */
static void expert_batch(struct session *s, int il, int nb, int n)
{
    const struct model_hparams *hp = &s->m->hp;
    const struct model_layer *L = &s->m->layers[il];
    int k = hp->n_expert_used, rows = 0;
    for (int i = 0; i < nb; i++) {
        s->b_row0[i] = rows;
        for (int t = 0; t < n; t++)
            for (int j = 0; j < k; j++)
                if (s->topk_id[(size_t)t * k + j] == s->b_exp[i]) {
                    s->g_tok[rows] = t;
                    s->g_slot[rows] = j;
                    memcpy(s->xg + (size_t)rows * hp->n_embd, s->xb + (size_t)t * hp->n_embd,
                           sizeof(float) * hp->n_embd);
                    rows++;
                }
        s->b_rows[i] = rows - s->b_row0[i];
    }
    /* gate and up share their input type in every supported mix; check */
    assert(quant_traits(L->gate->type)->vec_dot_type == quant_traits(L->up->type)->vec_dot_type);
    struct ebatch_job job = { s, L, 0, (int)((hp->n_ff_exp + EXPERT_TASK_ROWS - 1) / EXPERT_TASK_ROWS),
                              matvec_act_size(L->gate->type, hp->n_embd) };
    for (int r = 0; r < rows; r++)
        matvec_quantize_act(L->gate->type, s->xg + (size_t)r * hp->n_embd, (char *)s->xq + (size_t)r * job.act_row,
                            hp->n_embd);
    act_dirty(s);
    pool_run(s->pool, ebatch_task, &job, nb * job.tasks_per_expert);
    for (size_t i = 0; i < (size_t)rows * hp->n_ff_exp; i++) {
        float g = s->hg[i];
        s->hg[i] = g / (1.0f + expf(-g)) * s->hu[i];
    }
    job.phase = 1;
    job.tasks_per_expert = (hp->n_embd + EXPERT_TASK_ROWS - 1) / EXPERT_TASK_ROWS;
    job.act_row = matvec_act_size(L->down->type, hp->n_ff_exp);
    for (int r = 0; r < rows; r++)
        matvec_quantize_act(L->down->type, s->hg + (size_t)r * hp->n_ff_exp, (char *)s->xq + (size_t)r * job.act_row,
                            hp->n_ff_exp);
    pool_run(s->pool, ebatch_task, &job, nb * job.tasks_per_expert);
    for (int r = 0; r < rows; r++)
        memcpy(s->moe_out + ((size_t)s->g_tok[r] * k + s->g_slot[r]) * hp->n_embd, s->yg + (size_t)r * hp->n_embd,
               sizeof(float) * hp->n_embd);
}

/* Lookahead for decode: layer L+1's router applied to layer L's state after
 * attention (normed with L+1's ffn_norm) usually names most of the experts
 * L+1 will pick (49-81% of the top 4 on the trained fixture). Their reads
 * start now and overlap with layer L's experts and L+1's attention. Only
 * timing depends on the guess; the numbers never do. */
static void prefetch_next(struct session *s, int il)
{
    const struct model_hparams *hp = &s->m->hp;
    const struct model_layer *N = &s->m->layers[il + 1];
    int k = hp->n_expert_used;
    rmsnorm(s->pf_x, s->x, N->ffn_norm.data, hp->n_embd, hp->rms_eps);
    mm(s, s->pf_logits, N->router.data, N->router.type, hp->n_expert, hp->n_embd, s->pf_x, 1);
    topk(s->pf_logits, hp->n_expert, k, s->pf_ids);
    provider_prefetch(s->m->prov, il + 1, s->pf_ids, k);
}

static int moe(struct session *s, int il, int n)
{
    const struct model_hparams *hp = &s->m->hp;
    const struct model_layer *L = &s->m->layers[il];
    struct provider *prov = s->m->prov;
    int k = hp->n_expert_used;

    for (int t = 0; t < n; t++)
        rmsnorm(s->xb + (size_t)t * hp->n_embd, s->x + (size_t)t * hp->n_embd, L->ffn_norm.data, hp->n_embd,
                hp->rms_eps);
    act_dirty(s);
    double t0 = now_s();
    mm(s, s->router, L->router.data, L->router.type, hp->n_expert, hp->n_embd, s->xb, n);
    route(s, il, n);
    s->times.router_s += now_s() - t0;

    /* the union of the experts of all tokens, each loaded once */
    int n_uniq = 0;
    memset(s->e_count, 0, sizeof(int32_t) * hp->n_expert);
    for (int i = 0; i < n * k; i++)
        if (s->e_count[s->topk_id[i]]++ == 0)
            s->uniq[n_uniq++] = s->topk_id[i];

    int cap = model_request_cap(s->m);

    for (int c0 = 0; c0 < n_uniq; c0 += cap) {
        int nc = n_uniq - c0 < cap ? n_uniq - c0 : cap;
        int rc = provider_request(prov, il, s->uniq + c0, nc);
        if (rc >= 0 && c0 == 0 && s->prefetch && n == 1 && il + 1 < hp->n_layer)
            prefetch_next(s, il);
        for (;;) {
            /* wait for one expert, then take every other one already
             * resident: hits arrive together, misses as they complete */
            int e, nb = 0;
            const uint8_t *blob;
            double t0 = now_s();
            if (rc >= 0)
                rc = provider_next(prov, &e, &blob);
            s->times.io_wait_s += now_s() - t0;
            if (rc <= 0)
                break;
            s->b_exp[nb] = e;
            s->b_blob[nb++] = blob;
            while (provider_ready_count(prov) > 0 && (rc = provider_next(prov, &e, &blob)) > 0) {
                s->b_exp[nb] = e;
                s->b_blob[nb++] = blob;
            }
            double tb = now_s();
            expert_batch(s, il, nb, n);
            s->times.experts_s += now_s() - tb;
            for (int i = 0; i < nb; i++)
                provider_release(prov, il, s->b_exp[i]);
            if (rc < 0)
                break;
        }
        if (rc < 0) {
            snprintf(s->err, sizeof(s->err), "%s", provider_error(prov));
            return rc;
        }
    }

    for (int t = 0; t < n; t++) {
        float *x = s->x + (size_t)t * hp->n_embd;
        for (int j = 0; j < k; j++) {
            float w = s->topk_w[(size_t)t * k + j];
            const float *y = s->moe_out + ((size_t)t * k + j) * hp->n_embd;
            for (int i = 0; i < hp->n_embd; i++)
                x[i] += w * y[i];
        }
    }
    return 0;
}

int moe_forward(struct session *s, const int32_t *tokens, int n, float *logits, bool all_logits)
{
    const struct model *m = s->m;
    const struct model_hparams *hp = &m->hp;
    const struct quant_traits *et = quant_traits(m->tok_embd.type);
    size_t erow = quant_row_size(m->tok_embd.type, hp->n_embd);
    double t_start = now_s(), wait0 = s->times.io_wait_s;

    for (int t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= hp->n_vocab) {
            snprintf(s->err, sizeof(s->err), "token id %d at position %d is outside the vocabulary (0..%d)",
                     tokens[t], s->n_past + t, hp->n_vocab - 1);
            return -EINVAL;
        }
        et->to_float((const uint8_t *)m->tok_embd.data + (size_t)tokens[t] * erow, s->x + (size_t)t * hp->n_embd,
                     hp->n_embd);
        int half = hp->head_dim / 2;
        for (int i = 0; i < half; i++) {
            double theta = (double)(s->n_past + t) * pow(hp->rope_base, -2.0 * i / hp->head_dim);
            s->rope_cos[(size_t)t * half + i] = (float)cos(theta);
            s->rope_sin[(size_t)t * half + i] = (float)sin(theta);
        }
    }

    for (int il = 0; il < hp->n_layer; il++) {
        double t0 = now_s();
        attention(s, il, n);
        s->times.attn_s += now_s() - t0;
        int rc = moe(s, il, n);
        if (rc < 0)
            return rc;
    }
    double t_out = now_s();

    if (logits) {
        int first = all_logits ? 0 : n - 1, rows = n - first;
        for (int t = first; t < n; t++)
            rmsnorm(s->xb + (size_t)(t - first) * hp->n_embd, s->x + (size_t)t * hp->n_embd, m->output_norm.data,
                    hp->n_embd, hp->rms_eps);
        act_dirty(s);
        mm(s, logits, m->output.data, m->output.type, hp->n_vocab, hp->n_embd, s->xb, rows);
    }
    s->times.output_s += now_s() - t_out;
    s->n_past += n;
    s->times.compute_s += (now_s() - t_start) - (s->times.io_wait_s - wait0);
    return 0;
}
