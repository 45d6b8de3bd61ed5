/*
 * test_cli.c - the `moestream` command as a user runs it: logits written by
 * the CLI meet the fixture tolerance, tokenize --ids reproduces llama.cpp's
 * ids, run is deterministic at temperature 0, chat answers on stdin,
 * perplexity prints a finite figure, and bad input (missing split, corrupt
 * pinned file, unknown flags) gives a one-line error and a nonzero exit.
 * Needs MOESTREAM_BIN (set by `make test`) and the fixtures.
 */
#include <math.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

static char bin[4096], fx[4096], dir[4096];
static char out[1 << 16];

/* Runs a shell command; captures stdout+stderr in out; returns exit code. */
static int sh(const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int setup(void **state)
{
    (void)state;
    const char *b = getenv("MOESTREAM_BIN"), *f = getenv("MOESTREAM_FIXTURES");
    snprintf(bin, sizeof(bin), "%s", b ? b : "build/bin");
    snprintf(fx, sizeof(fx), "%s", f ? f : "../shared/fixtures");
    snprintf(dir, sizeof(dir), "build/test-cli");
    return 0;
}

static bool ready(void)
{
    struct stat st;
    char p[8300];
    snprintf(p, sizeof(p), "%s/moestream", bin);
    if (stat(p, &st) != 0) {
        printf("  SKIP: %s not built (run through `make test`)\n", p);
        return false;
    }
    snprintf(p, sizeof(p), "%s/models/q3moe-a-Q8_0.gguf", fx);
    if (stat(p, &st) != 0) {
        printf("  SKIP: fixtures not found (set MOESTREAM_FIXTURES or put ../shared/fixtures beside the repo)\n");
        return false;
    }
    /* split once per run of the suite */
    static bool split_done;
    if (!split_done) {
        int rc = sh("mkdir -p %s && %s/moestream-split -q --force %s/models/q3moe-a-Q8_0.gguf -o %s/q8 2>&1 && "
                    "%s/moestream-split -q --force %s/tinymoe/tinymoe-Q8_0.gguf -o %s/tiny 2>&1",
                    dir, bin, fx, dir, bin, fx, dir);
        if (rc != 0)
            fail_msg("split failed: %s", out);
        split_done = true;
    }
    return true;
}

static void *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *b = malloc(*len + 1);
    if (fread(b, 1, *len, f) != *len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

static void test_help_and_usage_errors(void **state)
{
    (void)state;
    if (!ready())
        skip();
    assert_int_equal(sh("%s/moestream --help", bin), 0);
    assert_non_null(strstr(out, "perplexity"));
    const char *cmds[] = { "run", "chat", "logits", "perplexity", "tokenize" };
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sh("%s/moestream %s --help", bin, cmds[i]), 0);
        assert_non_null(strstr(out, "usage: moestream"));
    }
    assert_int_equal(sh("%s/moestream frobnicate 2>&1", bin), 2);
    assert_non_null(strstr(out, "unknown command"));
    assert_int_equal(sh("%s/moestream run -m %s/q8 -p hi --bogus 2>&1", bin, dir), 2);
    assert_non_null(strstr(out, "unknown option '--bogus'"));
    assert_int_equal(sh("%s/moestream run -m %s/q8 -p hi -n abc 2>&1", bin, dir), 2);
    assert_non_null(strstr(out, "expected an integer"));
    assert_int_equal(sh("%s/moestream run -m %s/q8 -p hi --ram-budget lots 2>&1", bin, dir), 2);
    assert_non_null(strstr(out, "expected a size"));
}

