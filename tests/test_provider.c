/*
 * test_provider.c - the expert provider (io/provider.c) over a hand-built
 * split model: request/next/release order (hits first, each distinct id
 * once), a tiny cache forced to evict over a long random request sequence
 * still returns the right bytes (every backend, both policies), more misses
 * than the queue depth, reads in pieces, the prefetch cap, the budget refusal message, pinned-out and busy
 * errors, statistics.
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

#include "split_fixture.h"
#include "provider.h"

#define N_LAYER 4
#define N_EXPERT 16
#define BLOB (64 * 1024)
#define BLOB_BYTES (BLOB - 20000)
#define NO_EXPERTS (1u << 1) /* layer 1 is dense, like a leading dense layer */

static char log_text[2048];

static void test_log(const char *msg)
{
    size_t n = strlen(log_text);

    snprintf(log_text + n, sizeof log_text - n, "%s\n", msg);
}

static int group_setup(void **state)
{
    static struct split_fixture f;
    const char *t = getenv("TMPDIR");

    if (fixture_make(&f, t && *t ? t : "/tmp", N_LAYER, N_EXPERT, BLOB, BLOB_BYTES, NO_EXPERTS,
                     99) != 0)
        return -1;
    *state = &f;
    return 0;
}

static int group_teardown(void **state)
{
    fixture_free(*state);
    return 0;
}

static struct provider *open_p(struct split_fixture *f, struct provider_opts *o)
{
    struct provider *p;
    char err[512];
    int rc;

    if (!o->log)
        o->log = test_log;
    rc = provider_open(&p, &f->m, o, err, sizeof err);
    if (rc != 0)
        print_message("provider_open: %s\n", err);
    assert_int_equal(rc, 0);
    return p;
}

/* The io_uring buffer registration reports its progress (one call per
 * registered buffer, the last with done == total), and the buffers it
 * registered one by one serve fixed reads like a registration in one call. */
static int reg_calls;
static uint64_t reg_done, reg_total;

static void on_reg(const char *what, uint64_t done, uint64_t total)
{
    assert_non_null(strstr(what, "registering"));
    reg_calls++;
    reg_done = done;
    reg_total = total;
}

