/*
 * split.c - writes a split directory (splitfmt.h) from a GGUF MoE model,
 * following the plan of split_plan.c.
 *
 * Owns: the file layout on disk, the buffered sequential writer, checksums,
 * the free-space check and the DIR.tmp-<pid> -> DIR protocol.
 * Must not: hold more than SPLIT_IO_BUF bytes of tensor data (models are
 * larger than RAM) plus one expert part per transform, print, or exit.
 * Called by split_main.c, tests, bench/.
 *
 * Data flow: every output file is written front to back through one buffer.
 * Source bytes are pread straight into the free tail of that buffer, hashed
 * there, and flushed with pwrite when it fills, so each byte is copied once
 * in user space. Expert e of a layer is assembled part by part (its slice of
 * each stacked tensor is contiguous in the source: the expert index is the
 * outermost dimension), which reads the source in large sequential runs. A
 * transformed part is read whole, converted, and appended.
 */

#include "split_impl.h"

#include "arch.h"
#include "errmsg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

#include "gguf.h"
#include "gguf_writer.h"
#include "quant.h"
#include "splitfmt.h"


/* ---- buffered sequential writer ---------------------------------------- */

struct conv {
    const struct split_options *opt;
    const struct gguf_ctx *g;
    char *err;
    size_t errlen;
    /* output stream */
    int fd;
    char path[4200];
    uint8_t *buf;
    size_t cap, len;
    uint64_t buf_off;         /* file offset of buf[0] */
    uint64_t wb_off, wb_len;  /* last flushed range, writeback started */
    /* progress */
    uint64_t done, total;
    char stage[48];
    /* transformed parts: one source slice and its conversion */
    uint8_t *tf_src, *tf_dst;
};

static int conv_flush(struct conv *c)
{
    size_t at = 0;
    while (at < c->len) {
        ssize_t w = pwrite(c->fd, c->buf + at, c->len - at, (off_t)(c->buf_off + at));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            return errmsg_set(c->err, c->errlen, -e, "split: writing %s at offset %" PRIu64 ": %s",
                        c->path, c->buf_off + at, strerror(e));
        }
        at += (size_t)w;
    }
    /* Pace the page cache: start writeback of this range now, wait for the
     * previous one and drop it from the cache. Without this a 200 GB split
     * fills RAM with dirty pages and the final fsync stalls for minutes.
     * Advisory: failures only cost speed, so they are not errors. */
    sync_file_range(c->fd, (off_t)c->buf_off, (off_t)c->len, SYNC_FILE_RANGE_WRITE);
    if (c->wb_len) {
        sync_file_range(c->fd, (off_t)c->wb_off, (off_t)c->wb_len,
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                            SYNC_FILE_RANGE_WAIT_AFTER);
        posix_fadvise(c->fd, (off_t)c->wb_off, (off_t)c->wb_len, POSIX_FADV_DONTNEED);
    }
    c->wb_off = c->buf_off;
    c->wb_len = c->len;
    c->buf_off += c->len;
    c->len = 0;
    return 0;
}

static int conv_check_cancel(struct conv *c)
{
    if (c->opt->cancel && *c->opt->cancel)
        return errmsg_set(c->err, c->errlen, -ECANCELED, "split: interrupted");
    return 0;
}

/* Appends n zero bytes, hashing them into h when h is non-NULL. */
static int conv_zero(struct conv *c, uint64_t n, XXH3_state_t *h)
{
    while (n) {
        if (c->len == c->cap) {
            int rc = conv_flush(c);
            if (rc < 0)
                return rc;
        }
        size_t k = c->cap - c->len < n ? c->cap - c->len : (size_t)n;
        memset(c->buf + c->len, 0, k);
        if (h)
            XXH3_64bits_update(h, c->buf + c->len, k);
        c->len += k;
        n -= k;
    }
    return 0;
}

