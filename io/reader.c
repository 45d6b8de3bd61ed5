/*
 * reader.c - the backend-independent half of the reader: files, O_DIRECT
 * alignment, the request table, fallbacks, and the check of every
 * completion (short reads and errors retried READER_MAX_RETRY times, then a
 * failure naming file and offset). The backends only move bytes.
 * Called by io/provider.c and by tests/bench; never prints, never exits.
 */
#include "reader_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void reader_log(const struct reader *r, const char *fmt, ...)
{
    char msg[768];
    va_list ap;

    if (!r->log)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->log(msg);
}

const char *reader_backend_name(enum reader_backend b)
{
    switch (b) {
    case READER_URING: return "uring";
    case READER_PREAD: return "pread";
    case READER_BUFFERED: return "buffered";
    }
    return "?";
}

static const struct reader_ops *reader_ops_for(enum reader_backend b)
{
    switch (b) {
    case READER_URING: return &reader_uring_ops;
    case READER_PREAD: return &reader_pread_ops;
    case READER_BUFFERED: return &reader_buffered_ops;
    }
    return NULL;
}

static void reader_close_files(struct reader *r)
{
    for (int i = 0; i < r->n_files; i++) {
        if (r->fds[i] >= 0)
            close(r->fds[i]);
        r->fds[i] = -1;
    }
}

/* Opens every file; -EINVAL (nothing else) means O_DIRECT is refused. */
static int reader_open_files(struct reader *r, bool direct, char *err, size_t errlen)
{
    int flags = O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0);

    r->direct = direct;
    for (int i = 0; i < r->n_files; i++) {
        int fd;

        if (direct && r->fault && r->fault->direct_open_errno) {
            errno = r->fault->direct_open_errno;
            fd = -1;
        } else {
            fd = open(r->paths[i], flags);
        }
        if (fd < 0) {
            int e = errno;

            snprintf(err, errlen, "reader: cannot open %s%s: %s", r->paths[i],
                     direct ? " with O_DIRECT" : "", strerror(e));
            reader_close_files(r);
            return -e;
        }
        r->fds[i] = fd;
    }
    return 0;
}

/* Logical block size of the device holding fd, from sysfs; 0 if unknown. */
static size_t reader_sysfs_block_size(int fd)
{
    static const char *const fmts[] = {
        "/sys/dev/block/%u:%u/queue/logical_block_size",
        "/sys/dev/block/%u:%u/../queue/logical_block_size", /* a partition */
    };
    struct stat st;
    char path[128];

    if (fstat(fd, &st) != 0)
        return 0;
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        unsigned long v = 0;
        FILE *f;

        snprintf(path, sizeof path, fmts[i], major(st.st_dev), minor(st.st_dev));
        f = fopen(path, "re");
        if (!f)
            continue;
        if (fscanf(f, "%lu", &v) != 1)
            v = 0;
        fclose(f);
        if (v)
            return v;
    }
    return 0;
}

/* O_DIRECT alignment of the open files: statx(STATX_DIOALIGN), else the
 * device's logical block size, else 4096. -EINVAL if a file system says it
 * cannot do direct I/O at all, with err filled. */
