/*
 * split_main.c - moestream-split: the command line of the offline splitter.
 *
 *   moestream-split MODEL.gguf -o DIR [--force] [-q]   convert
 *   moestream-split verify DIR [-q]                    re-read, check checksums
 *   moestream-split info FILE.gguf|DIR                 metadata and tensors
 *
 * Owns: argument parsing, the progress display, SIGINT/SIGTERM (the
 * conversion is cancelled cleanly, removing its temp dir) and exit codes:
 * 0 success, 1 failure (message on stderr), 2 usage error.
 * All the work is in split.c / splitfmt.c / gguf.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gguf.h"
#include "quant.h"
#include "split.h"
#include "split_calib.h"
#include "split_requant.h"
#include "splitfmt.h"
#include "version.h"

static volatile sig_atomic_t cancel_flag;

static void on_signal(int sig)
{
    (void)sig;
    cancel_flag = 1;
}

static void usage_convert(FILE *f)
{
    fprintf(f,
            "usage: moestream-split MODEL.gguf -o DIR [--force] [-q] [--no-check] [--requant q2|q3]\n"
            "                       [--stripe DIR1,DIR2[,...]]\n"
            "\n"
            "Splits a Mixture-of-Experts GGUF model into DIR: manifest.gguf (metadata),\n"
            "pinned.bin (every non-expert tensor) and one experts-LLL.bin per layer, each\n"
            "expert one 16 KiB-aligned blob, so moestream can stream experts from disk.\n"
            "For a multi-part model give the first part (name-00001-of-0000N.gguf).\n"
            "\n"
            "  -o, --output DIR  output directory (written as DIR.tmp-<pid>, renamed at the end)\n"
            "  -f, --force       replace DIR if it already holds a split model\n"
            "  -q, --quiet       no progress output\n"
            "      --stripe D1,D2[,...]  spread the experts files over these directories (one per\n"
            "                    drive; expert e of every layer in D(e %% n)/<name of DIR>/), so a\n"
            "                    step reads from every drive at once; DIR keeps the manifest and\n"
            "                    pinned.bin and records the stripes as paths relative to DIR\n"
            "      --no-check    split even a model the runtime cannot run (unknown architecture,\n"
            "                    missing tensors, types without kernels); by default it is refused\n"
            "                    before anything is written\n"
            "      --requant q2|q3  re-quantize the routed experts (gate, up, down) to moestream's\n"
            "                    HQ2 (2.06 bits per weight) or HQ3 (3.06) format: Hadamard-rotated\n"
            "                    groups of 256 on a Lloyd-Max codebook, no calibration data; every\n"
            "                    other tensor keeps its bytes. The manifest records it\n"
            "      --requant-bpw X  q2: average bits per weight of the experts, scales included\n"
            "                    (default 2.5; 2.0625 = HQ2 everywhere): the budget above HQ2 goes to\n"
            "                    HQ3 for the first layer's experts, then gate/up from both ends of\n"
            "                    the model inwards, then down\n"
            "      --requant-down q2|q3  the format of every down projection (no budget)\n"
            "      --calib-tokens N  self-calibration: the source model first writes N tokens of its\n"
            "                    own (sampled, no external text) while the inputs of every expert\n"
            "                    are recorded; the levels are then chosen by GPTQ against them\n"
            "                    (default 4096 with --requant when the statistics fit in 8 GiB,\n"
            "                    else 0: the plain fit, with a notice)\n"
            "  -h, --help        this text\n"
            "\n"
            "Other commands: moestream-split verify DIR, moestream-split info FILE|DIR\n"
            "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

static void usage_verify(FILE *f)
{
    fprintf(f, "usage: moestream-split verify DIR [-q]\n"
               "\n"
               "Re-reads every byte of the split model in DIR and checks sizes, alignment,\n"
               "the checksum of every pinned tensor and expert blob, and zero padding.\n"
               "Names the first bad tensor or blob (layer, expert, file, offset).\n"
               "Exit status: 0 intact, 1 damaged or unreadable, 2 usage error.\n");
}

static void usage_info(FILE *f)
{
    fprintf(f, "usage: moestream-split info FILE.gguf|DIR\n"
               "\n"
               "Prints the metadata and the tensor table of a GGUF file, or of a split\n"
               "model directory (pinned tensors, and per layer the expert blob layout).\n"
               "Exit status: 0 success, 1 unreadable input, 2 usage error.\n");
}

/* ---- progress ------------------------------------------------------------ */

