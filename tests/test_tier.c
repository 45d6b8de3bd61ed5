/*
 * test_tier.c - the SSD tier (io/tier.h, --ssd-cache). Unit tests on a
 * hand-built split (tests/split_fixture.h): blobs offered come back from the
 * tier file byte for byte and survive a close and reopen; the file never
 * exceeds --ssd-cache-size and holds at most its slots, with the policy
 * keeping the most-missed experts; a tier of another split, of another size
 * or with a damaged header is rebuilt with a notice saying why; a size that
 * holds no expert is refused; a second process is kept out by the lock.
 * End to end on tinymoe (moestream logits --stats-json): a second run reads
 * from the warm tier (tier_bytes_read > 0, fewer store bytes) with logits
 * bit-identical to a run without it; a tier file with damaged blobs is
 * detected by checksum, never used (logits unchanged) and rewritten.
 * The end-to-end part is skipped with a message when the fixtures are absent.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_sh.h"

#include "split_fixture.h"
#include "tier.h"

#define N_LAYER 3
#define N_EXPERT 16
#define BLOB 65536
#define BLOB_BYTES 61440

static char log_text[8192];

static void test_log(const char *msg)
{
    size_t n = strlen(log_text);
    snprintf(log_text + n, sizeof log_text - n, "%s\n", msg);
}

struct env {
    struct split_fixture a, b;   /* b: other contents, same shape */
    char tdir[300];
};

static int group_setup(void **state)
{
    static struct env e;
    const char *t = getenv("TMPDIR");
    if (fixture_make(&e.a, t && *t ? t : "/tmp", N_LAYER, N_EXPERT, BLOB, BLOB_BYTES, 0, 7) != 0 ||
        fixture_make(&e.b, t && *t ? t : "/tmp", N_LAYER, N_EXPERT, BLOB, BLOB_BYTES, 0, 8) != 0)
        return -1;
    snprintf(e.tdir, sizeof e.tdir, "%s/tier", e.a.dir);
    *state = &e;
    return 0;
}

static int group_teardown(void **state)
{
    struct env *e = *state;
    char p[400];
    snprintf(p, sizeof p, "%s/" TIER_FILE, e->tdir);
    unlink(p);
    rmdir(e->tdir);
    fixture_free(&e->a);
    fixture_free(&e->b);
    return 0;
}

/* Each test starts without a tier file. */
static int fresh(void **state)
{
    struct env *e = *state;
    char p[400];
    snprintf(p, sizeof p, "%s/" TIER_FILE, e->tdir);
    unlink(p);
    log_text[0] = 0;
    return 0;
}

static struct tier *open_t(const struct split_model *m, const char *dir, uint64_t max)
{
    struct tier *t;
    char err[512];
    struct tier_opts o = { .dir = dir, .max_bytes = max, .log = test_log };
    int rc = tier_open(&t, m, BLOB, &o, err, sizeof err);
    if (rc < 0)
        fail_msg("tier_open: %s", err);
    return t;
}

static uint64_t file_bytes(const char *dir)
{
    char p[400];
    struct stat st;
    snprintf(p, sizeof p, "%s/" TIER_FILE, dir);
    assert_int_equal(stat(p, &st), 0);
    return (uint64_t)st.st_size;
}

/* The blob of slot s as stored in the file. */
static void read_slot(struct tier *t, int s, uint8_t *buf)
{
    int fd = open(tier_path(t), O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, BLOB_BYTES, (off_t)tier_slot_offset(t, s)), BLOB_BYTES);
    close(fd);
}

