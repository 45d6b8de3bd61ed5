/*
 * cli_bench.c - `moestream bench`: end-to-end speed of one configuration
 * (prompt and decode tok/s, time to first token, bytes read per token, cache
 * hit rate, read bandwidth, I/O wait share, peak RSS), over --repeat runs
 * each with a fresh model and session, and --compare: two configurations
 * run alternately in child processes, reported as per-pair ratios so that
 * comparisons hold on a noisy machine. Drives the same code as `run`
 * (cli_load, cli_eval); greedy decoding without the sampler.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "seq.h"
#include "tokenizer.h"

#define BENCH_FLAGS                                                                                     \
    "--model --prompt --file --prompt-tokens --n-predict --threads --ctx-size --batch-size --ram-budget " \
    "--io --queue-depth --ssd-cache --ssd-cache-size --read-chunk --mlock --verify-reads --trace-out --special --no-escape --preload --prefetch --coact --pin-profile --act-bits --moe-topk --cache-type --cache-type-k --cache-type-v --cache-bias --cache-size "   \
    "--cache-policy --repeat --cold --json --compare --parallel"

#define BENCH_PROMPT_TOKENS 64
#define BENCH_GEN_TOKENS 64
#define BENCH_PAIRS 5
#define BENCH_SEED 0x6265u /* synthetic prompt ids; fixed so runs compare */

static void bench_usage(FILE *out)
{
    fprintf(out,
            "usage: moestream bench -m DIR [-p TEXT | -f FILE | --prompt-tokens N] [-n N] [--repeat N]\n"
            "                       [--cold] [--json] [options as for run]\n"
            "       moestream bench -m DIR --compare \"ARGS_A\" \"ARGS_B\" [--repeat N] [common options]\n\n"
            "Processes a prompt, then generates N tokens greedily (end-of-text tokens do not stop it), and\n"
            "reports prompt and decode tok/s, time to first token, bytes read per token, expert cache hit\n"
            "rate, read bandwidth (bytes over I/O wait time, and over wall time), the I/O wait share of\n"
            "the time and peak RSS. With --repeat, the median, min and max of each.\n\n"
            "Every repeat opens a fresh model and session, so the expert cache starts empty (unless\n"
            "--preload); the OS page cache stays warm between repeats unless --cold, which drops it before\n"
            "each one (needs root; without root bench warns and runs warm). With O_DIRECT (--io uring or\n"
            "pread) expert reads bypass the page cache anyway; --cold matters for the pinned weights and\n"
            "for --io buffered.\n\n"
            "  -p, --prompt TEXT      prompt text (default: %d synthetic token ids, the same every run)\n"
            "  -f, --file FILE        read the prompt from FILE\n"
            "      --prompt-tokens N  length of the synthetic prompt (default %d)\n"
            "  -n, --n-predict N      tokens to generate (default %d)\n"
            "      --repeat N         runs (default 1; with --compare: pairs, default %d)\n"
            "      --cold             drop the page cache before each run (sync; echo 3 > /proc/sys/vm/drop_caches)\n"
            "      --json             one JSON object on stdout: medians, \"min\", \"max\" and \"config\"\n"
            "                         (config.io_note: the queue depth and where it came from, last run)\n"
            "      --trace-out FILE   record the routing of the first run (replay: moestream iobench --trace)\n"
            "      --parallel N       N sequences, each with its own synthetic prompt (seeded differently),\n"
            "                         prefilled and then decoded together: decode tok/s is the aggregate of\n"
            "                         all N and bytes per decode token is per generated token\n"
            "      --compare A B      run configuration A and B (each a quoted list of flags, split at spaces,\n"
            "                         added to the common flags) alternately A B A B ..., each run in a child\n"
            "                         process, and report the per-pair ratio B/A (median, min, max) per metric.\n"
            "                         e.g. --compare \"--io pread\" \"--io uring\", or\n"
            "                              --compare \"--cache-policy lru\" \"--cache-policy slru\"\n",
            BENCH_PROMPT_TOKENS, BENCH_PROMPT_TOKENS, BENCH_GEN_TOKENS, BENCH_PAIRS);
    cli_common_help(out);
}

