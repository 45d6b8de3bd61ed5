/*
 * test_reader.c - the reader backends (io/reader.c): every backend returns
 * byte-identical data for random blobs; the fallbacks (no io_uring, no
 * O_DIRECT) are taken and logged; fault injection: a short read is retried,
 * a persistent EIO becomes an error naming file and offset, a flipped byte
 * with verify_reads becomes a checksum error naming layer and expert.
 * Scratch files live in $TMPDIR or /tmp (must allow O_DIRECT), never tmpfs
 * except in the test that probes tmpfs on purpose.
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
#include <sys/vfs.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>

#include "split_fixture.h"
#include "provider.h"
#include "reader.h"

#define N_LAYER 2
#define N_EXPERT 12
#define BLOB (64 * 1024)
#define BLOB_BYTES (BLOB - 5000) /* used bytes: not a multiple of anything */

static char log_text[4096];

static void test_log(const char *msg)
{
    size_t n = strlen(log_text);

    snprintf(log_text + n, sizeof log_text - n, "%s\n", msg);
}

static const char *scratch_parent(void)
{
    const char *t = getenv("TMPDIR");

    return t && *t ? t : "/tmp";
}

static int group_setup(void **state)
{
    static struct split_fixture f;

    if (fixture_make(&f, scratch_parent(), N_LAYER, N_EXPERT, BLOB, BLOB_BYTES, 0, 42) != 0)
        return -1;
    *state = &f;
    return 0;
}

static int group_teardown(void **state)
{
    fixture_free(*state);
    return 0;
}

static int open_reader(struct split_fixture *f, struct reader **r, enum reader_backend b, int qd,
                       const struct reader_fault *fault, char *err, size_t errlen)
{
    const char *paths[N_LAYER];
    struct reader_opts o;

    for (int l = 0; l < N_LAYER; l++)
        paths[l] = f->m.layers[l].path;
    memset(&o, 0, sizeof o);
    o.backend = b;
    o.queue_depth = qd;
    o.log = test_log;
    o.fault = fault;
    return reader_open(r, paths, N_LAYER, &o, err, errlen);
}

/* Reads n random blobs, keeping up to qd in flight, and compares them. */
static void read_random_blobs(struct split_fixture *f, struct reader *r, int n, uint64_t seed)
{
    int qd = reader_capacity(r), done = 0, started = 0;
    uint8_t *bufs;
    struct reader_completion c[64];
    int *which = calloc((size_t)qd, sizeof *which);

    assert_non_null(which);
    assert_int_equal(posix_memalign((void **)&bufs, 4096, (size_t)qd * BLOB), 0);
    /* buffer i of qd is free when which[i] < 0 */
    for (int i = 0; i < qd; i++)
        which[i] = -1;
    while (done < n) {
        for (int i = 0; i < qd && started < n; i++) {
            int key;

            if (which[i] >= 0)
                continue;
            key = (int)(fixture_rng(&seed) % (N_LAYER * N_EXPERT));
            memset(bufs + (size_t)i * BLOB, 0xAA, BLOB);
            assert_int_equal(reader_submit(r, key / N_EXPERT,
                                           (uint64_t)(key % N_EXPERT) * BLOB, BLOB,
                                           bufs + (size_t)i * BLOB, (uint64_t)i), 0);
            which[i] = key;
            started++;
        }
        int k = reader_reap(r, c, 64, true);

        assert_true(k > 0);
        for (int j = 0; j < k; j++) {
            int i = (int)c[j].tag, key = which[i];

            assert_int_equal(c[j].res, 0);
            assert_memory_equal(bufs + (size_t)i * BLOB,
                                fixture_blob(f, key / N_EXPERT, key % N_EXPERT), BLOB);
            which[i] = -1;
            done++;
        }
    }
    assert_int_equal(reader_in_flight(r), 0);
    free(bufs);
    free(which);
}

