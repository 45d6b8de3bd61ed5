/*
 * tier.c - the local SSD tier (io/tier.h): the tier file's header, index and
 * access counts, admission and replacement, and the writer thread that puts
 * staged blobs into the file off the decode path. Reads of the tier are the
 * provider's (io/provider.c, through its reader); this file only says which
 * slot holds what. Called by io/provider.c only.
 */
#include "tier.h"

#include "splitfmt.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

#define TIER_MAGIC "MSTIER01"
#define TIER_HDR_BYTES 4096
#define TIER_DATA_ALIGN 16384
/* Counts are halved after this many RAM misses per key of the model, so the
 * tier follows a change of topic instead of keeping yesterday's experts. */
#define TIER_AGE_TOUCHES 8

/* On disk, host byte order (little endian on every supported machine). */
struct tier_hdr {
    char magic[8];
    uint32_t version;
    uint32_t hdr_bytes;
    uint64_t split_id;
    uint64_t slot_bytes;
    uint64_t n_slots;
    uint64_t n_keys;
    uint64_t index_off;
    uint64_t count_off;
    uint64_t data_off;
    uint64_t file_bytes;
    char split_dir[3072];
    uint64_t xxh3;          /* of every byte above */
};
_Static_assert(sizeof(struct tier_hdr) <= TIER_HDR_BYTES, "tier header fits its block");

struct tier_disk_entry {
    int32_t layer;          /* -1: empty */
    int32_t expert;
    uint64_t xxh3;
};
_Static_assert(sizeof(struct tier_disk_entry) == 16, "tier index entry is 16 bytes");

enum { TSLOT_EMPTY = 0, TSLOT_WRITING, TSLOT_VALID };

struct tier_slot {
    int32_t key;            /* -1: none */
    uint8_t state;
    int readers;            /* reads in flight: not reused meanwhile */
};

struct tier_job {
    int slot, key;
    size_t len;             /* bytes written */
    size_t hash_len;        /* blob_bytes: the checksummed part */
    uint64_t xxh3;          /* the manifest's checksum of the blob */
};

struct tier {
    const struct split_model *m;
    struct tier_opts o;
    char path[4200];
    int fd;                 /* buffered: header, index, counts; holds the flock */
    int dfd;                /* O_DIRECT for blob writes, or -1 (fd, then dropped from the page cache) */
    uint64_t slot_bytes, n_slots, n_keys, index_off, count_off, data_off, file_bytes;
    int *key_base;          /* [n_layer] first key of the layer */
    int *key_layer;         /* [n_keys] */
    int32_t *key_slot;      /* [n_keys] tier slot or -1 */
    uint32_t *count;        /* [n_keys] aged RAM-miss counts */
    uint64_t touches;       /* since the last aging */
    struct tier_slot *slots; /* [n_slots] */
    int32_t *free_slots;    /* [n_slots] stack */
    int n_free;
    uint64_t rng;
    struct tier_disk_entry *disk; /* [n_slots] index image for load and save */

    uint8_t *stage;         /* TIER_STAGING * slot_bytes, 4 KiB aligned */
    struct tier_job jobs[TIER_STAGING];
    int stage_free[TIER_STAGING], n_stage_free;
    int queue[TIER_STAGING], q_head, q_count;
    int busy;               /* jobs taken by the writer, not finished */
    pthread_t thread;
    bool thread_started, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv, idle;

    struct tier_stats st;
};

static void tier_log(const struct tier *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tier_log(const struct tier *t, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (!t->o.log)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    t->o.log(msg);
}

static uint64_t round_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t r = pread(fd, p, len, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EIO;
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* What the tier belongs to: the exact expert contents of one split. */
static uint64_t tier_split_id(const struct split_model *m)
{
    uint64_t id = XXH3_64bits(TIER_MAGIC, 8);

    for (int l = 0; l < m->n_layer; l++) {
        const struct split_layer *ly = &m->layers[l];
        uint64_t g[4] = { (uint64_t)l, (uint64_t)ly->n_expert, ly->blob_size, ly->blob_bytes };

        id = XXH3_64bits_withSeed(g, sizeof g, id);
        if (ly->n_expert > 0)
            id = XXH3_64bits_withSeed(ly->blob_xxh3, (size_t)ly->n_expert * sizeof *ly->blob_xxh3, id);
    }
    return id;
}

static void tier_fill_hdr(const struct tier *t, struct tier_hdr *h)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, TIER_MAGIC, 8);
    h->version = TIER_VERSION;
    h->hdr_bytes = TIER_HDR_BYTES;
    h->split_id = tier_split_id(t->m);
    h->slot_bytes = t->slot_bytes;
    h->n_slots = t->n_slots;
    h->n_keys = t->n_keys;
    h->index_off = t->index_off;
    h->count_off = t->count_off;
    h->data_off = t->data_off;
    h->file_bytes = t->file_bytes;
    size_t dl = strnlen(t->m->dir, sizeof h->split_dir - 1);
    memcpy(h->split_dir, t->m->dir, dl); /* the name, for the notice; cut if longer */
    h->xxh3 = XXH3_64bits(h, offsetof(struct tier_hdr, xxh3));
}

