/*
 * test_ecache.c - the expert cache (io/ecache.c): pin/unpin and hit/miss
 * states, eviction never touching a pinned slot under both policies, failed
 * fills discarded, budget exhaustion (-ENOSPC), and LRU against segmented
 * LRU on a skewed (Zipf) routing trace with a scan mixed in: prints both hit
 * rates. No I/O.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "belady.h"
#include "ecache.h"

#define SLOT 4096

static struct ecache *make(int n_layer, int n_expert, size_t n_slots, enum ecache_policy pol)
{
    int ne[64];
    struct ecache *c;
    char err[256];

    for (int l = 0; l < n_layer; l++)
        ne[l] = n_expert;
    assert_int_equal(ecache_init(&c, ne, n_layer, SLOT, n_slots, pol, err, sizeof err), 0);
    return c;
}

/* Acquire + fill + ready; returns the slot, still pinned. */
static int fill(struct ecache *c, int l, int e, enum ecache_state *st)
{
    int s = ecache_acquire(c, l, e, st);

    assert_true(s >= 0);
    if (*st == ECACHE_MISS) {
        memset(ecache_slot_data(c, s), (l * 31 + e) & 0xff, SLOT);
        ecache_set_ready(c, s);
    }
    return s;
}

static void test_pin_unpin(void **state)
{
    struct ecache *c = make(2, 8, 4, ECACHE_SLRU);
    enum ecache_state st;
    int s, s2, l, e;

    (void)state;
    assert_int_equal(ecache_find(c, 1, 3), -1);
    s = fill(c, 1, 3, &st);
    assert_int_equal(st, ECACHE_MISS);
    assert_int_equal(ecache_pins(c, s), 1);
    ecache_slot_key(c, s, &l, &e);
    assert_int_equal(l, 1);
    assert_int_equal(e, 3);
    s2 = ecache_acquire(c, 1, 3, &st);
    assert_int_equal(s2, s);
    assert_int_equal(st, ECACHE_HIT);
    assert_int_equal(ecache_pins(c, s), 2);
    ecache_unpin(c, s);
    ecache_unpin(c, s);
    assert_int_equal(ecache_pins(c, s), 0);
    ecache_unpin(c, s); /* extra unpin is harmless */
    assert_int_equal(ecache_pins(c, s), 0);
    assert_int_equal(ecache_find(c, 1, 3), s);
    assert_int_equal(ecache_acquire(c, 2, 0, &st), -EINVAL);
    assert_int_equal(ecache_acquire(c, 0, 8, &st), -EINVAL);
    /* a slot acquired while its fill runs reports LOADING */
    s = ecache_acquire(c, 0, 5, &st);
    assert_int_equal(st, ECACHE_MISS);
    assert_int_equal(ecache_acquire(c, 0, 5, &st), s);
    assert_int_equal(st, ECACHE_LOADING);
    ecache_discard(c, s);
    ecache_unpin(c, s);
    ecache_unpin(c, s);
    assert_int_equal(ecache_find(c, 0, 5), -1);
    ecache_free(c);
}

static void pinned_survive(enum ecache_policy pol)
{
    struct ecache *c = make(4, 32, 6, pol);
    enum ecache_state st;
    int pinned[3];
    uint64_t rng = 1;

    for (int i = 0; i < 3; i++)
        pinned[i] = fill(c, 0, i, &st);
    for (int i = 0; i < 5000; i++) {
        int l = 1 + (int)(rng % 3), e;
        int s;

        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        e = (int)((rng >> 33) % 32);
        s = fill(c, l, e, &st);
        for (int k = 0; k < 3; k++)
            assert_int_not_equal(s, pinned[k]);
        ecache_unpin(c, s);
    }
    for (int k = 0; k < 3; k++) {
        const uint8_t *d = ecache_slot_data(c, pinned[k]);

        assert_int_equal(ecache_find(c, 0, k), pinned[k]);
        assert_true(ecache_is_ready(c, pinned[k]));
        for (int b = 0; b < SLOT; b++)
            assert_int_equal(d[b], k);
    }
    /* pin the rest: no victim left */
    int more[3];
    for (int i = 0; i < 3; i++)
        more[i] = fill(c, 3, 20 + i, &st);
    assert_int_equal(ecache_acquire(c, 3, 31, &st), -ENOSPC);
    ecache_unpin(c, more[1]);
    assert_int_equal(ecache_acquire(c, 3, 31, &st), more[1]);
    assert_int_equal(st, ECACHE_MISS);
    assert_int_equal(ecache_find(c, 3, 21), -1);
    ecache_free(c);
}

