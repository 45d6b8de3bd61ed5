/*
 * gguf_writer.c - streaming GGUF v3 writer: header in memory, tensor data
 * streamed through a buffer, padding, size checks and fsync at the end.
 * Errors are one line naming the output file (errmsg.h).
 */
#include "gguf_writer.h"
#include "errmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ntab.h"
#include "qformat.h"

#define GGUF_WRITE_BUF (1u << 18) /* output buffer, bytes */

struct wbuf {
    unsigned char *p;
    size_t len, cap;
};

static int wbuf_put(struct wbuf *b, const void *src, size_t n)
{
    if (n > SIZE_MAX - b->len)
        return -ENOMEM;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) {
            if (cap > SIZE_MAX / 2)
                return -ENOMEM;
            cap *= 2;
        }
        unsigned char *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

static int wbuf_u32(struct wbuf *b, uint32_t v) { return wbuf_put(b, &v, 4); }
static int wbuf_u64(struct wbuf *b, uint64_t v) { return wbuf_put(b, &v, 8); }

static int wbuf_str(struct wbuf *b, const char *s, uint64_t len)
{
    int rc = wbuf_u64(b, len);
    return rc ? rc : wbuf_put(b, s, (size_t)len);
}

struct wtensor {
    char *name;
    int type;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint64_t size, offset; /* bytes; offset relative to the data section */
};

enum wstate { W_COLLECT, W_DATA, W_DONE, W_FAILED };

struct gguf_writer {
    uint64_t alignment;
    struct wbuf meta;        /* serialized KVs */
    int64_t n_kv;
    char **keys;             /* owned copies, indexed by ntab */
    size_t n_keys, cap_keys;
    struct ntab key_tab;
    struct wtensor *t;
    int64_t n_t, cap_t;
    struct ntab t_tab;
    uint64_t data_size;      /* bytes of the data section incl. padding */
    enum wstate state;
    int fd;
    char *path;
    int64_t cur;             /* tensor receiving data */
    uint64_t cur_done;       /* bytes of it received */
    struct wbuf out;         /* output buffer */
};

struct gguf_writer *gguf_writer_init(uint64_t alignment)
{
    if (alignment == 0)
        alignment = GGUF_DEFAULT_ALIGNMENT;
    if ((alignment & (alignment - 1)) != 0 || alignment > UINT32_MAX)
        return NULL;
    struct gguf_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->alignment = alignment;
    w->fd = -1;
    if (alignment != GGUF_DEFAULT_ALIGNMENT &&
        gguf_writer_set_u32(w, "general.alignment", (uint32_t)alignment) < 0) {
        gguf_writer_free(w);
        return NULL;
    }
    return w;
}

void gguf_writer_free(struct gguf_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    free(w->path);
    free(w->meta.p);
    free(w->out.p);
    for (size_t i = 0; i < w->n_keys; i++)
        free(w->keys[i]);
    free(w->keys);
    ntab_free(&w->key_tab);
    for (int64_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->t);
    ntab_free(&w->t_tab);
    free(w);
}

/* Registers key; 0, -EEXIST, -EINVAL (wrong state) or -ENOMEM. */
static int w_key(struct gguf_writer *w, const char *key, uint64_t len)
{
    if (w->state != W_COLLECT || memchr(key, '\0', (size_t)len))
        return -EINVAL;
    if (ntab_find(&w->key_tab, key, len) >= 0)
        return -EEXIST;
    if (w->n_keys == w->cap_keys) {
        size_t cap = w->cap_keys ? w->cap_keys * 2 : 32;
        char **k = realloc(w->keys, cap * sizeof(*k));
        if (!k)
            return -ENOMEM;
        w->keys = k;
        w->cap_keys = cap;
    }
    char *copy = malloc((size_t)len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, key, (size_t)len);
    copy[len] = '\0';
    if (ntab_insert(&w->key_tab, copy, len, (int64_t)w->n_keys) < 0) {
        free(copy);
        return -ENOMEM;
    }
    w->keys[w->n_keys++] = copy;
    return 0;
}

