/*
 * splitfmt.h - the on-disk layout of a split model (format versions 1 and 2).
 * Included by the writer (split-tool/) and by the runtime (src/, io/).
 *
 * A split model is a directory:
 *
 *   DIR/manifest.gguf     GGUF v3 without tensors. Holds every metadata KV of
 *                         the source model (architecture hyper-parameters,
 *                         tokenizer, chat template) except general.alignment
 *                         and split.*, plus the moestream.* keys below.
 *   DIR/pinned.bin        every non-expert tensor (embeddings, attention,
 *                         norms, routers, shared experts, output), raw source
 *                         bytes, each starting at a multiple of
 *                         SPLIT_PINNED_ALIGN, zero padding between.
 *   DIR/experts-LLL.bin   one file per layer with routed experts (LLL = layer,
 *                         3+ digits, zero padded). Expert e of the layer is one
 *                         blob at e * blob_size, blob_size a multiple of
 *                         SPLIT_BLOB_ALIGN. Inside a blob the expert's slices of
 *                         the stacked tensors ("parts": ffn_gate_exps.weight,
 *                         ffn_up_exps.weight, ffn_down_exps.weight, or
 *                         ffn_gate_up_exps.weight, and any per-expert biases or
 *                         scales) lie back to back in manifest order, each part
 *                         at a multiple of SPLIT_PART_ALIGN, zero padding to
 *                         blob_size. One aligned read fetches one whole expert.
 *
 *   DIR/manifest.xxh3     one line "xxh3 <16 hex digits>\n": XXH3_64bits of the
 *                         bytes of manifest.gguf (the manifest cannot hold its
 *                         own checksum). split_open refuses a manifest that does
 *                         not match. Splits made before this file existed have
 *                         none: they are still read (split_model.manifest_checked
 *                         is false; the runtime and `verify` say so and suggest
 *                         re-splitting). Same format_version: adding it breaks
 *                         no reader.
 *
 * Striped splits (format version 2, `moestream-split --stripe D1,D2,..`): the
 * expert blobs are spread over n >= 2 stripe directories, usually on separate
 * drives, so one step's reads go to every drive at once. Stripe s of layer L
 * is the file STRIPE_s/experts-LLL.bin holding the experts e with
 * e % n == s, expert e at (e / n) * blob_size (so n_expert >= n). DIR keeps
 * manifest.gguf, manifest.xxh3 and pinned.bin, and no experts file unless
 * one stripe directory is DIR itself ("."). The writer puts stripe s in
 * D_s/<basename of DIR>/ (renamed from <basename>.tmp-<pid> like DIR).
 *   moestream.stripe.dirs        [str]  n >= 2 stripe directories, each a
 *                                       path relative to DIR ("." = DIR,
 *                                       "../../mnt/b/model"), never absolute
 * A striped manifest must have its manifest.xxh3 (the stripe paths are
 * covered by it); version 1 manifests have no stripe keys and open as
 * before. Unstriped splits are still written as version 1.
 *
 * Experts keep their source quantization unless moestream.requant says otherwise. A part's slice is the bytes of the
 * stacked tensor for index e of its last dimension (which equals n_expert).
 *
 * Manifest keys (arrays are GGUF arrays; "P" = one entry per pinned tensor):
 *   moestream.format_version     u32  = SPLIT_FORMAT_VERSION
 *   moestream.source             str  file name of the source model
 *   moestream.n_layer            u32  number of transformer layers
 *   moestream.pinned.name        [str]  P
 *   moestream.pinned.type        [u32]  P  ggml type ids
 *   moestream.pinned.n_dims      [u32]  P
 *   moestream.pinned.ne          [u64]  4 x P, unused dims 1
 *   moestream.pinned.offset      [u64]  P  byte offset in pinned.bin
 *   moestream.pinned.size        [u64]  P  bytes (unpadded)
 *   moestream.pinned.xxh3        [u64]  P  XXH3_64bits of the tensor bytes
 *   moestream.pinned.file_size   u64  size of pinned.bin
 *   For each layer L (decimal, no padding) that has routed experts:
 *   moestream.layer.L.n_expert   u32
 *   moestream.layer.L.blob_size  u64  stride between blobs (multiple of 16 KiB)
 *   moestream.layer.L.blob_bytes u64  used bytes of a blob (<= blob_size)
 *   moestream.layer.L.part.name  [str] tensor name without "blk.L." ("ffn_up_exps.weight")
 *   moestream.layer.L.part.type  [u32]
 *   moestream.layer.L.part.n_dims [u32] dims of the per-expert slice
 *   moestream.layer.L.part.ne    [u64]  4 x n_part, per-expert shape (ne[0] = row length)
 *   moestream.layer.L.part.offset [u64] byte offset inside the blob
 *   moestream.layer.L.part.size  [u64]  bytes of the slice
 *   moestream.layer.L.blob_xxh3  [u64]  n_expert, XXH3_64bits of blob_bytes bytes
 *   moestream.requant            str  optional: present when moestream-split --requant
 *                                     re-quantized the routed experts (part.type then
 *                                     names the new type, e.g. HQ2); one line saying what
 *                                     ("q2: ffn_gate/up_exps HQ2, ffn_down_exps HQ2, from Q8_0")
 *
 * Writers create DIR.tmp-<pid>, write everything, fsync, write the manifest
 * and then its checksum last, then rename to DIR: a directory without a valid manifest is not a
 * split model (stripe directories are renamed into place before DIR).
 * Readers accept format_version 1 and 2 and reject any other.
 */
