/*
 * expert_stream.h - one layer's expert traffic for one forward step: the
 * union of the experts the step's rows routed to, cut into provider requests
 * of at most `cap` experts, and delivered in batches as they become ready
 * (every resident expert at once, then misses as their reads complete).
 *
 * The single copy of the request protocol (provider_request / next /
 * release) used by the forward pass, preload and trace replay, so the three
 * read exactly the same bytes for the same routing and cache.
 *
 * Owns: the union (first-seen order), the request cap loop, batching of
 * ready experts, release after the batch is computed, and the time blocked
 * waiting. Scratch is passed in by the caller (no allocation here).
 */
#ifndef MOESTREAM_EXPERT_STREAM_H
#define MOESTREAM_EXPERT_STREAM_H

#include <stdint.h>

struct provider;

/* Computes a batch of nb ready experts (ids[i], weights at blobs[i]); the
 * blobs stay valid until it returns. Return 0, or a negative error that
 * stops the stream (message is the callback's business). */
typedef int (*expert_stream_batch_fn)(void *ctx, const int32_t *ids, const uint8_t *const *blobs, int nb);
/* Called once after the first request of the layer started its reads (a
 * place to start prefetching the next layer); may be NULL. */
typedef void (*expert_stream_started_fn)(void *ctx);

struct expert_stream_scratch {
    int32_t *uniq;            /* [n_expert] */
    uint32_t *seen;           /* [n_expert] stamps; zeroed once */
    uint32_t stamp;
    int32_t *b_ids;           /* [n_expert] one delivered batch */
    const uint8_t **b_blobs;  /* [n_expert] */
};

/* Union of ids[0..n) in first-seen order into s->uniq; returns its size.
 * Every id must be in [0, n_expert). */
int expert_stream_union(struct expert_stream_scratch *s, const int32_t *ids, int n);

/* Streams the n_uniq experts of s->uniq for `layer` through the provider in
 * requests of at most cap, calling fn for every batch of ready experts and
 * releasing them after it returns. *io_wait_s (may be NULL) accumulates the
 * time blocked in provider_next. 0, a provider error (-errno, message in
 * provider_error) or the callback's error. */
int expert_stream_run(struct provider *p, int layer, struct expert_stream_scratch *s, int n_uniq, int cap,
                      expert_stream_batch_fn fn, expert_stream_started_fn started, void *ctx, double *io_wait_s);

#endif
