/*
 * test_quant_lowbit.c - HQ2 / HQ3 / Q8_KH (kernels/quant_lowbit.h): the
 * rotation, the quantizers' error on Gaussian data, and every ISA's dot
 * against a float64 dot of the dequantized operands.
 *
 * Tolerances: with e = the float64 sum over blocks of D/127 * d_x * sum
 * level * q and L1 the same sum of absolute products,
 *   vec_dot_ref:   |s - e| <= 1e-5 * L1
 *   avx2 / avx512: |s - e| <= 5e-5 * L1 (integer sums exact; only the float
 *                  accumulation order of the block results differs)
 * vec_dot_multi equals the same ISA's vec_dot bit for bit.
 * Quantization error on unit Gaussian data (relative mean squared error):
 * HQ2 <= 0.125, HQ3 <= 0.040 (the Lloyd-Max quantizers reach 0.1175 and
 * 0.0345; the int8 codebook and the fp16 scale cost a little).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "matvec.h"
#include "quant.h"
#include "quant_lowbit.h"
#include "quant_ref.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double rng_gauss(void)
{
    double u1 = ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(rng_next() >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static void fill_gauss(float *x, int64_t n, double sigma)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(sigma * rng_gauss());
}

static void test_rotation(void **state)
{
    (void)state;
    float x[QK_K], y[QK_K];
    fill_gauss(x, QK_K, 1.0);
    memcpy(y, x, sizeof(x));
    quant_lowbit_rotate(y);
    double n0 = 0, n1 = 0;
    for (int i = 0; i < QK_K; i++) {
        n0 += (double)x[i] * x[i];
        n1 += (double)y[i] * y[i];
    }
    assert_true(fabs(n0 - n1) <= 1e-5 * n0); /* orthogonal */
    quant_lowbit_unrotate(y);
    for (int i = 0; i < QK_K; i++)
        assert_true(fabsf(x[i] - y[i]) <= 1e-5f);
    /* a spike spreads over every position with magnitude 1/16 */
    memset(y, 0, sizeof(y));
    y[37] = 1.0f;
    quant_lowbit_rotate(y);
    for (int i = 0; i < QK_K; i++)
        assert_true(fabsf(fabsf(y[i]) - 1.0f / 16.0f) <= 1e-7f);
}

/* relative squared error of quantize + dequantize on n Gaussian values */
static double roundtrip_err(int type, const float *x, int64_t n)
{
    const struct quant_traits *tr = quant_traits(type);
    uint8_t *q = malloc(quant_row_size(type, n));
    float *y = malloc((size_t)n * sizeof(float));
    assert_non_null(q);
    assert_non_null(y);
    if (type == QT_HQ2)
        quant_quantize_hq2(x, q, n);
    else
        quant_quantize_hq3(x, q, n);
    tr->to_float(q, y, n);
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        s += (double)x[i] * x[i];
    }
    free(q);
    free(y);
    return e / s;
}

static void test_roundtrip_gaussian(void **state)
{
    (void)state;
    const int64_t n = 256 * QK_K;
    float *x = malloc((size_t)n * sizeof(float));
    assert_non_null(x);
    fill_gauss(x, n, 0.02);
    double e2 = roundtrip_err(QT_HQ2, x, n), e3 = roundtrip_err(QT_HQ3, x, n);
    print_message("  relative squared error on Gaussian data: HQ2 %.4f, HQ3 %.4f\n", e2, e3);
    assert_true(e2 <= 0.125);
    assert_true(e3 <= 0.040);
    /* an outlier per group: the rotation spreads it, the error stays bounded */
    for (int64_t b = 0; b < n / QK_K; b++)
        x[b * QK_K + (b * 7) % QK_K] = 0.5f;
    e2 = roundtrip_err(QT_HQ2, x, n);
    assert_true(e2 <= 0.125);
    /* an all-zero group quantizes to zeros */
    memset(x, 0, QK_K * sizeof(float));
    block_hq2 z;
    quant_quantize_hq2(x, &z, QK_K);
    float y[QK_K];
    quant_to_float_hq2_ref(&z, y, QK_K);
    for (int i = 0; i < QK_K; i++)
        assert_true(y[i] == 0.0f);
    free(x);
}

/* weighted error (w - q)^T H (w - q) over rows, in the original domain */
static double weighted_err(int type, const float *w, const uint8_t *q, int64_t rows, const float *H)
{
    double tot = 0;
    float y[QK_K];
    size_t bs = quant_traits(type)->type_size;
    for (int64_t r = 0; r < rows; r++) {
        quant_traits(type)->to_float(q + (size_t)r * bs, y, QK_K);
        double e[QK_K];
        for (int i = 0; i < QK_K; i++)
            e[i] = (double)w[r * QK_K + i] - y[i];
        for (int i = 0; i < QK_K; i++) {
            double t = 0;
            for (int j = 0; j < QK_K; j++)
                t += (double)H[i * QK_K + j] * e[j];
            tot += e[i] * t;
        }
    }
    return tot;
}

