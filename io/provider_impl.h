/*
 * provider_impl.h - the expert provider's state, shared by its two files:
 * provider.c (requests, completions, the cache) and provider_guess.c
 * (prefetch guesses and the pinned profile). Not for use outside io/.
 */
#ifndef MOESTREAM_PROVIDER_IMPL_H
#define MOESTREAM_PROVIDER_IMPL_H

#include "provider.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define PROVIDER_DEFAULT_ACTIVE 8
#define PROVIDER_MAX_REG_BYTES (1ull << 30) /* io_uring limit per registered buffer */
#define PROVIDER_MAX_CHUNKS 16
/* Guesses waiting for a free queue slot, at most this many per layer of
 * max_active (io/provider_guess.c). */
#define PROVIDER_GUESS_LAYERS 2

struct provider {
    const struct split_model *m;
    struct provider_opts o;
    struct ecache *cache;
    struct reader *rd;
    int *file_of_layer;            /* [n_layer] reader file index, -1 without experts */
    uint64_t *read_len;            /* [n_layer] bytes per blob read (aligned) */
    uint64_t *chunk_len;           /* [n_layer] bytes per concurrent piece of a blob read */
    int *n_chunk;                  /* [n_layer] pieces a blob read is cut into (1 = whole) */
    int blob_qd;                   /* blob reads in flight at most (the queue depth) */
    int pf_inflight;               /* prefetch reads in flight */
    int *gq_layer, *gq_expert;     /* [gq_cap] guesses not yet started, likeliest first */
    int gq_n, gq_cap;
    struct iovec *bufs;            /* [n_bufs] arena chunks registered with the reader */
    int n_bufs;
    struct reader_completion *comps; /* [reader capacity] */
    struct tier *tier;             /* SSD tier, or NULL */
    int tier_file;                 /* its reader file index */
    int *from_tier;                /* [n_slots] tier slot + 1 of the read in flight, 0 = store */

    /* The request being delivered. */
    bool active;
    int failed;                    /* sticky -errno of an abandoned request */
    int layer;
    int *ready;                    /* [max_n_expert] slots to deliver, FIFO */
    int ready_head, ready_count;
    int *pending;                  /* [max_n_expert] miss slots not yet submitted */
    int pending_head, pending_count;
    int outstanding;               /* reads submitted, not completed (demand and prefetch) */
    int waiting;                   /* slots of this request not yet in the ready queue */
    uint8_t *pf;                   /* [n_slots] a prefetch read is in flight into the slot */
    uint8_t *want;                 /* [n_slots] the request waits for that prefetch read */
    uint64_t *slot_read;           /* [n_slots] from a GGUF: bytes of the reads into the slot */
    uint8_t *pf_unused;            /* [n_slots] a prefetched blob landed, no request used it yet */
    double busy_t0;                /* when outstanding last went from 0 to 1 */
    uint32_t *seen;                /* [max_n_expert] request stamp per id (dedupe) */
    uint32_t *order;               /* [max_n_expert] striped: sort keys of the pending misses */
    uint32_t seq;
    int max_n_expert;

    struct provider_stats st;
    char io_note[768];             /* provider_io_note */
    char err[1024];
};


/* provider.c, for provider_guess.c */
int provider_start_read(struct provider *p, int layer, int expert, int slot);
void provider_io_start(struct provider *p);
void provider_slot_reused(struct provider *p, int slot);
void provider_reap_quiet(struct provider *p);
/* provider_guess.c, for provider.c */
void provider_guess_pump(struct provider *p);
/* Keeps only the guesses for layers after `layer`, within the lookahead. */
void provider_guess_drop_stale(struct provider *p, int layer);

#endif
