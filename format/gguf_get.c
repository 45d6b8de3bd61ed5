/*
 * gguf_get.c - queries on a parsed GGUF (gguf.h): parts, key/value lookup by
 * name, typed getters with range checks, array elements converted to the
 * caller's type, the tensor table and reading a tensor's bytes. gguf.c owns
 * the parsing.
 */
#include "gguf.h"
#include "gguf_impl.h"
#include "errmsg.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint32_t gguf_version(const struct gguf_ctx *g) { return g->parts[0].version; }
uint64_t gguf_alignment(const struct gguf_ctx *g) { return g->parts[0].alignment; }
int gguf_n_parts(const struct gguf_ctx *g) { return g->n_parts; }

const char *gguf_part_path(const struct gguf_ctx *g, int part)
{
    return part >= 0 && part < g->n_parts ? g->parts[part].path : NULL;
}

uint64_t gguf_part_size(const struct gguf_ctx *g, int part)
{
    return part >= 0 && part < g->n_parts ? g->parts[part].size : 0;
}

uint64_t gguf_part_data_offset(const struct gguf_ctx *g, int part)
{
    return part >= 0 && part < g->n_parts ? g->parts[part].data_offset : 0;
}

int gguf_part_fd(const struct gguf_ctx *g, int part)
{
    return part >= 0 && part < g->n_parts ? g->parts[part].fd : -1;
}

int64_t gguf_n_kv(const struct gguf_ctx *g) { return g->n_kv; }

const struct gguf_kv *gguf_kv_at(const struct gguf_ctx *g, int64_t i)
{
    return i >= 0 && i < g->n_kv ? &g->kv[i] : NULL;
}

const struct gguf_kv *gguf_find_kv(const struct gguf_ctx *g, const char *key)
{
    int64_t i = ntab_find(&g->kv_tab, key, strlen(key));
    return i < 0 ? NULL : &g->kv[i];
}

static int find_val(const struct gguf_ctx *g, const char *key, const struct gguf_value **v)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv)
        return -ENOENT;
    *v = &kv->val;
    return 0;
}

int gguf_get_u64(const struct gguf_ctx *g, const char *key, uint64_t *out)
{
    const struct gguf_value *v;
    int rc = find_val(g, key, &v);
    if (rc < 0)
        return rc;
    return value_u64(v, out) ? 0 : -EINVAL;
}

int gguf_get_u32(const struct gguf_ctx *g, const char *key, uint32_t *out)
{
    uint64_t x;
    int rc = gguf_get_u64(g, key, &x);
    if (rc < 0)
        return rc;
    if (x > UINT32_MAX)
        return -EINVAL;
    *out = (uint32_t)x;
    return 0;
}

int gguf_get_f32(const struct gguf_ctx *g, const char *key, float *out)
{
    const struct gguf_value *v;
    int rc = find_val(g, key, &v);
    if (rc < 0)
        return rc;
    if (!vt_float(v->type))
        return -EINVAL;
    if (isfinite(v->f64) && fabs(v->f64) > 3.4028234663852886e38)
        return -EINVAL;
    *out = (float)v->f64;
    return 0;
}

int gguf_get_bool(const struct gguf_ctx *g, const char *key, bool *out)
{
    const struct gguf_value *v;
    int rc = find_val(g, key, &v);
    if (rc < 0)
        return rc;
    if (v->type != GGUF_VT_BOOL)
        return -EINVAL;
    *out = v->u64 != 0;
    return 0;
}

int gguf_get_str(const struct gguf_ctx *g, const char *key, const char **out)
{
    const struct gguf_value *v;
    int rc = find_val(g, key, &v);
    if (rc < 0)
        return rc;
    if (v->type != GGUF_VT_STRING)
        return -EINVAL;
    *out = v->str.ptr;
    return 0;
}

