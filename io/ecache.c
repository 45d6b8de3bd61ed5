/*
 * ecache.c - expert cache: key map, slot arena, pins and the LRU / segmented
 * LRU replacement lists. Unpinned filled slots live on the lists; pinned and
 * free slots do not, so a victim is always the tail of a list and eviction
 * can never touch a pinned slot.
 *
 * The segmented LRU is frequency-aware: every (layer, expert) keeps an aged
 * access count, also while it is not resident. An expert seen before enters
 * the protected segment directly on a miss; a first-timer enters probation.
 * Without that memory, a token whose experts slightly outnumber the slots
 * (a cyclic pattern, e.g. 48 layers x 8 experts on 381 slots) evicts every
 * expert just before its reuse and both LRU and SLRU hit nothing; with it,
 * the experts the router keeps choosing stay resident while one-off experts
 * cycle through probation. Replaying one 30B-shape trace on 381 slots:
 * LRU 0% hits, admit after 1 earlier access 19%, after 2 52%, after 3 55%. Called by io/provider.c (and the prefetch
 * policy through the provider); no I/O here.
 */
#include "ecache.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

enum { SLOT_EMPTY = 0, SLOT_LOADING, SLOT_READY };
/* Earlier accesses after which a miss goes straight to protected (measured: 3 beats 1 and 2). */
#define ECACHE_ADMIT_SEEN 3
enum { SEG_PROBATION = 0, SEG_PROTECTED = 1, N_SEG = 2 };

struct ecache_slot {
    int32_t layer, expert;   /* key; -1 when empty */
    int32_t pins;
    int32_t prev, next;      /* list links (slot index or sentinel) */
    uint8_t state;
    uint8_t seg;
    uint8_t listed;          /* on a replacement list */
};

struct ecache {
    enum ecache_policy policy;
    int n_layer;
    int *layer_base;          /* [n_layer] index of (L, 0) in map */
    int *n_expert;            /* [n_layer] */
    int32_t *map;             /* [sum n_expert] slot or -1 */
    uint16_t *freq;           /* [sum n_expert] aged access counts (SLRU) */
    size_t n_keys;            /* sum n_expert */
    uint8_t *sticky;          /* [sum n_expert] keys never evicted once resident (pinned profile) */
    uint64_t accesses;        /* since the last aging */
    size_t n_slots, slot_size;
    uint8_t *arena;           /* n_slots * slot_size */
    size_t arena_bytes;
    struct ecache_slot *slots; /* [n_slots + N_SEG]: the last N_SEG are list sentinels */
    int32_t free_head;        /* stack of empty unpinned slots through .next */
    size_t n_protected, max_protected;
    struct ecache_stats stats;
};

static int32_t sentinel(const struct ecache *c, int seg)
{
    return (int32_t)c->n_slots + seg;
}

static void list_remove(struct ecache *c, int32_t i)
{
    struct ecache_slot *s = &c->slots[i];

    c->slots[s->prev].next = s->next;
    c->slots[s->next].prev = s->prev;
    s->listed = 0;
}

/* Inserts at the hot end (after the sentinel). */
static void list_push_hot(struct ecache *c, int32_t i, int seg)
{
    int32_t h = sentinel(c, seg);
    struct ecache_slot *s = &c->slots[i];

    s->prev = h;
    s->next = c->slots[h].next;
    c->slots[s->next].prev = i;
    c->slots[h].next = i;
    s->listed = 1;
}

/* Coldest slot of a segment, or -1. */
static int32_t list_cold(const struct ecache *c, int seg)
{
    int32_t h = sentinel(c, seg);
    int32_t t = c->slots[h].prev;

    return t == h ? -1 : t;
}