static void test_pinned_never_evicted_slru(void **state) { (void)state; pinned_survive(ECACHE_SLRU); }
static void test_pinned_never_evicted_lru(void **state) { (void)state; pinned_survive(ECACHE_LRU); }

static void test_every_expert_resident(void **state)
{
    struct ecache *c = make(3, 16, 48, ECACHE_SLRU);
    enum ecache_state st;
    struct ecache_stats cs;

    (void)state;
    for (int round = 0; round < 3; round++)
        for (int l = 0; l < 3; l++)
            for (int e = 0; e < 16; e++)
                ecache_unpin(c, fill(c, l, e, &st));
    ecache_get_stats(c, &cs);
    assert_int_equal(cs.misses, 48);
    assert_int_equal(cs.hits, 96);
    assert_int_equal(cs.evictions, 0);
    ecache_free(c);
}

/* Zipf(s) sample over n experts using a precomputed CDF. */
static int zipf_pick(const double *cdf, int n, uint64_t *rng)
{
    double u;
    int lo = 0, hi = n - 1;

    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
    u = (double)(*rng >> 11) / 9007199254740992.0;
    while (lo < hi) {
        int mid = (lo + hi) / 2;

        if (cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* n_layer layers of n_expert, top-k per layer per token, each layer with
 * its own permutation of a Zipf(1.0) popularity; every 8th token routes
 * to uniform random experts (a burst of one-off traffic). */
static double run_trace(enum ecache_policy pol, size_t n_slots)
{
    enum { L = 8, E = 64, K = 6, TOKENS = 3000 };
    struct ecache *c = make(L, E, n_slots, pol);
    double cdf[E], sum = 0;
    int perm[L][E];
    uint64_t rng = 12345;
    struct ecache_stats cs;

    for (int i = 0; i < E; i++)
        sum += 1.0 / (i + 1);
    double run = 0;
    for (int i = 0; i < E; i++) {
        run += 1.0 / (i + 1) / sum;
        cdf[i] = run;
    }
    for (int l = 0; l < L; l++) {
        for (int i = 0; i < E; i++)
            perm[l][i] = i;
        for (int i = E - 1; i > 0; i--) {
            int j, t;

            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            j = (int)((rng >> 33) % (uint64_t)(i + 1));
            t = perm[l][i];
            perm[l][i] = perm[l][j];
            perm[l][j] = t;
        }
    }
    for (int t = 0; t < TOKENS; t++) {
        for (int l = 0; l < L; l++) {
            int slots[K], n = 0;
            bool used[E] = {false};

            while (n < K) {
                int e;

                if (t % 8 == 7) {
                    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                    e = (int)((rng >> 33) % E);
                } else {
                    e = perm[l][zipf_pick(cdf, E, &rng)];
                }
                if (used[e])
                    continue;
                used[e] = true;
                enum ecache_state st;
                slots[n++] = fill(c, l, e, &st);
            }
            for (int i = 0; i < K; i++)
                ecache_unpin(c, slots[i]);
        }
    }
    ecache_get_stats(c, &cs);
    ecache_free(c);
    return (double)cs.hits / (double)(cs.hits + cs.misses);
}

static void test_lru_vs_slru_skewed(void **state)
{
    size_t budgets[] = {64, 128, 256};

    (void)state;
    for (size_t i = 0; i < 3; i++) {
        double lru = run_trace(ECACHE_LRU, budgets[i]);
        double slru = run_trace(ECACHE_SLRU, budgets[i]);

        print_message("skewed trace, %3zu of 512 experts resident: LRU hit rate %.1f%%, "
                      "segmented LRU %.1f%%\n", budgets[i], 100 * lru, 100 * slru);
        assert_true(lru > 0.05 && slru > 0.05);
        /* the frequency-aware policy must not lose to plain LRU on a skewed trace */
        assert_true(slru >= lru - 0.01);
    }
}

/* A pinned-profile (sticky) key is never evicted once released, while
 * the other keys keep cycling through the remaining slots. */
static void test_sticky_profile(void **state)
{
    (void)state;
    for (int pol = 0; pol < 2; pol++) {
        struct ecache *c = make(1, 32, 4, pol ? ECACHE_LRU : ECACHE_SLRU);
        enum ecache_state st;
        assert_int_equal(ecache_set_sticky(c, 0, 7), 0);
        assert_int_equal(ecache_set_sticky(c, 1, 0), -EINVAL);
        ecache_unpin(c, fill(c, 0, 7, &st));
        for (int i = 0; i < 40; i++)
            ecache_unpin(c, fill(c, 0, i % 31 == 7 ? 31 : i % 31, &st));
        int s = ecache_acquire(c, 0, 7, &st);
        assert_true(s >= 0);
        assert_int_equal(st, ECACHE_HIT);
        ecache_unpin(c, s);
        ecache_free(c);
    }
}

/* Belady's MIN on hand-checked sequences, and never below LRU or SLRU. */
static void test_belady(void **state)
{
    (void)state;
    uint64_t h;
    /* A B C A B, 2 slots: C evicts B (used later than A): only A hits */
    int32_t abcab[] = { 0, 1, 2, 0, 1 };
    assert_int_equal(belady_hits(abcab, NULL, 5, 2, &h), 0);
    assert_int_equal(h, 1);
    /* everything fits: every repeat hits */
    int32_t fit[] = { 0, 1, 0, 1, 2, 2 };
    assert_int_equal(belady_hits(fit, NULL, 6, 3, &h), 0);
    assert_int_equal(h, 3);
    /* counting only the last two accesses */
    uint8_t mask[] = { 0, 0, 0, 0, 1, 1 };
    assert_int_equal(belady_hits(fit, mask, 6, 3, &h), 0);
    assert_int_equal(h, 1);
    assert_int_equal(belady_hits(fit, NULL, 6, 0, &h), -EINVAL);
    /* a skewed random sequence: MIN beats the online policies */
    enum { N = 4000, NK = 64, SLOTS = 12 };
    static int32_t keys[N];
    uint64_t rng = 7;
    for (int i = 0; i < N; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t r = (uint32_t)(rng >> 33);
        keys[i] = (int32_t)((r % NK) * (r % NK) / NK); /* skewed toward small keys */
    }
    assert_int_equal(belady_hits(keys, NULL, N, SLOTS, &h), 0);
    for (int pol = 0; pol < 2; pol++) {
        struct ecache *c = make(1, NK, SLOTS, pol ? ECACHE_LRU : ECACHE_SLRU);
        enum ecache_state st;
        for (int i = 0; i < N; i++)
            ecache_unpin(c, fill(c, 0, keys[i], &st));
        struct ecache_stats cs;
        ecache_get_stats(c, &cs);
        print_message("skewed sequence, %d of %d keys resident: %s %llu hits, Belady %llu\n", SLOTS, NK,
                      pol ? "LRU" : "SLRU", (unsigned long long)cs.hits, (unsigned long long)h);
        assert_true(h >= cs.hits);
        ecache_free(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pin_unpin),
        cmocka_unit_test(test_pinned_never_evicted_slru),
        cmocka_unit_test(test_pinned_never_evicted_lru),
        cmocka_unit_test(test_every_expert_resident),
        cmocka_unit_test(test_lru_vs_slru_skewed),
        cmocka_unit_test(test_sticky_profile),
        cmocka_unit_test(test_belady),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
