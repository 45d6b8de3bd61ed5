/*
 * engine.c - the engine: pool, provider, scratch, and engine_step, which
 * checks the rows and calls the architecture's forward pass.
 */
#include "engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "blocks.h"
#include "fwd.h"
#include "matvec.h"
#include "provider.h"
#include "quant.h"
#include "seq.h"
#include "splitfmt.h"

struct engine {
    struct fwd f;
    const struct arch_ops *arch;
};

/* The default split, measured on every logit fixture (README, "Activation
 * precision"). */
static const struct {
    const char *name;
    int bits;
} site_info[ENGINE_N_SITES] = {
    [ENGINE_SITE_ATTN] = { "attn", 16 },
    [ENGINE_SITE_ROUTER] = { "router", 16 },
    [ENGINE_SITE_EXPERT] = { "expert", 16 },
    [ENGINE_SITE_DOWN] = { "down", 8 },
    [ENGINE_SITE_SHARED] = { "shared", 16 },
    [ENGINE_SITE_OUTPUT] = { "output", 16 },
};

int engine_site_default_bits(enum engine_site s)
{
    return (unsigned)s < ENGINE_N_SITES ? site_info[s].bits : 16;
}

const char *engine_site_name(enum engine_site s)
{
    return (unsigned)s < ENGINE_N_SITES ? site_info[s].name : NULL;
}

int engine_open(struct engine **out, const struct model *m, const struct engine_opts *o, char *err, size_t errlen)
{
    const struct model_plan *pl = model_plan(m);
    const struct model_hparams *hp = model_hparams(m);
    int rc = o->isa ? quant_select_isa(o->isa) : quant_init();
    if (rc < 0) {
        snprintf(err, errlen, "engine: kernel ISA %s is not available on this CPU (use ref, avx2 or avx512)",
                 o->isa ? o->isa : getenv("MOESTREAM_ISA") ? getenv("MOESTREAM_ISA") : "?");
        return rc;
    }
    for (int i = 0; i < ENGINE_N_SITES; i++)
        if (o->act_site[i] != 0 && o->act_site[i] != 8 && o->act_site[i] != 16) {
            snprintf(err, errlen, "engine: activation precision %d of the %s products is not 8 or 16",
                     o->act_site[i], engine_site_name((enum engine_site)i));
            return -EINVAL;
        }
    struct engine *e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(err, errlen, "engine: out of memory");
        return -ENOMEM;
    }
    struct fwd *f = &e->f;
    e->arch = model_arch(m);
    f->m = m;
    for (int i = 0; i < ENGINE_N_SITES; i++) {
        int bits = o->act_site[i] ? o->act_site[i] : engine_site_default_bits((enum engine_site)i);
        f->act[i] = bits == 8 ? MATVEC_ACT8 : MATVEC_ACT16;
    }
    f->n_threads = o->n_threads > 0 ? o->n_threads : pl->n_threads;
    f->n_batch = pl->n_batch;
    f->n_ctx = pl->n_ctx;
    f->request_cap = pl->request_cap;
    f->cache_bias = o->cache_bias;
    if ((rc = prefetch_open(&f->pf, (enum prefetch_kind)o->prefetch, hp->n_layer, hp->n_expert,
                            hp->n_expert_used > 0 ? hp->n_expert_used : 1)) < 0) {
        snprintf(err, errlen, "engine: prefetch policy %s for %d experts (%d per token): %s",
                 prefetch_kind_name((enum prefetch_kind)o->prefetch), hp->n_expert, hp->n_expert_used,
                 rc == -ENOMEM ? "out of memory" : "unsupported shape");
        goto fail;
    }
    if (o->coact_path && (rc = prefetch_load(f->pf, o->coact_path, err, errlen)) < 0)
        goto fail;
    f->aq.xq_type = -1;
    f->pool = pool_init(f->n_threads);
    if (!f->pool) {
        snprintf(err, errlen, "engine: cannot start %d threads", f->n_threads);
        rc = -ENOMEM;
        goto fail;
    }
    struct provider_opts po = *model_io_opts(m);
    po.cache_bytes = pl->cache_bytes;
    po.max_active = hp->n_expert_used;
    if ((rc = provider_open(&f->prov, model_split(m), &po, err, errlen)) < 0)
        goto fail;
    size_t rows = blocks_actq_rows(hp, f->n_batch), row = blocks_actq_row_bytes(hp);
    f->aq.xq_row = row;
    f->aq.xq = aligned_alloc(64, (rows * row + 63) / 64 * 64);
    f->es.uniq = calloc((size_t)hp->n_expert, sizeof(int32_t));
    f->es.seen = calloc((size_t)hp->n_expert, sizeof(uint32_t));
    f->es.b_ids = calloc((size_t)hp->n_expert, sizeof(int32_t));
    f->es.b_blobs = calloc((size_t)hp->n_expert, sizeof(*f->es.b_blobs));
    if (!f->aq.xq || !f->es.uniq || !f->es.seen || !f->es.b_ids || !f->es.b_blobs ||
        e->arch->scratch_init(m, f->n_batch, f->n_ctx, f->n_threads, &f->scratch) < 0) {
        snprintf(err, errlen, "engine: out of memory allocating scratch for steps of %d rows", f->n_batch);
        rc = -ENOMEM;
        goto fail;
    }
    *out = e;
    return 0;
fail:
    engine_close(e);
    return rc;
}

