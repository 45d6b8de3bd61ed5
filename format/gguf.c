/*
 * gguf.c - GGUF v2/v3 reader (single or multi-part): the parser. Queries on
 * the parsed context are in gguf_get.c, the writer is gguf_writer.c.
 *
 * Owns: the header parser with its buffered reader, the string arena that
 * holds every key, string and array of a model, the tensor table with its
 * name index (format/ntab.h). Reading never loads tensor data: the header
 * region is read in buffered chunks, so a 100 GB model costs only its
 * metadata (a few MB of vocabulary) in memory.
 * Must not: print or exit (gguf_info.c prints a summary).
 * Errors are one line "gguf: FILE: offset N: what (expected, actual)"; the
 * first problem wins (sticky error).
 * Called by the splitter, the runtime (manifest), bench/ and tests.
 */
#include "gguf.h"
#include "gguf_impl.h"
#include "errmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ntab.h"
#include "qformat.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c assumes a little-endian host (GGUF files are little-endian)"
#endif

#define GGUF_READ_BUF (1u << 20)    /* header read buffer, bytes */
#define GGUF_ARENA_MIN (4u << 10)    /* first arena block, bytes; blocks double up to ... */
#define GGUF_ARENA_BLOCK (1u << 20) /* ... this (larger requests get their own block) */

/* ---------------------------------------------------------------- arena */