static void test_missing_and_corrupt_split(void **state)
{
    (void)state;
    if (!ready())
        skip();
    assert_int_equal(sh("%s/moestream run -m %s/does-not-exist -p hi 2>&1", bin, dir), 1);
    assert_non_null(strstr(out, "moestream-split"));
    int lines = 0;
    for (const char *c = out; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, 1); /* one line, not a cascade */
    /* a regular GGUF given where a split directory is expected */
    assert_int_equal(sh("%s/moestream run -m %s/models/q3moe-a-Q8_0.gguf -p hi 2>&1", bin, fx), 1);
    assert_non_null(strstr(out, "moestream-split"));
    /* flip one byte of pinned.bin: the pinned checksum catches it */
    assert_int_equal(sh("rm -rf %s/bad && cp -r %s/q8 %s/bad && printf '\\377' | dd of=%s/bad/pinned.bin bs=1 "
                        "seek=5000 conv=notrunc 2>/dev/null",
                        dir, dir, dir, dir),
                     0);
    assert_int_equal(sh("%s/moestream run -m %s/bad -p hi -n 1 2>&1", bin, dir), 1);
    printf("  corrupt pinned.bin: %s", out);
    assert_non_null(strstr(out, "pinned.bin"));
    /* a tiny budget is refused with the size needed */
    assert_int_equal(sh("%s/moestream run -m %s/q8 -p hi -n 1 --ram-budget 1M 2>&1", bin, dir), 1);
    assert_non_null(strstr(out, "need at least --ram-budget"));
}

/* The CLI's logits for the fixture tokens meet the fixture tolerance. */
static void test_logits_cli(void **state)
{
    (void)state;
    if (!ready())
        skip();
    int rc = sh("%s/moestream logits -m %s/q8 --tokens %s/models/q3moe-a-Q8_0.tokens.i32 --out %s/q8.f32 2>&1", bin,
                dir, fx, dir);
    if (rc != 0)
        fail_msg("logits failed: %s", out);
    char p[8300];
    size_t la, lb;
    snprintf(p, sizeof(p), "%s/q8.f32", dir);
    float *ours = slurp(p, &la);
    snprintf(p, sizeof(p), "%s/models/q3moe-a-Q8_0.logits-exact.f32", fx);
    float *ref = slurp(p, &lb);
    assert_non_null(ours);
    assert_non_null(ref);
    assert_int_equal(la, lb);
    int nv = 2051, n = (int)(la / 4 / nv), same = 0;
    double kl = 0;
    for (int t = 0; t < n; t++) {
        const float *a = ref + (size_t)t * nv, *b = ours + (size_t)t * nv;
        double ma = a[0], mb = b[0], sa = 0, sb = 0;
        int ia = 0, ib = 0;
        for (int i = 1; i < nv; i++) {
            if (a[i] > ma) ma = a[i], ia = i;
            if (b[i] > mb) mb = b[i], ib = i;
        }
        for (int i = 0; i < nv; i++)
            sa += exp(a[i] - ma), sb += exp(b[i] - mb);
        for (int i = 0; i < nv; i++) {
            double pa = a[i] - ma - log(sa), pb = b[i] - mb - log(sb);
            kl += exp(pa) * (pa - pb);
        }
        same += ia == ib;
    }
    printf("  CLI logits Q8_0: KL mean %.3g, top-1 %.3f over %d positions\n", kl / n, (double)same / n, n);
    assert_true(kl / n < 2.9e-3); /* fixture tolerance: 2 x llama.cpp's 0.00143 */
    free(ours);
    free(ref);
}

static void test_tokenize_ids(void **state)
{
    (void)state;
    if (!ready())
        skip();
    /* from the GGUF and from the split: both must give llama.cpp's ids */
    const char *srcs[2] = { "gguf", "split" };
    for (int i = 0; i < 2; i++) {
        int rc = i == 0 ? sh("%s/moestream tokenize -m %s/models/q3moe-a-Q8_0.gguf --ids < %s/models/prompt.txt", bin,
                             fx, fx)
                        : sh("%s/moestream tokenize -m %s/q8 --ids < %s/models/prompt.txt", bin, dir, fx);
        assert_int_equal(rc, 0);
        char p[8300];
        size_t len;
        snprintf(p, sizeof(p), "%s/models/q3moe-a-Q8_0.tokens.i32", fx);
        int32_t *ids = slurp(p, &len);
        char want[1 << 14];
        size_t w = 0;
        for (size_t k = 0; k < len / 4; k++)
            w += (size_t)snprintf(want + w, sizeof(want) - w, "%s%d", k ? " " : "", ids[k]);
        want[w++] = '\n';
        want[w] = 0;
        printf("  tokenize --ids (%s): %zu ids %s\n", srcs[i], len / 4, strcmp(out, want) == 0 ? "match" : "DIFFER");
        assert_string_equal(out, want);
        free(ids);
    }
}

