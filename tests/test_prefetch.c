/*
 * test_prefetch.c - the prefetch policies (io/prefetch.h): co-activation
 * statistics learned from a routing with a fixed pattern predict it,
 * precision turns a policy down when its guesses miss, and the statistics
 * file round-trips and is refused when corrupt, truncated or of another
 * model shape.
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
#include <unistd.h>

#include "prefetch.h"

#define NL 4
#define NE 16
#define K 2

/* Token t routes layer l to experts {(t + 3 l) % NE, (t + 3 l + 1) % NE}... a
 * pattern where layer l+1's choice follows from layer l's within a token. */
static void route(int t, int l, int32_t ids[K])
{
    ids[0] = (int32_t)((5 * t + 3 * l) % NE);
    ids[1] = (int32_t)((5 * t + 3 * l + 7) % NE);
}

static int has(const int32_t *v, int n, int32_t e)
{
    for (int i = 0; i < n; i++)
        if (v[i] == e)
            return 1;
    return 0;
}

static void test_parse(void **state)
{
    (void)state;
    enum prefetch_kind k;
    assert_int_equal(prefetch_parse_kind("both", &k), 0);
    assert_int_equal(k, PREFETCH_BOTH);
    assert_int_equal(prefetch_parse_kind("off", &k), 0);
    assert_int_equal(k, PREFETCH_NONE);
    assert_int_equal(prefetch_parse_kind("sometimes", &k), -EINVAL);
    struct prefetch *p;
    assert_int_equal(prefetch_open(&p, PREFETCH_COACT, NL, NE, 0), -EINVAL);
    assert_int_equal(prefetch_open(&p, PREFETCH_COACT, NL, PREFETCH_MAX_EXPERT + 1, K), -EINVAL);
}

/* Feeds n_tok tokens of the pattern; returns the share of correct hints
 * given for layers 1..NL-1 over the last half. */
static double feed(struct prefetch *p, int t0, int n_tok)
{
    int right = 0, given = 0;
    for (int t = t0; t < t0 + n_tok; t++)
        for (int l = 0; l < NL; l++) {
            int32_t ids[K], out[K];
            route(t, l, ids);
            prefetch_observe(p, l, ids, K);
            if (l + 1 < NL) {
                int n = prefetch_hints(p, l + 1, NULL, 0, out, K);
                int32_t next[K];
                route(t, l + 1, next);
                if (t >= t0 + n_tok / 2)
                    for (int i = 0; i < n; i++) {
                        given++;
                        right += has(next, K, out[i]);
                    }
            }
        }
    return given ? (double)right / given : -1;
}

static void test_coact_learns(void **state)
{
    (void)state;
    struct prefetch *p;
    assert_int_equal(prefetch_open(&p, PREFETCH_COACT, NL, NE, K), 0);
    assert_false(prefetch_wants_lookahead(p));
    assert_true(prefetch_active(p));
    /* nothing learned yet: no hints */
    int32_t out[K], ids[K];
    route(0, 0, ids);
    prefetch_observe(p, 0, ids, K);
    assert_int_equal(prefetch_hints(p, 1, NULL, 0, out, K), 0);
    double prec = feed(p, 1, 200);
    printf("  coact precision on a deterministic pattern: %.3f\n", prec);
    assert_true(prec > 0.99);
    struct prefetch_stats st;
    prefetch_get_stats(p, &st);
    assert_true(st.hinted > 0);
    assert_int_equal(st.budget, K);
    /* batches (more than k ids) teach nothing and do not crash */
    int32_t many[4 * K] = { 0 };
    prefetch_observe(p, 1, many, 4 * K);
    prefetch_close(p);
}

static void test_turn_down(void **state)
{
    (void)state;
    struct prefetch *p;
    assert_int_equal(prefetch_open(&p, PREFETCH_LOOKAHEAD, NL, NE, K), 0);
    /* guesses that are always wrong: the budget falls to 0 with rare probes */
    int probes = 0;
    for (int t = 0; t < 400; t++)
        for (int l = 0; l < NL; l++) {
            int32_t ids[K], out[K], guess[K];
            route(t, l, ids);
            prefetch_observe(p, l, ids, K);
            if (l + 1 < NL) {
                int32_t next[K];
                route(t, l + 1, next);
                int g = 0;
                for (int e = 0; e < NE && g < K; e++)
                    if (!has(next, K, e))
                        guess[g++] = e;
                int n = prefetch_hints(p, l + 1, guess, K, out, K);
                if (t >= 200)
                    probes += n;
            }
        }
    struct prefetch_stats st;
    prefetch_get_stats(p, &st);
    printf("  wrong guesses: precision %.3f, hints in the last 200 tokens %d (of %d offered)\n", st.precision,
           probes, 200 * (NL - 1) * K);
    assert_true(st.precision < 0.01);
    assert_true(probes > 0);                     /* still probing */
    assert_true(probes < 200 * (NL - 1) * K / 8); /* but turned down */
    prefetch_close(p);
}

static void test_save_load(void **state)
{
    (void)state;
    char path[] = "/tmp/test_prefetch_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char err[512];
    struct prefetch *a, *b, *c;
    assert_int_equal(prefetch_open(&a, PREFETCH_COACT, NL, NE, K), 0);
    feed(a, 0, 100);
    assert_int_equal(prefetch_save(a, path, err, sizeof(err)), 0);
    /* a fresh policy loaded from the file predicts at once */
    assert_int_equal(prefetch_open(&b, PREFETCH_BOTH, NL, NE, K), 0);
    assert_int_equal(prefetch_load(b, path, err, sizeof(err)), 0);
    int32_t ids[K], out[K], next[K];
    route(500, 0, ids);
    prefetch_observe(b, 0, ids, K);
    route(500, 1, next);
    int n = prefetch_hints(b, 1, NULL, 0, out, K);
    assert_int_equal(n, K);
    for (int i = 0; i < n; i++)
        assert_true(has(next, K, out[i]));
    /* another shape is refused, naming both */
    assert_int_equal(prefetch_open(&c, PREFETCH_COACT, NL, NE / 2, K), 0);
    assert_int_equal(prefetch_load(c, path, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "4 layers x 16 experts"));
    prefetch_close(c);
    /* one flipped payload byte: checksum mismatch */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 40, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 40, SEEK_SET);
    fputc(ch ^ 1, f);
    fclose(f);
    assert_int_equal(prefetch_load(b, path, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "checksum"));
    /* truncated */
    assert_int_equal(truncate(path, 100), 0);
    assert_int_equal(prefetch_load(b, path, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "truncated"));
    /* not a statistics file at all */
    f = fopen(path, "wb");
    fputs("hello, this is not it", f);
    fclose(f);
    assert_int_equal(prefetch_load(b, path, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "magic"));
    /* lookahead keeps no statistics: nothing to save or load */
    struct prefetch *d;
    assert_int_equal(prefetch_open(&d, PREFETCH_LOOKAHEAD, NL, NE, K), 0);
    assert_int_equal(prefetch_save(d, path, err, sizeof(err)), -EINVAL);
    prefetch_close(d);
    unlink(path);
    prefetch_close(a);
    prefetch_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_coact_learns),
        cmocka_unit_test(test_turn_down),
        cmocka_unit_test(test_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
