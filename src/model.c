/*
 * model.c - loads a split model for inference: finds its architecture,
 * reads hyper-parameters from the manifest (never hard-coded), resolves the
 * RAM budget (io/budget.h) for the engine and sequences it will serve, reads
 * the pinned weights and lets the architecture bind its tensors.
 */
#include "model.h"
#include "tier.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "arch.h"
#include "budget.h"
#include "gguf.h"
#include "pinned.h"
#include "quant.h"
#include "splitfmt.h"

struct model {
    struct split_model *split;
    struct pinned pinned;
    const struct arch_ops *arch;
    struct model_hparams hp;
    struct model_plan plan;
    struct provider_opts io;
    void *layers;           /* the architecture's */
};

int model_read_hparams(const struct split_model *s, struct model_hparams *hp, char *err, size_t errlen)
{
    const char *name = NULL;
    memset(hp, 0, sizeof(*hp));
    if (gguf_get_str(s->manifest, "general.architecture", &name) < 0) {
        snprintf(err, errlen, "model: %s: manifest has no general.architecture", s->dir);
        return -EINVAL;
    }
    const struct arch_ops *a = arch_find(name);
    if (!a) {
        snprintf(err, errlen, "model: %s: architecture '%s' is not supported yet (supported: %s)", s->dir, name,
                 arch_names());
        return -ENOTSUP;
    }
    snprintf(hp->arch_name, sizeof(hp->arch_name), "%s", name);
    char e2[384];
    int rc = a->read_hparams(s->manifest, hp, e2, sizeof(e2));
    if (rc < 0) {
        snprintf(err, errlen, "%s (%s)", e2, s->dir);
        return rc;
    }
    /* NextN/MTP blocks after the trunk are split like layers but not run */
    if (s->n_layer != hp->n_layer + hp->n_layer_nextn) {
        snprintf(err, errlen, "model: %s: manifest has %d layers, %s.block_count says %d", s->dir, s->n_layer, name,
                 hp->n_layer + hp->n_layer_nextn);
        return -EINVAL;
    }
    return 0;
}

int model_parse_size(const char *s, uint64_t *out)
{
    return budget_parse_size(s, out);
}