void engine_close(struct engine *e)
{
    if (!e)
        return;
    struct fwd *f = &e->f;
    if (f->scratch)
        e->arch->scratch_free(f->scratch);
    free(f->aq.xq);
    free(f->es.uniq);
    free(f->es.seen);
    free(f->es.b_ids);
    free(f->es.b_blobs);
    prefetch_close(f->pf);
    provider_close(f->prov);
    if (f->pool)
        pool_free(f->pool);
    free(e);
}

int engine_step(struct engine *e, const struct engine_batch *b, float *logits)
{
    struct fwd *f = &e->f;
    const struct model_hparams *hp = model_hparams(f->m);
    if (b->n <= 0)
        return 0;
    if (b->n > f->n_batch) {
        snprintf(f->err, sizeof(f->err), "engine: a step of %d rows exceeds the batch size %d", b->n, f->n_batch);
        return -EINVAL;
    }
    for (int t = 0; t < b->n; t++) {
        const struct seq *s = b->seq[t];
        if (b->tok[t] < 0 || b->tok[t] >= hp->n_vocab) {
            snprintf(f->err, sizeof(f->err), "token id %d at position %d is outside the vocabulary (0..%d)",
                     b->tok[t], b->pos[t], hp->n_vocab - 1);
            return -EINVAL;
        }
        if (s->m != f->m || b->pos[t] < 0) {
            snprintf(f->err, sizeof(f->err), "engine: row %d belongs to another model or has position %d", t,
                     b->pos[t]);
            return -EINVAL;
        }
        if (b->pos[t] >= s->n_ctx) {
            snprintf(f->err, sizeof(f->err),
                     "context full: position %d does not fit in n_ctx %d (raise -c)", b->pos[t], s->n_ctx);
            return -ENOSPC;
        }
        /* a row continues its sequence: the next position, or the one after
         * an earlier row of the same sequence in this step */
        int expect = s->n_past;
        for (int u = t - 1; u >= 0; u--)
            if (b->seq[u] == s) {
                expect = b->pos[u] + 1;
                break;
            }
        if (b->pos[t] != expect) {
            snprintf(f->err, sizeof(f->err), "engine: row %d has position %d, its sequence expects %d", t, b->pos[t],
                     expect);
            return -EINVAL;
        }
    }
    double t0 = blocks_now(), wait0 = f->times.io_wait_s;
    int rc = e->arch->forward(f, b, logits);
    if (rc < 0)
        return rc;
    if (logits) {
        int rows = 0;
        for (int t = 0; t < b->n; t++)
            rows += b->out ? b->out[t] != 0 : t == b->n - 1;
        if ((rc = blocks_check_finite(f, logits, (size_t)rows * (size_t)hp->n_vocab, -1)) < 0)
            return rc;
    }
    for (int t = 0; t < b->n; t++)
        b->seq[t]->n_past = b->pos[t] + 1;
    f->times.compute_s += (blocks_now() - t0) - (f->times.io_wait_s - wait0);
    return 0;
}

static int preload_batch(void *ctx, const int32_t *ids, const uint8_t *const *blobs, int nb)
{
    (void)ctx, (void)ids, (void)blobs, (void)nb;
    return 0;
}

int engine_preload(struct engine *e, void (*progress)(uint64_t done, uint64_t total), char *err, size_t errlen)
{
    const struct split_model *sm = model_split(e->f.m);
    const struct model_plan *pl = model_plan(e->f.m);
    struct expert_stream_scratch *es = &e->f.es;
    uint64_t total = 0, done = 0;
    for (int il = 0; il < sm->n_layer; il++)
        total += (uint64_t)sm->layers[il].n_expert;
    for (int il = 0; il < sm->n_layer; il++) {
        const struct split_layer *l = &sm->layers[il];
        if (l->blob_size == 0)
            continue;
        /* stop when the cache is full: later requests would only evict */
        if ((done + (uint64_t)l->n_expert) * l->blob_size > pl->cache_bytes)
            break;
        for (int e0 = 0; e0 < l->n_expert; e0 += 64) {
            int n = l->n_expert - e0 < 64 ? l->n_expert - e0 : 64;
            for (int i = 0; i < n; i++)
                es->b_ids[i] = e0 + i;
            int n_uniq = expert_stream_union(es, es->b_ids, n);
            int rc = expert_stream_run(e->f.prov, il, es, n_uniq, 64, preload_batch, NULL, NULL, NULL);
            if (rc < 0) {
                snprintf(err, errlen, "%s", provider_error(e->f.prov));
                return rc;
            }
            done += (uint64_t)n;
            if (progress)
                progress(done, total);
        }
    }
    return 0;
}

const struct model *engine_model(const struct engine *e)
{
    return e->f.m;
}

struct prefetch *engine_prefetch(const struct engine *e)
{
    return e->f.pf;
}

struct provider *engine_provider(const struct engine *e)
{
    return e->f.prov;
}

int engine_n_batch(const struct engine *e)
{
    return e->f.n_batch;
}

const char *engine_error(const struct engine *e)
{
    return e->f.err;
}

void engine_set_route_hook(struct engine *e, engine_route_fn fn, void *ctx)
{
    e->f.route_fn = fn;
    e->f.route_ctx = ctx;
}

void engine_set_act_hook(struct engine *e, engine_act_fn fn, void *ctx)
{
    e->f.act_fn = fn;
    e->f.act_ctx = ctx;
}

void engine_get_times(const struct engine *e, struct engine_times *t)
{
    *t = e->f.times;
}