static void test_registration_progress(void **state)
{
    struct split_fixture *f = *state;
    struct provider_opts o = {.io = PROVIDER_IO_URING, .cache_bytes = 0, .max_active = 4, .progress = on_reg};
    struct provider *p = open_p(f, &o);
    int ids[] = {3, 7}, e, rc, n = 0;
    const uint8_t *blob;

    if (strcmp(provider_backend_name(p), "uring") != 0) {
        provider_close(p);
        skip();
    }
    assert_true(reg_calls >= 1);
    assert_true(reg_total > 0);
    assert_int_equal(reg_done, reg_total);
    assert_int_equal(provider_request(p, 2, ids, 2), 0);
    while ((rc = provider_next(p, &e, &blob)) > 0) {
        assert_memory_equal(blob, fixture_blob(f, 2, e), BLOB_BYTES);
        provider_release(p, 2, e);
        n++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(n, 2);
    provider_close(p);
}

static void test_hits_first(void **state)
{
    struct split_fixture *f = *state;
    struct provider_opts o = {.io = PROVIDER_IO_URING, .cache_bytes = 0, .max_active = 4};
    struct provider *p = open_p(f, &o);
    struct provider_stats s;
    int first[] = {1, 2}, second[] = {5, 2, 9, 1, 2, 5}, got[8], n = 0, e, rc;
    const uint8_t *blob;

    assert_int_equal(provider_request(p, 0, first, 2), 0);
    while ((rc = provider_next(p, &e, &blob)) > 0)
        provider_release(p, 0, e);
    assert_int_equal(rc, 0);
    assert_int_equal(provider_request(p, 0, second, 6), 0);
    while ((rc = provider_next(p, &e, &blob)) > 0) {
        assert_true(n < 8);
        assert_memory_equal(blob, fixture_blob(f, 0, e), BLOB_BYTES);
        got[n++] = e;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(provider_next(p, &e, &blob), 0); /* stays drained */
    assert_int_equal(n, 4);
    /* resident experts in request order, then the misses */
    assert_int_equal(got[0], 2);
    assert_int_equal(got[1], 1);
    assert_true((got[2] == 5 && got[3] == 9) || (got[2] == 9 && got[3] == 5));
    for (int i = 0; i < n; i++)
        provider_release(p, 0, got[i]);
    provider_get_stats(p, &s);
    assert_int_equal(s.hits, 2);
    assert_int_equal(s.misses, 4);
    assert_int_equal(s.reads, 4);
    assert_int_equal(s.bytes_read, 4 * 49152); /* used bytes rounded up to 16 KiB */
    assert_int_equal(s.n_slots, 3 * N_EXPERT); /* every expert resident */
    assert_int_equal(s.evictions, 0);
    assert_true(s.io_wait_s >= 0);
    provider_close(p);
}

/* n random requests of up to 6 ids (repeats allowed) on a cache of
 * max_active + 1 slots; releases in random order; checks every byte. */
static void random_sequence(struct split_fixture *f, enum provider_io io,
                            enum provider_cache_policy pol, bool verify, int n_req, uint64_t chunk)
{
    struct provider_opts o = {.io = io, .cache_bytes = 7 * (uint64_t)BLOB + 1000, .max_active = 6,
                              .queue_depth = 4, .verify_reads = verify, .cache_policy = pol,
                              .read_chunk = chunk};
    struct provider *p = open_p(f, &o);
    static const int layers[] = {0, 2, 3};
    uint64_t rng = 1000 + (uint64_t)io * 10 + (uint64_t)pol;
    struct provider_stats s;
    uint64_t distinct = 0;

    for (int r = 0; r < n_req; r++) {
        int layer = layers[fixture_rng(&rng) % 3];
        int n = 1 + (int)(fixture_rng(&rng) % 6), ids[6], got[6], k = 0, e, rc;
        bool want[N_EXPERT] = {false};
        const uint8_t *blob;

        for (int i = 0; i < n; i++) {
            /* skewed: low ids more often */
            uint64_t x = fixture_rng(&rng);
            ids[i] = (int)((x % N_EXPERT) * ((x >> 20) % N_EXPERT) / N_EXPERT);
            if (!want[ids[i]])
                distinct++;
            want[ids[i]] = true;
        }
        assert_int_equal(provider_request(p, layer, ids, n), 0);
        while ((rc = provider_next(p, &e, &blob)) > 0) {
            assert_true(want[e]);
            want[e] = false;
            assert_memory_equal(blob, fixture_blob(f, layer, e), BLOB_BYTES);
            got[k++] = e;
            if (fixture_rng(&rng) % 2)
                provider_release(p, layer, got[--k]);
        }
        if (rc != 0)
            print_message("%s\n", provider_error(p));
        assert_int_equal(rc, 0);
        for (int i = 0; i < N_EXPERT; i++)
            assert_false(want[i]);
        while (k > 0)
            provider_release(p, layer, got[--k]);
    }
    provider_get_stats(p, &s);
    assert_int_equal(s.hits + s.misses, distinct);
    assert_int_equal(s.reads, s.misses);
    assert_int_equal(s.n_slots, 7);
    assert_true(s.evictions > 0);
    print_message("%-8s %-4s verify=%d chunk=%llu: %llu requests, %.0f%% hits, %llu evictions\n",
                  provider_backend_name(p), pol == PROVIDER_CACHE_LRU ? "lru" : "slru", verify,
                  (unsigned long long)chunk,
                  (unsigned long long)n_req, 100.0 * (double)s.hits / (double)distinct,
                  (unsigned long long)s.evictions);
    provider_close(p);
}

static void test_tiny_cache_random(void **state)
{
    struct split_fixture *f = *state;
    enum provider_io ios[] = {PROVIDER_IO_URING, PROVIDER_IO_PREAD, PROVIDER_IO_BUFFERED};

    for (int i = 0; i < 3; i++)
        for (int pol = 0; pol < 2; pol++)
            random_sequence(f, ios[i], (enum provider_cache_policy)pol, pol == 0, 600, 0);
    /* blobs read as 3 concurrent pieces (49152 bytes in 16 KiB pieces), and
     * as pieces of a size that leaves a shorter last one (32 + 16 KiB) */
    for (int i = 0; i < 3; i++)
        random_sequence(f, ios[i], PROVIDER_CACHE_SLRU, true, 300, i == 1 ? 30000 : 16384);
}

static void test_more_misses_than_queue_depth(void **state)
{
    struct split_fixture *f = *state;
    for (int chunked = 0; chunked < 2; chunked++) {
    struct provider_opts o = {.io = PROVIDER_IO_URING, .max_active = 16, .queue_depth = 2,
                              .verify_reads = true, .read_chunk = chunked ? 16384 : 0};
    struct provider *p = open_p(f, &o);
    int ids[N_EXPERT], n = 0, e, rc;
    const uint8_t *blob;

    for (int i = 0; i < N_EXPERT; i++)
        ids[i] = N_EXPERT - 1 - i;
    assert_int_equal(provider_request(p, 3, ids, N_EXPERT), 0);
    while ((rc = provider_next(p, &e, &blob)) > 0) {
        assert_memory_equal(blob, fixture_blob(f, 3, e), BLOB_BYTES);
        n++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(n, N_EXPERT);
    provider_close(p);
    }
}

/* At most 3 guesses in flight: the rest of a long guess list is dropped,
 * and a request then gets every expert right, guessed or not. */
static void test_prefetch_cap(void **state)
{
    struct split_fixture *f = *state;
    struct provider_opts o = {.io = PROVIDER_IO_URING, .max_active = 8, .verify_reads = true};
    struct provider *p = open_p(f, &o);
    int ids[8] = {9, 2, 14, 5, 0, 11, 7, 3}, e, rc, n = 0;
    const uint8_t *blob;
    struct provider_stats s;

    assert_int_equal(provider_prefetch(p, 2, ids, 8), 3);
    assert_int_equal(provider_request(p, 2, ids, 8), 0);
    while ((rc = provider_next(p, &e, &blob)) > 0) {
        assert_memory_equal(blob, fixture_blob(f, 2, e), BLOB_BYTES);
        provider_release(p, 2, e);
        n++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(n, 8);
    provider_get_stats(p, &s);
    assert_int_equal(s.prefetches, 3);
    assert_int_equal(s.reads, 8);
    provider_close(p);
}

/* A request pins the experts it finds resident before any of its misses
 * takes a slot: in a full cache, one new expert costs one read, not a
 * cascade of evictions of experts the same request needs. */
static void test_request_keeps_its_hits(void **state)
{
    struct split_fixture *f = *state;
    for (int pol = 0; pol < 2; pol++) {
        struct provider_opts o = {.io = PROVIDER_IO_URING, .cache_bytes = 4 * (uint64_t)BLOB, .max_active = 4,
                                  .cache_policy = (enum provider_cache_policy)pol};
        struct provider *p = open_p(f, &o);
        int first[4] = {0, 1, 2, 3}, second[4] = {4, 0, 1, 2}, e, rc;
        const uint8_t *blob;
        struct provider_stats s;

        for (int r = 0; r < 2; r++) {
            assert_int_equal(provider_request(p, 0, r ? second : first, 4), 0);
            while ((rc = provider_next(p, &e, &blob)) > 0) {
                assert_memory_equal(blob, fixture_blob(f, 0, e), BLOB_BYTES);
                provider_release(p, 0, e);
            }
            assert_int_equal(rc, 0);
        }
        provider_get_stats(p, &s);
        assert_int_equal(s.misses, 5);
        assert_int_equal(s.hits, 3);
        provider_close(p);
    }
}

static void test_budget_refusal(void **state)
{
    struct split_fixture *f = *state;
    struct provider_opts o = {.io = PROVIDER_IO_URING, .cache_bytes = 3 * BLOB, .max_active = 4};
    struct provider *p = NULL;
    char err[512];

    assert_int_equal(provider_open(&p, &f->m, &o, err, sizeof err), -ENOSPC);
    assert_null(p);
    print_message("refusal: %s\n", err);
    assert_non_null(strstr(err, "at least"));
    assert_non_null(strstr(err, "262144 bytes")); /* 4 slots of 64 KiB */
    assert_non_null(strstr(err, "4 experts"));
    o.cache_bytes = 4 * BLOB;
    assert_int_equal(provider_open(&p, &f->m, &o, err, sizeof err), 0);
    provider_close(p);
}

static void test_pinned_out_and_busy(void **state)
{
    struct split_fixture *f = *state;
    struct provider_opts o = {.io = PROVIDER_IO_PREAD, .cache_bytes = 4 * BLOB, .max_active = 4};
    struct provider *p = open_p(f, &o);
    int four[] = {0, 1, 2, 3}, one[] = {9}, bad[] = {16}, e, rc;
    const uint8_t *blob;

    assert_int_equal(provider_request(p, 0, four, 4), 0);
    assert_int_equal(provider_request(p, 2, one, 1), -EBUSY);
    assert_non_null(strstr(provider_error(p), "still being delivered"));
    while ((rc = provider_next(p, &e, &blob)) > 0)
        ;
    assert_int_equal(rc, 0);
    /* nothing released: every slot pinned */
    assert_int_equal(provider_request(p, 2, one, 1), -ENOSPC);
    print_message("pinned out: %s\n", provider_error(p));
    assert_non_null(strstr(provider_error(p), "pinned"));
    for (int i = 0; i < 4; i++)
        provider_release(p, 0, four[i]);
    assert_int_equal(provider_request(p, 2, bad, 1), -EINVAL);
    assert_non_null(strstr(provider_error(p), "out of range"));
    assert_int_equal(provider_request(p, 1, one, 1), -EINVAL); /* dense layer */
    assert_int_equal(provider_request(p, 2, one, 1), 0);
    assert_int_equal(provider_next(p, &e, &blob), 1);
    assert_int_equal(e, 9);
    assert_memory_equal(blob, fixture_blob(f, 2, 9), BLOB_BYTES);
    provider_release(p, 2, 9);
    assert_int_equal(provider_next(p, &e, &blob), 0);
    provider_close(p);
}

/* The queue-depth probe: small models are not probed unless asked; a
 * forced probe reads the fixture's experts at 1, 4 and 16 in flight and
 * picks 16 or room for max_active + the guesses; --queue-depth wins. The
 * provider then reads as before. */
static void test_qd_probe(void **state)
{
    struct split_fixture *f = *state;
    struct provider_opts o = { .io = PROVIDER_IO_URING, .qd_probe = 1, .max_active = 4 };
    struct provider *p = open_p(f, &o);
    assert_non_null(strstr(provider_io_note(p), "not probed"));
    provider_close(p);

    o.qd_probe = 2;
    p = open_p(f, &o);
    const char *note = provider_io_note(p);
    assert_non_null(strstr(note, "probe of"));
    assert_non_null(strstr(note, "at qd 1"));
    int qd = atoi(strstr(note, "queue depth ") + strlen("queue depth "));
    assert_true(qd == 16 || qd == 4 + 3);
    int ids[3] = { 0, 5, 9 }, e;
    const uint8_t *blob;
    assert_int_equal(provider_request(p, 0, ids, 3), 0);
    int n = 0;
    while (provider_next(p, &e, &blob) > 0) {
        assert_memory_equal(blob, fixture_blob(f, 0, e), BLOB_BYTES);
        provider_release(p, 0, e);
        n++;
    }
    assert_int_equal(n, 3);
    provider_close(p);

    o.queue_depth = 5;
    p = open_p(f, &o);
    assert_string_equal(provider_io_note(p), "queue depth 5 (--queue-depth)");
    provider_close(p);
}

static void test_mlock_and_backend_name(void **state)
{
    struct split_fixture *f = *state;
    struct provider_opts o = {.io = PROVIDER_IO_URING, .cache_bytes = 8 * BLOB, .max_active = 8,
                              .mlock = true};
    struct provider *p;
    char err[512];
    int rc;

    log_text[0] = 0;
    rc = provider_open(&p, &f->m, &o, err, sizeof err);
    if (rc == -EPERM || rc == -ENOMEM || rc == -EAGAIN) {
        print_message("skipped: mlock not permitted here: %s\n", err);
        skip();
    }
    assert_int_equal(rc, 0);
    if (strcmp(provider_backend_name(p), "uring") != 0)
        print_message("note: io_uring fell back: %s", log_text);
    assert_null(strstr(log_text, "cannot register")); /* fixed buffers worked */
    provider_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hits_first),
        cmocka_unit_test(test_registration_progress),
        cmocka_unit_test(test_tiny_cache_random),
        cmocka_unit_test(test_more_misses_than_queue_depth),
        cmocka_unit_test(test_prefetch_cap),
        cmocka_unit_test(test_request_keeps_its_hits),
        cmocka_unit_test(test_budget_refusal),
        cmocka_unit_test(test_pinned_out_and_busy),
        cmocka_unit_test(test_mlock_and_backend_name),
        cmocka_unit_test(test_qd_probe),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