/* GPTQ against a skewed input covariance beats the plain fit on that
 * covariance's error, and H = NULL is the plain fit exactly */
static void test_weighted_quantizer(void **state)
{
    (void)state;
    const int64_t rows = 32;
    float *w = malloc(rows * QK_K * sizeof(float)), *H = calloc(QK_K * QK_K, sizeof(float));
    double *work = malloc(QUANT_LOWBIT_WORK * sizeof(double));
    uint8_t *q0 = malloc(rows * sizeof(block_hq3)), *q1 = malloc(rows * sizeof(block_hq3));
    float (*X)[QK_K] = malloc(512 * sizeof(*X));
    assert_true(w && H && work && q0 && q1 && X);
    fill_gauss(w, rows * QK_K, 0.05);
    /* inputs: a few strong channels and correlated neighbours */
    for (int s = 0; s < 512; s++)
        for (int i = 0; i < QK_K; i++)
            X[s][i] = (float)(rng_gauss() * (i % 16 == 0 ? 8.0 : 1.0) + (i ? 0.5 * X[s][i - 1] : 0.0));
    for (int s = 0; s < 512; s++)
        for (int i = 0; i < QK_K; i++)
            for (int j = 0; j < QK_K; j++)
                H[i * QK_K + j] += X[s][i] * X[s][j] / 512.0f;
    for (int t = 0; t < 2; t++) {
        int type = t ? QT_HQ3 : QT_HQ2;
        size_t bs = quant_traits(type)->type_size;
        for (int64_t r = 0; r < rows; r++) {
            if (type == QT_HQ2)
                quant_quantize_hq2(w + r * QK_K, q0 + r * bs, QK_K);
            else
                quant_quantize_hq3(w + r * QK_K, q0 + r * bs, QK_K);
        }
        quant_quantize_hq_group(type, w, QK_K, q1, bs, rows, NULL, work);
        assert_memory_equal(q0, q1, rows * bs);
        quant_quantize_hq_group(type, w, QK_K, q1, bs, rows, H, work);
        double e0 = weighted_err(type, w, q0, rows, H), e1 = weighted_err(type, w, q1, rows, H);
        print_message("  %s weighted error: plain %.4g, GPTQ %.4g (%.2fx)\n", quant_traits(type)->name, e0, e1,
                      e0 / e1);
        assert_true(e1 < 0.9 * e0);
    }
    free(w);
    free(H);
    free(work);
    free(q0);
    free(q1);
    free(X);
}

/* s against the float64 dot of the dequantized (rotated) operands */
static void check_dot(int type, const char *isa, const uint8_t *w, const uint8_t *a, int64_t n, float s)
{
    double e = 0, l1 = 0;
    const block_q8_K *y = (const block_q8_K *)a;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const uint8_t *blk = w + (size_t)b * quant_traits(type)->type_size;
        qhalf dh;
        memcpy(&dh, blk, sizeof(dh));
        const double d = quant_fp16_to_fp32(dh) / 127.0 * y[b].d;
        for (int j = 0; j < QK_K; j++) {
            const uint8_t *qs = blk + 2;
            int idx = (qs[j & 63] >> (2 * (j >> 6))) & 3;
            if (type == QT_HQ3)
                idx |= ((qs[64 + (j >> 3)] >> (j & 7)) & 1) << 2;
            const int lv = type == QT_HQ2 ? quant_hq2_levels[idx] : quant_hq3_levels[idx];
            e += d * lv * y[b].qs[j];
            l1 += fabs(d * lv * y[b].qs[j]);
        }
    }
    const double tol = (strcmp(isa, "ref") == 0 ? 1e-5 : 5e-5) * l1 + 1e-30;
    if (fabs(s - e) > tol)
        fail_msg("%s %s n=%lld: dot %.9g, expected %.9g (tolerance %.3g)", quant_traits(type)->name, isa,
                 (long long)n, s, e, tol);
}

static void dot_isa(const char *isa)
{
    if (quant_select_isa(isa) != 0) {
        print_message("  %s: not supported by this CPU, skipped\n", isa);
        return;
    }
    static const int64_t sizes[] = { 256, 768, 2048 };
    enum { NA = 11 };
    for (int t = 0; t < 2; t++) {
        const int type = t ? QT_HQ3 : QT_HQ2;
        const struct quant_traits *tr = quant_traits(type);
        assert_int_equal(tr->vec_dot_type, QT_Q8_KH);
        assert_non_null(tr->vec_dot);
        for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
            const int64_t n = sizes[si];
            const size_t wsz = quant_row_size(type, n), asz = quant_row_size(QT_Q8_KH, n);
            float *x = malloc((size_t)n * sizeof(float));
            uint8_t *w = malloc(wsz), *a = malloc(asz * NA);
            assert_true(x && w && a);
            fill_gauss(x, n, 0.03);
            if (type == QT_HQ2)
                quant_quantize_hq2(x, w, n);
            else
                quant_quantize_hq3(x, w, n);
            for (int k = 0; k < NA; k++) {
                fill_gauss(x, n, k == 3 ? 100.0 : 1.0);
                quant_traits(QT_Q8_KH)->from_float(x, a + (size_t)k * asz, n);
            }
            float s[NA], sm[NA];
            for (int k = 0; k < NA; k++) {
                tr->vec_dot(n, &s[k], w, a + (size_t)k * asz);
                check_dot(type, isa, w, a + (size_t)k * asz, n, s[k]);
            }
            if (tr->vec_dot_multi) {
                tr->vec_dot_multi(n, sm, 1, w, a, asz, NA);
                assert_memory_equal(s, sm, sizeof(s));
            }
            free(x);
            free(w);
            free(a);
        }
    }
    quant_init();
}