/* general.alignment is owned by the writer: a KV for it must agree with
 * the alignment given to gguf_writer_init. 1 = already present (skip). */
static int w_alignment_key(struct gguf_writer *w, const char *key, uint64_t len,
                           const struct gguf_value *v)
{
    if (len != 17 || memcmp(key, "general.alignment", 17) != 0)
        return 0;
    if (v->type != GGUF_VT_UINT32 || v->u64 != w->alignment)
        return -EINVAL;
    return ntab_find(&w->key_tab, key, len) >= 0 ? 1 : 0;
}

static int w_value(struct wbuf *b, const struct gguf_value *v, int depth);

static int w_scalar(struct wbuf *b, const struct gguf_value *v)
{
    unsigned char buf[8];
    size_t sz = gguf_vtype_size(v->type);
    switch (v->type) {
    case GGUF_VT_UINT8: case GGUF_VT_BOOL: { uint8_t x = (uint8_t)v->u64; memcpy(buf, &x, 1); break; }
    case GGUF_VT_INT8: { int8_t x = (int8_t)v->i64; memcpy(buf, &x, 1); break; }
    case GGUF_VT_UINT16: { uint16_t x = (uint16_t)v->u64; memcpy(buf, &x, 2); break; }
    case GGUF_VT_INT16: { int16_t x = (int16_t)v->i64; memcpy(buf, &x, 2); break; }
    case GGUF_VT_UINT32: { uint32_t x = (uint32_t)v->u64; memcpy(buf, &x, 4); break; }
    case GGUF_VT_INT32: { int32_t x = (int32_t)v->i64; memcpy(buf, &x, 4); break; }
    case GGUF_VT_FLOAT32: { float x = (float)v->f64; memcpy(buf, &x, 4); break; }
    case GGUF_VT_UINT64: memcpy(buf, &v->u64, 8); break;
    case GGUF_VT_INT64: memcpy(buf, &v->i64, 8); break;
    case GGUF_VT_FLOAT64: memcpy(buf, &v->f64, 8); break;
    default: return -EINVAL;
    }
    return wbuf_put(b, buf, sz);
}

/* Payload of a value (without its type tag, which the caller wrote). */
static int w_value(struct wbuf *b, const struct gguf_value *v, int depth)
{
    if (v->type == GGUF_VT_STRING)
        return wbuf_str(b, v->str.ptr, v->str.len);
    if (v->type != GGUF_VT_ARRAY)
        return w_scalar(b, v);
    enum gguf_vtype et = v->arr.type;
    /* the same limit as the reader: arrays at depth 0..GGUF_MAX_NESTING-1 */
    if ((unsigned)et >= GGUF_VT_COUNT || depth >= GGUF_MAX_NESTING ||
        (et == GGUF_VT_ARRAY && depth + 1 >= GGUF_MAX_NESTING))
        return -EINVAL;
    if (v->arr.n && !v->arr.data)
        return -EINVAL;
    int rc = wbuf_u32(b, (uint32_t)et);
    if (!rc)
        rc = wbuf_u64(b, v->arr.n);
    if (rc)
        return rc;
    if (et == GGUF_VT_STRING) {
        const struct gguf_str *s = v->arr.data;
        for (uint64_t i = 0; i < v->arr.n && !rc; i++)
            rc = wbuf_str(b, s[i].ptr, s[i].len);
    } else if (et == GGUF_VT_ARRAY) {
        const struct gguf_value *a = v->arr.data;
        for (uint64_t i = 0; i < v->arr.n && !rc; i++)
            rc = a[i].type == GGUF_VT_ARRAY ? w_value(b, &a[i], depth + 1) : -EINVAL;
    } else {
        size_t sz = gguf_vtype_size(et);
        if (v->arr.n > SIZE_MAX / sz)
            return -ENOMEM;
        rc = wbuf_put(b, v->arr.data, (size_t)v->arr.n * sz);
    }
    return rc;
}