static int reader_find_alignment(struct reader *r, char *err, size_t errlen)
{
    size_t align = 512;

    for (int i = 0; i < r->n_files; i++) {
        size_t a = 0;
#ifdef STATX_DIOALIGN
        struct statx sx;

        memset(&sx, 0, sizeof sx);
        if (statx(r->fds[i], "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
            (sx.stx_mask & STATX_DIOALIGN)) {
            if (sx.stx_dio_mem_align == 0 || sx.stx_dio_offset_align == 0) {
                snprintf(err, errlen, "reader: %s: file system reports no direct I/O support",
                         r->paths[i]);
                return -EINVAL;
            }
            a = sx.stx_dio_mem_align > sx.stx_dio_offset_align ? sx.stx_dio_mem_align
                                                              : sx.stx_dio_offset_align;
        }
#endif
        if (!a)
            a = reader_sysfs_block_size(r->fds[i]);
        if (!a)
            a = 4096;
        if (a > align)
            align = a;
    }
    r->align = align;
    return 0;
}

/* One small O_DIRECT read per file: some file systems accept the open and
 * refuse the read. -EINVAL with err filled if so. */
static int reader_probe_direct(struct reader *r, char *err, size_t errlen)
{
    void *buf;
    int rc = 0;

    if (posix_memalign(&buf, r->align > 4096 ? r->align : 4096, r->align) != 0) {
        snprintf(err, errlen, "reader: out of memory");
        return -ENOMEM;
    }
    for (int i = 0; i < r->n_files && rc == 0; i++) {
        struct stat st;

        if (fstat(r->fds[i], &st) != 0 || (uint64_t)st.st_size < r->align)
            continue;
        if (pread(r->fds[i], buf, r->align, 0) < 0) {
            int e = errno;

            snprintf(err, errlen, "reader: %s: O_DIRECT read of %zu bytes failed: %s",
                     r->paths[i], r->align, strerror(e));
            rc = e == EINVAL ? -EINVAL : -e;
        }
    }
    free(buf);
    return rc;
}

/* Opens the files for backend b (O_DIRECT unless buffered) and sets the
 * alignment. Returns -EINVAL only when direct I/O is refused. */
static int reader_prepare_files(struct reader *r, enum reader_backend b, char *err,
                                size_t errlen)
{
    int rc;

    if (b == READER_BUFFERED) {
        r->align = 1;
        return reader_open_files(r, false, err, errlen);
    }
    rc = reader_open_files(r, true, err, errlen);
    if (rc < 0)
        return rc;
    rc = reader_find_alignment(r, err, errlen);
    if (rc == 0)
        rc = reader_probe_direct(r, err, errlen);
    if (rc < 0)
        reader_close_files(r);
    return rc;
}

/* The MOESTREAM_FAULT hook: see reader.h. */
static int reader_env_fault(void *ctx, const char *path, uint64_t offset, size_t len,
                            uint8_t *dst, int res)
{
    struct reader_env_fault *f = ctx;

    if (path != f->victim_path || offset != f->victim_offset || res < 0)
        return res;
    switch (f->kind) {
    case 1:
        f->victim_path = NULL; /* once: the retry succeeds */
        return (int)(len / 2);
    case 2:
        return -EIO;           /* every attempt, like a bad sector */
    default:
        f->victim_path = NULL;
        dst[len / 2] ^= 0x01;
        return res;
    }
}

static void reader_setup_env_fault(struct reader *r)
{
    static const char *const kinds[] = {"short", "eio", "flip"};
    const char *v = getenv(READER_FAULT_ENV);
    char kind[8];
    unsigned long long nth = 0;

    if (r->fault || !v || !*v)
        return;
    if (sscanf(v, "%7[a-z]:%llu", kind, &nth) != 2 || nth == 0)
        kind[0] = 0;
    for (int k = 0; k < 3; k++) {
        if (strcmp(kind, kinds[k]) != 0)
            continue;
        r->envf.kind = k + 1;
        r->envf.nth = nth;
        r->env_fault.on_complete = reader_env_fault;
        r->env_fault.ctx = &r->envf;
        r->fault = &r->env_fault;
        reader_log(r, "reader: %s=%s: injecting a fault into read %llu (testing only)",
                   READER_FAULT_ENV, v, nth);
        return;
    }
    reader_log(r, "reader: %s=%s ignored: expected short:N, eio:N or flip:N", READER_FAULT_ENV, v);
}

int reader_open(struct reader **out, const char *const *paths, int n_paths,
                const struct reader_opts *o, char *err, size_t errlen)
{
    struct reader *r;
    enum reader_backend b;
    char why[640];
    int rc = -ENOMEM;

    *out = NULL;
    if (n_paths <= 0 || !paths) {
        snprintf(err, errlen, "reader: no files to read");
        return -EINVAL;
    }
    r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "reader: out of memory");
        return -ENOMEM;
    }
    r->n_files = n_paths;
    r->qd = o->queue_depth > 0 ? o->queue_depth : READER_DEFAULT_QD;
    if (r->qd > 4096)
        r->qd = 4096;
    r->bufs = o->bufs;
    r->n_bufs = o->bufs ? o->n_bufs : 0;
    r->progress = o->progress;
    r->log = o->log;
    r->fault = o->fault;
    reader_setup_env_fault(r);
    r->paths = calloc((size_t)n_paths, sizeof *r->paths);
    r->fds = malloc((size_t)n_paths * sizeof *r->fds);
    r->reqs = calloc((size_t)r->qd, sizeof *r->reqs);
    r->free_ids = malloc((size_t)r->qd * sizeof *r->free_ids);
    r->scratch = malloc((size_t)r->qd * sizeof *r->scratch);
    r->groups = calloc((size_t)r->qd, sizeof *r->groups);
    r->free_groups = malloc((size_t)r->qd * sizeof *r->free_groups);
    if (!r->paths || !r->fds || !r->reqs || !r->free_ids || !r->scratch || !r->groups || !r->free_groups)
        goto fail_nomem;
    for (int i = 0; i < n_paths; i++) {
        r->fds[i] = -1;
        r->paths[i] = strdup(paths[i]);
        if (!r->paths[i])
            goto fail_nomem;
    }
    for (int i = 0; i < r->qd; i++) {
        r->free_ids[i] = r->qd - 1 - i;
        r->free_groups[i] = r->qd - 1 - i;
    }
    r->n_free = r->qd;
    r->n_free_groups = r->qd;

    b = o->backend;
    rc = reader_prepare_files(r, b, why, sizeof why);
    if (rc == -EINVAL && b != READER_BUFFERED) {
        reader_log(r, "%s: falling back to buffered reads (page cache)", why);
        b = READER_BUFFERED;
        rc = reader_prepare_files(r, b, why, sizeof why);
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s", why);
        goto fail_free;
    }

    for (;;) {
        r->backend = b;
        r->ops = reader_ops_for(b);
        rc = r->ops->setup(r, why, sizeof why);
        if (rc == 0)
            break;
        if (b == READER_BUFFERED) {
            snprintf(err, errlen, "%s", why);
            goto fail_files;
        }
        /* pread -> buffered keeps O_DIRECT files: the buffered backend only
         * needs working descriptors, and aligned requests stay valid. */
        reader_log(r, "%s: falling back to %s", why,
                   b == READER_URING ? "the pread thread pool" : "synchronous reads");
        b = b == READER_URING ? READER_PREAD : READER_BUFFERED;
    }
    *out = r;
    return 0;

