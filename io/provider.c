/*
 * provider.c - the expert provider (io/provider.h): joins the expert cache
 * (io/ecache.c) and the reader (io/reader.c). A request pins one slot per
 * distinct expert; hits go straight to the ready queue, misses are all
 * submitted at once (as many as the queue depth allows, the rest as reads
 * complete) and join the ready queue in completion order. Verifies blob
 * checksums when asked. With an SSD tier (io/tier.c) a miss reads the
 * tier's copy when it has one (always checked against the manifest's XXH3;
 * a bad copy is forgotten and the store read instead), and a blob read from
 * the store is offered to the tier. Knows no model arithmetic; called by src/ only
 * through provider.h. Allocates only in provider_open.
 */
#include "provider.h"

#include "ecache.h"
#include "qdprobe.h"
#include "errmsg.h"
#include "reader.h"
#include "splitfmt.h"
#include "tier.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <xxhash.h>

#define PROVIDER_DEFAULT_ACTIVE 8
#define PROVIDER_MAX_REG_BYTES (1ull << 30) /* io_uring limit per registered buffer */
#define PROVIDER_MAX_CHUNKS 16
/* Prefetch reads in flight at most: the next layer's demand reads queue
 * behind every guess still in flight, so only the likeliest few go out
 * (30B shape, 2.5 GiB budget, --prefetch: 371 MiB per decode token with 3
 * against 397 with up to 8, one noisy pair; bench/README.md). */
#define PROVIDER_PF_INFLIGHT 3

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
    int pf_cap;                    /* prefetch reads in flight at most */
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

static double provider_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void provider_mib(char *buf, size_t len, uint64_t bytes)
{
    snprintf(buf, len, "%.1f MiB", (double)bytes / (1024.0 * 1024.0));
}

/* Model checks the provider relies on (split_open validates them too, but
 * the provider must not trust a hand-built struct). */
static int provider_check_model(const struct split_model *m, char *err, size_t errlen)
{
    if (!m || m->n_layer <= 0 || !m->layers) {
        snprintf(err, errlen, "provider: model has no layers");
        return -EINVAL;
    }
    for (int l = 0; l < m->n_layer; l++) {
        const struct split_layer *ly = &m->layers[l];

        if (ly->n_expert < 0) {
            snprintf(err, errlen, "provider: layer %d: n_expert %d is negative", l, ly->n_expert);
            return -EINVAL;
        }
        if (ly->n_expert == 0)
            continue;
        if (ly->blob_size == 0 || ly->blob_size % SPLIT_BLOB_ALIGN) {
            snprintf(err, errlen,
                     "provider: layer %d: blob_size %llu is not a multiple of %d (%s)", l,
                     (unsigned long long)ly->blob_size, SPLIT_BLOB_ALIGN, ly->path);
            return -EINVAL;
        }
        if (ly->blob_bytes == 0 || ly->blob_bytes > ly->blob_size) {
            snprintf(err, errlen, "provider: layer %d: blob_bytes %llu outside 1..blob_size %llu (%s)",
                     l, (unsigned long long)ly->blob_bytes, (unsigned long long)ly->blob_size,
                     ly->path);
            return -EINVAL;
        }
    }
    return 0;
}

static uint64_t round_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

/* Pieces a blob of `bytes` is read in with pieces of about `chunk` bytes
 * (0: whole), at most PROVIDER_MAX_CHUNKS. */
static uint64_t provider_chunks(uint64_t bytes, uint64_t chunk)
{
    if (chunk == 0 || bytes <= chunk)
        return 1;
    uint64_t n = (bytes + chunk - 1) / chunk;
    return n > PROVIDER_MAX_CHUNKS ? PROVIDER_MAX_CHUNKS : n;
}

/* --queue-depth not given: the store device's saturation depth from a short
 * probe picks the depth. A device saturated by fewer than 16 reads gets room
 * for one layer's misses and the guesses, nothing more: reads queued beyond
 * what the device serves at once only wait longer, and a layer's demand read
 * waits behind them. */
static void provider_probe(struct provider *p, enum reader_backend be, uint64_t expert_bytes)
{
    const struct split_model *m = p->m;
    const struct split_layer *ly = NULL;
    struct qdprobe_result r;
    char err[512];

    for (int l = 0; l < m->n_layer && !ly; l++)
        if (m->layers[l].n_expert > 0)
            ly = &m->layers[l];
    if (p->o.qd_probe == 0 || m->from_gguf || be == READER_BUFFERED || !ly ||
        (p->o.qd_probe == 1 && expert_bytes < PROVIDER_PROBE_MIN_BYTES)) {
        snprintf(p->io_note, sizeof p->io_note, "queue depth %d (default; %s)", p->blob_qd,
                 p->o.qd_probe == 0 ? "no probe asked"
                 : m->from_gguf     ? "no probe for a GGUF"
                 : be == READER_BUFFERED ? "buffered reads are not probed"
                                    : "experts under 1 GiB are not probed");
        return;
    }
    uint64_t block = round_up(ly->blob_bytes, SPLIT_BLOB_ALIGN);
    if (qdprobe_run(split_layer_file(ly, 0), (size_t)block, be, &r, err, sizeof err) < 0) {
        snprintf(p->io_note, sizeof p->io_note, "queue depth %d (default; the probe failed: %.300s)", p->blob_qd,
                 err);
        return;
    }
    int want = r.saturated < 16 ? p->o.max_active + PROVIDER_PF_INFLIGHT : READER_DEFAULT_QD;
    if (want > READER_DEFAULT_QD)
        want = READER_DEFAULT_QD;
    p->blob_qd = want;
    snprintf(p->io_note, sizeof p->io_note,
             "queue depth %d from a %.2f s probe of %.200s (%.1f MiB reads): %.0f MB/s at qd %d, %.0f at %d, %.0f at %d; "
             "saturated at qd %d%s", want, r.seconds, split_layer_file(ly, 0), block / 1048576.0, r.bw[0] / 1e6,
             r.qd[0], r.bw[1] / 1e6, r.qd[1], r.bw[2] / 1e6, r.qd[2], r.saturated,
             r.saturated < 16 ? ": room for one layer's experts and the prefetch guesses only" : "");
}