int model_open(struct model **out, const char *dir, const struct model_opts *o, char *err, size_t errlen)
{
    int rc;
    struct model *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "model: out of memory");
        return -ENOMEM;
    }
    struct stat st;
    bool gguf = stat(dir, &st) == 0 && S_ISREG(st.st_mode);
    if ((rc = gguf ? split_open_gguf(&m->split, dir, err, errlen) : split_open(&m->split, dir, err, errlen)))
        goto fail;
    if (gguf && o->io.log)
        o->io.log("running straight from the GGUF: a split (moestream-split MODEL.gguf -o DIR) reads each "
                  "expert in one read instead of one per tensor and checks every read against checksums");
    if (!m->split->manifest_checked && o->io.log) {
        char msg[4400];
        snprintf(msg, sizeof(msg), "%s has no " SPLIT_MANIFEST_SUM " (made by an older moestream-split): its "
                                   "manifest is not checked; re-split to add the checksum",
                 dir);
        o->io.log(msg);
    }
    if ((rc = model_read_hparams(m->split, &m->hp, err, errlen)))
        goto fail;
    if (o->moe_topk) {
        if (o->moe_topk < 1 || o->moe_topk > m->hp.n_expert_used) {
            snprintf(err, errlen, "model: %s: --moe-topk %d: expected 1..%d (the model routes each token to %d "
                     "experts)", dir, o->moe_topk, m->hp.n_expert_used, m->hp.n_expert_used);
            rc = -EINVAL;
            goto fail;
        }
        m->hp.n_expert_used = o->moe_topk;
    }
    m->hp.kv_f16 = o->kv_f16;
    m->arch = arch_find(m->hp.arch_name);
    m->io = o->io;

    uint64_t experts_total = 0, max_blob = 0;
    for (int il = 0; il < m->split->n_layer; il++) {
        const struct split_layer *l = &m->split->layers[il];
        experts_total += (uint64_t)l->n_expert * l->blob_size;
        if (l->blob_size > max_blob)
            max_blob = l->blob_size;
    }
    const struct model_hparams *hp = &m->hp;
    struct model_plan *pl = &m->plan;
    pl->n_ctx = o->n_ctx > 0 ? o->n_ctx : hp->n_ctx_train > 0 && hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    pl->n_seq = o->n_seq > 0 ? o->n_seq : 1;
    pl->n_threads = o->n_threads > 0 ? o->n_threads : 1;
    pl->n_batch = o->n_batch > 0 ? o->n_batch : 256;
    if ((int64_t)pl->n_batch > (int64_t)pl->n_ctx * pl->n_seq)
        pl->n_batch = pl->n_ctx * pl->n_seq;
    pl->state_bytes = m->arch->state_bytes(hp, pl->n_ctx);
    pl->scratch_bytes = m->arch->scratch_bytes(hp, pl->n_batch, pl->n_ctx, pl->n_threads);
    struct budget_in bi = {
        .requested = o->ram_budget,
        /* the SSD tier's staging buffers (io/tier.h) are held too */
        .fixed = m->split->pinned_file_size + (uint64_t)pl->n_seq * pl->state_bytes + pl->scratch_bytes +
                 (o->io.tier_dir ? (uint64_t)TIER_STAGING * max_blob : 0),
        .experts_total = experts_total,
        .slot_bytes = max_blob,
        .min_slots = hp->n_expert_used,
        .max_request = hp->n_expert,
        .cache_override = o->cache_bytes,
    };
    struct budget_out bo;
    if (budget_resolve(&bi, &bo) < 0) {
        if (o->cache_bytes)
            snprintf(err, errlen,
                     "model: %s: an expert cache of %llu bytes cannot hold one layer's %d active experts (%llu bytes)",
                     dir, (unsigned long long)o->cache_bytes, hp->n_expert_used,
                     (unsigned long long)(hp->n_expert_used * max_blob));
        else
            snprintf(err, errlen,
                     "model: %s: RAM budget %.2f GiB cannot hold the pinned weights (%.2f GiB), %d sequence state(s) "
                     "and scratch (%.2f GiB) and one layer's active experts (%.2f GiB): need at least --ram-budget "
                     "%.2fG",
                     dir, bo.ram_budget / 1073741824.0, m->split->pinned_file_size / 1073741824.0, pl->n_seq,
                     (bi.fixed - m->split->pinned_file_size + BUDGET_SLACK_BYTES) / 1073741824.0,
                     (double)hp->n_expert_used * max_blob / 1073741824.0, bo.need_min / 1073741824.0 + 0.01);
        rc = -ENOMEM;
        goto fail;
    }
    pl->ram_budget = bo.ram_budget;
    pl->cache_bytes = bo.cache_bytes;
    pl->request_cap = bo.request_cap;

    if ((rc = pinned_load_progress(&m->pinned, m->split, o->io.mlock, o->verify_pinned, o->io.progress, err,
                                   errlen)))
        goto fail;
    struct arch_binder *bd = arch_binder_split(&m->hp, m->split, m->pinned.base, err, errlen);
    if (!bd) {
        snprintf(err, errlen, "model: out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    rc = m->arch->bind(bd, &m->layers);
    arch_binder_free(bd);
    if (rc)
        goto fail;
    *out = m;
    return 0;
fail:
    model_close(m);
    return rc;
}

void model_close(struct model *m)
{
    if (!m)
        return;
    if (m->layers)
        m->arch->unbind(m->layers);
    if (m->pinned.base)
        pinned_free(&m->pinned);
    if (m->split)
        split_close(m->split);
    free(m);
}

const struct model_hparams *model_hparams(const struct model *m)
{
    return &m->hp;
}

const struct model_plan *model_plan(const struct model *m)
{
    return &m->plan;
}

const struct arch_ops *model_arch(const struct model *m)
{
    return m->arch;
}

const struct split_model *model_split(const struct model *m)
{
    return m->split;
}

const struct gguf_ctx *model_manifest(const struct model *m)
{
    return m->split->manifest;
}

const struct provider_opts *model_io_opts(const struct model *m)
{
    return &m->io;
}

const void *model_layers(const struct model *m)
{
    return m->layers;
}