static void backend_identical(void **state, enum reader_backend b)
{
    struct split_fixture *f = *state;
    struct reader *r;
    char err[512];
    int qds[] = {1, 4, 16};

    for (size_t i = 0; i < sizeof qds / sizeof qds[0]; i++) {
        log_text[0] = 0;
        assert_int_equal(open_reader(f, &r, b, qds[i], NULL, err, sizeof err), 0);
        if (reader_backend(r) != b) {
            reader_close(r);
            print_message("skipped: backend %s unavailable here: %s", reader_backend_name(b),
                          log_text);
            skip();
        }
        read_random_blobs(f, r, 200, 7 + (uint64_t)i);
        reader_close(r);
    }
}

static void test_uring_identical(void **state) { backend_identical(state, READER_URING); }
static void test_pread_identical(void **state) { backend_identical(state, READER_PREAD); }
static void test_buffered_identical(void **state) { backend_identical(state, READER_BUFFERED); }

/* Resident page-cache pages of [0, len) of path; -1 when it cannot tell. */
static long cached_pages(const char *path, size_t len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return -1;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = (len + pg - 1) / pg;
    unsigned char *vec = malloc(n);
    long c = -1;
    if (vec && mincore(p, len, vec) == 0) {
        c = 0;
        for (size_t i = 0; i < n; i++)
            c += vec[i] & 1;
    }
    free(vec);
    munmap(p, len);
    return c;
}

/* The buffered backend leaves no copy of what it read in the page cache:
 * the expert cache holds it, and the RAM budget does not count the page
 * cache (a FUSE mount would otherwise fill memory with a second copy). */
static void test_buffered_page_cache(void **state)
{
    struct split_fixture *f = *state;
    const char *path = f->m.layers[0].path;
    size_t len = (size_t)N_EXPERT * BLOB;
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    long before = cached_pages(path, len);
    if (before != 0) {
        print_message("skipped: cannot drop %s from the page cache here (%ld pages stay)\n", path, before);
        skip();
    }
    struct reader *r;
    char err[512];
    assert_int_equal(open_reader(f, &r, READER_BUFFERED, 4, NULL, err, sizeof err), 0);
    assert_int_equal(reader_backend(r), READER_BUFFERED);
    read_random_blobs(f, r, 100, 11);
    reader_close(r);
    long after = cached_pages(path, len);
    print_message("  page cache after 100 buffered blob reads: %ld of %zu pages\n", after,
                  len / (size_t)sysconf(_SC_PAGESIZE));
    assert_int_equal(after, 0);
}

static void test_fallback_no_uring(void **state)
{
    struct split_fixture *f = *state;
    struct reader_fault fault = {.uring_init_errno = ENOSYS};
    struct reader *r;
    char err[512];

    log_text[0] = 0;
    assert_int_equal(open_reader(f, &r, READER_URING, 8, &fault, err, sizeof err), 0);
    assert_int_equal(reader_backend(r), READER_PREAD);
    assert_non_null(strstr(log_text, "io_uring unavailable"));
    assert_non_null(strstr(log_text, "pread thread pool"));
    read_random_blobs(f, r, 50, 3);
    reader_close(r);
}

static void test_fallback_no_direct(void **state)
{
    struct split_fixture *f = *state;
    struct reader_fault fault = {.direct_open_errno = EINVAL};
    struct reader *r;
    char err[512];

    log_text[0] = 0;
    assert_int_equal(open_reader(f, &r, READER_URING, 8, &fault, err, sizeof err), 0);
    assert_int_equal(reader_backend(r), READER_BUFFERED);
    assert_non_null(strstr(log_text, "O_DIRECT"));
    assert_non_null(strstr(log_text, "buffered"));
    /* logged once, not per file */
    assert_null(strstr(strstr(log_text, "O_DIRECT") + 1, "O_DIRECT"));
    read_random_blobs(f, r, 50, 4);
    reader_close(r);
}

/* A real tmpfs: Linux >= 6.6 accepts O_DIRECT there, older kernels refuse
 * it and the reader must fall back to buffered reads. */