int provider_open(struct provider **out, const struct split_model *m,
                  const struct provider_opts *o, char *err, size_t errlen)
{
    struct provider *p;
    const char **paths = NULL;
    struct reader_opts ro;
    uint64_t slot_size = 0, total = 0, n_slots;
    int max_n_expert = 0, n_files = 0, max_active, rc;
    size_t align;

    *out = NULL;
    rc = provider_check_model(m, err, errlen);
    if (rc < 0)
        return rc;
    for (int l = 0; l < m->n_layer; l++) {
        const struct split_layer *ly = &m->layers[l];

        if (ly->n_expert == 0)
            continue;
        total += (uint64_t)ly->n_expert;
        n_files += split_layer_n_files(ly);
        if (ly->blob_size > slot_size)
            slot_size = ly->blob_size;
        if (ly->n_expert > max_n_expert)
            max_n_expert = ly->n_expert;
    }
    if (total == 0) {
        snprintf(err, errlen, "provider: model has no routed experts");
        return -EINVAL;
    }
    if (m->from_gguf)
        n_files = m->n_files; /* expert parts are read from the GGUF's parts */
    max_active = o->max_active > 0 ? o->max_active : PROVIDER_DEFAULT_ACTIVE;
    if (max_active > max_n_expert)
        max_active = max_n_expert;
    n_slots = o->cache_bytes ? o->cache_bytes / slot_size : total;
    if (n_slots < (uint64_t)max_active) {
        char have[32], need[32], slot[32];

        provider_mib(have, sizeof have, o->cache_bytes);
        provider_mib(need, sizeof need, (uint64_t)max_active * slot_size);
        provider_mib(slot, sizeof slot, slot_size);
        snprintf(err, errlen,
                 "provider: expert cache of %s holds %llu slots of %s, but a layer needs %d "
                 "experts in flight: the budget must be at least %s (%llu bytes)",
                 have, (unsigned long long)n_slots, slot, max_active, need,
                 (unsigned long long)((uint64_t)max_active * slot_size));
        return -ENOSPC;
    }
    if (n_slots > total)
        n_slots = total;

    p = calloc(1, sizeof *p);
    if (!p)
        goto fail_nomem;
    p->m = m;
    p->o = *o;
    p->o.max_active = max_active; /* resolved */
    p->max_n_expert = max_n_expert;
    p->file_of_layer = malloc((size_t)m->n_layer * sizeof *p->file_of_layer);
    p->read_len = calloc((size_t)m->n_layer, sizeof *p->read_len);
    p->chunk_len = calloc((size_t)m->n_layer, sizeof *p->chunk_len);
    p->n_chunk = calloc((size_t)m->n_layer, sizeof *p->n_chunk);
    p->ready = malloc((size_t)max_n_expert * sizeof *p->ready);
    p->pending = malloc((size_t)max_n_expert * sizeof *p->pending);
    p->seen = calloc((size_t)max_n_expert, sizeof *p->seen);
    p->order = calloc((size_t)max_n_expert, sizeof *p->order);
    p->pf = calloc((size_t)n_slots, 1);
    p->slot_read = calloc((size_t)n_slots, sizeof *p->slot_read);
    p->want = calloc((size_t)n_slots, 1);
    p->pf_unused = calloc((size_t)n_slots, 1);
    paths = malloc((size_t)(n_files + 1) * sizeof *paths);
    p->from_tier = calloc((size_t)n_slots, sizeof *p->from_tier);
    if (!p->file_of_layer || !p->read_len || !p->chunk_len || !p->n_chunk || !p->slot_read || !p->ready || !p->pending ||
        !p->seen || !p->order || !paths ||
        !p->pf || !p->want || !p->pf_unused || !p->from_tier)
        goto fail_nomem_p;

    {
        int *n_exp = malloc((size_t)m->n_layer * sizeof *n_exp);

        if (!n_exp)
            goto fail_nomem_p;
        for (int l = 0; l < m->n_layer; l++)
            n_exp[l] = m->layers[l].n_expert;
        rc = ecache_init(&p->cache, n_exp, m->n_layer, (size_t)slot_size, (size_t)n_slots,
                         o->cache_policy == PROVIDER_CACHE_LRU ? ECACHE_LRU : ECACHE_SLRU, err,
                         errlen);
        free(n_exp);
        if (rc < 0)
            goto fail_free;
    }
    if (o->mlock) {
        size_t bytes;
        uint8_t *arena = ecache_arena(p->cache, &bytes);

        if (mlock(arena, bytes) != 0) {
            char mib[32];

            rc = -errno;
            provider_mib(mib, sizeof mib, bytes);
            snprintf(err, errlen, "provider: mlock of the %s expert cache failed: %s "
                     "(raise the memlock limit: ulimit -l)", mib, strerror(-rc));
            goto fail_free;
        }
    }

    /* Register the arena in chunks of whole slots, each <= 1 GiB, so every
     * read's destination lies inside one registered buffer. */
    if (slot_size <= PROVIDER_MAX_REG_BYTES) {
        uint64_t per = PROVIDER_MAX_REG_BYTES / slot_size;
        uint8_t *arena = ecache_arena(p->cache, NULL);

        p->n_bufs = (int)((n_slots + per - 1) / per);
        p->bufs = calloc((size_t)p->n_bufs, sizeof *p->bufs);
        if (!p->bufs)
            goto fail_nomem_p;
        for (int i = 0; i < p->n_bufs; i++) {
            uint64_t first = (uint64_t)i * per;
            uint64_t n = n_slots - first < per ? n_slots - first : per;

            p->bufs[i].iov_base = arena + first * slot_size;
            p->bufs[i].iov_len = (size_t)(n * slot_size);
        }
    }

    n_files = 0;
    for (int l = 0; l < m->n_layer; l++) {
        p->file_of_layer[l] = -1;
        if (m->layers[l].n_expert == 0 || m->from_gguf)
            continue;
        p->file_of_layer[l] = n_files; /* striped: + expert % n_stripe */
        for (int f = 0; f < split_layer_n_files(&m->layers[l]); f++)
            paths[n_files++] = split_layer_file(&m->layers[l], f);
    }
    for (int i = 0; m->from_gguf && i < m->n_files; i++)
        paths[n_files++] = m->files[i];
    if (o->tier_dir) {
        struct tier_opts to = { .dir = o->tier_dir, .max_bytes = o->tier_bytes, .log = o->log };
        if (m->from_gguf) {
            snprintf(err, errlen, "provider: --ssd-cache needs a split model directory (its blob checksums "
                     "guard the tier): split the GGUF with moestream-split first");
            rc = -EINVAL;
            goto fail_free;
        }
        rc = tier_open(&p->tier, m, slot_size, &to, err, errlen);
        if (rc == -EBUSY && o->log) {
            char line[1200];
            snprintf(line, sizeof line, "%s: running without the SSD tier", err);
            o->log(line);
        } else if (rc < 0)
            goto fail_free;
        if (p->tier) {
            p->tier_file = n_files;
            paths[n_files++] = tier_path(p->tier);
        }
    }
    memset(&ro, 0, sizeof ro);
    ro.backend = o->io == PROVIDER_IO_PREAD      ? READER_PREAD
                 : o->io == PROVIDER_IO_BUFFERED ? READER_BUFFERED
                                                 : READER_URING;
    /* The queue depth counts blob reads; a blob cut into pieces takes one
     * reader request per piece, so the reader gets room for every piece. */
    p->blob_qd = o->queue_depth > 0 ? o->queue_depth : READER_DEFAULT_QD;
    p->pf_cap = PROVIDER_PF_INFLIGHT;
    if (o->queue_depth > 0)
        snprintf(p->io_note, sizeof p->io_note, "queue depth %d (--queue-depth)", p->blob_qd);
    else
        provider_probe(p, ro.backend, (uint64_t)total * slot_size);
    int max_chunk = 1;
    for (int l = 0; l < m->n_layer && !m->from_gguf; l++) {
        uint64_t c = provider_chunks(m->layers[l].blob_bytes, o->read_chunk);
        if ((int)c > max_chunk)
            max_chunk = (int)c;
    }
    ro.queue_depth = p->blob_qd * max_chunk;
    ro.bufs = p->bufs;
    ro.n_bufs = p->n_bufs;
    ro.log = o->log;
    ro.progress = o->progress;
    ro.fault = o->fault;
    rc = reader_open(&p->rd, paths, n_files, &ro, err, errlen);
    if (rc < 0)
        goto fail_free;

    align = reader_alignment(p->rd);
    for (int l = 0; l < m->n_layer; l++) {
        const struct split_layer *ly = &m->layers[l];
        uint64_t a = align > SPLIT_BLOB_ALIGN ? align : SPLIT_BLOB_ALIGN;

        if (ly->n_expert == 0)
            continue;
        /* Read the used bytes rounded up to the alignment, not the stride. */
        p->read_len[l] = round_up(ly->blob_bytes, a);
        p->n_chunk[l] = 1;
        p->chunk_len[l] = p->read_len[l];
        if (!m->from_gguf && provider_chunks(ly->blob_bytes, o->read_chunk) > 1) {
            /* equal pieces, each a multiple of the alignment; the last one
             * takes what is left */
            uint64_t want = provider_chunks(ly->blob_bytes, o->read_chunk);
            p->chunk_len[l] = round_up((p->read_len[l] + want - 1) / want, a);
            p->n_chunk[l] = (int)((p->read_len[l] + p->chunk_len[l] - 1) / p->chunk_len[l]);
        }
        if (p->read_len[l] > ly->blob_size || ly->blob_size % align) {
            snprintf(err, errlen, "provider: layer %d: blob_size %llu is not a multiple of the "
                     "%zu-byte direct I/O alignment of %s", l,
                     (unsigned long long)ly->blob_size, align, ly->path);
            rc = -EINVAL;
            goto fail_free;
        }
    }
    for (int l = 0; m->from_gguf && l < m->n_layer; l++)
        if (m->layers[l].n_part > reader_capacity(p->rd) || align > SPLIT_PINNED_ALIGN) {
            snprintf(err, errlen, "provider: reading experts from a GGUF takes %d reads in flight per expert "
                     "(4 KiB aligned): raise --queue-depth to at least %d",
                     m->layers[l].n_part, m->layers[l].n_part);
            rc = -EINVAL;
            goto fail_free;
        }
    p->comps = malloc((size_t)reader_capacity(p->rd) * sizeof *p->comps);
    if (!p->comps)
        goto fail_nomem_p;
    p->st.n_slots = n_slots;
    p->st.slot_bytes = slot_size;
    free(paths);
    *out = p;
    return 0;

fail_nomem_p:
    snprintf(err, errlen, "provider: out of memory");
    rc = -ENOMEM;
fail_free:
    free(paths);
    provider_close(p);
    return rc;
fail_nomem:
    snprintf(err, errlen, "provider: out of memory");
    return -ENOMEM;
}

