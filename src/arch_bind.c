/*
 * arch_bind.c - the binder behind arch_ops.bind: tensor lookup against a
 * split model (load) or a GGUF (the splitter's check before converting).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "gguf.h"
#include "quant.h"
#include "splitfmt.h"

/* Dry parts handed out in GGUF mode: enough for every part of every layer. */
#define BINDER_MAX_PARTS 8

struct arch_binder {
    const struct model_hparams *hp;
    const char *what;                  /* directory or file, for messages */
    /* split mode */
    const struct split_model *split;
    const uint8_t *pinned_base;
    /* GGUF mode */
    const struct gguf_ctx *g;
    struct split_part *dry;            /* [n_layer * BINDER_MAX_PARTS] */
    char *err;
    size_t errlen;
};

int arch_bind_fail(struct arch_binder *b, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(b->err, b->errlen, "model: %s: %s", b->what, msg);
    return -EINVAL;
}

const struct model_hparams *arch_binder_hparams(const struct arch_binder *b)
{
    return b->hp;
}

struct arch_binder *arch_binder_split(const struct model_hparams *hp, const struct split_model *s,
                                      const uint8_t *pinned_base, char *err, size_t errlen)
{
    struct arch_binder *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->hp = hp;
    b->what = s->dir;
    b->split = s;
    b->pinned_base = pinned_base;
    b->err = err;
    b->errlen = errlen;
    return b;
}

void arch_binder_free(struct arch_binder *b)
{
    if (!b)
        return;
    free(b->dry);
    free(b);
}

/* Type, dims and ne of a tensor in either mode; false when absent. */
static bool lookup(struct arch_binder *b, const char *name, int *type, int64_t ne[4], uint64_t *offset)
{
    if (b->split) {
        const struct split_tensor *st = split_find_tensor(b->split, name);
        if (!st)
            return false;
        *type = st->type;
        memcpy(ne, st->ne, sizeof(int64_t) * 4);
        *offset = st->offset;
        return true;
    }
    const struct gguf_tensor *t = gguf_find_tensor(b->g, name);
    if (!t)
        return false;
    *type = t->type;
    for (int d = 0; d < 4; d++)
        ne[d] = d < GGUF_MAX_DIMS ? t->ne[d] : 1;
    *offset = 0;
    return true;
}

int arch_bind_tensor(struct arch_binder *b, struct mtensor *t, const char *name, int64_t ne0, int64_t ne1,
                     bool required)
{
    int type;
    int64_t ne[4];
    uint64_t off;
    memset(t, 0, sizeof(*t));
    if (!lookup(b, name, &type, ne, &off)) {
        if (!required)
            return 0;
        return arch_bind_fail(b, "tensor %s is missing", name);
    }
    if (ne[0] != ne0 || (ne1 > 0 && ne[1] != ne1))
        return arch_bind_fail(b, "tensor %s has shape [%lld, %lld], expected [%lld, %lld]", name, (long long)ne[0],
                              (long long)ne[1], (long long)ne0, (long long)(ne1 > 0 ? ne1 : ne[1]));
    if (!quant_traits(type)->to_float) {
        arch_bind_fail(b, "tensor %s has type %s, which has no kernel yet", name, quant_traits(type)->name);
        return -ENOTSUP;
    }
    t->data = b->split ? b->pinned_base + off : NULL;
    t->type = type;
    memcpy(t->ne, ne, sizeof(t->ne));
    return 0;
}

int arch_layer_experts(struct arch_binder *b, int il)
{
    if (b->split)
        return il >= 0 && il < b->split->n_layer ? b->split->layers[il].n_expert : 0;
    /* GGUF: the last dimension of any stacked expert tensor of the layer */
    for (int64_t i = 0; i < gguf_n_tensors(b->g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(b->g, i);
        int layer;
        if (split_is_expert_name(t->name, &layer) && layer == il)
            return (int)t->ne[t->n_dims - 1];
    }
    return 0;
}

int arch_bind_part(struct arch_binder *b, int il, const struct split_part **out, const char *name, int64_t ne0,
                   int64_t ne1)
{
    const struct split_part *p = NULL;
    struct split_part tmp;
    if (b->split) {
        p = split_find_part(&b->split->layers[il], name);
    } else {
        char full[160];
        snprintf(full, sizeof(full), "blk.%d.%s", il, name);
        const struct gguf_tensor *t = gguf_find_tensor(b->g, full);
        if (t) {
            memset(&tmp, 0, sizeof(tmp));
            tmp.name = t->name;
            tmp.type = t->type;
            tmp.n_dims = t->n_dims > 1 ? t->n_dims - 1 : 1;
            for (int d = 0; d < 4; d++)
                tmp.ne[d] = d < (int)tmp.n_dims ? t->ne[d] : 1;
            p = &tmp;
        }
    }
    if (!p || p->ne[0] != ne0 || p->ne[1] != ne1 || !quant_traits(p->type)->vec_dot) {
        char got[96] = "missing";
        if (p)
            snprintf(got, sizeof(got), "%s [%lld, %lld]", quant_traits(p->type)->name, (long long)p->ne[0],
                     (long long)p->ne[1]);
        return arch_bind_fail(b, "layer %d expert part %s is %s (expected [%lld, %lld] of a type with a kernel)", il,
                              name, got, (long long)ne0, (long long)ne1);
    }
    if (!b->split) {
        /* hand out a stable dry copy (the arch keeps the pointer) */
        int slot = 0;
        struct split_part *base = b->dry + (size_t)il * BINDER_MAX_PARTS;
        while (slot < BINDER_MAX_PARTS && base[slot].name)
            slot++;
        if (slot == BINDER_MAX_PARTS)
            return arch_bind_fail(b, "layer %d binds more than %d expert parts", il, BINDER_MAX_PARTS);
        base[slot] = *p;
        p = &base[slot];
    }
    *out = p;
    return 0;
}

int arch_check_gguf(const struct gguf_ctx *g, const char *path, char *err, size_t errlen)
{
    const char *name = NULL;
    if (gguf_get_str(g, "general.architecture", &name) < 0) {
        snprintf(err, errlen, "%s: no general.architecture key: not a model file moestream can run", path);
        return -EINVAL;
    }
    const struct arch_ops *a = arch_find(name);
    if (!a) {
        snprintf(err, errlen, "%s: architecture '%s' is not supported (supported: %s); nothing was written", path,
                 name, arch_names());
        return -ENOTSUP;
    }
    struct model_hparams hp;
    memset(&hp, 0, sizeof(hp));
    snprintf(hp.arch_name, sizeof(hp.arch_name), "%s", name);
    char e2[384];
    int rc = a->read_hparams(g, &hp, e2, sizeof(e2));
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", path, e2);
        return rc;
    }
    struct arch_binder b = { .hp = &hp, .what = path, .g = g, .err = err, .errlen = errlen };
    b.dry = calloc((size_t)hp.n_layer * BINDER_MAX_PARTS, sizeof(*b.dry));
    if (!b.dry) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    void *layers = NULL;
    rc = a->bind(&b, &layers);
    if (rc == 0)
        a->unbind(layers);
    free(b.dry);
    return rc;
}
