/*
 * test_rope_yarn.c - scaled rotary embeddings (src/rope_yarn.c) against the
 * YaRN definition: unscaled rope without scaling; with YaRN, dimensions
 * rotating faster than beta_fast turns over the original context keep their
 * angle (extrapolation), those slower than beta_slow are interpolated by the
 * factor, the ramp between is linear; cos/sin keep unit length (llama.cpp
 * cancels its mscale for DeepSeek) and the softmax scale carries
 * (1 + 0.1 * mscale_all_dim * ln factor)^2 / sqrt(dk).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rope_yarn.h"

static void test_unscaled(void **state)
{
    (void)state;
    struct rope_yarn r;
    rope_yarn_init(&r, 64, 10000.0f, ROPE_SCALING_NONE, 40.0f, 4096, 32.0f, 1.0f, 0.1f);
    float cs[32], sn[32];
    rope_yarn_table(&r, cs, sn, 1234);
    for (int i = 0; i < 32; i++) {
        double th = 1234.0 * pow(10000.0, -2.0 * i / 64);
        assert_true(fabs(cs[i] - cos(th)) < 2e-3 && fabs(sn[i] - sin(th)) < 2e-3);
    }
    assert_true(fabsf(rope_yarn_kq_scale(&r, 192) - 1.0f / sqrtf(192.0f)) < 1e-7f);
}

static void test_deepseek_v3_yarn(void **state)
{
    (void)state;
    struct rope_yarn r;
    /* DeepSeek-V3: 64 rope dims, base 10000, factor 40 over 4096, mscale_all_dim 1 (GGUF 0.1) */
    rope_yarn_init(&r, 64, 10000.0f, ROPE_SCALING_YARN, 40.0f, 4096, 32.0f, 1.0f, 0.1f);
    /* correction dims: n_rot * ln(n_ctx / (beta * 2 pi)) / (2 ln base), floor / ceil */
    double lo = floor(64 * log(4096 / (32 * 2 * M_PI)) / (2 * log(10000.0)));
    double hi = ceil(64 * log(4096 / (1 * 2 * M_PI)) / (2 * log(10000.0)));
    assert_true(r.corr[0] == (float)lo && r.corr[1] == (float)hi);
    int pos = 3000;
    float cs[32], sn[32];
    rope_yarn_table(&r, cs, sn, pos);
    for (int i = 0; i < 32; i++) {
        double th = pos * pow(10000.0, -2.0 * i / 64), ramp = 1.0 - fmin(1.0, fmax(0.0, (i - lo) / (hi - lo)));
        double want = th / 40.0 * (1.0 - ramp) + th * ramp;
        /* unit length: the rope's own mscale is cancelled */
        assert_true(fabs(cs[i] * cs[i] + sn[i] * sn[i] - 1.0) < 1e-4);
        assert_true(fabs(atan2(sn[i], cs[i]) - atan2(sin(want), cos(want))) < 5e-3);
        if (i <= lo)
            assert_true(fabs(cos(th) - cs[i]) < 5e-3);       /* extrapolated */
        if (i >= hi)
            assert_true(fabs(cos(th / 40.0) - cs[i]) < 1e-4); /* interpolated */
    }
    double m = 1.0 + 0.1 * log(40.0);
    assert_true(fabs(rope_yarn_kq_scale(&r, 192) - m * m / sqrt(192.0)) < 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unscaled),
        cmocka_unit_test(test_deepseek_v3_yarn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
