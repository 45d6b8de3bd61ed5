/*
 * split_plan.c - the splitter's plan: which tensors are routed-expert parts
 * (stacked blk.N.*_exps.* whose last dimension is expert_count) and which are
 * pinned, where each lands in pinned.bin and in an expert's blob, and what a
 * per-part transform makes of each expert part.
 */
#include "split_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "gguf.h"
#include "qformat.h"


/* Layer index of "blk.N.*", or -1. */
static int block_of(const char *name)
{
    if (strncmp(name, "blk.", 4) != 0)
        return -1;
    char *end;
    long L = strtol(name + 4, &end, 10);
    if (end == name + 4 || *end != '.' || L < 0 || L > 100000)
        return -1;
    return (int)L;
}

/* ---- plan: which tensor goes where ---------------------------------------- */

void split_plan_free(struct plan *p)
{
    if (p->layers)
        for (int L = 0; L < p->n_layer; L++)
            free(p->layers[L].xxh);
    free(p->layers);
    free(p->pinned);
    free(p->pinned_off);
    free(p->pinned_xxh);
    memset(p, 0, sizeof(*p));
}



/* Applies tf (may be NULL) to expert part pp of layer L: asks for its type
 * and re-sizes the part for it. */
static int plan_transform(struct plan_part *pp, int L, const struct split_transform *tf, const char *in,
                          struct plan *p, char *err, size_t errlen)
{
    pp->src_size = pp->p.size;
    if (!tf || !tf->plan_part)
        return 0;
    int dst = pp->p.type;
    int rc = tf->plan_part(tf->ctx, L, pp->name, pp->p.type, pp->p.n_dims, pp->p.ne, &dst, err, errlen);
    if (rc < 0 || dst == pp->p.type)
        return rc;
    uint64_t size = split_tensor_bytes(dst, pp->p.n_dims, pp->p.ne);
    if (size == 0 || !tf->convert)
        return errmsg_set(err, errlen, -EINVAL, "split: %s: layer %d part %s: the transform's type %s does not fit "
                          "rows of %" PRId64, in, L, pp->name, qformat_name(dst), pp->p.ne[0]);
    pp->p.type = dst;
    pp->p.size = size;
    pp->transformed = true;
    if (pp->src_size > p->max_tf_src)
        p->max_tf_src = pp->src_size;
    if (size > p->max_tf_dst)
        p->max_tf_dst = size;
    return 0;
}

/* Old Mixtral GGUFs store one tensor per expert ("blk.0.ffn_gate.3.weight"). */
static bool is_per_expert_legacy(const char *name)
{
    const char *s = strstr(name, ".ffn_");
    if (!s)
        return false;
    s = strchr(s + 1, '.');
    return s && s[1] >= '0' && s[1] <= '9';
}

