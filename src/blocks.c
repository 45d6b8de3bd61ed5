/*
 * blocks.c - norms, rotary embeddings and projections (see blocks.h).
 */
#include "blocks.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <time.h>

#include "matvec.h"
#include "quant.h"

double blocks_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void blocks_rmsnorm(float *y, const float *x, const float *w, int n, float eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++)
        y[i] = x[i] * scale * w[i];
}

void blocks_rope_table(float *cs, float *sn, int pos, int n_rot, float base)
{
    int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
        double theta = (double)pos * pow(base, -2.0 * i / n_rot);
        cs[i] = (float)cos(theta);
        sn[i] = (float)sin(theta);
    }
}

/* The dimension pair index at which a rotation of frequency base^(-2i/n_rot)
 * turns n_rot_turns times over n_ctx_orig positions. */
static double yarn_corr_dim(int n_rot, int n_ctx_orig, double n_rot_turns, double base)
{
    return n_rot * log(n_ctx_orig / (n_rot_turns * 2 * M_PI)) / (2 * log(base));
}

void blocks_rope_table_yarn(float *cs, float *sn, int pos, int n_rot, float base, const struct blocks_yarn *y)
{
    int half = n_rot / 2;
    double lo = floor(yarn_corr_dim(n_rot, y->n_ctx_orig, y->beta_fast, base));
    double hi = ceil(yarn_corr_dim(n_rot, y->n_ctx_orig, y->beta_slow, base));
    if (lo < 0)
        lo = 0;
    if (hi > n_rot - 1)
        hi = n_rot - 1;
    float mscale = y->attn_factor;
    if (y->ext_factor != 0.0f)
        mscale *= 1.0f + 0.1f * logf(1.0f / y->freq_scale);
    for (int i = 0; i < half; i++) {
        double extrap = (double)pos * pow(base, -2.0 * i / n_rot);
        double interp = y->freq_scale * extrap, theta = interp;
        if (y->ext_factor != 0.0f) {
            double r = (i - lo) / fmax(0.001, hi - lo);
            double ramp = (1.0 - fmin(1.0, fmax(0.0, r))) * y->ext_factor;
            theta = interp * (1.0 - ramp) + extrap * ramp;
        }
        cs[i] = (float)cos(theta) * mscale;
        sn[i] = (float)sin(theta) * mscale;
    }
}

void blocks_rope(float *v, const float *cs, const float *sn, int n_rot, bool neox)
{
    int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
        int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
        float x0 = v[a], x1 = v[b];
        v[a] = x0 * cs[i] - x1 * sn[i];
        v[b] = x0 * sn[i] + x1 * cs[i];
    }
}

void blocks_act_dirty(struct fwd *f)
{
    f->aq.xq_src = NULL;
}

size_t blocks_actq_rows(const struct model_hparams *hp, int n_batch)
{
    return (size_t)n_batch * (size_t)hp->n_expert_used;
}

size_t blocks_actq_row_bytes(const struct model_hparams *hp)
{
    int64_t mx = hp->n_embd;
    if ((int64_t)hp->n_head * hp->head_dim > mx)
        mx = (int64_t)hp->n_head * hp->head_dim;
    if (hp->n_ff_exp > mx)
        mx = hp->n_ff_exp;
    /* deepseek2: dense and shared-expert FFNs, MLA ranks and value heads */
    int64_t more[] = { hp->n_ff_dense, (int64_t)hp->n_ff_exp * hp->n_expert_shared, hp->q_lora_rank,
                       hp->kv_lora_rank, (int64_t)hp->n_head * hp->head_dim_v_mla };
    for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
        if (more[i] > mx)
            mx = more[i];
    /* qwen35moe: the shared expert's hidden size and the delta-net output */
    if (hp->n_ff_shexp > mx)
        mx = hp->n_ff_shexp;
    if (hp->ssm_d_inner > mx)
        mx = hp->ssm_d_inner;
    return matvec_act_size(QT_F32, mx, MATVEC_ACT16);
}

uint64_t blocks_engine_bytes(const struct model_hparams *hp, int n_batch)
{
    uint64_t xq = (uint64_t)blocks_actq_rows(hp, n_batch) * blocks_actq_row_bytes(hp);
    uint64_t es = (uint64_t)hp->n_expert * (3 * sizeof(int32_t) + sizeof(void *));
    return xq + es;
}

/* f->aq.xq = x[n_tok][n_in] quantized for weights of type wt at precision
 * act, unless it already holds exactly that. */
static void act_prepare(struct fwd *f, int wt, enum matvec_act act, const float *x, int64_t n_in, int n_tok)
{
    struct actq *a = &f->aq;
    int at = quant_traits(wt)->vec_dot_type;
    if (a->xq_src == x && a->xq_type == at && a->xq_act == act && a->xq_n == n_in && a->xq_rows == n_tok)
        return;
    matvec_quantize_rows(f->pool, wt, x, (size_t)n_in, a->xq, n_in, n_tok, act);
    a->xq_src = x;
    a->xq_type = at;
    a->xq_act = act;
    a->xq_n = (int)n_in;
    a->xq_rows = n_tok;
}

void blocks_mm(struct fwd *f, enum engine_site site, float *y, const void *W, int wt, int64_t n_out, int64_t n_in,
               const float *x, int n_tok)
{
    enum matvec_act act = f->act[site];
    act_prepare(f, wt, act, x, n_in, n_tok);
    if (n_tok == 1)
        matvec(f->pool, y, W, wt, n_out, n_in, f->aq.xq, act);
    else
        matmul(f->pool, y, W, wt, n_out, n_in, f->aq.xq, n_tok, act);
}