void provider_close(struct provider *p)
{
    if (!p)
        return;
    /* prefetch reads may still be landing in the arena: let them finish */
    int n;
    while (p->rd && p->comps && p->outstanding > 0 &&
           (n = reader_reap(p->rd, p->comps, reader_capacity(p->rd), true)) > 0)
        p->outstanding -= n;
    reader_close(p->rd); /* waits for reads into the arena before it goes */
    tier_close(p->tier); /* finishes its queued writes */
    free(p->from_tier);
    ecache_free(p->cache);
    free(p->pf);
    free(p->slot_read);
    free(p->want);
    free(p->pf_unused);
    free(p->comps);
    free(p->bufs);
    free(p->seen);
    free(p->order);
    free(p->pending);
    free(p->ready);
    free(p->read_len);
    free(p->chunk_len);
    free(p->n_chunk);
    free(p->file_of_layer);
    free(p);
}

static void ready_push(struct provider *p, int slot)
{
    p->ready[(p->ready_head + p->ready_count) % p->max_n_expert] = slot;
    p->ready_count++;
}

static int ready_pop(struct provider *p)
{
    int s = p->ready[p->ready_head];

    p->ready_head = (p->ready_head + 1) % p->max_n_expert;
    p->ready_count--;
    return s;
}

/* Reads in flight: the busy clock runs while at least one is. A completion
 * is seen when the provider reaps it, so busy time ends at the reap. */
