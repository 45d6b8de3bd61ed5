/*
 * gguf.h - GGUF v2/v3 reader (the writer is gguf_writer.h).
 *
 * File layout (little-endian), for reference:
 *   u32 magic "GGUF" | u32 version (2 or 3) | u64 n_tensors | u64 n_kv
 *   n_kv x { string key | u32 value type | value }
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
 *   padding to general.alignment (default 32) | tensor data (offsets relative here)
 *   string = u64 len + bytes (no NUL); array = u32 elem type + u64 count + elems.
 *
 * Owns: parsing and validating the header, metadata and tensor table of one
 * model, which may be split in parts "name-00001-of-00004.gguf" (opened from
 * the first part and presented as one model: tensors carry their part).
 * Tensor data is never read into memory by gguf_open; callers read it with
 * gguf_read_tensor. Must not print or exit: errors go to the caller's buffer
 * as one line naming the file, the byte offset and what was expected.
 * Used by the splitter (split-tool/), the runtime (manifest), bench/ and tests.
 */
#ifndef MOESTREAM_GGUF_H
#define MOESTREAM_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */
#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NESTING 8 /* arrays of arrays deeper than this are rejected */
#define GGUF_DEFAULT_ALIGNMENT 32

enum gguf_vtype {
    GGUF_VT_UINT8 = 0,
    GGUF_VT_INT8 = 1,
    GGUF_VT_UINT16 = 2,
    GGUF_VT_INT16 = 3,
    GGUF_VT_UINT32 = 4,
    GGUF_VT_INT32 = 5,
    GGUF_VT_FLOAT32 = 6,
    GGUF_VT_BOOL = 7,
    GGUF_VT_STRING = 8,
    GGUF_VT_ARRAY = 9,
    GGUF_VT_UINT64 = 10,
    GGUF_VT_INT64 = 11,
    GGUF_VT_FLOAT64 = 12,
    GGUF_VT_COUNT
};

struct gguf_str {
    uint64_t len;
    const char *ptr; /* NUL-terminated copy owned by the context; may hold NULs inside */
};

struct gguf_value {
    enum gguf_vtype type;
    union {
        uint64_t u64;   /* UINT8..UINT64, BOOL (zero-extended) */
        int64_t i64;    /* INT8..INT64 (sign-extended) */
        double f64;     /* FLOAT32, FLOAT64 */
        struct gguf_str str;
        struct {
            enum gguf_vtype type;  /* element type */
            uint64_t n;            /* element count */
            /* scalars: n packed little-endian elements of their file size;
             * STRING: struct gguf_str[n]; ARRAY: struct gguf_value[n] */
            const void *data;
        } arr;
    };
};

struct gguf_kv {
    struct gguf_str key;
    struct gguf_value val;
};

struct gguf_tensor {
    const char *name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];   /* unused dims are 1 */
    int type;                    /* enum quant_type id (validated known) */
    uint64_t offset;             /* relative to its part's data section */
    uint64_t size;               /* bytes, from the block geometry */
    uint64_t file_offset;        /* absolute offset in its part file */
    int part;                    /* 0-based part index */
};

struct gguf_ctx;

/* Opens path (a single file, or the first part of a multi-part model whose
 * other parts lie beside it). Returns 0 and *out, or -errno / -EINVAL for a
 * malformed file with a message in err. */
int gguf_open(struct gguf_ctx **out, const char *path, char *err, size_t errlen);
void gguf_close(struct gguf_ctx *g);

uint32_t gguf_version(const struct gguf_ctx *g);
uint64_t gguf_alignment(const struct gguf_ctx *g);
int gguf_n_parts(const struct gguf_ctx *g);
const char *gguf_part_path(const struct gguf_ctx *g, int part);
uint64_t gguf_part_size(const struct gguf_ctx *g, int part);  /* file size in bytes */
uint64_t gguf_part_data_offset(const struct gguf_ctx *g, int part); /* where tensor data starts */

/* Metadata: KVs of the first part (split.* keys included). */
int64_t gguf_n_kv(const struct gguf_ctx *g);
const struct gguf_kv *gguf_kv_at(const struct gguf_ctx *g, int64_t i);
const struct gguf_kv *gguf_find_kv(const struct gguf_ctx *g, const char *key); /* NULL if absent */

/* Typed getters: 0 on success, -ENOENT when absent, -EINVAL when the type
 * does not fit (integers convert between widths when the value fits). */
int gguf_get_u32(const struct gguf_ctx *g, const char *key, uint32_t *out);
int gguf_get_u64(const struct gguf_ctx *g, const char *key, uint64_t *out);
int gguf_get_f32(const struct gguf_ctx *g, const char *key, float *out);
int gguf_get_bool(const struct gguf_ctx *g, const char *key, bool *out);
int gguf_get_str(const struct gguf_ctx *g, const char *key, const char **out);
/* Array getter: element type, count and data as in struct gguf_value.arr. */
int gguf_get_arr(const struct gguf_ctx *g, const char *key, enum gguf_vtype *type,
                 uint64_t *n, const void **data);
/* Element i of a scalar array as u64 / i64 / double (converted). */
uint64_t gguf_arr_u64(enum gguf_vtype type, const void *data, uint64_t i);
int64_t gguf_arr_i64(enum gguf_vtype type, const void *data, uint64_t i);
double gguf_arr_f64(enum gguf_vtype type, const void *data, uint64_t i);
size_t gguf_vtype_size(enum gguf_vtype t); /* 0 for STRING/ARRAY */
const char *gguf_vtype_name(enum gguf_vtype t);

/* Tensors of all parts, in file order. */
int64_t gguf_n_tensors(const struct gguf_ctx *g);
const struct gguf_tensor *gguf_tensor_at(const struct gguf_ctx *g, int64_t i);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_ctx *g, const char *name);

/* Reads n bytes at byte off within tensor t into buf (pread, retried on
 * EINTR and short reads). 0, or -errno / -EIO with err set. Thread-safe. */
int gguf_read_tensor(const struct gguf_ctx *g, const struct gguf_tensor *t,
                     uint64_t off, void *buf, size_t n, char *err, size_t errlen);
/* The open file descriptor of a part (owned by the context). */
int gguf_part_fd(const struct gguf_ctx *g, int part);

/* (gguf_info.c) Writes a human-readable summary to out: version, parts, every KV (long
 * arrays abbreviated to type, count and the first few elements) and every
 * tensor (name, type, shape, offset, size, part). 0, or -EIO when out fails. */
int gguf_print_info(const struct gguf_ctx *g, FILE *out);

#endif