/* Adds one KV; the meta buffer is rolled back when serialization fails. */
static int w_kv(struct gguf_writer *w, const char *key, uint64_t klen, const struct gguf_value *v)
{
    if (!w || w->state != W_COLLECT || (unsigned)v->type >= GGUF_VT_COUNT)
        return -EINVAL;
    int rc = w_alignment_key(w, key, klen, v);
    if (rc)
        return rc > 0 ? 0 : rc;
    if (ntab_find(&w->key_tab, key, klen) >= 0)
        return -EEXIST;
    size_t mark = w->meta.len;
    rc = wbuf_str(&w->meta, key, klen);
    if (!rc)
        rc = wbuf_u32(&w->meta, (uint32_t)v->type);
    if (!rc)
        rc = w_value(&w->meta, v, 0);
    if (!rc)
        rc = w_key(w, key, klen);
    if (rc) {
        w->meta.len = mark;
        return rc;
    }
    w->n_kv++;
    return 0;
}

static int w_kv_c(struct gguf_writer *w, const char *key, const struct gguf_value *v)
{
    if (!key)
        return -EINVAL;
    return w_kv(w, key, strlen(key), v);
}

int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
    struct gguf_value x = { .type = GGUF_VT_UINT32, .u64 = v };
    return w_kv_c(w, key, &x);
}

int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v)
{
    struct gguf_value x = { .type = GGUF_VT_INT32, .i64 = v };
    return w_kv_c(w, key, &x);
}

int gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v)
{
    struct gguf_value x = { .type = GGUF_VT_UINT64, .u64 = v };
    return w_kv_c(w, key, &x);
}

int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v)
{
    struct gguf_value x = { .type = GGUF_VT_FLOAT32, .f64 = v };
    return w_kv_c(w, key, &x);
}

int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v)
{
    struct gguf_value x = { .type = GGUF_VT_BOOL, .u64 = v ? 1 : 0 };
    return w_kv_c(w, key, &x);
}

int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v)
{
    if (!v)
        return -EINVAL;
    struct gguf_value x = { .type = GGUF_VT_STRING, .str = { strlen(v), v } };
    return w_kv_c(w, key, &x);
}

int gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_vtype t, const void *data,
                        uint64_t n)
{
    if (gguf_vtype_size(t) == 0)
        return -EINVAL;
    struct gguf_value x = { .type = GGUF_VT_ARRAY };
    x.arr.type = t;
    x.arr.n = n;
    x.arr.data = data;
    return w_kv_c(w, key, &x);
}

int gguf_writer_set_arr_str(struct gguf_writer *w, const char *key, const char *const *strs, uint64_t n)
{
    if (n && !strs)
        return -EINVAL;
    if (n > SIZE_MAX / sizeof(struct gguf_str))
        return -ENOMEM;
    struct gguf_str *s = malloc(n ? (size_t)n * sizeof(*s) : 1);
    if (!s)
        return -ENOMEM;
    for (uint64_t i = 0; i < n; i++) {
        if (!strs[i]) {
            free(s);
            return -EINVAL;
        }
        s[i].ptr = strs[i];
        s[i].len = strlen(strs[i]);
    }
    struct gguf_value x = { .type = GGUF_VT_ARRAY };
    x.arr.type = GGUF_VT_STRING;
    x.arr.n = n;
    x.arr.data = s;
    int rc = w_kv_c(w, key, &x);
    free(s);
    return rc;
}

int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_kv *kv)
{
    if (!kv || !kv->key.ptr)
        return -EINVAL;
    return w_kv(w, kv->key.ptr, kv->key.len, &kv->val);
}

