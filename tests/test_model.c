/*
 * test_model.c - golden logits: every model in fixtures/models, split and run
 * through the whole runtime (splitter, provider, kernels, forward pass), must
 * match logits-exact within the fixtures' tolerance for every ISA variant; and
 * streaming with a tiny expert cache (constant eviction) must give logits
 * bit-identical to a fully resident run, for every I/O backend. The real
 * trained tinymoe must agree with its trainer's next-token NLLs.
 */
#include <errno.h>
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

#include <cmocka.h>

#include "engine.h"
#include "model.h"
#include "quant.h"
#include "seq.h"
#include "session.h"
#include "split.h"
#include "splitfmt.h"
#include "widen.h"

#define SKIP_NO_FIXTURES()                                                                      \
    do {                                                                                        \
        printf("  SKIP: fixtures not found (set MOESTREAM_FIXTURES or put ../shared/fixtures beside the repo)\n"); \
        skip();                                                                                 \
    } while (0)

static char fixtures[4096];
static const char *models[] = { "q3moe-a-Q8_0", "q3moe-a-Q4_K_M", "q3moe-a-Q2_K" };
#define N_MODELS 3

static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static bool have_fixtures(void)
{
    const char *env = getenv("MOESTREAM_FIXTURES");
    snprintf(fixtures, sizeof(fixtures), "%s", env ? env : "../shared/fixtures");
    char p[4200];
    struct stat st;
    snprintf(p, sizeof(p), "%s/models/q3moe-a-Q8_0.gguf", fixtures);
    return stat(p, &st) == 0;
}

/* Splits fixture GGUF `rel` into build/test-model/<name>; returns the dir. */
static const char *split_fixture(const char *rel, const char *name)
{
    static char dir[4200];
    char src[4200], err[1024];
    snprintf(src, sizeof(src), "%s/%s", fixtures, rel);
    mkdir("build", 0755);
    mkdir("build/test-model", 0755);
    snprintf(dir, sizeof(dir), "build/test-model/%s", name);
    struct split_options so = { .input = src, .output_dir = dir, .force = true };
    struct split_stats ss;
    int rc = split_convert(&so, &ss, err, sizeof(err));
    if (rc < 0)
        fail_msg("split %s: %s", src, err);
    return dir;
}

struct run_cfg {
    enum provider_io io;
    uint64_t cache_bytes;   /* 0: everything resident */
    int n_batch;
    int prefetch;           /* enum prefetch_kind (decode steps only); true = lookahead */
};

/* Runs tokens through the model; returns malloc'ed [n][n_vocab] logits. */
static float *run_model(const char *dir, const int32_t *tok, int n, const struct run_cfg *cfg, int *n_vocab,
                        struct provider_stats *ps)
{
    char err[1024];
    struct model_opts mo = { 0 };
    mo.io.io = cfg->io;
    mo.cache_bytes = cfg->cache_bytes;
    mo.verify_pinned = true;
    mo.io.verify_reads = true;
    mo.n_batch = cfg->n_batch;
    mo.n_ctx = n;
    mo.n_threads = 2;
    struct model *m;
    int rc = model_open(&m, dir, &mo, err, sizeof(err));
    if (rc < 0)
        fail_msg("model_open %s: %s", dir, err);
    struct engine *e;
    struct engine_opts eo = { .n_threads = 2, .prefetch = cfg->prefetch, .isa = quant_isa_name() };
    if (engine_open(&e, m, &eo, err, sizeof(err)) < 0)
        fail_msg("engine_open: %s", err);
    struct session *s;
    if (session_init(&s, e, n, err, sizeof(err)) < 0)
        fail_msg("session_init: %s", err);
    *n_vocab = model_hparams(m)->n_vocab;
    float *logits = malloc(sizeof(float) * (size_t)n * *n_vocab);
    assert_non_null(logits);
    if (session_eval(s, tok, n, logits, true) < 0)
        fail_msg("eval: %s", session_error(s));
    if (ps)
        provider_get_stats(engine_provider(e), ps);
    session_free(s);
    engine_close(e);
    model_close(m);
    return logits;
}

