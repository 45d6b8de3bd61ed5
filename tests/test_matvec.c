/*
 * test_matvec.c - the thread pool and the matvec/matmul drivers.
 *
 * Pool: every task id runs exactly once per pool_run, for many task counts
 * and 1..3 threads, over many back-to-back runs (exercising the spin path)
 * and runs separated by sleeps (exercising the blocking path).
 * Drivers: matvec and matmul must equal a plain per-row loop over the same
 * traits->vec_dot bit for bit (the drivers only split rows and may use
 * vec_dot_multi, which must give vec_dot's bits), for several
 * formats, shapes, token counts and 1..3 threads, with the kernels of the
 * ISA quant_init() selects (MOESTREAM_ISA=ref|avx2|avx512 to force one).
 * No fixtures needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "matvec.h"
#include "pool.h"
#include "quant.h"
#include "quant_ref.h"

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

static float rng_float(void)
{
    return (float)((double)(rng_next() >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

/* ---- pool ---- */

#define MAX_TASKS 1000

struct count_ctx {
    atomic_int hits[MAX_TASKS];
    atomic_int bad_n;
    int n_tasks;
};

static void count_task(void *ctx, int task, int n_tasks)
{
    struct count_ctx *c = ctx;
    if (n_tasks != c->n_tasks || task < 0 || task >= n_tasks)
        atomic_fetch_add(&c->bad_n, 1);
    else
        atomic_fetch_add(&c->hits[task], 1);
}

static void check_runs(struct pool *p, int n_runs, bool sleep_between)
{
    static const int task_counts[] = { 0, 1, 2, 3, 7, 64, 333, MAX_TASKS };
    static struct count_ctx c;
    for (int run = 0; run < n_runs; run++) {
        int n = task_counts[run % (int)(sizeof(task_counts) / sizeof(task_counts[0]))];
        for (int i = 0; i < MAX_TASKS; i++)
            atomic_store(&c.hits[i], 0);
        atomic_store(&c.bad_n, 0);
        c.n_tasks = n;
        if (sleep_between) {
            struct timespec ts = { 0, 3 * 1000 * 1000 }; /* 3 ms: workers go to sleep */
            nanosleep(&ts, NULL);
        }
        pool_run(p, count_task, &c, n);
        assert_int_equal(atomic_load(&c.bad_n), 0);
        for (int i = 0; i < MAX_TASKS; i++)
            if (atomic_load(&c.hits[i]) != (i < n ? 1 : 0))
                fail_msg("threads %d run %d: task %d of %d ran %d times", pool_n_threads(p), run, i, n,
                         atomic_load(&c.hits[i]));
    }
}

static void test_pool_tasks_once(void **state)
{
    (void)state;
    assert_null(pool_init(0));
    for (int nt = 1; nt <= 3; nt++) {
        struct pool *p = pool_init(nt);
        assert_non_null(p);
        assert_int_equal(pool_n_threads(p), nt);
        check_runs(p, 400, false);
        check_runs(p, 16, true);
        pool_free(p);
    }
    pool_free(NULL);
}

/* ---- drivers ---- */

/* random weights of type t; scale fields set to moderate finite values */
static void synth_weights(int t, void *dst, int64_t n_rows, int64_t n)
{
    const struct quant_traits *tr = quant_traits(t);
    size_t size = quant_row_size(t, n) * (size_t)n_rows;
    uint8_t *p = dst;
    switch (t) {
    case QT_F32:
        for (int64_t i = 0; i < n * n_rows; i++)
            ((float *)dst)[i] = rng_float();
        return;
    case QT_Q8_0: {
        float *tmp = malloc(sizeof(float) * (size_t)(n * n_rows));
        for (int64_t i = 0; i < n * n_rows; i++)
            tmp[i] = rng_float();
        quant_from_float_q8_0_ref(tmp, dst, n * n_rows);
        free(tmp);
        return;
    }
    case QT_Q4_K:
    case QT_Q5_K: {
        /* both blocks start with the fp16 pair d, dmin */
        static_assert(offsetof(block_q4_K, d) == offsetof(block_q5_K, d) &&
                          offsetof(block_q4_K, dmin) == offsetof(block_q5_K, dmin) &&
                          offsetof(block_q4_K, dmin) == offsetof(block_q4_K, d) + sizeof(qhalf),
                      "d, dmin lead both blocks");
        for (size_t i = 0; i < size; i++)
            p[i] = (uint8_t)rng_next();
        for (int64_t b = 0; b < (int64_t)(size / tr->type_size); b++) {
            qhalf dd[2];
            dd[0] = quant_fp32_to_fp16(rng_float() * 0.01f);
            dd[1] = quant_fp32_to_fp16(rng_float() * 0.01f);
            memcpy(p + (size_t)b * tr->type_size + offsetof(block_q4_K, d), dd, sizeof(dd));
        }
        return;
    }
    case QT_Q6_K:
        for (size_t i = 0; i < size; i++)
            p[i] = (uint8_t)rng_next();
        for (int64_t b = 0; b < (int64_t)(size / tr->type_size); b++)
            ((block_q6_K *)p)[b].d = quant_fp32_to_fp16(rng_float() * 0.01f);
        return;
    case QT_MXFP4:
        /* any packed nibbles; exponents 2^-8 .. 2^-1 (e8m0 119..126) */
        for (size_t i = 0; i < size; i++)
            p[i] = (uint8_t)rng_next();
        for (int64_t b = 0; b < (int64_t)(size / tr->type_size); b++)
            ((block_mxfp4 *)p)[b].e = (uint8_t)(119 + rng_next() % 8);
        return;
    case QT_IQ4_NL:
        for (size_t i = 0; i < size; i++)
            p[i] = (uint8_t)rng_next();
        for (int64_t b = 0; b < (int64_t)(size / tr->type_size); b++)
            ((block_iq4_nl *)p)[b].d = quant_fp32_to_fp16(rng_float() * 0.01f);
        return;
    default:
        fail_msg("synth_weights: no recipe for %s", tr->name);
    }
}