/* Appends bytes [off, off + n) of tensor t, hashed into h. */
static int conv_copy(struct conv *c, const struct gguf_tensor *t, uint64_t off, uint64_t n,
                     XXH3_state_t *h)
{
    while (n) {
        int rc = conv_check_cancel(c);
        if (rc < 0)
            return rc;
        if (c->len == c->cap && (rc = conv_flush(c)) < 0)
            return rc;
        size_t k = c->cap - c->len < n ? c->cap - c->len : (size_t)n;
        rc = gguf_read_tensor(c->g, t, off, c->buf + c->len, k, c->err, c->errlen);
        if (rc < 0)
            return rc;
        XXH3_64bits_update(h, c->buf + c->len, k);
        /* Read once: keep the source from crowding the page cache. */
        posix_fadvise(gguf_part_fd(c->g, t->part), (off_t)(t->file_offset + off), (off_t)k,
                      POSIX_FADV_DONTNEED);
        c->len += k;
        off += k;
        n -= k;
        c->done += k;
        if (c->opt->progress)
            c->opt->progress(c->opt->progress_ud, c->done, c->total, c->stage);
    }
    return 0;
}

/* Appends n bytes of data, hashed into h. */
static int conv_append(struct conv *c, const uint8_t *data, uint64_t n, XXH3_state_t *h)
{
    while (n) {
        int rc;
        if (c->len == c->cap && (rc = conv_flush(c)) < 0)
            return rc;
        size_t k = c->cap - c->len < n ? c->cap - c->len : (size_t)n;
        memcpy(c->buf + c->len, data, k);
        XXH3_64bits_update(h, c->buf + c->len, k);
        c->len += k;
        data += k;
        n -= k;
    }
    return 0;
}

/* Expert e's slice of a transformed part: read whole, converted by the
 * split options' transform, appended (hashed into h). */
static int conv_transformed(struct conv *c, const struct plan_part *pp, int L, int e, XXH3_state_t *h)
{
    const struct split_transform *tf = c->opt->transform;
    int rc = conv_check_cancel(c);
    if (rc == 0)
        rc = gguf_read_tensor(c->g, pp->src, (uint64_t)e * pp->src_size, c->tf_src, pp->src_size, c->err,
                              c->errlen);
    if (rc == 0)
        rc = tf->convert(tf->ctx, L, e, pp->name, pp->src->type, c->tf_src, pp->src_size, pp->p.type, c->tf_dst,
                         pp->p.size, pp->p.ne, c->err, c->errlen);
    if (rc < 0)
        return rc;
    c->done += pp->src_size;
    if (c->opt->progress)
        c->opt->progress(c->opt->progress_ud, c->done, c->total, c->stage);
    return conv_append(c, c->tf_dst, pp->p.size, h);
}

