/*
 * splitfmt.c - the runtime-side reader of a split directory (splitfmt.h).
 *
 * Owns: reading manifest.gguf, checking every table against itself, the
 * alignment rules and the sizes of pinned.bin and the experts files.
 * Must not: read tensor data (split_verify in split.c does that), print or
 * exit. Called by the runtime at load time, by split_verify and by tests.
 */
#include "splitfmt.h"
#include "errmsg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "gguf.h"
#include "qformat.h"


uint64_t split_tensor_bytes(int t, uint32_t n_dims, const int64_t *ne)
{
    if (n_dims == 0 || n_dims > 4 || ne[0] <= 0)
        return 0;
    uint64_t sz = qformat_row_size(t, ne[0]);
    for (uint32_t d = 1; d < n_dims && sz; d++) {
        if (ne[d] <= 0 || sz > UINT64_MAX / (uint64_t)ne[d])
            return 0;
        sz *= (uint64_t)ne[d];
    }
    return sz;
}

/* Integer array under key with exactly n elements (n = 0: any count, stored
 * to *n_out). Float arrays are rejected. */
static int get_int_arr(const struct gguf_ctx *g, const char *key, uint64_t n,
                       enum gguf_vtype *type, const void **data, uint64_t *n_out,
                       char *err, size_t errlen, const char *path)
{
    uint64_t cnt;
    int rc = gguf_get_arr(g, key, type, &cnt, data);
    if (rc == -ENOENT)
        return errmsg_set(err, errlen, -EINVAL, "split: %s: key %s is missing", path, key);
    if (rc < 0 || gguf_vtype_size(*type) == 0 || *type == GGUF_VT_FLOAT32 ||
        *type == GGUF_VT_FLOAT64)
        return errmsg_set(err, errlen, -EINVAL, "split: %s: key %s is not an integer array", path,
                    key);
    if (n && cnt != n)
        return errmsg_set(err, errlen, -EINVAL,
                    "split: %s: key %s has %" PRIu64 " elements, expected %" PRIu64, path,
                    key, cnt, n);
    if (n_out)
        *n_out = cnt;
    return 0;
}

static int get_str_arr(const struct gguf_ctx *g, const char *key, uint64_t *n,
                       const struct gguf_str **strs, char *err, size_t errlen,
                       const char *path)
{
    enum gguf_vtype type;
    const void *data;
    int rc = gguf_get_arr(g, key, &type, n, &data);
    if (rc == -ENOENT)
        return errmsg_set(err, errlen, -EINVAL, "split: %s: key %s is missing", path, key);
    if (rc < 0 || type != GGUF_VT_STRING)
        return errmsg_set(err, errlen, -EINVAL, "split: %s: key %s is not a string array", path,
                    key);
    *strs = data;
    return 0;
}

static int get_u64(const struct gguf_ctx *g, const char *key, uint64_t *v, char *err,
                   size_t errlen, const char *path)
{
    int rc = gguf_get_u64(g, key, v);
    if (rc == -ENOENT)
        return errmsg_set(err, errlen, -EINVAL, "split: %s: key %s is missing", path, key);
    if (rc < 0)
        return errmsg_set(err, errlen, -EINVAL, "split: %s: key %s is not an unsigned integer",
                    path, key);
    return 0;
}

