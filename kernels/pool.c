/*
 * pool.c - the kernels' thread pool: n-1 pthread workers plus the caller.
 *
 * Owns: the workers and one "generation" handshake per pool_run(). The caller
 * publishes (fn, ctx, n_tasks), bumps the generation, and every thread
 * (caller included) takes task ids from a shared atomic counter until none
 * remain; the caller then waits until every worker has checked out of that
 * generation, so the next run can reuse the counters safely.
 * Workers spin on the generation for a while (a decode step issues many
 * small matvecs back to back) and then block on a condition variable, so an
 * idle pool costs no CPU. The futex wake-up is only paid when some worker is
 * actually asleep. Nothing is allocated after pool_init(); nothing prints.
 * Called by matvec.c and the model forward pass, from one thread at a time.
 */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

/* Spin iterations before a worker blocks (about 10-50 us with the pause hint):
 * long enough to bridge back-to-back runs within a token, short enough not to
 * burn a shared core while the model waits for the disk. */
#define POOL_SPIN_WORKER 4096
/* Caller spins this many times between sched_yield() calls while waiting. */
#define POOL_SPIN_CALLER 256

struct pool_worker {
    struct pool *pool;
    pthread_t thread;
};

struct pool {
    int n_threads;                 /* workers + caller */
    struct pool_worker *workers;   /* [n_threads - 1] */

    /* current job, written by the caller before the generation bump */
    pool_fn fn;
    void *ctx;
    int n_tasks;

    atomic_uint gen;               /* bumped once per pool_run */
    atomic_int next_task;          /* next task id to hand out */
    atomic_int n_done;             /* workers finished with this generation */
    atomic_int n_sleeping;         /* workers blocked (or about to) on cond */
    atomic_bool stop;

    pthread_mutex_t mutex;
    pthread_cond_t cond;
};

static inline void pool_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void pool_do_tasks(struct pool *p)
{
    const int n = p->n_tasks;
    for (;;) {
        int t = atomic_fetch_add_explicit(&p->next_task, 1, memory_order_relaxed);
        if (t >= n)
            break;
        p->fn(p->ctx, t, n);
    }
}

/* Returns the new generation once it differs from seen (or stop is set). */
static unsigned pool_wait_gen(struct pool *p, unsigned seen)
{
    for (int i = 0; i < POOL_SPIN_WORKER; i++) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen)
            return g;
        pool_cpu_relax();
    }
    pthread_mutex_lock(&p->mutex);
    /* seq_cst pairing with pool_run: either the caller sees n_sleeping > 0
     * and broadcasts under the mutex, or we see the new generation here */
    atomic_fetch_add(&p->n_sleeping, 1);
    unsigned g;
    while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop))
        pthread_cond_wait(&p->cond, &p->mutex);
    atomic_fetch_sub(&p->n_sleeping, 1);
    pthread_mutex_unlock(&p->mutex);
    return g;
}

static void *pool_worker_main(void *arg)
{
    struct pool_worker *w = arg;
    struct pool *p = w->pool;
    /* generation 0 is the one pool_init left; reading p->gen here instead
     * would skip a run published before this thread got scheduled */
    unsigned seen = 0;
    for (;;) {
        seen = pool_wait_gen(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire))
            break;
        pool_do_tasks(p);
        atomic_fetch_add_explicit(&p->n_done, 1, memory_order_release);
    }
    return NULL;
}

static void pool_wake(struct pool *p)
{
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mutex);
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mutex);
    }
}

struct pool *pool_init(int n_threads)
{
    if (n_threads < 1)
        return NULL;
    struct pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->n_threads = n_threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->next_task, 0);
    atomic_init(&p->n_done, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->stop, false);
    if (pthread_mutex_init(&p->mutex, NULL) != 0)
        goto err_free;
    if (pthread_cond_init(&p->cond, NULL) != 0)
        goto err_mutex;
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof(*p->workers));
        if (!p->workers)
            goto err_cond;
    }
    int started = 0;
    for (; started < n_threads - 1; started++) {
        p->workers[started].pool = p;
        if (pthread_create(&p->workers[started].thread, NULL, pool_worker_main, &p->workers[started]) != 0)
            goto err_threads;
    }
    return p;

err_threads:
    atomic_store(&p->stop, true);
    atomic_fetch_add(&p->gen, 1);
    pthread_mutex_lock(&p->mutex);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mutex);
    for (int i = 0; i < started; i++)
        pthread_join(p->workers[i].thread, NULL);
    free(p->workers);
err_cond:
    pthread_cond_destroy(&p->cond);
err_mutex:
    pthread_mutex_destroy(&p->mutex);
err_free:
    free(p);
    return NULL;
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, true);
    atomic_fetch_add(&p->gen, 1);
    pthread_mutex_lock(&p->mutex);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mutex);
    for (int i = 0; i < p->n_threads - 1; i++)
        pthread_join(p->workers[i].thread, NULL);
    free(p->workers);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mutex);
    free(p);
}

int pool_n_threads(const struct pool *p)
{
    return p->n_threads;
}

void pool_run(struct pool *p, pool_fn fn, void *ctx, int n_tasks)
{
    if (n_tasks <= 0)
        return;
    /* one thread or one task: no handshake, run inline */
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++)
            fn(ctx, t, n_tasks);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next_task, 0, memory_order_relaxed);
    atomic_store_explicit(&p->n_done, 0, memory_order_relaxed);
    /* seq_cst bump: publishes the job and orders against the n_sleeping read */
    atomic_fetch_add(&p->gen, 1);
    pool_wake(p);

    pool_do_tasks(p);

    const int n_workers = p->n_threads - 1;
    for (int spins = 0; atomic_load_explicit(&p->n_done, memory_order_acquire) < n_workers; spins++) {
        if (spins % POOL_SPIN_CALLER == POOL_SPIN_CALLER - 1)
            sched_yield();
        else
            pool_cpu_relax();
    }
}