/* offered blobs land byte for byte, and are found again after a reopen */
static void test_roundtrip(void **state)
{
    struct env *e = *state;
    static uint8_t buf[BLOB];
    struct tier *t = open_t(&e->a.m, e->tdir, 64 << 20);
    struct tier_stats st;
    assert_non_null(strstr(log_text, "creating"));
    for (int x = 0; x < 10; x++) {
        tier_touch(t, 1, x);
        /* a full copy is queued unless the writer is busy: wait each time */
        assert_true(tier_offer(t, 1, x, fixture_blob(&e->a, 1, x), BLOB));
        tier_flush(t);
    }
    assert_false(tier_offer(t, 1, 3, fixture_blob(&e->a, 1, 3), BLOB)); /* already there */
    for (int x = 0; x < 10; x++) {
        int s = tier_lookup(t, 1, x);
        assert_true(s >= 0);
        read_slot(t, s, buf);
        assert_memory_equal(buf, fixture_blob(&e->a, 1, x), BLOB_BYTES);
        tier_read_done(t, s, true);
    }
    assert_int_equal(tier_lookup(t, 2, 0), -1);
    tier_close(t);

    log_text[0] = 0;
    t = open_t(&e->a.m, e->tdir, 64 << 20);
    assert_string_equal(log_text, ""); /* reopened quietly */
    tier_get_stats(t, &st);
    assert_int_equal(st.entries_at_open, 10);
    int s = tier_lookup(t, 1, 7);
    assert_true(s >= 0);
    read_slot(t, s, buf);
    assert_memory_equal(buf, fixture_blob(&e->a, 1, 7), BLOB_BYTES);
    /* a bad read forgets the entry; the blob can then be written again */
    tier_read_done(t, s, false);
    assert_int_equal(tier_lookup(t, 1, 7), -1);
    tier_get_stats(t, &st);
    assert_int_equal(st.bad, 1);
    assert_int_equal(st.entries, 9);
    assert_true(tier_offer(t, 1, 7, fixture_blob(&e->a, 1, 7), BLOB));
    tier_flush(t);
    assert_true(tier_lookup(t, 1, 7) >= 0);
    tier_close(t);
}

/* a blob whose bytes do not match the manifest is never written */
static void test_refuses_damaged_blob(void **state)
{
    struct env *e = *state;
    static uint8_t buf[BLOB];
    struct tier *t = open_t(&e->a.m, e->tdir, 64 << 20);
    memcpy(buf, fixture_blob(&e->a, 0, 2), BLOB);
    buf[100] ^= 1;
    assert_true(tier_offer(t, 0, 2, buf, BLOB)); /* queued; checked by the writer */
    tier_flush(t);
    assert_int_equal(tier_lookup(t, 0, 2), -1);
    struct tier_stats st;
    tier_get_stats(t, &st);
    assert_int_equal(st.writes, 0);
    assert_int_equal(st.entries, 0);
    tier_close(t);
}

/* the file stays within the size; the most-missed experts stay */
static void test_size_bound(void **state)
{
    struct env *e = *state;
    const uint64_t max = 10 * BLOB + 20000; /* room for 10 slots with the header and index */
    struct tier *t = open_t(&e->a.m, e->tdir, max);
    struct tier_stats st;
    tier_get_stats(t, &st);
    assert_true(st.n_slots >= 1 && st.n_slots <= 10);
    assert_true(st.file_bytes <= max);
    assert_true(file_bytes(e->tdir) <= max);
    /* experts 0..5 of layer 2 missed 10 times each, the others once */
    for (int x = 0; x < N_EXPERT; x++)
        for (int k = 0; k < (x < 6 ? 10 : 1); k++)
            tier_touch(t, 2, x);
    /* offer the cold ones first, then the hot ones (each twice: the
     * sampled victim may be a hot one the first time) */
    for (int round = 0; round < 4; round++)
        for (int x = N_EXPERT - 1; x >= 0; x--) {
            tier_offer(t, 2, x, fixture_blob(&e->a, 2, x), BLOB);
            tier_flush(t);
        }
    tier_get_stats(t, &st);
    assert_true(st.entries <= st.n_slots);
    assert_true(st.rejected > 0);
    for (int x = 0; x < 6; x++) {
        int s = tier_lookup(t, 2, x);
        if (s < 0)
            fail_msg("hot expert %d was not kept (%llu slots)", x, (unsigned long long)st.n_slots);
        tier_read_done(t, s, true);
    }
    tier_close(t);
    assert_true(file_bytes(e->tdir) <= max);
}