/* Mean KL(ref || x) over positions and top-1 agreement, in double. */
static void compare(const float *ref, const float *x, int n, int nv, double *kl_mean, double *top1)
{
    double kl = 0;
    int same = 0;
    for (int t = 0; t < n; t++) {
        const float *a = ref + (size_t)t * nv, *b = x + (size_t)t * nv;
        double ma = a[0], mb = b[0];
        int ia = 0, ib = 0;
        for (int i = 1; i < nv; i++) {
            if (a[i] > ma) ma = a[i], ia = i;
            if (b[i] > mb) mb = b[i], ib = i;
        }
        double sa = 0, sb = 0;
        for (int i = 0; i < nv; i++)
            sa += exp(a[i] - ma), sb += exp(b[i] - mb);
        double la = log(sa), lb = log(sb), k = 0;
        for (int i = 0; i < nv; i++) {
            double pa = a[i] - ma - la, pb = b[i] - mb - lb;
            k += exp(pa) * (pa - pb);
        }
        kl += k;
        same += ia == ib;
    }
    *kl_mean = kl / n;
    *top1 = (double)same / n;
}

static int setup(void **state)
{
    (void)state;
    quant_init();
    return 0;
}

static void test_golden_logits(void **state)
{
    (void)state;
    if (!have_fixtures())
        SKIP_NO_FIXTURES();
    const char *isas[] = { "ref", "avx2", "avx512" };
    int bad = 0;
    for (int mi = 0; mi < N_MODELS; mi++) {
        char rel[256], p[4400];
        size_t len;
        snprintf(rel, sizeof(rel), "models/%s.gguf", models[mi]);
        const char *dir = split_fixture(rel, models[mi]);
        snprintf(p, sizeof(p), "%s/models/%s.tokens.i32", fixtures, models[mi]);
        int32_t *tok = read_file(p, &len);
        assert_non_null(tok);
        int n = (int)(len / 4);
        snprintf(p, sizeof(p), "%s/models/%s.logits-exact.f32", fixtures, models[mi]);
        float *exact = read_file(p, &len);
        snprintf(p, sizeof(p), "%s/models/%s.logits-llamacpp.f32", fixtures, models[mi]);
        float *llama = read_file(p, &len);
        assert_non_null(exact);
        assert_non_null(llama);
        int nv = (int)(len / 4 / (size_t)n);
        double l_kl, l_top1;
        compare(exact, llama, n, nv, &l_kl, &l_top1);
        double tol_kl = fmax(2 * l_kl, 1e-4), tol_top1 = l_top1 - 0.02;
        for (int ii = 0; ii < 3; ii++) {
            if (quant_select_isa(isas[ii]) < 0) {
                printf("  %-16s %-6s skipped: this CPU lacks the ISA\n", models[mi], isas[ii]);
                continue;
            }
            struct run_cfg cfg = { PROVIDER_IO_URING, 0, 64, false };
            int nv2;
            float *ours = run_model(dir, tok, n, &cfg, &nv2, NULL);
            assert_int_equal(nv2, nv);
            double kl, top1;
            compare(exact, ours, n, nv, &kl, &top1);
            printf("  %-16s %-6s KL mean %.3g (llama.cpp %.3g, limit %.3g)  top-1 %.3f (llama.cpp %.3f)\n",
                   models[mi], isas[ii], kl, l_kl, tol_kl, top1, l_top1);
            bad += kl > tol_kl || top1 < tol_top1;
            free(ours);
        }
        quant_init();
        free(tok);
        free(exact);
        free(llama);
    }
    assert_int_equal(bad, 0);
}