static void test_fallback_tmpfs(void **state)
{
    struct split_fixture t;
    struct statfs sf;
    struct reader *r;
    char err[512];

    (void)state;
    if (statfs("/dev/shm", &sf) != 0 || sf.f_type != 0x01021994 /* TMPFS_MAGIC */) {
        print_message("skipped: /dev/shm is not a tmpfs here\n");
        skip();
    }
    assert_int_equal(fixture_make(&t, "/dev/shm", N_LAYER, N_EXPERT, BLOB, BLOB_BYTES, 0, 9), 0);
    log_text[0] = 0;
    assert_int_equal(open_reader(&t, &r, READER_PREAD, 4, NULL, err, sizeof err), 0);
    if (reader_backend(r) == READER_BUFFERED) {
        assert_non_null(strstr(log_text, "O_DIRECT"));
    }
    read_random_blobs(&t, r, 40, 5);
    bool direct_ok = reader_backend(r) != READER_BUFFERED;
    reader_close(r);
    fixture_free(&t);
    if (direct_ok) {
        print_message("skipped: tmpfs accepts O_DIRECT on this kernel (Linux >= 6.6), so no "
                      "fallback to observe; test_fallback_no_direct simulates it\n");
        skip();
    }
}

struct fault_ctx {
    uint64_t offset;     /* faults only reads at this offset */
    const char *file;    /* ... of a path ending like this */
    int remaining;       /* faults left; < 0 = forever */
    int kind;            /* 0 short, 1 EIO, 2 flip a byte */
    int hits;            /* faults injected */
};

static int fault_hook(void *vctx, const char *path, uint64_t offset, size_t len, uint8_t *dst,
                      int res)
{
    struct fault_ctx *c = vctx;
    size_t pl = strlen(path), fl = strlen(c->file);

    if (offset != c->offset || pl < fl || strcmp(path + pl - fl, c->file) != 0 ||
        c->remaining == 0 || res < 0)
        return res;
    if (c->remaining > 0)
        c->remaining--;
    c->hits++;
    switch (c->kind) {
    case 0: return (int)(len / 2);
    case 1: return -EIO;
    default: dst[1234] ^= 0x10; return res;
    }
}

static void test_short_read_retried(void **state)
{
    struct split_fixture *f = *state;
    struct fault_ctx fc = {.offset = 3 * BLOB, .file = "experts-001.bin", .remaining = 2, .kind = 0};
    struct reader_fault fault = {.on_complete = fault_hook, .ctx = &fc};
    enum reader_backend bs[] = {READER_URING, READER_PREAD, READER_BUFFERED};

    for (size_t i = 0; i < 3; i++) {
        struct reader *r;
        struct reader_completion c;
        uint8_t *buf;
        char err[512];

        fc.remaining = 2;
        fc.hits = 0;
        assert_int_equal(open_reader(f, &r, bs[i], 4, &fault, err, sizeof err), 0);
        assert_int_equal(posix_memalign((void **)&buf, 4096, BLOB), 0);
        assert_int_equal(reader_submit(r, 1, 3 * BLOB, BLOB, buf, 77), 0);
        assert_int_equal(reader_reap(r, &c, 1, true), 1);
        assert_int_equal(c.tag, 77);
        assert_int_equal(c.res, 0);
        assert_int_equal(fc.hits, 2);
        assert_memory_equal(buf, fixture_blob(f, 1, 3), BLOB);
        free(buf);
        reader_close(r);
    }
}

static void test_persistent_eio(void **state)
{
    struct split_fixture *f = *state;
    struct fault_ctx fc = {.offset = 5 * BLOB, .file = "experts-000.bin", .remaining = -1, .kind = 1};
    struct reader_fault fault = {.on_complete = fault_hook, .ctx = &fc};
    struct reader *r;
    struct reader_completion c;
    uint8_t *buf;
    char err[512], want[64];

    assert_int_equal(open_reader(f, &r, READER_URING, 4, &fault, err, sizeof err), 0);
    assert_int_equal(posix_memalign((void **)&buf, 4096, BLOB), 0);
    assert_int_equal(reader_submit(r, 0, 5 * BLOB, BLOB, buf, 5), 0);
    assert_int_equal(reader_reap(r, &c, 1, true), 1);
    assert_int_equal(c.res, -EIO);
    assert_int_equal(fc.hits, 1 + READER_MAX_RETRY);
    print_message("error: %s\n", reader_error(r));
    assert_non_null(strstr(reader_error(r), f->m.layers[0].path));
    snprintf(want, sizeof want, "offset %d", 5 * BLOB);
    assert_non_null(strstr(reader_error(r), want));
    assert_non_null(strstr(reader_error(r), "Input/output error"));
    free(buf);
    reader_close(r);
}