static int conv_open_file(struct conv *c, const char *dir, const char *name)
{
    int n = snprintf(c->path, sizeof(c->path), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(c->path))
        return errmsg_set(c->err, c->errlen, -ENAMETOOLONG, "split: %s: path too long", dir);
    c->fd = open(c->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (c->fd < 0) {
        int e = errno;
        return errmsg_set(c->err, c->errlen, -e, "split: creating %s: %s", c->path, strerror(e));
    }
    c->len = 0;
    c->buf_off = 0;
    c->wb_off = c->wb_len = 0;
    return 0;
}

/* Flushes, fsyncs and closes the current output file. */
static int conv_close_file(struct conv *c)
{
    int rc = conv_flush(c);
    if (rc == 0 && fsync(c->fd) < 0) {
        int e = errno;
        rc = errmsg_set(c->err, c->errlen, -e, "split: fsync %s: %s", c->path, strerror(e));
    }
    if (close(c->fd) < 0 && rc == 0) {
        int e = errno;
        rc = errmsg_set(c->err, c->errlen, -e, "split: closing %s: %s", c->path, strerror(e));
    }
    c->fd = -1;
    return rc;
}

static int write_pinned(struct conv *c, struct plan *p, const char *tmp)
{
    int rc = conv_open_file(c, tmp, SPLIT_PINNED);
    if (rc < 0)
        return rc;
    snprintf(c->stage, sizeof(c->stage), "pinned");
    XXH3_state_t *h = XXH3_createState();
    if (!h) {
        close(c->fd);
        return errmsg_set(c->err, c->errlen, -ENOMEM, "split: out of memory");
    }
    for (int64_t i = 0; i < p->n_pinned && rc == 0; i++) {
        rc = conv_zero(c, p->pinned_off[i] - (c->buf_off + c->len), NULL);
        if (rc < 0)
            break;
        XXH3_64bits_reset(h);
        rc = conv_copy(c, p->pinned[i], 0, p->pinned[i]->size, h);
        p->pinned_xxh[i] = XXH3_64bits_digest(h);
    }
    if (rc == 0)
        rc = conv_zero(c, p->pinned_file_size - (c->buf_off + c->len), NULL);
    XXH3_freeState(h);
    if (rc < 0) {
        close(c->fd);
        return rc;
    }
    return conv_close_file(c);
}

/* Layer L's experts file, or with stripes one file per stripe directory
 * holding the experts e with e % n == s (splitfmt.h). */
static int write_layer(struct conv *c, struct plan_layer *l, int L, const char *tmp,
                       const struct split_stripes *stripes)
{
    char name[64];
    int n_file = stripes->n ? stripes->n : 1, rc = 0;
    snprintf(name, sizeof(name), SPLIT_EXPERTS_FMT, L);
    snprintf(c->stage, sizeof(c->stage), "layer %d", L);
    XXH3_state_t *h = XXH3_createState();
    if (!h)
        return errmsg_set(c->err, c->errlen, -ENOMEM, "split: out of memory");
    for (int f = 0; f < n_file && rc == 0; f++) {
        rc = conv_open_file(c, stripes->n ? stripes->dir[f].tmp : tmp, name);
        if (rc < 0)
            break;
        for (int e = f; e < l->n_expert && rc == 0; e += n_file) {
            uint64_t blob = (uint64_t)(e / n_file) * l->blob_size;
            XXH3_64bits_reset(h);
            for (int i = 0; i < l->n_part && rc == 0; i++) {
                const struct plan_part *pp = &l->parts[i];
                rc = conv_zero(c, blob + pp->p.offset - (c->buf_off + c->len), h);
                if (rc == 0 && pp->transformed)
                    rc = conv_transformed(c, pp, L, e, h);
                else if (rc == 0)
                    rc = conv_copy(c, pp->src, (uint64_t)e * pp->p.size, pp->p.size, h);
            }
            l->xxh[e] = XXH3_64bits_digest(h);
            if (rc == 0)
                rc = conv_zero(c, blob + l->blob_size - (c->buf_off + c->len), NULL);
        }
        if (rc < 0)
            close(c->fd);
        else
            rc = conv_close_file(c);
    }
    XXH3_freeState(h);
    return rc;
}

/* ---- manifest ------------------------------------------------------------- */

static int set_u64_arr(struct gguf_writer *w, const char *key, const uint64_t *v, uint64_t n)
{
    return gguf_writer_set_arr(w, key, GGUF_VT_UINT64, v, n);
}

static int write_manifest(struct conv *c, const struct plan *p, const char *tmp, const struct split_stripes *stripes)
{
    const struct gguf_ctx *g = c->g;
    char path[4200], key[160];
    int rc = -ENOMEM;
    int n = snprintf(path, sizeof(path), "%s/" SPLIT_MANIFEST, tmp);
    if (n < 0 || (size_t)n >= sizeof(path))
        return errmsg_set(c->err, c->errlen, -ENAMETOOLONG, "split: %s: path too long", tmp);

    uint64_t np = (uint64_t)p->n_pinned;
    struct gguf_writer *w = gguf_writer_init(0);
    const char **names = calloc(np + SPLIT_MAX_PARTS, sizeof(*names));
    uint64_t *tmpa = calloc(4 * np + 4 * SPLIT_MAX_PARTS, sizeof(*tmpa));
    if (!w || !names || !tmpa)
        goto out;

    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const struct gguf_kv *kv = gguf_kv_at(g, i);
        const char *k = kv->key.ptr;
        if (strcmp(k, "general.alignment") == 0 || strncmp(k, "split.", 6) == 0 ||
            strncmp(k, "moestream.", 10) == 0)
            continue;
        if ((rc = gguf_writer_copy_kv(w, kv)) < 0)
            goto out;
    }
    const char *src = strrchr(c->opt->input, '/');
    src = src ? src + 1 : c->opt->input;
    rc = gguf_writer_set_u32(w, "moestream.format_version",
                             stripes->n ? SPLIT_FORMAT_VERSION : SPLIT_FORMAT_UNSTRIPED);
    if (rc >= 0 && stripes->n) {
        const char *rel[SPLIT_MAX_STRIPES];
        for (int s = 0; s < stripes->n; s++)
            rel[s] = stripes->dir[s].rel;
        rc = gguf_writer_set_arr_str(w, SPLIT_KEY_STRIPE_DIRS, rel, (uint64_t)stripes->n);
    }
    rc = rc < 0 ? rc : gguf_writer_set_str(w, "moestream.source", src);
    rc = rc < 0 ? rc : gguf_writer_set_u32(w, "moestream.n_layer", (uint32_t)p->n_layer);
    if (c->opt->requant_note)
        rc = rc < 0 ? rc : gguf_writer_set_str(w, SPLIT_KEY_REQUANT, c->opt->requant_note);
    for (uint64_t i = 0; i < np; i++)
        names[i] = p->pinned[i]->name;
    rc = rc < 0 ? rc : gguf_writer_set_arr_str(w, "moestream.pinned.name", names, np);
    if (rc < 0)
        goto out;
    {
        /* u32 arrays are packed u32s: the 4 * np u64 slots hold 2 * np of them. */
        uint32_t *u = (uint32_t *)tmpa;
        for (uint64_t i = 0; i < np; i++) {
            u[i] = (uint32_t)p->pinned[i]->type;
            u[np + i] = p->pinned[i]->n_dims;
        }
        rc = gguf_writer_set_arr(w, "moestream.pinned.type", GGUF_VT_UINT32, u, np);
        rc = rc < 0 ? rc : gguf_writer_set_arr(w, "moestream.pinned.n_dims", GGUF_VT_UINT32,
                                               u + np, np);
    }
    for (uint64_t i = 0; i < np; i++)
        for (int d = 0; d < 4; d++)
            tmpa[4 * i + (uint64_t)d] = (uint64_t)p->pinned[i]->ne[d];
    rc = rc < 0 ? rc : set_u64_arr(w, "moestream.pinned.ne", tmpa, 4 * np);
    rc = rc < 0 ? rc : set_u64_arr(w, "moestream.pinned.offset", p->pinned_off, np);
    for (uint64_t i = 0; i < np; i++)
        tmpa[i] = p->pinned[i]->size;
    rc = rc < 0 ? rc : set_u64_arr(w, "moestream.pinned.size", tmpa, np);
    rc = rc < 0 ? rc : set_u64_arr(w, "moestream.pinned.xxh3", p->pinned_xxh, np);
    rc = rc < 0 ? rc : gguf_writer_set_u64(w, "moestream.pinned.file_size", p->pinned_file_size);

    for (int L = 0; L < p->n_layer && rc >= 0; L++) {
        const struct plan_layer *l = &p->layers[L];
        if (!l->n_expert)
            continue;
        uint64_t k = (uint64_t)l->n_part;
#define LKEY(s) (snprintf(key, sizeof(key), "moestream.layer.%d." s, L), key)
        rc = gguf_writer_set_u32(w, LKEY("n_expert"), (uint32_t)l->n_expert);
        rc = rc < 0 ? rc : gguf_writer_set_u64(w, LKEY("blob_size"), l->blob_size);
        rc = rc < 0 ? rc : gguf_writer_set_u64(w, LKEY("blob_bytes"), l->blob_bytes);
        for (int i = 0; i < l->n_part; i++)
            names[i] = l->parts[i].name;
        rc = rc < 0 ? rc : gguf_writer_set_arr_str(w, LKEY("part.name"), names, k);
        uint32_t u[2 * SPLIT_MAX_PARTS];
        for (int i = 0; i < l->n_part; i++) {
            u[i] = (uint32_t)l->parts[i].p.type;
            u[SPLIT_MAX_PARTS + i] = l->parts[i].p.n_dims;
        }
        rc = rc < 0 ? rc : gguf_writer_set_arr(w, LKEY("part.type"), GGUF_VT_UINT32, u, k);
        rc = rc < 0 ? rc : gguf_writer_set_arr(w, LKEY("part.n_dims"), GGUF_VT_UINT32,
                                               u + SPLIT_MAX_PARTS, k);
        for (int i = 0; i < l->n_part; i++)
            for (int d = 0; d < 4; d++)
                tmpa[4 * i + d] = (uint64_t)l->parts[i].p.ne[d];
        rc = rc < 0 ? rc : set_u64_arr(w, LKEY("part.ne"), tmpa, 4 * k);
        for (int i = 0; i < l->n_part; i++)
            tmpa[i] = l->parts[i].p.offset;
        rc = rc < 0 ? rc : set_u64_arr(w, LKEY("part.offset"), tmpa, k);
        for (int i = 0; i < l->n_part; i++)
            tmpa[i] = l->parts[i].p.size;
        rc = rc < 0 ? rc : set_u64_arr(w, LKEY("part.size"), tmpa, k);
        rc = rc < 0 ? rc : set_u64_arr(w, LKEY("blob_xxh3"), l->xxh, (uint64_t)l->n_expert);
#undef LKEY
    }
    if (rc < 0) {
        errmsg_set(c->err, c->errlen, rc, "split: building the manifest: %s", strerror(-rc));
        goto out;
    }
    rc = gguf_writer_begin(w, path, c->err, c->errlen);
    if (rc == 0)
        rc = gguf_writer_finish(w, c->err, c->errlen);
    if (rc == 0)
        rc = split_write_manifest_sum(tmp, c->err, c->errlen);
out:
    if (rc == -ENOMEM)
        errmsg_set(c->err, c->errlen, rc, "split: out of memory");
    gguf_writer_free(w);
    free(names);
    free(tmpa);
    return rc;
}