struct progress {
    bool tty;
    double start, last;
    int last_decile;
    char last_stage[48];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fmt_eta(char *buf, size_t n, double s)
{
    if (s < 0 || s > 359999)
        snprintf(buf, n, "--:--");
    else if (s >= 3600)
        snprintf(buf, n, "%d:%02d:%02d", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
    else
        snprintf(buf, n, "%d:%02d", (int)s / 60, (int)s % 60);
}

static void on_progress(void *ud, uint64_t done, uint64_t total, const char *stage)
{
    struct progress *p = ud;
    double t = now_s();
    bool fin = done >= total;
    double frac = total ? (double)done / (double)total : 1.0;
    if (p->tty) {
        if (t - p->last < 0.1 && !fin && strcmp(stage, p->last_stage) == 0)
            return;
        double el = t - p->start, rate = el > 0 ? (double)done / el / 1e6 : 0;
        char eta[16];
        fmt_eta(eta, sizeof(eta), rate > 0 ? ((double)(total - done) / 1e6) / rate : -1);
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : ' ';
        bar[30] = '\0';
        fprintf(stderr, "\r[%s] %5.1f%%  %9.1f / %.1f MB  %7.1f MB/s  ETA %-8s %-16s", bar,
                frac * 100, (double)done / 1e6, (double)total / 1e6, rate, eta, stage);
        fflush(stderr);
    } else {
        int dec = (int)(frac * 10);
        if (dec == p->last_decile && t - p->last < 30)
            return;
        double el = t - p->start;
        fprintf(stderr, "%s: %.0f%% (%.1f / %.1f MB, %.1f MB/s)\n", stage, frac * 100,
                (double)done / 1e6, (double)total / 1e6,
                el > 0 ? (double)done / el / 1e6 : 0.0);
        p->last_decile = dec;
    }
    p->last = t;
    snprintf(p->last_stage, sizeof(p->last_stage), "%s", stage);
}

static void progress_init(struct progress *p)
{
    memset(p, 0, sizeof(*p));
    p->tty = isatty(STDERR_FILENO);
    p->start = p->last = now_s();
    p->last_decile = -1;
}

static void progress_end(struct progress *p)
{
    if (p->tty)
        fputc('\n', stderr);
}

/* The q2 budget over the layers holding routed experts in the GGUF in. */
static int requant_budget(struct split_requant *rq, const char *in, double bpw)
{
    struct gguf_ctx *g;
    char err[1024];
    int rc = gguf_open(&g, in, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "moestream-split: %s\n", err);
        return rc;
    }
    int first = -1, last = -1;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        int L;
        if (split_is_expert_name(gguf_tensor_at(g, i)->name, &L)) {
            first = first < 0 || L < first ? L : first;
            last = L > last ? L : last;
        }
    }
    gguf_close(g);
    rc = split_requant_set_budget(rq, first, last, bpw, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "moestream-split: %s\n", err);
    return rc;
}

/* ---- commands ----------------------------------------------------------- */

