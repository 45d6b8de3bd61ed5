/*
 * test_stripe.c - striped splits (moestream-split --stripe, splitfmt.h
 * format 2) end to end on tinymoe: the expert files land in every stripe
 * directory and nowhere else, verify and info pass, the logits of a striped
 * split are bit-identical to those of an unstriped one (with a small expert
 * cache, so experts are read again and again), an unstriped split stays
 * format 1, and the refusals: a missing stripe directory (named, with the
 * layer files expected there), a manifest whose stripe path was altered
 * (checksum), a striped manifest without its checksum, a repeated or a
 * single --stripe directory, an existing stripe output without --force.
 * Skipped with a message when the fixtures are absent.
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

#include "gguf.h"
#include "splitfmt.h"

static char bin[2048], fx[2048];
static char root[1024]; /* build/test-stripe, absolute */

static bool have_fixtures(void)
{
    char p[4200];
    struct stat st;
    snprintf(p, sizeof(p), "%s/tinymoe/tinymoe-Q8_0.gguf", fx);
    if (stat(p, &st) < 0)
        return false;
    snprintf(p, sizeof(p), "%s/tinymoe/ref64.tokens.i32", fx);
    return stat(p, &st) == 0;
}

static bool exists(const char *fmt, ...)
{
    char p[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof(p), fmt, ap);
    va_end(ap);
    struct stat st;
    return stat(p, &st) == 0;
}

static void *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *x = malloc((size_t)sz + 1);
    assert_non_null(x);
    assert_int_equal(fread(x, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return x;
}

static void spit(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, n, f), n);
    fclose(f);
}

/* Fresh root with drive directories a, b, c and out/. */
static int setup(void **state)
{
    (void)state;
    const char *b = getenv("MOESTREAM_BIN"), *f = getenv("MOESTREAM_FIXTURES");
    char cwd[512];
    if (!getcwd(cwd, sizeof(cwd)))
        return -1;
    snprintf(bin, sizeof(bin), "%s", b ? b : "build/bin");
    snprintf(fx, sizeof(fx), "%s", f ? f : "../shared/fixtures");
    snprintf(root, sizeof(root), "%s/build/test-stripe", cwd);
    sh("rm -rf %s && mkdir -p %s/a %s/b %s/c %s/out", root, root, root, root, root);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sh("rm -rf %s", root);
    return 0;
}

/* Splits tinymoe into out/NAME, striped over the comma list dirs (NULL: not
 * striped). Returns the exit status; the output is in out. */
static int split_to(const char *name, const char *dirs, const char *extra)
{
    char stripe[4400] = "";
    if (dirs)
        snprintf(stripe, sizeof(stripe), "--stripe %s", dirs);
    return sh("%s/moestream-split %s/tinymoe/tinymoe-Q8_0.gguf -o %s/out/%s -q %s %s 2>&1", bin, fx, root, name,
              stripe, extra ? extra : "");
}

static int logits(const char *name, const char *f32)
{
    return sh("%s/moestream logits -m %s/out/%s --tokens %s/tinymoe/ref64.tokens.i32 --out %s/%s --ram-budget 140M "
              "2>&1",
              bin, root, name, fx, root, f32);
}

