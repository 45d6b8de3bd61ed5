/*
 * kbench_main.c - moestream-kbench: weight throughput of the dot kernels.
 *
 * For every weight format with a dot product and every ISA variant the CPU
 * supports (ref, avx2, avx512), times matvec() over a weight matrix larger
 * than the last-level cache, single-threaded and on all threads, and prints
 * GB/s of weights read next to the machine's memory bandwidth measured in the
 * same run (STREAM-style copy, counting bytes read + written, and a plain
 * read), and the activation quantizers (reference from_float against the
 * ISA's from_float_simd). Batch-1 decode is memory-bound, so a kernel is
 * fast enough when its GB/s reaches the read bandwidth. The matmul columns
 * time prompt processing: matmul() of --tokens activation rows against a
 * smaller (--mm-mb, cache-friendly like one attention matrix) weight matrix
 * on all threads, reported as effective GB/s = weight bytes x tokens / time,
 * the weight rate per-token matvec would need to match it; the ratio to the
 * matvec column is the gain of reusing weights across tokens (vec_dot_multi).
 * Owns argument parsing and output only;
 * the kernels, matvec and the pool do the work. Timing lives here, never in
 * tests.
 */
#include <errno.h>
#include <immintrin.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "gguf.h"
#include "matvec.h"
#include "pool.h"
#include "quant.h"
#include "quant_ref.h"
#include "version.h"

#define KB_MAX_ISA 3
static const char *const isa_names[KB_MAX_ISA] = { "ref", "avx2", "avx512" };

struct kb_opts {
    double mb;        /* weight matrix size per format, MiB */
    double seconds;   /* minimum timed duration per measurement */
    int64_t n;        /* elements per row */
    int threads;      /* "all threads" count */
    int tokens;       /* matmul activation rows; 0 = no matmul columns */
    double mm_mb;     /* matmul weight matrix size, MiB */
    int act_bits;     /* activation precision (enum matvec_act): 16 (default) or 8 */
    bool json;
    bool cpu_time;    /* 1-thread column in the thread's CPU time */
    const char *types; /* comma list of type names, NULL = all */
    const char *isas;  /* comma list of ISA names, NULL = all */
    const char *decode_gguf; /* --decode-bytes: print the weights per decode token and exit */
};

struct kb_result {
    double gbs[KB_MAX_ISA][2]; /* [isa][0 = 1 thread, 1 = all]; < 0: not run */
    bool fast[KB_MAX_ISA];     /* the ISA has its own kernel for this type */
    double mm_gbs[KB_MAX_ISA]; /* matmul effective GB/s, all threads; < 0: not run */
};

/* seconds on a clock: CLOCK_MONOTONIC (wall) or CLOCK_THREAD_CPUTIME_ID */
static double clock_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static float rng_float(void)
{
    return (float)(rng_next() >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}

/* true when name is in the comma-separated list (NULL list = everything) */
static bool in_list(const char *list, const char *name)
{
    if (!list)
        return true;
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l == len && strncasecmp(p, name, len) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

/* --- memory bandwidth ----------------------------------------------------- */

struct kb_mem_job {
    const uint8_t *src;
    uint8_t *dst;   /* NULL: read only */
    size_t bytes;
    uint64_t sums[64];
};

/* Sum of len bytes read with 256-bit loads, four independent accumulators:
 * the read bandwidth a SIMD kernel can see (a scalar loop is limited by
 * load instructions, not by memory, on one core). */
__attribute__((target("avx2"))) static uint64_t mem_read_avx2(const uint8_t *src, size_t len)
{
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 128 <= len; i += 128) {
        s0 = _mm256_add_epi64(s0, _mm256_loadu_si256((const __m256i *)(src + i)));
        s1 = _mm256_add_epi64(s1, _mm256_loadu_si256((const __m256i *)(src + i + 32)));
        s2 = _mm256_add_epi64(s2, _mm256_loadu_si256((const __m256i *)(src + i + 64)));
        s3 = _mm256_add_epi64(s3, _mm256_loadu_si256((const __m256i *)(src + i + 96)));
    }
    __m256i t = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, t);
    uint64_t sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    for (; i < len; i++)
        sum += src[i];
    return sum;
}

