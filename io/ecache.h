/*
 * ecache.h - the expert cache: (layer, expert) -> slot in one aligned arena.
 *
 * Slots are slot_size bytes carved from one anonymous mapping. A slot is
 * pinned while a read fills it or a caller computes from it; only unpinned
 * slots are evicted (the shape of SQLite's pcache1). Two replacement
 * policies, selectable so a bench can compare them:
 *   ECACHE_SLRU  segmented LRU: a first use enters the probation segment, a
 *                reuse while resident promotes to the protected segment
 *                (ECACHE_PROTECTED_PCT of the slots); victims come from the
 *                cold end of probation first. Experts used once do not push
 *                out the frequently routed ones.
 *   ECACHE_LRU   plain least-recently-released.
 * Knows nothing about files or reads. Not thread-safe. No allocation after
 * ecache_init.
 */
#ifndef MOESTREAM_ECACHE_H
#define MOESTREAM_ECACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ECACHE_PROTECTED_PCT 80

enum ecache_policy { ECACHE_SLRU = 0, ECACHE_LRU };

/* What ecache_acquire found. */
enum ecache_state {
    ECACHE_HIT = 0,   /* resident and filled */
    ECACHE_MISS,      /* slot assigned to the key; the caller fills it */
    ECACHE_LOADING,   /* assigned by an earlier miss whose fill is not done */
};

struct ecache_stats {
    uint64_t hits;
    uint64_t misses;
    uint64_t evictions;   /* filled slots reassigned to another key */
};

struct ecache;

/* n_expert[0..n_layer) experts per layer (0 allowed); n_slots slots of
 * slot_size bytes (a multiple of 4096). 0 or -errno with err filled. */
int ecache_init(struct ecache **out, const int *n_expert, int n_layer, size_t slot_size,
                size_t n_slots, enum ecache_policy policy, char *err, size_t errlen);
void ecache_free(struct ecache *c);

/* The arena: n_slots * slot_size bytes, page aligned; for buffer
 * registration. */
uint8_t *ecache_arena(const struct ecache *c, size_t *bytes);
size_t ecache_slot_size(const struct ecache *c);
size_t ecache_n_slots(const struct ecache *c);

/* Pins the slot of (layer, expert), assigning one (evicting the coldest
 * unpinned slot) if it is not resident. Returns the slot index and sets
 * *state, or -ENOSPC when every slot is pinned, -EINVAL for a bad key. */
int ecache_acquire(struct ecache *c, int layer, int expert, enum ecache_state *state);
/* As ecache_acquire, but the access does not count toward the key's
 * frequency: for speculative reads (prefetch), so guesses do not earn
 * protection. A miss enters probation. */
int ecache_acquire_quiet(struct ecache *c, int layer, int expert, enum ecache_state *state);
/* As ecache_acquire_quiet, for a guess that must not displace a hot
 * expert: under SLRU it takes only a free slot or the coldest probation
 * slot, never a protected one (-ENOSPC then). Under LRU, as quiet. */
int ecache_acquire_spec(struct ecache *c, int layer, int expert, enum ecache_state *state);
/* The fill of a MISS slot finished: later acquires are hits. */
void ecache_set_ready(struct ecache *c, int slot);
/* The fill failed: forget the key; the slot is freed when unpinned. */
void ecache_discard(struct ecache *c, int slot);
/* Drops one pin. Unpinned filled slots become eviction candidates. */
void ecache_unpin(struct ecache *c, int slot);
/* Drops one pin; an unpinned probation slot goes to the cold end of its
 * list, so it is the next victim unless a request takes it first (a
 * prefetched blob no request asked for yet: a wrong guess costs one slot,
 * not the expert that would otherwise be evicted next). */
void ecache_unpin_cold(struct ecache *c, int slot);

/* Marks (layer, expert) as part of a pinned profile: once resident and
 * released it is never evicted (the caller bounds how many keys it marks,
 * leaving slots for the rest). Takes effect from its next release. 0 or
 * -EINVAL for a bad key. */
int ecache_set_sticky(struct ecache *c, int layer, int expert);
/* Slot of (layer, expert) if assigned, else -1. No pin, no policy update. */
int ecache_find(const struct ecache *c, int layer, int expert);
uint8_t *ecache_slot_data(const struct ecache *c, int slot);
void ecache_slot_key(const struct ecache *c, int slot, int *layer, int *expert);
int ecache_pins(const struct ecache *c, int slot);
bool ecache_is_ready(const struct ecache *c, int slot);
void ecache_get_stats(const struct ecache *c, struct ecache_stats *s);

#endif
