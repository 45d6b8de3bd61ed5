/*
 * server_queue.c - the lifetime of a generation request of `moestream
 * serve` (two references: the HTTP side that waits or streams, and the
 * queue/scheduler), its output buffer, and the bounded FIFO between the
 * HTTP threads and the scheduler: at most --queue requests wait beyond the
 * free slots; more are refused (-EBUSY, answered 429).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

uint64_t server_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

struct srv_req *server_req_new(void)
{
    struct srv_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    pthread_cond_init(&r->cv, NULL);
    r->refs = 1;
    return r;
}

static void req_free(struct srv_req *r)
{
    free(r->prompt);
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    free(r->stop);
    free(r->out);
    free(r->body);
    pthread_cond_destroy(&r->cv);
    free(r);
}

void server_req_put_locked(struct srv_req *r)
{
    if (--r->refs == 0)
        req_free(r);
}

void server_req_put(struct server *s, struct srv_req *r)
{
    pthread_mutex_lock(&s->mu);
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        req_free(r);
}

int server_req_emit(struct srv_req *r, const char *s, size_t n)
{
    if (r->out_off == r->out_len)
        r->out_off = r->out_len = 0;
    if (r->out_len + n > r->out_cap) {
        size_t cap = (r->out_len + n) * 2 + 256;
        char *p = realloc(r->out, cap);
        if (!p)
            return -ENOMEM;
        r->out = p;
        r->out_cap = cap;
    }
    memcpy(r->out + r->out_len, s, n);
    r->out_len += n;
    pthread_cond_broadcast(&r->cv);
    return 0;
}

int server_submit(struct server *s, struct srv_req *r)
{
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    if (!s->accepting || s->stopping || atomic_load(&s->draining) || !s->queue)
        rc = -ESHUTDOWN;
    else if (s->q_len >= s->q_cap || s->q_len >= s->o.queue_max + (s->o.parallel - s->met.active)) {
        rc = -EBUSY;
        s->met.rejected_busy++;
    } else {
        r->refs++;
        r->state = SRV_QUEUED;
        s->queue[(s->q_head + s->q_len++) % s->q_cap] = r;
        s->met.queued++;
        s->met.requests++;
        pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

struct srv_req *server_queue_pop(struct server *s)
{
    if (s->q_len == 0)
        return NULL;
    struct srv_req *r = s->queue[s->q_head];
    s->q_head = (s->q_head + 1) % s->q_cap;
    s->q_len--;
    s->met.queued--;
    return r;
}

int server_queue_init(struct server *s)
{
    s->q_cap = s->o.queue_max + s->o.parallel;
    s->q_head = s->q_len = 0;
    s->queue = calloc((size_t)s->q_cap, sizeof(*s->queue));
    if (!s->queue)
        return -ENOMEM;
    pthread_cond_init(&s->work, NULL);
    return 0;
}

void server_queue_free(struct server *s)
{
    if (!s->queue)
        return;
    while (s->q_len > 0)
        server_req_put_locked(server_queue_pop(s));
    free(s->queue);
    s->queue = NULL;
    pthread_cond_destroy(&s->work);
}