struct mmf_job {
    const struct blocks_mm_part *parts;
    int n_parts;
    int64_t n_in;
    int n_tok;
    const void *xq;
    enum matvec_act act;
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
    const struct blocks_mm_part *mp = &j->parts[p];
    int64_t r0 = (int64_t)(task - j->task0[p]) * j->chunk;
    int64_t r1 = r0 + j->chunk < mp->n_out ? r0 + j->chunk : mp->n_out;
    matmul_rows(mp->y, mp->n_out, mp->W, mp->wt, r0, r1, j->n_in, j->xq, j->n_tok, j->act);
}

void blocks_mm_fused(struct fwd *f, enum engine_site site, const struct blocks_mm_part *parts, int n_parts,
                     int64_t n_in, const float *x, int n_tok)
{
    assert(n_parts >= 1 && n_parts <= 4);
    int at = quant_traits(parts[0].wt)->vec_dot_type;
    for (int p = 1; p < n_parts; p++)
        if ((int)quant_traits(parts[p].wt)->vec_dot_type != at) {
            /* different activation formats: one product at a time */
            for (int q = 0; q < n_parts; q++)
                blocks_mm(f, site, parts[q].y, parts[q].W, parts[q].wt, parts[q].n_out, n_in, x, n_tok);
            return;
        }
    enum matvec_act act = f->act[site];
    act_prepare(f, parts[0].wt, act, x, n_in, n_tok);
    struct mmf_job j = { parts, n_parts, n_in, n_tok, f->aq.xq, act, n_tok == 1 ? 64 : 128, { 0 } };
    for (int p = 0; p < n_parts; p++)
        j.task0[p + 1] = j.task0[p] + (int)((parts[p].n_out + j.chunk - 1) / j.chunk);
    pool_run(f->pool, mmf_task, &j, j.task0[n_parts]);
}

bool blocks_all_finite(const float *x, size_t n)
{
    /* eight independent lanes so the loop vectorises without -ffast-math */
    float acc[8] = { 0 };
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += x[i + k] * 0.0f;
    for (; i < n; i++)
        acc[0] += x[i] * 0.0f;
    float s = 0;
    for (int k = 0; k < 8; k++)
        s += acc[k];
    return s == 0.0f;
}

int blocks_check_finite(struct fwd *f, const float *x, size_t n, int il)
{
    if (blocks_all_finite(x, n))
        return 0;
    if (il >= 0)
        snprintf(f->err, sizeof(f->err),
                 "layer %d: the hidden state became NaN or infinite: the weights of layer %d are damaged or "
                 "unusable (check the model with `moestream-split verify DIR`); stopping instead of printing "
                 "garbage",
                 il, il);
    else
        snprintf(f->err, sizeof(f->err),
                 "output: the logits are NaN or infinite: the output weights are damaged or unusable (check the "
                 "model with `moestream-split verify DIR`); stopping instead of printing garbage");
    return -EBADMSG;
}

struct norm_rows_job {
    float *xb;
    const float *x, *w;
    int n, n_embd;
    float eps;
};

static void norm_rows_task(void *ctx, int task, int n_tasks)
{
    const struct norm_rows_job *j = ctx;
    for (int t = task; t < j->n; t += n_tasks)
        blocks_rmsnorm(j->xb + (size_t)t * j->n_embd, j->x + (size_t)t * j->n_embd, j->w, j->n_embd, j->eps);
}

void blocks_norm_rows(struct fwd *f, float *xb, const float *x, const struct mtensor *w, int n, int n_embd,
                      float eps)
{
    struct norm_rows_job j = { xb, x, w->data, n, n_embd, eps };
    /* a pool wake-up costs about as much as a few rows */
    if (n >= 4)
        pool_run(f->pool, norm_rows_task, &j, f->n_threads);
    else
        norm_rows_task(&j, 0, 1);
    blocks_act_dirty(f);
}

void blocks_embed(const struct mtensor *tok_embd, const struct engine_batch *b, float *x, int n_embd)
{
    const struct quant_traits *et = quant_traits(tok_embd->type);
    size_t erow = quant_row_size(tok_embd->type, n_embd);
    for (int t = 0; t < b->n; t++)
        et->to_float((const uint8_t *)tok_embd->data + (size_t)b->tok[t] * erow, x + (size_t)t * n_embd, n_embd);
}

void blocks_output(struct fwd *f, const struct engine_batch *b, const float *x, float *xb, const struct mtensor *norm,
                   const struct mtensor *output, int n_vocab, int n_embd, float eps, float *logits)
{
    double t0 = blocks_now();
    if (logits) {
        int rows = 0;
        for (int t = 0; t < b->n; t++)
            if (b->out ? b->out[t] != 0 : t == b->n - 1)
                blocks_rmsnorm(xb + (size_t)rows++ * n_embd, x + (size_t)t * n_embd, norm->data, n_embd, eps);
        blocks_act_dirty(f);
        if (rows > 0)
            blocks_mm(f, ENGINE_SITE_OUTPUT, logits, output->data, output->type, n_vocab, n_embd, xb, rows);
    }
    f->times.output_s += blocks_now() - t0;
}