/* striped over a, b, c: files in each, logits identical, verify/info pass */
static void test_striped_identical(void **state)
{
    (void)state;
    if (!have_fixtures()) {
        print_message("  skipped: %s/tinymoe fixtures absent\n", fx);
        skip();
    }
    if (split_to("u", NULL, NULL) != 0)
        fail_msg("split: %s", out);
    char dirs[4200];
    snprintf(dirs, sizeof(dirs), "%s/a,%s/b,%s/c", root, root, root);
    if (split_to("s", dirs, NULL) != 0)
        fail_msg("split --stripe: %s", out);

    /* tinymoe: 6 layers of 32 experts; over 3 stripes 11, 11 and 10 */
    struct split_model *m;
    char err[1024], p[4200];
    snprintf(p, sizeof(p), "%s/out/s", root);
    if (split_open(&m, p, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(m->n_stripe, 3);
    assert_true(m->manifest_checked);
    uint32_t ver = 0;
    assert_int_equal(gguf_get_u32(m->manifest, "moestream.format_version", &ver), 0);
    assert_int_equal(ver, 2);
    const char *sd[3] = { "a", "b", "c" };
    for (int L = 0; L < m->n_layer; L++) {
        const struct split_layer *l = &m->layers[L];
        assert_int_equal(l->n_expert, 32);
        assert_false(exists("%s/out/s/" SPLIT_EXPERTS_FMT, root, L)); /* nothing in OUT */
        for (int s = 0; s < 3; s++) {
            char want[4200];
            struct stat st;
            snprintf(want, sizeof(want), "%s/%s/s/" SPLIT_EXPERTS_FMT, root, sd[s], L);
            assert_int_equal(stat(want, &st), 0);
            assert_int_equal((uint64_t)st.st_size, (uint64_t)(s < 2 ? 11 : 10) * l->blob_size);
            /* the reader's path names the same file */
            struct stat st2;
            assert_int_equal(stat(split_layer_file(l, s), &st2), 0);
            assert_true(st.st_ino == st2.st_ino);
        }
        assert_int_equal(split_expert_file(l, 7), 1);
        assert_int_equal(split_expert_offset(l, 7), 2 * l->blob_size);
    }
    split_close(m);

    /* the unstriped split stays format 1, readable by older moestream */
    snprintf(p, sizeof(p), "%s/out/u", root);
    if (split_open(&m, p, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(m->n_stripe, 0);
    assert_int_equal(gguf_get_u32(m->manifest, "moestream.format_version", &ver), 0);
    assert_int_equal(ver, 1);
    split_close(m);

    if (sh("%s/moestream-split verify %s/out/s 2>&1", bin, root) != 0)
        fail_msg("verify: %s", out);
    assert_non_null(strstr(out, "OK"));
    if (sh("%s/moestream-split info %s/out/s 2>&1", bin, root) != 0)
        fail_msg("info: %s", out);
    assert_non_null(strstr(out, "format 2"));
    assert_non_null(strstr(out, "stripe 2 of 3"));

    if (logits("u", "u.f32") != 0 || logits("s", "s.f32") != 0)
        fail_msg("logits: %s", out);
    size_t na, nb;
    char pa[4200], pb[4200];
    snprintf(pa, sizeof(pa), "%s/u.f32", root);
    snprintf(pb, sizeof(pb), "%s/s.f32", root);
    void *a = slurp(pa, &na), *b = slurp(pb, &nb);
    assert_true(na > 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(a);
    free(b);

    /* run and bench open it too */
    if (sh("%s/moestream run -m %s/out/s -p hello -n 4 --ram-budget 140M 2>&1", bin, root) != 0)
        fail_msg("run: %s", out);
    if (sh("%s/moestream bench -m %s/out/s --prompt-tokens 8 -n 4 --ram-budget 140M 2>&1", bin, root) != 0)
        fail_msg("bench: %s", out);
}

/* a stripe directory that is gone is named with the files expected there */
static void test_missing_stripe(void **state)
{
    (void)state;
    if (!have_fixtures())
        skip();
    char dirs[4200];
    snprintf(dirs, sizeof(dirs), "%s/a,%s/b", root, root);
    if (split_to("m", dirs, NULL) != 0)
        fail_msg("split --stripe: %s", out);
    assert_int_equal(sh("mv %s/b/m %s/b/m.away", root, root), 0);
    struct split_model *m;
    char err[1024], p[4200];
    snprintf(p, sizeof(p), "%s/out/m", root);
    assert_int_equal(split_open(&m, p, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "b/m"));
    assert_non_null(strstr(err, "missing"));
    assert_non_null(strstr(err, "experts-000.bin .. experts-005.bin"));
    assert_null(strchr(err, '\n'));
    assert_int_not_equal(logits("m", "m.f32"), 0);
    assert_non_null(strstr(out, "stripe directory"));
    assert_non_null(strstr(out, "b/m"));
    assert_int_not_equal(sh("%s/moestream-split verify %s/out/m 2>&1", bin, root), 0);
    assert_non_null(strstr(out, "b/m"));
    assert_int_equal(sh("mv %s/b/m.away %s/b/m", root, root), 0);
    assert_int_equal(split_open(&m, p, err, sizeof(err)), 0);
    split_close(m);
}

/* the stripe paths are covered by the manifest checksum */
static void test_tampered_manifest(void **state)
{
    (void)state;
    if (!have_fixtures())
        skip();
    char dirs[4200];
    snprintf(dirs, sizeof(dirs), "%s/a,%s/b", root, root);
    if (split_to("t", dirs, NULL) != 0)
        fail_msg("split --stripe: %s", out);
    /* point stripe 1 at ../../c/t (same length) */
    char mp[4200], p[4200], err[1024];
    snprintf(mp, sizeof(mp), "%s/out/t/manifest.gguf", root);
    snprintf(p, sizeof(p), "%s/out/t", root);
    size_t n;
    char *buf = slurp(mp, &n);
    char *hit = memmem(buf, n, "../../b/t", 9);
    assert_non_null(hit);
    hit[6] = 'c';
    assert_int_equal(sh("mkdir -p %s/c/t && cp %s/b/t/* %s/c/t/", root, root, root), 0);
    spit(mp, buf, n);
    struct split_model *m;
    assert_int_equal(split_open(&m, p, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "does not match its checksum"));
    /* without its checksum file a striped manifest is refused too */
    assert_int_equal(sh("rm %s/out/t/manifest.xxh3", root), 0);
    assert_int_equal(split_open(&m, p, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "no manifest.xxh3"));
    free(buf);
}

/* command-line refusals */
static void test_refusals(void **state)
{
    (void)state;
    if (!have_fixtures())
        skip();
    char dirs[4200];
    snprintf(dirs, sizeof(dirs), "%s/a", root);
    assert_int_equal(split_to("r", dirs, NULL), 2);
    assert_non_null(strstr(out, "at least two"));
    snprintf(dirs, sizeof(dirs), "%s/a,%s/../test-stripe/a", root, root);
    assert_int_equal(split_to("r", dirs, NULL), 1);
    assert_non_null(strstr(out, "twice"));
    snprintf(dirs, sizeof(dirs), "%s/a,%s/nowhere", root, root);
    assert_int_equal(split_to("r", dirs, NULL), 1);
    assert_non_null(strstr(out, "nowhere"));
    assert_false(exists("%s/out/r", root));
    assert_false(exists("%s/a/r", root));
    /* an existing stripe output: refused, replaced with --force */
    snprintf(dirs, sizeof(dirs), "%s/a,%s/b", root, root);
    assert_int_equal(sh("mkdir -p %s/b/r && touch %s/b/r/experts-000.bin", root, root), 0);
    assert_int_equal(split_to("r", dirs, NULL), 1);
    assert_non_null(strstr(out, "--force"));
    assert_false(exists("%s/a/r", root));
    if (split_to("r", dirs, "--force") != 0)
        fail_msg("split --force: %s", out);
    if (sh("%s/moestream-split verify %s/out/r -q 2>&1", bin, root) != 0)
        fail_msg("verify: %s", out);
    /* OUT's own parent as a stripe: its files stay in OUT ("." in the manifest) */
    snprintf(dirs, sizeof(dirs), "%s/out,%s/c", root, root);
    if (split_to("o", dirs, NULL) != 0)
        fail_msg("split --stripe OUT's parent: %s", out);
    assert_true(exists("%s/out/o/experts-000.bin", root));
    assert_true(exists("%s/c/o/experts-000.bin", root));
    if (sh("%s/moestream-split verify %s/out/o -q 2>&1", bin, root) != 0)
        fail_msg("verify: %s", out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_striped_identical),
        cmocka_unit_test(test_missing_stripe),
        cmocka_unit_test(test_tampered_manifest),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
