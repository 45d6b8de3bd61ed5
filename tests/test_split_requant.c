/*
 * test_split_requant.c - moestream-split --requant (split-tool/split_requant.h):
 * the policy on its own (which parts change type, the q2 budget), and end to
 * end on tinymoe: split with --requant q2 / q3, verify, info, and logits of
 * the requantized model against the source's.
 *
 * Tolerances (tinymoe, ref64 tokens, logits of the Q8_0 GGUF as reference;
 * measured KL 0.126 / 0.028 and top-1 0.97 / 0.95 for q2 / q3 with 16-bit
 * activations): every logit finite, mean KL(source || requantized) below
 * 0.3 (q2) and 0.08 (q3), top-1 agreement at least 0.85.
 * The self-calibrated split (--calib-tokens 256) is held to the same bounds.
 * Needs $MOESTREAM_FIXTURES/tinymoe (skipped with a message when absent)
 * and the binaries in $MOESTREAM_BIN.
 */
#include <math.h>
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

#include "logit_kl.h"
#include "quant.h"
#include "split_requant.h"

static char bin[2048], fx[2048];
static const char *dir = "build/test-requant";

static int setup(void **state)
{
    (void)state;
    const char *b = getenv("MOESTREAM_BIN"), *f = getenv("MOESTREAM_FIXTURES");
    snprintf(bin, sizeof(bin), "%s", b ? b : "build/bin");
    snprintf(fx, sizeof(fx), "%s", f ? f : "../shared/fixtures");
    quant_init();
    return 0;
}

/* which parts change type; rows that are not a multiple of 256 keep theirs */
static void test_policy(void **state)
{
    (void)state;
    struct split_requant rq;
    char err[256];
    assert_int_equal(split_requant_init(&rq, "q5", err, sizeof(err)), -22);
    assert_non_null(strstr(err, "q5"));
    assert_int_equal(split_requant_init(&rq, "q3", err, sizeof(err)), 0);
    int64_t ne[4] = { 256, 512, 1, 1 }, odd[4] = { 2880, 2880, 1, 1 };
    int t = QT_Q8_0;
    assert_int_equal(rq.tf.plan_part(rq.tf.ctx, 0, "ffn_up_exps.weight", QT_Q8_0, 2, ne, &t, err, sizeof(err)), 0);
    assert_int_equal(t, QT_HQ3);
    t = QT_Q8_0;
    assert_int_equal(rq.tf.plan_part(rq.tf.ctx, 0, "ffn_down_exps.weight", QT_Q8_0, 2, odd, &t, err, sizeof(err)), 0);
    assert_int_equal(t, QT_Q8_0);
    t = QT_F32;
    assert_int_equal(rq.tf.plan_part(rq.tf.ctx, 0, "ffn_down_exps.bias", QT_F32, 1, ne, &t, err, sizeof(err)), 0);
    assert_int_equal(t, QT_F32);
    /* a q2 budget needs q2 */
    assert_true(split_requant_set_budget(&rq, 0, 5, 2.5, err, sizeof(err)) < 0);
    split_requant_free(&rq);

    /* q2 at 2.5 bits per weight over 6 layers: 7 of 18 parts fit at HQ3 (2.4514 bpw) */
    assert_int_equal(split_requant_init(&rq, "q2", err, sizeof(err)), 0);
    assert_true(split_requant_set_budget(&rq, 0, 5, 3.5, err, sizeof(err)) < 0);
    assert_int_equal(split_requant_set_budget(&rq, 0, 5, 2.5, err, sizeof(err)), 0);
    assert_true(fabs(rq.bpw - (2.0625 + 7.0 / 18.0)) < 1e-9);
    int n3 = 0;
    for (int L = 0; L < 6; L++)
        for (int p = 0; p < 3; p++) {
            t = QT_Q8_0;
            const char *nm = p == 0 ? "ffn_gate_exps.weight" : p == 1 ? "ffn_up_exps.weight" : "ffn_down_exps.weight";
            assert_int_equal(rq.tf.plan_part(rq.tf.ctx, L, nm, QT_Q8_0, 2, ne, &t, err, sizeof(err)), 0);
            n3 += t == QT_HQ3;
            if (L == 0)
                assert_int_equal(t, QT_HQ3); /* the first layer whole */
        }
    assert_int_equal(n3, 7);
    assert_non_null(strstr(rq.note, "2.4514 bits per weight"));
    split_requant_free(&rq);
}