/* The metrics of one run, in the order of bench_metric_names. */
enum {
    M_PREFILL, M_DECODE, M_TTFT, M_BPT, M_DBPT, M_HIT, M_BW, M_BW_WALL, M_IOFRAC, M_IOWAIT, M_COMPUTE, M_RSS,
    M_BYTES, M_LOAD, M_DHIT, M_BUSY, M_BW_BUSY, M_PF_ISSUED, M_PF_USED, M_PF_WASTED,
    M_D_WAIT_MS, M_D_ATTN_MS, M_D_ROUTER_MS, M_D_EXPERTS_MS, M_D_BUSY_MS, M_TIER_BYTES, M_D_STORE_BPT,
    M_D_TIER_BPT, N_METRICS
};
static const char *const bench_metric_names[N_METRICS] = {
    "prefill_tok_s",     "decode_tok_s",  "ttft_s",    "bytes_read_per_token", "decode_bytes_read_per_token",
    "cache_hit_rate",    "read_bw_bytes_s", "read_bw_wall_bytes_s", "io_wait_frac", "io_wait_s", "compute_s",
    "peak_rss_bytes",    "bytes_read",    "load_s", "decode_cache_hit_rate", "io_busy_frac",
    "read_bw_busy_bytes_s", "prefetch_issued", "prefetch_used", "prefetch_wasted",
    "decode_io_wait_ms", "decode_attn_ms", "decode_router_ms", "decode_experts_ms", "decode_io_busy_ms",
    "tier_bytes_read", "decode_store_bytes_read_per_token", "decode_tier_bytes_read_per_token",
};
/* Text report: label, scale, decimals. */
static const struct { const char *label; double scale; int prec; } bench_metric_text[N_METRICS] = {
    { "prompt tok/s", 1, 2 },          { "decode tok/s", 1, 2 },
    { "time to first token s", 1, 4 }, { "MiB read / token", 1.0 / 1048576, 3 },
    { "MiB read / decode token", 1.0 / 1048576, 3 }, { "cache hit rate %", 100, 1 },
    { "read MB/s (I/O wait)", 1e-6, 0 }, { "read MB/s (wall)", 1e-6, 0 },
    { "I/O wait fraction", 1, 3 },     { "I/O wait s", 1, 4 },
    { "compute s", 1, 4 },             { "peak RSS MiB", 1.0 / 1048576, 1 },
    { "MiB read", 1.0 / 1048576, 2 },  { "load s", 1, 3 },
    { "decode cache hit rate %", 100, 1 }, { "I/O busy fraction (decode)", 1, 3 },
    { "read MB/s (busy, decode)", 1e-6, 0 }, { "prefetches issued (decode)", 1, 0 },
    { "prefetches used (decode)", 1, 0 }, { "prefetches wasted (decode)", 1, 0 },
    { "I/O wait ms / decode token", 1, 2 }, { "attention ms / decode token", 1, 2 },
    { "router ms / decode token", 1, 2 }, { "experts ms / decode token", 1, 2 },
    { "reads in flight ms / decode token", 1, 2 },
    { "MiB read from the SSD tier", 1.0 / 1048576, 2 }, { "MiB from the store / decode token", 1.0 / 1048576, 3 },
    { "MiB from the SSD tier / decode token", 1.0 / 1048576, 3 },
};

/* One column of the text report: value v of metric k. */
static void print_metric(int k, double v)
{
    printf(" %12.*f", bench_metric_text[k].prec, v * bench_metric_text[k].scale);
}

/* Peak RSS since the last bench_reset_peak: VmHWM, else ru_maxrss. */
static uint64_t bench_peak_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;
    bool found = false;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) {
            found = true;
            break;
        }
    if (f)
        fclose(f);
    return found ? kb * 1024 : cli_peak_rss();
}

/* Resets VmHWM to the current RSS (Linux 4.0+), so each repeat has its own
 * peak. Without it, repeats report the peak so far. */
static void bench_reset_peak(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    if (fd < 0)
        return;
    if (write(fd, "5", 1) != 1) {
        /* old kernel: the peak stays cumulative */
    }
    close(fd);
}

