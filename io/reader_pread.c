/*
 * reader_pread.c - pread thread-pool backend of the reader, for kernels or
 * containers without io_uring. One worker per queue-depth slot (capped), so
 * queue depth means the same as with io_uring: reads in flight at once.
 * Workers only pread into the request's buffer; reader.c checks results.
 */
#include "reader_impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PREAD_MAX_THREADS 64

struct pread_ring {
    struct reader_req **q;  /* [cap] */
    int head, count;
};

struct pread_state {
    pthread_mutex_t mu;
    pthread_cond_t todo_cv;   /* work queued or stopping */
    pthread_cond_t done_cv;   /* a read finished */
    struct pread_ring todo, done;
    int cap;
    bool stop;
    int n_threads;
    pthread_t threads[PREAD_MAX_THREADS];
    struct reader *r;
};

static void pread_push(struct pread_ring *g, int cap, struct reader_req *q)
{
    g->q[(g->head + g->count) % cap] = q;
    g->count++;
}

static struct reader_req *pread_pop(struct pread_ring *g, int cap)
{
    struct reader_req *q = g->q[g->head];

    g->head = (g->head + 1) % cap;
    g->count--;
    return q;
}

static void *pread_worker(void *arg)
{
    struct pread_state *s = arg;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        struct reader_req *q;
        ssize_t got;

        while (!s->stop && s->todo.count == 0)
            pthread_cond_wait(&s->todo_cv, &s->mu);
        if (s->todo.count == 0)
            break;
        q = pread_pop(&s->todo, s->cap);
        pthread_mutex_unlock(&s->mu);
        do
            got = pread(s->r->fds[q->file], q->dst, q->len, (off_t)q->offset);
        while (got < 0 && errno == EINTR);
        q->res = got < 0 ? -errno : (int)got;
        pthread_mutex_lock(&s->mu);
        pread_push(&s->done, s->cap, q);
        pthread_cond_signal(&s->done_cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void pread_stop(struct pread_state *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->todo_cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_threads; i++)
        pthread_join(s->threads[i], NULL);
    s->n_threads = 0;
}

static void pread_free(struct pread_state *s)
{
    pthread_cond_destroy(&s->done_cv);
    pthread_cond_destroy(&s->todo_cv);
    pthread_mutex_destroy(&s->mu);
    free(s->todo.q);
    free(s->done.q);
    free(s);
}

static int pread_setup(struct reader *r, char *err, size_t errlen)
{
    struct pread_state *s = calloc(1, sizeof *s);
    int want, rc;

    if (!s) {
        snprintf(err, errlen, "reader: out of memory");
        return -ENOMEM;
    }
    s->r = r;
    s->cap = r->qd;
    s->todo.q = calloc((size_t)s->cap, sizeof *s->todo.q);
    s->done.q = calloc((size_t)s->cap, sizeof *s->done.q);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->todo_cv, NULL);
    pthread_cond_init(&s->done_cv, NULL);
    if (!s->todo.q || !s->done.q) {
        pread_free(s);
        snprintf(err, errlen, "reader: out of memory");
        return -ENOMEM;
    }
    want = r->qd < PREAD_MAX_THREADS ? r->qd : PREAD_MAX_THREADS;
    for (int i = 0; i < want; i++) {
        rc = pthread_create(&s->threads[i], NULL, pread_worker, s);
        if (rc != 0) {
            pread_stop(s);
            pread_free(s);
            snprintf(err, errlen, "reader: cannot start pread thread %d: %s", i, strerror(rc));
            return -rc;
        }
        s->n_threads++;
    }
    r->be = s;
    return 0;
}

static void pread_teardown(struct reader *r)
{
    struct pread_state *s = r->be;

    if (!s)
        return;
    pread_stop(s);
    pread_free(s);
    r->be = NULL;
}

static int pread_start(struct reader *r, struct reader_req *q)
{
    struct pread_state *s = r->be;

    pthread_mutex_lock(&s->mu);
    pread_push(&s->todo, s->cap, q);
    pthread_cond_signal(&s->todo_cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int pread_collect(struct reader *r, struct reader_req **done, int max, bool wait)
{
    struct pread_state *s = r->be;
    int n = 0;

    pthread_mutex_lock(&s->mu);
    while (wait && s->done.count == 0)
        pthread_cond_wait(&s->done_cv, &s->mu);
    while (n < max && s->done.count > 0)
        done[n++] = pread_pop(&s->done, s->cap);
    pthread_mutex_unlock(&s->mu);
    return n;
}

const struct reader_ops reader_pread_ops = {
    .name = "pread",
    .setup = pread_setup,
    .teardown = pread_teardown,
    .start = pread_start,
    .collect = pread_collect,
};