/* Why an existing header cannot be used ("" when it can). */
static void tier_check_hdr(const struct tier *t, const struct tier_hdr *h, uint64_t size, char *why, size_t len)
{
    struct tier_hdr want;

    tier_fill_hdr(t, &want);
    why[0] = 0;
    if (memcmp(h->magic, TIER_MAGIC, 8))
        snprintf(why, len, "not a moestream tier file (bad magic)");
    else if (h->xxh3 != XXH3_64bits(h, offsetof(struct tier_hdr, xxh3)))
        snprintf(why, len, "header checksum mismatch (damaged)");
    else if (h->version != TIER_VERSION)
        snprintf(why, len, "version %u, this moestream writes %u", h->version, TIER_VERSION);
    else if (h->split_id != want.split_id)
        snprintf(why, len, "it belongs to another split (%.200s)", h->split_dir);
    else if (h->slot_bytes != want.slot_bytes || h->n_slots != want.n_slots || h->n_keys != want.n_keys ||
             h->file_bytes != want.file_bytes || h->data_off != want.data_off)
        snprintf(why, len, "its size (%llu slots) differs from --ssd-cache-size (%llu slots)",
                 (unsigned long long)h->n_slots, (unsigned long long)want.n_slots);
    else if (size != h->file_bytes)
        snprintf(why, len, "file is %llu bytes, header says %llu (truncated?)", (unsigned long long)size,
                 (unsigned long long)h->file_bytes);
}

/* Slots of slot_bytes that fit max bytes with the header, index and counts. */
static void tier_geometry(struct tier *t, uint64_t max)
{
    uint64_t n = max > TIER_HDR_BYTES + t->n_keys * 4 ? (max - TIER_HDR_BYTES - t->n_keys * 4) / (t->slot_bytes + 16)
                                                      : 0;
    if (n > t->n_keys)
        n = t->n_keys;
    for (;; n--) {
        t->n_slots = n;
        t->index_off = TIER_HDR_BYTES;
        t->count_off = t->index_off + n * sizeof(struct tier_disk_entry);
        t->data_off = round_up(t->count_off + t->n_keys * 4, TIER_DATA_ALIGN);
        t->file_bytes = t->data_off + n * t->slot_bytes;
        if (n == 0 || t->file_bytes <= max)
            break;
    }
}

/* Writes a fresh header, an empty index and zero counts. */
static int tier_create(struct tier *t)
{
    uint8_t blk[TIER_HDR_BYTES] = { 0 };
    struct tier_hdr h;
    int rc;

    if (ftruncate(t->fd, 0) < 0 || ftruncate(t->fd, (off_t)t->file_bytes) < 0)
        return -errno;
    for (uint64_t i = 0; i < t->n_slots; i++)
        t->disk[i] = (struct tier_disk_entry){ -1, -1, 0 };
    rc = pwrite_all(t->fd, t->disk, (size_t)t->n_slots * sizeof *t->disk, t->index_off);
    if (rc < 0)
        return rc;
    tier_fill_hdr(t, &h);
    memcpy(blk, &h, sizeof h);
    return pwrite_all(t->fd, blk, sizeof blk, 0);
}