/* ---- directories ------------------------------------------------------- */

/* True for the names a split directory holds. */
static bool is_split_file(const char *n)
{
    if (strcmp(n, SPLIT_MANIFEST) == 0 || strcmp(n, SPLIT_MANIFEST_SUM) == 0 || strcmp(n, SPLIT_PINNED) == 0)
        return true;
    if (strncmp(n, "experts-", 8) != 0)
        return false;
    size_t d = strspn(n + 8, "0123456789");
    return d >= 3 && strcmp(n + 8 + d, ".bin") == 0;
}

/* Removes dir and the files in it. only_ours: refuse (-ENOTEMPTY, naming the
 * file) when it holds anything a split directory does not. */
int split_remove_dir(const char *dir, bool only_ours, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        return errmsg_set(err, errlen, -e, "split: opening %s: %s", dir, strerror(e));
    }
    struct dirent *de;
    int rc = 0;
    char path[4400];
    if (only_ours) {
        while ((de = readdir(d))) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            if (!is_split_file(de->d_name)) {
                rc = errmsg_set(err, errlen, -ENOTEMPTY,
                          "split: %s holds %s, which is not part of a split model; not "
                          "replacing it (choose another -o directory)",
                          dir, de->d_name);
                break;
            }
        }
        rewinddir(d);
    }
    while (rc == 0 && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (unlink(path) < 0) {
            int e = errno;
            rc = errmsg_set(err, errlen, -e, "split: removing %s: %s", path, strerror(e));
        }
    }
    closedir(d);
    if (rc == 0 && rmdir(dir) < 0) {
        int e = errno;
        rc = errmsg_set(err, errlen, -e, "split: removing %s: %s", dir, strerror(e));
    }
    return rc;
}

