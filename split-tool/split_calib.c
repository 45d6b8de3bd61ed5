/*
 * split_calib.c - self-calibration statistics (split_calib.h).
 */
#include "split_calib.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "errmsg.h"
#include "model.h"
#include "sampler.h"
#include "session.h"
#include "tokenizer.h"

#define G SPLIT_CALIB_GROUP

static uint64_t calib_expert_floats(int n_embd, int n_ff)
{
    return (uint64_t)(n_embd / G + n_ff / G) * G * G;
}

uint64_t split_calib_bytes(int n_layer, int n_expert, int n_embd, int n_ff)
{
    return (uint64_t)n_layer * (uint64_t)n_expert * calib_expert_floats(n_embd, n_ff) * sizeof(float);
}

static float *calib_at(const struct split_calib *c, int layer, int expert, int kind, int g)
{
    uint64_t base = ((uint64_t)layer * (uint64_t)c->n_expert + (uint64_t)expert) *
                    calib_expert_floats(c->n_embd, c->n_ff);
    if (kind)
        base += (uint64_t)(c->n_embd / G) * G * G;
    return c->cov + base + (uint64_t)g * G * G;
}

static void calib_hook(void *ctx, int layer, int expert, int kind, const float *rows, const float *weights,
                       int n_rows, int dim)
{
    struct split_calib *c = ctx;
    if (layer >= c->n_layer || expert >= c->n_expert || dim != (kind ? c->n_ff : c->n_embd))
        return;
    for (int r = 0; r < n_rows; r++) {
        const float *x = rows + (size_t)r * dim;
        const float w2 = weights[r] * weights[r];
        for (int g = 0; g < dim / G; g++) {
            float *C = calib_at(c, layer, expert, kind, g);
            const float *xg = x + g * G;
            for (int i = 0; i < G; i++) {
                const float a = w2 * xg[i];
                float *Ci = C + (size_t)i * G;
                for (int j = 0; j < G; j++)
                    Ci[j] += a * xg[j];
            }
        }
        c->wsum[((size_t)layer * c->n_expert + expert) * 2 + kind] += w2;
        if (kind == 0)
            c->rows[(size_t)layer * c->n_expert + expert]++;
    }
}

int split_calib_run(struct split_calib *c, const char *path, int n_tokens, int n_ctx, uint64_t seed, int n_threads,
                    uint64_t max_bytes, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    struct model *m = NULL;
    struct engine *e = NULL;
    struct session *s = NULL;
    struct sampler *smp = NULL;
    struct tokenizer *tok = NULL;
    float *logits = NULL;
    struct model_opts mo = { 0 };
    mo.n_ctx = n_ctx;
    mo.n_seq = 1;
    mo.n_threads = n_threads;
    int rc = model_open(&m, path, &mo, err, errlen);
    if (rc < 0)
        return rc;
    const struct model_hparams *hp = model_hparams(m);
    c->n_layer = hp->n_layer;
    c->n_expert = hp->n_expert;
    c->n_embd = hp->n_embd;
    c->n_ff = hp->n_ff_exp;
    uint64_t need = split_calib_bytes(c->n_layer, c->n_expert, c->n_embd, c->n_ff);
    if (need > max_bytes) {
        rc = errmsg_set(err, errlen, -E2BIG,
                        "calib: %s: the expert statistics need %.2f GiB (%d layers x %d experts, inputs %d and %d); "
                        "the limit is %.2f GiB",
                        path, need / 1073741824.0, c->n_layer, c->n_expert, c->n_embd, c->n_ff,
                        max_bytes / 1073741824.0);
        goto out;
    }
    c->cov = calloc(need / sizeof(float), sizeof(float));
    c->wsum = calloc((size_t)c->n_layer * c->n_expert * 2, sizeof(double));
    c->rows = calloc((size_t)c->n_layer * c->n_expert, sizeof(uint64_t));
    logits = malloc((size_t)hp->n_vocab * sizeof(float));
    if (!c->cov || !c->wsum || !c->rows || !logits) {
        rc = errmsg_set(err, errlen, -ENOMEM, "calib: out of memory (%.2f GiB of statistics)", need / 1073741824.0);
        goto out;
    }
    struct engine_opts eo = { .n_threads = n_threads };
    if ((rc = engine_open(&e, m, &eo, err, errlen)) < 0)
        goto out;
    if ((rc = session_init(&s, e, n_ctx, err, errlen)) < 0)
        goto out;
    if ((rc = tok_init(&tok, model_manifest(m), err, errlen)) < 0)
        goto out;
    struct sampler_opts so = { .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
                               .repeat_penalty = 1.0f, .repeat_last_n = 0, .seed = seed };
    smp = sampler_init(&so, hp->n_vocab);
    if (!smp) {
        rc = errmsg_set(err, errlen, -ENOMEM, "calib: out of memory");
        goto out;
    }
    engine_set_act_hook(e, calib_hook, c);
    const int32_t start = tok_wants_bos(tok) ? tok_bos(tok) : tok_eos(tok);
    while (c->n_tokens < n_tokens) {
        session_reset(s);
        int32_t t = start;
        for (int i = 0; i < n_ctx && c->n_tokens < n_tokens; i++) {
            if ((rc = session_eval(s, &t, 1, logits, false)) < 0) {
                rc = errmsg_set(err, errlen, rc, "calib: %s", session_error(s));
                goto out;
            }
            c->n_tokens++;
            t = sampler_sample(smp, logits);
        }
    }
    engine_set_act_hook(e, NULL, NULL);
    rc = 0;
out:
    free(logits);
    if (smp)
        sampler_free(smp);
    if (tok)
        tok_free(tok);
    if (s)
        session_free(s);
    if (e)
        engine_close(e);
    model_close(m);
    if (rc < 0)
        split_calib_free(c);
    return rc;
}

const float *split_calib_block(const struct split_calib *c, int layer, int expert, int kind, int g, int dim)
{
    if (!c->cov || layer < 0 || layer >= c->n_layer || expert < 0 || expert >= c->n_expert ||
        dim != (kind ? c->n_ff : c->n_embd) || g < 0 || g >= dim / G)
        return NULL;
    double ws = c->wsum[((size_t)layer * c->n_expert + expert) * 2 + kind];
    if (ws <= 0)
        return NULL;
    return calib_at(c, layer, expert, kind, g);
}

void split_calib_free(struct split_calib *c)
{
    free(c->cov);
    free(c->wsum);
    free(c->rows);
    memset(c, 0, sizeof(*c));
}