static int cmd_convert(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    const char *requant = NULL, *requant_down = NULL;
    long calib_tokens = -1; /* auto: SPLIT_CALIB_DEFAULT when --requant and the statistics fit */
    double bpw = 2.5;
    bool bpw_set = false;
    bool force = false, quiet = false, check = true;
    const char *stripe_arg = NULL;
    char stripe_buf[8192];
    const char *stripes[SPLIT_MAX_STRIPES];
    int n_stripe = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--requant") || !strcmp(a, "--requant-down")) {
            if (++i == argc) {
                fprintf(stderr, "moestream-split: %s needs q2 or q3\n", a);
                return 2;
            }
            *(!strcmp(a, "--requant") ? &requant : &requant_down) = argv[i];
            continue;
        }
        if (!strcmp(a, "--requant-bpw")) {
            char *end;
            if (++i == argc || ((bpw = strtod(argv[i], &end)), *end || end == argv[i])) {
                fprintf(stderr, "moestream-split: --requant-bpw needs a number of bits per weight\n");
                return 2;
            }
            bpw_set = true;
            continue;
        }
        if (!strcmp(a, "--calib-tokens")) {
            char *end;
            if (++i == argc || (calib_tokens = strtol(argv[i], &end, 10)) < 0 || *end || end == argv[i] ||
                calib_tokens > 100000000) {
                fprintf(stderr, "moestream-split: --calib-tokens needs a count of tokens (0 .. 100000000)\n");
                return 2;
            }
            continue;
        }
        if (!strcmp(a, "--stripe")) {
            if (++i == argc) {
                fprintf(stderr, "moestream-split: --stripe needs a comma-separated list of directories\n");
                return 2;
            }
            stripe_arg = argv[i];
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage_convert(stdout);
            return 0;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (++i == argc) {
                fprintf(stderr, "moestream-split: %s needs a directory\n", a);
                return 2;
            }
            out = argv[i];
        } else if (!strcmp(a, "-f") || !strcmp(a, "--force")) {
            force = true;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = true;
        } else if (!strcmp(a, "--no-check")) {
            check = false;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "moestream-split: unknown option %s (see --help)\n", a);
            return 2;
        } else if (!in) {
            in = a;
        } else {
            fprintf(stderr, "moestream-split: unexpected argument %s (one model per run)\n", a);
            return 2;
        }
    }
    if (!in || !out) {
        usage_convert(stderr);
        return 2;
    }
    if (stripe_arg) {
        if (strlen(stripe_arg) >= sizeof(stripe_buf)) {
            fprintf(stderr, "moestream-split: --stripe: list too long\n");
            return 2;
        }
        snprintf(stripe_buf, sizeof(stripe_buf), "%s", stripe_arg);
        for (char *save = NULL, *t = strtok_r(stripe_buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (n_stripe == SPLIT_MAX_STRIPES) {
                fprintf(stderr, "moestream-split: --stripe: more than %d directories\n", SPLIT_MAX_STRIPES);
                return 2;
            }
            stripes[n_stripe++] = t;
        }
        if (n_stripe < 2) {
            fprintf(stderr, "moestream-split: --stripe needs at least two directories (DIR1,DIR2), got \"%s\"\n",
                    stripe_arg);
            return 2;
        }
    }
    struct split_requant rq;
    char err[1024];
    int rc;
    if (requant_down && !requant) {
        fprintf(stderr, "moestream-split: --requant-down needs --requant\n");
        return 2;
    }
    if (requant) {
        struct split_requant down;
        if (split_requant_init(&rq, requant, err, sizeof(err)) < 0 ||
            (requant_down && split_requant_init(&down, requant_down, err, sizeof(err)) < 0)) {
            fprintf(stderr, "moestream-split: %s\n", err);
            return 2;
        }
        if (requant_down)
            split_requant_set_down(&rq, down.down_type);
        if ((bpw_set || (!requant_down && !strcmp(requant, "q2"))) && requant_budget(&rq, in, bpw) < 0) {
            split_requant_free(&rq);
            return 1;
        }
    } else if (calib_tokens > 0 || bpw_set) {
        fprintf(stderr, "moestream-split: --calib-tokens and --requant-bpw need --requant\n");
        return 2;
    }
    struct split_calib calib = { 0 };
    const bool calib_auto = calib_tokens < 0;
    if (calib_auto)
        calib_tokens = requant ? SPLIT_CALIB_DEFAULT : 0;
    if (calib_tokens) {
        double t0 = now_s();
        if (!quiet)
            fprintf(stderr, "self-calibration: generating %ld tokens with %s\n", calib_tokens, in);
        /* statistics up to 8 GiB; one thread per core as the runtime's default */
        rc = split_calib_run(&calib, in, (int)calib_tokens, 512, 1, (int)sysconf(_SC_NPROCESSORS_ONLN), 8ull << 30,
                             err, sizeof(err));
        if (rc == -E2BIG && calib_auto) {
            fprintf(stderr, "moestream-split: notice: %s; re-quantizing without self-calibration\n", err);
        } else if (rc < 0) {
            fprintf(stderr, "moestream-split: %s\n", err);
            split_requant_free(&rq);
            return 1;
        } else {
            if (!quiet)
                fprintf(stderr, "self-calibration: %ld tokens in %.1f s\n", calib_tokens, now_s() - t0);
            split_requant_set_calib(&rq, &calib);
        }
    }

    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESETHAND};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct progress pr;
    progress_init(&pr);
    struct split_options opt = {.input = in, .output_dir = out, .force = force,
                                .progress = quiet ? NULL : on_progress, .progress_ud = &pr,
                                .cancel = &cancel_flag, .check_runnable = check,
                                .transform = requant ? &rq.tf : NULL, .requant_note = requant ? rq.note : NULL,
                                .stripe_dirs = stripes, .n_stripe = n_stripe};
    struct split_stats st;
    rc = split_convert(&opt, &st, err, sizeof(err));
    if (requant)
        split_requant_free(&rq);
    split_calib_free(&calib);
    if (!quiet)
        progress_end(&pr);
    if (rc < 0) {
        if (rc == -ECANCELED)
            fprintf(stderr, "moestream-split: interrupted; removed the partial output, %s "
                            "is unchanged\n", out);
        else
            fprintf(stderr, "moestream-split: %s\n", err);
        return 1;
    }
    if (!quiet) {
        double el = now_s() - pr.start;
        fprintf(stderr,
                "wrote %s: %" PRId64 " pinned tensors (%.1f MB), %d expert layers (%.1f MB) "
                "in %.1f s, %.1f MB/s\n",
                out, st.n_pinned, (double)st.pinned_bytes / 1e6, st.n_expert_layers,
                (double)st.expert_bytes / 1e6, el,
                el > 0 ? (double)st.data_bytes / el / 1e6 : 0.0);
        if (requant)
            fprintf(stderr, "requant %s\n", rq.note);
    }
    return 0;
}