/* Size of the regular file at path; -errno with err set. */
static int file_size(const char *path, uint64_t *size, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        int e = errno;
        return errmsg_set(err, errlen, -e, "split: %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode))
        return errmsg_set(err, errlen, -EINVAL, "split: %s: not a regular file", path);
    *size = (uint64_t)st.st_size;
    return 0;
}

static int load_pinned(struct split_model *m, const char *mpath, char *err, size_t errlen)
{
    const struct gguf_ctx *g = m->manifest;
    uint64_t n;
    const struct gguf_str *names;
    int rc = get_str_arr(g, "moestream.pinned.name", &n, &names, err, errlen, mpath);
    if (rc < 0)
        return rc;
    if (n == 0 || n > (uint64_t)INT64_MAX / 4)
        return errmsg_set(err, errlen, -EINVAL, "split: %s: %" PRIu64 " pinned tensors", mpath, n);
    static const char *const keys[] = {"moestream.pinned.type", "moestream.pinned.n_dims",
                                       "moestream.pinned.ne", "moestream.pinned.offset",
                                       "moestream.pinned.size", "moestream.pinned.xxh3"};
    enum gguf_vtype ty[6];
    const void *d[6];
    for (int k = 0; k < 6; k++) {
        rc = get_int_arr(g, keys[k], k == 2 ? 4 * n : n, &ty[k], &d[k], NULL, err, errlen,
                         mpath);
        if (rc < 0)
            return rc;
    }
    rc = get_u64(g, "moestream.pinned.file_size", &m->pinned_file_size, err, errlen, mpath);
    if (rc < 0)
        return rc;
    m->tensors = calloc(n ? n : 1, sizeof(*m->tensors));
    if (!m->tensors)
        return errmsg_set(err, errlen, -ENOMEM, "split: out of memory");
    m->n_tensor = (int64_t)n;
    uint64_t prev_end = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct split_tensor *t = &m->tensors[i];
        t->name = names[i].ptr;
        uint64_t type = gguf_arr_u64(ty[0], d[0], i);
        uint64_t nd = gguf_arr_u64(ty[1], d[1], i);
        t->offset = gguf_arr_u64(ty[3], d[3], i);
        t->size = gguf_arr_u64(ty[4], d[4], i);
        t->xxh3 = gguf_arr_u64(ty[5], d[5], i);
        if (type > INT32_MAX || !qformat_known((int)type))
            return errmsg_set(err, errlen, -EINVAL,
                        "split: %s: pinned tensor %s: unknown type id %" PRIu64, mpath,
                        t->name, type);
        t->type = (int)type;
        if (nd < 1 || nd > 4)
            return errmsg_set(err, errlen, -EINVAL,
                        "split: %s: pinned tensor %s: n_dims %" PRIu64 ", expected 1..4",
                        mpath, t->name, nd);
        t->n_dims = (uint32_t)nd;
        for (int j = 0; j < 4; j++) {
            uint64_t v = gguf_arr_u64(ty[2], d[2], 4 * i + (uint64_t)j);
            if (v == 0 || v > INT64_MAX)
                return errmsg_set(err, errlen, -EINVAL,
                            "split: %s: pinned tensor %s: ne[%d] = %" PRIu64, mpath,
                            t->name, j, v);
            t->ne[j] = (int64_t)v;
        }
        uint64_t want = split_tensor_bytes(t->type, t->n_dims, t->ne);
        if (want == 0 || want != t->size)
            return errmsg_set(err, errlen, -EINVAL,
                        "split: %s: pinned tensor %s: size %" PRIu64
                        ", its shape and type give %" PRIu64,
                        mpath, t->name, t->size, want);
        if (t->offset % SPLIT_PINNED_ALIGN)
            return errmsg_set(err, errlen, -EINVAL,
                        "split: pinned tensor %s: offset %" PRIu64
                        " is not a multiple of %d (%s)",
                        t->name, t->offset, SPLIT_PINNED_ALIGN, m->pinned_path);
        if (t->offset < prev_end)
            return errmsg_set(err, errlen, -EINVAL,
                        "split: pinned tensor %s: offset %" PRIu64
                        " overlaps the previous tensor, which ends at %" PRIu64 " (%s)",
                        t->name, t->offset, prev_end, m->pinned_path);
        if (t->offset > m->pinned_file_size || t->size > m->pinned_file_size - t->offset)
            return errmsg_set(err, errlen, -EINVAL,
                        "split: pinned tensor %s: bytes %" PRIu64 "..%" PRIu64
                        " lie beyond the end of %s (%" PRIu64 " bytes)",
                        t->name, t->offset, t->offset + t->size, m->pinned_path,
                        m->pinned_file_size);
        prev_end = t->offset + t->size;
    }
    uint64_t actual;
    rc = file_size(m->pinned_path, &actual, err, errlen);
    if (rc < 0)
        return rc;
    if (actual != m->pinned_file_size)
        return errmsg_set(err, errlen, -EINVAL,
                    "split: %s: %" PRIu64 " bytes, the manifest says %" PRIu64
                    " (truncated or replaced; re-split the model)",
                    m->pinned_path, actual, m->pinned_file_size);
    return 0;
}

