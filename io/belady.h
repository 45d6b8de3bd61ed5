/*
 * belady.h - Belady's optimal replacement (MIN) over a recorded sequence of
 * expert accesses: on a miss with every slot full, evict the resident key
 * whose next use lies farthest ahead. No policy that only knows the past can
 * have a higher hit rate with the same slots; trace replay reports it as the
 * ceiling for LRU, SLRU and a pinned profile.
 *
 * Keys are any non-negative integers (layer * n_expert + expert). Accesses
 * are counted as the provider counts them: one per distinct expert of a
 * layer's request. Owns nothing after it returns; allocates its working
 * arrays per call. Pure computation: no I/O, never prints.
 */
#ifndef MOESTREAM_BELADY_H
#define MOESTREAM_BELADY_H

#include <stddef.h>
#include <stdint.h>

/* Hits of MIN with n_slots slots over keys[0..n) (cold start) into *hits,
 * counting only accesses i with count[i] != 0 when count is not NULL (e.g.
 * the decode part of a run that began with a prompt). 0, -EINVAL (n_slots
 * 0, a negative key) or -ENOMEM. */
int belady_hits(const int32_t *keys, const uint8_t *count, size_t n, size_t n_slots, uint64_t *hits);

#endif