static bool have_fixture(const char *name)
{
    char p[4200];
    struct stat st;
    snprintf(p, sizeof(p), "%s/tinymoe/%s", fx, name);
    return stat(p, &st) == 0;
}

static float *read_f32(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *x = malloc((size_t)sz);
    assert_non_null(x);
    assert_int_equal(fread(x, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz / sizeof(float);
    return x;
}

/* mean KL(p || q) over positions and top-1 agreement of two logit files */
static void compare_logits(const char *a, const char *b, int n_vocab, double *kl, double *top1)
{
    size_t na, nb;
    float *x = read_f32(a, &na), *y = read_f32(b, &nb);
    assert_int_equal(na, nb);
    size_t npos = na / (size_t)n_vocab;
    for (size_t i = 0; i < nb; i++)
        assert_true(isfinite(y[i]));
    logit_kl(x, y, (int)npos, n_vocab, kl, top1);
    free(x);
    free(y);
}

/* mode "q2" / "q3"; calib: the --calib-tokens value */
static void requant_end_to_end(const char *mode, int calib, double max_kl, double min_top1)
{
    if (!have_fixture("tinymoe-Q8_0.gguf") || !have_fixture("ref64.tokens.i32")) {
        print_message("  skipped: %s/tinymoe fixtures absent\n", fx);
        skip();
    }
    const char *src = "tinymoe/tinymoe-Q8_0.gguf", *tok = "tinymoe/ref64.tokens.i32";
    assert_int_equal(sh("mkdir -p %s", dir), 0);
    if (sh("%s/moestream-split %s/%s -o %s/%s --requant %s --calib-tokens %d -q --force 2>&1", bin, fx, src, dir,
           mode, mode, calib) != 0)
        fail_msg("split --requant %s: %s", mode, out);
    assert_int_equal(sh("%s/moestream-split verify %s/%s 2>&1", bin, dir, mode), 0);
    assert_non_null(strstr(out, "re-quantized"));
    if (calib)
        assert_non_null(strstr(out, "GPTQ self-calibrated on"));
    else
        assert_non_null(strstr(out, "no calibration"));
    assert_int_equal(sh("%s/moestream-split info %s/%s 2>&1", bin, dir, mode), 0);
    assert_non_null(strstr(out, mode[1] == '2' ? "HQ2" : "HQ3"));
    assert_non_null(strstr(out, "requant"));
    if (sh("%s/moestream logits -m %s/%s --tokens %s/%s --out %s/src.f32 2>&1", bin, fx, src, fx, tok, dir) != 0 ||
        sh("%s/moestream logits -m %s/%s --tokens %s/%s --out %s/%s.f32 2>&1", bin, dir, mode, fx, tok, dir, mode) != 0)
        fail_msg("logits: %s", out);
    char a[512], b[512];
    snprintf(a, sizeof(a), "%s/src.f32", dir);
    snprintf(b, sizeof(b), "%s/%s.f32", dir, mode);
    double kl, top1;
    compare_logits(a, b, 4096, &kl, &top1);
    print_message("  %s: KL %.4f, top-1 %.3f against the source\n", mode, kl, top1);
    assert_true(kl < max_kl);
    assert_true(top1 >= min_top1);
}

static void test_q2(void **state)
{
    (void)state;
    requant_end_to_end("q2", 0, 0.3, 0.85);
}

static void test_q3(void **state)
{
    (void)state;
    requant_end_to_end("q3", 0, 0.08, 0.85);
}

/* the self-calibrated path end to end (few tokens, to stay quick) */
static void test_q2_calib(void **state)
{
    (void)state;
    requant_end_to_end("q2", 256, 0.3, 0.85);
}

static void test_bad_options(void **state)
{
    (void)state;
    assert_int_equal(sh("%s/moestream-split x.gguf -o %s/bad --requant q7 2>&1", bin, dir), 2);
    assert_non_null(strstr(out, "q7"));
    assert_int_equal(sh("%s/moestream-split x.gguf -o %s/bad --calib-tokens 10 2>&1", bin, dir), 2);
    assert_non_null(strstr(out, "need --requant"));
    assert_int_equal(sh("%s/moestream-split x.gguf -o %s/bad --requant q2 --requant-bpw abc 2>&1", bin, dir), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_q2),
        cmocka_unit_test(test_q3),
        cmocka_unit_test(test_q2_calib),
    };
    return cmocka_run_group_tests_name("split_requant", tests, setup, NULL);
}
