/*
 * session.h - one inference context over a loaded model: the KV cache (sized
 * once from n_ctx), scratch for a batch of up to n_batch tokens, and the
 * forward pass entry point. Everything is allocated in session_init; eval
 * allocates nothing.
 */
#ifndef MOESTREAM_SESSION_H
#define MOESTREAM_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "pool.h"

struct session_opts {
    int n_ctx;      /* KV positions; context overflow is an error */
    int n_batch;    /* tokens per forward step during prompt processing */
    int n_threads;
    bool prefetch;  /* decode: guess layer L+1's experts from layer L and read them early */
};

/* Called once per (token, layer) with the router's choice; may be NULL. */
typedef void (*session_route_fn)(void *ctx, int pos, int layer, const int32_t *experts,
                                 const float *weights, int k);

struct session;

/* Bytes session_init will allocate for this model and these options. */
uint64_t session_kv_bytes(const struct model_hparams *hp, int n_ctx);
uint64_t session_scratch_bytes(const struct model_hparams *hp, int n_ctx, int n_batch, int n_threads);

int session_init(struct session **out, struct model *m, struct pool *pool, const struct session_opts *o,
                 char *err, size_t errlen);
void session_free(struct session *s);

/* Evaluates tokens[0..n) at positions s->n_past.. (appending to the cache).
 * logits: [n][n_vocab] when all_logits, else the last position's [n_vocab];
 * may be NULL. 0, or -ENOSPC on context overflow, or the provider's error;
 * message in session_error(). n may exceed n_batch (processed in chunks). */
int session_eval(struct session *s, const int32_t *tokens, int n, float *logits, bool all_logits);

/* Forgets the cache (positions restart at 0). */
void session_reset(struct session *s);
int session_n_past(const struct session *s);
int session_n_ctx(const struct session *s);
const char *session_error(const struct session *s);
void session_set_route_hook(struct session *s, session_route_fn fn, void *ctx);

/* Timing split for statistics (seconds, cumulative). */
struct session_times {
    double compute_s;       /* everything but I/O wait */
    double io_wait_s;       /* blocked in the provider */
    double attn_s;          /* norms, q/k/v/o projections, rope, attention */
    double router_s;        /* router projection, softmax, top-k */
    double experts_s;       /* expert products (not waiting) */
    double output_s;        /* final norm and output projection */
};
void session_get_times(const struct session *s, struct session_times *t);

#endif