static int cmd_verify(int argc, char **argv)
{
    const char *dir = NULL;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage_verify(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
            quiet = true;
        } else if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "moestream-split verify: unexpected argument %s\n", argv[i]);
            return 2;
        } else {
            dir = argv[i];
        }
    }
    if (!dir) {
        usage_verify(stderr);
        return 2;
    }
    struct progress pr;
    progress_init(&pr);
    char err[1024];
    int rc = split_verify(dir, quiet ? NULL : on_progress, &pr, err, sizeof(err));
    if (!quiet)
        progress_end(&pr);
    if (rc < 0) {
        fprintf(stderr, "moestream-split: %s\n", err);
        return 1;
    }
    char sum[4200];
    struct stat st;
    snprintf(sum, sizeof(sum), "%s/" SPLIT_MANIFEST_SUM, dir);
    if (stat(sum, &st) < 0)
        fprintf(stderr, "%s: data OK, but the manifest has no checksum (%s is missing: made by an older "
                        "moestream-split); re-split to check the manifest too\n",
                dir, SPLIT_MANIFEST_SUM);
    else if (!quiet)
        fprintf(stderr, "%s: OK (manifest checksum, pinned tensors and every expert blob)\n", dir);
    struct split_model *m;
    const char *rq;
    if (!quiet && split_open(&m, dir, err, sizeof(err)) == 0) {
        if (gguf_get_str(m->manifest, SPLIT_KEY_REQUANT, &rq) == 0)
            fprintf(stderr, "%s: requantized experts: %s\n", dir, rq);
        split_close(m);
    }
    return 0;
}

static void print_shape(FILE *f, uint32_t n_dims, const int64_t *ne)
{
    char buf[96];
    int at = 0;
    for (uint32_t d = 0; d < n_dims && at < (int)sizeof(buf) - 24; d++)
        at += snprintf(buf + at, sizeof(buf) - (size_t)at, "%s%" PRId64, d ? ", " : "", ne[d]);
    fprintf(f, "[%s]", buf);
    for (int pad = at; pad < 22; pad++)
        fputc(' ', f);
}