#ifndef MOESTREAM_SPLITFMT_H
#define MOESTREAM_SPLITFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPLIT_FORMAT_VERSION 2        /* newest version this code reads */
#define SPLIT_FORMAT_UNSTRIPED 1      /* written for unstriped splits */
#define SPLIT_MAX_STRIPES 64
#define SPLIT_KEY_STRIPE_DIRS "moestream.stripe.dirs"
#define SPLIT_BLOB_ALIGN 16384
#define SPLIT_PINNED_ALIGN 4096
#define SPLIT_PART_ALIGN 64
#define SPLIT_MAX_PARTS 8
#define SPLIT_MANIFEST "manifest.gguf"
#define SPLIT_MANIFEST_SUM "manifest.xxh3"
#define SPLIT_PINNED "pinned.bin"
#define SPLIT_EXPERTS_FMT "experts-%03d.bin"
#define SPLIT_KEY_REQUANT "moestream.requant"

struct gguf_ctx;

struct split_tensor {
    const char *name;
    int type;              /* enum quant_type */
    uint32_t n_dims;
    int64_t ne[4];
    uint64_t offset;       /* in pinned.bin */
    uint64_t size;
    uint64_t xxh3;
    /* from_gguf only: where the bytes are in the source (part, absolute offset) */
    int src_file;
    uint64_t src_offset;
};

struct split_part {
    const char *name;      /* "ffn_down_exps.weight" */
    int type;
    uint32_t n_dims;
    int64_t ne[4];         /* per expert: ne[0] elements per row, ne[1] rows */
    uint64_t offset;       /* inside the blob */
    uint64_t size;
    /* from_gguf only: expert e's slice is at src_offset + e * size in GGUF part
     * src_file; it is read from the aligned offset below it into the blob at
     * offset, then moved down by the misalignment (split_gguf_range) */
    int src_file;
    uint64_t src_offset;
};

struct split_layer {
    int n_expert;          /* 0: no routed experts in this layer */
    int n_part;
    struct split_part parts[SPLIT_MAX_PARTS];
    uint64_t blob_size;    /* stride, multiple of SPLIT_BLOB_ALIGN */
    uint64_t blob_bytes;
    const uint64_t *blob_xxh3; /* [n_expert] */
    char path[4096];       /* DIR/experts-LLL.bin; striped: the stripe-0 file */
    /* Striped (n_stripe >= 2): stripe_path[s] holds the experts e with
     * e % n_stripe == s. 0 or 1: every expert in path. Use the helpers. */
    int n_stripe;
    char (*stripe_path)[4096];
};