static void provider_io_start(struct provider *p)
{
    if (p->outstanding++ == 0)
        p->busy_t0 = provider_now();
}

static void provider_io_done(struct provider *p)
{
    if (--p->outstanding == 0)
        p->st.busy_s += provider_now() - p->busy_t0;
}

/* A slot that held an unused prefetched blob is taken for another key. */
static void provider_slot_reused(struct provider *p, int slot)
{
    if (p->pf_unused[slot]) {
        p->pf_unused[slot] = 0;
        p->st.prefetch_wasted++;
    }
}

static uint64_t provider_offset(const struct provider *p, int layer, int expert)
{
    return split_expert_offset(&p->m->layers[layer], expert);
}

/* The file holding (layer, expert): one per layer, or per stripe. */
static const char *provider_path(const struct provider *p, int layer, int expert)
{
    const struct split_layer *ly = &p->m->layers[layer];
    return p->m->from_gguf ? ly->path : split_layer_file(ly, split_expert_file(ly, expert));
}

/* Starts the read of (layer, expert) into slot: one read of the blob, or,
 * from a GGUF, one aligned read per part, gathered into one completion. */
static int provider_start_read(struct provider *p, int layer, int expert, int slot)
{
    const struct split_layer *ly = &p->m->layers[layer];
    uint8_t *dst = ecache_slot_data(p->cache, slot);

    struct reader_range rg[PROVIDER_MAX_CHUNKS > SPLIT_MAX_PARTS ? PROVIDER_MAX_CHUNKS : SPLIT_MAX_PARTS];
    int file = p->m->from_gguf ? 0 : p->file_of_layer[layer] + split_expert_file(ly, expert);
    if (p->tier) {
        int t = tier_lookup(p->tier, layer, expert);
        if (t >= 0) {
            int rc = reader_submit(p->rd, p->tier_file, tier_slot_offset(p->tier, t), (size_t)p->read_len[layer],
                                   dst, (uint64_t)slot);
            if (rc == 0) {
                p->from_tier[slot] = t + 1;
                return 0;
            }
            tier_read_done(p->tier, t, true);
            if (rc == -EBUSY)
                return rc;
        }
    }
    if (!p->m->from_gguf && p->n_chunk[layer] == 1)
        return reader_submit(p->rd, file, provider_offset(p, layer, expert),
                             (size_t)p->read_len[layer], dst, (uint64_t)slot);
    if (!p->m->from_gguf) {
        /* pieces of one blob read at once: one completion when all landed */
        uint64_t off = provider_offset(p, layer, expert), left = p->read_len[layer];
        int n = p->n_chunk[layer];
        for (int i = 0; i < n; i++) {
            uint64_t len = left < p->chunk_len[layer] ? left : p->chunk_len[layer];
            rg[i].file = file;
            rg[i].offset = off + (uint64_t)i * p->chunk_len[layer];
            rg[i].len = (size_t)len;
            rg[i].dst = dst + (size_t)i * p->chunk_len[layer];
            rg[i].need = 0;
            left -= len;
        }
        return reader_submitv(p->rd, rg, n, (uint64_t)slot);
    }
    uint64_t total = 0;
    for (int i = 0; i < ly->n_part; i++) {
        uint64_t off, len, shift;
        int file;

        split_gguf_range(ly, i, expert, &file, &off, &len, &shift);
        rg[i].file = file;
        rg[i].offset = off;
        rg[i].len = (size_t)len;
        rg[i].dst = dst + ly->parts[i].offset;
        total += len;
        rg[i].need = (size_t)(shift + ly->parts[i].size); /* the last slice may end the file */
    }
    p->slot_read[slot] = total;
    return reader_submitv(p->rd, rg, ly->n_part, (uint64_t)slot);
}

