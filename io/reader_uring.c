/*
 * reader_uring.c - io_uring backend of the reader: one ring of queue-depth
 * entries, the files registered (IOSQE_FIXED_FILE) and the caller's
 * destination regions registered as fixed buffers (READ_FIXED), so the
 * kernel does not pin pages per read. The only file besides other reader_*
 * files that includes liburing.h. Checks nothing: reader.c does.
 */
#include "reader_impl.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct uring_state {
    struct io_uring ring;
    bool fixed_files;
    bool fixed_bufs;
};

/* Registers the buffers one at a time into a sparse table, reporting
 * progress after each (a buffer is up to 1 GiB, about a second to pin).
 * Negative when the kernel has no sparse tables: the caller registers all at
 * once. */
static int uring_register_progress(struct reader *r, struct uring_state *u)
{
    uint64_t total = 0, done = 0;
    __u64 tag = 0;
    for (int i = 0; i < r->n_bufs; i++)
        total += r->bufs[i].iov_len;
    int rc = io_uring_register_buffers_sparse(&u->ring, (unsigned)r->n_bufs);
    if (rc < 0)
        return rc;
    for (int i = 0; i < r->n_bufs; i++) {
        rc = io_uring_register_buffers_update_tag(&u->ring, (unsigned)i, &r->bufs[i], &tag, 1);
        if (rc != 1) {
            io_uring_unregister_buffers(&u->ring);
            return rc < 0 ? rc : -EIO;
        }
        done += r->bufs[i].iov_len;
        r->progress("registering the expert cache", done, total);
    }
    return 0;
}

static int uring_setup(struct reader *r, char *err, size_t errlen)
{
    struct uring_state *u;
    int rc;

    u = calloc(1, sizeof *u);
    if (!u) {
        snprintf(err, errlen, "reader: out of memory");
        return -ENOMEM;
    }
    if (r->fault && r->fault->uring_init_errno) {
        rc = -r->fault->uring_init_errno;
    } else {
        /* Completions are only needed when we reap: skip the interrupt
         * that would run them at once. Not SINGLE_ISSUER: the thread that
         * opens the provider need not be the one that drives it. Older
         * kernels reject the flag; retry without. */
        rc = io_uring_queue_init((unsigned)r->qd, &u->ring, IORING_SETUP_COOP_TASKRUN);
        if (rc == -EINVAL)
            rc = io_uring_queue_init((unsigned)r->qd, &u->ring, 0);
    }
    if (rc < 0) {
        snprintf(err, errlen, "reader: io_uring unavailable (io_uring_queue_init: %s)",
                 strerror(-rc));
        free(u);
        return rc;
    }
    u->fixed_files = io_uring_register_files(&u->ring, r->fds, (unsigned)r->n_files) == 0;
    if (r->n_bufs > 0) {
        rc = r->progress ? uring_register_progress(r, u) : -EINVAL;
        if (rc < 0) /* no progress wanted, or sparse tables unsupported: one call */
            rc = io_uring_register_buffers(&u->ring, r->bufs, (unsigned)r->n_bufs);
        u->fixed_bufs = rc == 0;
        if (rc < 0 && r->log) {
            char msg[160];

            snprintf(msg, sizeof msg,
                     "reader: cannot register %d buffers with io_uring (%s): using plain reads",
                     r->n_bufs, strerror(-rc));
            r->log(msg);
        }
    }
    r->be = u;
    return 0;
}

static void uring_teardown(struct reader *r)
{
    struct uring_state *u = r->be;

    if (!u)
        return;
    io_uring_queue_exit(&u->ring);
    free(u);
    r->be = NULL;
}

static int uring_start(struct reader *r, struct reader_req *q)
{
    struct uring_state *u = r->be;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    int fd = u->fixed_files ? q->file : r->fds[q->file];
    int rc;

    if (!sqe) {
        /* Cannot happen with at most qd requests, but stay correct. */
        io_uring_submit(&u->ring);
        sqe = io_uring_get_sqe(&u->ring);
        if (!sqe)
            return -EBUSY;
    }
    if (u->fixed_bufs && q->buf_index >= 0)
        io_uring_prep_read_fixed(sqe, fd, q->dst, (unsigned)q->len, q->offset, q->buf_index);
    else
        io_uring_prep_read(sqe, fd, q->dst, (unsigned)q->len, q->offset);
    if (u->fixed_files)
        sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data(sqe, q);
    do
        rc = io_uring_submit(&u->ring);
    while (rc == -EINTR);
    return rc < 0 ? rc : 0;
}

static int uring_collect(struct reader *r, struct reader_req **done, int max, bool wait)
{
    struct uring_state *u = r->be;
    struct io_uring_cqe *cqe;
    unsigned head;
    int n = 0, rc;

    /* Both calls enter the kernel when completions wait as task work
     * (IORING_SETUP_COOP_TASKRUN), which the loop below alone would miss. */
    do
        rc = wait ? io_uring_wait_cqe(&u->ring, &cqe) : io_uring_peek_cqe(&u->ring, &cqe);
    while (rc == -EINTR);
    if (rc == -EAGAIN && !wait)
        return 0;
    if (rc < 0)
        return rc;
    io_uring_for_each_cqe(&u->ring, head, cqe) {
        struct reader_req *q;

        if (n == max)
            break;
        q = io_uring_cqe_get_data(cqe);
        q->res = cqe->res;
        done[n++] = q;
    }
    io_uring_cq_advance(&u->ring, (unsigned)n);
    return n;
}

const struct reader_ops reader_uring_ops = {
    .name = "uring",
    .setup = uring_setup,
    .teardown = uring_teardown,
    .start = uring_start,
    .collect = uring_collect,
};