/* another split, another size, a damaged header: rebuilt, saying why */
static void test_rebuilt(void **state)
{
    struct env *e = *state;
    struct tier_stats st;
    struct tier *t = open_t(&e->a.m, e->tdir, 64 << 20);
    for (int x = 0; x < 4; x++) {
        tier_offer(t, 0, x, fixture_blob(&e->a, 0, x), BLOB);
        tier_flush(t);
    }
    tier_close(t);

    log_text[0] = 0;
    t = open_t(&e->b.m, e->tdir, 64 << 20); /* same shape, other contents */
    assert_non_null(strstr(log_text, "rebuilding"));
    assert_non_null(strstr(log_text, "another split"));
    tier_get_stats(t, &st);
    assert_int_equal(st.entries_at_open, 0);
    assert_int_equal(tier_lookup(t, 0, 0), -1);
    tier_offer(t, 0, 1, fixture_blob(&e->b, 0, 1), BLOB);
    tier_flush(t);
    tier_close(t);

    log_text[0] = 0;
    t = open_t(&e->b.m, e->tdir, 1 << 20); /* another size */
    assert_non_null(strstr(log_text, "rebuilding"));
    assert_non_null(strstr(log_text, "size"));
    tier_close(t);

    /* a damaged header (one bit of the split directory's name) */
    char p[400];
    snprintf(p, sizeof p, "%s/" TIER_FILE, e->tdir);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, 200), 1);
    c ^= 0x20;
    assert_int_equal(pwrite(fd, &c, 1, 200), 1);
    close(fd);
    log_text[0] = 0;
    t = open_t(&e->b.m, e->tdir, 1 << 20);
    assert_non_null(strstr(log_text, "damaged"));
    tier_close(t);

    /* not a tier file at all */
    fd = open(p, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    static const char junk[8192] = "hello";
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    log_text[0] = 0;
    t = open_t(&e->b.m, e->tdir, 1 << 20);
    assert_non_null(strstr(log_text, "bad magic"));
    tier_close(t);
}

static void test_refusals(void **state)
{
    struct env *e = *state;
    struct tier *t, *t2;
    char err[512];
    struct tier_opts o = { .dir = e->tdir, .max_bytes = BLOB / 2, .log = test_log };
    assert_int_equal(tier_open(&t, &e->a.m, BLOB, &o, err, sizeof err), -ENOSPC);
    assert_non_null(strstr(err, "holds no expert"));
    assert_null(t);

    t = open_t(&e->a.m, e->tdir, 64 << 20);
    o.max_bytes = 64 << 20;
    assert_int_equal(tier_open(&t2, &e->a.m, BLOB, &o, err, sizeof err), -EBUSY);
    assert_non_null(strstr(err, "in use by another"));
    tier_close(t);

    char file[400];
    snprintf(file, sizeof file, "%s/plainfile", e->a.dir);
    int fd = open(file, O_WRONLY | O_CREAT, 0644);
    close(fd);
    o.dir = file;
    assert_true(tier_open(&t2, &e->a.m, BLOB, &o, err, sizeof err) < 0);
    assert_non_null(strstr(err, "not a directory"));
    unlink(file);
}

/* ---- end to end on tinymoe ---- */

static char bin[2048], fx[2048], root[1024];

static bool have_fixtures(void)
{
    char p[4200];
    struct stat st;
    snprintf(p, sizeof(p), "%s/tinymoe/ref64.tokens.i32", fx);
    return stat(p, &st) == 0;
}

/* logits of tinymoe's 64 reference tokens at a small RAM budget into
 * root/NAME.f32, with extra flags; the --stats-json line's field `key`. */
static long long run_logits(const char *name, const char *extra, const char *key)
{
    if (sh("%s/moestream logits -m %s/split --tokens %s/tinymoe/ref64.tokens.i32 --out %s/%s.f32 "
           "--ram-budget 140M --stats-json %s 2>&1",
           bin, root, fx, root, name, extra) != 0)
        fail_msg("logits %s: %s", name, out);
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(out, pat);
    if (!p)
        fail_msg("no %s in: %s", key, out);
    return atoll(p + strlen(pat));
}

static long long field(const char *key)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(out, pat);
    if (!p)
        fail_msg("no %s in: %s", key, out);
    return atoll(p + strlen(pat));
}

static void same_logits(const char *a, const char *b)
{
    if (sh("cmp %s/%s.f32 %s/%s.f32 2>&1", root, a, root, b) != 0)
        fail_msg("logits of %s and %s differ: %s", a, b, out);
}