/* the ISA's Q8_KH quantizer writes the reference's bytes */
static void test_act_simd(void **state)
{
    (void)state;
    static const char *const isas[] = { "avx2", "avx512" };
    const int64_t n = 2048;
    float *x = malloc(n * sizeof(float));
    uint8_t *a = malloc(quant_row_size(QT_Q8_KH, n)), *b = malloc(quant_row_size(QT_Q8_KH, n));
    assert_true(x && a && b);
    for (size_t i = 0; i < 2; i++) {
        if (quant_select_isa(isas[i]) != 0)
            continue;
        const struct quant_traits *at = quant_traits(QT_Q8_KH);
        assert_non_null(at->from_float_simd);
        for (int rep = 0; rep < 20; rep++) {
            fill_gauss(x, n, rep % 5 == 0 ? 1e-3 : rep % 5 == 1 ? 1e3 : 1.0);
            if (rep == 7)
                x[100] = -0.0f;
            at->from_float(x, a, n);
            at->from_float_simd(x, b, n);
            assert_memory_equal(a, b, quant_row_size(QT_Q8_KH, n));
        }
    }
    quant_init();
    free(x);
    free(a);
    free(b);
}

static void test_dot_ref(void **state)
{
    (void)state;
    dot_isa("ref");
}

static void test_dot_avx2(void **state)
{
    (void)state;
    dot_isa("avx2");
}

static void test_dot_avx512(void **state)
{
    (void)state;
    dot_isa("avx512");
}

/* End to end through matvec (two-pass activations, the rotation inside the
 * activation type): W x with W quantized from a Gaussian matrix lands within
 * the quantization error of the float product, in every ISA alike. */
static void test_matvec(void **state)
{
    (void)state;
    const int64_t rows = 64, n = 512;
    float *W = malloc(rows * n * sizeof(float)), *Wd = malloc(rows * n * sizeof(float)), x[512], y[64];
    uint8_t *q = malloc(quant_row_size(QT_HQ3, n) * rows);
    uint8_t *xq = malloc(matvec_act_size(QT_HQ3, n, MATVEC_ACT16));
    assert_true(W && Wd && q && xq);
    fill_gauss(W, rows * n, 0.05);
    fill_gauss(x, n, 1.0);
    for (int64_t r = 0; r < rows; r++)
        quant_quantize_hq3(W + r * n, q + (size_t)r * quant_row_size(QT_HQ3, n), n);
    quant_traits(QT_HQ3)->to_float(q, Wd, rows * n);
    struct pool *p = pool_init(1);
    assert_non_null(p);
    static const char *const isas[] = { "ref", "avx2", "avx512" };
    for (size_t i = 0; i < 3; i++) {
        if (quant_select_isa(isas[i]) != 0)
            continue;
        matvec_quantize_act(QT_HQ3, x, xq, n, MATVEC_ACT16);
        matvec(p, y, q, QT_HQ3, rows, n, xq, MATVEC_ACT16);
        for (int64_t r = 0; r < rows; r++) {
            double e = 0, l1 = 0;
            for (int64_t j = 0; j < n; j++) {
                e += (double)Wd[r * n + j] * x[j];
                l1 += fabs((double)Wd[r * n + j] * x[j]);
            }
            /* 16-bit activations: the error is the activations' (~1e-4 relative), not the weights' */
            if (fabs(y[r] - e) > 1e-3 * l1)
                fail_msg("%s row %lld: %.7g vs %.7g", isas[i], (long long)r, y[r], e);
        }
    }
    quant_init();
    pool_free(p);
    free(W);
    free(Wd);
    free(q);
    free(xq);
}

int main(void)
{
    quant_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rotation),          cmocka_unit_test(test_roundtrip_gaussian),
        cmocka_unit_test(test_weighted_quantizer), cmocka_unit_test(test_dot_ref),
        cmocka_unit_test(test_dot_avx2),          cmocka_unit_test(test_dot_avx512),
        cmocka_unit_test(test_matvec),            cmocka_unit_test(test_act_simd),
    };
    return cmocka_run_group_tests_name("quant_lowbit", tests, NULL, NULL);
}