/* Files of a layer (1 unless striped). */
static inline int split_layer_n_files(const struct split_layer *l)
{
    return l->n_stripe > 1 ? l->n_stripe : 1;
}
static inline const char *split_layer_file(const struct split_layer *l, int f)
{
    return l->n_stripe > 1 ? l->stripe_path[f] : l->path;
}
/* File index and byte offset of expert e's blob. */
static inline int split_expert_file(const struct split_layer *l, int e)
{
    return l->n_stripe > 1 ? e % l->n_stripe : 0;
}
static inline uint64_t split_expert_offset(const struct split_layer *l, int e)
{
    return (uint64_t)(l->n_stripe > 1 ? e / l->n_stripe : e) * l->blob_size;
}
/* Experts stored in file f of the layer. */
static inline int split_file_n_expert(const struct split_layer *l, int f)
{
    int n = split_layer_n_files(l);
    return l->n_expert > f ? (l->n_expert - f + n - 1) / n : 0;
}

struct split_model {
    struct gguf_ctx *manifest;   /* metadata KVs of the source, readable with gguf_get_* */
    char dir[4096];
    char pinned_path[4096];
    uint64_t pinned_file_size;
    int n_layer;
    struct split_layer *layers;  /* [n_layer] */
    int64_t n_tensor;
    struct split_tensor *tensors; /* [n_tensor] pinned tensors */
    int n_stripe;                /* 0: unstriped (format 1) */
    char (*stripe_dir)[4096];    /* [n_stripe] DIR joined with moestream.stripe.dirs */
    char (*stripe_paths)[4096];  /* [n_layer * n_stripe], the layers' stripe_path */
    bool manifest_checked;       /* manifest.gguf matched manifest.xxh3 (false: no
                                  * manifest.xxh3, a split made before it existed) */
    /* Opened by split_open_gguf: no split on disk. The manifest is the GGUF
     * itself; pinned tensors are read from it (offset = place in RAM), expert
     * parts from the stacked tensors, one read per part; no checksums. */
    bool from_gguf;
    int n_files;                 /* GGUF parts */
    const char **files;          /* [n_files] their paths (owned by manifest) */
};

/* Presents a GGUF file (single, or the first part of a multi-part model) as
 * a split model without writing anything: the routed-expert tensors
 * "blk.N.*_exps.*" become per-expert parts, everything else pinned. Each
 * part gets a region of the blob of round_up(size, A) + A bytes (A =
 * SPLIT_PINNED_ALIGN), enough for an aligned over-read of the slice. 0 or
 * -errno with one line in err. */
int split_open_gguf(struct split_model **out, const char *path, char *err, size_t errlen);

/* from_gguf: the aligned read of part p of expert e: file, offset, length,
 * and *shift, the bytes the slice starts after the read's start (the data
 * must be moved down by *shift to lie at the part's offset in the blob). */
void split_gguf_range(const struct split_layer *l, int p, int e, int *file, uint64_t *offset, uint64_t *len,
                      uint64_t *shift);

/* XXH3_64bits of a whole file (read in 1 MiB steps). 0 or -errno with err. */
int split_file_xxh3(const char *path, uint64_t *out, char *err, size_t errlen);
/* Writes DIR/manifest.xxh3 for DIR/manifest.gguf (fsynced). 0 or -errno. */
int split_write_manifest_sum(const char *dir, char *err, size_t errlen);

/* Opens DIR: checks the manifest's checksum (when the split has one), reads
 * and validates the manifest (version, table consistency,
 * alignment, file sizes of pinned.bin and every experts file). Does not read
 * tensor data. 0 or -errno with one line in err saying what to do. */
int split_open(struct split_model **out, const char *dir, char *err, size_t errlen);
void split_close(struct split_model *m);

const struct split_tensor *split_find_tensor(const struct split_model *m, const char *name);
/* Bytes of a tensor of type t and shape ne[0..n_dims); 0 when the row length
 * is not a multiple of the block size, a dimension is not positive or the
 * product overflows. Used for pinned tensors and per-expert parts alike. */
uint64_t split_tensor_bytes(int t, uint32_t n_dims, const int64_t *ne);
/* Part of layer L by name ("ffn_gate_exps.weight"); NULL if absent. */
const struct split_part *split_find_part(const struct split_layer *l, const char *name);

/* True when name is a routed-expert tensor of some block: "blk.N.<x>_exps.<y>"
 * (the last dimension must also equal n_expert; split_convert checks that).
 * Sets *layer to N. */
bool split_is_expert_name(const char *name, int *layer);

#endif