int split_check_ours(const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int rc = 0;
    while (d && rc == 0 && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && !is_split_file(de->d_name))
            rc = errmsg_set(err, errlen, -ENOTEMPTY,
                            "split: %s holds %s, which is not part of a split model; not "
                            "replacing it (choose another directory)",
                            dir, de->d_name);
    if (d)
        closedir(d);
    return rc;
}

/* Removes DIR.tmp-<pid> directories left by splits into out that were
 * killed (SIGKILL, power loss): the pid no longer exists. Best effort. */
static void remove_stale_tmp(const char *parent, const char *out)
{
    const char *base = strrchr(out, '/');
    base = base ? base + 1 : out;
    size_t bl = strlen(base);
    DIR *d = opendir(parent);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (strncmp(n, base, bl) != 0 || strncmp(n + bl, ".tmp-", 5) != 0)
            continue;
        char *end;
        long pid = strtol(n + bl + 5, &end, 10);
        if (end == n + bl + 5 || *end || pid <= 0 || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char path[4400], ignore[256];
        snprintf(path, sizeof(path), "%s/%s", parent, n);
        split_remove_dir(path, true, ignore, sizeof(ignore));
    }
    closedir(d);
}

int split_fsync_path(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return errmsg_set(err, errlen, -e, "split: fsync %s: %s", path, strerror(e));
    }
    close(fd);
    return 0;
}

