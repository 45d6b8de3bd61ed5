/*
 * test_sampler.c - the sampling chain: greedy is argmax, top-k 1 is greedy,
 * the same seed repeats, top-p/min-p/top-k never pick outside their set,
 * the repetition penalty pushes repeated tokens down, draws follow the
 * softmax distribution.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sampler.h"

#define NV 64

static void fill(float *l)
{
    for (int i = 0; i < NV; i++)
        l[i] = (float)((i * 37) % NV) / 8.0f; /* distinct values; argmax at i with i*37%64 == 63 */
}

static int argmax(const float *l)
{
    int b = 0;
    for (int i = 1; i < NV; i++)
        if (l[i] > l[b])
            b = i;
    return b;
}

static void test_greedy(void **state)
{
    (void)state;
    struct sampler_opts o;
    sampler_default_opts(&o);
    o.temperature = 0;
    struct sampler *s = sampler_init(&o, NV);
    float l[NV];
    fill(l);
    int want = argmax(l);
    assert_int_equal(sampler_sample(s, l), want);
    sampler_free(s);
}

static void test_top_k_one_is_greedy(void **state)
{
    (void)state;
    struct sampler_opts o;
    sampler_default_opts(&o);
    o.top_k = 1;
    o.temperature = 1.5f;
    o.seed = 7;
    struct sampler *s = sampler_init(&o, NV);
    for (int r = 0; r < 50; r++) {
        float l[NV];
        fill(l);
        assert_int_equal(sampler_sample(s, l), argmax(l));
    }
    sampler_free(s);
}

static void test_seed_repeats(void **state)
{
    (void)state;
    struct sampler_opts o;
    sampler_default_opts(&o);
    o.seed = 1234;
    o.top_k = 0;
    o.top_p = 1;
    o.min_p = 0;
    o.temperature = 2.0f;
    int a[100], b[100];
    for (int pass = 0; pass < 2; pass++) {
        struct sampler *s = sampler_init(&o, NV);
        for (int r = 0; r < 100; r++) {
            float l[NV];
            fill(l);
            (pass ? b : a)[r] = sampler_sample(s, l);
        }
        sampler_free(s);
    }
    assert_memory_equal(a, b, sizeof(a));
    /* and the draws are not all the same token at temperature 2 */
    int distinct = 0;
    for (int r = 1; r < 100; r++)
        distinct += a[r] != a[0];
    assert_true(distinct > 10);
}

/* Candidates kept by top-p: the smallest prefix (by probability) whose mass
 * reaches p; a draw must come from it. */
static void test_top_p_and_min_p_sets(void **state)
{
    (void)state;
    float l[NV];
    fill(l);
    /* softmax at temperature 1, sorted */
    double p[NV], sum = 0, mx = 63 / 8.0;
    for (int i = 0; i < NV; i++)
        sum += p[i] = exp(l[i] - mx);
    struct sampler_opts o;
    sampler_default_opts(&o);
    o.temperature = 1;
    o.top_k = 0;
    o.min_p = 0;
    o.top_p = 0.5f;
    o.seed = 99;
    struct sampler *s = sampler_init(&o, NV);
    for (int r = 0; r < 300; r++) {
        float c[NV];
        memcpy(c, l, sizeof(c));
        int t = sampler_sample(s, c);
        /* mass of tokens strictly more likely than t must be < 0.5 */
        double above = 0;
        for (int i = 0; i < NV; i++)
            if (l[i] > l[t])
                above += p[i] / sum;
        assert_true(above < 0.5);
    }
    sampler_free(s);
    o.top_p = 1;
    o.min_p = 0.3f;
    s = sampler_init(&o, NV);
    for (int r = 0; r < 300; r++) {
        float c[NV];
        memcpy(c, l, sizeof(c));
        int t = sampler_sample(s, c);
        assert_true(exp(l[t] - mx) >= 0.3 - 1e-6);
    }
    sampler_free(s);
}

/* At temperature 1 without truncation, the frequency of the top token
 * follows its softmax probability. */
static void test_distribution(void **state)
{
    (void)state;
    float l[NV] = { 0 };
    l[5] = 2.0f;
    l[9] = 1.0f;
    double z = exp(2.0) + exp(1.0) + (NV - 2), want5 = exp(2.0) / z;
    struct sampler_opts o;
    sampler_default_opts(&o);
    o.temperature = 1;
    o.top_k = 0;
    o.top_p = 1;
    o.min_p = 0;
    o.seed = 5;
    struct sampler *s = sampler_init(&o, NV);
    int hits = 0, n = 20000;
    for (int r = 0; r < n; r++) {
        float c[NV];
        memcpy(c, l, sizeof(c));
        hits += sampler_sample(s, c) == 5;
    }
    sampler_free(s);
    double f = (double)hits / n;
    print_message("  token 5: frequency %.4f, softmax probability %.4f\n", f, want5);
    assert_true(fabs(f - want5) < 0.015);
}

static void test_repeat_penalty(void **state)
{
    (void)state;
    struct sampler_opts o;
    sampler_default_opts(&o);
    o.temperature = 0;
    o.repeat_penalty = 4.0f;
    o.repeat_last_n = 8;
    struct sampler *s = sampler_init(&o, NV);
    float l[NV] = { 0 };
    l[3] = 2.0f; /* best, but repeated */
    l[4] = 1.0f;
    sampler_accept(s, 3);
    assert_int_equal(sampler_sample(s, l), 4); /* 2/4 = 0.5 < 1 */
    /* after 8 other tokens, 3 leaves the window */
    for (int i = 0; i < 8; i++)
        sampler_accept(s, 10 + i);
    float m[NV] = { 0 };
    m[3] = 2.0f;
    m[4] = 1.0f;
    assert_int_equal(sampler_sample(s, m), 3);
    sampler_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_top_k_one_is_greedy),
        cmocka_unit_test(test_seed_repeats),
        cmocka_unit_test(test_top_p_and_min_p_sets),
        cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_repeat_penalty),
    };
    return cmocka_run_group_tests_name("sampler", tests, NULL, NULL);
}