/* Takes the entries of an existing index whose checksum matches the split. */
static int tier_load(struct tier *t)
{
    int rc = pread_all(t->fd, t->disk, (size_t)t->n_slots * sizeof *t->disk, t->index_off);

    if (rc == 0)
        rc = pread_all(t->fd, t->count, (size_t)t->n_keys * 4, t->count_off);
    if (rc < 0)
        return rc;
    for (uint64_t s = 0; s < t->n_slots; s++) {
        const struct tier_disk_entry *d = &t->disk[s];

        if (d->layer < 0 || d->layer >= t->m->n_layer || d->expert < 0 ||
            d->expert >= t->m->layers[d->layer].n_expert ||
            t->m->layers[d->layer].blob_xxh3[d->expert] != d->xxh3)
            continue;
        int key = t->key_base[d->layer] + d->expert;
        if (t->key_slot[key] >= 0)
            continue; /* a duplicate: keep the first */
        t->key_slot[key] = (int32_t)s;
        t->slots[s].key = key;
        t->slots[s].state = TSLOT_VALID;
        t->st.entries++;
    }
    t->st.entries_at_open = t->st.entries;
    return 0;
}

static void tier_key_split(const struct tier *t, int key, int *layer, int *expert)
{
    *layer = t->key_layer[key];
    *expert = key - t->key_base[*layer];
}