/* From a GGUF: moves each part of the arrived expert down to its offset in
 * the blob (the aligned read started up to 4 KiB before the slice). */
static void provider_place_parts(struct provider *p, int slot)
{
    int layer, expert;

    if (!p->m->from_gguf)
        return;
    ecache_slot_key(p->cache, slot, &layer, &expert);
    const struct split_layer *ly = &p->m->layers[layer];
    uint8_t *dst = ecache_slot_data(p->cache, slot);
    for (int i = 0; i < ly->n_part; i++) {
        uint64_t off, len, shift;
        int file;

        split_gguf_range(ly, i, expert, &file, &off, &len, &shift);
        if (shift)
            memmove(dst + ly->parts[i].offset, dst + ly->parts[i].offset + shift, (size_t)ly->parts[i].size);
    }
}

/* Starts queued misses while the reader has room. Counted as I/O wait:
 * the buffered backend reads synchronously right here. */
static int provider_submit_pending(struct provider *p)
{
    double t0 = provider_now();
    int rc = 0;

    while (p->pending_count > 0) {
        int slot = p->pending[p->pending_head];
        int layer, expert;

        ecache_slot_key(p->cache, slot, &layer, &expert);
        rc = provider_start_read(p, layer, expert, slot);
        if (rc == -EBUSY) {
            rc = 0;
            break;
        }
        if (rc < 0) {
            errmsg_set(p->err, sizeof p->err, 0, "provider: layer %d expert %d: cannot submit read of %s at "
                          "offset %llu: %s", layer, expert, provider_path(p, layer, expert),
                          (unsigned long long)provider_offset(p, layer, expert), strerror(-rc));
            break;
        }
        p->pending_head = (p->pending_head + 1) % p->max_n_expert;
        p->pending_count--;
        provider_io_start(p);
    }
    p->st.io_wait_s += provider_now() - t0;
    return rc;
}

/* A completed read into slot: when it came from the SSD tier, checks the
 * blob against the manifest (always: a tier copy is never trusted) and
 * tells the tier; a bad copy is forgotten there. True when the read may be
 * used (store reads: always; they are checked by the caller). */
static bool provider_tier_check(struct provider *p, int slot, int res, bool *from_tier)
{
    int layer, expert, t = p->from_tier[slot] - 1;

    *from_tier = t >= 0;
    if (t < 0)
        return true;
    p->from_tier[slot] = 0;
    ecache_slot_key(p->cache, slot, &layer, &expert);
    const struct split_layer *ly = &p->m->layers[layer];
    bool ok = res == 0;
    if (ok) {
        double t0 = provider_now();
        ok = XXH3_64bits(ecache_slot_data(p->cache, slot), (size_t)ly->blob_bytes) == ly->blob_xxh3[expert];
        p->st.verify_s += provider_now() - t0;
    }
    tier_read_done(p->tier, t, ok);
    if (ok) {
        p->st.tier_reads++;
        p->st.tier_bytes_read += p->read_len[layer];
    } else if (p->st.tier_bad++ == 0 && p->o.log) {
        char line[1400];
        snprintf(line, sizeof line, "ssd tier: layer %d expert %d: the copy in %s %s; reading the store and "
                 "rewriting it (later bad copies are counted in the statistics)", layer, expert, tier_path(p->tier),
                 res == 0 ? "failed its checksum" : "could not be read");
        p->o.log(line);
    }
    return ok;
}