static void test_streaming_identical(void **state)
{
    (void)state;
    if (!have_fixtures())
        SKIP_NO_FIXTURES();
    for (int mi = 0; mi < N_MODELS; mi++) {
        char rel[256], p[4400];
        size_t len;
        snprintf(rel, sizeof(rel), "models/%s.gguf", models[mi]);
        const char *dir = split_fixture(rel, models[mi]);
        snprintf(p, sizeof(p), "%s/models/%s.tokens.i32", fixtures, models[mi]);
        int32_t *tok = read_file(p, &len);
        int n = (int)(len / 4), nv;
        struct run_cfg resident = { PROVIDER_IO_URING, 0, 32, false };
        float *base = run_model(dir, tok, n, &resident, &nv, NULL);
        /* the smallest cache that holds one token's experts: constant eviction */
        struct split_model *sm;
        char err[512];
        assert_int_equal(split_open(&sm, dir, err, sizeof(err)), 0);
        uint64_t slot = 0;
        for (int l = 0; l < sm->n_layer; l++)
            if (sm->layers[l].blob_size > slot)
                slot = sm->layers[l].blob_size;
        uint64_t tiny = 4 * slot;
        split_close(sm);
        enum provider_io ios[] = { PROVIDER_IO_URING, PROVIDER_IO_PREAD, PROVIDER_IO_BUFFERED };
        const char *names[] = { "uring", "pread", "buffered" };
        for (int b = 0; b < 3; b++) {
            struct run_cfg cfg = { ios[b], tiny, 32, false };
            struct provider_stats ps;
            float *x = run_model(dir, tok, n, &cfg, &nv, &ps);
            printf("  %-16s %-8s cache %llu KiB: %llu reads, hit rate %.2f, identical %s\n", models[mi], names[b],
                   (unsigned long long)(tiny >> 10), (unsigned long long)ps.reads,
                   ps.hits + ps.misses ? (double)ps.hits / (ps.hits + ps.misses) : 0.0,
                   memcmp(x, base, sizeof(float) * (size_t)n * nv) == 0 ? "yes" : "NO");
            assert_true(ps.misses > 0);
            assert_memory_equal(x, base, sizeof(float) * (size_t)n * nv);
            free(x);
            /* token by token (the decode path) with next-layer prefetch */
            struct run_cfg dec = { ios[b], 2 * tiny, 1, true }; /* room beside a pinned layer */
            x = run_model(dir, tok, n, &dec, &nv, &ps);
            printf("  %-16s %-8s decode + prefetch: %llu prefetch reads, %llu found loading, identical %s\n",
                   models[mi], names[b], (unsigned long long)ps.prefetches, (unsigned long long)ps.prefetch_waits,
                   memcmp(x, base, sizeof(float) * (size_t)n * nv) == 0 ? "yes" : "NO");
            assert_true(ps.prefetches > 0);
            assert_memory_equal(x, base, sizeof(float) * (size_t)n * nv);
            free(x);
        }
        free(base);
        free(tok);
    }
}

/* The trained model against its trainer's float32 forward pass. */
static void test_tinymoe_nll(void **state)
{
    (void)state;
    if (!have_fixtures())
        SKIP_NO_FIXTURES();
    const char *dir = split_fixture("tinymoe/tinymoe-Q8_0.gguf", "tinymoe");
    char p[4400];
    size_t len;
    snprintf(p, sizeof(p), "%s/tinymoe/ref64.tokens.i32", fixtures);
    int32_t *tok = read_file(p, &len);
    int n = (int)(len / 4), nv;
    snprintf(p, sizeof(p), "%s/tinymoe/ref64.nll-transformers.f32", fixtures);
    float *ref_nll = read_file(p, &len);
    snprintf(p, sizeof(p), "%s/tinymoe/ref64.logits-llamacpp-Q8_0.f32", fixtures);
    float *llama = read_file(p, &len);
    assert_non_null(tok);
    assert_non_null(ref_nll);
    assert_non_null(llama);
    struct run_cfg cfg = { PROVIDER_IO_URING, 0, 64, false };
    float *x = run_model(dir, tok, n, &cfg, &nv, NULL);
    double nll = 0, ref = 0;
    int agree = 0;
    for (int t = 0; t + 1 < n; t++) {
        const float *l = x + (size_t)t * nv, *ll = llama + (size_t)t * nv;
        double mx = l[0];
        int am = 0, al = 0;
        for (int i = 1; i < nv; i++) {
            if (l[i] > mx) mx = l[i], am = i;
            if (ll[i] > ll[al]) al = i;
        }
        double s = 0;
        for (int i = 0; i < nv; i++)
            s += exp(l[i] - mx);
        nll += -(l[tok[t + 1]] - mx - log(s));
        ref += ref_nll[t];
        agree += am == al;
    }
    nll /= n - 1;
    ref /= n - 1;
    printf("  tinymoe ref64: mean NLL %.4f (trainer %.4f, llama.cpp 0.4217), argmax agrees with llama.cpp at %d/%d\n",
           nll, ref, agree, n - 1);
    assert_true(fabs(nll - ref) < 0.01);
    assert_true(agree >= n - 3);
    free(x);
    free(tok);
    free(ref_nll);
    free(llama);
}


