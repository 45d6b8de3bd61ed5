/*
 * reader_buffered.c - the last-resort backend: a synchronous pread through
 * the page cache at submit time (or on O_DIRECT descriptors when the pread
 * pool could not start). Finished requests wait in a ring until reaped.
 * Used where O_DIRECT is refused (FUSE mounts such as exfat or ntfs-3g, some
 * network file systems); reader.c checks every result. The page cache must
 * not fill with copies of what the expert cache already holds (memory
 * outside the RAM budget, and other programs' pages evicted for it): the
 * files are opened for random access (no readahead) and every range read is
 * dropped from the page cache once copied.
 */
#include "reader_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct buffered_state {
    struct reader_req **done;  /* [qd] ring of finished requests */
    int head, count;
};

static int buffered_setup(struct reader *r, char *err, size_t errlen)
{
    struct buffered_state *s = calloc(1, sizeof *s);

    if (s)
        s->done = calloc((size_t)r->qd, sizeof *s->done);
    if (!s || !s->done) {
        free(s);
        snprintf(err, errlen, "reader: out of memory");
        return -ENOMEM;
    }
    r->be = s;
    for (int i = 0; i < r->n_files; i++)
        (void)posix_fadvise(r->fds[i], 0, 0, POSIX_FADV_RANDOM); /* advisory */
    return 0;
}

static void buffered_teardown(struct reader *r)
{
    struct buffered_state *s = r->be;

    if (!s)
        return;
    free(s->done);
    free(s);
    r->be = NULL;
}

static int buffered_start(struct reader *r, struct reader_req *q)
{
    struct buffered_state *s = r->be;
    ssize_t got;

    do
        got = pread(r->fds[q->file], q->dst, q->len, (off_t)q->offset);
    while (got < 0 && errno == EINTR);
    q->res = got < 0 ? -errno : (int)got;
    if (got > 0)
        (void)posix_fadvise(r->fds[q->file], (off_t)q->offset, (off_t)got, POSIX_FADV_DONTNEED);
    s->done[(s->head + s->count) % r->qd] = q;
    s->count++;
    return 0;
}

static int buffered_collect(struct reader *r, struct reader_req **done, int max, bool wait)
{
    struct buffered_state *s = r->be;
    int n = 0;

    (void)wait; /* everything started has finished */
    while (n < max && s->count > 0) {
        done[n++] = s->done[s->head];
        s->head = (s->head + 1) % r->qd;
        s->count--;
    }
    return n;
}

const struct reader_ops reader_buffered_ops = {
    .name = "buffered",
    .setup = buffered_setup,
    .teardown = buffered_teardown,
    .start = buffered_start,
    .collect = buffered_collect,
};