static void mem_task(void *ctx, int task, int n_tasks)
{
    struct kb_mem_job *j = ctx;
    size_t chunk = (j->bytes / (size_t)n_tasks) & ~(size_t)63;
    size_t off = chunk * (size_t)task;
    size_t len = task == n_tasks - 1 ? j->bytes - off : chunk;
    if (j->dst) {
        memcpy(j->dst + off, j->src + off, len);
        return;
    }
    if (__builtin_cpu_supports("avx2")) {
        j->sums[task % 64] = mem_read_avx2(j->src + off, len);
        return;
    }
    const uint64_t *p = (const uint64_t *)(j->src + off);
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= len / 8; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
    }
    j->sums[task % 64] = s0 + s1 + s2 + s3;
}

/* best GB/s over passes lasting at least 'seconds' in total */
static double time_mem(struct pool *p, struct kb_mem_job *j, double seconds)
{
    int n_tasks = pool_n_threads(p);
    pool_run(p, mem_task, j, n_tasks); /* warm-up, faults pages in */
    double best = 0.0, t_start = now_s();
    int passes = 0;
    do {
        double t0 = now_s();
        pool_run(p, mem_task, j, n_tasks);
        double dt = now_s() - t0;
        double gbs = (double)j->bytes * (j->dst ? 2.0 : 1.0) / dt * 1e-9;
        if (gbs > best)
            best = gbs;
        passes++;
    } while (now_s() - t_start < seconds || passes < 2);
    return best;
}

/* best microseconds of one from_float call over n elements */
static double time_quantize(quant_from_float_fn fn, const float *x, void *xq, int64_t n)
{
    double best = 1e30;
    for (int rep = 0; rep < 200; rep++) {
        double t0 = now_s();
        fn(x, xq, n);
        double dt = now_s() - t0;
        if (dt < best)
            best = dt;
    }
    return best * 1e6;
}

/* --- weights -------------------------------------------------------------- */

/* Random bytes with every block's scale fields set to sane values, so no
 * format sees NaN/Inf scales (denormal and NaN arithmetic can be slow). */