static int info_gguf(const char *path)
{
    struct gguf_ctx *g;
    char err[1024];
    int rc = gguf_open(&g, path, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "moestream-split: %s\n", err);
        return 1;
    }
    FILE *f = stdout;
    fprintf(f, "%s: ", path);
    gguf_print_info(g, f);
    int64_t nt = gguf_n_tensors(g);
    uint64_t total = 0, experts = 0;
    for (int64_t i = 0; i < nt; i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        total += t->size;
        experts += split_is_expert_name(t->name, NULL) ? t->size : 0;
    }
    fprintf(f, "total %.1f MB of tensors, %.1f MB in *_exps.* tensors (%.1f%%)\n",
            (double)total / 1e6, (double)experts / 1e6,
            total ? 100.0 * (double)experts / (double)total : 0.0);
    gguf_close(g);
    return 0;
}

static int info_split(const char *dir)
{
    struct split_model *m;
    char err[1024];
    int rc = split_open(&m, dir, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "moestream-split: %s\n", err);
        return 1;
    }
    FILE *f = stdout;
    fprintf(f, "%s: split model, format %d, %d layers\n", dir,
            m->n_stripe > 1 ? SPLIT_FORMAT_VERSION : SPLIT_FORMAT_UNSTRIPED, m->n_layer);
    for (int s = 0; s < m->n_stripe; s++)
        fprintf(f, "stripe %d of %d: %s (experts e with e %% %d == %d)\n", s, m->n_stripe, m->stripe_dir[s],
                m->n_stripe, s);
    fputs("manifest: ", f);
    gguf_print_info(m->manifest, f);
    const char *rq;
    if (gguf_get_str(m->manifest, SPLIT_KEY_REQUANT, &rq) == 0)
        fprintf(f, "requantized experts: %s\n", rq);
    fprintf(f, "pinned tensors (%" PRId64 ", %s, %" PRIu64 " bytes):\n", m->n_tensor,
            m->pinned_path, m->pinned_file_size);
    for (int64_t i = 0; i < m->n_tensor; i++) {
        const struct split_tensor *t = &m->tensors[i];
        fprintf(f, "  %-36s %-7s ", t->name, quant_traits(t->type)->name);
        print_shape(f, t->n_dims, t->ne);
        fprintf(f, " %12" PRIu64 " B @ %" PRIu64 "  xxh3 %016" PRIx64 "\n", t->size,
                t->offset, t->xxh3);
    }
    uint64_t total = 0;
    for (int L = 0; L < m->n_layer; L++) {
        const struct split_layer *l = &m->layers[L];
        if (!l->n_expert) {
            fprintf(f, "layer %d: no routed experts\n", L);
            continue;
        }
        fprintf(f, "layer %d: %d experts, blob %" PRIu64 " B (%" PRIu64 " used), %s%s\n", L,
                l->n_expert, l->blob_size, l->blob_bytes, l->path,
                l->n_stripe > 1 ? " and the other stripes" : "");
        for (int p = 0; p < l->n_part; p++) {
            const struct split_part *pt = &l->parts[p];
            fprintf(f, "    %-32s %-7s ", pt->name, quant_traits(pt->type)->name);
            print_shape(f, pt->n_dims, pt->ne);
            fprintf(f, " %10" PRIu64 " B @ %" PRIu64 "\n", pt->size, pt->offset);
        }
        total += l->blob_size * (uint64_t)l->n_expert;
    }
    fprintf(f, "total: pinned %.1f MB, experts %.1f MB\n", (double)m->pinned_file_size / 1e6,
            (double)total / 1e6);
    split_close(m);
    return 0;
}

static int cmd_info(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        bool help = argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));
        usage_info(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    struct stat st;
    if (stat(argv[1], &st) < 0) {
        fprintf(stderr, "moestream-split: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    return S_ISDIR(st.st_mode) ? info_split(argv[1]) : info_gguf(argv[1]);
}

int main(int argc, char **argv)
{
    if (version_asked(argc, argv)) {
        char v[256];
        version_format(v, sizeof(v), "moestream-split");
        printf("%s\n", v);
        return 0;
    }
    if (argc < 2) {
        usage_convert(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "verify"))
        return cmd_verify(argc - 1, argv + 1);
    if (!strcmp(argv[1], "info"))
        return cmd_info(argc - 1, argv + 1);
    return cmd_convert(argc, argv);
}