/* Gives up the current request after a failure: waits for its reads, keeps
 * the blobs that arrived intact (unpinned, resident), drops the rest. */
static int provider_abandon(struct provider *p, int rc)
{
    while (p->outstanding > 0) {
        int n = reader_reap(p->rd, p->comps, reader_capacity(p->rd), true);

        if (n <= 0)
            break;
        for (int i = 0; i < n; i++) {
            int slot = (int)p->comps[i].tag;
            bool from_tier;
            bool good = provider_tier_check(p, slot, p->comps[i].res, &from_tier);

            if (p->pf[slot] && p->want[slot])
                ecache_unpin(p->cache, slot); /* the request's pin; the read's below */
            if (p->pf[slot])
                p->pf_inflight--;
            p->pf[slot] = p->want[slot] = 0;
            if (p->comps[i].res == 0 && good) {
                provider_place_parts(p, slot);
                ecache_set_ready(p->cache, slot);
            }
            else
                ecache_discard(p->cache, slot);
            ecache_unpin(p->cache, slot);
            provider_io_done(p);
        }
    }
    while (p->pending_count > 0) {
        int slot = p->pending[p->pending_head];

        p->pending_head = (p->pending_head + 1) % p->max_n_expert;
        p->pending_count--;
        ecache_discard(p->cache, slot);
        ecache_unpin(p->cache, slot);
    }
    while (p->ready_count > 0)
        ecache_unpin(p->cache, ready_pop(p));
    p->waiting = 0;
    p->active = false;
    p->failed = rc;
    return rc;
}

static void provider_reap_quiet(struct provider *p);

/* Striped layer: orders the pending misses round-robin over the stripe
 * files (first miss of each file, then the second of each, ...), so the
 * reads that fit in the queue go to every drive, not mostly to one. Stable
 * within a file. Insertion sort: a step's misses are few (decode) or the
 * reads take far longer anyway (prefill). */
static void provider_interleave(struct provider *p, const struct split_layer *ly)
{
    int n = split_layer_n_files(ly), c = p->pending_count;
    uint32_t rank[SPLIT_MAX_STRIPES] = { 0 };

    if (n < 2 || c < 2 || p->m->from_gguf)
        return;
    for (int i = 0; i < c; i++) {
        int layer, e;

        ecache_slot_key(p->cache, p->pending[i], &layer, &e);
        int f = split_expert_file(ly, e);
        /* key: rank within its file, then the file */
        p->order[i] = rank[f]++ * (uint32_t)n + (uint32_t)f;
    }
    for (int i = 1; i < c; i++) {
        uint32_t k = p->order[i];
        int s = p->pending[i], j = i - 1;

        while (j >= 0 && p->order[j] > k) {
            p->order[j + 1] = p->order[j];
            p->pending[j + 1] = p->pending[j];
            j--;
        }
        p->order[j + 1] = k;
        p->pending[j + 1] = s;
    }
}

int provider_request(struct provider *p, int layer, const int *experts, int n)
{
    const struct split_layer *ly;
    int rc;

    if (p->active) {
        errmsg_set(p->err, sizeof p->err, 0, "provider: request for layer %d while layer %d is still being "
                      "delivered (call provider_next until it returns 0)", layer, p->layer);
        return -EBUSY;
    }
    if (layer < 0 || layer >= p->m->n_layer || p->m->layers[layer].n_expert == 0) {
        errmsg_set(p->err, sizeof p->err, 0, "provider: layer %d has no routed experts", layer);
        return -EINVAL;
    }
    ly = &p->m->layers[layer];
    provider_reap_quiet(p);
    p->failed = 0;
    p->layer = layer;
    p->ready_head = p->ready_count = 0;
    p->pending_head = p->pending_count = 0;
    p->waiting = 0;
    if (++p->seq == 0) {
        memset(p->seen, 0, (size_t)p->max_n_expert * sizeof *p->seen);
        p->seq = 1;
    }
    for (int i = 0; i < n; i++)
        if (experts[i] < 0 || experts[i] >= ly->n_expert) {
            errmsg_set(p->err, sizeof p->err, 0, "provider: layer %d: expert %d out of range 0..%d", layer,
                       experts[i], ly->n_expert - 1);
            return provider_abandon(p, -EINVAL);
        }
    /* Two passes: first pin every expert already resident or loading, then
     * take slots for the misses, so no miss evicts an expert this request
     * still needs (a blob prefetched for it waits at the cold end). */
    for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < n; i++) {
        int e = experts[i], slot;
        enum ecache_state state;

        if (p->seen[e] == p->seq || (pass == 0 && ecache_find(p->cache, layer, e) < 0))
            continue;
        p->seen[e] = p->seq;
        slot = ecache_acquire(p->cache, layer, e, &state);
        if (slot < 0) {
            errmsg_set(p->err, sizeof p->err, 0, "provider: layer %d expert %d: all %llu expert slots are pinned "
                          "(release delivered experts before requesting more)", layer, e,
                          (unsigned long long)p->st.n_slots);
            return provider_abandon(p, slot);
        }
        /* Between requests only prefetch reads are in flight: a loading
         * slot is one of them, delivered when its read completes. */
        assert(state != ECACHE_LOADING || p->pf[slot]);
        if (state == ECACHE_HIT) {
            if (p->pf_unused[slot]) {
                p->pf_unused[slot] = 0;
                p->st.prefetch_used++;
            }
            p->st.hits++;
            ready_push(p, slot);
        } else if (state == ECACHE_LOADING) {
            if (p->tier)
                tier_touch(p->tier, layer, e);
            p->st.misses++;
            p->st.prefetch_waits++;
            p->st.prefetch_used++;
            p->want[slot] = 1;
            p->waiting++;
        } else {
            if (p->tier)
                tier_touch(p->tier, layer, e);
            provider_slot_reused(p, slot);
            p->waiting++;
            p->st.misses++;
            p->pending[(p->pending_head + p->pending_count) % p->max_n_expert] = slot;
            p->pending_count++;
        }
    }
    p->active = true;
    provider_interleave(p, ly);
    rc = provider_submit_pending(p);
    if (rc < 0)
        return provider_abandon(p, rc);
    return 0;
}