int split_plan_build(struct plan *p, const struct gguf_ctx *g, const char *in,
                     const struct split_transform *tf, char *err, size_t errlen)
{
    const char *arch = NULL;
    char key[160];
    uint32_t n_expert = 0, block_count = 0;
    memset(p, 0, sizeof(*p));

    if (gguf_get_str(g, "general.architecture", &arch) < 0)
        return errmsg_set(err, errlen, -EINVAL, "split: %s: no general.architecture key", in);
    snprintf(key, sizeof(key), "%s.expert_count", arch);
    int rc = gguf_get_u32(g, key, &n_expert);
    int64_t nt = gguf_n_tensors(g);
    int64_t n_exps_named = 0;
    int max_layer = -1;
    for (int64_t i = 0; i < nt; i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        int L;
        if (split_is_expert_name(t->name, &L))
            n_exps_named++;
        if (is_per_expert_legacy(t->name))
            return errmsg_set(err, errlen, -EINVAL,
                        "split: %s: tensor %s stores one expert per tensor (old Mixtral "
                        "layout); re-convert the model with a current llama.cpp "
                        "convert_hf_to_gguf.py, which stacks experts (ffn_*_exps)",
                        in, t->name);
        int b = block_of(t->name);
        if (b > max_layer)
            max_layer = b;
    }
    if (rc < 0 || n_expert == 0 || n_exps_named == 0)
        return errmsg_set(err, errlen, -EINVAL,
                    "split: %s is not a Mixture-of-Experts model (architecture %s: %s %s, "
                    "%" PRId64 " blk.N.*_exps.* tensors); moestream streams routed experts "
                    "and needs a MoE model",
                    in, arch, key, rc < 0 ? "missing" : "is 0", n_exps_named);
    snprintf(key, sizeof(key), "%s.block_count", arch);
    if (gguf_get_u32(g, key, &block_count) < 0)
        block_count = 0;
    p->n_layer = (int)block_count > max_layer + 1 ? (int)block_count : max_layer + 1;
    p->layers = calloc((size_t)p->n_layer, sizeof(*p->layers));
    p->pinned = calloc((size_t)nt, sizeof(*p->pinned));
    p->pinned_off = calloc((size_t)nt, sizeof(*p->pinned_off));
    p->pinned_xxh = calloc((size_t)nt, sizeof(*p->pinned_xxh));
    if (!p->layers || !p->pinned || !p->pinned_off || !p->pinned_xxh) {
        split_plan_free(p);
        return errmsg_set(err, errlen, -ENOMEM, "split: out of memory");
    }

    uint64_t poff = 0;
    for (int64_t i = 0; i < nt; i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        int L;
        bool expert = split_is_expert_name(t->name, &L) &&
                      t->ne[t->n_dims - 1] == (int64_t)n_expert;
        if (!expert && split_is_expert_name(t->name, &L) && strstr(t->name, ".weight"))
            rc = errmsg_set(err, errlen, -EINVAL,
                      "split: %s: tensor %s: last dimension %" PRId64
                      ", expected expert_count %u",
                      in, t->name, t->ne[t->n_dims - 1], n_expert);
        else if (!expert) {
            poff = split_round_up(poff, SPLIT_PINNED_ALIGN);
            p->pinned[p->n_pinned] = t;
            p->pinned_off[p->n_pinned++] = poff;
            poff += t->size;
            p->data_bytes += t->size;
            continue;
        } else {
            struct plan_layer *l = &p->layers[L];
            l->n_expert = (int)n_expert;
            if (l->n_part == SPLIT_MAX_PARTS)
                rc = errmsg_set(err, errlen, -EINVAL,
                          "split: %s: layer %d has more than %d per-expert tensors (%s)", in,
                          L, SPLIT_MAX_PARTS, t->name);
            else {
                struct plan_part *pp = &l->parts[l->n_part++];
                const char *rest = strchr(t->name + 4, '.') + 1;
                pp->src = t;
                snprintf(pp->name, sizeof(pp->name), "%s", rest);
                pp->p.name = pp->name;
                pp->p.type = t->type;
                pp->p.n_dims = t->n_dims > 1 ? t->n_dims - 1 : 1;
                for (int d = 0; d < 4; d++)
                    pp->p.ne[d] = 1;
                for (uint32_t d = 0; d + 1 < t->n_dims; d++)
                    pp->p.ne[d] = t->ne[d];
                pp->p.size = split_tensor_bytes(t->type, pp->p.n_dims, pp->p.ne);
                if (pp->p.size == 0 || pp->p.size * n_expert != t->size)
                    rc = errmsg_set(err, errlen, -EINVAL,
                              "split: %s: tensor %s: %" PRIu64
                              " bytes do not split into %u expert slices of %" PRIu64,
                              in, t->name, t->size, n_expert, pp->p.size);
                else if (strlen(rest) >= sizeof(pp->name))
                    rc = errmsg_set(err, errlen, -EINVAL, "split: %s: tensor name %s too long", in,
                              t->name);
                else
                    rc = plan_transform(pp, L, tf, in, p, err, errlen);
            }
        }
        if (rc < 0) {
            split_plan_free(p);
            return rc;
        }
    }
    p->pinned_file_size = split_round_up(poff, SPLIT_PINNED_ALIGN);

    for (int L = 0; L < p->n_layer; L++) {
        struct plan_layer *l = &p->layers[L];
        if (!l->n_expert)
            continue;
        uint64_t off = 0;
        for (int i = 0; i < l->n_part; i++) {
            off = split_round_up(off, SPLIT_PART_ALIGN);
            l->parts[i].p.offset = off;
            off += l->parts[i].p.size;
        }
        l->blob_bytes = off;
        l->blob_size = split_round_up(off, SPLIT_BLOB_ALIGN);
        l->xxh = calloc((size_t)l->n_expert, sizeof(*l->xxh));
        if (!l->xxh) {
            split_plan_free(p);
            return errmsg_set(err, errlen, -ENOMEM, "split: out of memory");
        }
        p->expert_bytes += l->blob_size * (uint64_t)l->n_expert;
        /* progress counts source bytes read (a transformed part reads its source slice) */
        for (int q = 0; q < l->n_part; q++)
            p->data_bytes += (l->parts[q].transformed ? l->parts[q].src_size : l->parts[q].p.size) *
                             (uint64_t)l->n_expert;
    }
    return 0;
}
