/*
 * pool.h - the one thread pool shared by all kernels.
 *
 * Owns: n-1 worker pthreads plus the caller, and a barrier-style "run this
 * function on task ids 0..n_tasks-1" call. Must not allocate after
 * pool_init(). Called by matvec.c and the model forward pass.
 */
#ifndef MOESTREAM_POOL_H
#define MOESTREAM_POOL_H

struct pool;

/* fn(ctx, task, n_tasks) runs once per task id; tasks are spread over the
 * threads; pool_run returns when all are done. */
typedef void (*pool_fn)(void *ctx, int task, int n_tasks);

/* n_threads >= 1 (the calling thread counts as one). NULL on failure. */
struct pool *pool_init(int n_threads);
void pool_free(struct pool *p);
int pool_n_threads(const struct pool *p);

/* Runs fn over n_tasks tasks on all threads; not reentrant. */
void pool_run(struct pool *p, pool_fn fn, void *ctx, int n_tasks);

#endif