static void check_shape(struct pool *p, int t, int64_t n_rows, int64_t n, int64_t n_tok, enum matvec_act act)
{
    const struct quant_traits *tr = quant_traits(t);
    const size_t row_size = quant_row_size(t, n), act_size = matvec_act_size(t, n, act);
    assert_true(row_size > 0 && act_size > 0);
    uint8_t *W = malloc(row_size * (size_t)n_rows);
    float *X = malloc(sizeof(float) * (size_t)(n * n_tok));
    uint8_t *Xq = malloc(act_size * (size_t)n_tok);
    float *Y = malloc(sizeof(float) * (size_t)(n_rows * n_tok));
    float *Yref = malloc(sizeof(float) * (size_t)(n_rows * n_tok));
    synth_weights(t, W, n_rows, n);
    for (int64_t i = 0; i < n * n_tok; i++)
        X[i] = rng_float();
    for (int64_t k = 0; k < n_tok; k++)
        matvec_quantize_act(t, X + k * n, Xq + (size_t)k * act_size, n, act);
    /* 16-bit mode: the row holds Q(x) then Q(x - deq(Q(x))); the output is
     * the sum of the two dots, first pass first */
    const size_t pass2 = act_size == quant_row_size(tr->vec_dot_type, n) ? 0 : act_size / 2;
    for (int64_t k = 0; k < n_tok; k++)
        for (int64_t r = 0; r < n_rows; r++) {
            const uint8_t *w = W + (size_t)r * row_size, *x = Xq + (size_t)k * act_size;
            tr->vec_dot(n, &Yref[k * n_rows + r], w, x);
            if (pass2) {
                float s2;
                tr->vec_dot(n, &s2, w, x + pass2);
                Yref[k * n_rows + r] += s2;
            }
        }

    /* matvec, token by token */
    for (int64_t k = 0; k < n_tok; k++) {
        memset(Y, 0xff, sizeof(float) * (size_t)n_rows); /* NaN poison */
        matvec(p, Y, W, t, n_rows, n, Xq + (size_t)k * act_size, act);
        if (memcmp(Y, Yref + k * n_rows, sizeof(float) * (size_t)n_rows) != 0)
            fail_msg("matvec %s rows %lld n %lld threads %d token %lld differs from per-row vec_dot", tr->name,
                     (long long)n_rows, (long long)n, pool_n_threads(p), (long long)k);
    }
    /* matmul, all tokens */
    memset(Y, 0xff, sizeof(float) * (size_t)(n_rows * n_tok));
    matmul(p, Y, W, t, n_rows, n, Xq, n_tok, act);
    if (memcmp(Y, Yref, sizeof(float) * (size_t)(n_rows * n_tok)) != 0)
        fail_msg("matmul %s rows %lld n %lld tokens %lld threads %d differs from per-row vec_dot", tr->name,
                 (long long)n_rows, (long long)n, (long long)n_tok, pool_n_threads(p));
    free(W);
    free(X);
    free(Xq);
    free(Y);
    free(Yref);
}

