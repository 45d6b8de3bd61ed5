/*
 * split_stripe.c - where the writer puts a striped split's expert files
 * (moestream-split --stripe D1,D2,..; layout in splitfmt.h): one directory
 * per stripe, D_s/<basename of OUT>, written as <basename>.tmp-<pid> and
 * renamed like OUT, and the path of each relative to OUT for the manifest.
 *
 * Owns: checking the stripe directories (exist, distinct, replaceable),
 * the relative paths, creating, installing and removing the stripe temp
 * directories. split.c calls it; the file writing stays there.
 */
#include "split_impl.h"

#include "errmsg.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Path of `to` relative to the directory `from` (both absolute, canonical). */
static int stripe_relpath(const char *from, const char *to, char *out, size_t n)
{
    size_t common = 0, i = 0;
    /* common leading components */
    for (;;) {
        if ((from[i] == '/' || from[i] == 0) && (to[i] == '/' || to[i] == 0))
            common = i;
        if (from[i] == 0 || to[i] == 0 || from[i] != to[i])
            break;
        i++;
    }
    if (from[i] == 0 && to[i] == 0)
        common = i;
    size_t at = 0;
    out[0] = 0;
    for (const char *p = from + common; *p; p++)
        if (*p == '/' && p[1]) {
            at += (size_t)snprintf(out + at, at < n ? n - at : 0, "%s..", at ? "/" : "");
        }
    const char *rest = to + common;
    while (*rest == '/')
        rest++;
    if (*rest)
        at += (size_t)snprintf(out + at, at < n ? n - at : 0, "%s%s", at ? "/" : "", rest);
    if (at == 0)
        at = (size_t)snprintf(out, n, ".");
    return at < n ? 0 : -ENAMETOOLONG;
}

int split_stripes_prepare(struct split_stripes *st, const char *const *dirs, int n, const char *out,
                          const char *parent, const char *tmp, bool force, char *err, size_t errlen)
{
    memset(st, 0, sizeof(*st));
    if (n < 2 || n > SPLIT_MAX_STRIPES)
        return errmsg_set(err, errlen, -EINVAL, "split: --stripe needs 2..%d directories, got %d", SPLIT_MAX_STRIPES,
                          n);
    char rparent[PATH_MAX], from[PATH_MAX + 256];
    if (!realpath(parent, rparent))
        return errmsg_set(err, errlen, -errno, "split: %s: %s", parent, strerror(errno));
    const char *base = strrchr(out, '/');
    base = base ? base + 1 : out;
    snprintf(from, sizeof(from), "%s/%s", strcmp(rparent, "/") ? rparent : "", base);
    st->dir = calloc((size_t)n, sizeof(*st->dir));
    if (!st->dir)
        return errmsg_set(err, errlen, -ENOMEM, "split: out of memory");
    st->n = n;
    for (int s = 0; s < n; s++) {
        struct split_stripe_dir *d = &st->dir[s];
        char real[PATH_MAX], to[PATH_MAX + 256];
        struct stat sb;
        if (stat(dirs[s], &sb) < 0 || !S_ISDIR(sb.st_mode) || !realpath(dirs[s], real))
            return errmsg_set(err, errlen, -ENOENT, "split: stripe directory %s: %s", dirs[s],
                              errno ? strerror(errno) : "not a directory");
        snprintf(d->real, sizeof(d->real), "%s", real);
        for (int k = 0; k < s; k++)
            if (strcmp(st->dir[k].real, real) == 0)
                return errmsg_set(err, errlen, -EINVAL, "split: --stripe names %s twice (%s and %s)", real, dirs[k],
                                  dirs[s]);
        d->same = strcmp(real, rparent) == 0; /* the stripe is OUT itself */
        snprintf(to, sizeof(to), "%s/%s", strcmp(real, "/") ? real : "", base);
        if (stripe_relpath(from, to, d->rel, sizeof(d->rel)) < 0)
            return errmsg_set(err, errlen, -ENAMETOOLONG, "split: %s: path too long", dirs[s]);
        if (d->same) {
            snprintf(d->tmp, sizeof(d->tmp), "%s", tmp);
            continue;
        }
        int a = snprintf(d->final, sizeof(d->final), "%s", to);
        int b = snprintf(d->tmp, sizeof(d->tmp), "%s.tmp-%d", to, (int)getpid());
        if (a < 0 || b < 0 || (size_t)b >= sizeof(d->tmp))
            return errmsg_set(err, errlen, -ENAMETOOLONG, "split: %s: path too long", dirs[s]);
        d->exists = lstat(d->final, &sb) == 0;
        if (d->exists && !S_ISDIR(sb.st_mode))
            return errmsg_set(err, errlen, -EEXIST, "split: %s exists and is not a directory", d->final);
        if (d->exists && !force)
            return errmsg_set(err, errlen, -EEXIST, "split: %s already exists; pass --force to replace it", d->final);
        int rc;
        if (d->exists && (rc = split_check_ours(d->final, err, errlen)) < 0)
            return rc;
    }
    return 0;
}

int split_stripes_space(const struct split_stripes *st, uint64_t expert_bytes, char *err, size_t errlen)
{
    for (int s = 0; s < st->n; s++) {
        struct statvfs v;
        uint64_t need = expert_bytes / (uint64_t)st->n + (64u << 20);
        if (statvfs(st->dir[s].real, &v) < 0)
            return errmsg_set(err, errlen, -errno, "split: %s: %s", st->dir[s].real, strerror(errno));
        uint64_t avail = (uint64_t)v.f_bavail * v.f_frsize;
        if (avail < need)
            return errmsg_set(err, errlen, -ENOSPC,
                              "split: not enough free space in stripe directory %s: its share needs %.2f GiB, "
                              "%.2f GiB available",
                              st->dir[s].real, need / 1073741824.0, avail / 1073741824.0);
    }
    return 0;
}

int split_stripes_mkdir(struct split_stripes *st, char *err, size_t errlen)
{
    for (int s = 0; s < st->n; s++) {
        struct split_stripe_dir *d = &st->dir[s];
        if (d->same)
            continue;
        if (mkdir(d->tmp, 0755) < 0)
            return errmsg_set(err, errlen, -errno, "split: creating %s: %s", d->tmp, strerror(errno));
        d->made = true;
    }
    return 0;
}

int split_stripes_install(struct split_stripes *st, char *err, size_t errlen)
{
    for (int s = 0; s < st->n; s++) {
        struct split_stripe_dir *d = &st->dir[s];
        if (d->same)
            continue;
        int rc = split_fsync_path(d->tmp, err, errlen);
        if (rc == 0)
            rc = split_install_dir(d->tmp, d->final, d->exists, err, errlen);
        if (rc == 0)
            rc = split_fsync_path(d->real, err, errlen);
        if (rc < 0)
            return rc;
        d->made = false;
    }
    return 0;
}

void split_stripes_free(struct split_stripes *st)
{
    for (int s = 0; st->dir && s < st->n; s++) {
        char ignore[256];
        struct stat sb;
        if (st->dir[s].made && lstat(st->dir[s].tmp, &sb) == 0)
            split_remove_dir(st->dir[s].tmp, false, ignore, sizeof(ignore));
    }
    free(st->dir);
    memset(st, 0, sizeof(*st));
}
