/*
 * test_bench.c - the bench suite's plumbing: the routing trace format
 * (src/trace.c) round-trips and rejects malformed files with the line and
 * the reason; a trace recorded by `moestream run` and by `moestream bench`
 * (several prompt steps, an evicting cache) replays through `moestream
 * iobench` reading exactly the bytes the run read; `iobench --device` runs
 * on a file and refuses one smaller than a read. Uses the binaries in
 * $MOESTREAM_BIN (default build/bin) and the tinymoe fixture, split into
 * build/test-bench/; skips (saying why) when the fixtures are absent. No
 * timing is asserted.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "split.h"
#include "trace.h"

#define WORK "build/test-bench"

static char fixtures[4096];
static char bin[4096];

static bool have_fixtures(void)
{
    const char *env = getenv("MOESTREAM_FIXTURES");
    snprintf(fixtures, sizeof(fixtures), "%s", env ? env : "../shared/fixtures");
    char p[4200];
    struct stat st;
    snprintf(p, sizeof(p), "%s/tinymoe/tinymoe-Q8_0.gguf", fixtures);
    return stat(p, &st) == 0;
}

static int setup(void **state)
{
    (void)state;
    const char *b = getenv("MOESTREAM_BIN");
    snprintf(bin, sizeof(bin), "%s", b ? b : "build/bin");
    mkdir("build", 0755);
    mkdir(WORK, 0755);
    return 0;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* The number after "key": in text (the first occurrence). */
static double json_num(const char *text, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(text, pat);
    if (!p)
        fail_msg("no \"%s\" in: %.300s", key, text);
    return strtod(p + strlen(pat), NULL);
}

/* Runs a shell command; returns its exit status. */
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return st == -1 ? -1 : WEXITSTATUS(st);
}

/* ---- the format ---- */