static void *tier_writer(void *arg)
{
    struct tier *t = arg;

    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (t->q_count == 0 && !t->stop)
            pthread_cond_wait(&t->cv, &t->mu);
        if (t->q_count == 0)
            break;
        int b = t->queue[t->q_head];
        t->q_head = (t->q_head + 1) % TIER_STAGING;
        t->q_count--;
        t->busy++;
        struct tier_job j = t->jobs[b];
        pthread_mutex_unlock(&t->mu);

        const uint8_t *src = t->stage + (size_t)b * t->slot_bytes;
        int layer, expert, rc = 0;
        tier_key_split(t, j.key, &layer, &expert);
        /* a store read that was not verified may be damaged: never keep it */
        bool good = XXH3_64bits(src, j.hash_len) == j.xxh3;
        if (good) {
            struct tier_disk_entry e = { -1, -1, 0 };
            uint64_t off = t->data_off + (uint64_t)j.slot * t->slot_bytes;

            /* the index says "empty" while the data changes; a crash in
             * between leaves an entry whose blob fails its checksum */
            rc = pwrite_all(t->fd, &e, sizeof e, t->index_off + (uint64_t)j.slot * sizeof e);
            if (rc == 0)
                rc = pwrite_all(t->dfd >= 0 ? t->dfd : t->fd, src, j.len, off);
            if (rc == 0 && t->dfd < 0)
                (void)posix_fadvise(t->fd, (off_t)off, (off_t)j.len, POSIX_FADV_DONTNEED);
            e = (struct tier_disk_entry){ layer, expert, j.xxh3 };
            if (rc == 0)
                rc = pwrite_all(t->fd, &e, sizeof e, t->index_off + (uint64_t)j.slot * sizeof e);
        }

        pthread_mutex_lock(&t->mu);
        if (good && rc == 0) {
            t->slots[j.slot].state = TSLOT_VALID;
            t->st.entries++;
            t->st.writes++;
            t->st.write_bytes += j.len;
        } else {
            if (rc < 0 && t->st.write_errors++ == 0)
                tier_log(t, "ssd tier %s: write of layer %d expert %d failed: %s (the expert is read from the "
                            "store)", t->path, layer, expert, strerror(-rc));
            if (!good)
                t->st.rejected++;
            t->slots[j.slot].state = TSLOT_EMPTY;
            t->slots[j.slot].key = -1;
            t->key_slot[j.key] = -1;
            t->free_slots[t->n_free++] = j.slot;
        }
        t->stage_free[t->n_stage_free++] = b;
        t->busy--;
        pthread_cond_broadcast(&t->idle);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int tier_open(struct tier **out, const struct split_model *m, uint64_t slot_bytes, const struct tier_opts *o,
              char *err, size_t errlen)
{
    struct tier *t;
    struct stat sb;
    uint64_t max = o->max_bytes;
    int rc;

    *out = NULL;
    if (!o->dir || !o->dir[0]) {
        snprintf(err, errlen, "ssd tier: no directory given");
        return -EINVAL;
    }
    if (slot_bytes == 0 || slot_bytes % TIER_DATA_ALIGN) {
        snprintf(err, errlen, "ssd tier: slot size %llu is not a multiple of %d", (unsigned long long)slot_bytes,
                 TIER_DATA_ALIGN);
        return -EINVAL;
    }
    for (int l = 0; l < m->n_layer; l++)
        if (m->layers[l].n_expert > 0 && !m->layers[l].blob_xxh3) {
            snprintf(err, errlen, "ssd tier: layer %d of %s has no blob checksums: the tier needs a split model "
                     "made by moestream-split", l, m->dir);
            return -EINVAL;
        }
    if (mkdir(o->dir, 0755) < 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "ssd tier: cannot create directory %s: %s", o->dir, strerror(-rc));
        return rc;
    }
    if (stat(o->dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "ssd tier: %s is not a directory", o->dir);
        return -ENOTDIR;
    }
    if (max == 0) {
        struct statvfs vf;
        if (statvfs(o->dir, &vf) < 0) {
            rc = -errno;
            snprintf(err, errlen, "ssd tier: statvfs %s: %s (give --ssd-cache-size)", o->dir, strerror(-rc));
            return rc;
        }
        max = (uint64_t)vf.f_bavail * vf.f_frsize / 2;
    }

    t = calloc(1, sizeof *t);
    if (!t)
        goto nomem;
    t->m = m;
    t->o = *o;
    t->fd = t->dfd = -1;
    t->slot_bytes = slot_bytes;
    t->rng = 0x9e3779b97f4a7c15ull;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    pthread_cond_init(&t->idle, NULL);
    snprintf(t->path, sizeof t->path, "%s/" TIER_FILE, o->dir);
    t->key_base = calloc((size_t)m->n_layer, sizeof *t->key_base);
    if (!t->key_base)
        goto nomem_t;
    for (int l = 0; l < m->n_layer; l++) {
        t->key_base[l] = (int)t->n_keys;
        t->n_keys += (uint64_t)m->layers[l].n_expert;
    }
    tier_geometry(t, max);
    if (t->n_slots == 0) {
        snprintf(err, errlen, "ssd tier: --ssd-cache-size %.1f MiB holds no expert: one takes %.1f MiB plus "
                 "%.1f MiB of index", max / 1048576.0, slot_bytes / 1048576.0,
                 (TIER_HDR_BYTES + t->n_keys * 4 + TIER_DATA_ALIGN) / 1048576.0);
        rc = -ENOSPC;
        goto fail;
    }
    t->key_layer = malloc((size_t)t->n_keys * sizeof *t->key_layer);
    t->key_slot = malloc((size_t)t->n_keys * sizeof *t->key_slot);
    t->count = calloc((size_t)t->n_keys, sizeof *t->count);
    t->slots = calloc((size_t)t->n_slots, sizeof *t->slots);
    t->free_slots = malloc((size_t)t->n_slots * sizeof *t->free_slots);
    t->disk = malloc((size_t)t->n_slots * sizeof *t->disk);
    if (!t->key_layer || !t->key_slot || !t->count || !t->slots || !t->free_slots || !t->disk ||
        posix_memalign((void **)&t->stage, 4096, TIER_STAGING * (size_t)slot_bytes))
        goto nomem_t;
    for (int l = 0; l < m->n_layer; l++)
        for (int e = 0; e < m->layers[l].n_expert; e++)
            t->key_layer[t->key_base[l] + e] = l;
    for (uint64_t k = 0; k < t->n_keys; k++)
        t->key_slot[k] = -1;
    for (uint64_t s = 0; s < t->n_slots; s++)
        t->slots[s].key = -1;

    t->fd = open(t->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (t->fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "ssd tier: cannot open %s: %s", t->path, strerror(-rc));
        goto fail;
    }
    if (flock(t->fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        snprintf(err, errlen, "ssd tier: %s is in use by another moestream process", t->path);
        goto fail;
    }
    if (fstat(t->fd, &sb) < 0) {
        rc = -errno;
        snprintf(err, errlen, "ssd tier: fstat %s: %s", t->path, strerror(-rc));
        goto fail;
    }
    {
        uint8_t blk[TIER_HDR_BYTES];
        struct tier_hdr h;
        char why[512] = "empty file";

        if ((uint64_t)sb.st_size >= TIER_HDR_BYTES && pread_all(t->fd, blk, sizeof blk, 0) == 0) {
            memcpy(&h, blk, sizeof h);
            tier_check_hdr(t, &h, (uint64_t)sb.st_size, why, sizeof why);
        }
        if (!why[0])
            rc = tier_load(t);
        else {
            if (sb.st_size == 0)
                tier_log(t, "ssd tier: creating %s (%llu slots of %.1f MiB, %.2f GiB)", t->path,
                         (unsigned long long)t->n_slots, slot_bytes / 1048576.0, t->file_bytes / 1073741824.0);
            else
                tier_log(t, "ssd tier: rebuilding %s: %s", t->path, why);
            rc = tier_create(t);
        }
        if (rc < 0) {
            snprintf(err, errlen, "ssd tier: cannot %s %s: %s", why[0] ? "create" : "read", t->path,
                     strerror(-rc));
            goto fail;
        }
    }
    for (int64_t s = (int64_t)t->n_slots - 1; s >= 0; s--)
        if (t->slots[s].state == TSLOT_EMPTY)
            t->free_slots[t->n_free++] = (int32_t)s;
    t->dfd = open(t->path, O_RDWR | O_DIRECT | O_CLOEXEC);
    if (t->dfd < 0)
        tier_log(t, "ssd tier: %s: no O_DIRECT (%s): writing through the page cache, dropping each write "
                    "from it", t->path, strerror(errno));
    for (int b = 0; b < TIER_STAGING; b++)
        t->stage_free[t->n_stage_free++] = b;
    t->st.n_slots = t->n_slots;
    t->st.file_bytes = t->file_bytes;
    if ((rc = pthread_create(&t->thread, NULL, tier_writer, t)) != 0) {
        rc = -rc;
        snprintf(err, errlen, "ssd tier: cannot start the writer thread: %s", strerror(-rc));
        goto fail;
    }
    t->thread_started = true;
    *out = t;
    return 0;

nomem_t:
    rc = -ENOMEM;
    snprintf(err, errlen, "ssd tier: out of memory");
fail:
    tier_close(t);
    return rc;
nomem:
    snprintf(err, errlen, "ssd tier: out of memory");
    return -ENOMEM;
}

/* Saves the index and the counts (the blobs are already written). */
static void tier_save(struct tier *t)
{
    for (uint64_t s = 0; s < t->n_slots; s++) {
        int layer, expert;

        if (t->slots[s].state != TSLOT_VALID) {
            t->disk[s] = (struct tier_disk_entry){ -1, -1, 0 };
            continue;
        }
        tier_key_split(t, t->slots[s].key, &layer, &expert);
        t->disk[s] = (struct tier_disk_entry){ layer, expert, t->m->layers[layer].blob_xxh3[expert] };
    }
    int rc = pwrite_all(t->fd, t->disk, (size_t)t->n_slots * sizeof *t->disk, t->index_off);
    if (rc == 0)
        rc = pwrite_all(t->fd, t->count, (size_t)t->n_keys * 4, t->count_off);
    if (rc == 0 && fsync(t->fd) < 0)
        rc = -errno;
    if (rc < 0)
        tier_log(t, "ssd tier: saving the index of %s failed: %s (its entries are checked at the next open)",
                 t->path, strerror(-rc));
}

void tier_close(struct tier *t)
{
    if (!t)
        return;
    if (t->thread_started) {
        pthread_mutex_lock(&t->mu);
        t->stop = true;
        pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->thread, NULL);
        tier_save(t);
    }
    if (t->dfd >= 0)
        close(t->dfd);
    if (t->fd >= 0)
        close(t->fd); /* drops the flock */
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    pthread_cond_destroy(&t->idle);
    free(t->stage);
    free(t->disk);
    free(t->free_slots);
    free(t->slots);
    free(t->count);
    free(t->key_slot);
    free(t->key_layer);
    free(t->key_base);
    free(t);
}