static void test_run_deterministic_and_chat(void **state)
{
    (void)state;
    if (!ready())
        skip();
    static char first[1 << 16];
    assert_int_equal(sh("%s/moestream run -m %s/tiny -p 'def fibonacci(n):' -n 24 --temp 0 2>/dev/null", bin, dir), 0);
    snprintf(first, sizeof(first), "%s", out);
    assert_true(strlen(first) > 10);
    printf("  run (tinymoe, greedy): %.60s...\n", first);
    /* streaming with a tiny cache gives the same text */
    assert_int_equal(sh("%s/moestream run -m %s/tiny -p 'def fibonacci(n):' -n 24 --temp 0 --ram-budget 140M "
                        "--io pread 2>/dev/null",
                        bin, dir),
                     0);
    assert_string_equal(out, first);
    /* seeded sampling repeats */
    assert_int_equal(sh("%s/moestream run -m %s/tiny -p 'import os' -n 16 --seed 3 2>/dev/null", bin, dir), 0);
    snprintf(first, sizeof(first), "%s", out);
    assert_int_equal(sh("%s/moestream run -m %s/tiny -p 'import os' -n 16 --seed 3 2>/dev/null", bin, dir), 0);
    assert_string_equal(out, first);
    /* chat: two turns on stdin, then end of input */
    assert_int_equal(sh("printf 'hello\\nagain\\n' | %s/moestream chat -m %s/q8 -n 6 --temp 0 --system 'be brief' "
                        "2>&1 >/dev/null",
                        bin, dir),
                     0);
    /* tinymoe has the ChatML tokens but no template: ChatML, with a warning */
    assert_int_equal(sh("printf 'hi\\n' | %s/moestream chat -m %s/tiny -n 4 2>&1 >/dev/null", bin, dir), 0);
    assert_non_null(strstr(out, "no chat template; using ChatML"));
}

static void test_perplexity_cli(void **state)
{
    (void)state;
    if (!ready())
        skip();
    int rc = sh("%s/moestream perplexity -m %s/tiny -f %s/tinymoe/val-a-512k.txt --chunks 3 2>/dev/null", bin, dir,
                fx);
    assert_int_equal(rc, 0);
    double ppl = 0;
    const char *p = strstr(out, "perplexity: ");
    assert_non_null(p);
    sscanf(p, "perplexity: %lf", &ppl);
    printf("  perplexity (3 chunks): %.4f\n", ppl);
    assert_true(isfinite(ppl) && ppl > 1 && ppl < 50);
    /* a KL base: saved, then compared against itself is zero */
    char kl[8300];
    snprintf(kl, sizeof(kl), "%s/kl.bin", dir);
    remove(kl);
    assert_int_equal(sh("%s/moestream perplexity -m %s/tiny -f %s/tinymoe/val-a-512k.txt --chunks 1 --kl-base %s "
                        "2>/dev/null",
                        bin, dir, fx, kl),
                     0);
    assert_int_equal(sh("%s/moestream perplexity -m %s/tiny -f %s/tinymoe/val-a-512k.txt --chunks 1 --kl-base %s "
                        "--io buffered --ram-budget 140M 2>/dev/null",
                        bin, dir, fx, kl),
                     0);
    assert_non_null(strstr(out, "kl-divergence: mean 0.000000, top-1 agreement 1.0000"));
}

/* batch: every prompt's output equals `run` alone (greedy and seeded
 * sampling), with 3 sequences sharing steps through a small cache. */