fail_nomem:
    snprintf(err, errlen, "reader: out of memory");
    rc = -ENOMEM;
    goto fail_free;
fail_files:
    reader_close_files(r);
fail_free:
    if (r->paths)
        for (int i = 0; i < n_paths; i++)
            free(r->paths[i]);
    free(r->paths);
    free(r->fds);
    free(r->reqs);
    free(r->free_ids);
    free(r->scratch);
    free(r->groups);
    free(r->free_groups);
    free(r);
    return rc;
}

int reader_in_flight(const struct reader *r)
{
    return r->qd - r->n_free;
}

void reader_close(struct reader *r)
{
    struct reader_completion c[16];

    if (!r)
        return;
    while (reader_in_flight(r) > 0)
        if (reader_reap(r, c, 16, true) < 0)
            break;
    r->ops->teardown(r);
    reader_close_files(r);
    for (int i = 0; i < r->n_files; i++)
        free(r->paths[i]);
    free(r->paths);
    free(r->fds);
    free(r->reqs);
    free(r->free_ids);
    free(r->scratch);
    free(r->groups);
    free(r->free_groups);
    free(r);
}

enum reader_backend reader_backend(const struct reader *r)
{
    return r->backend;
}

size_t reader_alignment(const struct reader *r)
{
    return r->align;
}

int reader_capacity(const struct reader *r)
{
    return r->qd;
}

const char *reader_error(const struct reader *r)
{
    return r->err;
}

static int reader_find_buf(const struct reader *r, const uint8_t *dst, size_t len)
{
    for (int i = 0; i < r->n_bufs; i++) {
        const uint8_t *b = r->bufs[i].iov_base;

        if (dst >= b && dst + len <= b + r->bufs[i].iov_len)
            return i;
    }
    return -1;
}

static int reader_submit_one(struct reader *r, int file, uint64_t offset, size_t len, size_t need, void *dst,
                             uint64_t tag, int group);

int reader_submit(struct reader *r, int file, uint64_t offset, size_t len, void *dst,
                  uint64_t tag)
{
    return reader_submit_one(r, file, offset, len, len, dst, tag, -1);
}