const char *tier_path(const struct tier *t)
{
    return t->path;
}

uint64_t tier_slot_offset(const struct tier *t, int slot)
{
    return t->data_off + (uint64_t)slot * t->slot_bytes;
}

static int tier_key(const struct tier *t, int layer, int expert)
{
    if (layer < 0 || layer >= t->m->n_layer || expert < 0 || expert >= t->m->layers[layer].n_expert)
        return -1;
    return t->key_base[layer] + expert;
}

int tier_lookup(struct tier *t, int layer, int expert)
{
    int key = tier_key(t, layer, expert), s = -1;

    if (key < 0)
        return -1;
    pthread_mutex_lock(&t->mu);
    if (t->key_slot[key] >= 0 && t->slots[t->key_slot[key]].state == TSLOT_VALID) {
        s = t->key_slot[key];
        t->slots[s].readers++;
    }
    pthread_mutex_unlock(&t->mu);
    return s;
}

void tier_read_done(struct tier *t, int slot, bool ok)
{
    pthread_mutex_lock(&t->mu);
    struct tier_slot *s = &t->slots[slot];
    if (s->readers > 0)
        s->readers--;
    if (!ok && s->state == TSLOT_VALID) {
        t->key_slot[s->key] = -1;
        s->key = -1;
        s->state = TSLOT_EMPTY;
        t->free_slots[t->n_free++] = slot;
        t->st.entries--;
        t->st.bad++;
    }
    pthread_mutex_unlock(&t->mu);
}