/* arch/: one random model per further architecture, against llama.cpp run
 * on the dequantized weights (the reference), with llama.cpp's own Q8_0 run
 * as the tolerance (fixtures README, arch/ section). Resident and streamed
 * through a cache of 4 slots, every ISA. */
struct arch_case {
    const char *name;
    double llama_kl, llama_top1;   /* llama.cpp's Q8_0 run against the reference */
};

static void check_arch(const struct arch_case *ac)
{
    char rel[256], p[4400];
    size_t len;
    snprintf(rel, sizeof(rel), "arch/%s-Q8_0.gguf", ac->name);
    const char *dir = split_fixture(rel, ac->name);
    snprintf(p, sizeof(p), "%s/arch/%s-Q8_0.tok.i32", fixtures, ac->name);
    int32_t *tok = read_file(p, &len);
    assert_non_null(tok);
    int n = (int)(len / 4), nv;
    snprintf(p, sizeof(p), "%s/arch/%s-Q8_0.dq.logits.f32", fixtures, ac->name);
    float *ref = read_file(p, &len);
    assert_non_null(ref);
    struct split_model *sm;
    char err[512];
    assert_int_equal(split_open(&sm, dir, err, sizeof(err)), 0);
    uint64_t slot = 0;
    for (int l = 0; l < sm->n_layer; l++)
        if (sm->layers[l].blob_size > slot)
            slot = sm->layers[l].blob_size;
    split_close(sm);
    const char *isas[] = { "ref", "avx2", "avx512" };
    float *base = NULL;
    int bad = 0;
    for (int ii = 0; ii < 3; ii++) {
        if (quant_select_isa(isas[ii]) < 0) {
            printf("  %s: ISA %s not available on this CPU, skipped\n", ac->name, isas[ii]);
            continue;
        }
        struct run_cfg resident = { PROVIDER_IO_URING, 0, 64, false };
        float *x = run_model(dir, tok, n, &resident, &nv, NULL);
        assert_int_equal(len, sizeof(float) * (size_t)n * nv);
        double kl, top1;
        compare(ref, x, n, nv, &kl, &top1);
        struct run_cfg streamed = { PROVIDER_IO_URING, 4 * slot, 64, false };
        struct provider_stats ps;
        float *y = run_model(dir, tok, n, &streamed, &nv, &ps);
        bool same = memcmp(x, y, sizeof(float) * (size_t)n * nv) == 0;
        printf("  %-10s %-6s KL mean %.3g (llama.cpp Q8_0 %.3g)  top-1 %.3f (llama.cpp %.3f)  streamed (%llu misses) "
               "identical %s\n",
               ac->name, isas[ii], kl, ac->llama_kl, top1, ac->llama_top1, (unsigned long long)ps.misses,
               same ? "yes" : "NO");
        bad += kl > ac->llama_kl || top1 < ac->llama_top1 || !same || ps.misses == 0;
        free(y);
        if (!base)
            base = x;
        else
            free(x);
    }
    quant_init();
    assert_int_equal(bad, 0);
    free(base);
    free(ref);
    free(tok);
}

static void test_arch_llama(void **state)
{
    (void)state;
    if (!have_fixtures())
        SKIP_NO_FIXTURES();
    struct arch_case ac = { "llama", 0.0060, 0.980 };
    check_arch(&ac);
}

/* Four sequences decoded together: 4 different prompts (slices of the
 * fixture prompt's tokens, of different lengths) are prefilled in shared
 * steps (rows of all four in one step), then decoded together for 8 steps
 * with teacher-forced tokens; every sequence's logits must be bit-identical
 * to running it alone, streamed through a small cache. */