static void fill_weights(int t, uint8_t *w, int64_t n_rows, int64_t n)
{
    const struct quant_traits *tr = quant_traits(t);
    size_t bytes = quant_row_size(t, n) * (size_t)n_rows;
    if (t == QT_F32 || t == QT_F16 || t == QT_BF16) {
        for (size_t i = 0; i < bytes / tr->type_size; i++) {
            float v = rng_float();
            if (t == QT_F32)
                memcpy(w + 4 * i, &v, 4);
            else {
                uint16_t h = t == QT_F16 ? quant_fp32_to_fp16(v) : quant_fp32_to_bf16(v);
                memcpy(w + 2 * i, &h, 2);
            }
        }
        return;
    }
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
        uint64_t r = rng_next();
        memcpy(w + i, &r, 8);
    }
    /* offsets of the fp16 scale fields (-1: none) */
    long off_d = -1, off_m = -1;
    switch (t) {
    case QT_Q4_0: off_d = offsetof(block_q4_0, d); break;
    case QT_Q4_1: off_d = offsetof(block_q4_1, d); off_m = offsetof(block_q4_1, m); break;
    case QT_Q5_0: off_d = offsetof(block_q5_0, d); break;
    case QT_Q5_1: off_d = offsetof(block_q5_1, d); off_m = offsetof(block_q5_1, m); break;
    case QT_Q8_0: off_d = offsetof(block_q8_0, d); break;
    case QT_Q2_K: off_d = offsetof(block_q2_K, d); off_m = offsetof(block_q2_K, dmin); break;
    case QT_Q3_K: off_d = offsetof(block_q3_K, d); break;
    case QT_Q4_K: off_d = offsetof(block_q4_K, d); off_m = offsetof(block_q4_K, dmin); break;
    case QT_Q5_K: off_d = offsetof(block_q5_K, d); off_m = offsetof(block_q5_K, dmin); break;
    case QT_Q6_K: off_d = offsetof(block_q6_K, d); break;
    case QT_IQ4_NL: off_d = offsetof(block_iq4_nl, d); break;
    case QT_IQ4_XS: off_d = offsetof(block_iq4_xs, d); break;
    case QT_IQ3_S: off_d = offsetof(block_iq3_s, d); break;
    case QT_TQ2_0: off_d = offsetof(block_tq2_0, d); break;
    case QT_TQ1_0: off_d = offsetof(block_tq1_0, d); break;
    case QT_IQ2_XXS: off_d = offsetof(block_iq2_xxs, d); break;
    case QT_IQ2_XS: off_d = offsetof(block_iq2_xs, d); break;
    case QT_IQ2_S: off_d = offsetof(block_iq2_s, d); break;
    case QT_IQ3_XXS: off_d = offsetof(block_iq3_xxs, d); break;
    case QT_IQ1_S: off_d = offsetof(block_iq1_s, d); break;
    case QT_HQ2: off_d = offsetof(block_hq2, d); break;
    case QT_HQ3: off_d = offsetof(block_hq3, d); break;
    default: break;
    }
    size_t n_blocks = bytes / tr->type_size;
    for (size_t b = 0; b < n_blocks; b++) {
        uint8_t *blk = w + b * tr->type_size;
        if (t == QT_MXFP4) {
            blk[offsetof(block_mxfp4, e)] = (uint8_t)(120 + rng_next() % 12);
            continue;
        }
        qhalf d = quant_fp32_to_fp16(0.001f + 0.01f * (rng_float() + 1.0f));
        if (t == QT_IQ1_M) {
            /* the fp16 scale lives in the top nibble of each 16-bit word of scales */
            uint8_t *sc = blk + offsetof(block_iq1_m, scales);
            for (int k = 0; k < 4; k++)
                sc[2 * k + 1] = (uint8_t)((sc[2 * k + 1] & 0x0f) | (((d >> (4 * k)) & 0x0f) << 4));
            continue;
        }
        if (off_d >= 0)
            memcpy(blk + off_d, &d, sizeof(d));
        if (off_m >= 0)
            memcpy(blk + off_m, &d, sizeof(d));
    }
}

/* One line per measured format: its fastest ISA (by the 1-thread figure),
 * GB/s on 1 and all threads, and those figures relative to Q4_K's (same
 * columns) and to the plain-read memory bandwidth of this run. */
static void kb_print_summary(double best[][2], const int *isa, const double read_gbs[2], int threads)
{
    const double *q4k = best[QT_Q4_K];
    printf("\nsummary, fastest ISA per format: GB/s, x Q4_K, x memory read bandwidth (%.1f / %.1f GB/s)\n",
           read_gbs[0], read_gbs[1]);
    printf("%-8s %-7s %8s %8s   %8s %8s   %8s %8s\n", "type", "isa", "1t", "all", "xQ4_K 1t", "all", "xread 1t",
           "all");
    for (int t = 0; t < QT_COUNT; t++) {
        if (isa[t] < 0)
            continue;
        printf("%-8s %-7s %8.2f %8.2f", quant_traits(t)->name, isa_names[isa[t]], best[t][0], best[t][1]);
        if (q4k[0] > 0)
            printf("   %8.2f %8.2f", best[t][0] / q4k[0], best[t][1] / q4k[1]);
        else
            printf("   %8s %8s", "-", "-");
        printf("   %8.2f %8.2f\n", best[t][0] / read_gbs[0], best[t][1] / read_gbs[1]);
    }
    printf("(all = %d threads)\n", threads);
}