static void test_trace_roundtrip(void **state)
{
    (void)state;
    char err[512];
    struct trace_writer *w;
    struct trace_header h = { 2, 8, 2, 64, 4, 1, 123456789, 4096000, false };
    const char *path = WORK "/roundtrip.jsonl";
    assert_int_equal(trace_writer_open(&w, path, &h, err, sizeof(err)), 0);
    /* a 10-token prompt in chunks of 4 (steps 0, 1, 2), then two decode steps */
    int32_t e[2];
    float wt[2] = { 0.75f, 0.25f };
    trace_writer_begin_eval(w, 0, 10);
    for (int c0 = 0; c0 < 10; c0 += 4)
        for (int layer = 0; layer < 2; layer++)
            for (int p = c0; p < c0 + 4 && p < 10; p++) {
                e[0] = p % 8;
                e[1] = (p + layer + 1) % 8;
                trace_writer_route(w, p, layer, e, wt, 2);
            }
    for (int p = 10; p < 12; p++) {
        trace_writer_begin_eval(w, p, 1);
        for (int layer = 0; layer < 2; layer++) {
            e[0] = 7;
            e[1] = layer;
            trace_writer_route(w, p, layer, e, wt, 2);
        }
    }
    assert_int_equal(trace_writer_close(w, err, sizeof(err)), 0);

    struct trace *t;
    if (trace_read(&t, path, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(t->h.n_layer, 2);
    assert_int_equal(t->h.n_batch, 4);
    assert_true(t->h.ram_budget == 123456789 && t->h.cache_bytes == 4096000 && !t->h.preload);
    assert_int_equal(t->n_rec, 24);
    assert_int_equal(t->n_steps, 5);
    int want_tokens[5] = { 4, 4, 2, 1, 1 };
    for (int s = 0; s < 5; s++)
        assert_int_equal(t->step_tokens[s], want_tokens[s]);
    assert_int_equal(t->n_tokens, 12);
    assert_int_equal(t->n_decode_tokens, 2);
    /* step 2 holds positions 8 and 9 of both layers */
    assert_int_equal(t->rec[t->step_first[2]].pos, 8);
    assert_int_equal(t->step_first[3] - t->step_first[2], 4);
    const struct trace_rec *r = &t->rec[t->step_first[2] + 3]; /* layer 1, pos 9 */
    assert_int_equal(r->layer, 1);
    assert_int_equal(r->pos, 9);
    assert_int_equal(t->experts[r->first], 9 % 8);
    assert_int_equal(t->experts[r->first + 1], (9 + 2) % 8);
    assert_true(t->weights[r->first] == 0.75f && t->weights[r->first + 1] == 0.25f);
    trace_free(t);
}

static const char *hdr =
    "{\"format\":\"moestream-route-trace\",\"version\":1,\"n_layer\":2,\"n_expert\":8,\"n_expert_used\":2,"
    "\"n_ctx\":64,\"n_batch\":4,\"n_threads\":1,\"ram_budget\":0,\"cache_bytes\":0,\"preload\":0}\n";

/* Writes hdr (when with_header) + body, reads it, expects failure with all
 * the given fragments in the message. */
static void expect_reject(bool with_header, const char *body, const char *frag1, const char *frag2)
{
    char text[4096], err[512];
    snprintf(text, sizeof(text), "%s%s", with_header ? hdr : "", body);
    write_text(WORK "/bad.jsonl", text);
    struct trace *t;
    int rc = trace_read(&t, WORK "/bad.jsonl", err, sizeof(err));
    if (rc == 0)
        fail_msg("accepted a bad trace: %s", body);
    if (!strstr(err, frag1) || (frag2 && !strstr(err, frag2)))
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", err, frag1, frag2 ? frag2 : "");
}

static void test_trace_reject(void **state)
{
    (void)state;
    const char *rec = "{\"step\":0,\"pos\":0,\"layer\":0,\"experts\":[1,2],\"weights\":[0.5,0.5]}\n";
    expect_reject(false, "", "empty file", NULL);
    /* the pre-step format: records without a header */
    expect_reject(false, "{\"pos\":0,\"layer\":0,\"experts\":[1,2],\"weights\":[0.5,0.5]}\n", "line 1",
                  "not a moestream routing trace");
    char v2[1024];
    snprintf(v2, sizeof(v2), "%s", hdr);
    *strstr(v2, "\"version\":1") = 0;
    strcat(v2, "\"version\":9,\"n_layer\":2,\"n_expert\":8,\"n_expert_used\":2,\"n_ctx\":64,\"n_batch\":4,"
               "\"n_threads\":1,\"ram_budget\":0,\"cache_bytes\":0,\"preload\":0}\n");
    expect_reject(false, v2, "version 9", NULL);
    expect_reject(true, "", "no records", NULL);
    expect_reject(true, "{\"step\":0,\"pos\":0,\"layer\":0,\"experts\":[1,9],\"weights\":[0.5,0.5]}\n", "line 2",
                  "expert 9 outside 0..7");
    expect_reject(true, "{\"step\":0,\"pos\":0,\"layer\":2,\"experts\":[1,2],\"weights\":[0.5,0.5]}\n", "line 2",
                  "layer 2 outside");
    expect_reject(true, "{\"step\":0,\"pos\":0,\"layer\":0,\"experts\":[1],\"weights\":[0.5]}\n", "line 2",
                  "1 experts and 1 weights, the header says 2");
    char two[1024];
    snprintf(two, sizeof(two), "%s{\"step\":2,\"pos\":1,\"layer\":0,\"experts\":[1,2],\"weights\":[0.5,0.5]}\n", rec);
    expect_reject(true, two, "line 3", "steps must count up from 0 by one");
    snprintf(two, sizeof(two), "%s{\"step\":0,\"pos\":0,\"layer\":0,\"experts\":[1,2],\"weights\":[0.5,0.5]}\n", rec);
    expect_reject(true, two, "line 3", "tokens in order");
    expect_reject(true, "{\"step\":0,\"pos\":0,\"layer\":0,\"experts\":[1,2],\"weights\":[0.5,0.5],\"x\":1}\n",
                  "line 2", "unknown key \"x\"");
    expect_reject(true, "{\"step\":0,\"pos\":0,\"layer\":0,\"experts\":[1,2]}\n", "line 2",
                  "missing key \"weights\"");
    expect_reject(true, "{\"step\":0,\"pos\":0,\"layer\":0,\"experts\":[1,2],\"weights\":[0.5,0.5]\n", "line 2",
                  "expected");
}

/* ---- replay equals the run ---- */

static const char *split_tinymoe(void)
{
    static char dir[] = WORK "/tinymoe";
    char src[4200], err[1024], man[256];
    struct stat st;
    snprintf(man, sizeof(man), "%s/manifest.gguf", dir);
    if (stat(man, &st) == 0)
        return dir;
    snprintf(src, sizeof(src), "%s/tinymoe/tinymoe-Q8_0.gguf", fixtures);
    struct split_options so = { .input = src, .output_dir = dir, .force = true };
    struct split_stats ss;
    if (split_convert(&so, &ss, err, sizeof(err)) < 0)
        fail_msg("split %s: %s", src, err);
    return dir;
}

/* A RAM budget whose expert cache holds about a quarter of the experts, derived
 * from a fully resident run's numbers (so it follows the budget rules). */
static unsigned long long evicting_budget(const char *dir)
{
    if (sh("%s/moestream run -m %s -p 'def f(x):' -n 1 --temp 0 --stats-json >/dev/null 2>" WORK "/full.err", bin,
           dir))
        fail_msg("moestream run failed: %s", slurp(WORK "/full.err"));
    const char *s = slurp(WORK "/full.err");
    double budget = json_num(s, "ram_budget_bytes"), cache = json_num(s, "cache_bytes");
    return (unsigned long long)(budget - cache * 0.75);
}

/* Replays trace through iobench with extra flags; returns its JSON. */
static const char *iobench(const char *dir, const char *trace, const char *flags)
{
    if (sh("%s/moestream iobench -m %s --trace %s --json %s >" WORK "/iobench.out 2>" WORK "/iobench.err", bin, dir,
           trace, flags))
        fail_msg("moestream iobench failed: %s", slurp(WORK "/iobench.err"));
    return slurp(WORK "/iobench.out");
}

static void test_replay_run(void **state)
{
    (void)state;
    if (!have_fixtures()) {
        printf("  SKIP: fixtures not found (set MOESTREAM_FIXTURES or put ../shared/fixtures beside the repo)\n");
        skip();
    }
    const char *dir = split_tinymoe();
    unsigned long long budget = evicting_budget(dir);
    /* buffered: deterministic completion order, so eviction order matches too;
     * uring with the whole model resident: every distinct expert once */
    static const struct { const char *io; bool evict; } cases[] = { { "buffered", true }, { "uring", false } };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char budget_flag[64] = "";
        if (cases[i].evict)
            snprintf(budget_flag, sizeof(budget_flag), "--ram-budget %llu", budget);
        if (sh("%s/moestream run -m %s -p 'def fibonacci(n):\\n    if n < 2:' -n 24 --temp 0 -b 4 --io %s %s "
               "--stats-json --trace-out " WORK "/run.jsonl >/dev/null 2>" WORK "/run.err",
               bin, dir, cases[i].io, budget_flag))
            fail_msg("moestream run failed: %s", slurp(WORK "/run.err"));
        const char *r = slurp(WORK "/run.err");
        /* the run summary, after the per-token lines of --stats-json */
        const char *summary = strstr(r, "\"type\":\"run\"");
        assert_non_null(summary);
        r = summary;
        double run_bytes = json_num(r, "bytes_read"), run_tok = json_num(r, "prompt_tokens") + json_num(r, "gen_tokens");
        double run_cache = json_num(r, "cache_bytes");
        char flags[64];
        snprintf(flags, sizeof(flags), "--io %s", cases[i].io);
        const char *j = iobench(dir, WORK "/run.jsonl", flags);
        double rep_bytes = json_num(j, "bytes_read"), rep_tok = json_num(j, "tokens");
        printf("  run --io %s (expert cache %.1f MiB): %.0f bytes for %.0f tokens; replay %.0f bytes for %.0f tokens, "
               "%.0f evictions\n",
               cases[i].io, run_cache / 1048576, run_bytes, run_tok, rep_bytes, rep_tok, json_num(j, "evictions"));
        assert_true(json_num(j, "cache_bytes") == run_cache);
        assert_true(rep_tok == run_tok);
        assert_true(rep_bytes == run_bytes);
        assert_true(json_num(j, "prefill_tokens") > 4); /* several prompt steps of 4 */
        if (cases[i].evict)
            assert_true(json_num(j, "evictions") > 0);
    }
}

static void test_replay_bench(void **state)
{
    (void)state;
    if (!have_fixtures()) {
        printf("  SKIP: fixtures not found (set MOESTREAM_FIXTURES or put ../shared/fixtures beside the repo)\n");
        skip();
    }
    const char *dir = split_tinymoe();
    unsigned long long budget = evicting_budget(dir);
    if (sh("%s/moestream bench -m %s --prompt-tokens 40 -b 16 -n 12 --io buffered --ram-budget %llu "
           "--cache-policy lru --json --trace-out " WORK "/bench.jsonl >" WORK "/bench.out 2>" WORK "/bench.err",
           bin, dir, budget))
        fail_msg("moestream bench failed: %s", slurp(WORK "/bench.err"));
    const char *b = slurp(WORK "/bench.out");
    double bench_bytes = json_num(b, "bytes_read"), bench_bpt = json_num(b, "bytes_read_per_token");
    assert_non_null(strstr(b, "\"cache_policy\":\"lru\""));
    assert_non_null(strstr(b, "\"io_note\":\"queue depth 16 (default; ")); /* buffered: no probe */
    for (const char *k = "decode_tok_s\0prefill_tok_s\0ttft_s\0cache_hit_rate\0read_bw_bytes_s\0io_wait_frac\0"
                         "peak_rss_bytes\0";
         *k; k += strlen(k) + 1)
        assert_true(json_num(b, k) >= 0);
    const char *j = iobench(dir, WORK "/bench.jsonl", "--io buffered --cache-policy lru");
    printf("  bench (lru, 40 + 12 tokens): %.0f bytes, %.0f per token; replay %.0f bytes, %.1f per token\n",
           bench_bytes, bench_bpt, json_num(j, "bytes_read"), json_num(j, "bytes_read_per_token"));
    assert_true(json_num(j, "bytes_read") == bench_bytes);
    assert_true(json_num(j, "tokens") == 52);
    assert_true(json_num(j, "decode_tokens") == 12);
    assert_true(json_num(j, "steps") == 3 + 12);
}

/* ---- device bench ---- */

static void test_device(void **state)
{
    (void)state;
    /* a 4 MiB file on the build disk (O_DIRECT needs a real file system) */
    const char *path = WORK "/dev.bin";
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    static char block[1 << 16];
    for (size_t i = 0; i < sizeof(block); i++)
        block[i] = (char)(i * 131);
    for (int i = 0; i < 64; i++)
        assert_int_equal(fwrite(block, 1, sizeof(block), f), sizeof(block));
    fclose(f);
    if (sh("%s/moestream iobench --device %s --size 256K --qd 1,4 --seconds 0.1 --json >" WORK "/dev.out 2>" WORK
           "/dev.err",
           bin, path))
        fail_msg("iobench --device failed: %s", slurp(WORK "/dev.err"));
    const char *j = slurp(WORK "/dev.out");
    assert_non_null(strstr(j, "\"qd\":1,"));
    assert_non_null(strstr(j, "\"qd\":4,"));
    assert_true(json_num(j, "reads") > 0);
    assert_non_null(strstr(slurp(WORK "/dev.err"), "is only 4.0 MiB"));
    /* a file smaller than one read */
    assert_int_equal(sh("%s/moestream iobench --device %s --size 8M >/dev/null 2>" WORK "/dev.err", bin, path), 1);
    const char *e = slurp(WORK "/dev.err");
    if (!strstr(e, "less than one 8388608-byte read"))
        fail_msg("unexpected message: %s", e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_roundtrip),
        cmocka_unit_test(test_trace_reject),
        cmocka_unit_test(test_replay_run),
        cmocka_unit_test(test_replay_bench),
        cmocka_unit_test(test_device),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