static void *arena_alloc(struct arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    struct arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        if (a->next_cap < GGUF_ARENA_MIN)
            a->next_cap = GGUF_ARENA_MIN;
        bool own = n > a->next_cap; /* a big string or array gets its own block */
        size_t cap = own ? n : a->next_cap;
        if (cap > SIZE_MAX - sizeof(*b))
            return NULL;
        b = malloc(sizeof(*b) + cap);
        if (!b)
            return NULL;
        b->cap = cap;
        b->used = 0;
        if (own && a->head) {
            /* behind the head, which keeps the head's free space for small strings */
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
            if (a->next_cap < GGUF_ARENA_BLOCK)
                a->next_cap *= 2;
        }
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

static void arena_free(struct arena *a)
{
    struct arena_block *b = a->head;
    while (b) {
        struct arena_block *n = b->next;
        free(b);
        b = n;
    }
    a->head = NULL;
}

/* ------------------------------------------------------------ context */



/* Buffered reader over one part with a sticky error. */
struct rd {
    int fd;
    const char *path;
    uint64_t size;
    unsigned char *buf;
    size_t cap;
    uint64_t buf_off; /* file offset of buf[0] */
    size_t buf_len;
    uint64_t pos;     /* next byte to parse */
    struct arena *arena;
    char *err;
    size_t errlen;
    int rc;
    uint64_t split_count_at, split_no_at; /* value offsets, for errors */
};


static int rd_fail(struct rd *r, int rc, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records the first error: "gguf: PATH: offset OFF: <message>". */
static int rd_fail(struct rd *r, int rc, uint64_t off, const char *fmt, ...)
{
    if (r->rc)
        return r->rc;
    r->rc = rc;
    if (r->err && r->errlen) {
        int n = snprintf(r->err, r->errlen, "gguf: %s: offset %" PRIu64 ": ", r->path, off);
        if (n >= 0 && (size_t)n < r->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return rc;
}

static uint64_t rd_left(const struct rd *r)
{
    return r->pos <= r->size ? r->size - r->pos : 0;
}

static int rd_pread(struct rd *r, void *dst, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t k = pread(r->fd, (char *)dst + done, n - done, (off_t)(off + done));
        if (k < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            return rd_fail(r, -e, off + done, "read failed: %s", strerror(e));
        }
        if (k == 0)
            return rd_fail(r, -EIO, off + done, "short read: file ended at %" PRIu64
                           " (size was %" PRIu64 " at open)", off + done, r->size);
        done += (size_t)k;
    }
    return 0;
}

/* Reads n bytes at r->pos; `what` names the field for the truncation error. */
static int rd_bytes(struct rd *r, void *dst, uint64_t n, const char *what)
{
    if (r->rc)
        return r->rc;
    if (n > rd_left(r))
        return rd_fail(r, -EINVAL, r->pos, "%s truncated: need %" PRIu64 " bytes, %" PRIu64
                       " left before end of file (size %" PRIu64 ")", what, n, rd_left(r), r->size);
    unsigned char *d = dst;
    while (n > 0) {
        if (r->pos >= r->buf_off && r->pos < r->buf_off + r->buf_len) {
            size_t at = (size_t)(r->pos - r->buf_off);
            size_t k = r->buf_len - at;
            if (k > n)
                k = (size_t)n;
            memcpy(d, r->buf + at, k);
            d += k;
            n -= k;
            r->pos += k;
        } else if (n >= r->cap) {
            /* big string or array: straight into its destination */
            if (rd_pread(r, d, (size_t)n, r->pos) < 0)
                return r->rc;
            r->pos += n;
            n = 0;
        } else {
            uint64_t want = r->size - r->pos;
            if (want > r->cap)
                want = r->cap;
            r->buf_off = r->pos;
            r->buf_len = 0;
            if (rd_pread(r, r->buf, (size_t)want, r->pos) < 0)
                return r->rc;
            r->buf_len = (size_t)want;
        }
    }
    return 0;
}

static uint32_t rd_u32(struct rd *r, const char *what)
{
    uint32_t v = 0;
    rd_bytes(r, &v, 4, what);
    return v;
}

static uint64_t rd_u64(struct rd *r, const char *what)
{
    uint64_t v = 0;
    rd_bytes(r, &v, 8, what);
    return v;
}

/* A GGUF string: u64 length + bytes, copied NUL-terminated into the arena. */
static int rd_str(struct rd *r, struct gguf_str *s, const char *what)
{
    uint64_t at = r->pos;
    uint64_t len = rd_u64(r, what);
    if (r->rc)
        return r->rc;
    if (len > rd_left(r))
        return rd_fail(r, -EINVAL, at, "%s length %" PRIu64 " runs past end of file (size %" PRIu64 ")",
                       what, len, r->size);
    char *p = arena_alloc(r->arena, (size_t)len + 1);
    if (!p)
        return rd_fail(r, -ENOMEM, at, "out of memory for a %s of %" PRIu64 " bytes", what, len);
    if (rd_bytes(r, p, len, what) < 0)
        return r->rc;
    p[len] = '\0';
    s->len = len;
    s->ptr = p;
    return 0;
}

size_t gguf_vtype_size(enum gguf_vtype t)
{
    switch (t) {
    case GGUF_VT_UINT8: case GGUF_VT_INT8: case GGUF_VT_BOOL: return 1;
    case GGUF_VT_UINT16: case GGUF_VT_INT16: return 2;
    case GGUF_VT_UINT32: case GGUF_VT_INT32: case GGUF_VT_FLOAT32: return 4;
    case GGUF_VT_UINT64: case GGUF_VT_INT64: case GGUF_VT_FLOAT64: return 8;
    default: return 0;
    }
}

const char *gguf_vtype_name(enum gguf_vtype t)
{
    static const char *const names[GGUF_VT_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64",
    };
    return (unsigned)t < GGUF_VT_COUNT ? names[t] : "unknown";
}




/* Decodes one packed scalar of type t into a gguf_value. */

/* Smallest number of file bytes one element of type t can take. */
static uint64_t vt_min_bytes(enum gguf_vtype t)
{
    if (t == GGUF_VT_STRING)
        return 8;
    if (t == GGUF_VT_ARRAY)
        return 12; /* u32 element type + u64 count */
    return gguf_vtype_size(t);
}

static int rd_value(struct rd *r, enum gguf_vtype t, struct gguf_value *v, int depth);

static int rd_array(struct rd *r, struct gguf_value *v, int depth)
{
    uint64_t at = r->pos;
    uint32_t et = rd_u32(r, "array element type");
    if (r->rc)
        return r->rc;
    if (et >= GGUF_VT_COUNT)
        return rd_fail(r, -EINVAL, at, "unknown array element type %" PRIu32 " (expected 0..%d)",
                       et, GGUF_VT_COUNT - 1);
    if (et == GGUF_VT_ARRAY && depth + 1 >= GGUF_MAX_NESTING)
        return rd_fail(r, -EINVAL, at, "arrays nested deeper than %d levels", GGUF_MAX_NESTING);
    uint64_t cat = r->pos;
    uint64_t n = rd_u64(r, "array count");
    if (r->rc)
        return r->rc;
    uint64_t minb = vt_min_bytes((enum gguf_vtype)et);
    if (n > rd_left(r) / minb)
        return rd_fail(r, -EINVAL, cat, "array count %" PRIu64 " of %s runs past end of file"
                       " (needs at least %" PRIu64 " bytes each, %" PRIu64 " left, size %" PRIu64 ")",
                       n, gguf_vtype_name((enum gguf_vtype)et), minb, rd_left(r), r->size);
    v->type = GGUF_VT_ARRAY;
    v->arr.type = (enum gguf_vtype)et;
    v->arr.n = n;
    v->arr.data = NULL;
    if (et == GGUF_VT_STRING) {
        struct gguf_str *s = arena_alloc(r->arena, (size_t)n * sizeof(*s));
        if (!s)
            return rd_fail(r, -ENOMEM, cat, "out of memory for %" PRIu64 " strings", n);
        for (uint64_t i = 0; i < n; i++)
            if (rd_str(r, &s[i], "string") < 0)
                return r->rc;
        v->arr.data = s;
    } else if (et == GGUF_VT_ARRAY) {
        struct gguf_value *a = arena_alloc(r->arena, (size_t)n * sizeof(*a));
        if (!a)
            return rd_fail(r, -ENOMEM, cat, "out of memory for %" PRIu64 " arrays", n);
        for (uint64_t i = 0; i < n; i++)
            if (rd_array(r, &a[i], depth + 1) < 0)
                return r->rc;
        v->arr.data = a;
    } else {
        void *p = arena_alloc(r->arena, (size_t)(n * minb));
        if (!p)
            return rd_fail(r, -ENOMEM, cat, "out of memory for %" PRIu64 " array elements", n);
        if (rd_bytes(r, p, n * minb, "array data") < 0)
            return r->rc;
        v->arr.data = p;
    }
    return 0;
}

static int rd_value(struct rd *r, enum gguf_vtype t, struct gguf_value *v, int depth)
{
    if (t == GGUF_VT_STRING) {
        v->type = t;
        return rd_str(r, &v->str, "string");
    }
    if (t == GGUF_VT_ARRAY)
        return rd_array(r, v, depth);
    unsigned char b[8];
    if (rd_bytes(r, b, gguf_vtype_size(t), gguf_vtype_name(t)) < 0)
        return r->rc;
    scalar_decode(t, b, v);
    return 0;
}

/* Integer value as u64 (false when not an integer or negative). */

static int ctx_add_tensor(struct gguf_ctx *g, struct gguf_tensor **t)
{
    if (g->n_tensors == g->cap_tensors) {
        int64_t cap = g->cap_tensors ? g->cap_tensors * 2 : 64;
        struct gguf_tensor *n = realloc(g->tensors, (size_t)cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        g->tensors = n;
        g->cap_tensors = cap;
    }
    *t = &g->tensors[g->n_tensors++];
    memset(*t, 0, sizeof(**t));
    return 0;
}

struct toff { uint64_t off, end; int64_t idx; };

static int toff_cmp(const void *a, const void *b)
{
    const struct toff *x = a, *y = b;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Parses part k: header, KVs (kept for part 0, else only checked), tensor
 * infos appended to g->tensors. kv/n_kv/kv_tab receive this part's KVs. */
static int parse_part(struct gguf_ctx *g, int k, struct rd *r, struct gguf_kv **kv_out,
                      int64_t *n_kv_out, struct ntab *kv_tab)
{
    struct gguf_part *p = &g->parts[k];
    uint32_t magic = rd_u32(r, "magic");
    if (r->rc)
        return r->rc;
    if (magic != GGUF_MAGIC) {
        unsigned char m[4];
        memcpy(m, &magic, 4);
        char shown[20];
        for (int i = 0; i < 4; i++)
            snprintf(shown + 2 * i, 3, "%02x", m[i]);
        return rd_fail(r, -EINVAL, 0, "bad magic %s (expected 47475546 \"GGUF\")", shown);
    }
    uint32_t ver = rd_u32(r, "version");
    if (r->rc)
        return r->rc;
    if (ver != 2 && ver != 3) {
        uint32_t sw = __builtin_bswap32(ver);
        if (sw == 2 || sw == 3)
            return rd_fail(r, -EINVAL, 4, "unsupported version %" PRIu32 " (a big-endian GGUF v%" PRIu32
                           "; expected little-endian 2 or 3)", ver, sw);
        return rd_fail(r, -EINVAL, 4, "unsupported version %" PRIu32 " (expected 2 or 3)", ver);
    }
    p->version = ver;
    uint64_t nt = rd_u64(r, "tensor count");
    uint64_t nkv_at = r->pos;
    uint64_t nkv = rd_u64(r, "kv count");
    if (r->rc)
        return r->rc;
    /* a KV takes at least 8 (key length) + 4 (type) + 1 (u8 value) bytes */
    if (nkv > rd_left(r) / 13)
        return rd_fail(r, -EINVAL, nkv_at, "kv count %" PRIu64 " runs past end of file (size %" PRIu64 ")",
                       nkv, r->size);
    /* a tensor info takes at least 8 + 4 + 4 + 8 bytes (no dims, empty name) */
    if (nt > (rd_left(r) - nkv * 13) / 24)
        return rd_fail(r, -EINVAL, 8, "tensor count %" PRIu64 " runs past end of file (size %" PRIu64 ")",
                       nt, r->size);

    struct gguf_kv *kv = calloc(nkv ? (size_t)nkv : 1, sizeof(*kv));
    if (!kv)
        return rd_fail(r, -ENOMEM, nkv_at, "out of memory for %" PRIu64 " kvs", nkv);
    *kv_out = kv;
    *n_kv_out = 0;
    p->alignment = GGUF_DEFAULT_ALIGNMENT;
    for (uint64_t i = 0; i < nkv; i++) {
        uint64_t kat = r->pos;
        if (rd_str(r, &kv[i].key, "key") < 0)
            return r->rc;
        if (memchr(kv[i].key.ptr, '\0', kv[i].key.len))
            return rd_fail(r, -EINVAL, kat, "key contains a NUL byte");
        int rc = ntab_insert(kv_tab, kv[i].key.ptr, kv[i].key.len, (int64_t)i);
        if (rc == -EEXIST)
            return rd_fail(r, -EINVAL, kat, "duplicate key '%s'", kv[i].key.ptr);
        if (rc < 0)
            return rd_fail(r, rc, kat, "out of memory");
        uint64_t tat = r->pos;
        uint32_t vt = rd_u32(r, "value type");
        if (r->rc)
            return r->rc;
        if (vt >= GGUF_VT_COUNT)
            return rd_fail(r, -EINVAL, tat, "key '%s': unknown value type %" PRIu32 " (expected 0..%d)",
                           kv[i].key.ptr, vt, GGUF_VT_COUNT - 1);
        uint64_t vat = r->pos;
        if (rd_value(r, (enum gguf_vtype)vt, &kv[i].val, 0) < 0)
            return r->rc;
        *n_kv_out = (int64_t)i + 1;
        if (strcmp(kv[i].key.ptr, "split.count") == 0)
            r->split_count_at = vat;
        else if (strcmp(kv[i].key.ptr, "split.no") == 0)
            r->split_no_at = vat;
        if (strcmp(kv[i].key.ptr, "general.alignment") == 0) {
            if (vt != GGUF_VT_UINT32)
                return rd_fail(r, -EINVAL, tat, "general.alignment has type %s (expected u32)",
                               gguf_vtype_name((enum gguf_vtype)vt));
            uint64_t a = kv[i].val.u64;
            if (a == 0 || (a & (a - 1)) != 0)
                return rd_fail(r, -EINVAL, vat, "general.alignment %" PRIu64
                               " is not a power of two", a);
            p->alignment = a;
        }
    }

    /* tensor infos */
    struct toff *offs = calloc(nt ? (size_t)nt : 1, sizeof(*offs));
    uint64_t *info_at = calloc(nt ? (size_t)nt : 1, sizeof(*info_at));
    if (!offs || !info_at) {
        free(offs);
        free(info_at);
        return rd_fail(r, -ENOMEM, r->pos, "out of memory for %" PRIu64 " tensors", nt);
    }
    int64_t first = g->n_tensors;
    for (uint64_t i = 0; i < nt && !r->rc; i++) {
        uint64_t nat = r->pos;
        struct gguf_str name;
        if (rd_str(r, &name, "tensor name") < 0)
            break;
        if (memchr(name.ptr, '\0', name.len)) {
            rd_fail(r, -EINVAL, nat, "tensor name contains a NUL byte");
            break;
        }
        struct gguf_tensor *t;
        if (ctx_add_tensor(g, &t) < 0) {
            rd_fail(r, -ENOMEM, nat, "out of memory");
            break;
        }
        t->name = name.ptr;
        t->part = k;
        int rc = ntab_insert(&g->t_tab, name.ptr, name.len, g->n_tensors - 1);
        if (rc == -EEXIST) {
            int64_t o = ntab_find(&g->t_tab, name.ptr, name.len);
            if (g->tensors[o].part != k)
                rd_fail(r, -EINVAL, nat, "duplicate tensor name '%s' (also in part %d, %s)",
                        name.ptr, g->tensors[o].part + 1, g->parts[g->tensors[o].part].path);
            else
                rd_fail(r, -EINVAL, nat, "duplicate tensor name '%s'", name.ptr);
            break;
        }
        if (rc < 0) {
            rd_fail(r, rc, nat, "out of memory");
            break;
        }
        uint64_t dat = r->pos;
        uint32_t nd = rd_u32(r, "n_dims");
        if (r->rc)
            break;
        if (nd > GGUF_MAX_DIMS) {
            rd_fail(r, -EINVAL, dat, "tensor '%s': n_dims %" PRIu32 " (expected at most %d)",
                    name.ptr, nd, GGUF_MAX_DIMS);
            break;
        }
        t->n_dims = nd;
        int64_t nel = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++)
            t->ne[d] = 1;
        for (uint32_t d = 0; d < nd && !r->rc; d++) {
            uint64_t eat = r->pos;
            uint64_t ne = rd_u64(r, "tensor dimension");
            if (r->rc)
                break;
            if (ne == 0 || ne > (uint64_t)INT64_MAX) {
                rd_fail(r, -EINVAL, eat, "tensor '%s': dimension %" PRIu32 " is %" PRId64
                        " (expected a positive count)", name.ptr, d, (int64_t)ne);
                break;
            }
            t->ne[d] = (int64_t)ne;
            if (__builtin_mul_overflow(nel, (int64_t)ne, &nel)) {
                rd_fail(r, -EINVAL, eat, "tensor '%s': element count overflows at dimension %" PRIu32
                        " (ne %" PRId64 ")", name.ptr, d, (int64_t)ne);
                break;
            }
        }
        if (r->rc)
            break;
        uint64_t tyat = r->pos;
        uint32_t ty = rd_u32(r, "tensor type");
        if (r->rc)
            break;
        if (ty >= QT_COUNT || !qformat_known((int)ty)) {
            rd_fail(r, -EINVAL, tyat, "tensor '%s': unknown type id %" PRIu32, name.ptr, ty);
            break;
        }
        t->type = (int)ty;
        const struct qformat *tr = qformat_get(t->type);
        if (t->ne[0] % tr->blck_size != 0) {
            rd_fail(r, -EINVAL, dat, "tensor '%s': ne[0] %" PRId64 " is not a multiple of the %s block"
                    " size %" PRId64, name.ptr, t->ne[0], tr->name, tr->blck_size);
            break;
        }
        uint64_t size = (uint64_t)(t->ne[0] / tr->blck_size);
        bool ovf = __builtin_mul_overflow(size, (uint64_t)tr->type_size, &size);
        for (int d = 1; d < GGUF_MAX_DIMS; d++)
            ovf |= __builtin_mul_overflow(size, (uint64_t)t->ne[d], &size);
        if (ovf) {
            rd_fail(r, -EINVAL, dat, "tensor '%s': byte size overflows 64 bits", name.ptr);
            break;
        }
        t->size = size;
        uint64_t oat = r->pos;
        t->offset = rd_u64(r, "tensor offset");
        if (r->rc)
            break;
        if (t->offset % p->alignment != 0) {
            rd_fail(r, -EINVAL, oat, "tensor '%s': data offset %" PRIu64 " is not a multiple of the"
                    " alignment %" PRIu64, name.ptr, t->offset, p->alignment);
            break;
        }
        info_at[i] = oat;
    }
    if (r->rc)
        goto out_free;

    /* data section: the header padded to the alignment */
    uint64_t end_hdr = r->pos;
    uint64_t ds = end_hdr + (p->alignment - end_hdr % p->alignment) % p->alignment;
    if (ds < end_hdr) {
        rd_fail(r, -EINVAL, end_hdr, "data section offset overflows");
        goto out_free;
    }
    p->data_offset = ds;
    for (uint64_t i = 0; i < nt; i++) {
        struct gguf_tensor *t = &g->tensors[first + (int64_t)i];
        uint64_t fo, fe;
        if (__builtin_add_overflow(ds, t->offset, &fo) || __builtin_add_overflow(fo, t->size, &fe) ||
            fe > p->size) {
            rd_fail(r, -EINVAL, info_at[i], "tensor '%s': data [%" PRIu64 ", +%" PRIu64 ") at file"
                    " offset %" PRIu64 " runs past end of file (size %" PRIu64 ")", t->name,
                    t->offset, t->size, fo, p->size);
            goto out_free;
        }
        t->file_offset = fo;
        offs[i] = (struct toff){ t->offset, t->offset + t->size, first + (int64_t)i };
    }
    qsort(offs, (size_t)nt, sizeof(*offs), toff_cmp);
    for (uint64_t i = 1; i < nt; i++) {
        if (offs[i].off < offs[i - 1].end) {
            const struct gguf_tensor *a = &g->tensors[offs[i - 1].idx];
            const struct gguf_tensor *b = &g->tensors[offs[i].idx];
            rd_fail(r, -EINVAL, info_at[offs[i].idx - first], "tensor '%s' data [%" PRIu64 ", %" PRIu64
                    ") overlaps tensor '%s' [%" PRIu64 ", %" PRIu64 ")", b->name, b->offset,
                    b->offset + b->size, a->name, a->offset, a->offset + a->size);
            goto out_free;
        }
    }
out_free:
    free(offs);
    free(info_at);
    return r->rc;
}

/* Splits "DIR/name-00001-of-00004.gguf" into prefix length, part no, count.
 * False when the name does not follow the pattern. */
static bool split_name(const char *path, size_t *prefix_len, int *no, int *count)
{
    static const char pat[] = "-NNNNN-of-NNNNN.gguf";
    size_t len = strlen(path), pl = sizeof(pat) - 1;
    if (len <= pl)
        return false;
    const char *s = path + len - pl;
    int a = 0, b = 0;
    for (size_t i = 0; i < pl; i++) {
        if (pat[i] == 'N') {
            if (s[i] < '0' || s[i] > '9')
                return false;
            if (i < 6)
                a = a * 10 + (s[i] - '0');
            else
                b = b * 10 + (s[i] - '0');
        } else if (s[i] != pat[i]) {
            return false;
        }
    }
    if (a < 1 || b < 1 || a > b)
        return false;
    *prefix_len = len - pl;
    *no = a;
    *count = b;
    return true;
}

static const struct gguf_value *kv_lookup(struct gguf_kv *kv, const struct ntab *tab, const char *key)
{
    int64_t i = ntab_find(tab, key, strlen(key));
    return i < 0 ? NULL : &kv[i].val;
}

/* Checks split.* keys of part k against the name. */
static int check_split_keys(struct rd *r, struct gguf_kv *kv, struct ntab *tab, int k, int count)
{
    const struct gguf_value *v = kv_lookup(kv, tab, "split.count");
    uint64_t x;
    if (v) {
        if (!value_u64(v, &x))
            return rd_fail(r, -EINVAL, r->split_count_at, "split.count has type %s (expected an unsigned integer)",
                           gguf_vtype_name(v->type));
        if (x != (uint64_t)count && count == 1)
            return rd_fail(r, -EINVAL, r->split_count_at, "split.count is %" PRIu64 " but the file name does not"
                           " follow name-00001-of-%05" PRIu64 ".gguf", x, x);
        if (x != (uint64_t)count)
            return rd_fail(r, -EINVAL, r->split_count_at, "split.count is %" PRIu64 " but the file name says %d parts",
                           x, count);
    }
    v = kv_lookup(kv, tab, "split.no");
    if (v) {
        if (!value_u64(v, &x))
            return rd_fail(r, -EINVAL, r->split_no_at, "split.no has type %s (expected an unsigned integer)",
                           gguf_vtype_name(v->type));
        if (x != (uint64_t)k)
            return rd_fail(r, -EINVAL, r->split_no_at, "split.no is %" PRIu64 " (expected %d for part %d of %d)",
                           x, k, k + 1, count);
    }
    return 0;
}

static int open_part(struct gguf_ctx *g, int k, int count, char *err, size_t errlen)
{
    struct gguf_part *p = &g->parts[k];
    p->fd = open(p->path, O_RDONLY | O_CLOEXEC);
    if (p->fd < 0) {
        int e = errno;
        if (count > 1)
            return errmsg_set(err, errlen, -e, "gguf: %s: cannot open part %d of %d: %s", p->path, k + 1,
                          count, strerror(e));
        return errmsg_set(err, errlen, -e, "gguf: %s: cannot open: %s", p->path, strerror(e));
    }
    struct stat st;
    if (fstat(p->fd, &st) < 0) {
        int e = errno;
        return errmsg_set(err, errlen, -e, "gguf: %s: fstat: %s", p->path, strerror(e));
    }
    if (!S_ISREG(st.st_mode))
        return errmsg_set(err, errlen, -EINVAL, "gguf: %s: not a regular file", p->path);
    p->size = (uint64_t)st.st_size;

    struct rd r = {
        .fd = p->fd, .path = p->path, .size = p->size, .arena = &g->arena, .err = err, .errlen = errlen,
    };
    r.cap = p->size < GGUF_READ_BUF ? (size_t)p->size + 1 : GGUF_READ_BUF;
    r.buf = malloc(r.cap);
    if (!r.buf)
        return errmsg_set(err, errlen, -ENOMEM, "gguf: %s: out of memory", p->path);
    struct gguf_kv *kv = NULL;
    int64_t n_kv = 0;
    struct ntab tab = { 0 };
    int rc = parse_part(g, k, &r, &kv, &n_kv, &tab);
    if (rc == 0)
        rc = check_split_keys(&r, kv, &tab, k, count);
    if (rc == 0 && k == 0) {
        g->kv = kv;
        g->n_kv = n_kv;
        g->kv_tab = tab;
        kv = NULL;
        tab = (struct ntab){ 0 };
    }
    free(kv);
    ntab_free(&tab);
    free(r.buf);
    return rc;
}

int gguf_open(struct gguf_ctx **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    size_t plen = 0;
    int no = 1, count = 1;
    if (split_name(path, &plen, &no, &count) && no != 1)
        return errmsg_set(err, errlen, -EINVAL, "gguf: %s: this is part %d of %d; open the first part"
                      " (%.*s-00001-of-%05d.gguf)", path, no, count, (int)plen, path, count);

    struct gguf_ctx *g = calloc(1, sizeof(*g));
    if (!g)
        return errmsg_set(err, errlen, -ENOMEM, "gguf: %s: out of memory", path);
    int rc;
    g->parts = calloc((size_t)count, sizeof(*g->parts));
    if (!g->parts) {
        rc = errmsg_set(err, errlen, -ENOMEM, "gguf: %s: out of memory", path);
        goto out_close;
    }
    for (int k = 0; k < count; k++)
        g->parts[k].fd = -1;
    g->n_parts = count;
    for (int k = 0; k < count; k++) {
        size_t n = strlen(path) + 1;
        g->parts[k].path = malloc(n);
        if (!g->parts[k].path) {
            rc = errmsg_set(err, errlen, -ENOMEM, "gguf: %s: out of memory", path);
            goto out_close;
        }
        if (k == 0)
            memcpy(g->parts[k].path, path, n);
        else
            snprintf(g->parts[k].path, n, "%.*s-%05d-of-%05d.gguf", (int)plen, path, k + 1, count);
    }
    rc = open_part(g, 0, count, err, errlen);
    if (rc < 0)
        goto out_close;
    for (int k = 1; k < count; k++) {
        rc = open_part(g, k, count, err, errlen);
        if (rc < 0)
            goto out_close;
    }
    const struct gguf_value *v = kv_lookup(g->kv, &g->kv_tab, "split.tensors.count");
    uint64_t x;
    if (v && value_u64(v, &x) && x != (uint64_t)g->n_tensors) {
        rc = errmsg_set(err, errlen, -EINVAL, "gguf: %s: split.tensors.count is %" PRIu64 " but the %d"
                    " part%s hold %" PRId64 " tensors", path, x, count, count == 1 ? "" : "s",
                    g->n_tensors);
        goto out_close;
    }
    *out = g;
    return 0;
out_close:
    gguf_close(g);
    return rc;
}

void gguf_close(struct gguf_ctx *g)
{
    if (!g)
        return;
    for (int k = 0; k < g->n_parts; k++) {
        if (g->parts[k].fd >= 0)
            close(g->parts[k].fd);
        free(g->parts[k].path);
    }
    free(g->parts);
    free(g->kv);
    ntab_free(&g->kv_tab);
    free(g->tensors);
    ntab_free(&g->t_tab);
    arena_free(&g->arena);
    free(g);
}
