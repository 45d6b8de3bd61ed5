/*
 * prefetch.h - prefetch policies: what to read before the forward pass asks.
 * A policy observes the routing (layer, the experts the rows chose) and,
 * when the forward pass offers it a moment (after a layer's demand reads
 * started), names experts of the next layer to read early. Its inputs are
 * the routing it has seen and, optionally, a guess the architecture computes
 * (router lookahead: layer L+1's router on layer L's state). Only timing
 * depends on a policy; the numbers never do.
 *
 * Owns: the policy state (allocated in prefetch_open, nothing afterwards).
 * Knows expert ids and layers, nothing about transformers.
 */
#ifndef MOESTREAM_PREFETCH_H
#define MOESTREAM_PREFETCH_H

#include <stdint.h>

enum prefetch_kind {
    PREFETCH_NONE = 0,
    PREFETCH_LOOKAHEAD,       /* read the architecture's router-lookahead guess */
};

struct prefetch;

/* A policy for models of n_layer layers of up to n_expert experts.
 * 0 or -ENOMEM / -EINVAL. */
int prefetch_open(struct prefetch **out, enum prefetch_kind kind, int n_layer, int n_expert);
void prefetch_close(struct prefetch *p);
enum prefetch_kind prefetch_kind(const struct prefetch *p);
/* True when the policy wants the architecture's lookahead guess for the
 * next layer (so the forward pass computes it only then). */
int prefetch_wants_lookahead(const struct prefetch *p);

/* The experts a step's rows chose at a layer (n ids, repeats allowed). */
void prefetch_observe(struct prefetch *p, int layer, const int32_t *ids, int n);

/* Experts of `layer` to read early, given the lookahead guess (may be NULL
 * with n_guess 0). Writes at most max ids to out; returns the count. */
int prefetch_hints(struct prefetch *p, int layer, const int32_t *guess, int n_guess, int32_t *out, int max);

#endif
