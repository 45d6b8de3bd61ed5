/*
 * deltanet.c - gated delta-net linear attention (see deltanet.h).
 */
#include "deltanet.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "pool.h"

uint64_t deltanet_state_bytes(const struct deltanet_hparams *hp, int n_layer)
{
    uint64_t conv = (uint64_t)(hp->d_conv - 1) * deltanet_conv_dim(hp);
    uint64_t ssm = (uint64_t)hp->n_v_heads * hp->head_dim * hp->head_dim;
    return (uint64_t)n_layer * (conv + ssm) * sizeof(float);
}

int deltanet_state_init(struct deltanet_state *st, const struct deltanet_hparams *hp, int n_layer)
{
    memset(st, 0, sizeof(*st));
    st->n_layer = n_layer;
    st->conv_layer = (size_t)(hp->d_conv - 1) * deltanet_conv_dim(hp);
    st->ssm_layer = (size_t)hp->n_v_heads * hp->head_dim * hp->head_dim;
    st->conv = calloc((size_t)n_layer * st->conv_layer + 1, sizeof(float));
    st->ssm = calloc((size_t)n_layer * st->ssm_layer + 1, sizeof(float));
    if (!st->conv || !st->ssm) {
        deltanet_state_free(st);
        return -1;
    }
    return 0;
}

void deltanet_state_reset(struct deltanet_state *st)
{
    memset(st->conv, 0, sizeof(float) * (size_t)st->n_layer * st->conv_layer);
    memset(st->ssm, 0, sizeof(float) * (size_t)st->n_layer * st->ssm_layer);
}

void deltanet_state_free(struct deltanet_state *st)
{
    free(st->conv);
    free(st->ssm);
    st->conv = st->ssm = NULL;
}

uint64_t deltanet_scratch_bytes(const struct deltanet_hparams *hp, int n_batch)
{
    uint64_t B = (uint64_t)n_batch, nv = (uint64_t)hp->n_v_heads * hp->head_dim;
    return B * ((uint64_t)deltanet_conv_dim(hp) + 2 * nv + 2ull * hp->n_v_heads) * sizeof(float) +
           B * sizeof(void *);
}

int deltanet_scratch_init(struct deltanet_scratch *s, const struct deltanet_hparams *hp, int n_batch)
{
    size_t B = (size_t)n_batch, nv = (size_t)hp->n_v_heads * hp->head_dim;
    memset(s, 0, sizeof(*s));
    s->qkv = calloc(B * deltanet_conv_dim(hp), sizeof(float));
    s->z = calloc(B * nv, sizeof(float));
    s->beta = calloc(B * hp->n_v_heads, sizeof(float));
    s->g = calloc(B * hp->n_v_heads, sizeof(float));
    s->o = calloc(B * nv, sizeof(float));
    s->st = calloc(B, sizeof(*s->st));
    if (!s->qkv || !s->z || !s->beta || !s->g || !s->o || !s->st) {
        deltanet_scratch_free(s);
        return -1;
    }
    return 0;
}

void deltanet_scratch_free(struct deltanet_scratch *s)
{
    free(s->qkv);
    free(s->z);
    free(s->beta);
    free(s->g);
    free(s->o);
    free(s->st);
    memset(s, 0, sizeof(*s));
}

static inline float silu(float x)
{
    return x / (1.0f + expf(-x));
}

/* 4-float vectors (GCC/Clang vector extension; SSE2 on x86-64, so no ISA
 * dispatch: every build computes the same numbers). */
typedef float dn_v4 __attribute__((vector_size(16)));

