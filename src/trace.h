/*
 * trace.h - routing traces: what the router chose, per forward step, token
 * and layer, written by `moestream run|bench --trace-out` and read back by
 * `moestream iobench --trace` to replay the same expert requests with no
 * compute. The format is defined here and nowhere else.
 *
 * Format (version 1): JSON lines, UTF-8, one object per line.
 *   line 1, the header:
 *     {"format":"moestream-route-trace","version":1,"n_layer":L,"n_expert":E,
 *      "n_expert_used":K,"n_ctx":C,"n_batch":B,"n_threads":T,
 *      "ram_budget":BYTES,"cache_bytes":BYTES,"preload":0|1}
 *     n_ctx, n_batch and n_threads size the KV cache and scratch, so a replay
 *     that opens the model with them and the same --ram-budget gets the same
 *     expert cache (ram_budget is the resolved budget of the run,
 *     cache_bytes its expert cache). preload: the run filled the cache first.
 *   then one record per (token, layer) the router ran on:
 *     {"step":S,"pos":P,"layer":L,"experts":[e0,...],"weights":[w0,...]}
 *     step  forward step (0, 1, ...): one chunk of at most n_batch tokens of
 *           one session_eval call. Within a step the forward pass asks the
 *           provider, layer by layer, for the union of the experts of all the
 *           step's tokens, in record order (token, then rank), each once. A
 *           replay must request per (step, layer) to read what the run read.
 *     pos   the token's position in the context
 *     layer the layer (records of a step come layer by layer, tokens in order)
 *     experts, weights  the K chosen experts, best first, and their router
 *           weights (after top-k renormalisation where the model does it)
 * A step of one token is a decode step; a step of several is prompt
 * processing (a one-token prompt therefore counts as decode).
 *
 * The writer is a session route hook (session_route_fn's signature) plus
 * trace_writer_begin_eval, which the caller calls before each session_eval
 * so steps can be numbered. The reader loads a whole trace into memory and
 * validates it; errors name the file, the line and what was expected.
 * Neither prints nor exits. Called by src/cli_*.c, bench/replay.c and tests.
 */
#ifndef MOESTREAM_TRACE_H
#define MOESTREAM_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACE_FORMAT "moestream-route-trace"
#define TRACE_VERSION 1
#define TRACE_MAX_K 256  /* most experts per token a record may hold */

struct trace_header {
    int n_layer;
    int n_expert;
    int n_expert_used;
    int n_ctx, n_batch, n_threads;
    uint64_t ram_budget;   /* bytes, as resolved by the run */
    uint64_t cache_bytes;  /* bytes of expert cache of the run */
    bool preload;
};

/* ---- writer ---- */

struct trace_writer;

/* Creates path and writes the header. 0 or -errno with err. */
int trace_writer_open(struct trace_writer **out, const char *path, const struct trace_header *h, char *err,
                      size_t errlen);
/* Call before each session_eval of n tokens starting at position n_past. */
void trace_writer_begin_eval(struct trace_writer *w, int n_past, int n);
/* The route hook: pass as session_set_route_hook(s, trace_writer_route, w). */
void trace_writer_route(void *w, int pos, int layer, const int32_t *experts, const float *weights, int k);
/* Flushes and closes; 0, or -EIO (with err) if any write failed. NULL is a
 * no-op. */
int trace_writer_close(struct trace_writer *w, char *err, size_t errlen);

/* ---- reader ---- */

struct trace_rec {
    int step, pos, layer;
    int k;                 /* experts in this record */
    size_t first;          /* index of its first expert in trace.experts */
};

struct trace {
    struct trace_header h;
    struct trace_rec *rec; /* [n_rec] in file order */
    int n_rec;
    int32_t *experts;      /* [sum of k] */
    float *weights;        /* [sum of k] */
    int n_steps;
    int *step_first;       /* [n_steps + 1] first record of each step; last = n_rec */
    int *step_tokens;      /* [n_steps] tokens in each step */
    int n_tokens;          /* sum of step_tokens */
    int n_decode_tokens;   /* tokens of one-token steps */
};

/* Reads and validates a whole trace. 0 or -errno with err naming the file,
 * line and column of the first problem. */
int trace_read(struct trace **out, const char *path, char *err, size_t errlen);
void trace_free(struct trace *t);

#endif