int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, int type, uint32_t n_dims,
                           const int64_t *ne)
{
    if (!w || w->state != W_COLLECT || !name || n_dims > GGUF_MAX_DIMS || (n_dims && !ne) ||
        !qformat_known(type) || w->n_t >= INT32_MAX)
        return -EINVAL;
    const struct qformat *tr = qformat_get(type);
    struct wtensor t = { .type = type, .n_dims = n_dims };
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        t.ne[d] = 1;
    int64_t nel = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || __builtin_mul_overflow(nel, ne[d], &nel))
            return -EINVAL;
        t.ne[d] = ne[d];
    }
    if (t.ne[0] % tr->blck_size != 0)
        return -EINVAL;
    uint64_t size = (uint64_t)(t.ne[0] / tr->blck_size);
    bool ovf = __builtin_mul_overflow(size, (uint64_t)tr->type_size, &size);
    for (int d = 1; d < GGUF_MAX_DIMS; d++)
        ovf |= __builtin_mul_overflow(size, (uint64_t)t.ne[d], &size);
    uint64_t padded = size + (w->alignment - size % w->alignment) % w->alignment;
    if (ovf || padded < size || w->data_size + padded < w->data_size)
        return -EINVAL;
    size_t len = strlen(name);
    if (ntab_find(&w->t_tab, name, len) >= 0)
        return -EINVAL;
    if (w->n_t == w->cap_t) {
        int64_t cap = w->cap_t ? w->cap_t * 2 : 64;
        struct wtensor *n = realloc(w->t, (size_t)cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        w->t = n;
        w->cap_t = cap;
    }
    t.name = strdup(name);
    if (!t.name)
        return -ENOMEM;
    t.size = size;
    t.offset = w->data_size;
    if (ntab_insert(&w->t_tab, t.name, len, w->n_t) < 0) {
        free(t.name);
        return -ENOMEM;
    }
    w->data_size += padded;
    w->t[w->n_t] = t;
    return (int)w->n_t++;
}