/* Puts the finished tmp dir at out. An existing out (checked to be a split
 * directory) is swapped out atomically where the filesystem allows and then
 * removed. */
int split_install_dir(const char *tmp, const char *out, bool exists, char *err, size_t errlen)
{
    if (!exists) {
        if (rename(tmp, out) < 0) {
            int e = errno;
            return errmsg_set(err, errlen, -e, "split: renaming %s to %s: %s", tmp, out,
                        strerror(e));
        }
        return 0;
    }
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, out, RENAME_EXCHANGE) == 0)
        return split_remove_dir(tmp, true, err, errlen); /* tmp now holds the old model */
    /* No RENAME_EXCHANGE here (e.g. some network filesystems): two renames. */
    char old[4200];
    snprintf(old, sizeof(old), "%s.old-%d", out, (int)getpid());
    if (rename(out, old) < 0 || rename(tmp, out) < 0) {
        int e = errno;
        return errmsg_set(err, errlen, -e, "split: replacing %s: %s", out, strerror(e));
    }
    return split_remove_dir(old, true, err, errlen);
}

int split_convert(const struct split_options *opt, struct split_stats *stats, char *err,
                  size_t errlen)
{
    char out[4096], tmp[4200], parent[4096];
    struct stat st;
    struct gguf_ctx *g = NULL;
    struct plan p;
    struct conv c = {.opt = opt, .err = err, .errlen = errlen, .fd = -1};
    int rc;

    if (!opt->input || !opt->output_dir || !opt->output_dir[0])
        return errmsg_set(err, errlen, -EINVAL, "split: input model and output directory needed");
    size_t ol = strlen(opt->output_dir);
    if (ol >= sizeof(out) - 64)
        return errmsg_set(err, errlen, -ENAMETOOLONG, "split: %s: path too long", opt->output_dir);
    memcpy(out, opt->output_dir, ol + 1);
    while (ol > 1 && out[ol - 1] == '/')
        out[--ol] = '\0';
    snprintf(tmp, sizeof(tmp), "%s.tmp-%d", out, (int)getpid());
    snprintf(parent, sizeof(parent), "%s", out);
    char *slash = strrchr(parent, '/');
    if (!slash)
        snprintf(parent, sizeof(parent), ".");
    else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';

    bool exists = lstat(out, &st) == 0;
    if (exists && !S_ISDIR(st.st_mode))
        return errmsg_set(err, errlen, -EEXIST, "split: %s exists and is not a directory", out);
    if (exists && !opt->force)
        return errmsg_set(err, errlen, -EEXIST,
                    "split: %s already exists; pass --force to replace it", out);
    /* Refuse early, before hours of copying, if it is not ours to replace. */
    if (exists && (rc = split_check_ours(out, err, errlen)) < 0)
        return rc;
    struct split_stripes stripes = { 0 };
    if (opt->n_stripe > 1 &&
        (rc = split_stripes_prepare(&stripes, opt->stripe_dirs, opt->n_stripe, out, parent, tmp, opt->force, err,
                                    errlen)) < 0) {
        split_stripes_free(&stripes);
        return rc;
    }

    rc = gguf_open(&g, opt->input, err, errlen);
    if (rc < 0)
        goto free_stripes;
    c.g = g;
    if (opt->check_runnable && (rc = arch_check_gguf(g, opt->input, err, errlen)) < 0)
        goto close_gguf;
    for (int k = 0; k < gguf_n_parts(g); k++)
        posix_fadvise(gguf_part_fd(g, k), 0, 0, POSIX_FADV_SEQUENTIAL);
    remove_stale_tmp(parent, out);
    for (int s = 0; s < stripes.n; s++)
        if (!stripes.dir[s].same)
            remove_stale_tmp(stripes.dir[s].real, out);
    rc = split_plan_build(&p, g, opt->input, opt->transform, err, errlen);
    if (rc < 0)
        goto close_gguf;
    for (int L = 0; L < p.n_layer && stripes.n; L++)
        if (p.layers[L].n_expert && p.layers[L].n_expert < stripes.n) {
            rc = errmsg_set(err, errlen, -EINVAL, "split: layer %d has %d experts, fewer than the %d stripes", L,
                            p.layers[L].n_expert, stripes.n);
            goto free_plan;
        }

    /* Free space: data files plus the manifest (about the source header). */
    uint64_t header = 0;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        if (t->part == 0 && (header == 0 || t->file_offset < header))
            header = t->file_offset;
    }
    uint64_t need = p.pinned_file_size + (stripes.n ? 0 : p.expert_bytes) + header + (1u << 20);
    if ((rc = split_stripes_space(&stripes, p.expert_bytes, err, errlen)) < 0)
        goto free_plan;
    struct statvfs vfs;
    if (statvfs(parent, &vfs) < 0) {
        int e = errno;
        rc = errmsg_set(err, errlen, -e, "split: %s: %s", parent, strerror(e));
        goto free_plan;
    }
    uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    if (avail < need) {
        rc = errmsg_set(err, errlen, -ENOSPC,
                  "split: not enough free space in %s: the split needs %.2f GiB, %.2f GiB "
                  "available",
                  parent, need / 1073741824.0, avail / 1073741824.0);
        goto free_plan;
    }

    c.cap = SPLIT_IO_BUF;
    c.buf = malloc(c.cap);
    if (p.max_tf_src) {
        c.tf_src = malloc(p.max_tf_src);
        c.tf_dst = malloc(p.max_tf_dst);
    }
    if (!c.buf || (p.max_tf_src && (!c.tf_src || !c.tf_dst))) {
        rc = errmsg_set(err, errlen, -ENOMEM, "split: out of memory");
        goto free_plan;
    }
    c.total = p.data_bytes;
    if (mkdir(tmp, 0755) < 0) {
        int e = errno;
        rc = errmsg_set(err, errlen, -e, "split: creating %s: %s", tmp, strerror(e));
        goto free_buf;
    }
    rc = split_stripes_mkdir(&stripes, err, errlen);

    if (rc == 0)
        rc = write_pinned(&c, &p, tmp);
    for (int L = 0; L < p.n_layer && rc == 0; L++)
        if (p.layers[L].n_expert)
            rc = write_layer(&c, &p.layers[L], L, tmp, &stripes);
    if (rc == 0 && opt->progress)
        opt->progress(opt->progress_ud, c.done, c.total, "manifest");
    /* The manifest goes last, after the data is on disk: its presence marks
     * a complete split. */
    if (rc == 0)
        rc = split_fsync_path(tmp, err, errlen);
    if (rc == 0)
        rc = write_manifest(&c, &p, tmp, &stripes);
    if (rc == 0)
        rc = split_fsync_path(tmp, err, errlen);
    if (rc == 0) /* the stripes first: OUT with its manifest marks a complete split */
        rc = split_stripes_install(&stripes, err, errlen);
    if (rc == 0)
        rc = split_install_dir(tmp, out, exists, err, errlen);
    if (rc == 0)
        rc = split_fsync_path(parent, err, errlen);
    if (rc < 0) {
        /* Keep the first error; removing the temp dir is best effort. */
        char ignore[256];
        if (lstat(tmp, &st) == 0)
            split_remove_dir(tmp, false, ignore, sizeof(ignore));
        goto free_buf;
    }
    if (stats) {
        stats->n_pinned = p.n_pinned;
        stats->n_layer = p.n_layer;
        stats->n_expert_layers = 0;
        for (int L = 0; L < p.n_layer; L++)
            stats->n_expert_layers += p.layers[L].n_expert > 0;
        stats->pinned_bytes = p.pinned_file_size;
        stats->expert_bytes = p.expert_bytes;
        stats->data_bytes = p.data_bytes;
    }

free_buf:
    free(c.buf);
    free(c.tf_src);
    free(c.tf_dst);
free_plan:
    split_plan_free(&p);
close_gguf:
    gguf_close(g);
free_stripes:
    split_stripes_free(&stripes);
    return rc;
}