/* Drops the page cache; false with a message when it cannot. */
static bool bench_drop_caches(void)
{
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0 || write(fd, "3", 1) != 1) {
        fprintf(stderr, "moestream bench: warning: cannot drop the page cache (%s): this run is warm\n",
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    close(fd);
    return true;
}

static int32_t argmax(const float *x, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

struct bench_config {
    int n_ctx, n_batch;
    uint64_t ram_budget, cache_bytes;
    char backend[16];
    char io_note[640];          /* the provider's queue-depth note (probe or flag), last run */
    int n_prompt;
};

/* The synthetic prompt of sequence q: n ids from a seeded generator. */
static void bench_prompt_ids(int32_t *ids, int n, int nv, int q)
{
    uint64_t s = BENCH_SEED + (uint64_t)q * 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((s >> 33) % (uint64_t)nv);
    }
}

/* --parallel N: N sequences with their own synthetic prompts, prefilled in
 * shared steps, then N rows per decode step. Fills t_prompt, t_gen and the
 * provider counters around the decode phase. 0, or 1 with a message. */
static int bench_parallel(struct cli_runtime *rt, const struct cli_opts *o, int np, double *t_prompt,
                          double *t_gen, double *ttft, struct provider_stats *pd)
{
    int N = o->n_parallel, nv = model_hparams(rt->m)->n_vocab, nb = engine_n_batch(rt->e);
    int rc = 1;
    char err[512];
    struct seq **sq = calloc((size_t)N, sizeof(*sq));
    int32_t *prompts = malloc(sizeof(int32_t) * (size_t)N * np), *rt_ = malloc(sizeof(int32_t) * (size_t)nb),
            *rp = malloc(sizeof(int32_t) * (size_t)nb), *last = malloc(sizeof(int32_t) * (size_t)N);
    struct seq **rs = malloc(sizeof(*rs) * (size_t)nb);
    uint8_t *ro = malloc((size_t)nb);
    int *row_q = malloc(sizeof(int) * (size_t)nb);
    float *lg = malloc(sizeof(float) * (size_t)nb * nv);
    if (!sq || !prompts || !rt_ || !rp || !last || !rs || !ro || !row_q || !lg) {
        fprintf(stderr, "moestream bench: out of memory\n");
        goto out;
    }
    sq[0] = session_seq(rt->s);
    for (int q = 1; q < N; q++)
        if (seq_init(&sq[q], rt->m, session_n_ctx(rt->s), err, sizeof(err)) < 0) {
            fprintf(stderr, "moestream bench: %s\n", err);
            goto out;
        }
    for (int q = 0; q < N; q++)
        bench_prompt_ids(prompts + (size_t)q * np, np, nv, q);
    double t0 = cli_now();
    /* prefill: rows of all sequences, step after step */
    int total = N * np;
    for (int r0 = 0; r0 < total; r0 += nb) {
        int n = total - r0 < nb ? total - r0 : nb;
        for (int r = 0; r < n; r++) {
            int q = (r0 + r) / np, i = (r0 + r) % np;
            rt_[r] = prompts[(size_t)q * np + i];
            rp[r] = i;
            rs[r] = sq[q];
            ro[r] = i == np - 1;
            row_q[r] = q;
        }
        struct engine_batch b = { n, rt_, rp, rs, ro };
        if (engine_step(rt->e, &b, lg) < 0) {
            fprintf(stderr, "moestream bench: %s\n", engine_error(rt->e));
            goto out;
        }
        int li = 0;
        for (int r = 0; r < n; r++)
            if (ro[r])
                last[row_q[r]] = argmax(lg + (size_t)li++ * nv, nv);
    }
    *t_prompt = cli_now() - t0;
    *ttft = *t_prompt;
    provider_get_stats(engine_provider(rt->e), pd);
    double t1 = cli_now();
    for (int i = 0; i < o->n_predict; i++) {
        for (int q = 0; q < N; q++) {
            rt_[q] = last[q];
            rp[q] = sq[q]->n_past;
            rs[q] = sq[q];
            ro[q] = 1;
        }
        struct engine_batch b = { N, rt_, rp, rs, ro };
        if (engine_step(rt->e, &b, lg) < 0) {
            fprintf(stderr, "moestream bench: %s\n", engine_error(rt->e));
            goto out;
        }
        for (int q = 0; q < N; q++)
            last[q] = argmax(lg + (size_t)q * nv, nv);
    }
    *t_gen = cli_now() - t1;
    rc = 0;
out:
    for (int q = 1; sq && q < N; q++)
        seq_free(sq[q]);
    free(sq);
    free(prompts);
    free(rt_);
    free(rp);
    free(last);
    free(rs);
    free(ro);
    free(row_q);
    free(lg);
    return rc;
}

/* One run with a fresh model and session. 0, or 1 with a printed message. */
static int bench_once(const struct cli_opts *o, const char *text, size_t len, bool trace, double *met,
                      struct bench_config *cfg)
{
    struct cli_opts oo = *o;
    if (!trace)
        oo.trace_out = NULL;
    bench_reset_peak();
    double t_load = cli_now();
    struct cli_runtime rt;
    if (cli_load(&rt, &oo))
        return 1;
    t_load = cli_now() - t_load;
    int rc = 1, nv = model_hparams(rt.m)->n_vocab, n_prompt = 0;
    int32_t *ids = NULL;
    float *logits = malloc(sizeof(float) * (size_t)nv);
    if (!logits)
        goto out;
    if (text) {
        ids = malloc(sizeof(int32_t) * (len + 16));
        n_prompt = ids ? tok_encode(rt.tok, text, len, tok_wants_bos(rt.tok), o->special, ids, (int)len + 16) : -1;
        if (n_prompt <= 0) {
            fprintf(stderr, "moestream bench: the prompt is empty after tokenization or cannot be tokenized\n");
            goto out;
        }
    } else {
        n_prompt = o->prompt_tokens;
        ids = malloc(sizeof(int32_t) * (size_t)n_prompt);
        if (!ids)
            goto out;
        bench_prompt_ids(ids, n_prompt, nv, 0);
    }
    int n_par = o->n_parallel > 1 ? o->n_parallel : 1;
    if (n_prompt + o->n_predict > session_n_ctx(rt.s)) {
        fprintf(stderr, "moestream bench: %d prompt + %d generated tokens do not fit the context of %d: raise -c\n",
                n_prompt, o->n_predict, session_n_ctx(rt.s));
        goto out;
    }
    struct provider_stats p0, p1, pd;
    struct engine_times e0 = { 0 }, e1;
    provider_get_stats(engine_provider(rt.e), &p0); /* after any --preload */

    double t_prompt, t_gen, ttft;
    if (n_par > 1) {
        if (bench_parallel(&rt, o, n_prompt, &t_prompt, &t_gen, &ttft, &pd))
            goto out;
    } else {
        double t0 = cli_now();
        if (cli_eval(&rt, ids, n_prompt, logits, false) < 0) {
            fprintf(stderr, "moestream bench: %s\n", session_error(rt.s));
            goto out;
        }
        t_prompt = cli_now() - t0;
        int32_t id = argmax(logits, nv);
        ttft = cli_now() - t0;
        provider_get_stats(engine_provider(rt.e), &pd);
        engine_get_times(rt.e, &e0);
        double t1 = cli_now();
        for (int i = 0; i < o->n_predict; i++) {
            if (cli_eval(&rt, &id, 1, logits, false) < 0) {
                fprintf(stderr, "moestream bench: %s\n", session_error(rt.s));
                goto out;
            }
            id = argmax(logits, nv);
        }
        t_gen = cli_now() - t1;
    }
    provider_get_stats(engine_provider(rt.e), &p1);
    engine_get_times(rt.e, &e1);

    uint64_t bytes = p1.bytes_read - p0.bytes_read, dbytes = p1.bytes_read - pd.bytes_read;
    uint64_t hits = p1.hits - p0.hits, misses = p1.misses - p0.misses;
    double io_wait = p1.io_wait_s - p0.io_wait_s, wall = t_prompt + t_gen;
    int n_tok = (n_prompt + o->n_predict) * n_par, n_gen = o->n_predict * n_par;
    met[M_PREFILL] = t_prompt > 0 ? n_prompt * n_par / t_prompt : 0;
    met[M_DECODE] = t_gen > 0 ? n_gen / t_gen : 0;
    met[M_TTFT] = ttft;
    met[M_BPT] = n_tok ? (double)bytes / n_tok : 0;
    met[M_DBPT] = n_gen ? (double)dbytes / n_gen : 0;
    met[M_HIT] = hits + misses ? (double)hits / (double)(hits + misses) : 0;
    met[M_BW] = io_wait > 0 ? bytes / io_wait : 0;
    met[M_BW_WALL] = wall > 0 ? bytes / wall : 0;
    met[M_IOFRAC] = wall > 0 ? io_wait / wall : 0;
    met[M_IOWAIT] = io_wait;
    met[M_COMPUTE] = wall - io_wait;
    met[M_RSS] = (double)bench_peak_rss();
    met[M_BYTES] = (double)bytes;
    met[M_LOAD] = t_load;
    /* decode only: from the end of the prompt (pd) to the end (p1) */
    uint64_t dh = p1.hits - pd.hits, dm = p1.misses - pd.misses;
    double busy = p1.busy_s - pd.busy_s;
    met[M_DHIT] = dh + dm ? (double)dh / (double)(dh + dm) : 0;
    met[M_BUSY] = t_gen > 0 ? busy / t_gen : 0;
    met[M_BW_BUSY] = busy > 0 ? dbytes / busy : 0;
    met[M_PF_ISSUED] = (double)(p1.prefetches - pd.prefetches);
    met[M_PF_USED] = (double)(p1.prefetch_used - pd.prefetch_used);
    met[M_PF_WASTED] = (double)(p1.prefetch_wasted - pd.prefetch_wasted);
    /* decode time per generated token by phase (single sequence only: the
     * parallel path has no split point) */
    double per = n_par == 1 && n_gen ? 1e3 / n_gen : 0;
    met[M_D_WAIT_MS] = (e1.io_wait_s - e0.io_wait_s) * per;
    met[M_D_ATTN_MS] = (e1.attn_s - e0.attn_s) * per;
    met[M_D_ROUTER_MS] = (e1.router_s - e0.router_s) * per;
    met[M_D_EXPERTS_MS] = (e1.experts_s - e0.experts_s) * per;
    met[M_D_BUSY_MS] = busy * per;
    /* bytes_read counts the store and the SSD tier; split them */
    uint64_t dtier = p1.tier_bytes_read - pd.tier_bytes_read;
    met[M_TIER_BYTES] = (double)(p1.tier_bytes_read - p0.tier_bytes_read);
    met[M_D_STORE_BPT] = n_gen ? (double)(dbytes - dtier) / n_gen : 0;
    met[M_D_TIER_BPT] = n_gen ? (double)dtier / n_gen : 0;
    cfg->n_ctx = session_n_ctx(rt.s);
    cfg->n_batch = o->n_batch < cfg->n_ctx ? o->n_batch : cfg->n_ctx;
    cfg->ram_budget = model_plan(rt.m)->ram_budget;
    cfg->cache_bytes = model_plan(rt.m)->cache_bytes;
    snprintf(cfg->backend, sizeof(cfg->backend), "%s", provider_backend_name(engine_provider(rt.e)));
    snprintf(cfg->io_note, sizeof(cfg->io_note), "%s", provider_io_note(engine_provider(rt.e)));
    cfg->n_prompt = n_prompt;
    rc = 0;
out:
    free(ids);
    free(logits);
    if (cli_unload(&rt))
        rc = 1;
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median, min and max of v[0..n) (reorders v). */
static void summarize(double *v, int n, double *med, double *mn, double *mx)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    *mn = v[0];
    *mx = v[n - 1];
    *med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static const char *policy_name(enum provider_cache_policy p)
{
    return p == PROVIDER_CACHE_LRU ? "lru" : "slru";
}

static int bench_single(const struct cli_opts *o)
{
    char *text = NULL;
    size_t len = 0;
    if (o->prompt_file) {
        if (!(text = cli_read_file(o->prompt_file, &len)))
            return 1;
    } else if (o->prompt) {
        text = strdup(o->prompt);
        len = strlen(text);
    }
    if (text && !o->no_escape)
        len = cli_unescape(text, len);
    int n = o->repeat > 0 ? o->repeat : 1;
    bool cold = o->cold;
    if (cold && geteuid() != 0) {
        fprintf(stderr, "moestream bench: warning: --cold needs root to drop the page cache "
                        "(sync; echo 3 > /proc/sys/vm/drop_caches): running warm\n");
        cold = false;
    }
    double *met = calloc((size_t)n * N_METRICS, sizeof(double)), *col = calloc((size_t)n, sizeof(double));
    struct bench_config cfg = { 0 };
    int rc = 1;
    if (!met || !col)
        goto out;
    for (int r = 0; r < n; r++) {
        if (cold && !bench_drop_caches())
            cold = false;
        if (bench_once(o, text, len, r == 0, met + (size_t)r * N_METRICS, &cfg))
            goto out;
        if (!o->json && n > 1)
            fprintf(stderr, "bench: run %d/%d: prompt %.1f tok/s, decode %.2f tok/s\n", r + 1, n,
                    met[(size_t)r * N_METRICS + M_PREFILL], met[(size_t)r * N_METRICS + M_DECODE]);
    }
    double med[N_METRICS], mn[N_METRICS], mx[N_METRICS];
    for (int k = 0; k < N_METRICS; k++) {
        for (int r = 0; r < n; r++)
            col[r] = met[(size_t)r * N_METRICS + k];
        summarize(col, n, &med[k], &mn[k], &mx[k]);
    }
    const char *pmode = text ? "text" : "synthetic";
    if (o->json) {
        printf("{");
        for (int k = 0; k < N_METRICS; k++)
            printf("\"%s\":%.15g,", bench_metric_names[k], med[k]);
        for (int w = 0; w < 2; w++) {
            printf("\"%s\":{", w ? "max" : "min");
            for (int k = 0; k < N_METRICS; k++)
                printf("%s\"%s\":%.15g", k ? "," : "", bench_metric_names[k], w ? mx[k] : mn[k]);
            printf("},");
        }
        printf("\"config\":{\"model\":");
        cli_json_str(stdout, o->model_dir);
        printf(",\"io\":\"%s\",\"queue_depth\":%d,\"threads\":%d,\"ctx\":%d,\"batch\":%d,\"ram_budget_bytes\":%llu,"
               "\"cache_bytes\":%llu,\"cache_policy\":\"%s\",\"prompt\":\"%s\",\"prompt_tokens\":%d,"
               "\"gen_tokens\":%d,\"repeat\":%d,\"cold\":%s,\"preload\":%s,\"act_bits\":\"%s\",\"kv_cache\":\"%s\"",
               cfg.backend, o->queue_depth, o->n_threads, cfg.n_ctx, cfg.n_batch,
               (unsigned long long)cfg.ram_budget, (unsigned long long)cfg.cache_bytes,
               policy_name(o->cache_policy), pmode, cfg.n_prompt, o->n_predict, n, cold ? "true" : "false",
               o->preload ? "true" : "false", o->act_bits, o->kv_f16 ? "f16" : "f32");
        printf(",\"io_note\":");
        cli_json_str(stdout, cfg.io_note);
        printf("}}\n");
    } else {
        char qd[16] = "default";
        if (o->queue_depth)
            snprintf(qd, sizeof(qd), "%d", o->queue_depth);
        printf("bench: %s, io %s, queue depth %s, %d threads, ctx %d, batch %d, RAM budget %.2f GiB, expert "
               "cache %.1f MiB (%s)\n",
               o->model_dir, cfg.backend, qd, o->n_threads, cfg.n_ctx,
               cfg.n_batch, cfg.ram_budget / 1073741824.0, cfg.cache_bytes / 1048576.0,
               policy_name(o->cache_policy));
        printf("bench: prompt %d tokens (%s), %d generated greedily; %d run%s, fresh model each, page cache %s%s; "
               "activations %s, KV cache %s\n",
               cfg.n_prompt, pmode, o->n_predict, n, n > 1 ? "s" : "", cold ? "dropped before each (cold)" : "warm",
               o->preload ? ", experts preloaded" : "", o->act_bits, o->kv_f16 ? "f16" : "f32");
        if (cfg.io_note[0])
            printf("bench: %s (last run)\n", cfg.io_note);
        if (n > 1)
            printf("%-26s %12s %12s %12s\n", "", "median", "min", "max");
        for (int k = 0; k < N_METRICS; k++) {
            printf("%-26s", bench_metric_text[k].label);
            print_metric(k, med[k]);
            if (n > 1) {
                print_metric(k, mn[k]);
                print_metric(k, mx[k]);
            }
            putchar('\n');
        }
    }
    rc = 0;
out:
    free(met);
    free(col);
    free(text);
    return rc;
}

/* ---- --compare ---- */

/* Splits s at spaces into argv entries appended to v (strings owned by buf). */
static int split_args(char *buf, char **v, int n, int max)
{
    for (char *tok = strtok(buf, " \t\n"); tok; tok = strtok(NULL, " \t\n")) {
        if (n == max)
            return -1;
        v[n++] = tok;
    }
    return n;
}

/* Runs `moestream bench --json ...` in a child; the JSON line into out. */
static int run_child(char **argv, char *out, size_t cap)
{
    int fds[2];
    if (pipe(fds) != 0) {
        fprintf(stderr, "moestream bench: pipe: %s\n", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "moestream bench: fork: %s\n", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv("/proc/self/exe", argv);
        fprintf(stderr, "moestream bench: cannot run /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t got;
    while ((got = read(fds[0], out + n, cap - 1 - n)) > 0 || (got < 0 && errno == EINTR))
        if (got > 0)
            n += (size_t)got;
    out[n] = 0;
    close(fds[0]);
    int st = 0;
    pid_t w;
    while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR) {
    }
    if (w < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* The top-level number "key":V of a bench JSON object. */
static bool json_number(const char *js, const char *key, double *v)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(js, pat); /* medians come first, before "min" */
    if (!p)
        return false;
    char *end;
    *v = strtod(p + strlen(pat), &end);
    return end != p + strlen(pat);
}

static const int compare_metrics[] = { M_DECODE, M_PREFILL, M_TTFT, M_BPT, M_HIT, M_BW, M_BW_WALL, M_IOFRAC, M_RSS,
                                       M_D_ATTN_MS };
#define N_CMP ((int)(sizeof(compare_metrics) / sizeof(compare_metrics[0])))

static int bench_compare(const struct cli_opts *o, int argc, char **argv)
{
    if (o->trace_out) {
        fprintf(stderr, "moestream bench: --trace-out records one configuration: run it without --compare\n");
        return 2;
    }
    int pairs = o->repeat > 0 ? o->repeat : BENCH_PAIRS;
    enum { MAX_ARGS = 256 };
    char *base[MAX_ARGS];
    int nb = 0;
    base[nb++] = "moestream";
    base[nb++] = "bench";
    base[nb++] = "--json";
    base[nb++] = "--repeat";
    base[nb++] = "1";
    for (int i = 0; i < argc && nb < MAX_ARGS - 1; i++) {
        if (!strcmp(argv[i], "--compare")) {
            i += 2;
            continue;
        }
        if (!strcmp(argv[i], "--repeat")) {
            i++;
            continue;
        }
        if (!strcmp(argv[i], "--json"))
            continue;
        base[nb++] = argv[i];
    }
    char *abuf = strdup(o->compare_a), *bbuf = strdup(o->compare_b);
    char *av[MAX_ARGS], *bv[MAX_ARGS];
    memcpy(av, base, sizeof(char *) * (size_t)nb);
    memcpy(bv, base, sizeof(char *) * (size_t)nb);
    int na = abuf ? split_args(abuf, av, nb, MAX_ARGS - 1) : -1;
    int nbv = bbuf ? split_args(bbuf, bv, nb, MAX_ARGS - 1) : -1;
    double *va = calloc((size_t)pairs * N_CMP, sizeof(double)), *vb = calloc((size_t)pairs * N_CMP, sizeof(double));
    char *js = malloc(1 << 16);
    double *a = calloc((size_t)pairs * 3, sizeof(double)), *b = a + pairs, *ratio = a + 2 * pairs;
    int rc = 1;
    if (na < 0 || nbv < 0 || !va || !vb || !js || !a) {
        fprintf(stderr, "moestream bench: --compare: too many arguments or out of memory\n");
        goto out;
    }
    av[na] = NULL;
    bv[nbv] = NULL;
    if (!o->json)
        printf("bench: compare A = \"%s\" and B = \"%s\", %d pairs run alternately A B A B ..., each in its own "
               "process\n",
               o->compare_a, o->compare_b, pairs);
    fflush(stdout);
    for (int p = 0; p < pairs; p++)
        for (int w = 0; w < 2; w++) {
            char **cv = w ? bv : av;
            int st = run_child(cv, js, 1 << 16);
            if (st != 0) {
                fprintf(stderr, "moestream bench: configuration %c (\"%s\") failed with status %d: see the message "
                                "above; check it alone with moestream bench -m DIR %s\n",
                        w ? 'B' : 'A', w ? o->compare_b : o->compare_a, st, w ? o->compare_b : o->compare_a);
                goto out;
            }
            for (int k = 0; k < N_CMP; k++) {
                double *dst = (w ? vb : va) + (size_t)p * N_CMP + k;
                if (!json_number(js, bench_metric_names[compare_metrics[k]], dst)) {
                    fprintf(stderr, "moestream bench: configuration %c printed no \"%s\" (output: %.200s)\n",
                            w ? 'B' : 'A', bench_metric_names[compare_metrics[k]], js);
                    goto out;
                }
            }
            if (!o->json)
                fprintf(stderr, "bench: pair %d/%d %c: decode %.2f tok/s, prompt %.1f tok/s\n", p + 1, pairs,
                        w ? 'B' : 'A', (w ? vb : va)[(size_t)p * N_CMP], (w ? vb : va)[(size_t)p * N_CMP + 1]);
        }
    if (o->json) {
        printf("{\"mode\":\"compare\",\"a\":");
        cli_json_str(stdout, o->compare_a);
        printf(",\"b\":");
        cli_json_str(stdout, o->compare_b);
        printf(",\"pairs\":%d,\"metrics\":{", pairs);
    } else {
        printf("%-26s %12s %12s %12s %12s %12s\n", "", "A median", "B median", "B/A median", "B/A min", "B/A max");
    }
    for (int k = 0; k < N_CMP; k++) {
        double am, bm, rm, rmin, rmax, x, y;
        int nr = 0;
        for (int p = 0; p < pairs; p++) {
            a[p] = va[(size_t)p * N_CMP + k];
            b[p] = vb[(size_t)p * N_CMP + k];
            if (a[p] != 0)
                ratio[nr++] = b[p] / a[p];
        }
        summarize(a, pairs, &am, &x, &y);
        summarize(b, pairs, &bm, &x, &y);
        if (nr)
            summarize(ratio, nr, &rm, &rmin, &rmax);
        else
            rm = rmin = rmax = 0; /* A was 0 in every pair (e.g. no reads): no ratio */
        int mk = compare_metrics[k];
        if (o->json) {
            printf("%s\"%s\":{\"a_median\":%.6g,\"b_median\":%.6g,\"ratio_median\":%.6g,\"ratio_min\":%.6g,"
                   "\"ratio_max\":%.6g}",
                   k ? "," : "", bench_metric_names[mk], am, bm, rm, rmin, rmax);
        } else {
            printf("%-26s", bench_metric_text[mk].label);
            print_metric(mk, am);
            print_metric(mk, bm);
            printf(" %12.3f %12.3f %12.3f\n", rm, rmin, rmax);
        }
    }
    if (o->json)
        printf("}}\n");
    rc = 0;
out:
    free(a);
    free(js);
    free(va);
    free(vb);
    free(abuf);
    free(bbuf);
    return rc;
}

int cli_bench(int argc, char **argv)
{
    struct cli_opts o;
    cli_parse(&o, argc, argv, BENCH_FLAGS, bench_usage);
    if (!o.has_n_predict)
        o.n_predict = BENCH_GEN_TOKENS;
    if (o.n_predict < 0) {
        fprintf(stderr, "moestream bench: -n must be 0 or more tokens\n");
        return 2;
    }
    if (!o.prompt_tokens)
        o.prompt_tokens = BENCH_PROMPT_TOKENS;
    if (!o.model_dir) {
        fprintf(stderr, "moestream bench: no model given: pass -m MODEL.gguf or -m DIR (made by moestream-split)\n");
        return 2;
    }
    if (o.prompt && o.prompt_file) {
        fprintf(stderr, "moestream bench: pass -p TEXT or -f FILE, not both\n");
        return 2;
    }
    if (o.n_parallel > 1 && (o.prompt || o.prompt_file || o.trace_out)) {
        fprintf(stderr, "moestream bench: --parallel uses synthetic prompts (--prompt-tokens) and no --trace-out\n");
        return 2;
    }
    if (o.compare_a)
        return bench_compare(&o, argc, argv);
    return bench_single(&o);
}