int reader_submitv(struct reader *r, const struct reader_range *rg, int n, uint64_t tag)
{
    if (n < 1)
        return -EINVAL;
    for (int i = 0; i < n; i++)
        if (rg[i].file < 0 || rg[i].file >= r->n_files || !rg[i].dst || rg[i].len == 0 || rg[i].len > INT_MAX ||
            rg[i].offset % r->align || rg[i].len % r->align || (uintptr_t)rg[i].dst % r->align)
            return -EINVAL;
    if (r->n_free < n || r->n_free_groups == 0)
        return -EBUSY;
    int gid = r->free_groups[--r->n_free_groups];
    struct reader_group *g = &r->groups[gid];
    g->tag = tag;
    g->left = n;
    g->res = 0;
    for (int i = 0; i < n; i++) {
        size_t need = rg[i].need && rg[i].need < rg[i].len ? rg[i].need : rg[i].len;
        int rc = reader_submit_one(r, rg[i].file, rg[i].offset, rg[i].len, need, rg[i].dst, tag, gid);
        if (rc < 0) {
            if (i == 0) {
                r->free_groups[r->n_free_groups++] = gid;
                return rc;
            }
            /* the started members complete the group, reporting the failure */
            g->left = i;
            g->res = rc;
            snprintf(r->err, sizeof r->err, "reader: %s: cannot start a read at offset %llu: %s",
                     r->paths[rg[i].file], (unsigned long long)rg[i].offset, strerror(-rc));
            break;
        }
    }
    return 0;
}

static int reader_submit_one(struct reader *r, int file, uint64_t offset, size_t len, size_t need, void *dst,
                             uint64_t tag, int group)
{
    struct reader_req *q;
    int id, rc;

    if (file < 0 || file >= r->n_files || !dst || len == 0 || len > INT_MAX)
        return -EINVAL;
    if (offset % r->align || len % r->align || (uintptr_t)dst % r->align)
        return -EINVAL;
    if (r->n_free == 0)
        return -EBUSY;
    id = r->free_ids[--r->n_free];
    q = &r->reqs[id];
    q->file = file;
    q->offset = offset;
    q->len = len;
    q->need = need;
    q->dst = dst;
    q->tag = tag;
    q->attempts = 1;
    q->res = 0;
    q->buf_index = reader_find_buf(r, dst, len);
    q->group = group;
    if (r->envf.kind && ++r->envf.started == r->envf.nth) {
        r->envf.victim_path = r->paths[file];
        r->envf.victim_offset = offset;
    }
    rc = r->ops->start(r, q);
    if (rc < 0)
        r->free_ids[r->n_free++] = id;
    return rc;
}

/* Frees a finished request. For a member of a group: 1 when it was the
 * last one (out then holds the group's completion), 0 otherwise. */
static int reader_put(struct reader *r, struct reader_req *q, struct reader_completion *out)
{
    r->free_ids[r->n_free++] = (int)(q - r->reqs);
    if (q->group < 0)
        return 1;
    struct reader_group *g = &r->groups[q->group];
    if (out->res < 0 && g->res == 0)
        g->res = out->res;
    if (--g->left > 0)
        return 0;
    out->tag = g->tag;
    out->res = g->res;
    r->free_groups[r->n_free_groups++] = q->group;
    return 1;
}

/* Decides about one raw completion: 1 = done (out filled), 0 = retried. */
static int reader_check(struct reader *r, struct reader_req *q, struct reader_completion *out)
{
    int res = q->res;
    char what[96];

    if (r->fault && r->fault->on_complete)
        res = r->fault->on_complete(r->fault->ctx, r->paths[q->file], q->offset, q->len,
                                    q->dst, res);
    if (res >= 0 && (size_t)res >= q->need && (size_t)res <= q->len) {
        out->tag = q->tag;
        out->res = 0;
        return reader_put(r, q, out);
    }
    if (q->attempts <= READER_MAX_RETRY && res != -EINVAL && res != -EBADF) {
        q->attempts++;
        if (r->ops->start(r, q) == 0)
            return 0;
    }
    if (res >= 0)
        snprintf(what, sizeof what, "short read: got %d bytes", res);
    else
        snprintf(what, sizeof what, "%s", strerror(-res));
    snprintf(r->err, sizeof r->err, "reader: %s: read of %zu bytes at offset %llu failed after %d attempts: %s",
             r->paths[q->file], q->len, (unsigned long long)q->offset, q->attempts, what);
    out->tag = q->tag;
    out->res = res < 0 ? res : -EIO;
    return reader_put(r, q, out);
}

int reader_reap(struct reader *r, struct reader_completion *out, int max, bool wait)
{
    int n = 0;

    while (n < max && reader_in_flight(r) > 0) {
        int room = max - n, k;

        if (room > r->qd)
            room = r->qd;
        k = r->ops->collect(r, r->scratch, room, wait && n == 0);
        if (k < 0)
            return k;
        for (int i = 0; i < k; i++)
            n += reader_check(r, r->scratch[i], &out[n]);
        if (k == 0 || !wait || n > 0)
            break;
    }
    return n;
}
