/*
 * split.h - the offline splitter: GGUF MoE model in, split directory out
 * (layout in splitfmt.h), and a verifier that re-reads a split directory.
 *
 * Owns: deciding which tensors are routed-expert parts and which are pinned,
 * laying out pinned.bin and the experts-LLL.bin blobs, checksums, the
 * temp-dir-then-rename protocol, the free-space check.
 * Must not: print or exit (progress goes through the callback, errors into
 * the caller's buffer), or hold more than a bounded buffer of tensor data in
 * memory (SPLIT_IO_BUF bytes, whatever the model size).
 * Called by split_main.c (moestream-split), tests and bench/.
 */
#ifndef MOESTREAM_SPLIT_H
#define MOESTREAM_SPLIT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of tensor data buffered at once by split_convert / split_verify. */
#define SPLIT_IO_BUF (16u << 20)

/* Progress: done and total are tensor-data bytes; stage names what is being
 * written ("pinned", "layer 3", "verify layer 3", "manifest"). Called from
 * the converting thread, often (every buffer flush): rate-limit in the callback. */
typedef void (*split_progress_fn)(void *ud, uint64_t done, uint64_t total, const char *stage);

/* A per-part transform applied at split time (where requantization plugs
 * in). plan_part is asked once per routed-expert part of a layer (name as in
 * the manifest, "ffn_up_exps.weight"; ne the per-expert shape) and may set
 * *dst_type to another block type; the blob is then laid out for that type.
 * convert turns one expert's slice (src_size bytes of src_type) into
 * dst_size bytes of dst_type. Both return 0 or -errno (with err set); they
 * run on the converting thread. */
struct split_transform {
    int (*plan_part)(void *ctx, int layer, const char *name, int src_type, uint32_t n_dims, const int64_t ne[4],
                     int *dst_type, char *err, size_t errlen);
    int (*convert)(void *ctx, int layer, int expert, const char *name, int src_type, const void *src,
                   size_t src_size, int dst_type, void *dst, size_t dst_size, const int64_t ne[4], char *err,
                   size_t errlen);
    void *ctx;
};

struct split_options {
    const char *input;        /* GGUF file, or the first part of a multi-part model */
    const char *output_dir;   /* DIR; written as DIR.tmp-<pid> and renamed at the end */
    bool force;               /* replace an existing split directory at DIR */
    split_progress_fn progress; /* may be NULL */
    void *progress_ud;
    /* When non-NULL and set non-zero (e.g. from a SIGINT handler), the
     * conversion stops at the next buffer, removes the temp dir and returns
     * -ECANCELED. */
    volatile sig_atomic_t *cancel;
    /* Refuse, before writing anything, a model the runtime cannot run (an
     * unknown architecture, a missing or mis-shaped tensor, a type without
     * a kernel): src/arch.h arch_check_gguf. moestream-split sets it unless
     * --no-check. */
    bool check_runnable;
    /* Per-part transform of the routed experts; NULL copies them as they are. */
    const struct split_transform *transform;
    /* One line describing the transform, recorded in the manifest as
     * moestream.requant (split_requant.h); NULL records nothing. */
    const char *requant_note;
    /* n_stripe >= 2: spread the experts files over these directories
     * (splitfmt.h, format 2); OUT keeps the manifest and pinned.bin. */
    const char *const *stripe_dirs;
    int n_stripe;
};

/* What split_convert wrote (optional out-parameter). */
struct split_stats {
    int64_t n_pinned;         /* pinned tensors */
    int n_layer;              /* transformer layers */
    int n_expert_layers;      /* layers with routed experts */
    uint64_t pinned_bytes;    /* size of pinned.bin */
    uint64_t expert_bytes;    /* sum of experts-LLL.bin sizes */
    uint64_t data_bytes;      /* tensor bytes copied from the source */
};

/* Converts opt->input into the split directory opt->output_dir. Streams the
 * tensor data through one SPLIT_IO_BUF buffer. Refuses non-MoE models, an
 * existing DIR without force (-EEXIST), and a disk without room (-ENOSPC).
 * On any failure the temp dir is removed and DIR is untouched. 0 or -errno
 * with one line in err. stats may be NULL. Not thread-safe per output dir. */
int split_convert(const struct split_options *opt, struct split_stats *stats,
                  char *err, size_t errlen);

/* Re-reads every byte of the split directory dir: sizes and alignment
 * (through split_open), the checksum of each pinned tensor and of each expert
 * blob, and that blob padding is zero. Returns 0, -EBADMSG naming the first
 * bad tensor or blob (layer, expert, file, offset), or another -errno. */
int split_verify(const char *dir, split_progress_fn progress, void *ud,
                 char *err, size_t errlen);


#endif
