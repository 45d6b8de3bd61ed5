/*
 * session.c - allocation of the KV cache and scratch (once, at init), and
 * session_eval, which cuts the input into n_batch chunks for the forward pass.
 */
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matvec.h"
#include "session_impl.h"

uint64_t session_kv_bytes(const struct model_hparams *hp, int n_ctx)
{
    return 2ull * hp->n_layer * (uint64_t)n_ctx * hp->n_head_kv * hp->head_dim * sizeof(float);
}

static int64_t max3(int64_t a, int64_t b, int64_t c)
{
    int64_t m = a > b ? a : b;
    return m > c ? m : c;
}

uint64_t session_scratch_bytes(const struct model_hparams *hp, int n_ctx, int n_batch, int n_threads)
{
    uint64_t B = (uint64_t)n_batch, nq = (uint64_t)hp->n_head * hp->head_dim,
             nkv = (uint64_t)hp->n_head_kv * hp->head_dim, K = (uint64_t)hp->n_expert_used;
    uint64_t floats = B * hp->n_embd * 3              /* x xb tmp */
                      + B * K * hp->n_embd * 2        /* xg yg */
                      + B * nq * 2 + B * nkv * 2      /* q att k v */
                      + (uint64_t)n_threads * n_ctx   /* scores */
                      + B * hp->head_dim              /* rope cos, sin */
                      + B * hp->n_expert              /* router */
                      + B * K * (1 + hp->n_embd)      /* topk_w moe_out */
                      + B * K * hp->n_ff_exp * 2;     /* hg hu */
    uint64_t ints = B * K * 3 + 5ull * hp->n_expert + 2ull * hp->n_expert; /* + b_blob pointers */
    uint64_t xq = B * K * matvec_act_size(QT_F32, max3(hp->n_embd, (int64_t)nq, hp->n_ff_exp));
    uint64_t logits_rows = B * (uint64_t)hp->n_vocab * sizeof(float); /* caller-held, counted here */
    return floats * sizeof(float) + ints * sizeof(int32_t) + xq + logits_rows;
}

int session_init(struct session **out, struct model *m, struct pool *pool, const struct session_opts *o,
                 char *err, size_t errlen)
{
    const struct model_hparams *hp = &m->hp;
    if (o->n_ctx <= 0 || o->n_batch <= 0 || o->n_threads <= 0) {
        snprintf(err, errlen, "session: n_ctx %d, n_batch %d and threads %d must be positive", o->n_ctx,
                 o->n_batch, o->n_threads);
        return -EINVAL;
    }
    struct session *s = calloc(1, sizeof(*s));
    if (!s)
        goto oom;
    s->m = m;
    s->pool = pool;
    s->n_ctx = o->n_ctx;
    s->n_batch = o->n_batch;
    s->n_threads = o->n_threads;
    s->xq_type = -1;
    size_t B = (size_t)o->n_batch, nq = (size_t)hp->n_head * hp->head_dim, nkv = (size_t)hp->n_head_kv * hp->head_dim,
           K = (size_t)hp->n_expert_used, kv = (size_t)hp->n_layer * o->n_ctx * nkv;
#define ALLOC(field, count)                                        \
    do {                                                           \
        s->field = calloc((count), sizeof(*s->field));             \
        if (!s->field)                                             \
            goto oom;                                              \
    } while (0)
    ALLOC(k_cache, kv);
    ALLOC(v_cache, kv);
    ALLOC(x, B * hp->n_embd);
    ALLOC(xb, B * hp->n_embd);
    ALLOC(q, B * nq);
    ALLOC(k, B * nkv);
    ALLOC(v, B * nkv);
    ALLOC(att, B * nq);
    ALLOC(tmp, B * hp->n_embd);
    ALLOC(scores, (size_t)o->n_threads * o->n_ctx);
    ALLOC(rope_cos, B * (hp->head_dim / 2));
    ALLOC(rope_sin, B * (hp->head_dim / 2));
    ALLOC(router, B * hp->n_expert);
    ALLOC(topk_id, B * K);
    ALLOC(topk_w, B * K);
    ALLOC(moe_out, B * K * hp->n_embd);
    ALLOC(xg, B * K * hp->n_embd);
    ALLOC(hg, B * K * hp->n_ff_exp);
    ALLOC(hu, B * K * hp->n_ff_exp);
    ALLOC(yg, B * K * hp->n_embd);
    ALLOC(b_exp, (size_t)hp->n_expert);
    ALLOC(b_row0, (size_t)hp->n_expert);
    ALLOC(b_rows, (size_t)hp->n_expert);
    ALLOC(b_blob, (size_t)hp->n_expert);
    ALLOC(pf_x, (size_t)hp->n_embd);
    ALLOC(pf_logits, (size_t)hp->n_expert);
    ALLOC(pf_ids, K);
    s->prefetch = o->prefetch;
    ALLOC(g_tok, B * K);
    ALLOC(g_slot, B * K);
    ALLOC(uniq, (size_t)hp->n_expert);
    ALLOC(e_count, (size_t)hp->n_expert);
#undef ALLOC
    s->xq_row = matvec_act_size(QT_F32, max3(hp->n_embd, (int64_t)nq, hp->n_ff_exp));
    s->xq = aligned_alloc(64, (B * K * s->xq_row + 63) / 64 * 64);
    if (!s->xq)
        goto oom;
    *out = s;
    return 0;
oom:
    session_free(s);
    snprintf(err, errlen, "session: out of memory allocating the KV cache (%d positions) and scratch (batch %d)",
             o->n_ctx, o->n_batch);
    return -ENOMEM;
}