static void test_multi_sequence(void **state)
{
    (void)state;
    if (!have_fixtures())
        SKIP_NO_FIXTURES();
    const char *dir = split_fixture("models/q3moe-a-Q4_K_M.gguf", "q3moe-a-Q4_K_M");
    char p[4400], err[1024];
    size_t len;
    snprintf(p, sizeof(p), "%s/models/q3moe-a-Q4_K_M.tokens.i32", fixtures);
    int32_t *tok = read_file(p, &len);
    assert_non_null(tok);
    int n_tok = (int)(len / 4);
    enum { NS = 4, DEC = 8 };
    const int start[NS] = { 0, 17, 40, 90 }, plen[NS] = { 9, 23, 5, 14 };
    int nv = 0;
    /* alone: prompt then DEC teacher-forced steps, one session each */
    float *alone[NS];
    for (int q = 0; q < NS; q++) {
        assert_true(start[q] + plen[q] + DEC <= n_tok);
        struct run_cfg cfg = { PROVIDER_IO_URING, 0, 64, false };
        alone[q] = run_model(dir, tok + start[q], plen[q] + DEC, &cfg, &nv, NULL);
    }
    /* together: one engine, 4 sequences, a cache of 6 slots */
    struct split_model *sm;
    assert_int_equal(split_open(&sm, dir, err, sizeof(err)), 0);
    uint64_t slot = 0;
    for (int l = 0; l < sm->n_layer; l++)
        if (sm->layers[l].blob_size > slot)
            slot = sm->layers[l].blob_size;
    split_close(sm);
    struct model_opts mo = { 0 };
    mo.cache_bytes = 6 * slot;
    mo.io.io = PROVIDER_IO_URING;
    mo.n_ctx = 64;
    mo.n_seq = NS;
    mo.n_batch = 64;
    mo.n_threads = 2;
    struct model *m;
    if (model_open(&m, dir, &mo, err, sizeof(err)) < 0)
        fail_msg("model_open: %s", err);
    struct engine *e;
    struct engine_opts eo = { .n_threads = 2 };
    if (engine_open(&e, m, &eo, err, sizeof(err)) < 0)
        fail_msg("engine_open: %s", err);
    struct seq *sq[NS];
    for (int q = 0; q < NS; q++)
        assert_int_equal(seq_init(&sq[q], m, 64, err, sizeof(err)), 0);
    int32_t rt[64], rp[64];
    struct seq *rs[64];
    uint8_t ro[64];
    float *lg = malloc(sizeof(float) * 64 * (size_t)nv);
    assert_non_null(lg);
    int bad = 0;
    /* prefill: rows of all four prompts interleaved in one step */
    int n = 0;
    for (int i = 0; i < 23; i++)
        for (int q = 0; q < NS; q++)
            if (i < plen[q]) {
                rt[n] = tok[start[q] + i];
                rp[n] = i;
                rs[n] = sq[q];
                ro[n] = 1;
                n++;
            }
    struct engine_batch b = { n, rt, rp, rs, ro };
    if (engine_step(e, &b, lg) < 0)
        fail_msg("step: %s", engine_error(e));
    int row = 0;
    for (int i = 0; i < 23; i++)
        for (int q = 0; q < NS; q++)
            if (i < plen[q])
                bad += memcmp(lg + (size_t)row++ * nv, alone[q] + (size_t)i * nv, sizeof(float) * nv) != 0;
    /* decode: one row per sequence per step */
    for (int d = 0; d < DEC; d++) {
        for (int q = 0; q < NS; q++) {
            rt[q] = tok[start[q] + plen[q] + d];
            rp[q] = plen[q] + d;
            rs[q] = sq[q];
            ro[q] = 1;
        }
        struct engine_batch bd = { NS, rt, rp, rs, ro };
        if (engine_step(e, &bd, lg) < 0)
            fail_msg("step: %s", engine_error(e));
        for (int q = 0; q < NS; q++)
            bad += memcmp(lg + (size_t)q * nv, alone[q] + (size_t)(plen[q] + d) * nv, sizeof(float) * nv) != 0;
    }
    struct provider_stats ps;
    provider_get_stats(engine_provider(e), &ps);
    printf("  4 sequences in shared steps (%d prefill rows, %d decode steps, %llu expert misses): %d rows differ "
           "from running alone\n",
           n, DEC, (unsigned long long)ps.misses, bad);
    assert_true(ps.misses > 0);
    /* a row that does not continue its sequence is refused */
    rt[0] = tok[0];
    rp[0] = 3;
    rs[0] = sq[0];
    struct engine_batch wrong = { 1, rt, rp, rs, NULL };
    assert_int_equal(engine_step(e, &wrong, lg), -EINVAL);
    assert_int_equal(bad, 0);
    for (int q = 0; q < NS; q++) {
        seq_free(sq[q]);
        free(alone[q]);
    }
    free(lg);
    engine_close(e);
    model_close(m);
    free(tok);
}

/* moestream-synth --widen-experts: tinymoe with zero neurons added to every
 * expert gives the same logits; streamed token by token through a small
 * cache, every prefetch policy leaves them bit-identical (real routing, so
 * co-activation guesses are issued and used). */
