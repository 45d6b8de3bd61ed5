/*
 * fwd.h - what a forward pass works with: the engine's side of one step.
 * Owned and filled by the engine (src/engine.c); read and used by the
 * architecture files and the shared blocks. Holds no model weights and no
 * sequence state (those come from the model and the batch's sequences).
 */
#ifndef MOESTREAM_FWD_H
#define MOESTREAM_FWD_H

#include <stdbool.h>
#include <stdint.h>

#include "engine_types.h"
#include "expert_stream.h"
#include "matvec.h"
#include "model.h"
#include "pool.h"
#include "prefetch.h"

/* The quantized-activation cache: several products of one input share one
 * quantization (src/blocks.h). */
struct actq {
    void *xq;              /* rows of the largest activation size */
    size_t xq_row;         /* bytes per row */
    int xq_type;           /* act type held in xq, -1 when stale */
    enum matvec_act xq_act; /* and its precision */
    const float *xq_src;   /* rows xq was made from */
    int xq_n, xq_rows;
};

struct fwd {
    const struct model *m;
    struct pool *pool;
    struct provider *prov;
    int n_threads;
    int n_batch;           /* rows per step at most */
    int n_ctx;             /* positions per sequence at most */
    int request_cap;       /* experts per provider request */
    struct prefetch *pf;   /* prefetch policy (io/prefetch.h); NULL = none */
    float cache_bias;      /* --cache-bias: router bonus of cached experts (moe.c) */
    struct actq aq;
    enum matvec_act act[ENGINE_N_SITES]; /* activation precision per call site */
    struct expert_stream_scratch es;
    void *scratch;         /* the architecture's */
    engine_route_fn route_fn;
    void *route_ctx;
    engine_act_fn act_fn;
    void *act_ctx;
    struct engine_times times;
    char err[512];
};

#endif