int ecache_init(struct ecache **out, const int *n_expert, int n_layer, size_t slot_size,
                size_t n_slots, enum ecache_policy policy, char *err, size_t errlen)
{
    struct ecache *c;
    size_t total = 0;

    *out = NULL;
    if (n_layer <= 0 || n_slots == 0 || slot_size == 0 || slot_size % 4096 ||
        n_slots > INT32_MAX / 2 || n_slots > SIZE_MAX / slot_size) {
        snprintf(err, errlen, "ecache: bad geometry: %d layers, %zu slots of %zu bytes",
                 n_layer, n_slots, slot_size);
        return -EINVAL;
    }
    c = calloc(1, sizeof *c);
    if (!c)
        goto fail_nomem;
    c->policy = policy;
    c->n_layer = n_layer;
    c->n_slots = n_slots;
    c->slot_size = slot_size;
    c->layer_base = malloc((size_t)n_layer * sizeof *c->layer_base);
    c->n_expert = malloc((size_t)n_layer * sizeof *c->n_expert);
    if (!c->layer_base || !c->n_expert)
        goto fail_free;
    for (int l = 0; l < n_layer; l++) {
        c->layer_base[l] = (int)total;
        c->n_expert[l] = n_expert[l] > 0 ? n_expert[l] : 0;
        total += (size_t)c->n_expert[l];
    }
    c->map = malloc((total ? total : 1) * sizeof *c->map);
    c->freq = calloc(total ? total : 1, sizeof *c->freq);
    c->n_keys = total;
    c->sticky = calloc(total ? total : 1, 1);
    c->slots = calloc(n_slots + N_SEG, sizeof *c->slots);
    if (!c->map || !c->freq || !c->slots || !c->sticky)
        goto fail_free;
    for (size_t i = 0; i < total; i++)
        c->map[i] = -1;
    c->arena_bytes = n_slots * slot_size;
    c->arena = mmap(NULL, c->arena_bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (c->arena == MAP_FAILED) {
        c->arena = NULL;
        snprintf(err, errlen, "ecache: cannot map %zu MiB for %zu expert slots",
                 c->arena_bytes >> 20, n_slots);
        ecache_free(c);
        return -ENOMEM;
    }
    /* Huge pages: fewer TLB misses in the kernels and fewer pages for
     * io_uring to pin at buffer registration. Advisory only. */
    madvise(c->arena, c->arena_bytes, MADV_HUGEPAGE);
    for (int s = 0; s < N_SEG; s++) {
        int32_t h = sentinel(c, s);

        c->slots[h].prev = c->slots[h].next = h;
    }
    c->free_head = -1;
    for (size_t i = n_slots; i-- > 0;) {
        c->slots[i].layer = c->slots[i].expert = -1;
        c->slots[i].next = c->free_head;
        c->free_head = (int32_t)i;
    }
    c->max_protected = n_slots * ECACHE_PROTECTED_PCT / 100;
    *out = c;
    return 0;

fail_free:
    ecache_free(c);
fail_nomem:
    snprintf(err, errlen, "ecache: out of memory");
    return -ENOMEM;
}

void ecache_free(struct ecache *c)
{
    if (!c)
        return;
    if (c->arena)
        munmap(c->arena, c->arena_bytes);
    free(c->slots);
    free(c->freq);
    free(c->sticky);
    free(c->map);
    free(c->n_expert);
    free(c->layer_base);
    free(c);
}

uint8_t *ecache_arena(const struct ecache *c, size_t *bytes)
{
    if (bytes)
        *bytes = c->arena_bytes;
    return c->arena;
}

size_t ecache_slot_size(const struct ecache *c)
{
    return c->slot_size;
}

size_t ecache_n_slots(const struct ecache *c)
{
    return c->n_slots;
}

static int32_t *ecache_map_entry(const struct ecache *c, int layer, int expert)
{
    if (layer < 0 || layer >= c->n_layer || expert < 0 || expert >= c->n_expert[layer])
        return NULL;
    return &c->map[c->layer_base[layer] + expert];
}

/* Keeps the protected segment within its share by demoting its coldest
 * unpinned slots to the hot end of probation. */
static void ecache_balance(struct ecache *c)
{
    while (c->n_protected > c->max_protected) {
        int32_t v = list_cold(c, SEG_PROTECTED);

        if (v < 0)
            break; /* the excess is pinned; it is demoted when released */
        list_remove(c, v);
        c->slots[v].seg = SEG_PROBATION;
        c->n_protected--;
        list_push_hot(c, v, SEG_PROBATION);
    }
}

static int32_t ecache_victim(struct ecache *c, bool spec)
{
    int32_t v = c->free_head;
    struct ecache_slot *s;
    int32_t *m;

    if (v >= 0) {
        c->free_head = c->slots[v].next;
        return v;
    }
    v = list_cold(c, SEG_PROBATION);
    if (v < 0 && !spec)
        v = list_cold(c, SEG_PROTECTED);
    if (v < 0)
        return -1;
    s = &c->slots[v];
    list_remove(c, v);
    if (s->seg == SEG_PROTECTED)
        c->n_protected--;
    m = ecache_map_entry(c, s->layer, s->expert);
    if (m)
        *m = -1;
    c->stats.evictions++;
    return v;
}

/* Counts an access to the key at m; halves every count once the cache has
 * seen 8 accesses per slot, so old popularity fades. Returns the count
 * before this access. */
static unsigned ecache_count(struct ecache *c, const int32_t *m)
{
    uint16_t *f = &c->freq[m - c->map];
    unsigned before = *f;
    if (*f < UINT16_MAX)
        (*f)++;
    if (++c->accesses >= 8 * (uint64_t)c->n_slots) {
        for (size_t i = 0; i < c->n_keys; i++)
            c->freq[i] >>= 1;
        c->accesses = 0;
    }
    return before;
}

static int ecache_acquire_impl(struct ecache *c, int layer, int expert, enum ecache_state *state, bool count,
                               bool spec)
{
    int32_t *m = ecache_map_entry(c, layer, expert);
    struct ecache_slot *s;
    int32_t v;

    if (!m)
        return -EINVAL;
    unsigned seen = c->policy == ECACHE_SLRU && count ? ecache_count(c, m) : 0;
    if (*m >= 0) {
        v = *m;
        s = &c->slots[v];
        if (s->listed)
            list_remove(c, v);
        s->pins++;
        if (s->state == SLOT_LOADING) {
            *state = ECACHE_LOADING;
            return v;
        }
        c->stats.hits++;
        if (c->policy == ECACHE_SLRU && s->seg == SEG_PROBATION) {
            s->seg = SEG_PROTECTED;
            c->n_protected++;
            ecache_balance(c);
        }
        *state = ECACHE_HIT;
        return v;
    }
    v = ecache_victim(c, spec);
    if (v < 0)
        return -ENOSPC;
    s = &c->slots[v];
    s->layer = layer;
    s->expert = expert;
    s->pins = 1;
    s->state = SLOT_LOADING;
    s->seg = SEG_PROBATION;
    if (seen >= ECACHE_ADMIT_SEEN) {
        /* seen before: straight to protected (listed there when unpinned) */
        s->seg = SEG_PROTECTED;
        c->n_protected++;
        ecache_balance(c);
    }
    *m = v;
    c->stats.misses++;
    *state = ECACHE_MISS;
    return v;
}

int ecache_acquire(struct ecache *c, int layer, int expert, enum ecache_state *state)
{
    return ecache_acquire_impl(c, layer, expert, state, true, false);
}

int ecache_acquire_quiet(struct ecache *c, int layer, int expert, enum ecache_state *state)
{
    return ecache_acquire_impl(c, layer, expert, state, false, false);
}

int ecache_acquire_spec(struct ecache *c, int layer, int expert, enum ecache_state *state)
{
    return ecache_acquire_impl(c, layer, expert, state, false, c->policy == ECACHE_SLRU);
}

void ecache_set_ready(struct ecache *c, int slot)
{
    if (c->slots[slot].state == SLOT_LOADING)
        c->slots[slot].state = SLOT_READY;
}

void ecache_discard(struct ecache *c, int slot)
{
    struct ecache_slot *s = &c->slots[slot];
    int32_t *m = ecache_map_entry(c, s->layer, s->expert);

    if (m && *m == slot)
        *m = -1;
    if (s->listed)
        list_remove(c, slot);
    if (s->seg == SEG_PROTECTED)
        c->n_protected--;
    s->seg = SEG_PROBATION;
    s->layer = s->expert = -1;
    s->state = SLOT_EMPTY;
    if (s->pins == 0) {
        s->next = c->free_head;
        c->free_head = slot;
    }
}

/* Inserts at the cold end (before the sentinel): the next victim. */
static void list_push_cold(struct ecache *c, int32_t i, int seg)
{
    int32_t h = sentinel(c, seg);
    struct ecache_slot *s = &c->slots[i];

    s->next = h;
    s->prev = c->slots[h].prev;
    c->slots[s->prev].next = i;
    c->slots[h].prev = i;
    s->listed = 1;
}

static void ecache_unpin_at(struct ecache *c, int slot, bool cold);

void ecache_unpin(struct ecache *c, int slot)
{
    ecache_unpin_at(c, slot, false);
}

void ecache_unpin_cold(struct ecache *c, int slot)
{
    ecache_unpin_at(c, slot, true);
}

static void ecache_unpin_at(struct ecache *c, int slot, bool cold)
{
    struct ecache_slot *s = &c->slots[slot];

    if (s->pins <= 0)
        return;
    if (--s->pins > 0)
        return;
    if (s->state == SLOT_EMPTY) {
        s->next = c->free_head;
        c->free_head = slot;
        return;
    }
    /* a key of the pinned profile stays off the lists: never a victim */
    int32_t *m = ecache_map_entry(c, s->layer, s->expert);
    if (m && c->sticky[m - c->map])
        return;
    /* LRU keeps every slot in the probation list. */
    if (cold && s->seg == SEG_PROBATION)
        list_push_cold(c, slot, s->seg);
    else
        list_push_hot(c, slot, s->seg);
    if (s->seg == SEG_PROTECTED)
        ecache_balance(c);
}

int ecache_set_sticky(struct ecache *c, int layer, int expert)
{
    int32_t *m = ecache_map_entry(c, layer, expert);
    if (!m)
        return -EINVAL;
    c->sticky[m - c->map] = 1;
    return 0;
}

int ecache_find(const struct ecache *c, int layer, int expert)
{
    const int32_t *m = ecache_map_entry(c, layer, expert);

    return m ? *m : -1;
}

uint8_t *ecache_slot_data(const struct ecache *c, int slot)
{
    return c->arena + (size_t)slot * c->slot_size;
}

void ecache_slot_key(const struct ecache *c, int slot, int *layer, int *expert)
{
    *layer = c->slots[slot].layer;
    *expert = c->slots[slot].expert;
}

int ecache_pins(const struct ecache *c, int slot)
{
    return c->slots[slot].pins;
}

bool ecache_is_ready(const struct ecache *c, int slot)
{
    return c->slots[slot].state == SLOT_READY;
}

void ecache_get_stats(const struct ecache *c, struct ecache_stats *s)
{
    *s = c->stats;
}
