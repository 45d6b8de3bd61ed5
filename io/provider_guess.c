/*
 * provider_guess.c - prefetch guesses and the pinned profile of the expert
 * provider (io/provider.h). A guess is a (layer, expert) a later request will
 * probably ask for. Guesses wait in a small queue, likeliest first, and
 * start whenever the queue depth has a free slot and no demand read of the
 * current request is still waiting for one: the disk then always has work,
 * and a demand read never queues behind a guess that has not started. A
 * request drops the guesses that can no longer help (its own layer and
 * earlier, and layers beyond the lookahead); guesses never change what a
 * request delivers, only when.
 */
#include "provider_impl.h"

#include "ecache.h"
#include "errmsg.h"
#include "splitfmt.h"

#include <errno.h>

static bool guess_queued(const struct provider *p, int layer, int expert)
{
    for (int i = 0; i < p->gq_n; i++)
        if (p->gq_layer[i] == layer && p->gq_expert[i] == expert)
            return true;
    return false;
}

static void guess_remove(struct provider *p, int i)
{
    for (int j = i + 1; j < p->gq_n; j++) {
        p->gq_layer[j - 1] = p->gq_layer[j];
        p->gq_expert[j - 1] = p->gq_expert[j];
    }
    p->gq_n--;
}

/* Starts one guess into a speculative slot: 1 started, 0 nothing cold
 * enough to displace (try later), -1 the read could not start (dropped). */
static int guess_start(struct provider *p, int layer, int e)
{
    enum ecache_state state;
    int slot = ecache_acquire_spec(p->cache, layer, e, &state);
    if (slot < 0)
        return 0;
    provider_slot_reused(p, slot);
    if (provider_start_read(p, layer, e, slot) < 0) {
        ecache_discard(p->cache, slot);
        ecache_unpin(p->cache, slot);
        return -1;
    }
    p->pf[slot] = 1;
    p->pf_inflight++;
    provider_io_start(p);
    p->st.prefetches++;
    return 1;
}

void provider_guess_pump(struct provider *p)
{
    while (p->gq_n > 0 && p->pending_count == 0 && p->outstanding < p->blob_qd) {
        int layer = p->gq_layer[0], e = p->gq_expert[0];
        if (ecache_find(p->cache, layer, e) >= 0) {
            guess_remove(p, 0); /* resident or loading by now */
            continue;
        }
        int rc = guess_start(p, layer, e);
        if (rc == 0)
            return; /* every slot is hot or pinned: keep the guesses for later */
        guess_remove(p, 0);
    }
}

void provider_guess_drop_stale(struct provider *p, int layer)
{
    int n = 0;
    for (int i = 0; i < p->gq_n; i++)
        if (p->gq_layer[i] > layer && p->gq_layer[i] <= layer + PROVIDER_GUESS_LAYERS) {
            p->gq_layer[n] = p->gq_layer[i];
            p->gq_expert[n] = p->gq_expert[i];
            n++;
        }
    p->gq_n = n;
}

int provider_prefetch(struct provider *p, int layer, const int *experts, int n)
{
    if (layer < 0 || layer >= p->m->n_layer || p->m->layers[layer].n_expert == 0)
        return 0;
    if (!p->active)
        provider_reap_quiet(p);
    uint64_t before = p->st.prefetches;
    for (int i = 0; i < n && p->gq_n < p->gq_cap; i++) {
        int e = experts[i];
        if (e < 0 || e >= p->m->layers[layer].n_expert || ecache_find(p->cache, layer, e) >= 0 ||
            guess_queued(p, layer, e))
            continue; /* out of range, resident, loading or queued */
        p->gq_layer[p->gq_n] = layer;
        p->gq_expert[p->gq_n] = e;
        p->gq_n++;
    }
    provider_guess_pump(p);
    return (int)(p->st.prefetches - before);
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
