/*
 * synth_main.c - moestream-synth: the command line of the synthetic-model
 * generator (bench/synth.h). Owns argument parsing, the progress line on a
 * TTY, the summary and the exit status; the generator does the work.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "quant.h"
#include "synth.h"
#include "version.h"
#include "widen.h"

static volatile sig_atomic_t cancel_flag;

static void on_signal(int sig)
{
    (void)sig;
    cancel_flag = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct progress {
    double t0, last;
    bool tty;
};

static void progress_cb(void *ud, uint64_t done, uint64_t total)
{
    struct progress *pr = ud;
    if (!pr->tty)
        return;
    double t = now_s();
    if (t - pr->last < 0.25 && done < total)
        return;
    pr->last = t;
    double el = t - pr->t0, rate = el > 0 ? (double)done / el : 0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    fprintf(stderr, "\r  %8.2f / %.2f GB  %4.0f%%  %7.1f MB/s  ETA %4.0fs ", (double)done / 1e9,
            (double)total / 1e9, total ? 100.0 * (double)done / (double)total : 100.0, rate / 1e6,
            eta);
    if (done >= total)
        fputc('\n', stderr);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: moestream-synth --shape NAME (-o FILE.gguf | --split-dir DIR) [options]\n"
        "\n"
        "Writes a synthetic MoE model with the exact tensor names, shapes, types, metadata\n"
        "and tokenizer layout of a real one, filled with random valid quantized blocks\n"
        "(values ~ N(0, 1/fan_in), norms ~1, routers std 2/sqrt(n_embd)).\n"
        "\n"
        "  --shape NAME         qwen3-30b-a3b, qwen3-235b-a22b, qwen3-coder-480b-a35b,\n"
        "                       mixtral-8x7b, deepseek-v3-671b, kimi-k2 (1T), qwen3.5-35b-a3b,\n"
        "                       qwen3.6-35b-a3b, qwen3.5-122b-a10b, qwen3.5-397b-a17b, gpt-oss-20b,\n"
        "                       gpt-oss-120b (use --quant mxfp4_moe, their published mix), demo (~250 MB),\n"
        "                       tiny (~2 MB), tiny-ds2, tiny-gpt-oss (~3 MB, for tests)\n"
        "  -o, --output FILE    write a GGUF (FILE.tmp-<pid> first, renamed when complete)\n"
        "  --split-dir DIR      write a split model (splitfmt.h); needs 2x the size free\n"
        "                       while it runs (a temporary GGUF is split, then removed)\n"
        "  --quant Q            q4_k_m (default), q8_0, q2_k, q4_0, mxfp4_moe: llama.cpp's type mix;\n"
        "                       q2_k_xl: a Q2_K_XL-like mix (routed gate/up Q2_K, down Q3_K,\n"
        "                       pinned tensors Q4_K/Q6_K/Q8_0)\n"
        "                       iq1_s: an IQ1_S-like 1.58-bit mix (routed gate/up IQ1_S, down\n"
        "                       IQ2_XXS, the rest as q2_k_xl)\n"
        "  --layers N           only the first N layers\n"
        "  --experts N          N experts per layer instead of the preset's\n"
        "  --routing-skew S     router gain exp(S*g), g spread over [-1,1] across experts;\n"
        "                       0 = uniform expert popularity; default %.1f (busiest expert\n"
        "                       ~2.5x its uniform share with random inputs, 128 experts;\n"
        "                       cache hit rates it gives: bench/README.md)\n"
        "  --seed N             random seed (default %u); same options, same bytes\n"
        "  --widen-experts N FROM.gguf -o OUT.gguf\n"
        "                       instead of a synthetic model: FROM's routed experts padded\n"
        "                       with zero neurons to n_ff_exp N (same logits, bigger blobs;\n"
        "                       real routing for I/O benchmarks)\n"
        "  --dry-run            print the tensor plan summary and exit\n"
        "  -h, --help           this text\n",
        (double)SYNTH_DEFAULT_SKEW, SYNTH_DEFAULT_SEED);
}

static int parse_int(const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "moestream-synth: %s '%s': expected an integer in %ld..%ld\n", flag, s,
                lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static void print_stats(const struct synth_stats *st)
{
    printf("tensors: %" PRId64 ", tensor data %.3f GB (%.2f GiB)\n", st->n_tensor,
           (double)st->data_bytes / 1e9, (double)st->data_bytes / (1024.0 * 1024 * 1024));
    for (int t = 0; t < 64; t++) {
        if (st->type_count[t])
            printf("  %-7s %5" PRId64 " tensors  %10.3f GB\n", quant_traits(t)->name,
                   st->type_count[t], (double)st->type_bytes[t] / 1e9);
    }
}

int main(int argc, char **argv)
{
    if (version_asked(argc, argv)) {
        char v[256];
        version_format(v, sizeof(v), "moestream-synth");
        printf("%s\n", v);
        return 0;
    }
    struct synth_options opt = {
        .quant = SYNTH_Q4_K_M, .routing_skew = SYNTH_DEFAULT_SKEW, .seed = SYNTH_DEFAULT_SEED,
    };
    const char *out = NULL, *split_dir = NULL, *widen_from = NULL;
    long widen_n = 0;
    bool dry = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        long v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--dry-run")) {
            dry = true;
        } else if (!has) {
            fprintf(stderr, "moestream-synth: %s: unknown option or missing value (see --help)\n", a);
            return 2;
        } else if (!strcmp(a, "--widen-experts")) {
            if (i + 2 >= argc) {
                fprintf(stderr, "moestream-synth: --widen-experts needs N and FROM.gguf\n");
                return 2;
            }
            if (parse_int(a, argv[++i], 1, 1 << 20, &widen_n))
                return 2;
            widen_from = argv[++i];
        } else if (!strcmp(a, "--shape")) {
            opt.shape = argv[++i];
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out = argv[++i];
        } else if (!strcmp(a, "--split-dir")) {
            split_dir = argv[++i];
        } else if (!strcmp(a, "--quant")) {
            if (synth_parse_quant(argv[++i], &opt.quant)) {
                fprintf(stderr, "moestream-synth: --quant '%s': expected q4_k_m, q8_0, q2_k, q4_0, q2_k_xl, mxfp4_moe or iq1_s\n",
                        argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--layers")) {
            if (parse_int(a, argv[++i], 1, 100000, &v))
                return 2;
            opt.n_layer = (int)v;
        } else if (!strcmp(a, "--experts")) {
            if (parse_int(a, argv[++i], 1, 4096, &v))
                return 2;
            opt.n_expert = (int)v;
        } else if (!strcmp(a, "--seed")) {
            if (parse_int(a, argv[++i], 0, 0x7fffffffL, &v))
                return 2;
            opt.seed = (uint64_t)v;
        } else if (!strcmp(a, "--routing-skew")) {
            char *end;
            opt.routing_skew = strtof(argv[++i], &end);
            if (*end || end == argv[i]) {
                fprintf(stderr, "moestream-synth: --routing-skew '%s': expected a number\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "moestream-synth: unknown option %s (see --help)\n", a);
            return 2;
        }
    }
    if (widen_from) {
        if (!out || split_dir || opt.shape) {
            fprintf(stderr, "moestream-synth: --widen-experts takes -o OUT.gguf only (no --shape, --split-dir)\n");
            return 2;
        }
        char werr[512] = "";
        uint64_t nb = 0;
        double t0 = now_s();
        if (widen_experts(widen_from, out, (int)widen_n, &nb, werr, sizeof(werr))) {
            fprintf(stderr, "moestream-synth: %s\n", werr);
            return 1;
        }
        printf("wrote %s (%s, experts widened to n_ff_exp %ld) in %.1f s, %.1f MB of tensor data\n", out,
               widen_from, widen_n, now_s() - t0, (double)nb / 1e6);
        return 0;
    }
    if (!opt.shape || !synth_find_shape(opt.shape)) {
        fprintf(stderr, "moestream-synth: --shape '%s': expected one of", opt.shape ? opt.shape : "");
        for (const char *const *n = synth_shape_names(); *n; n++)
            fprintf(stderr, " %s", *n);
        fprintf(stderr, "\n");
        return 2;
    }
    char err[512] = "";
    struct synth_stats st;
    if (dry) {
        if (synth_plan(&opt, &st, err, sizeof(err))) {
            fprintf(stderr, "moestream-synth: %s\n", err);
            return 1;
        }
        printf("%s %s (plan only)\n", opt.shape, synth_quant_name(opt.quant));
        print_stats(&st);
        return 0;
    }
    if (!out == !split_dir) {
        fprintf(stderr, "moestream-synth: give exactly one of -o FILE.gguf or --split-dir DIR\n");
        return 2;
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    opt.cancel = &cancel_flag;
    struct progress pr = { .t0 = now_s(), .tty = isatty(2) };
    opt.progress = progress_cb;
    opt.progress_ud = &pr;
    int rc = out ? synth_write_gguf(&opt, out, &st, err, sizeof(err))
                 : synth_write_split(&opt, split_dir, &st, err, sizeof(err));
    double el = now_s() - pr.t0;
    if (rc) {
        if (pr.tty)
            fputc('\n', stderr);
        fprintf(stderr, "moestream-synth: %s\n", err);
        return 1;
    }
    printf("wrote %s (%s %s) in %.1f s, %.1f MB/s\n", out ? out : split_dir, opt.shape,
           synth_quant_name(opt.quant), el, el > 0 ? (double)st.data_bytes / el / 1e6 : 0.0);
    if (out)
        printf("file size %.3f GB\n", (double)st.file_bytes / 1e9);
    print_stats(&st);
    return 0;
}