/* best GB/s of weights over matvec passes lasting at least 'seconds' */
static double time_matvec(struct pool *p, float *y, const uint8_t *W, int t, int64_t n_rows, int64_t n,
                          const void *xq, enum matvec_act act, double seconds, clockid_t clk)
{
    double bytes = (double)quant_row_size(t, n) * (double)n_rows;
    matvec(p, y, W, (enum quant_type)t, n_rows, n, xq, act); /* warm-up */
    double best = 0.0, t_start = now_s();
    int passes = 0;
    do {
        double t0 = clock_s(clk);
        matvec(p, y, W, (enum quant_type)t, n_rows, n, xq, act);
        double dt = clock_s(clk) - t0;
        if (bytes / dt * 1e-9 > best)
            best = bytes / dt * 1e-9;
        passes++;
    } while (now_s() - t_start < seconds || passes < 1);
    return best;
}

/* best effective GB/s (weight bytes x n_tok / time) over matmul passes */
static double time_matmul(struct pool *p, float *Y, const uint8_t *W, int t, int64_t n_rows, int64_t n,
                          const void *Xq, int64_t n_tok, enum matvec_act act, double seconds)
{
    double bytes = (double)quant_row_size(t, n) * (double)n_rows * (double)n_tok;
    matmul(p, Y, W, (enum quant_type)t, n_rows, n, Xq, n_tok, act); /* warm-up */
    double best = 0.0, t_start = now_s();
    int passes = 0;
    do {
        double t0 = now_s();
        matmul(p, Y, W, (enum quant_type)t, n_rows, n, Xq, n_tok, act);
        double dt = now_s() - t0;
        if (bytes / dt * 1e-9 > best)
            best = bytes / dt * 1e-9;
        passes++;
    } while (now_s() - t_start < seconds || passes < 1);
    return best;
}

/* Bytes of weights one decode token reads from the GGUF at path: every
 * tensor in full, except the expert tensors ("_exps": expert_used_count of
 * expert_count experts) and the token embedding (one row). 0 or -errno. */
static int kb_decode_bytes(const char *path, double *out)
{
    char err[256] = "";
    struct gguf_ctx *g = NULL;
    int rc = gguf_open(&g, path, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "kbench: %s\n", err);
        return rc;
    }
    const char *arch = NULL;
    char key[128];
    uint32_t n_exp = 0, n_used = 0;
    rc = gguf_get_str(g, "general.architecture", &arch);
    if (rc == 0) {
        snprintf(key, sizeof(key), "%s.expert_count", arch);
        rc = gguf_get_u32(g, key, &n_exp);
    }
    if (rc == 0) {
        snprintf(key, sizeof(key), "%s.expert_used_count", arch);
        rc = gguf_get_u32(g, key, &n_used);
    }
    if (rc != 0 || n_exp == 0) {
        fprintf(stderr, "kbench: %s: no general.architecture / expert_count / expert_used_count (not a MoE GGUF)\n",
                path);
        gguf_close(g);
        return rc ? rc : -EINVAL;
    }
    double bytes = 0;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        if (strstr(t->name, "_exps"))
            bytes += (double)t->size * n_used / n_exp;
        else if (strcmp(t->name, "token_embd.weight") == 0)
            bytes += (double)t->size / (double)(t->n_dims > 1 ? t->ne[1] : 1);
        else
            bytes += (double)t->size;
    }
    gguf_close(g);
    *out = bytes;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: moestream-kbench [options]\n"
            "Weight throughput (GB/s) of every dot kernel (ref, avx2, avx512) through matvec,\n"
            "one thread and all threads, on a matrix larger than the cache, beside the\n"
            "memory bandwidth measured in the same run.\n"
            "  --mb N         weight matrix size per format in MiB (default 512: well above the last-level cache)\n"
            "  --n N          elements per row (default 4096, a multiple of 256)\n"
            "  --seconds S    minimum time per measurement (default 0.3)\n"
            "  --threads N    threads for the all-threads column (default: online CPUs)\n"
            "  --tokens N     activation rows for the matmul columns (default 64; 0: skip matmul)\n"
            "  --mm-mb N      matmul weight matrix size in MiB (default 8)\n"
            "  --act-bits N   activation precision of the integer dots: 16 (default) or 8\n"
            "  --types LIST   comma list of formats, e.g. Q4_K,Q6_K (default: all)\n"
            "  --isa LIST     comma list of ref,avx2,avx512 (default: all the CPU supports)\n"
            "  --json         machine-readable output on stdout\n"
            "  --cpu-time     time the 1-thread column in the calling thread's CPU time (it runs\n"
            "                 every task itself): steady on a shared machine, where time slices lost\n"
            "                 to other processes would count as kernel time\n"
            "  --decode-bytes GGUF  print the bytes of weights one decode token reads from GGUF (every\n"
            "                 tensor, the routed share of the expert tensors, one row of token_embd) and exit\n"
            "  --help         this text\n");
}