void tier_touch(struct tier *t, int layer, int expert)
{
    int key = tier_key(t, layer, expert);

    if (key < 0)
        return;
    /* the counts are only read under the lock by tier_offer on this thread,
     * and by tier_save after the writer stopped: no lock needed */
    if (t->count[key] < UINT32_MAX)
        t->count[key]++;
    if (++t->touches >= TIER_AGE_TOUCHES * t->n_keys) {
        for (uint64_t k = 0; k < t->n_keys; k++)
            t->count[k] >>= 1;
        t->touches = 0;
    }
}

static uint64_t tier_rand(struct tier *t)
{
    uint64_t z = (t->rng += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A slot for key (under the lock): a free one, or the least-counted of
 * TIER_SAMPLE sampled valid entries not being read, if key's count beats
 * it. -1 when nothing may be replaced. */
static int tier_pick(struct tier *t, int key)
{
    int victim = -1;
    uint32_t best = UINT32_MAX;

    if (t->n_free > 0)
        return t->free_slots[--t->n_free];
    for (int i = 0; i < TIER_SAMPLE; i++) {
        int s = (int)(tier_rand(t) % t->n_slots);

        if (t->slots[s].state != TSLOT_VALID || t->slots[s].readers > 0)
            continue;
        if (t->count[t->slots[s].key] < best) {
            best = t->count[t->slots[s].key];
            victim = s;
        }
    }
    if (victim < 0 || t->count[key] <= best)
        return -1;
    t->key_slot[t->slots[victim].key] = -1;
    t->st.entries--;
    return victim;
}

bool tier_offer(struct tier *t, int layer, int expert, const uint8_t *blob, size_t len)
{
    int key = tier_key(t, layer, expert), slot, b;

    if (key < 0 || len > t->slot_bytes || len % 4096)
        return false;
    pthread_mutex_lock(&t->mu);
    if (t->key_slot[key] >= 0) {
        pthread_mutex_unlock(&t->mu);
        return false; /* present or being written */
    }
    if (t->n_stage_free == 0) {
        t->st.dropped++;
        pthread_mutex_unlock(&t->mu);
        return false;
    }
    slot = tier_pick(t, key);
    if (slot < 0) {
        t->st.rejected++;
        pthread_mutex_unlock(&t->mu);
        return false;
    }
    t->slots[slot].key = key;
    t->slots[slot].state = TSLOT_WRITING;
    t->key_slot[key] = slot;
    b = t->stage_free[--t->n_stage_free];
    t->jobs[b] = (struct tier_job){ slot, key, len, (size_t)t->m->layers[layer].blob_bytes,
                                    t->m->layers[layer].blob_xxh3[expert] };
    pthread_mutex_unlock(&t->mu);

    memcpy(t->stage + (size_t)b * t->slot_bytes, blob, len); /* the buffer is ours until queued */

    pthread_mutex_lock(&t->mu);
    t->queue[(t->q_head + t->q_count) % TIER_STAGING] = b;
    t->q_count++;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    return true;
}

void tier_flush(struct tier *t)
{
    pthread_mutex_lock(&t->mu);
    while (t->q_count > 0 || t->busy > 0)
        pthread_cond_wait(&t->idle, &t->mu);
    pthread_mutex_unlock(&t->mu);
}

void tier_get_stats(struct tier *t, struct tier_stats *s)
{
    pthread_mutex_lock(&t->mu);
    *s = t->st;
    pthread_mutex_unlock(&t->mu);
}
