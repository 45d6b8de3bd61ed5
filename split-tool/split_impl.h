/*
 * split_impl.h - what the splitter's three files share (not for other
 * modules): the plan (which tensor goes where, split_plan.c), written by
 * split.c and nothing else; verify (split_verify.c) reads a finished split
 * through splitfmt.h only.
 */
#ifndef MOESTREAM_SPLIT_IMPL_H
#define MOESTREAM_SPLIT_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "split.h"
#include "splitfmt.h"

struct gguf_ctx;
struct gguf_tensor;

static inline uint64_t split_round_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

struct plan_part {
    const struct gguf_tensor *src;
    char name[96];            /* without "blk.L." */
    struct split_part p;      /* per-expert shape, offset in blob, size (after any transform) */
    uint64_t src_size;        /* bytes of one expert's slice in the source */
    bool transformed;         /* p.type differs from the source: convert on write */
};

struct plan_layer {
    int n_expert;
    int n_part;
    struct plan_part parts[SPLIT_MAX_PARTS];
    uint64_t blob_size, blob_bytes;
    uint64_t *xxh;            /* [n_expert], filled while writing */
};

struct plan {
    int n_layer;
    struct plan_layer *layers;          /* [n_layer] */
    int64_t n_pinned;
    const struct gguf_tensor **pinned;  /* [n_pinned] */
    uint64_t *pinned_off;               /* [n_pinned] offset in pinned.bin */
    uint64_t *pinned_xxh;               /* [n_pinned] */
    uint64_t pinned_file_size;
    uint64_t expert_bytes;              /* all experts files */
    uint64_t data_bytes;
    uint64_t max_tf_src, max_tf_dst;    /* largest transformed slice, before and after */                /* tensor bytes copied */
};

/* Classifies every tensor of g (pinned, or a routed-expert part of a
 * layer), lays out pinned.bin and each layer's blob, applying tf (may be
 * NULL) to the expert parts. 0 or -errno with err naming the input. */
int split_plan_build(struct plan *p, const struct gguf_ctx *g, const char *in, const struct split_transform *tf,
                     char *err, size_t errlen);
void split_plan_free(struct plan *p);

#endif