void session_free(struct session *s)
{
    if (!s)
        return;
    free(s->k_cache);
    free(s->v_cache);
    free(s->x);
    free(s->xb);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att);
    free(s->tmp);
    free(s->scores);
    free(s->rope_cos);
    free(s->rope_sin);
    free(s->router);
    free(s->topk_id);
    free(s->topk_w);
    free(s->moe_out);
    free(s->xg);
    free(s->hg);
    free(s->hu);
    free(s->yg);
    free(s->g_tok);
    free(s->g_slot);
    free(s->b_exp);
    free(s->b_row0);
    free(s->b_rows);
    free(s->b_blob);
    free(s->pf_x);
    free(s->pf_logits);
    free(s->pf_ids);
    free(s->uniq);
    free(s->e_count);
    free(s->xq);
    free(s);
}

int session_eval(struct session *s, const int32_t *tokens, int n, float *logits, bool all_logits)
{
    if (n <= 0)
        return 0;
    if (s->n_past + n > s->n_ctx) {
        snprintf(s->err, sizeof(s->err),
                 "context full: %d tokens already, %d more do not fit in n_ctx %d (raise -c)", s->n_past, n,
                 s->n_ctx);
        return -ENOSPC;
    }
    size_t nv = (size_t)s->m->hp.n_vocab;
    for (int c0 = 0; c0 < n; c0 += s->n_batch) {
        int nc = n - c0 < s->n_batch ? n - c0 : s->n_batch;
        bool last = c0 + nc == n;
        float *lg = NULL;
        if (logits && all_logits)
            lg = logits + (size_t)c0 * nv;
        else if (logits && last)
            lg = logits;
        int rc = moe_forward(s, tokens + c0, nc, lg, all_logits);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void session_reset(struct session *s)
{
    s->n_past = 0;
}

int session_n_past(const struct session *s)
{
    return s->n_past;
}

int session_n_ctx(const struct session *s)
{
    return s->n_ctx;
}

const char *session_error(const struct session *s)
{
    return s->err;
}

void session_set_route_hook(struct session *s, session_route_fn fn, void *ctx)
{
    s->route_fn = fn;
    s->route_ctx = ctx;
}

void session_get_times(const struct session *s, struct session_times *t)
{
    *t = s->times;
}