/* Through the provider: persistent EIO names layer and expert too. */
static void test_provider_eio_names_expert(void **state)
{
    struct split_fixture *f = *state;
    struct fault_ctx fc = {.offset = 2 * BLOB, .file = "experts-001.bin", .remaining = -1, .kind = 1};
    struct reader_fault fault = {.on_complete = fault_hook, .ctx = &fc};
    struct provider_opts o = {.io = PROVIDER_IO_PREAD, .max_active = 4, .fault = &fault};
    struct provider *p;
    char err[512];
    int ids[] = {1, 2, 3}, e, rc, got = 0;
    const uint8_t *blob;

    assert_int_equal(provider_open(&p, &f->m, &o, err, sizeof err), 0);
    assert_int_equal(provider_request(p, 1, ids, 3), 0);
    while ((rc = provider_next(p, &e, &blob)) > 0) {
        provider_release(p, 1, e);
        got++;
    }
    assert_int_equal(rc, -EIO);
    print_message("error: %s\n", provider_error(p));
    assert_non_null(strstr(provider_error(p), "layer 1 expert 2"));
    assert_non_null(strstr(provider_error(p), "experts-001.bin"));
    assert_non_null(strstr(provider_error(p), "offset 131072"));
    /* the provider recovers: a later request without the bad expert works */
    int ok_ids[] = {1, 3};
    assert_int_equal(provider_request(p, 1, ok_ids, 2), 0);
    got = 0;
    while ((rc = provider_next(p, &e, &blob)) > 0) {
        assert_memory_equal(blob, fixture_blob(f, 1, e), BLOB_BYTES);
        provider_release(p, 1, e);
        got++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(got, 2);
    provider_close(p);
}

static void test_corrupt_byte_verified(void **state)
{
    struct split_fixture *f = *state;
    struct fault_ctx fc = {.offset = 7 * BLOB, .file = "experts-000.bin", .remaining = -1, .kind = 2};
    struct reader_fault fault = {.on_complete = fault_hook, .ctx = &fc};
    struct provider_opts o = {.io = PROVIDER_IO_URING, .max_active = 4, .fault = &fault};
    enum provider_io ios[] = {PROVIDER_IO_URING, PROVIDER_IO_PREAD, PROVIDER_IO_BUFFERED};

    for (int v = 0; v < 2; v++) {
        for (size_t i = 0; i < 3; i++) {
            struct provider *p;
            char err[512];
            int ids[] = {6, 7}, e, rc;
            const uint8_t *blob;
            bool saw7 = false;

            o.io = ios[i];
            o.verify_reads = v == 1;
            assert_int_equal(provider_open(&p, &f->m, &o, err, sizeof err), 0);
            assert_int_equal(provider_request(p, 0, ids, 2), 0);
            while ((rc = provider_next(p, &e, &blob)) > 0) {
                if (e == 7) {
                    saw7 = true;
                    assert_memory_not_equal(blob, fixture_blob(f, 0, 7), BLOB_BYTES);
                }
                provider_release(p, 0, e);
            }
            if (v == 0) {
                /* without verification the corruption goes through */
                assert_int_equal(rc, 0);
                assert_true(saw7);
            } else {
                assert_int_equal(rc, -EIO);
                assert_false(saw7);
                if (i == 0)
                    print_message("error: %s\n", provider_error(p));
                assert_non_null(strstr(provider_error(p), "layer 0 expert 7"));
                assert_non_null(strstr(provider_error(p), "checksum mismatch"));
                assert_non_null(strstr(provider_error(p), "experts-000.bin"));
                assert_non_null(strstr(provider_error(p), "offset 458752"));
            }
            provider_close(p);
        }
    }
}

static void test_misaligned_submit(void **state)
{
    struct split_fixture *f = *state;
    struct reader *r;
    uint8_t *buf;
    char err[512];

    assert_int_equal(open_reader(f, &r, READER_URING, 4, NULL, err, sizeof err), 0);
    assert_int_equal(posix_memalign((void **)&buf, 4096, 2 * BLOB), 0);
    assert_int_equal(reader_submit(r, 0, 100, BLOB, buf, 0), -EINVAL);
    assert_int_equal(reader_submit(r, 0, 0, BLOB, buf + 1, 0), -EINVAL);
    assert_int_equal(reader_submit(r, 9, 0, BLOB, buf, 0), -EINVAL);
    free(buf);
    reader_close(r);
}

/* MOESTREAM_FAULT, the end-to-end hook: read N short once, EIO forever, or
 * a flipped byte that verify_reads catches. */
static void test_env_fault(void **state)
{
    struct split_fixture *f = *state;
    struct reader *r;
    struct reader_completion c[4];
    uint8_t *buf;
    char err[512];
    int bad = 0;

    assert_int_equal(posix_memalign((void **)&buf, 4096, 3 * BLOB), 0);
    setenv(READER_FAULT_ENV, "eio:2", 1);
    log_text[0] = 0;
    assert_int_equal(open_reader(f, &r, READER_URING, 4, NULL, err, sizeof err), 0);
    assert_non_null(strstr(log_text, "injecting a fault into read 2"));
    for (int i = 0; i < 3; i++)
        assert_int_equal(reader_submit(r, 1, (uint64_t)i * BLOB, BLOB, buf + i * BLOB, (uint64_t)i), 0);
    for (int got = 0; got < 3;) {
        int k = reader_reap(r, c, 4, true);

        for (int j = 0; j < k; j++, got++) {
            if (c[j].tag == 1) {
                assert_int_equal(c[j].res, -EIO);
                bad++;
            } else {
                assert_int_equal(c[j].res, 0);
                assert_memory_equal(buf + c[j].tag * BLOB, fixture_blob(f, 1, (int)c[j].tag), BLOB);
            }
        }
    }
    assert_int_equal(bad, 1);
    assert_non_null(strstr(reader_error(r), "offset 65536"));
    reader_close(r);

    setenv(READER_FAULT_ENV, "short:1", 1);
    assert_int_equal(open_reader(f, &r, READER_PREAD, 4, NULL, err, sizeof err), 0);
    assert_int_equal(reader_submit(r, 0, 0, BLOB, buf, 0), 0);
    assert_int_equal(reader_reap(r, c, 1, true), 1);
    assert_int_equal(c[0].res, 0);
    assert_memory_equal(buf, fixture_blob(f, 0, 0), BLOB);
    reader_close(r);

    setenv(READER_FAULT_ENV, "flip:1", 1);
    struct provider_opts o = {.io = PROVIDER_IO_URING, .max_active = 4, .verify_reads = true};
    struct provider *p;
    int ids[] = {4}, e;
    const uint8_t *blob;
    assert_int_equal(provider_open(&p, &f->m, &o, err, sizeof err), 0);
    assert_int_equal(provider_request(p, 0, ids, 1), 0);
    assert_int_equal(provider_next(p, &e, &blob), -EIO);
    assert_non_null(strstr(provider_error(p), "layer 0 expert 4: checksum mismatch"));
    provider_close(p);

    setenv(READER_FAULT_ENV, "bogus", 1);
    log_text[0] = 0;
    assert_int_equal(open_reader(f, &r, READER_URING, 4, NULL, err, sizeof err), 0);
    assert_non_null(strstr(log_text, "ignored"));
    reader_close(r);
    unsetenv(READER_FAULT_ENV);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uring_identical),
        cmocka_unit_test(test_pread_identical),
        cmocka_unit_test(test_buffered_identical),
        cmocka_unit_test(test_buffered_page_cache),
        cmocka_unit_test(test_fallback_no_uring),
        cmocka_unit_test(test_fallback_no_direct),
        cmocka_unit_test(test_fallback_tmpfs),
        cmocka_unit_test(test_short_read_retried),
        cmocka_unit_test(test_persistent_eio),
        cmocka_unit_test(test_provider_eio_names_expert),
        cmocka_unit_test(test_corrupt_byte_verified),
        cmocka_unit_test(test_misaligned_submit),
        cmocka_unit_test(test_env_fault),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