static int parse_args(int argc, char **argv, struct kb_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        } else if (strcmp(a, "--cpu-time") == 0) {
            o->cpu_time = true;
            continue;
        }
        static const char *const with_value[] = { "--mb", "--seconds", "--n", "--threads", "--types", "--isa",
                                                   "--tokens", "--mm-mb", "--act-bits", "--decode-bytes" };
        bool known = false;
        for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
            known = known || strcmp(a, with_value[k]) == 0;
        if (!known) {
            fprintf(stderr, "kbench: unknown option '%s' (see --help)\n", a);
            return -EINVAL;
        }
        if (!v) {
            fprintf(stderr, "kbench: %s needs a value (see --help)\n", a);
            return -EINVAL;
        }
        char *end = NULL;
        if (strcmp(a, "--mb") == 0)
            o->mb = strtod(v, &end);
        else if (strcmp(a, "--seconds") == 0)
            o->seconds = strtod(v, &end);
        else if (strcmp(a, "--n") == 0)
            o->n = strtoll(v, &end, 10);
        else if (strcmp(a, "--threads") == 0)
            o->threads = (int)strtol(v, &end, 10);
        else if (strcmp(a, "--tokens") == 0)
            o->tokens = (int)strtol(v, &end, 10);
        else if (strcmp(a, "--mm-mb") == 0)
            o->mm_mb = strtod(v, &end);
        else if (strcmp(a, "--act-bits") == 0)
            o->act_bits = (int)strtol(v, &end, 10);
        else if (strcmp(a, "--types") == 0)
            o->types = v;
        else if (strcmp(a, "--decode-bytes") == 0)
            o->decode_gguf = v;
        else
            o->isas = v;
        if (end && *end) {
            fprintf(stderr, "kbench: %s: expected a number, got '%s'\n", a, v);
            return -EINVAL;
        }
        i++;
    }
    if (o->mb <= 0 || o->seconds < 0 || o->threads < 1 || o->n <= 0 || o->n % QK_K != 0 || o->tokens < 0 ||
        o->mm_mb <= 0 || (o->act_bits != 8 && o->act_bits != 16)) {
        fprintf(stderr, "kbench: need --mb > 0, --seconds >= 0, --threads >= 1, --n a positive multiple of %d, "
                        "--tokens >= 0, --mm-mb > 0, --act-bits 8 or 16\n",
                QK_K);
        return -EINVAL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (version_asked(argc, argv)) {
        char v[256];
        version_format(v, sizeof(v), "moestream-kbench");
        printf("%s\n", v);
        return 0;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    struct kb_opts o = { .mb = 512, .seconds = 0.3, .n = 4096, .threads = ncpu > 0 ? (int)ncpu : 1, .tokens = 64,
                         .mm_mb = 8, .act_bits = 16 };
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    if (o.decode_gguf) {
        double bytes;
        if (kb_decode_bytes(o.decode_gguf, &bytes) != 0)
            return 1;
        printf("decode_weight_bytes %.0f\n", bytes);
        return 0;
    }

    int rc = 1;
    struct pool *pools[2] = { pool_init(1), pool_init(o.threads) };
    size_t max_bytes = (size_t)(o.mb * 1024 * 1024);
    uint8_t *buf_a = malloc(max_bytes + 64), *buf_b = malloc(max_bytes + 64);
    float *x = malloc((size_t)o.n * sizeof(float));
    void *xq = malloc((size_t)o.n * 4 + 4096);
    float *y = NULL, *mm_y = NULL;
    uint8_t *mm_xq = malloc(((size_t)o.n * 4 + 4096) * (size_t)(o.tokens ? o.tokens : 1));
    float *mm_x = malloc((size_t)o.n * sizeof(float) * (size_t)(o.tokens ? o.tokens : 1));
    if (!pools[0] || !pools[1] || !buf_a || !buf_b || !x || !xq || !mm_xq || !mm_x) {
        fprintf(stderr, "kbench: out of memory for %.0f MiB buffers or %d threads\n", o.mb, o.threads);
        goto out_free;
    }

    /* huge pages, as the runtime's pinned weights and expert cache have */
    madvise((void *)((uintptr_t)buf_a & ~(uintptr_t)4095), max_bytes, MADV_HUGEPAGE);
    madvise((void *)((uintptr_t)buf_b & ~(uintptr_t)4095), max_bytes, MADV_HUGEPAGE);
    /* memory bandwidth: the same buffers the weights will use */
    for (size_t i = 0; i < max_bytes; i += 8) {
        uint64_t r = rng_next();
        memcpy(buf_a + i, &r, 8);
    }
    memset(buf_b, 0, max_bytes);
    struct kb_mem_job copy = { .src = buf_a, .dst = buf_b, .bytes = max_bytes };
    struct kb_mem_job read = { .src = buf_a, .dst = NULL, .bytes = max_bytes };
    double copy_gbs[2], read_gbs[2];
    for (int k = 0; k < 2; k++) {
        copy_gbs[k] = time_mem(pools[k], &copy, o.seconds);
        read_gbs[k] = time_mem(pools[k], &read, o.seconds);
    }
    free(buf_b);
    buf_b = NULL;

    bool isa_ok[KB_MAX_ISA];
    for (int s = 0; s < KB_MAX_ISA; s++)
        isa_ok[s] = in_list(o.isas, isa_names[s]) && quant_select_isa(isa_names[s]) == 0;

    /* activation quantizers: reference vs the ISA's from_float_simd */
    double q_us[2][KB_MAX_ISA]; /* [Q8_0, Q8_K][isa]; < 0: none */
    const int q_types[2] = { QT_Q8_0, QT_Q8_K };
    for (int i = 0; i < o.n; i++)
        x[i] = rng_float();
    for (int s = 0; s < KB_MAX_ISA; s++) {
        bool sel = isa_ok[s] && quant_select_isa(isa_names[s]) == 0;
        for (int q = 0; q < 2; q++) {
            const struct quant_traits *qt = quant_traits(q_types[q]);
            quant_from_float_fn fn = s == 0 ? qt->from_float : qt->from_float_simd;
            q_us[q][s] = sel && fn ? time_quantize(fn, x, xq, o.n) : -1.0;
        }
    }

    if (o.json) {
        printf("{\"threads\": %d, \"mib\": %.0f, \"n\": %lld, \"tokens\": %d, \"mm_mib\": %.0f, \"act_bits\": %d, "
               "\"cpu_time_1t\": %s,\n"
               " \"memory\": {\"copy_gbs_1t\": %.2f, \"copy_gbs_all\": %.2f, \"read_gbs_1t\": %.2f, "
               "\"read_gbs_all\": %.2f},\n",
               o.threads, o.mb, (long long)o.n, o.tokens, o.mm_mb, o.act_bits, o.cpu_time ? "true" : "false",
               copy_gbs[0], copy_gbs[1], read_gbs[0], read_gbs[1]);
        printf(" \"quantize_us\": {");
        const char *sep = "";
        for (int q = 0; q < 2; q++)
            for (int s = 0; s < KB_MAX_ISA; s++)
                if (q_us[q][s] >= 0) {
                    printf("%s\"%s_%s\": %.3f", sep, quant_traits(q_types[q])->name, isa_names[s], q_us[q][s]);
                    sep = ", ";
                }
        printf("},\n \"kernels\": [");
    } else {
        printf("moestream-kbench: %.0f MiB of weights per format, rows of %lld, %d threads, best of >= %.2f s, "
               "%d-bit activations%s\n",
               o.mb, (long long)o.n, o.threads, o.seconds, o.act_bits,
               o.cpu_time ? " (1-thread kernel columns in thread CPU time)" : "");
        printf("memory: copy %.1f GB/s (1 thread), %.1f GB/s (%d threads) [read+write bytes]; "
               "read %.1f GB/s (1 thread), %.1f GB/s (%d threads)\n",
               copy_gbs[0], copy_gbs[1], o.threads, read_gbs[0], read_gbs[1], o.threads);
        printf("activation quantize, %lld floats, us:", (long long)o.n);
        for (int q = 0; q < 2; q++)
            for (int s = 0; s < KB_MAX_ISA; s++)
                if (q_us[q][s] >= 0)
                    printf(" %s %s %.2f", quant_traits(q_types[q])->name, isa_names[s], q_us[q][s]);
        printf("\n\n");
        printf("weights GB/s     %-23s %-23s", "1 thread", "all threads");
        if (o.tokens)
            printf("   matmul %d tok, all threads", o.tokens);
        printf("\n%-8s %7s %7s %7s   %7s %7s %7s", "type", "ref", "avx2", "avx512", "ref", "avx2", "avx512");
        if (o.tokens)
            printf("   %7s %7s %7s", "ref", "avx2", "avx512");
        printf("\n");
    }

    bool first = true;
    /* per format: the fastest ISA's GB/s (1 thread, all threads), for the summary */
    static double best_gbs[QT_COUNT][2];
    static int best_isa[QT_COUNT];
    for (int t = 0; t < QT_COUNT; t++) {
        best_gbs[t][0] = best_gbs[t][1] = -1.0;
        best_isa[t] = -1;
    }
    for (int t = 0; t < QT_COUNT; t++) {
        if (quant_select_isa("ref") != 0)
            goto out_free;
        const struct quant_traits *tr = quant_traits(t);
        const struct quant_traits *at = quant_traits(tr->vec_dot_type);
        if (!tr->vec_dot_ref || !at->from_float || !in_list(o.types, tr->name))
            continue;
        size_t row = quant_row_size(t, o.n);
        int64_t n_rows = (int64_t)(max_bytes / row);
        if (row == 0 || n_rows < 1)
            continue;
        free(y);
        y = malloc((size_t)n_rows * sizeof(float));
        if (!y) {
            fprintf(stderr, "kbench: out of memory for %lld outputs\n", (long long)n_rows);
            goto out_free;
        }
        fill_weights(t, buf_a, n_rows, o.n);
        for (int64_t i = 0; i < o.n; i++)
            x[i] = rng_float();
        const enum matvec_act act = o.act_bits == 8 ? MATVEC_ACT8 : MATVEC_ACT16;
        matvec_quantize_act((enum quant_type)t, x, xq, o.n, act);
        /* matmul: the first rows of the same weights, tokens of random activations */
        const size_t act_size = matvec_act_size((enum quant_type)t, o.n, act);
        int64_t mm_rows = (int64_t)(o.mm_mb * 1024 * 1024 / (double)row);
        if (mm_rows < 1)
            mm_rows = 1;
        if (mm_rows > n_rows)
            mm_rows = n_rows;
        if (o.tokens) {
            free(mm_y);
            mm_y = malloc((size_t)mm_rows * (size_t)o.tokens * sizeof(float));
            if (!mm_y) {
                fprintf(stderr, "kbench: out of memory for %lld x %d matmul outputs\n", (long long)mm_rows, o.tokens);
                goto out_free;
            }
            for (int64_t i = 0; i < o.n * o.tokens; i++)
                mm_x[i] = rng_float();
            for (int k = 0; k < o.tokens; k++)
                matvec_quantize_act((enum quant_type)t, mm_x + (size_t)k * (size_t)o.n, mm_xq + (size_t)k * act_size,
                                    o.n, act);
        }

        struct kb_result r;
        for (int s = 0; s < KB_MAX_ISA; s++) {
            r.gbs[s][0] = r.gbs[s][1] = -1.0;
            r.mm_gbs[s] = -1.0;
            r.fast[s] = false;
            if (!isa_ok[s] || quant_select_isa(isa_names[s]) != 0)
                continue;
            r.fast[s] = s == 0 || tr->vec_dot != tr->vec_dot_ref;
            if (!r.fast[s])
                continue; /* same code as ref: not measured again */
            for (int k = 0; k < 2; k++)
                r.gbs[s][k] = time_matvec(pools[k], y, buf_a, t, n_rows, o.n, xq, act, o.seconds,
                                          k == 0 && o.cpu_time ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC);
            if (o.tokens)
                r.mm_gbs[s] = time_matmul(pools[1], mm_y, buf_a, t, mm_rows, o.n, mm_xq, o.tokens, act, o.seconds);
        }
        if (o.json) {
            printf("%s\n  {\"type\": \"%s\"", first ? "" : ",", tr->name);
            for (int s = 0; s < KB_MAX_ISA; s++) {
                if (r.gbs[s][0] < 0)
                    continue;
                printf(", \"%s_gbs_1t\": %.2f, \"%s_gbs_all\": %.2f", isa_names[s], r.gbs[s][0], isa_names[s],
                       r.gbs[s][1]);
                if (r.mm_gbs[s] >= 0)
                    printf(", \"%s_matmul_gbs_all\": %.2f", isa_names[s], r.mm_gbs[s]);
            }
            printf("}");
        } else {
            printf("%-8s", tr->name);
            for (int k = 0; k < 2; k++) {
                for (int s = 0; s < KB_MAX_ISA; s++) {
                    if (r.gbs[s][k] >= 0)
                        printf(" %7.2f", r.gbs[s][k]);
                    else
                        printf(" %7s", isa_ok[s] ? "=ref" : "-");
                }
                if (k == 0 || o.tokens)
                    printf("  ");
            }
            for (int s = 0; s < KB_MAX_ISA && o.tokens; s++) {
                if (r.mm_gbs[s] >= 0)
                    printf(" %7.2f", r.mm_gbs[s]);
                else
                    printf(" %7s", isa_ok[s] ? "=ref" : "-");
            }
            printf("\n");
        }
        fflush(stdout);
        first = false;
        for (int s = 0; s < KB_MAX_ISA; s++)
            if (r.gbs[s][0] > best_gbs[t][0]) {
                best_gbs[t][0] = r.gbs[s][0];
                best_gbs[t][1] = r.gbs[s][1];
                best_isa[t] = s;
            }
    }
    if (o.json) {
        printf("\n ]}\n");
    } else {
        printf("\n(=ref: this ISA uses the reference kernel for the format; -: ISA not run)\n");
        kb_print_summary(best_gbs, best_isa, read_gbs, o.threads);
        if (o.tokens)
            printf("(matmul: effective GB/s = weight bytes x tokens / time on a %.0f MiB matrix; two activation "
                   "passes count as one)\n",
                   o.mm_mb);
    }
    quant_init();
    rc = 0;

out_free:
    free(y);
    free(mm_y);
    free(mm_x);
    free(mm_xq);
    free(xq);
    free(x);
    free(buf_b);
    free(buf_a);
    if (pools[1])
        pool_free(pools[1]);
    if (pools[0])
        pool_free(pools[0]);
    return rc;
}
