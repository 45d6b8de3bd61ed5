/*
 * splitfmt_gguf.c - a GGUF file seen as a split model (split_open_gguf in
 * splitfmt.h): the table a split's manifest would hold, built in memory from
 * the GGUF's tensor list, so the runtime streams experts straight from the
 * stacked tensors. Reads no tensor data.
 */
#include "splitfmt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "gguf.h"

static uint64_t round_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

void split_gguf_range(const struct split_layer *l, int p, int e, int *file, uint64_t *offset, uint64_t *len,
                      uint64_t *shift)
{
    const struct split_part *pt = &l->parts[p];
    uint64_t at = pt->src_offset + (uint64_t)e * pt->size;
    uint64_t a0 = at / SPLIT_PINNED_ALIGN * SPLIT_PINNED_ALIGN;
    *file = pt->src_file;
    *offset = a0;
    *len = round_up(at + pt->size, SPLIT_PINNED_ALIGN) - a0;
    *shift = at - a0;
}

/* Adds expert tensor t of layer L as a part. */
static int add_part(struct split_model *m, const struct gguf_tensor *t, int L, const char *path, char *err,
                    size_t errlen)
{
    struct split_layer *l = &m->layers[L];
    int64_t n_expert = t->ne[t->n_dims - 1];
    if (n_expert < 1 || n_expert > 1 << 20)
        return errmsg_set(err, errlen, -EINVAL, "gguf: %s: expert tensor %s: its last dimension (%" PRId64
                          ") should count the experts",
                          path, t->name, n_expert);
    if (l->n_expert && l->n_expert != n_expert)
        return errmsg_set(err, errlen, -EINVAL, "gguf: %s: layer %d: %s has %" PRId64 " experts, other expert "
                          "tensors of the layer %d",
                          path, L, t->name, n_expert, l->n_expert);
    if (l->n_part == SPLIT_MAX_PARTS)
        return errmsg_set(err, errlen, -E2BIG, "gguf: %s: layer %d has more than %d expert tensors", path, L,
                          SPLIT_MAX_PARTS);
    l->n_expert = (int)n_expert;
    struct split_part *pt = &l->parts[l->n_part++];
    pt->name = strchr(t->name + 4, '.') + 1; /* after "blk.N." */
    pt->type = t->type;
    pt->n_dims = t->n_dims > 1 ? t->n_dims - 1 : 1; /* a 1-D [n_expert] tensor: one value each */
    for (int d = 0; d < 4; d++)
        pt->ne[d] = d + 1 < (int)t->n_dims ? t->ne[d] : 1;
    pt->size = split_tensor_bytes(pt->type, pt->n_dims, pt->ne);
    if (pt->size == 0 || pt->size * (uint64_t)n_expert != t->size)
        return errmsg_set(err, errlen, -EINVAL, "gguf: %s: expert tensor %s: %" PRIu64 " bytes do not split "
                          "into %" PRId64 " equal experts",
                          path, t->name, t->size, n_expert);
    pt->src_file = t->part;
    pt->src_offset = t->file_offset;
    if (l->path[0] == 0)
        snprintf(l->path, sizeof(l->path), "%s", m->files[t->part]);
    return 0;
}

int split_open_gguf(struct split_model **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    struct split_model *m = calloc(1, sizeof(*m));
    if (!m)
        return errmsg_set(err, errlen, -ENOMEM, "gguf: out of memory");
    int rc = gguf_open(&m->manifest, path, err, errlen);
    if (rc < 0) {
        free(m);
        return rc;
    }
    const struct gguf_ctx *g = m->manifest;
    m->from_gguf = true;
    m->manifest_checked = true; /* nothing to check: the GGUF is the source */
    snprintf(m->dir, sizeof(m->dir), "%s", path);
    snprintf(m->pinned_path, sizeof(m->pinned_path), "%s", path);
    m->n_files = gguf_n_parts(g);
    m->files = calloc((size_t)m->n_files, sizeof(*m->files));
    int64_t nt = gguf_n_tensors(g);
    m->tensors = calloc((size_t)(nt > 0 ? nt : 1), sizeof(*m->tensors));
    if (!m->files || !m->tensors) {
        rc = errmsg_set(err, errlen, -ENOMEM, "gguf: out of memory");
        goto fail;
    }
    for (int i = 0; i < m->n_files; i++)
        m->files[i] = gguf_part_path(g, i);

    /* layers: the architecture's block_count, else the highest block + 1 */
    int n_layer = 0;
    const char *arch = NULL;
    uint32_t bc = 0;
    char key[160];
    if (gguf_get_str(g, "general.architecture", &arch) == 0) {
        snprintf(key, sizeof(key), "%s.block_count", arch);
        if (gguf_get_u32(g, key, &bc) == 0 && bc > 0 && bc <= 100000)
            n_layer = (int)bc;
    }
    for (int64_t i = 0; i < nt; i++) {
        int L;
        if (split_is_expert_name(gguf_tensor_at(g, i)->name, &L) && L + 1 > n_layer)
            n_layer = L + 1;
    }
    if (n_layer == 0) {
        rc = errmsg_set(err, errlen, -EINVAL, "gguf: %s: no layers (no block_count, no blk.N tensors)", path);
        goto fail;
    }
    m->n_layer = n_layer;
    m->layers = calloc((size_t)n_layer, sizeof(*m->layers));
    if (!m->layers) {
        rc = errmsg_set(err, errlen, -ENOMEM, "gguf: out of memory");
        goto fail;
    }
    uint64_t pinned = 0;
    for (int64_t i = 0; i < nt; i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        int L;
        if (split_is_expert_name(t->name, &L)) {
            if ((rc = add_part(m, t, L, path, err, errlen)) < 0)
                goto fail;
            continue;
        }
        struct split_tensor *s = &m->tensors[m->n_tensor++];
        s->name = t->name;
        s->type = t->type;
        s->n_dims = t->n_dims;
        for (int d = 0; d < 4; d++)
            s->ne[d] = d < (int)t->n_dims ? t->ne[d] : 1;
        s->size = t->size;
        s->offset = pinned;
        s->src_file = t->part;
        s->src_offset = t->file_offset;
        pinned = round_up(pinned + t->size, SPLIT_PINNED_ALIGN);
    }
    m->pinned_file_size = pinned;
    bool any = false;
    for (int L = 0; L < n_layer; L++) {
        struct split_layer *l = &m->layers[L];
        uint64_t at = 0;
        for (int p = 0; p < l->n_part; p++) {
            l->parts[p].offset = at;
            at += round_up(l->parts[p].size, SPLIT_PINNED_ALIGN) + SPLIT_PINNED_ALIGN;
        }
        l->blob_bytes = at;
        l->blob_size = round_up(at, SPLIT_BLOB_ALIGN);
        any |= l->n_expert > 0;
    }
    if (!any) {
        rc = errmsg_set(err, errlen, -EINVAL, "gguf: %s: no routed-expert tensors (blk.N.*_exps.*): not a "
                        "Mixture-of-Experts model",
                        path);
        goto fail;
    }
    *out = m;
    return 0;
fail:
    split_close(m);
    return rc;
}
