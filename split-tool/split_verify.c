/*
 * split_verify.c - re-reads a split directory: the checksum of every pinned
 * tensor and expert blob, zero padding, and the manifest's own checksum.
 */
#include "split_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "errmsg.h"
#include "gguf.h"

/* ---- verify ------------------------------------------------------------- */

static int pread_full(int fd, void *buf, size_t n, uint64_t off, const char *path, char *err,
                      size_t errlen)
{
    size_t at = 0;
    while (at < n) {
        ssize_t r = pread(fd, (uint8_t *)buf + at, n - at, (off_t)(off + at));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            return errmsg_set(err, errlen, -e, "verify: reading %s at offset %" PRIu64 ": %s", path,
                        off + at, strerror(e));
        }
        if (r == 0)
            return errmsg_set(err, errlen, -EIO,
                        "verify: %s ends at offset %" PRIu64 ", expected %" PRIu64 " more bytes",
                        path, off + at, (uint64_t)(n - at));
        at += (size_t)r;
    }
    return 0;
}

struct vctx {
    uint8_t *buf;
    size_t cap;
    uint64_t done, total;
    split_progress_fn progress;
    void *ud;
    char stage[48];
    char *err;
    size_t errlen;
};

/* Reads [off, off + n) of fd; hashes it into h, or (h NULL) checks it is all
 * zero and returns the offset of the first non-zero byte in *bad (else
 * UINT64_MAX). */
static int verify_range(struct vctx *v, int fd, const char *path, uint64_t off, uint64_t n,
                        XXH3_state_t *h, uint64_t *bad)
{
    if (bad)
        *bad = UINT64_MAX;
    while (n) {
        size_t k = n < v->cap ? (size_t)n : v->cap;
        int rc = pread_full(fd, v->buf, k, off, path, v->err, v->errlen);
        if (rc < 0)
            return rc;
        if (h) {
            XXH3_64bits_update(h, v->buf, k);
        } else {
            for (size_t i = 0; i < k; i++)
                if (v->buf[i]) {
                    *bad = off + i;
                    return 0;
                }
        }
        off += k;
        n -= k;
        v->done += k;
        if (v->progress)
            v->progress(v->ud, v->done, v->total, v->stage);
    }
    return 0;
}

static int open_ro(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return errmsg_set(err, errlen, -e, "verify: opening %s: %s", path, strerror(e));
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return fd;
}

static int verify_pinned(struct vctx *v, const struct split_model *m, XXH3_state_t *h)
{
    int fd = open_ro(m->pinned_path, v->err, v->errlen);
    if (fd < 0)
        return fd;
    snprintf(v->stage, sizeof(v->stage), "verify pinned");
    uint64_t pos = 0, bad;
    int rc = 0;
    for (int64_t i = 0; i <= m->n_tensor && rc == 0; i++) {
        const struct split_tensor *t = i < m->n_tensor ? &m->tensors[i] : NULL;
        uint64_t next = t ? t->offset : m->pinned_file_size;
        rc = verify_range(v, fd, m->pinned_path, pos, next - pos, NULL, &bad);
        if (rc == 0 && bad != UINT64_MAX)
            rc = errmsg_set(v->err, v->errlen, -EBADMSG,
                      "verify: %s: non-zero padding byte at offset %" PRIu64 " (before %s)",
                      m->pinned_path, bad, t ? t->name : "the end of the file");
        if (rc < 0 || !t)
            break;
        XXH3_64bits_reset(h);
        rc = verify_range(v, fd, m->pinned_path, t->offset, t->size, h, NULL);
        uint64_t got = XXH3_64bits_digest(h);
        if (rc == 0 && got != t->xxh3)
            rc = errmsg_set(v->err, v->errlen, -EBADMSG,
                      "verify: pinned tensor %s: checksum %016" PRIx64
                      ", manifest says %016" PRIx64 " (%s, offset %" PRIu64 ", %" PRIu64
                      " bytes)",
                      t->name, got, t->xxh3, m->pinned_path, t->offset, t->size);
        pos = t->offset + t->size;
    }
    close(fd);
    return rc;
}

static int verify_layer(struct vctx *v, const struct split_layer *l, int L, XXH3_state_t *h)
{
    int rc = 0;
    snprintf(v->stage, sizeof(v->stage), "verify layer %d", L);
    for (int f = 0; f < split_layer_n_files(l) && rc == 0; f++) {
        const char *path = split_layer_file(l, f);
        int fd = open_ro(path, v->err, v->errlen);
        if (fd < 0)
            return fd;
        /* file f holds the experts e with e % n_files == f */
        for (int e = f; e < l->n_expert && rc == 0; e += split_layer_n_files(l)) {
            uint64_t blob = split_expert_offset(l, e), bad;
            XXH3_64bits_reset(h);
            rc = verify_range(v, fd, path, blob, l->blob_bytes, h, NULL);
            uint64_t got = XXH3_64bits_digest(h);
            if (rc == 0 && got != l->blob_xxh3[e])
                rc = errmsg_set(v->err, v->errlen, -EBADMSG,
                          "verify: layer %d expert %d: checksum %016" PRIx64
                          ", manifest says %016" PRIx64 " (%s, blob at offset %" PRIu64
                          ", %" PRIu64 " bytes)",
                          L, e, got, l->blob_xxh3[e], path, blob, l->blob_bytes);
            if (rc == 0)
                rc = verify_range(v, fd, path, blob + l->blob_bytes,
                                  l->blob_size - l->blob_bytes, NULL, &bad);
            if (rc == 0 && bad != UINT64_MAX)
                rc = errmsg_set(v->err, v->errlen, -EBADMSG,
                          "verify: layer %d expert %d: non-zero padding byte at offset %" PRIu64
                          " (%s, blob at offset %" PRIu64 ")",
                          L, e, bad, path, blob);
        }
        close(fd);
    }
    return rc;
}

int split_verify(const char *dir, split_progress_fn progress, void *ud, char *err,
                 size_t errlen)
{
    struct split_model *m;
    int rc = split_open(&m, dir, err, errlen);
    if (rc < 0)
        return rc;
    struct vctx v = {.cap = SPLIT_IO_BUF, .progress = progress, .ud = ud, .err = err,
                     .errlen = errlen};
    XXH3_state_t *h = XXH3_createState();
    v.buf = malloc(v.cap);
    if (!v.buf || !h) {
        rc = errmsg_set(err, errlen, -ENOMEM, "verify: out of memory");
        goto out;
    }
    v.total = m->pinned_file_size;
    for (int L = 0; L < m->n_layer; L++)
        v.total += m->layers[L].blob_size * (uint64_t)m->layers[L].n_expert;
    rc = verify_pinned(&v, m, h);
    for (int L = 0; L < m->n_layer && rc == 0; L++)
        if (m->layers[L].n_expert)
            rc = verify_layer(&v, &m->layers[L], L, h);
out:
    XXH3_freeState(h);
    free(v.buf);
    split_close(m);
    return rc;
}