static void test_batch_matches_run(void **state)
{
    (void)state;
    if (!ready())
        skip();
    static const char *prompts[] = { "def fibonacci(n):", "import os", "class Stack:", "for i in range(10):",
                                     "    return x" };
    enum { NP = sizeof(prompts) / sizeof(prompts[0]) };
    char pf[8300];
    snprintf(pf, sizeof(pf), "%s/prompts.txt", dir);
    FILE *f = fopen(pf, "w");
    assert_non_null(f);
    for (int i = 0; i < NP; i++)
        fprintf(f, "%s\n%s", prompts[i], i == 1 ? "\n" : ""); /* an empty line is skipped */
    fclose(f);
    static char want[1 << 16], got[1 << 16];
    const char *modes[] = { "--temp 0", "--temp 0.8 -s 11" };
    for (int m = 0; m < 2; m++) {
        want[0] = 0;
        for (int i = 0; i < NP; i++) {
            assert_int_equal(sh("%s/moestream run -m %s/tiny -p '%s' -n 20 %s 2>/dev/null", bin, dir, prompts[i],
                                modes[m]),
                             0);
            strncat(want, out, sizeof(want) - strlen(want) - 1);
        }
        assert_int_equal(sh("%s/moestream batch -m %s/tiny -f %s -n 20 %s --parallel 3 --ram-budget 170M "
                            "--io pread 2>/dev/null",
                            bin, dir, pf, modes[m]),
                         0);
        snprintf(got, sizeof(got), "%s", out);
        printf("  batch (%s, 5 prompts, 3 in parallel): %zu bytes, %s run\n", modes[m], strlen(got),
               strcmp(got, want) == 0 ? "identical to" : "DIFFERENT from");
        assert_string_equal(got, want);
    }
    /* no prompts: a clear error */
    assert_int_equal(sh("%s/moestream batch -m %s/tiny 2>&1", bin, dir), 2);
    assert_non_null(strstr(out, "pass -f PROMPTS.txt"));
}

/* --prefetch P, --coact FILE (saved, reloaded, a corrupt one refused),
 * --stats / --stats-json with io_busy_frac and prefetch counts per token,
 * --pin-profile from a recorded trace; the text never changes. */
static void test_prefetch_cli(void **state)
{
    (void)state;
    if (!ready())
        skip();
    static char first[1 << 16];
    const char *run = "run -m build/test-cli/tiny -p 'def fibonacci(n):' -n 24 --temp 0 --ram-budget 140M";
    assert_int_equal(sh("%s/moestream %s --trace-out %s/t.trace 2>/dev/null", bin, run, dir), 0);
    snprintf(first, sizeof(first), "%s", out);
    assert_int_equal(sh("rm -f %s/c.coact; %s/moestream %s --prefetch coact --coact %s/c.coact 2>/dev/null", dir,
                        bin, run, dir), 0);
    assert_string_equal(out, first);
    assert_int_equal(sh("%s/moestream %s --prefetch both --coact %s/c.coact --stats --stats-json "
                        "--pin-profile %s/t.trace 2>&1 >/dev/null", bin, run, dir, dir), 0);
    assert_non_null(strstr(out, "\"io_busy_frac\":"));
    assert_non_null(strstr(out, "\"prefetch_issued\":"));
    assert_non_null(strstr(out, "\"type\":\"token\""));
    assert_non_null(strstr(out, "prefetches issued"));
    assert_non_null(strstr(out, "io_busy_frac"));
    assert_int_equal(sh("%s/moestream %s --prefetch both --coact %s/c.coact 2>/dev/null", bin, run, dir), 0);
    assert_string_equal(out, first);
    /* a damaged statistics file is refused, naming it */
    assert_int_equal(sh("printf 'X' | dd of=%s/c.coact bs=1 seek=100 conv=notrunc 2>/dev/null; "
                        "%s/moestream %s --prefetch coact --coact %s/c.coact 2>&1 >/dev/null", dir, bin, run, dir), 1);
    assert_non_null(strstr(out, "c.coact: corrupt"));
    assert_int_equal(sh("%s/moestream %s --prefetch sometimes 2>&1", bin, run), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_usage_errors),
        cmocka_unit_test(test_missing_and_corrupt_split),
        cmocka_unit_test(test_logits_cli),
        cmocka_unit_test(test_tokenize_ids),
        cmocka_unit_test(test_run_deterministic_and_chat),
        cmocka_unit_test(test_perplexity_cli),
        cmocka_unit_test(test_batch_matches_run),
        cmocka_unit_test(test_prefetch_cli),
    };
    return cmocka_run_group_tests_name("cli", tests, setup, NULL);
}