int gguf_get_arr(const struct gguf_ctx *g, const char *key, enum gguf_vtype *type, uint64_t *n,
                 const void **data)
{
    const struct gguf_value *v;
    int rc = find_val(g, key, &v);
    if (rc < 0)
        return rc;
    if (v->type != GGUF_VT_ARRAY)
        return -EINVAL;
    *type = v->arr.type;
    *n = v->arr.n;
    *data = v->arr.data;
    return 0;
}

static uint64_t f64_to_u64(double d)
{
    if (!(d > 0))
        return 0;
    if (d >= 18446744073709551616.0)
        return UINT64_MAX;
    return (uint64_t)d;
}

static int64_t f64_to_i64(double d)
{
    if (d != d)
        return 0;
    if (d <= -9223372036854775808.0)
        return INT64_MIN;
    if (d >= 9223372036854775808.0)
        return INT64_MAX;
    return (int64_t)d;
}

static void arr_elem(enum gguf_vtype type, const void *data, uint64_t i, struct gguf_value *v)
{
    size_t sz = gguf_vtype_size(type);
    if (sz == 0) {
        memset(v, 0, sizeof(*v));
        v->type = type;
        return;
    }
    scalar_decode(type, (const unsigned char *)data + i * sz, v);
}

uint64_t gguf_arr_u64(enum gguf_vtype type, const void *data, uint64_t i)
{
    struct gguf_value v;
    arr_elem(type, data, i, &v);
    if (vt_float(type))
        return f64_to_u64(v.f64);
    if (vt_signed(type))
        return v.i64 < 0 ? 0 : (uint64_t)v.i64;
    return v.u64;
}

int64_t gguf_arr_i64(enum gguf_vtype type, const void *data, uint64_t i)
{
    struct gguf_value v;
    arr_elem(type, data, i, &v);
    if (vt_float(type))
        return f64_to_i64(v.f64);
    if (vt_signed(type))
        return v.i64;
    return v.u64 > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v.u64;
}

double gguf_arr_f64(enum gguf_vtype type, const void *data, uint64_t i)
{
    struct gguf_value v;
    arr_elem(type, data, i, &v);
    if (vt_float(type))
        return v.f64;
    if (vt_signed(type))
        return (double)v.i64;
    return (double)v.u64;
}

int64_t gguf_n_tensors(const struct gguf_ctx *g) { return g->n_tensors; }

const struct gguf_tensor *gguf_tensor_at(const struct gguf_ctx *g, int64_t i)
{
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_ctx *g, const char *name)
{
    int64_t i = ntab_find(&g->t_tab, name, strlen(name));
    return i < 0 ? NULL : &g->tensors[i];
}

int gguf_read_tensor(const struct gguf_ctx *g, const struct gguf_tensor *t, uint64_t off, void *buf,
                     size_t n, char *err, size_t errlen)
{
    if (t->part < 0 || t->part >= g->n_parts)
        return errmsg_set(err, errlen, -EINVAL, "gguf: tensor '%s': part %d out of range", t->name, t->part);
    const struct gguf_part *p = &g->parts[t->part];
    if (off > t->size || n > t->size - off)
        return errmsg_set(err, errlen, -EINVAL, "gguf: %s: tensor '%s': read of %zu bytes at %" PRIu64
                      " exceeds its size %" PRIu64, p->path, t->name, n, off, t->size);
    size_t done = 0;
    while (done < n) {
        uint64_t at = t->file_offset + off + done;
        ssize_t k = pread(p->fd, (char *)buf + done, n - done, (off_t)at);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            return errmsg_set(err, errlen, -e, "gguf: %s: offset %" PRIu64 ": tensor '%s': read failed: %s",
                          p->path, at, t->name, strerror(e));
        }
        if (k == 0)
            return errmsg_set(err, errlen, -EIO, "gguf: %s: offset %" PRIu64 ": tensor '%s': short read"
                          " (file truncated?)", p->path, at, t->name);
        done += (size_t)k;
    }
    return 0;
}