static void test_widen_tinymoe(void **state)
{
    (void)state;
    if (!have_fixtures())
        SKIP_NO_FIXTURES();
    char src[4400], p[4400], err[1024];
    snprintf(src, sizeof(src), "%s/tinymoe/tinymoe-Q8_0.gguf", fixtures);
    const char *base_dir = split_fixture("tinymoe/tinymoe-Q8_0.gguf", "tinymoe");
    char bdir[4400];
    snprintf(bdir, sizeof(bdir), "%s", base_dir);
    const char *wgguf = "build/test-model/tinymoe-w512.gguf", *wdir = "build/test-model/tinymoe-w512";
    /* too narrow and not a block multiple are refused */
    assert_int_equal(widen_experts(src, wgguf, 128, NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "smaller"));
    assert_int_equal(widen_experts(src, wgguf, 300, NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "multiple"));
    uint64_t nb = 0;
    if (widen_experts(src, wgguf, 512, &nb, err, sizeof(err)))
        fail_msg("widen: %s", err);
    struct split_options so = { .input = wgguf, .output_dir = wdir, .force = true };
    struct split_stats ss;
    if (split_convert(&so, &ss, err, sizeof(err)) < 0)
        fail_msg("split %s: %s", wgguf, err);
    remove(wgguf);
    struct model_hparams hp;
    {
        struct model *m;
        struct model_opts mo = { 0 };
        mo.n_ctx = 64;
        assert_int_equal(model_open(&m, wdir, &mo, err, sizeof(err)), 0);
        hp = *model_hparams(m);
        model_close(m);
    }
    assert_int_equal(hp.n_ff_exp, 512);
    size_t len;
    snprintf(p, sizeof(p), "%s/tinymoe/ref64.tokens.i32", fixtures);
    int32_t *tok = read_file(p, &len);
    int n = 32, nv;
    struct run_cfg resident = { PROVIDER_IO_URING, 0, 32, 0 };
    float *ref = run_model(bdir, tok, n, &resident, &nv, NULL);
    float *wide = run_model(wdir, tok, n, &resident, &nv, NULL);
    double maxd = 0;
    for (size_t i = 0; i < (size_t)n * nv; i++)
        if (fabs((double)ref[i] - wide[i]) > maxd)
            maxd = fabs((double)ref[i] - wide[i]);
    printf("  tinymoe widened to n_ff_exp 512 (%.1f MB of tensors): max |logit difference| %.3g over %d tokens\n",
           nb / 1e6, maxd, n);
    assert_true(maxd <= 1e-4);
    struct split_model *sm;
    assert_int_equal(split_open(&sm, wdir, err, sizeof(err)), 0);
    uint64_t slot = sm->layers[0].blob_size;
    split_close(sm);
    const char *kinds[] = { "lookahead", "coact", "both" };
    for (int k = 1; k <= 3; k++) {
        struct run_cfg dec = { PROVIDER_IO_URING, 12 * slot, 1, k };
        struct provider_stats ps;
        float *x = run_model(wdir, tok, n, &dec, &nv, &ps);
        printf("  decode, 12 slots, prefetch %-9s: %llu issued, %llu used, %llu wasted, hit rate %.2f, "
               "identical %s\n",
               kinds[k - 1], (unsigned long long)ps.prefetches, (unsigned long long)ps.prefetch_used,
               (unsigned long long)ps.prefetch_wasted,
               ps.hits + ps.misses ? (double)ps.hits / (ps.hits + ps.misses) : 0.0,
               memcmp(x, wide, sizeof(float) * (size_t)n * nv) == 0 ? "yes" : "NO");
        assert_true(ps.prefetches > 0);
        assert_true(ps.prefetch_used > 0);
        assert_true(ps.prefetch_used + ps.prefetch_wasted <= ps.prefetches);
        assert_true(ps.busy_s > 0);
        assert_memory_equal(x, wide, sizeof(float) * (size_t)n * nv);
        free(x);
    }
    free(ref);
    free(wide);
    free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_logits),
        cmocka_unit_test(test_streaming_identical),
        cmocka_unit_test(test_tinymoe_nll),
        cmocka_unit_test(test_widen_tinymoe),
        cmocka_unit_test(test_arch_llama),
        cmocka_unit_test(test_multi_sequence),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