static void test_drivers_match_rows(void **state)
{
    (void)state;
    static const enum matvec_act acts[] = { MATVEC_ACT8, MATVEC_ACT16 };
    for (int ai = 0; ai < 2; ai++) {
    static const int types[] = { QT_F32, QT_Q8_0, QT_IQ4_NL, QT_MXFP4, QT_Q4_K, QT_Q5_K, QT_Q6_K };
    static const int64_t shapes[][2] = { { 1, 256 }, { 3, 512 }, { 17, 256 }, { 64, 768 }, { 259, 256 }, { 1000, 512 } };
    /* 9 and 21: more activation rows than one multi-row chunk, odd remainders;
     * 37: more than one token chunk of the tile kernels (32) */
    static const int64_t toks[] = { 1, 2, 5, 9, 21, 37 };
    for (int nt = 1; nt <= 3; nt++) {
        struct pool *p = pool_init(nt);
        assert_non_null(p);
        for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++)
            for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++)
                for (size_t ki = 0; ki < sizeof(toks) / sizeof(toks[0]); ki++)
                    check_shape(p, types[ti], shapes[si][0], shapes[si][1], toks[ki], acts[ai]);
        /* 32-element blocks in groups of four (the MXFP4 and Q8_0 kernels):
         * rows ending in a partial group of 3, 1 and 2 blocks (gpt-oss's 2880) */
        for (size_t ki = 0; ki < sizeof(toks) / sizeof(toks[0]); ki++)
            for (int b32 = 0; b32 < 2; b32++) {
                const int t = b32 ? QT_MXFP4 : QT_Q8_0;
                check_shape(p, t, 19, 96, toks[ki], acts[ai]);
                check_shape(p, t, 21, 160, toks[ki], acts[ai]);
                check_shape(p, t, 35, 2880, toks[ki], acts[ai]);
            }
        pool_free(p);
    }
    }
}

/* 16-bit activations: the residual pass must make the dot much closer to the
 * float64 dot of the dequantized weights with the float activations */
static void test_act16_precision(void **state)
{
    (void)state;
    static const int types[] = { QT_Q8_0, QT_IQ4_NL, QT_Q4_K };
    const int64_t n = 1024;
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        int t = types[ti];
        const struct quant_traits *tr = quant_traits(t);
        uint8_t *W = malloc(quant_row_size(t, n));
        float x[1024], w[1024];
        uint8_t *xq = malloc(2 * quant_row_size(tr->vec_dot_type, n));
        synth_weights(t, W, 1, n);
        tr->to_float(W, w, n);
        for (int64_t i = 0; i < n; i++)
            x[i] = rng_float();
        double exact = 0, mag = 0;
        for (int64_t i = 0; i < n; i++)
            exact += (double)w[i] * x[i], mag += fabs((double)w[i] * x[i]);
        double err[2];
        for (int pass = 0; pass < 2; pass++) {
            enum matvec_act act = pass ? MATVEC_ACT16 : MATVEC_ACT8;
            float y;
            struct pool *p = pool_init(1);
            matvec_quantize_act(t, x, xq, n, act);
            matvec(p, &y, W, t, 1, n, xq, act);
            pool_free(p);
            err[pass] = fabs(y - exact) / mag;
        }
        print_message("  %s: relative dot error 8-bit %.2e, 16-bit %.2e\n", tr->name, err[0], err[1]);
        assert_true(err[1] < 1e-5);
        assert_true(err[1] <= err[0]);
        free(W);
        free(xq);
    }
}

/* matmul's row blocks must not depend on the cache size guess: a wide matrix
 * (rows larger than the block budget) takes one row per block */
static void test_matmul_wide_rows(void **state)
{
    (void)state;
    struct pool *p = pool_init(2);
    assert_non_null(p);
    check_shape(p, QT_F32, 5, 1 << 17, 3, MATVEC_ACT16); /* 512 KiB rows */
    pool_free(p);
}

static void test_act_size(void **state)
{
    (void)state;
    assert_int_equal(matvec_act_size(QT_Q4_K, 512, MATVEC_ACT8), 2 * sizeof(block_q8_K));
    assert_int_equal(matvec_act_size(QT_Q4_0, 512, MATVEC_ACT8), 16 * sizeof(block_q8_0));
    assert_int_equal(matvec_act_size(QT_F16, 100, MATVEC_ACT8), 100 * sizeof(float));
    assert_int_equal(matvec_act_size(QT_Q4_K, 512, MATVEC_ACT16), 4 * sizeof(block_q8_K));
    assert_int_equal(matvec_act_size(QT_Q4_0, 512, MATVEC_ACT16), 32 * sizeof(block_q8_0));
    assert_int_equal(matvec_act_size(QT_F16, 100, MATVEC_ACT16), 100 * sizeof(float));
}

/* the drivers run whatever quant_init picks (or MOESTREAM_ISA says) */
static int group_setup(void **state)
{
    (void)state;
    if (quant_init() != 0)
        return -1;
    print_message("matvec: kernels of ISA %s\n", quant_isa_name());
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_tasks_once),
        cmocka_unit_test(test_act_size),
        cmocka_unit_test(test_drivers_match_rows),
        cmocka_unit_test(test_matmul_wide_rows),
        cmocka_unit_test(test_act16_precision),
    };
    return cmocka_run_group_tests_name("matvec", tests, group_setup, NULL);
}
