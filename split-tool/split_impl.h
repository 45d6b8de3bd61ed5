/*
 * split_impl.h - what the splitter's files share (not for other
 * modules): the plan (which tensor goes where, split_plan.c), written by
 * split.c and nothing else; the stripe directories (split_stripe.c) and the
 * directory helpers of split.c they use; verify (split_verify.c) reads a
 * finished split through splitfmt.h only.
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

/* ---- directories (split.c) ---- */
/* -ENOTEMPTY naming the file when dir holds anything a split directory does not. */
int split_check_ours(const char *dir, char *err, size_t errlen);
/* Removes dir and its files (only_ours: refuse as split_check_ours). */
int split_remove_dir(const char *dir, bool only_ours, char *err, size_t errlen);
/* Puts the finished tmp dir at out (replacing an existing split there). */
int split_install_dir(const char *tmp, const char *out, bool exists, char *err, size_t errlen);
int split_fsync_path(const char *path, char *err, size_t errlen);

/* ---- stripe directories (split_stripe.c) ---- */
struct split_stripe_dir {
    char real[4096];          /* the --stripe directory, canonical */
    char final[4300];         /* real/<basename of OUT> */
    char tmp[4400];           /* final.tmp-<pid>, or OUT's tmp when same */
    char rel[4096];           /* final relative to OUT, for the manifest */
    bool same;                /* the stripe directory is OUT itself */
    bool exists;              /* final existed (replaced with --force) */
    bool made;                /* tmp was created and not yet installed */
};
struct split_stripes {
    int n;                    /* 0: not striped */
    struct split_stripe_dir *dir; /* [n] */
};
/* Checks dirs[0..n) (exist, distinct, an existing D/<base> replaceable only
 * with force) and works out every path. 0 or -errno with err. */
int split_stripes_prepare(struct split_stripes *st, const char *const *dirs, int n, const char *out,
                          const char *parent, const char *tmp, bool force, char *err, size_t errlen);
/* Each stripe directory has room for its share of expert_bytes. */
int split_stripes_space(const struct split_stripes *st, uint64_t expert_bytes, char *err, size_t errlen);
int split_stripes_mkdir(struct split_stripes *st, char *err, size_t errlen);
/* Renames every stripe tmp dir to its final name (before OUT's). */
int split_stripes_install(struct split_stripes *st, char *err, size_t errlen);
/* Removes stripe tmp dirs not installed, frees. */
void split_stripes_free(struct split_stripes *st);

#endif