static int w_fail(struct gguf_writer *w, int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int w_fail(struct gguf_writer *w, int rc, char *err, size_t errlen, const char *fmt, ...)
{
    w->state = W_FAILED;
    if (err && errlen) {
        int n = snprintf(err, errlen, "gguf: %s: ", w->path ? w->path : "(writer)");
        if (n >= 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return rc;
}

static int w_flush(struct gguf_writer *w, char *err, size_t errlen)
{
    size_t done = 0;
    while (done < w->out.len) {
        ssize_t k = write(w->fd, w->out.p + done, w->out.len - done);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            return w_fail(w, -e, err, errlen, "write failed: %s", strerror(e));
        }
        done += (size_t)k;
    }
    w->out.len = 0;
    return 0;
}

static int w_out(struct gguf_writer *w, const void *p, size_t n, char *err, size_t errlen)
{
    const unsigned char *s = p;
    while (n > 0) {
        size_t room = w->out.cap - w->out.len;
        if (room == 0) {
            if (w_flush(w, err, errlen) < 0)
                return -EIO;
            continue;
        }
        size_t k = n < room ? n : room;
        memcpy(w->out.p + w->out.len, s, k);
        w->out.len += k;
        s += k;
        n -= k;
    }
    return 0;
}

static int w_zeros(struct gguf_writer *w, uint64_t n, char *err, size_t errlen)
{
    static const unsigned char zero[64];
    while (n > 0) {
        size_t k = n < sizeof(zero) ? (size_t)n : sizeof(zero);
        int rc = w_out(w, zero, k, err, errlen);
        if (rc < 0)
            return rc;
        n -= k;
    }
    return 0;
}

int gguf_writer_begin(struct gguf_writer *w, const char *path, char *err, size_t errlen)
{
    if (w->state != W_COLLECT)
        return errmsg_set(err, errlen, -EINVAL, "gguf: %s: writer already started", path);
    w->path = strdup(path);
    if (!w->path)
        return w_fail(w, -ENOMEM, err, errlen, "out of memory");
    struct wbuf h = { 0 };
    int rc = wbuf_u32(&h, GGUF_MAGIC);
    if (!rc)
        rc = wbuf_u32(&h, 3);
    if (!rc)
        rc = wbuf_u64(&h, (uint64_t)w->n_t);
    if (!rc)
        rc = wbuf_u64(&h, (uint64_t)w->n_kv);
    if (!rc)
        rc = wbuf_put(&h, w->meta.p, w->meta.len);
    for (int64_t i = 0; i < w->n_t && !rc; i++) {
        const struct wtensor *t = &w->t[i];
        rc = wbuf_str(&h, t->name, strlen(t->name));
        if (!rc)
            rc = wbuf_u32(&h, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims && !rc; d++)
            rc = wbuf_u64(&h, (uint64_t)t->ne[d]);
        if (!rc)
            rc = wbuf_u32(&h, (uint32_t)t->type);
        if (!rc)
            rc = wbuf_u64(&h, t->offset);
    }
    if (rc) {
        free(h.p);
        return w_fail(w, rc, err, errlen, "out of memory for the header");
    }
    /* small files (manifests, tests) need no big buffer */
    uint64_t total = h.len + w->alignment + w->data_size;
    w->out.cap = total < GGUF_WRITE_BUF ? (size_t)total : GGUF_WRITE_BUF;
    w->out.p = malloc(w->out.cap);
    if (!w->out.p) {
        free(h.p);
        return w_fail(w, -ENOMEM, err, errlen, "out of memory");
    }
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int e = errno;
        free(h.p);
        return w_fail(w, -e, err, errlen, "cannot create: %s", strerror(e));
    }
    w->state = W_DATA;
    uint64_t pad = (w->alignment - h.len % w->alignment) % w->alignment;
    rc = w_out(w, h.p, h.len, err, errlen);
    free(h.p);
    if (rc == 0)
        rc = w_zeros(w, pad, err, errlen);
    if (rc < 0)
        return rc;
    w->cur = 0;
    w->cur_done = 0;
    return 0;
}

int gguf_writer_write(struct gguf_writer *w, const void *data, size_t n, char *err, size_t errlen)
{
    if (w->state != W_DATA)
        return errmsg_set(err, errlen, -EINVAL, "gguf: %s: writer not accepting data", w->path ? w->path : "(writer)");
    const unsigned char *p = data;
    while (n > 0) {
        if (w->cur >= w->n_t)
            return w_fail(w, -EINVAL, err, errlen, "%zu bytes beyond the last tensor's data", n);
        const struct wtensor *t = &w->t[w->cur];
        uint64_t room = t->size - w->cur_done;
        size_t k = n < room ? n : (size_t)room;
        if (w_out(w, p, k, err, errlen) < 0)
            return -EIO;
        p += k;
        n -= k;
        w->cur_done += k;
        if (w->cur_done == t->size) {
            if (w_zeros(w, (w->alignment - t->size % w->alignment) % w->alignment, err, errlen) < 0)
                return -EIO;
            w->cur++;
            w->cur_done = 0;
        }
    }
    return 0;
}

int gguf_writer_finish(struct gguf_writer *w, char *err, size_t errlen)
{
    if (w->state != W_DATA)
        return errmsg_set(err, errlen, -EINVAL, "gguf: %s: writer not started or already failed",
                      w->path ? w->path : "(writer)");
    if (w->cur < w->n_t) {
        const struct wtensor *t = &w->t[w->cur];
        return w_fail(w, -EINVAL, err, errlen, "tensor '%s' got %" PRIu64 " of %" PRIu64 " bytes"
                      " (%" PRId64 " of %" PRId64 " tensors complete)", t->name, w->cur_done, t->size,
                      w->cur, w->n_t);
    }
    int rc = w_flush(w, err, errlen);
    if (rc < 0)
        return rc;
    if (fsync(w->fd) < 0) {
        int e = errno;
        return w_fail(w, -e, err, errlen, "fsync failed: %s", strerror(e));
    }
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) < 0) {
        int e = errno;
        return w_fail(w, -e, err, errlen, "close failed: %s", strerror(e));
    }
    w->state = W_DONE;
    return 0;
}
