/*
 * engine.h - runs forward steps of a model: owns the thread pool, the expert
 * provider (cache + reader, io/provider.h) and the architecture's scratch.
 * One step carries rows of (sequence, position, token), so tokens of several
 * sequences share one pass over the weights and one read of each expert; a
 * row's numbers never depend on the other rows of its step.
 *
 * Everything is allocated in engine_open; engine_step allocates nothing.
 * Not thread-safe: one thread drives an engine.
 */
#ifndef MOESTREAM_ENGINE_H
#define MOESTREAM_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine_types.h"
#include "model.h"

struct seq;
struct engine;

struct engine_opts {
    int n_threads;        /* 0 = the model plan's */
    int prefetch;         /* enum prefetch_kind (io/prefetch.h): decode guesses of layer L+1's
                             experts read early; 0 = none, 1 (true) = router lookahead */
    const char *coact_path; /* co-activation statistics to start from (prefetch_load); NULL = none */
    float cache_bias;     /* nonzero: added to the router logits of cached experts before the
                             top-k (selection only; the weights stay the router's): lossy */
    /* Activation precision of the integer dot products per call site, in
     * bits: act_site[s] = 8 or 16 for site s (enum engine_site), 0 = the
     * default split (engine_site_default_bits). Each engine keeps its own. */
    uint8_t act_site[ENGINE_N_SITES];
    /* Kernel ISA ("ref", "avx2", "avx512"; NULL = MOESTREAM_ISA or the best).
     * The kernels keep it process-wide: engines in one process must agree. */
    const char *isa;
};

/* The default activation precision of a site ("mixed"): 8 bits for the
 * routed experts' down projection, 16 for the rest. Errors reach the logits
 * mostly by flipping near-tied routing choices downstream; of the splits
 * measured (README, "Activation precision") this is the one with 8-bit work
 * that stays closer to exact than llama.cpp on every logit fixture. */
int engine_site_default_bits(enum engine_site s);
/* The site's name as --act-bits spells it ("attn", "router", ...); NULL
 * outside [0, ENGINE_N_SITES). */
const char *engine_site_name(enum engine_site s);

/* Opens the provider with the model plan's cache and allocates scratch for
 * steps of model_plan()->n_batch rows. 0 or -errno with err. */
int engine_open(struct engine **out, const struct model *m, const struct engine_opts *o, char *err, size_t errlen);
void engine_close(struct engine *e);

/* Runs one step (b->n <= the plan's n_batch). 0, -ENOSPC when a row's
 * position is outside its sequence's context, -EINVAL for a bad token or
 * row order, or the provider's error; message in engine_error(). On success
 * every sequence's n_past becomes its last row's position + 1. */
int engine_step(struct engine *e, const struct engine_batch *b, float *logits);

/* Reads every expert of every layer into the cache, as far as the cache
 * holds them. progress(done, total) may be NULL. 0 or the provider's error. */
int engine_preload(struct engine *e, void (*progress)(uint64_t done, uint64_t total), char *err, size_t errlen);

const struct model *engine_model(const struct engine *e);
struct provider *engine_provider(const struct engine *e);
/* The prefetch policy (io/prefetch.h); its statistics can be saved. */
struct prefetch *engine_prefetch(const struct engine *e);
int engine_n_batch(const struct engine *e);
const char *engine_error(const struct engine *e);
void engine_set_route_hook(struct engine *e, engine_route_fn fn, void *ctx);
/* Expert activations hook (engine_types.h); NULL turns it off. */
void engine_set_act_hook(struct engine *e, engine_act_fn fn, void *ctx);
void engine_get_times(const struct engine *e, struct engine_times *t);

#endif
