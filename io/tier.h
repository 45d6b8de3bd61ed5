/*
 * tier.h - the local SSD tier (--ssd-cache DIR --ssd-cache-size SIZE): a
 * bounded cache file on a faster disk that keeps copies of expert blobs read
 * from a slow store (a USB drive), so a later RAM-cache miss reads the tier
 * instead of the store. Lookup order in the provider: RAM cache, tier, store.
 *
 * Owns: the file DIR/moestream-tier.bin (an exclusive flock while open), its
 * header and index, the per-(layer, expert) access counts that decide what
 * stays (frequency-aware: an aged count of RAM misses per expert; a blob is
 * admitted into a free slot, or in place of the least-counted of a few
 * sampled entries when its own count is higher), a few staging buffers and
 * one writer thread. Writes never block the caller: tier_offer copies the
 * blob into a free staging buffer and queues it, or drops the write when all
 * are busy. Reads are not done here: the provider reads tier slots through
 * its reader (the file is one more file of it, at tier_slot_offset) and
 * checks each blob against the manifest's XXH3 before use; a mismatch is
 * reported with tier_read_done(ok=false), which forgets the entry (the
 * provider reads the store and offers the blob again).
 *
 * File layout (little endian, TIER_VERSION):
 *   0       header, 4096 bytes: magic "MSTIER01", version, split id (XXH3 of
 *           every layer's n_expert, blob_size, blob_bytes and blob checksums:
 *           a tier belongs to one split's exact contents), slot_bytes,
 *           n_slots, n_keys, index/count/data offsets, the split directory
 *           (for the notice), XXH3 of the header bytes before it
 *   index   n_slots entries {i32 layer, i32 expert, u64 xxh3}; layer -1 =
 *           empty. An entry is trusted only when its xxh3 equals the
 *           manifest's checksum of that expert; the blob itself is checked
 *           on every read.
 *   counts  n_keys u32 access counts (saved at close)
 *   data    at a multiple of 16 KiB: slot t at data_off + t * slot_bytes
 * The whole file is at most the size given. A header that does not match
 * (other split, other version, other geometry, damaged) is rebuilt with a
 * one-line notice.
 *
 * Thread-safety: every call is made by the provider's thread; the writer
 * thread shares the index under a mutex held only for bookkeeping. Nothing
 * is allocated after tier_open. Never prints: notices go through opts->log.
 */
#ifndef MOESTREAM_TIER_H
#define MOESTREAM_TIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct split_model;

#define TIER_FILE "moestream-tier.bin"
#define TIER_VERSION 1
#define TIER_STAGING 4          /* staging buffers (writes queued at most) */
#define TIER_SAMPLE 8           /* entries sampled for a victim */

struct tier_opts {
    const char *dir;            /* created if missing (its parent must exist) */
    uint64_t max_bytes;         /* bound on the file size; 0 = half the free space of dir */
    void (*log)(const char *msg); /* one-line notices (created, rebuilt and why); may be NULL */
};

struct tier_stats {
    uint64_t n_slots;           /* blobs the tier can hold */
    uint64_t entries;           /* valid entries now */
    uint64_t entries_at_open;   /* valid entries found at open (0 when created or rebuilt) */
    uint64_t file_bytes;        /* size of the tier file (the bound) */
    uint64_t writes;            /* blobs written */
    uint64_t write_bytes;
    uint64_t dropped;           /* offers dropped: every staging buffer busy */
    uint64_t rejected;          /* offers refused by the admission policy */
    uint64_t bad;               /* entries found corrupt on read (or unreadable) and forgotten */
    uint64_t write_errors;      /* failed writes (the entry stays empty) */
};

struct tier;

/* Opens or creates DIR/TIER_FILE for split m with slots of slot_bytes (a
 * multiple of 16 KiB, at least the largest blob read). Needs the blob
 * checksums of a split directory. -EBUSY when another process holds the
 * file; -ENOSPC when max_bytes holds no slot; other -errno. err gets one
 * line either way. */
int tier_open(struct tier **out, const struct split_model *m, uint64_t slot_bytes, const struct tier_opts *o,
              char *err, size_t errlen);
/* Finishes the queued writes, saves the counts, closes. NULL is a no-op. */
void tier_close(struct tier *t);

const char *tier_path(const struct tier *t);
uint64_t tier_slot_offset(const struct tier *t, int slot);

/* The tier slot holding (layer, expert), marked as being read (it is not
 * reused until tier_read_done), or -1. */
int tier_lookup(struct tier *t, int layer, int expert);
/* A read of slot finished; ok = false: the blob failed its checksum or the
 * read failed: the entry is forgotten. */
void tier_read_done(struct tier *t, int slot, bool ok);
/* Counts a RAM-cache miss of (layer, expert): the admission frequency. */
void tier_touch(struct tier *t, int layer, int expert);
/* Offers a blob just read from the store (len bytes at blob, len <=
 * slot_bytes, a multiple of 4096). Copies it and queues the write when the
 * policy admits it and a staging buffer is free; never waits for I/O.
 * True when queued. */
bool tier_offer(struct tier *t, int layer, int expert, const uint8_t *blob, size_t len);
/* Waits until the queued writes are done (tests, shutdown). */
void tier_flush(struct tier *t);
void tier_get_stats(struct tier *t, struct tier_stats *s);

#endif