static int load_layer(struct split_model *m, int L, uint64_t *xxh, const char *mpath,
                      char *err, size_t errlen)
{
    const struct gguf_ctx *g = m->manifest;
    struct split_layer *l = &m->layers[L];
    char key[128];
    uint32_t ne32;
    snprintf(key, sizeof(key), "moestream.layer.%d.n_expert", L);
    int rc = gguf_get_u32(g, key, &ne32);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0 || ne32 == 0 || ne32 > 1u << 20)
        return errmsg_set(err, errlen, -EINVAL, "split: %s: key %s is not a valid expert count",
                    mpath, key);
    l->n_expert = (int)ne32;
    int pl = snprintf(l->path, sizeof(l->path), "%s/" SPLIT_EXPERTS_FMT, m->dir, L);
    if (pl < 0 || (size_t)pl >= sizeof(l->path))
        return errmsg_set(err, errlen, -ENAMETOOLONG, "split: %s: path too long", m->dir);
    if (m->n_stripe > 1) {
        if (ne32 < (uint32_t)m->n_stripe)
            return errmsg_set(err, errlen, -EINVAL, "split: layer %d: %u experts over %d stripes (%s)", L, ne32,
                              m->n_stripe, mpath);
        l->n_stripe = m->n_stripe;
        l->stripe_path = m->stripe_paths + (size_t)L * (size_t)m->n_stripe;
        for (int s = 0; s < m->n_stripe; s++) {
            pl = snprintf(l->stripe_path[s], sizeof(l->stripe_path[s]), "%s/" SPLIT_EXPERTS_FMT, m->stripe_dir[s], L);
            if (pl < 0 || (size_t)pl >= sizeof(l->stripe_path[s]))
                return errmsg_set(err, errlen, -ENAMETOOLONG, "split: %s: path too long", m->stripe_dir[s]);
        }
        snprintf(l->path, sizeof(l->path), "%s", l->stripe_path[0]);
    }

    snprintf(key, sizeof(key), "moestream.layer.%d.blob_size", L);
    if ((rc = get_u64(g, key, &l->blob_size, err, errlen, mpath)) < 0)
        return rc;
    snprintf(key, sizeof(key), "moestream.layer.%d.blob_bytes", L);
    if ((rc = get_u64(g, key, &l->blob_bytes, err, errlen, mpath)) < 0)
        return rc;
    if (l->blob_size == 0 || l->blob_size % SPLIT_BLOB_ALIGN)
        return errmsg_set(err, errlen, -EINVAL,
                    "split: layer %d: blob size %" PRIu64 " is not a multiple of %d (%s)", L,
                    l->blob_size, SPLIT_BLOB_ALIGN, mpath);
    if (l->blob_bytes > l->blob_size || l->blob_size > UINT64_MAX / ne32)
        return errmsg_set(err, errlen, -EINVAL,
                    "split: layer %d: blob uses %" PRIu64 " bytes of a %" PRIu64
                    "-byte stride (%s)",
                    L, l->blob_bytes, l->blob_size, mpath);

    uint64_t n_part;
    const struct gguf_str *names;
    snprintf(key, sizeof(key), "moestream.layer.%d.part.name", L);
    if ((rc = get_str_arr(g, key, &n_part, &names, err, errlen, mpath)) < 0)
        return rc;
    if (n_part == 0 || n_part > SPLIT_MAX_PARTS)
        return errmsg_set(err, errlen, -EINVAL, "split: layer %d: %" PRIu64 " parts, expected 1..%d (%s)",
                    L, n_part, SPLIT_MAX_PARTS, mpath);
    l->n_part = (int)n_part;
    static const char *const sub[] = {"type", "n_dims", "ne", "offset", "size"};
    enum gguf_vtype ty[5];
    const void *d[5];
    for (int k = 0; k < 5; k++) {
        snprintf(key, sizeof(key), "moestream.layer.%d.part.%s", L, sub[k]);
        if ((rc = get_int_arr(g, key, k == 2 ? 4 * n_part : n_part, &ty[k], &d[k], NULL, err,
                              errlen, mpath)) < 0)
            return rc;
    }
    uint64_t prev_end = 0;
    for (int p = 0; p < l->n_part; p++) {
        struct split_part *pt = &l->parts[p];
        pt->name = names[p].ptr;
        uint64_t type = gguf_arr_u64(ty[0], d[0], (uint64_t)p);
        uint64_t nd = gguf_arr_u64(ty[1], d[1], (uint64_t)p);
        pt->offset = gguf_arr_u64(ty[3], d[3], (uint64_t)p);
        pt->size = gguf_arr_u64(ty[4], d[4], (uint64_t)p);
        if (type > INT32_MAX || !qformat_known((int)type))
            return errmsg_set(err, errlen, -EINVAL,
                        "split: layer %d part %s: unknown type id %" PRIu64 " (%s)", L,
                        pt->name, type, mpath);
        pt->type = (int)type;
        if (nd < 1 || nd > 4)
            return errmsg_set(err, errlen, -EINVAL,
                        "split: layer %d part %s: n_dims %" PRIu64 ", expected 1..4 (%s)", L,
                        pt->name, nd, mpath);
        pt->n_dims = (uint32_t)nd;
        for (int j = 0; j < 4; j++) {
            uint64_t v = gguf_arr_u64(ty[2], d[2], 4 * (uint64_t)p + (uint64_t)j);
            if (v == 0 || v > INT64_MAX)
                return errmsg_set(err, errlen, -EINVAL, "split: layer %d part %s: ne[%d] = %" PRIu64
                            " (%s)", L, pt->name, j, v, mpath);
            pt->ne[j] = (int64_t)v;
        }
        uint64_t want = split_tensor_bytes(pt->type, pt->n_dims, pt->ne);
        if (want == 0 || want != pt->size)
            return errmsg_set(err, errlen, -EINVAL,
                        "split: layer %d part %s: size %" PRIu64
                        ", its shape and type give %" PRIu64 " (%s)",
                        L, pt->name, pt->size, want, mpath);
        if (pt->offset % SPLIT_PART_ALIGN)
            return errmsg_set(err, errlen, -EINVAL,
                        "split: layer %d part %s: offset %" PRIu64
                        " is not a multiple of %d (%s)",
                        L, pt->name, pt->offset, SPLIT_PART_ALIGN, l->path);
        if (pt->offset < prev_end || pt->offset > l->blob_bytes ||
            pt->size > l->blob_bytes - pt->offset)
            return errmsg_set(err, errlen, -EINVAL,
                        "split: layer %d part %s: bytes %" PRIu64 "..%" PRIu64
                        " overlap the previous part or exceed the blob's %" PRIu64
                        " used bytes (%s)",
                        L, pt->name, pt->offset, pt->offset + pt->size, l->blob_bytes,
                        l->path);
        prev_end = pt->offset + pt->size;
    }

    enum gguf_vtype xt;
    const void *xd;
    snprintf(key, sizeof(key), "moestream.layer.%d.blob_xxh3", L);
    if ((rc = get_int_arr(g, key, ne32, &xt, &xd, NULL, err, errlen, mpath)) < 0)
        return rc;
    for (uint32_t e = 0; e < ne32; e++)
        xxh[e] = gguf_arr_u64(xt, xd, e);
    l->blob_xxh3 = xxh;

    for (int f = 0; f < split_layer_n_files(l); f++) {
        int nf = split_file_n_expert(l, f);
        uint64_t want = (uint64_t)nf * l->blob_size, actual;
        const char *fp = split_layer_file(l, f);
        if ((rc = file_size(fp, &actual, err, errlen)) < 0)
            return rc;
        if (actual != want)
            return errmsg_set(err, errlen, -EINVAL,
                        "split: layer %d: %s is %" PRIu64 " bytes, expected %" PRIu64
                        " (%d experts x %" PRIu64 "; truncated or replaced, re-split the model)",
                        L, fp, actual, want, nf, l->blob_size);
    }
    return 0;
}