static int provider_complete(struct provider *p, const struct reader_completion *c);

/* Between requests: takes in prefetch reads that already landed (they
 * become hits) without waiting, so the busy clock stops near their end. */
static void provider_reap_quiet(struct provider *p)
{
    if (p->active || p->outstanding == 0)
        return;
    int n = reader_reap(p->rd, p->comps, reader_capacity(p->rd), false);
    for (int i = 0; i < n; i++)
        provider_complete(p, &p->comps[i]); /* only guesses are in flight: never fails */
}

/* A read finished: check it and queue the slot for delivery. */
static int provider_complete(struct provider *p, const struct reader_completion *c)
{
    int slot = (int)c->tag, layer, expert;
    const struct split_layer *ly;

    ecache_slot_key(p->cache, slot, &layer, &expert);
    ly = &p->m->layers[layer];
    bool from_tier;
    if (!provider_tier_check(p, slot, c->res, &from_tier)) {
        /* a bad tier copy: read the store instead (a guess nobody waits
         * for is dropped; a request's slot joins its pending misses) */
        provider_io_done(p);
        if (p->pf[slot]) {
            p->pf_inflight--;
            if (!p->want[slot]) {
                p->pf[slot] = 0;
                ecache_discard(p->cache, slot);
                p->st.prefetch_wasted++;
                ecache_unpin_cold(p->cache, slot);
                return 0;
            }
            p->pf[slot] = p->want[slot] = 0;
            ecache_unpin(p->cache, slot); /* the read's pin; the request keeps its own */
        }
        p->pending[(p->pending_head + p->pending_count) % p->max_n_expert] = slot;
        p->pending_count++;
        return 0;
    }
    provider_io_done(p);
    bool prefetched = p->pf[slot], wanted = !prefetched || p->want[slot];
    if (prefetched)
        p->pf_inflight--;
    p->pf[slot] = p->want[slot] = 0;
    if (prefetched && !wanted) {
        /* a guess nobody asked for yet: keep it resident, or drop it if bad */
        p->st.reads++;
        p->st.bytes_read += p->m->from_gguf ? p->slot_read[slot] : p->read_len[layer];
        bool ok = c->res >= 0;
        if (ok)
            provider_place_parts(p, slot);
        if (ok && !from_tier && p->o.verify_reads && ly->blob_xxh3) {
            double t0 = provider_now();
            ok = XXH3_64bits(ecache_slot_data(p->cache, slot), (size_t)ly->blob_bytes) == ly->blob_xxh3[expert];
            p->st.verify_s += provider_now() - t0;
        }
        if (ok && p->tier && !from_tier)
            tier_offer(p->tier, layer, expert, ecache_slot_data(p->cache, slot), (size_t)p->read_len[layer]);
        if (ok) {
            ecache_set_ready(p->cache, slot);
            p->pf_unused[slot] = 1;
        } else {
            ecache_discard(p->cache, slot);
            p->st.prefetch_wasted++;
        }
        ecache_unpin_cold(p->cache, slot); /* a guess not taken yet is the next victim */
        return 0;
    }
    if (prefetched)
        ecache_unpin(p->cache, slot); /* the read's pin; the request keeps its own */
    if (c->res < 0) {
        errmsg_set(p->err, sizeof p->err, 0, "provider: layer %d expert %d: %s", layer, expert,
                      reader_error(p->rd));
        ecache_discard(p->cache, slot);
        ecache_unpin(p->cache, slot);
        return c->res;
    }
    p->st.reads++;
    p->st.bytes_read += p->m->from_gguf ? p->slot_read[slot] : p->read_len[layer];
    provider_place_parts(p, slot);
    if (!from_tier && p->o.verify_reads && ly->blob_xxh3) {
        double t0 = provider_now();
        uint64_t h = XXH3_64bits(ecache_slot_data(p->cache, slot), (size_t)ly->blob_bytes);
        p->st.verify_s += provider_now() - t0;

        if (h != ly->blob_xxh3[expert]) {
            errmsg_set(p->err, sizeof p->err, 0, "provider: layer %d expert %d: checksum mismatch in %s at offset "
                          "%llu: xxh3 %016llx, manifest says %016llx", layer, expert, provider_path(p, layer, expert),
                          (unsigned long long)provider_offset(p, layer, expert),
                          (unsigned long long)h, (unsigned long long)ly->blob_xxh3[expert]);
            ecache_discard(p->cache, slot);
            ecache_unpin(p->cache, slot);
            return -EIO;
        }
    }
    /* a copy for the tier, queued to its writer thread (or dropped when it is busy) */
    if (p->tier && !from_tier)
        tier_offer(p->tier, layer, expert, ecache_slot_data(p->cache, slot), (size_t)p->read_len[layer]);
    ecache_set_ready(p->cache, slot);
    p->waiting--;
    ready_push(p, slot);
    return 0;
}

