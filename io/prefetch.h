/*
 * prefetch.h - prefetch policies: what to read before the forward pass asks.
 * A policy observes the routing (layer, the experts the rows chose) and,
 * when the forward pass offers it a moment (after a layer's demand reads
 * started), names experts of the next layer to read early. Its inputs are
 * the routing it has seen and, optionally, a guess the architecture computes
 * (router lookahead: layer L+1's router on layer L's state). Only timing
 * depends on a policy; the numbers never do.
 *
 * Policies:
 *   LOOKAHEAD  the architecture's router-lookahead guess, as is.
 *   COACT      co-activation statistics learned online from single-token
 *              (decode) steps: P(b at L+1 | a at L) within a token and
 *              P(b at L | a at L of the previous token). The hints for L+1
 *              are the experts whose estimated probability, averaged over
 *              the experts just chosen, is at least PREFETCH_MIN_P.
 *   BOTH       the lookahead guess ranked first, then co-activation picks.
 * Every policy measures its precision (hints the next routing of that layer
 * then chose) over a sliding window and turns itself down when guesses
 * miss: at most round(k * precision / PREFETCH_GOOD_PREC) hints (k = experts
 * per token), and when that reaches 0, one probe hint every
 * PREFETCH_PROBE_EVERY steps keeps measuring.
 *
 * Statistics persist in a file (prefetch_save / prefetch_load): magic
 * "MSCOACT1", u32 version, u32 n_layer, u32 n_expert, u32 reserved, u64
 * payload bytes, the payload (u32 little-endian counts: occurrences
 * [n_layer][n_expert], cross-layer [n_layer][n_expert][n_expert], temporal
 * [n_layer][n_expert][n_expert]) and the XXH3-64 of the payload.
 *
 * Owns: the policy state (allocated in prefetch_open, nothing afterwards).
 * Knows expert ids and layers, nothing about transformers. Never prints.
 */
#ifndef MOESTREAM_PREFETCH_H
#define MOESTREAM_PREFETCH_H

#include <stddef.h>
#include <stdint.h>

enum prefetch_kind {
    PREFETCH_NONE = 0,
    PREFETCH_LOOKAHEAD,       /* read the architecture's router-lookahead guess */
    PREFETCH_COACT,           /* co-activation statistics */
    PREFETCH_BOTH,            /* lookahead first, co-activation after */
};

#define PREFETCH_MIN_P 0.30f         /* co-activation: least estimated probability to hint */
#define PREFETCH_GOOD_PREC 0.50      /* precision at which every hint slot is used */
#define PREFETCH_WINDOW 256          /* hints in the precision window */
#define PREFETCH_PROBE_EVERY 16      /* steps between probes when turned down to 0 */
#define PREFETCH_MAX_EXPERT 1024     /* statistics kept for at most this many experts */

struct prefetch;

/* Parses "off", "lookahead", "coact", "both". 0 or -EINVAL. */
int prefetch_parse_kind(const char *s, enum prefetch_kind *out);
const char *prefetch_kind_name(enum prefetch_kind k);

/* A policy for models of n_layer layers of up to n_expert experts, k of
 * them per token. 0 or -ENOMEM / -EINVAL. */
int prefetch_open(struct prefetch **out, enum prefetch_kind kind, int n_layer, int n_expert, int k);
void prefetch_close(struct prefetch *p);
enum prefetch_kind prefetch_kind(const struct prefetch *p);
/* True when the policy issues hints at all (kind is not NONE). */
int prefetch_active(const struct prefetch *p);
/* True when the policy wants the architecture's lookahead guess for the
 * next layer (so the forward pass computes it only then). */
int prefetch_wants_lookahead(const struct prefetch *p);

/* The experts a step's rows chose at a layer (n ids, repeats allowed; k per
 * row). Learns from single-row steps only (n <= k). */
void prefetch_observe(struct prefetch *p, int layer, const int32_t *ids, int n);

/* Experts of `layer` to read early, given the lookahead guess (may be NULL
 * with n_guess 0; out may alias guess). Writes at most max ids to out;
 * returns the count. */
int prefetch_hints(struct prefetch *p, int layer, const int32_t *guess, int n_guess, int32_t *out, int max);

struct prefetch_stats {
    uint64_t hinted;          /* hints evaluated against the next routing */
    uint64_t correct;         /* of them, chosen by that routing */
    double precision;         /* over the current window */
    int budget;               /* hints allowed per layer now */
};
void prefetch_get_stats(const struct prefetch *p, struct prefetch_stats *s);

/* Statistics file (format above). save writes path.tmp then renames.
 * load refuses a file of another model shape, version, a bad magic, a
 * truncated file or a checksum mismatch, naming the file and what differs.
 * 0 or -errno / -EINVAL with one line in err. */
int prefetch_save(const struct prefetch *p, const char *path, char *err, size_t errlen);
int prefetch_load(struct prefetch *p, const char *path, char *err, size_t errlen);

#endif
