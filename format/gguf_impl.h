/*
 * gguf_impl.h - what the GGUF reader's files share (format/gguf.c parses,
 * format/gguf_get.c answers queries): the parsed context, the arena that
 * holds its strings and arrays, and the decoding of scalar values. Private
 * to format/gguf*.c; everyone else uses gguf.h.
 */
#ifndef MOESTREAM_GGUF_IMPL_H
#define MOESTREAM_GGUF_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gguf.h"
#include "ntab.h"

/* The arena: blocks that double in size up to GGUF_ARENA_BLOCK (gguf.c);
 * freed all at once with the context. */
struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

struct arena {
    struct arena_block *head;
    size_t next_cap; /* size of the next ordinary block */
};

/* One file of a (multi-part) model. */
struct gguf_part {
    char *path;
    int fd;
    uint64_t size;        /* file size, bytes */
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset; /* start of the tensor data section */
};

/* A parsed model: the keys of part 0, the tensors of every part, and the
 * name indexes of both. */
struct gguf_ctx {
    struct arena arena;
    int n_parts;
    struct gguf_part *parts;
    int64_t n_kv;
    struct gguf_kv *kv; /* of part 0 */
    struct ntab kv_tab;
    int64_t n_tensors, cap_tensors;
    struct gguf_tensor *tensors;
    struct ntab t_tab;
};

/* value types and scalar decoding (little-endian host, as gguf.c checks) */
static inline bool vt_signed(enum gguf_vtype t)
{
    return t == GGUF_VT_INT8 || t == GGUF_VT_INT16 || t == GGUF_VT_INT32 || t == GGUF_VT_INT64;
}

static inline bool vt_float(enum gguf_vtype t)
{
    return t == GGUF_VT_FLOAT32 || t == GGUF_VT_FLOAT64;
}

static inline bool vt_int(enum gguf_vtype t)
{
    return gguf_vtype_size(t) != 0 && !vt_float(t) && t != GGUF_VT_BOOL;
}

static inline void scalar_decode(enum gguf_vtype t, const void *p, struct gguf_value *v)
{
    v->type = t;
    switch (t) {
    case GGUF_VT_UINT8: case GGUF_VT_BOOL: { uint8_t x; memcpy(&x, p, 1); v->u64 = x; break; }
    case GGUF_VT_INT8: { int8_t x; memcpy(&x, p, 1); v->i64 = x; break; }
    case GGUF_VT_UINT16: { uint16_t x; memcpy(&x, p, 2); v->u64 = x; break; }
    case GGUF_VT_INT16: { int16_t x; memcpy(&x, p, 2); v->i64 = x; break; }
    case GGUF_VT_UINT32: { uint32_t x; memcpy(&x, p, 4); v->u64 = x; break; }
    case GGUF_VT_INT32: { int32_t x; memcpy(&x, p, 4); v->i64 = x; break; }
    case GGUF_VT_FLOAT32: { float x; memcpy(&x, p, 4); v->f64 = x; break; }
    case GGUF_VT_UINT64: { uint64_t x; memcpy(&x, p, 8); v->u64 = x; break; }
    case GGUF_VT_INT64: { int64_t x; memcpy(&x, p, 8); v->i64 = x; break; }
    case GGUF_VT_FLOAT64: { double x; memcpy(&x, p, 8); v->f64 = x; break; }
    default: v->u64 = 0; break;
    }
}

static inline bool value_u64(const struct gguf_value *v, uint64_t *out)
{
    if (!vt_int(v->type))
        return false;
    if (vt_signed(v->type)) {
        if (v->i64 < 0)
            return false;
        *out = (uint64_t)v->i64;
    } else {
        *out = v->u64;
    }
    return true;
}

#endif
