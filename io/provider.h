/*
 * provider.h - the expert provider: the only way the model code (src/) gets
 * expert weights. Behind it: the expert cache, the RAM budget and the reader
 * backends (io_uring, pread pool, buffered).
 *
 * Protocol for one layer of one forward step:
 *   provider_request(p, L, ids, n)      start loading experts ids[0..n)
 *   while ((r = provider_next(p, &e, &blob)) > 0) {
 *       compute expert e from blob;      blob stays valid and resident
 *       provider_release(p, L, e);       until released
 *   }
 *   r < 0: I/O error, message in provider_error(p).
 * Resident (hit) experts are delivered first, the others as their reads
 * complete. A request may repeat ids; each distinct id is delivered once.
 * Not thread-safe: one forward pass drives one provider.
 */
#ifndef MOESTREAM_PROVIDER_H
#define MOESTREAM_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct split_model;
struct reader_fault;

enum provider_io { PROVIDER_IO_URING = 0, PROVIDER_IO_PREAD, PROVIDER_IO_BUFFERED };
/* Slot replacement (io/ecache.h): segmented LRU keeps frequently routed
 * experts; plain LRU is there to compare against. */
enum provider_cache_policy { PROVIDER_CACHE_SLRU = 0, PROVIDER_CACHE_LRU };

struct provider_opts {
    enum provider_io io;       /* preferred backend; falls back once, saying why */
    uint64_t cache_bytes;      /* bytes for expert slots; 0 = every expert resident */
    int queue_depth;           /* expert reads in flight; 0 = default, or from the probe */
    /* With queue_depth 0: probe the store at open (io/qdprobe.h) when the
     * experts total at least PROVIDER_PROBE_MIN_BYTES (1), always (2, tests)
     * or never (0: READER_DEFAULT_QD). */
    int qd_probe;
    uint64_t read_chunk;       /* read an expert blob as concurrent pieces of about this many
                                  bytes (split models; 0 = one read per blob) */
    bool verify_reads;         /* check XXH3 of every blob read */
    bool mlock;
    void (*log)(const char *msg); /* one-line notices (fallbacks); may be NULL */
    /* progress of waits that can take seconds (io_uring buffer registration;
     * model_open also uses it for the pinned weights); may be NULL */
    void (*progress)(const char *what, uint64_t done, uint64_t total);
    int max_active;            /* experts one layer may need at once (n_expert_used of
                                  the largest layer); the budget must hold this many
                                  slots. 0 = 8, capped at the largest n_expert */
    enum provider_cache_policy cache_policy;
    const struct reader_fault *fault; /* tests only (io/reader.h); NULL otherwise */
    /* The local SSD tier (io/tier.h): a cache file in tier_dir of at most
     * tier_bytes (0 = half the free space there) between the RAM cache and
     * the store. NULL = none. A split directory only (it needs checksums). */
    const char *tier_dir;
    uint64_t tier_bytes;
};

struct provider_stats {
    uint64_t bytes_read;       /* every expert read: store and SSD tier */
    uint64_t reads;
    uint64_t tier_bytes_read;  /* of bytes_read, read from the SSD tier (the rest: the store) */
    uint64_t tier_reads;       /* blobs delivered from the tier */
    uint64_t tier_bad;         /* tier blobs that failed their checksum (read from the store instead) */
    uint64_t tier_writes;      /* blobs copied into the tier */
    uint64_t tier_dropped;     /* copies dropped because the tier writer was busy */
    uint64_t tier_entries;     /* blobs in the tier now (of tier_slots) */
    uint64_t tier_slots;
    uint64_t tier_entries_at_open; /* blobs found in the tier at open (a warm tier) */
    uint64_t hits;
    uint64_t misses;
    double io_wait_s;          /* time spent blocked on I/O: waiting for completions,
                                  and synchronous reads of the buffered backend */
    uint64_t evictions;        /* resident experts dropped to make room */
    uint64_t n_slots;          /* expert slots in the budget */
    uint64_t slot_bytes;       /* bytes per slot (largest blob_size) */
    uint64_t prefetches;       /* reads started by provider_prefetch */
    uint64_t prefetch_waits;   /* requested experts found still loading from a prefetch */
    double verify_s;           /* time spent checking the XXH3 of reads (verify_reads) */
    uint64_t prefetch_used;    /* prefetched experts a request then asked for (loading or landed) */
    uint64_t prefetch_wasted;  /* prefetched experts evicted or dropped before any request */
    double busy_s;             /* time with at least one read in flight (demand or prefetch),
                                  up to the moment its completion is reaped */
};

struct provider;

#define PROVIDER_PROBE_MIN_BYTES (1ull << 30)

/* Sets up cache, arena and reader. Refuses (-ENOSPC) a cache_bytes that
 * cannot hold max_active slots, saying how many bytes are needed. All memory
 * is allocated here; request/next/release allocate nothing. 0 or -errno with
 * one line in err. */
int provider_open(struct provider **out, const struct split_model *m,
                  const struct provider_opts *o, char *err, size_t errlen);
/* Waits for reads in flight, frees everything. NULL is a no-op. */
void provider_close(struct provider *p);

/* Pins a slot for each distinct id and starts every miss read at once.
 * -EBUSY if the previous request still has undelivered experts, -EINVAL for
 * a bad layer/id, -ENOSPC if every slot is pinned (release more), -EIO.
 * Message in provider_error(). */
int provider_request(struct provider *p, int layer, const int *experts, int n);
/* 1 and (expert, blob) for the next ready expert: hits first, then misses in
 * completion order; 0 when the request is fully delivered; -errno on a read
 * or checksum failure (the request is then abandoned; its slots unpinned). */
int provider_next(struct provider *p, int *expert, const uint8_t **blob);
/* Unpins an expert delivered by provider_next; its blob may be evicted. */
void provider_release(struct provider *p, int layer, int expert);
/* Starts reading experts[0..n) of a layer as a guess of what a later request
 * will ask for (e.g. the next layer's likely experts), without delivering
 * them: they land in the cache unpinned, or are waited for by the request
 * that wants them while still loading. Skips resident experts, never evicts
 * a pinned slot, leaves reader room for demand reads, keeps at most 3
 * guesses in flight (the likeliest first: pass them in that order), drops a failed or
 * corrupt guess silently (a request reads it again). May be called while a
 * request is being delivered. Returns the reads started. */
int provider_prefetch(struct provider *p, int layer, const int *experts, int n);

/* Pinned profile: keeps the n experts (layers[i], experts[i]) resident once
 * read, never evicting them; the rest of the cache keeps its policy. Marks
 * at most n_slots - 2 * max_active of them (the rest must stay free for
 * demand reads and guesses). Returns how many were marked, or -EINVAL for a
 * bad key (message in provider_error). */
int provider_pin_profile(struct provider *p, const int *layers, const int *experts, int n);

/* Experts provider_next would deliver now without waiting (hits, and reads
 * already reaped). Lets the caller batch the resident experts of a layer. */
int provider_ready_count(const struct provider *p);
/* True when (layer, expert) is in the cache, ready or being read: what a
 * cache-aware router (--cache-bias) favours. */
bool provider_resident(const struct provider *p, int layer, int expert);
const char *provider_error(const struct provider *p);
void provider_get_stats(const struct provider *p, struct provider_stats *s);
/* One line: the reader path and queue depth in use and why (the probe's
 * figures, the flag, or the default). */
const char *provider_io_note(const struct provider *p);
/* The backend in use after any fallback: "uring", "pread" or "buffered". */
const char *provider_backend_name(const struct provider *p);

#endif