static inline dn_v4 ld4(const float *p)
{
    dn_v4 v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline void st4(float *p, dn_v4 v)
{
    memcpy(p, &v, sizeof(v));
}

/* Sum of 8 partial sums in a fixed order. */
static inline float hsum8(dn_v4 a, dn_v4 b)
{
    return ((a[0] + b[0]) + (a[1] + b[1])) + ((a[2] + b[2]) + (a[3] + b[3]));
}

/* One row m of S (n values, n % 8 == 0) for one token:
 *   m *= eg;  d = (v - m . k) * beta;  m += d k;  returns (m . q) */
static inline float dn_row(float *m, const float *k, const float *q, float eg, float v, float beta, int n)
{
    dn_v4 a0 = { 0 }, a1 = { 0 }, e = { eg, eg, eg, eg };
    for (int i = 0; i < n; i += 8) {
        dn_v4 m0 = ld4(m + i) * e, m1 = ld4(m + i + 4) * e;
        st4(m + i, m0);
        st4(m + i + 4, m1);
        a0 += m0 * ld4(k + i);
        a1 += m1 * ld4(k + i + 4);
    }
    float d = (v - hsum8(a0, a1)) * beta;
    dn_v4 dd = { d, d, d, d }, b0 = { 0 }, b1 = { 0 };
    for (int i = 0; i < n; i += 8) {
        dn_v4 m0 = ld4(m + i) + dd * ld4(k + i), m1 = ld4(m + i + 4) + dd * ld4(k + i + 4);
        st4(m + i, m0);
        st4(m + i + 4, m1);
        b0 += m0 * ld4(q + i);
        b1 += m1 * ld4(q + i + 4);
    }
    return hsum8(b0, b1);
}

/* v /= max(|v|, eps) */
static void l2_normalize(float *v, int n, float eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (double)v[i] * v[i];
    float nrm = sqrtf((float)ss);
    float sc = 1.0f / (nrm > eps ? nrm : eps);
    for (int i = 0; i < n; i++)
        v[i] *= sc;
}

struct dn_job {
    struct deltanet_scratch *s;
    const struct deltanet_hparams *hp;
    const struct engine_batch *b;
    int il;
};

/* The delta rule of one value head for every row of the step, in row order
 * (a sequence's rows come in position order). Each row of S is decayed,
 * read against k, corrected and read against q in one pass. */
static void dn_head_task(void *ctx, int h, int n_tasks)
{
    (void)n_tasks;
    const struct dn_job *j = ctx;
    const struct deltanet_hparams *hp = j->hp;
    struct deltanet_scratch *s = j->s;
    int S = hp->head_dim, cd = deltanet_conv_dim(hp), kh = h % hp->n_k_heads;
    int key_dim = hp->n_k_heads * S, nv = hp->n_v_heads * S;
    float scale = 1.0f / sqrtf((float)S);
    for (int t = 0; t < j->b->n; t++) {
        struct deltanet_state *st = s->st[t];
        float *M = st->ssm + (size_t)j->il * st->ssm_layer + (size_t)h * S * S;
        const float *row = s->qkv + (size_t)t * cd;
        const float *q = row + (size_t)kh * S, *k = row + key_dim + (size_t)kh * S, *v = row + 2 * key_dim + (size_t)h * S;
        float eg = expf(s->g[(size_t)t * hp->n_v_heads + h]), beta = s->beta[(size_t)t * hp->n_v_heads + h];
        float *o = s->o + (size_t)t * nv + (size_t)h * S;
        for (int r = 0; r < S; r++)
            o[r] = dn_row(M + (size_t)r * S, k, q, eg, v[r], beta, S) * scale;
    }
}

void deltanet_forward(struct fwd *f, struct deltanet_scratch *s, const struct deltanet_hparams *hp,
                      const struct deltanet_weights *w, int il, const struct engine_batch *b, const float *xb,
                      float *out)
{
    int n = b->n, S = hp->head_dim, H = hp->n_v_heads, cd = deltanet_conv_dim(hp), K = hp->d_conv;
    int nv = H * S;
    struct blocks_mm_part parts[4] = {
        { s->qkv, w->wqkv->data, w->wqkv->type, cd },
        { s->z, w->wgate->data, w->wgate->type, nv },
        { s->beta, w->wbeta->data, w->wbeta->type, H },
        { s->g, w->walpha->data, w->walpha->type, H },
    };
    blocks_mm_fused(f, ENGINE_SITE_ATTN, parts, 4, hp->n_embd, xb, n);

    const float *dt = w->dt_bias->data, *a = w->a->data, *cw = w->conv->data;
    for (int t = 0; t < n; t++) {
        float *bt = s->beta + (size_t)t * H, *gt = s->g + (size_t)t * H;
        for (int h = 0; h < H; h++) {
            bt[h] = 1.0f / (1.0f + expf(-bt[h]));
            float x = gt[h] + dt[h];
            float sp = x > 20.0f ? x : logf(1.0f + expf(x));
            gt[h] = sp * a[h];
        }
        /* causal depthwise conv over (the state's K-1 inputs, this input),
         * oldest first; then the state slides by one */
        float *cs = s->st[t]->conv + (size_t)il * s->st[t]->conv_layer;
        float *x = s->qkv + (size_t)t * cd;
        for (int c = 0; c < cd; c++) {
            const float *wc = cw + (size_t)c * K;
            float acc = 0;
            for (int i = 0; i < K - 1; i++)
                acc += cs[(size_t)i * cd + c] * wc[i];
            acc += x[c] * wc[K - 1];
            for (int i = 0; i + 1 < K - 1; i++)
                cs[(size_t)i * cd + c] = cs[(size_t)(i + 1) * cd + c];
            if (K > 1)
                cs[(size_t)(K - 2) * cd + c] = x[c];
            x[c] = silu(acc);
        }
        for (int h = 0; h < 2 * hp->n_k_heads; h++)
            l2_normalize(x + (size_t)h * S, S, hp->eps);
    }

    struct dn_job job = { s, hp, b, il };
    if ((int64_t)n * H * S * S < (1 << 15))
        for (int h = 0; h < H; h++)
            dn_head_task(&job, h, H);
    else
        pool_run(f->pool, dn_head_task, &job, H);

    /* per head: rmsnorm(o) * norm * silu(z) */
    for (int t = 0; t < n; t++)
        for (int h = 0; h < H; h++) {
            float *o = s->o + (size_t)t * nv + (size_t)h * S;
            const float *z = s->z + (size_t)t * nv + (size_t)h * S;
            blocks_rmsnorm(o, o, w->norm->data, S, hp->eps);
            for (int i = 0; i < S; i++)
                o[i] *= silu(z[i]);
        }
    blocks_act_dirty(f);
    blocks_mm(f, ENGINE_SITE_ATTN, out, w->wout->data, w->wout->type, hp->n_embd, nv, s->o, n);
}
