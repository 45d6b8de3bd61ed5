/*
 * replay.h - trace replay: drives an engine's expert provider with the requests
 * a recorded run made (src/trace.h), with no compute, to measure the I/O-only
 * ceiling of that run on this machine and cache configuration.
 *
 * For each forward step of the trace and each layer, the replay requests the
 * union of the step's experts in record order, cut into requests of at most
 * the forward pass's request size (the model plan's request_cap), through
 * the same expert stream as the forward pass (io/expert_stream.h), so the
 * bytes read equal the run's for the same cache size and backend (exactly with a deterministic completion order, e.g. the
 * buffered backend or a cache that never evicts).
 * Does not print or exit. Allocates only at the start of replay_run.
 * Called by src/cli_iobench.c and tests/test_bench.c.
 */
#ifndef MOESTREAM_REPLAY_H
#define MOESTREAM_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "trace.h"

struct replay_stats {
    int n_steps;
    int n_tokens;             /* every token of the trace */
    int n_prefill_tokens;     /* tokens of multi-token steps */
    int n_decode_tokens;      /* tokens of one-token steps */
    double prefill_s;         /* wall time replaying prompt steps */
    double decode_s;          /* wall time replaying decode steps */
    uint64_t bytes_read;      /* by the replay (not counting a preload) */
    uint64_t decode_bytes_read;
    uint64_t reads, hits, misses, evictions;
    double io_wait_s;         /* the provider's blocked time */
    uint64_t belady_hits;     /* hits of Belady's MIN with the same slots (io/belady.h) */
    uint64_t accesses;        /* distinct experts requested per layer and step (hits + misses) */
    uint64_t belady_decode_hits, decode_accesses; /* the same, counted in one-token steps only */
};

/* Replays t through e's provider (whose cache should start as the run's did:
 * fresh, or preloaded when t->h.preload). The trace must match the model's
 * n_layer, n_expert and n_expert_used. 0 or -errno with err. */
int replay_run(struct engine *e, const struct trace *t, struct replay_stats *st, char *err, size_t errlen);

#endif