int provider_next(struct provider *p, int *expert, const uint8_t **blob)
{
    if (!p->active)
        return p->failed;
    for (;;) {
        int n, rc;
        double t0;

        if (p->ready_count > 0) {
            int slot = ready_pop(p), layer;

            ecache_slot_key(p->cache, slot, &layer, expert);
            *blob = ecache_slot_data(p->cache, slot);
            return 1;
        }
        if (p->waiting == 0) {
            p->active = false;
            return 0;
        }
        t0 = provider_now();
        n = reader_reap(p->rd, p->comps, reader_capacity(p->rd), true);
        p->st.io_wait_s += provider_now() - t0;
        if (n < 0) {
            errmsg_set(p->err, sizeof p->err, 0, "provider: layer %d: waiting for reads failed: %s", p->layer,
                          strerror(-n));
            return provider_abandon(p, n);
        }
        rc = 0;
        for (int i = 0; i < n; i++) {
            int r = provider_complete(p, &p->comps[i]);

            if (r < 0 && rc == 0)
                rc = r;
        }
        if (rc == 0)
            rc = provider_submit_pending(p);
        if (rc < 0)
            return provider_abandon(p, rc);
    }
}

int provider_prefetch(struct provider *p, int layer, const int *experts, int n)
{
    if (layer < 0 || layer >= p->m->n_layer || p->m->layers[layer].n_expert == 0)
        return 0;
    if (!p->active)
        provider_reap_quiet(p);
    int started = 0;
    for (int i = 0; i < n; i++) {
        int e = experts[i], slot;
        enum ecache_state state;

        if (e < 0 || e >= p->m->layers[layer].n_expert || ecache_find(p->cache, layer, e) >= 0)
            continue; /* out of range, resident or already loading */
        if (p->outstanding >= p->blob_qd - p->o.max_active || p->pf_inflight >= p->pf_cap)
            break;     /* keep room for demand reads */
        slot = ecache_acquire_spec(p->cache, layer, e, &state);
        if (slot < 0)
            break;     /* nothing cold enough to displace */
        provider_slot_reused(p, slot);
        int rc = provider_start_read(p, layer, e, slot);
        if (rc < 0) {
            ecache_discard(p->cache, slot);
            ecache_unpin(p->cache, slot);
            break;
        }
        p->pf[slot] = 1;
        p->pf_inflight++;
        provider_io_start(p);
        p->st.prefetches++;
        started++;
    }
    return started;
}

void provider_release(struct provider *p, int layer, int expert)
{
    int slot = ecache_find(p->cache, layer, expert);

    if (slot >= 0 && ecache_is_ready(p->cache, slot) && ecache_pins(p->cache, slot) > 0)
        ecache_unpin(p->cache, slot);
}

int provider_pin_profile(struct provider *p, const int *layers, const int *experts, int n)
{
    int room = (int)p->st.n_slots - 2 * p->o.max_active, done = 0;
    for (int i = 0; i < n && done < room; i++) {
        if (ecache_set_sticky(p->cache, layers[i], experts[i]) < 0) {
            errmsg_set(p->err, sizeof p->err, 0, "provider: pinned profile: no expert %d in layer %d", experts[i], layers[i]);
            return -EINVAL;
        }
        done++;
    }
    return done;
}

bool provider_resident(const struct provider *p, int layer, int expert)
{
    return ecache_find(p->cache, layer, expert) >= 0;
}

int provider_ready_count(const struct provider *p)
{
    return p->active ? p->ready_count : 0;
}

const char *provider_error(const struct provider *p)
{
    return p->err;
}

void provider_get_stats(const struct provider *p, struct provider_stats *s)
{
    struct ecache_stats cs;

    *s = p->st;
    ecache_get_stats(p->cache, &cs);
    s->evictions = cs.evictions;
    if (p->tier) {
        struct tier_stats ts;
        tier_get_stats(p->tier, &ts);
        s->tier_writes = ts.writes;
        s->tier_dropped = ts.dropped;
        s->tier_entries = ts.entries;
        s->tier_slots = ts.n_slots;
        s->tier_entries_at_open = ts.entries_at_open;
    }
}

const char *provider_io_note(const struct provider *p)
{
    return p->io_note;
}

const char *provider_backend_name(const struct provider *p)
{
    return reader_backend_name(reader_backend(p->rd));
}