int split_file_xxh3(const char *path, uint64_t *out, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errmsg_set(err, errlen, -errno, "split: %s: %s", path, strerror(errno));
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    XXH3_state_t *h = XXH3_createState();
    int rc = 0;
    if (!buf || !h) {
        rc = errmsg_set(err, errlen, -ENOMEM, "split: out of memory");
        goto out;
    }
    XXH3_64bits_reset(h);
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = errmsg_set(err, errlen, -errno, "split: reading %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        XXH3_64bits_update(h, buf, (size_t)n);
    }
    *out = XXH3_64bits_digest(h);
out:
    XXH3_freeState(h);
    free(buf);
    close(fd);
    return rc;
}

int split_write_manifest_sum(const char *dir, char *err, size_t errlen)
{
    char mpath[4200], spath[4200], line[64];
    uint64_t h;
    snprintf(mpath, sizeof(mpath), "%s/" SPLIT_MANIFEST, dir);
    snprintf(spath, sizeof(spath), "%s/" SPLIT_MANIFEST_SUM, dir);
    int rc = split_file_xxh3(mpath, &h, err, errlen);
    if (rc < 0)
        return rc;
    int n = snprintf(line, sizeof(line), "xxh3 %016" PRIx64 "\n", h);
    int fd = open(spath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errmsg_set(err, errlen, -errno, "split: %s: %s", spath, strerror(errno));
    if (write(fd, line, (size_t)n) != n || fsync(fd) < 0) {
        rc = errmsg_set(err, errlen, errno ? -errno : -EIO, "split: writing %s: %s", spath, strerror(errno));
        close(fd);
        return rc;
    }
    if (close(fd) < 0)
        return errmsg_set(err, errlen, -errno, "split: writing %s: %s", spath, strerror(errno));
    return 0;
}

/* Checks DIR/manifest.gguf against DIR/manifest.xxh3. 0 (with *checked
 * false when there is no checksum file), or -EBADMSG / -errno with err. */
static int check_manifest_sum(const char *dir, bool *checked, char *err, size_t errlen)
{
    char mpath[4200], spath[4200], line[64] = { 0 };
    snprintf(mpath, sizeof(mpath), "%s/" SPLIT_MANIFEST, dir);
    snprintf(spath, sizeof(spath), "%s/" SPLIT_MANIFEST_SUM, dir);
    *checked = false;
    FILE *f = fopen(spath, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        return errmsg_set(err, errlen, -errno, "split: %s: %s", spath, strerror(errno));
    }
    bool ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    uint64_t want, got;
    char *end = NULL;
    if (ok && strncmp(line, "xxh3 ", 5) == 0) {
        errno = 0;
        want = strtoull(line + 5, &end, 16);
        ok = errno == 0 && end == line + 21 && (*end == '\n' || *end == 0);
    } else
        ok = false;
    if (!ok)
        return errmsg_set(err, errlen, -EBADMSG,
                    "split: %s is damaged (expected one line \"xxh3 <16 hex digits>\"): re-split the model "
                    "with `moestream-split MODEL.gguf -o %s --force`",
                    spath, dir);
    int rc = split_file_xxh3(mpath, &got, err, errlen);
    if (rc < 0)
        return rc;
    if (got != want)
        return errmsg_set(err, errlen, -EBADMSG,
                    "split: %s does not match its checksum (xxh3 %016" PRIx64 ", expected %016" PRIx64
                    " from " SPLIT_MANIFEST_SUM "): the manifest was altered or damaged; re-split the model "
                    "with `moestream-split MODEL.gguf -o %s --force`",
                    mpath, got, want, dir);
    *checked = true;
    return 0;
}

/* Does the file start with the GGUF magic? */
static bool split_is_gguf_file(const char *path)
{
    char magic[4];
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    bool yes = fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    fclose(f);
    return yes;
}

/* Format 2: the stripe directories of moestream.stripe.dirs, joined with
 * m->dir, each checked to exist (a missing one is named with the layer files
 * expected in it). Needs manifest.xxh3: the paths are trusted only when the
 * checksum covers them. */
static int split_open_stripes(struct split_model *m, const char *mpath, char *err, size_t errlen)
{
    uint64_t n;
    const struct gguf_str *rel;
    int rc = get_str_arr(m->manifest, SPLIT_KEY_STRIPE_DIRS, &n, &rel, err, errlen, mpath);
    if (rc < 0)
        return rc;
    if (n < 2 || n > SPLIT_MAX_STRIPES)
        return errmsg_set(err, errlen, -EINVAL, "split: %s: %" PRIu64 " stripe directories, expected 2..%d", mpath, n,
                          SPLIT_MAX_STRIPES);
    if (!m->manifest_checked)
        return errmsg_set(err, errlen, -EBADMSG,
                          "split: %s is striped but has no " SPLIT_MANIFEST_SUM " to check its stripe paths against: "
                          "re-split the model with `moestream-split --stripe ...`",
                          m->dir);
    m->n_stripe = (int)n;
    m->stripe_dir = calloc(n, sizeof(*m->stripe_dir));
    m->stripe_paths = calloc((size_t)m->n_layer * n, sizeof(*m->stripe_paths));
    if (!m->stripe_dir || !m->stripe_paths)
        return errmsg_set(err, errlen, -ENOMEM, "split: out of memory");
    int first = -1, last = -1;
    for (int L = 0; L < m->n_layer; L++) {
        char key[64];
        snprintf(key, sizeof(key), "moestream.layer.%d.n_expert", L);
        if (gguf_get_u32(m->manifest, key, &(uint32_t){ 0 }) == 0) {
            first = first < 0 ? L : first;
            last = L;
        }
    }
    for (uint64_t s = 0; s < n; s++) {
        const char *r = rel[s].ptr;
        if (rel[s].len == 0 || rel[s].len != strlen(r) || r[0] == '/' || rel[s].len > 3000)
            return errmsg_set(err, errlen, -EINVAL,
                              "split: %s: stripe directory %" PRIu64 " \"%.200s\" is not a relative path", mpath, s, r);
        if (strcmp(r, ".") == 0)
            snprintf(m->stripe_dir[s], sizeof(m->stripe_dir[s]), "%s", m->dir);
        else if (strlen(m->dir) + rel[s].len + 2 > sizeof(m->stripe_dir[s]) - 32)
            return errmsg_set(err, errlen, -ENAMETOOLONG, "split: %s: stripe path too long", m->dir);
        else
        {
            int k = snprintf(m->stripe_dir[s], sizeof(m->stripe_dir[s]), "%.*s/%.*s", 2000, m->dir, 2000, r);
            (void)k;
        }
        struct stat st;
        bool absent = stat(m->stripe_dir[s], &st) < 0;
        if (absent || !S_ISDIR(st.st_mode)) {
            return errmsg_set(err, errlen, -ENOENT,
                              "split: %s: stripe directory %s (stripe %" PRIu64 " of %" PRIu64 ") is %s; it holds "
                              SPLIT_EXPERTS_FMT " .. " SPLIT_EXPERTS_FMT " (the experts e with e %% %" PRIu64
                              " == %" PRIu64 " of each layer): mount that drive, or re-split the model",
                              m->dir, m->stripe_dir[s], s + 1, n, absent ? "missing" : "not a directory",
                              first, last, n, s);
        }
    }
    return 0;
}

int split_open(struct split_model **out, const char *dir, char *err, size_t errlen)
{
    struct stat st;
    char mpath[4200];
    *out = NULL;
    if (stat(dir, &st) < 0)
        return errmsg_set(err, errlen, -ENOENT,
                    "split: %s: no such file or directory (a model is a directory made once by "
                    "`moestream-split MODEL.gguf -o OUT-DIR`; pass that directory to -m)",
                    dir);
    if (!S_ISDIR(st.st_mode)) {
        /* Suggest an output beside the input, never the input itself. */
        char suggest[4200];
        size_t n = strlen(dir);
        if (n > 5 && !strcmp(dir + n - 5, ".gguf"))
            n -= 5;
        snprintf(suggest, sizeof(suggest), "%.*s-split", (int)(n < 4000 ? n : 4000), dir);
        if (split_is_gguf_file(dir))
            return errmsg_set(err, errlen, -ENOTDIR,
                        "split: %s is a GGUF file, not a split model directory: convert it with "
                        "`moestream-split %s -o %s` (`moestream run` also takes the GGUF itself)",
                        dir, dir, suggest);
        return errmsg_set(err, errlen, -ENOTDIR,
                    "split: %s is a file, not a split model directory (a directory made by "
                    "`moestream-split MODEL.gguf -o OUT-DIR`)",
                    dir);
    }
    snprintf(mpath, sizeof(mpath), "%s/" SPLIT_MANIFEST, dir);
    if (stat(mpath, &st) < 0)
        return errmsg_set(err, errlen, -ENOENT,
                    "split: %s has no " SPLIT_MANIFEST " (not a split model, or an "
                    "interrupted split); run `moestream-split MODEL.gguf -o %s`",
                    dir, dir);

    struct split_model *m = calloc(1, sizeof(*m));
    if (!m)
        return errmsg_set(err, errlen, -ENOMEM, "split: out of memory");
    uint64_t *xxh = NULL;
    int rc;
    if ((rc = check_manifest_sum(dir, &m->manifest_checked, err, errlen)) < 0)
        goto free_model;
    if (strlen(dir) >= sizeof(m->dir) - 32) {
        rc = errmsg_set(err, errlen, -ENAMETOOLONG, "split: %s: path too long", dir);
        goto free_model;
    }
    snprintf(m->dir, sizeof(m->dir), "%s", dir);
    snprintf(m->pinned_path, sizeof(m->pinned_path), "%s/" SPLIT_PINNED, dir);

    rc = gguf_open(&m->manifest, mpath, err, errlen);
    if (rc < 0)
        goto free_model;

    uint32_t version;
    rc = gguf_get_u32(m->manifest, "moestream.format_version", &version);
    if (rc < 0) {
        rc = errmsg_set(err, errlen, -EINVAL,
                  "split: %s has no moestream.format_version: not a moestream manifest; "
                  "run `moestream-split MODEL.gguf -o %s`",
                  mpath, dir);
        goto close_manifest;
    }
    enum gguf_vtype vt;
    uint64_t vn;
    const void *vd;
    if (version == SPLIT_FORMAT_UNSTRIPED && gguf_get_arr(m->manifest, SPLIT_KEY_STRIPE_DIRS, &vt, &vn, &vd) == 0) {
        rc = errmsg_set(err, errlen, -EINVAL, "split: %s: format 1 with " SPLIT_KEY_STRIPE_DIRS
                        " (striped splits are format 2): the manifest was altered; re-split the model", mpath);
        goto close_manifest;
    }
    if (version > SPLIT_FORMAT_VERSION) {
        rc = errmsg_set(err, errlen, -EPROTONOSUPPORT,
                  "split: %s uses split format %u, this moestream reads formats up to %d; "
                  "upgrade moestream or re-split the model with this version",
                  dir, version, SPLIT_FORMAT_VERSION);
        goto close_manifest;
    }
    if (version < SPLIT_FORMAT_UNSTRIPED) {
        rc = errmsg_set(err, errlen, -EPROTONOSUPPORT,
                  "split: %s uses the old split format %u, this moestream reads formats %d..%d; "
                  "re-split the model with `moestream-split MODEL.gguf -o %s --force`",
                  dir, version, SPLIT_FORMAT_UNSTRIPED, SPLIT_FORMAT_VERSION, dir);
        goto close_manifest;
    }

    uint32_t n_layer;
    rc = gguf_get_u32(m->manifest, "moestream.n_layer", &n_layer);
    if (rc < 0 || n_layer == 0 || n_layer > 100000) {
        rc = errmsg_set(err, errlen, -EINVAL, "split: %s: moestream.n_layer missing or invalid",
                  mpath);
        goto close_manifest;
    }
    m->n_layer = (int)n_layer;
    m->layers = calloc(n_layer, sizeof(*m->layers));
    if (!m->layers) {
        rc = errmsg_set(err, errlen, -ENOMEM, "split: out of memory");
        goto close_manifest;
    }

    rc = load_pinned(m, mpath, err, errlen);
    if (rc < 0)
        goto free_tables;

    /* All blob checksums in one array, owned through layers[first].blob_xxh3. */
    uint64_t total_exp = 0;
    for (int L = 0; L < m->n_layer; L++) {
        char key[64];
        uint32_t ne32 = 0;
        snprintf(key, sizeof(key), "moestream.layer.%d.n_expert", L);
        if (gguf_get_u32(m->manifest, key, &ne32) == 0 && ne32 <= 1u << 20)
            total_exp += ne32;
    }
    if (total_exp == 0) {
        rc = errmsg_set(err, errlen, -EINVAL, "split: %s: no layer has routed experts", mpath);
        goto free_tables;
    }
    if (version > SPLIT_FORMAT_UNSTRIPED && (rc = split_open_stripes(m, mpath, err, errlen)) < 0)
        goto free_tables;
    xxh = calloc(total_exp, sizeof(*xxh));
    if (!xxh) {
        rc = errmsg_set(err, errlen, -ENOMEM, "split: out of memory");
        goto free_tables;
    }
    uint64_t at = 0;
    for (int L = 0; L < m->n_layer; L++) {
        rc = load_layer(m, L, xxh + at, mpath, err, errlen);
        if (rc < 0)
            goto free_tables;
        at += (uint64_t)m->layers[L].n_expert;
    }
    *out = m;
    return 0;

free_tables:
    free(xxh);
    free(m->layers);
    free(m->tensors);
    free(m->stripe_dir);
    free(m->stripe_paths);
close_manifest:
    gguf_close(m->manifest);
free_model:
    free(m);
    return rc;
}

void split_close(struct split_model *m)
{
    if (!m)
        return;
    /* The checksum array starts at the first layer with experts. */
    for (int L = 0; m->layers && L < m->n_layer; L++) {
        if (m->layers[L].n_expert) {
            free((void *)m->layers[L].blob_xxh3);
            break;
        }
    }
    free(m->layers);
    free(m->tensors);
    free(m->files);
    free(m->stripe_dir);
    free(m->stripe_paths);
    gguf_close(m->manifest);
    free(m);
}

const struct split_tensor *split_find_tensor(const struct split_model *m, const char *name)
{
    for (int64_t i = 0; i < m->n_tensor; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

const struct split_part *split_find_part(const struct split_layer *l, const char *name)
{
    for (int p = 0; p < l->n_part; p++)
        if (strcmp(l->parts[p].name, name) == 0)
            return &l->parts[p];
    return NULL;
}

bool split_is_expert_name(const char *name, int *layer)
{
    if (strncmp(name, "blk.", 4) != 0)
        return false;
    char *end;
    long L = strtol(name + 4, &end, 10);
    if (end == name + 4 || *end != '.' || L < 0 || L > 100000)
        return false;
    if (!strstr(end + 1, "_exps."))
        return false;
    if (layer)
        *layer = (int)L;
    return true;
}
