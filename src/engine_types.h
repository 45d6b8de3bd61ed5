/*
 * engine_types.h - the data types of one forward step, shared by the
 * engine's users (src/engine.h) and the forward passes (src/fwd.h): the rows
 * of a step, the routing hook and the timing split. Plain data.
 */
#ifndef MOESTREAM_ENGINE_TYPES_H
#define MOESTREAM_ENGINE_TYPES_H

#include <stdint.h>

struct seq;

/* One forward step: n rows; row t is token tok[t] at position pos[t] of
 * sequence seq[t]. Rows of one sequence come in position order and continue
 * it (pos = its n_past, n_past + 1, ...). out: logits wanted for row t when
 * out[t] != 0, written densely in row order; NULL = only the last row. */
struct engine_batch {
    int n;
    const int32_t *tok;
    const int32_t *pos;
    struct seq *const *seq;
    const uint8_t *out;
};

/* Where a projection sits in a forward pass. Each site gets its own
 * activation precision (8 or 16 bits, kernels/matvec.h) from the engine's
 * options, so precision goes where it matters and speed where it does not. */
enum engine_site {
    ENGINE_SITE_ATTN,      /* attention: q/k/v/o, MLA and delta-net projections */
    ENGINE_SITE_ROUTER,    /* expert routers and the shared expert's scalar gate */
    ENGINE_SITE_EXPERT,    /* routed experts: gate and up */
    ENGINE_SITE_DOWN,      /* routed experts: down */
    ENGINE_SITE_SHARED,    /* shared experts and dense FFN layers */
    ENGINE_SITE_OUTPUT,    /* the output head */
    ENGINE_N_SITES
};

/* Called once per (row, layer) with the router's choice; may be NULL. */
typedef void (*engine_route_fn)(void *ctx, int pos, int layer, const int32_t *experts, const float *weights, int k);

/* Called by the MoE block once per routed expert and step with the rows the
 * expert computes: kind 0 = its input (n_embd values per row, what gate and
 * up multiply), kind 1 = the input of its down projection (n_ff_exp per
 * row); weights[r] = the router weight of row r. For statistics (split-time
 * self-calibration); may be NULL. Runs on the stepping thread. */
typedef void (*engine_act_fn)(void *ctx, int layer, int expert, int kind, const float *rows, const float *weights,
                              int n_rows, int dim);

/* Timing split for statistics (seconds, cumulative). */
struct engine_times {
    double compute_s;       /* everything but I/O wait */
    double io_wait_s;       /* blocked in the provider */
    double attn_s;          /* norms, q/k/v/o projections, rope, attention */
    double router_s;        /* router projection, softmax, top-k */
    double experts_s;       /* expert products (not waiting) */
    double output_s;        /* final norm and output projection */
};

#endif