static void test_e2e(void **state)
{
    (void)state;
    const char *b = getenv("MOESTREAM_BIN"), *f = getenv("MOESTREAM_FIXTURES");
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(bin, sizeof(bin), "%s", b ? b : "build/bin");
    snprintf(fx, sizeof(fx), "%s", f ? f : "../shared/fixtures");
    snprintf(root, sizeof(root), "%s/build/test-tier", cwd);
    if (!have_fixtures()) {
        print_message("  skipped: %s/tinymoe fixtures absent\n", fx);
        skip();
    }
    sh("rm -rf %s && mkdir -p %s", root, root);
    if (sh("%s/moestream-split %s/tinymoe/tinymoe-Q8_0.gguf -o %s/split -q 2>&1", bin, fx, root) != 0)
        fail_msg("split: %s", out);
    char tier[1200];
    snprintf(tier, sizeof tier, "--ssd-cache %s/tier --ssd-cache-size 64M", root);

    long long base = run_logits("base", "", "store_bytes_read");
    assert_int_equal(field("tier_bytes_read"), 0);
    long long s1 = run_logits("cold", tier, "store_bytes_read");
    assert_non_null(strstr(out, "creating"));
    assert_int_equal(s1, base);
    assert_int_equal(field("tier_bytes_read"), 0);
    assert_true(field("tier_writes") > 0);
    same_logits("base", "cold");

    long long s2 = run_logits("warm", tier, "store_bytes_read");
    long long t2 = field("tier_bytes_read");
    assert_true(field("tier_entries_at_open") > 0);
    assert_true(t2 > 0);
    assert_true(s2 < s1);
    assert_int_equal(s2 + t2, field("bytes_read"));
    assert_int_equal(field("tier_bad"), 0);
    same_logits("base", "warm");

    /* damage every blob in the tier: flip one byte in each data slot */
    char p[1300];
    snprintf(p, sizeof p, "%s/tier/" TIER_FILE, root);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    uint64_t slot_bytes, n_slots, data_off;
    assert_int_equal(pread(fd, &slot_bytes, 8, 24), 8); /* header: see io/tier.c struct tier_hdr */
    assert_int_equal(pread(fd, &n_slots, 8, 32), 8);
    assert_int_equal(pread(fd, &data_off, 8, 64), 8);
    assert_int_equal(data_off % 16384, 0);
    for (uint64_t s = 0; s < n_slots; s++) {
        uint8_t c = 0;
        off_t off = (off_t)(data_off + s * slot_bytes + 4096 + s);
        assert_int_equal(pread(fd, &c, 1, off), 1);
        c ^= 0x5a;
        assert_int_equal(pwrite(fd, &c, 1, off), 1);
    }
    close(fd);
    long long s3 = run_logits("damaged", tier, "store_bytes_read");
    assert_true(field("tier_bad") > 0);
    assert_true(s3 > s2); /* the damaged copies were read from the store instead */
    assert_non_null(strstr(out, "failed its checksum"));
    same_logits("base", "damaged");

    /* the bad copies were rewritten from the store */
    run_logits("healed", tier, "store_bytes_read");
    assert_true(field("tier_bytes_read") > 0);
    assert_int_equal(field("tier_bad"), 0);
    same_logits("base", "healed");

    /* a GGUF has no blob checksums: refused with a reason */
    if (sh("%s/moestream logits -m %s/tinymoe/tinymoe-Q8_0.gguf --tokens %s/tinymoe/ref64.tokens.i32 --out "
           "%s/g.f32 %s 2>&1", bin, fx, fx, root, tier) == 0)
        fail_msg("a GGUF with --ssd-cache was accepted: %s", out);
    assert_non_null(strstr(out, "needs a split model"));
    /* run takes the flags too */
    if (sh("%s/moestream run -m %s/split -p hello -n 4 --ram-budget 140M %s --stats 2>&1", bin, root, tier) != 0)
        fail_msg("run: %s", out);
    assert_non_null(strstr(out, "ssd tier: read"));
    sh("rm -rf %s", root);
}

int main(void)
{
    const struct CMUnitTest unit[] = {
        cmocka_unit_test_setup(test_roundtrip, fresh),
        cmocka_unit_test_setup(test_refuses_damaged_blob, fresh),
        cmocka_unit_test_setup(test_size_bound, fresh),
        cmocka_unit_test_setup(test_rebuilt, fresh),
        cmocka_unit_test_setup(test_refusals, fresh),
    };
    const struct CMUnitTest e2e[] = {
        cmocka_unit_test(test_e2e),
    };
    int rc = cmocka_run_group_tests_name("tier", unit, group_setup, group_teardown);
    return rc + cmocka_run_group_tests_name("tier_e2e", e2e, NULL, NULL);
}
