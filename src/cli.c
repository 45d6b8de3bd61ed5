/*
 * cli.c - flag parsing, model loading and statistics shared by every
 * subcommand of `moestream`. Errors are one line on stderr saying what to do.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "gguf.h"
#include "matvec.h"
#include "prefetch.h"
#include "quant.h"
#include "tokenizer.h"
#include "trace.h"
#include "version.h"

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

uint64_t cli_peak_rss(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_maxrss * 1024;
}

void cli_common_help(FILE *out)
{
    fprintf(out,
            "model and runtime:\n"
            "  -m, --model PATH       a GGUF file (first part of a multi-part one), or a split model\n"
            "                         directory made from it by moestream-split (one read per expert,\n"
            "                         checksums: the fast path)\n"
            "  -t, --threads N        compute threads (default: all cores)\n"
            "  -c, --ctx-size N       context length (default: min(model context, 4096))\n"
            "  -b, --batch-size N     tokens per step in prompt processing (default 256)\n"
            "      --cache-type T     attention KV cache type: f32 (default: near-exact logits) or f16\n"
            "                         (half the KV RAM, faster decode at long contexts, slightly less\n"
            "                         exact logits); llama.cpp's -ctk/--cache-type-k and -ctv/\n"
            "                         --cache-type-v are accepted with equal values. deepseek2's MLA\n"
            "                         latent cache stays f32\n"
            "      --ram-budget SIZE  RAM for everything: pinned weights, KV, expert cache\n"
            "                         (e.g. 8G; default 80%% of available memory)\n"
            "      --io BACKEND       uring (default), pread or buffered\n"
            "      --queue-depth N    reads in flight (default: from a 0.3-1 s probe of the store at open,\n"
            "                         models with 1 GiB of experts or more; else 16; --stats says which)\n"
            "      --ssd-cache DIR    SSD tier: keep copies of experts read from a slow store (a USB\n"
            "                         drive) in DIR/moestream-tier.bin on a faster disk; misses of the\n"
            "                         RAM cache read it before the store. Checked like the store, kept\n"
            "                         across runs, rebuilt when it belongs to another split\n"
            "      --ssd-cache-size SIZE  bound on the tier file (e.g. 40G; default half the free\n"
            "                         space in DIR)\n"
            "      --read-chunk SIZE  read each expert as concurrent pieces of about SIZE (e.g. 1M;\n"
            "                         default 0: one read per expert)\n"
            "      --mlock            lock pinned weights and cache in RAM\n"
            "      --no-verify-reads  do not check the XXH3 of every expert read from disk (checked by\n"
            "                         default: about 1%% of decode time; --verify-reads is accepted)\n"
            "      --stats            I/O and timing statistics on stderr\n"
            "      --stats-json       the same as one JSON line on stderr (run and chat: first one\n"
            "                         line per generated token with its reads, hits and I/O wait)\n"
            "      --trace-out FILE   record the routed experts per step, token and layer (JSON lines,\n"
            "                         format in src/trace.h; replay with moestream iobench --trace)\n"
            "      --cache-policy P   expert cache replacement: slru (default) or lru\n"
            "      --cache-size SIZE  expert cache size, instead of what the budget leaves (benchmarks)\n"
            "      --moe-topk K       route each token to K experts instead of the model's count (lossy:\n"
            "                         fewer reads and less compute per token; bench/README.md has the cost)\n"
            "      --cache-bias B     add B to the router logits of experts already in the cache before\n"
            "                         the top-k (lossy: fewer reads; 0 = off, the default; 1 is common)\n"
            "      --preload          read every expert that fits the cache before running (warm start)\n"
            "      --prefetch [P]     in decode, read the next layer's likely experts early: off\n"
            "                         (default), lookahead (its router on this layer's state; bare\n"
            "                         --prefetch), coact (co-activation statistics) or both\n"
            "      --coact FILE       co-activation statistics: loaded if FILE exists, saved at exit\n"
            "      --pin-profile T    keep the most-routed experts of trace T (--trace-out) resident\n"
            "                         (half the cache slots); the rest follows --cache-policy\n"
            "      --act-bits P       activation precision of the integer dot products: 16 (Q8 + Q8\n"
            "                         residual everywhere: near-exact logits), 8 (llama.cpp's precision,\n"
            "                         fastest) or mixed (default: the routed experts' down projection at 8,\n"
            "                         the rest at 16; closer to exact than llama.cpp on every fixture); per\n"
            "                         site: e.g. mixed,expert=8 (sites: attn, router, expert, down, shared,\n"
            "                         output)\n"
            "      --no-escape        keep backslash escapes in prompt text literal (by default\n"
            "                         \\n \\t \\\\ \\xHH ... are rewritten, as llama.cpp does)\n");
}

static void die_flag(const char *flag, const char *what)
{
    fprintf(stderr, "moestream: %s: %s (see --help)\n", flag, what);
    exit(2);
}

/* --act-bits: comma-separated items applied in order, each 16, 8 or mixed
 * (every site) or SITE=8|16 (one site). 0 or -1. */
static int parse_act_bits(const char *v, uint8_t site[ENGINE_N_SITES])
{
    uint8_t s[ENGINE_N_SITES] = { 0 };
    const char *p = v;
    for (;;) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        if (!eq) {
            int bits = len == 5 && !strncmp(p, "mixed", 5) ? 0 : len == 2 && !strncmp(p, "16", 2) ? 16
                       : len == 1 && p[0] == '8'                   ? 8
                                                                   : -1;
            if (bits < 0)
                return -1;
            memset(s, bits, sizeof(s));
        } else {
            size_t nl = (size_t)(eq - p), bl = len - nl - 1;
            int bits = bl == 2 && !strncmp(eq + 1, "16", 2) ? 16 : bl == 1 && eq[1] == '8' ? 8 : -1;
            int k = 0;
            while (k < ENGINE_N_SITES && (strlen(engine_site_name((enum engine_site)k)) != nl ||
                                          strncmp(p, engine_site_name((enum engine_site)k), nl)))
                k++;
            if (bits < 0 || k == ENGINE_N_SITES)
                return -1;
            s[k] = (uint8_t)bits;
        }
        if (!p[len])
            break;
        p += len + 1;
    }
    memcpy(site, s, sizeof(s));
    return 0;
}

static long parse_int(const char *flag, const char *v, long lo, long hi)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        char msg[128];
        snprintf(msg, sizeof(msg), "expected an integer in %ld..%ld, got '%s'", lo, hi, v);
        die_flag(flag, msg);
    }
    return x;
}

static float parse_float(const char *flag, const char *v)
{
    char *end;
    float x = strtof(v, &end);
    if (end == v || *end) {
        char msg[128];
        snprintf(msg, sizeof(msg), "expected a number, got '%s'", v);
        die_flag(flag, msg);
    }
    return x;
}

/* Is flag (its long form) in the subcommand's list? */
static bool allowed_flag(const char *allowed, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = allowed; (p = strstr(p, name)); p += n)
        if ((p == allowed || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
            return true;
    return false;
}

/* Flags of llama.cpp that mean nothing here: accepted by every subcommand. */
#define CLI_IGNORED_FLAGS "--n-gpu-layers --flash-attn --ubatch-size --color --verbose --log-disable"

/* Flags whose value is optional (llama.cpp's [on|off|auto]). */
static bool optional_value(const char *a)
{
    return !strcmp(a, "--flash-attn") || !strcmp(a, "--color") || !strcmp(a, "--reasoning");
}

static void notice(const struct cli_opts *o, const char *flag, const char *why)
{
    if (!o->log_disable)
        fprintf(stderr, "moestream: %s ignored: %s\n", flag, why);
}

void cli_parse(struct cli_opts *o, int argc, char **argv, const char *allowed, void (*usage)(FILE *out))
{
    memset(o, 0, sizeof(*o));
    o->n_predict = 128;
    o->n_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (o->n_threads < 1)
        o->n_threads = 1;
    o->n_batch = 256;
    o->io = PROVIDER_IO_URING;
    o->queue_depth = 0;
    o->act_bits = "mixed";
    o->reasoning = -1;
    /* every expert read is checked against its XXH3 by default: it cost
     * 1.1-1.4% of decode time on the demo model streamed at 192M, 0.5-1.7% on
     * tinymoe at 140M (see bench/README.md); --no-verify-reads for the rest */
    o->verify_reads = true;
    sampler_default_opts(&o->samp);
    o->seed_random = true;
    static const struct { const char *s, *l; } alias[] = {
        { "-m", "--model" }, { "-p", "--prompt" }, { "-f", "--file" }, { "-n", "--n-predict" },
        { "-t", "--threads" }, { "-c", "--ctx-size" }, { "-b", "--batch-size" }, { "-s", "--seed" },
        { "-h", "--help" }, { "-sys", "--system" }, { "--system-prompt", "--system" },
        { "-cnv", "--conversation" }, { "-no-cnv", "--no-conversation" }, { "-i", "--interactive" },
        { "-r", "--reverse-prompt" }, { "-v", "--verbose" }, { "--log-verbose", "--verbose" },
        { "-ngl", "--n-gpu-layers" }, { "--gpu-layers", "--n-gpu-layers" }, { "-fa", "--flash-attn" },
        { "-ub", "--ubatch-size" }, { "-co", "--color" }, { "-sp", "--special" }, { "-rea", "--reasoning" },
        { "--predict", "--n-predict" }, { "--temperature", "--temp" }, { "-ctk", "--cache-type-k" },
        { "-ctv", "--cache-type-v" },
    };
    /* --log-disable silences the notices below, wherever it appears */
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--log-disable"))
            o->log_disable = true;
    bool had_prompt = false, had_file = false, had_keep = false;
    const char *ctk = "f32", *ctv = "f32"; /* KV cache types as given (validated in the loop) */
    for (int i = 0; i < argc; i++) {
        char name[64];
        const char *a = argv[i], *inline_v = NULL;
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        if (eq && (size_t)(eq - a) < sizeof(name)) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = 0;
            a = name;
            inline_v = eq + 1;
        }
        for (size_t j = 0; j < sizeof(alias) / sizeof(alias[0]); j++)
            if (strcmp(a, alias[j].s) == 0)
                a = alias[j].l;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--version") == 0) {
            char v[256];
            version_format(v, sizeof(v), "moestream");
            printf("%s\n", v);
            exit(0);
        }
        bool known = allowed_flag(allowed, a) || allowed_flag(CLI_IGNORED_FLAGS, a) ||
                     (!strcmp(a, "--no-verify-reads") && allowed_flag(allowed, "--verify-reads"));
        if (strncmp(a, "--", 2) != 0 || !known) {
            fprintf(stderr, "moestream: unknown option '%s' (see --help)\n", argv[i]);
            exit(2);
        }
        /* flags without a value */
        bool *flag = NULL;
        if (!strcmp(a, "--mlock")) flag = &o->mlock;
        else if (!strcmp(a, "--stats")) flag = &o->stats;
        else if (!strcmp(a, "--stats-json")) flag = &o->stats_json;
        else if (!strcmp(a, "--special")) flag = &o->special;
        else if (!strcmp(a, "--bos")) flag = &o->bos;
        else if (!strcmp(a, "--ids")) flag = &o->ids;
        else if (!strcmp(a, "--no-escape")) flag = &o->no_escape;
        else if (!strcmp(a, "--verbose-prompt")) flag = &o->verbose_prompt;
        else if (!strcmp(a, "--chat")) flag = &o->chat;
        else if (!strcmp(a, "--jinja")) flag = &o->jinja; /* llama.cpp habit: templates are always Jinja here */
        else if (!strcmp(a, "--preload")) flag = &o->preload;
        else if (!strcmp(a, "--cold")) flag = &o->cold;
        else if (!strcmp(a, "--json")) flag = &o->json;
        else if (!strcmp(a, "--no-display-prompt")) flag = &o->no_display_prompt;
        else if (!strcmp(a, "--ignore-eos")) flag = &o->ignore_eos;
        else if (!strcmp(a, "--log-disable")) flag = &o->log_disable;
        else if (!strcmp(a, "--context-shift")) flag = &o->context_shift;
        if (flag) {
            if (inline_v)
                die_flag(a, "takes no value");
            *flag = true;
            continue;
        }
        if (!strcmp(a, "--display-prompt")) { o->no_display_prompt = false; continue; }
        if (!strcmp(a, "--verify-reads") || !strcmp(a, "--no-verify-reads")) {
            o->verify_reads = a[2] == 'v';
            o->verify_given = true;
            continue;
        }
        if (!strcmp(a, "--no-jinja")) { o->jinja = false; continue; }
        if (!strcmp(a, "--no-context-shift")) { o->context_shift = false; continue; }
        if (!strcmp(a, "--verbose")) { notice(o, argv[i], "statistics are --stats / --stats-json"); continue; }
        if (!strcmp(a, "--interactive") || !strcmp(a, "--conversation")) {
            notice(o, argv[i], "use `moestream chat -m MODEL` for a conversation");
            continue;
        }
        if (!strcmp(a, "--no-conversation")) continue; /* run never converses */
        if (!strcmp(a, "--prefetch")) {
            /* bare --prefetch (the old flag) is router lookahead */
            enum prefetch_kind pk = PREFETCH_LOOKAHEAD;
            const char *pv = inline_v;
            if (!pv && i + 1 < argc && strncmp(argv[i + 1], "-", 1))
                pv = argv[++i];
            if (pv && prefetch_parse_kind(pv, &pk) < 0)
                die_flag(a, "expected off, lookahead, coact or both");
            o->prefetch = (int)pk;
            continue;
        }
        if (!strcmp(a, "--compare")) {
            if (i + 2 >= argc)
                die_flag(a, "needs two quoted argument lists, e.g. --compare \"--io pread\" \"--io uring\"");
            o->compare_a = argv[++i];
            o->compare_b = argv[++i];
            continue;
        }
        const char *v = inline_v;
        if (!v && optional_value(a)) {
            if (i + 1 < argc && (!strcmp(argv[i + 1], "on") || !strcmp(argv[i + 1], "off") ||
                                 !strcmp(argv[i + 1], "auto")))
                v = argv[++i];
            else
                v = "on";
        }
        if (!v) {
            if (i + 1 >= argc)
                die_flag(a, "needs a value");
            v = argv[++i];
        }
        if (!strcmp(a, "--model")) o->model_dir = v;
        else if (!strcmp(a, "--prompt")) { o->prompt = v; had_prompt = true; }
        else if (!strcmp(a, "--file")) { o->prompt_file = v; had_file = true; }
        else if (!strcmp(a, "--system")) o->system = v;
        else if (!strcmp(a, "--chat-template")) o->chat_template = v;
        else if (!strcmp(a, "--reasoning")) {
            if (strcmp(v, "on") && strcmp(v, "off") && strcmp(v, "auto"))
                die_flag(a, "expects on, off or auto");
            o->reasoning = !strcmp(v, "auto") ? -1 : !strcmp(v, "on");
        }
        else if (!strcmp(a, "--n-gpu-layers")) {
            parse_int(a, v, -1, INT_MAX);
            notice(o, "-ngl", "moestream runs on the CPU and streams the experts from disk");
        }
        else if (!strcmp(a, "--flash-attn")) notice(o, "-fa", "attention runs on the CPU in one fused loop");
        else if (!strcmp(a, "--ubatch-size")) {
            parse_int(a, v, 1, INT_MAX);
            notice(o, "-ub", "-b sets the tokens per step");
        }
        else if (!strcmp(a, "--color")) notice(o, "--color", "output is plain text");
        else if (!strcmp(a, "--keep")) {
            o->keep = (int)parse_int(a, v, -1, INT_MAX);
            had_keep = true;
        }
        else if (!strcmp(a, "--reverse-prompt"))
            notice(o, "-r", "reverse prompts are not supported (chat stops at the end of the turn)");
        else if (!strcmp(a, "--presence-penalty") || !strcmp(a, "--frequency-penalty")) {
            float x = parse_float(a, v);
            if (x != 0)
                notice(o, a[2] == 'p' ? "--presence-penalty" : "--frequency-penalty",
                       "not implemented; --repeat-penalty is");
        }
        else if (!strcmp(a, "--n-predict")) {
            o->n_predict = (int)parse_int(a, v, -1, INT_MAX);
            o->has_n_predict = true;
        }
        else if (!strcmp(a, "--repeat")) o->repeat = (int)parse_int(a, v, 1, 10000);
        else if (!strcmp(a, "--prompt-tokens")) o->prompt_tokens = (int)parse_int(a, v, 1, 1 << 24);
        else if (!strcmp(a, "--trace")) o->trace_in = v;
        else if (!strcmp(a, "--device")) o->device = v;
        else if (!strcmp(a, "--qd")) o->qd_list = v;
        else if (!strcmp(a, "--seconds")) {
            o->seconds = parse_float(a, v);
            if (!(o->seconds > 0 && o->seconds <= 3600))
                die_flag(a, "expected seconds in (0, 3600]");
        }
        else if (!strcmp(a, "--size")) {
            int rc = model_parse_size(v, &o->size);
            if (rc == -ERANGE)
                die_flag(a, "the size does not fit in 64 bits");
            if (rc < 0 || o->size == 0)
                die_flag(a, "expected a size such as 1M, 256K or 4194304");
        }
        else if (!strcmp(a, "--coact")) o->coact = v;
        else if (!strcmp(a, "--pin-profile")) o->pin_profile = v;
        else if (!strcmp(a, "--cache-policy")) {
            if (!strcmp(v, "slru")) o->cache_policy = PROVIDER_CACHE_SLRU;
            else if (!strcmp(v, "lru")) o->cache_policy = PROVIDER_CACHE_LRU;
            else die_flag(a, "expected slru or lru");
        }
        else if (!strcmp(a, "--parallel")) o->n_parallel = (int)parse_int(a, v, 1, 256);
        else if (!strcmp(a, "--threads")) o->n_threads = (int)parse_int(a, v, 1, 1024);
        else if (!strcmp(a, "--ctx-size")) o->n_ctx = (int)parse_int(a, v, 0, 1 << 24);
        else if (!strcmp(a, "--batch-size")) o->n_batch = (int)parse_int(a, v, 1, 1 << 16);
        else if (!strcmp(a, "--queue-depth")) o->queue_depth = (int)parse_int(a, v, 1, 4096);
        else if (!strcmp(a, "--ssd-cache")) o->ssd_cache = v;
        else if (!strcmp(a, "--ssd-cache-size")) {
            if (model_parse_size(v, &o->ssd_cache_size) < 0 || !o->ssd_cache_size)
                die_flag(a, "expected a size such as 40G or 512M");
        }
        else if (!strcmp(a, "--read-chunk")) {
            int rc = model_parse_size(v, &o->read_chunk);
            if (rc < 0 || (o->read_chunk && o->read_chunk < 4096))
                die_flag(a, "expected a size of at least 4K such as 1M, or 0 for whole experts");
        }
        else if (!strcmp(a, "--seed")) {
            long x = parse_int(a, v, -1, LONG_MAX);
            o->seed_random = x == -1;
            o->samp.seed = x == -1 ? sampler_random_seed() : (uint64_t)x;
        }
        else if (!strcmp(a, "--temp")) o->samp.temperature = parse_float(a, v);
        else if (!strcmp(a, "--top-k")) o->samp.top_k = (int)parse_int(a, v, 0, INT_MAX);
        else if (!strcmp(a, "--top-p")) o->samp.top_p = parse_float(a, v);
        else if (!strcmp(a, "--min-p")) o->samp.min_p = parse_float(a, v);
        else if (!strcmp(a, "--repeat-penalty")) o->samp.repeat_penalty = parse_float(a, v);
        else if (!strcmp(a, "--repeat-last-n")) o->samp.repeat_last_n = (int)parse_int(a, v, 0, 1 << 20);
        else if (!strcmp(a, "--trace-out")) o->trace_out = v;
        else if (!strcmp(a, "--cache-size")) {
            if (model_parse_size(v, &o->cache_size) < 0 || !o->cache_size)
                die_flag(a, "expected a size such as 96M or 2G");
        }
        else if (!strcmp(a, "--moe-topk")) o->moe_topk = (int)parse_int(a, v, 1, 1 << 16);
        else if (!strcmp(a, "--cache-type") || !strcmp(a, "--cache-type-k") || !strcmp(a, "--cache-type-v")) {
            if (strcmp(v, "f32") && strcmp(v, "f16")) {
                char msg[160];
                snprintf(msg, sizeof(msg), "KV cache type '%.40s' is not supported: expected f32 (the default) or f16",
                         v);
                die_flag(a, msg);
            }
            if (strcmp(a, "--cache-type-v"))
                ctk = v;
            if (strcmp(a, "--cache-type-k"))
                ctv = v;
        }
        else if (!strcmp(a, "--cache-bias")) {
            o->cache_bias = parse_float(a, v);
            if (!isfinite(o->cache_bias) || o->cache_bias < 0)
                die_flag(a, "expected a finite bonus >= 0 (0 = off; e.g. 1)");
        }
        else if (!strcmp(a, "--tokens")) o->tokens_in = v;
        else if (!strcmp(a, "--text")) o->text_in = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--tokens-out")) o->tokens_out = v;
        else if (!strcmp(a, "--kl-base")) o->kl_base = v;
        else if (!strcmp(a, "--chunks")) o->chunks = (int)parse_int(a, v, 0, INT_MAX);
        else if (!strcmp(a, "--act-bits")) {
            if (parse_act_bits(v, o->act_site) < 0)
                die_flag(a, "expected 16, 8, mixed, or a list such as mixed,expert=8 (sites: attn, router, "
                            "expert, down, shared, output; bits 8 or 16)");
            o->act_bits = v;
        }
        else if (!strcmp(a, "--ram-budget")) {
            int rc = model_parse_size(v, &o->ram_budget);
            if (rc == -ERANGE)
                die_flag(a, "the size does not fit in 64 bits (16 EiB); expected e.g. 8G or 512M");
            if (rc < 0)
                die_flag(a, "expected a size such as 8G, 512M or 1.5G");
        } else if (!strcmp(a, "--io")) {
            if (!strcmp(v, "uring")) o->io = PROVIDER_IO_URING;
            else if (!strcmp(v, "pread")) o->io = PROVIDER_IO_PREAD;
            else if (!strcmp(v, "buffered")) o->io = PROVIDER_IO_BUFFERED;
            else die_flag(a, "expected uring, pread or buffered");
        } else
            die_flag(a, "is not handled");
    }
    if (strcmp(ctk, ctv)) {
        fprintf(stderr, "moestream: KV cache types differ (K %s, V %s): K and V share one type here, f32 or f16; "
                        "pass --cache-type T, or -ctk and -ctv with the same value (see --help)\n",
                ctk, ctv);
        exit(2);
    }
    o->kv_f16 = !strcmp(ctk, "f16");
    if (had_keep && !o->context_shift)
        notice(o, "--keep", "it only matters with --context-shift (off by default, as in llama.cpp)");
    if (had_prompt && had_file) {
        fprintf(stderr, "moestream: -p and -f both give the prompt: pass only one (see --help)\n");
        exit(2);
    }
    char err[256];
    if (sampler_check_opts(&o->samp, err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream: %s (see --help)\n", err);
        exit(2);
    }
}

static void log_line(const char *msg)
{
    fprintf(stderr, "moestream: %s\n", msg);
}

/* Progress of the waits inside model_open and the provider (pinned
 * weights, io_uring registration): silent for the first half second; then,
 * on a terminal, a percentage rewritten in place; elsewhere one line at the
 * end when the wait took more than a second. */
static void cli_progress(const char *what, uint64_t done, uint64_t total)
{
    static const char *cur;
    static double start, last;
    static bool shown;
    double t = cli_now();
    if (what != cur || done == 0) {
        cur = what;
        start = last = t;
        shown = false;
    }
    bool end = done >= total;
    if (isatty(2)) {
        if (t - start >= 0.5 && (t - last >= 0.1 || end || !shown)) {
            fprintf(stderr, "\rmoestream: %s %3.0f%%", what, total ? 100.0 * (double)done / (double)total : 100.0);
            shown = true;
            last = t;
        }
        if (end && shown)
            fprintf(stderr, " (%.1f s)\n", t - start);
    } else if (end && t - start >= 1.0)
        fprintf(stderr, "moestream: %s: done in %.1f s\n", what, t - start);
    if (end)
        cur = NULL;
}

int cli_open_model(struct model **m, const struct cli_opts *o, int *n_ctx_out, int *n_batch_out)
{
    char err[1024];
    *m = NULL;
    if (!o->model_dir) {
        fprintf(stderr, "moestream: no model given: pass -m MODEL.gguf or -m DIR (a directory made by "
                        "moestream-split)\n");
        return 1;
    }
    struct model_opts mo = { 0 };
    mo.io.io = o->io;
    mo.io.queue_depth = o->queue_depth;
    mo.io.qd_probe = 1;
    mo.io.tier_dir = o->ssd_cache;
    mo.io.tier_bytes = o->ssd_cache_size;
    mo.io.read_chunk = o->read_chunk;
    mo.io.verify_reads = o->verify_reads;
    mo.io.mlock = o->mlock;
    mo.io.log = log_line;
    mo.io.progress = cli_progress;
    mo.io.cache_policy = o->cache_policy;
    mo.ram_budget = o->ram_budget;
    mo.n_ctx = o->n_ctx;
    mo.n_batch = o->n_batch;
    mo.n_seq = o->n_parallel > 0 ? o->n_parallel : 1;
    mo.n_threads = o->n_threads;
    mo.verify_pinned = true;
    mo.moe_topk = o->moe_topk;
    mo.kv_f16 = o->kv_f16;
    mo.cache_bytes = o->cache_size;
    if (model_open(m, o->model_dir, &mo, err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream: %s\n", err);
        return 1;
    }
    const struct model_hparams *hp = model_hparams(*m);
    if (o->kv_f16 && !strcmp(hp->arch_name, "deepseek2") && !o->log_disable)
        fprintf(stderr, "moestream: note: --cache-type f16: deepseek2's MLA latent cache stays f32\n");
    if (o->n_ctx > 0 && hp->n_ctx_train > 0 && o->n_ctx > hp->n_ctx_train && !o->log_disable)
        fprintf(stderr, "moestream: warning: -c %d is beyond the %d positions %s was trained on: "
                        "output past position %d may degrade\n",
                o->n_ctx, hp->n_ctx_train, o->model_dir, hp->n_ctx_train);
    *n_ctx_out = model_plan(*m)->n_ctx;
    *n_batch_out = model_plan(*m)->n_batch;
    return 0;
}

/* --pin-profile: the most-routed (layer, expert) keys of a recorded trace,
 * as many as half the cache slots, kept resident once read. */
static int cli_pin_profile(struct engine *e, const char *path)
{
    char err[1024];
    struct trace *t;
    if (trace_read(&t, path, err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream: --pin-profile: %s\n", err);
        return 1;
    }
    const struct model_hparams *hp = model_hparams(engine_model(e));
    if (t->h.n_layer != hp->n_layer || t->h.n_expert != hp->n_expert) {
        fprintf(stderr, "moestream: --pin-profile %s: recorded on %d layers x %d experts, this model has %d x %d\n",
                path, t->h.n_layer, t->h.n_expert, hp->n_layer, hp->n_expert);
        trace_free(t);
        return 1;
    }
    size_t nk = (size_t)hp->n_layer * (size_t)hp->n_expert;
    uint32_t *count = calloc(nk, sizeof(*count));
    int *ly = malloc(nk * sizeof(*ly)), *ex = malloc(nk * sizeof(*ex));
    int rc = 1;
    if (!count || !ly || !ex) {
        fprintf(stderr, "moestream: --pin-profile: out of memory\n");
        goto out;
    }
    for (int r = 0; r < t->n_rec; r++)
        for (int j = 0; j < t->rec[r].k; j++)
            count[(size_t)t->rec[r].layer * hp->n_expert + t->experts[t->rec[r].first + j]]++;
    struct provider_stats ps;
    provider_get_stats(engine_provider(e), &ps);
    int want = (int)(ps.n_slots / 2), n = 0;
    while (n < want) { /* selection of the largest counts; nk is small */
        size_t best = nk;
        for (size_t k = 0; k < nk; k++)
            if (count[k] && (best == nk || count[k] > count[best]))
                best = k;
        if (best == nk)
            break;
        count[best] = 0;
        ly[n] = (int)(best / (size_t)hp->n_expert);
        ex[n++] = (int)(best % (size_t)hp->n_expert);
    }
    if (provider_pin_profile(engine_provider(e), ly, ex, n) < 0) {
        fprintf(stderr, "moestream: --pin-profile %s: %s\n", path, provider_error(engine_provider(e)));
        goto out;
    }
    rc = 0;
out:
    free(count);
    free(ly);
    free(ex);
    trace_free(t);
    return rc;
}

int cli_open_engine(struct engine **e, const struct model *m, const struct cli_opts *o)
{
    char err[1024];
    struct engine_opts eo = { .n_threads = o->n_threads, .prefetch = o->prefetch };
    memcpy(eo.act_site, o->act_site, sizeof(eo.act_site));
    eo.cache_bias = o->cache_bias;
    if (o->coact && access(o->coact, F_OK) == 0)
        eo.coact_path = o->coact;
    if (engine_open(e, m, &eo, err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream: %s\n", err);
        return 1;
    }
    if (o->pin_profile && cli_pin_profile(*e, o->pin_profile)) {
        engine_close(*e);
        *e = NULL;
        return 1;
    }
    return 0;
}

static void preload_progress(uint64_t done, uint64_t total)
{
    if (isatty(2))
        fprintf(stderr, "\rmoestream: preloading experts %llu/%llu", (unsigned long long)done,
                (unsigned long long)total);
}

int cli_load(struct cli_runtime *rt, const struct cli_opts *o)
{
    char err[1024];
    int n_ctx, n_batch;
    memset(rt, 0, sizeof(*rt));
    if (cli_open_model(&rt->m, o, &n_ctx, &n_batch))
        return 1;
    if (cli_open_engine(&rt->e, rt->m, o))
        goto fail;
    if (session_init(&rt->s, rt->e, n_ctx, err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream: %s\n", err);
        goto fail;
    }
    if (tok_init(&rt->tok, model_manifest(rt->m), err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream: %s: tokenizer: %s\n", o->model_dir, err);
        goto fail;
    }
    if (o->preload) {
        double t0 = cli_now();
        if (engine_preload(rt->e, preload_progress, err, sizeof(err)) < 0) {
            fprintf(stderr, "\nmoestream: preload: %s\n", err);
            goto fail;
        }
        struct provider_stats ps;
        provider_get_stats(engine_provider(rt->e), &ps);
        fprintf(stderr, "%smoestream: preloaded %.2f GiB of experts in %.1f s\n", isatty(2) ? "\n" : "",
                ps.bytes_read / 1073741824.0, cli_now() - t0);
        rt->preload_bytes = ps.bytes_read;
        rt->preload_tier_bytes = ps.tier_bytes_read;
        rt->preload_reads = ps.reads;
        rt->preload_misses = ps.misses;
        rt->preload_wait_s = ps.io_wait_s;
        rt->preload_verify_s = ps.verify_s;
    }
    rt->coact_out = o->coact;
    if (o->trace_out) {
        const struct model_hparams *hp = model_hparams(rt->m);
        const struct model_plan *pl = model_plan(rt->m);
        struct trace_header th = { hp->n_layer, hp->n_expert, hp->n_expert_used, n_ctx, n_batch, o->n_threads,
                                   pl->ram_budget, pl->cache_bytes, o->preload };
        if (trace_writer_open(&rt->trace, o->trace_out, &th, err, sizeof(err)) < 0) {
            fprintf(stderr, "moestream: %s\n", err);
            goto fail;
        }
        engine_set_route_hook(rt->e, trace_writer_route, rt->trace);
    }
    return 0;
fail:
    cli_unload(rt);
    return 1;
}

int cli_eval(struct cli_runtime *rt, const int32_t *tokens, int n, float *logits, bool all_logits)
{
    if (rt->trace)
        trace_writer_begin_eval(rt->trace, session_n_past(rt->s), n);
    return session_eval(rt->s, tokens, n, logits, all_logits);
}

int cli_unload(struct cli_runtime *rt)
{
    char err[256];
    int rc = 0;
    if (rt->trace && trace_writer_close(rt->trace, err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream: %s\n", err);
        rc = 1;
    }
    if (rt->coact_out && rt->e && prefetch_save(engine_prefetch(rt->e), rt->coact_out, err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream: %s\n", err);
        rc = 1;
    }
    tok_free(rt->tok);
    session_free(rt->s);
    engine_close(rt->e);
    model_close(rt->m);
    memset(rt, 0, sizeof(*rt));
    return rc;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t cli_unescape(char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\' || i + 1 >= len) {
            s[o++] = s[i];
            continue;
        }
        char c = s[i + 1];
        int hi, lo;
        switch (c) {
        case 'n': s[o++] = '\n'; i++; break;
        case 'r': s[o++] = '\r'; i++; break;
        case 't': s[o++] = '\t'; i++; break;
        case '\'': s[o++] = '\''; i++; break;
        case '"': s[o++] = '"'; i++; break;
        case '\\': s[o++] = '\\'; i++; break;
        case 'x':
            if (i + 3 < len && (hi = hexval(s[i + 2])) >= 0 && (lo = hexval(s[i + 3])) >= 0) {
                s[o++] = (char)(hi * 16 + lo);
                i += 3;
            } else
                s[o++] = s[i];
            break;
        default: s[o++] = s[i]; break;
        }
    }
    s[o] = 0;
    return o;
}

void cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

char *cli_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "moestream: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf)
            break;
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *nb = realloc(buf, cap * 2 + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        fprintf(stderr, "moestream: %s: cannot read the file\n", path);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

void cli_print_stats(const struct cli_runtime *rt, const struct cli_opts *o, int n_prompt, double t_prompt,
                     int n_gen, double t_gen)
{
    struct provider_stats ps;
    struct engine_times st;
    const struct model_plan *pl = model_plan(rt->m);
    provider_get_stats(engine_provider(rt->e), &ps);
    engine_get_times(rt->e, &st);
    ps.bytes_read -= rt->preload_bytes;
    ps.tier_bytes_read -= rt->preload_tier_bytes;
    uint64_t store_bytes = ps.bytes_read - ps.tier_bytes_read;
    ps.reads -= rt->preload_reads;
    ps.misses -= rt->preload_misses;
    double hit = ps.hits + ps.misses ? (double)ps.hits / (ps.hits + ps.misses) : 0;
    /* The provider counts every blocking read, including the buffered
     * backend's synchronous ones inside provider_request, which the
     * session's own timer (time in provider_next) cannot see. */
    double total = st.compute_s + st.io_wait_s;
    double pwait = ps.io_wait_s - rt->preload_wait_s;
    ps.verify_s -= rt->preload_verify_s;
    if (pwait > st.io_wait_s && pwait <= total) {
        st.io_wait_s = pwait;
        st.compute_s = total - pwait;
    }
    double bw = st.io_wait_s > 0 ? ps.bytes_read / st.io_wait_s : 0;
    double bw_wall = total > 0 ? ps.bytes_read / total : 0;
    int n_tok = n_prompt + n_gen;
    /* decode only (from the first generated token): busy share and bandwidth */
    const struct provider_stats *g0 = rt->has_gen0 ? &rt->gen0 : NULL;
    double dbusy = g0 ? ps.busy_s - g0->busy_s : 0;
    double dbytes = g0 ? (double)(ps.bytes_read + rt->preload_bytes - g0->bytes_read) : 0;
    double busy_frac = g0 && t_gen > 0 ? dbusy / t_gen : 0, bw_busy = dbusy > 0 ? dbytes / dbusy : 0;
    if (o->stats) {
        fprintf(stderr,
                "stats: prompt %d tokens in %.2f s (%.2f tok/s), generated %d in %.2f s (%.2f tok/s)\n"
                "stats: read %.1f MiB in %llu reads (%.2f MiB/token), cache hit rate %.1f%%, "
                "I/O wait %.2f s, compute %.2f s, read bandwidth %.0f MB/s while waiting, %.0f MB/s over the run\n"
                "stats: compute split: attention %.2f s, router %.2f s, experts %.2f s, output %.2f s\n"
                "stats: RAM budget %.2f GiB (expert cache %.2f GiB), peak RSS %.2f GiB, io %s, "
                "read checks %.3f s (%.1f%% of the time)\n",
                n_prompt, t_prompt, t_prompt > 0 ? n_prompt / t_prompt : 0, n_gen, t_gen,
                t_gen > 0 ? n_gen / t_gen : 0, ps.bytes_read / 1048576.0, (unsigned long long)ps.reads,
                n_tok ? ps.bytes_read / 1048576.0 / n_tok : 0, 100 * hit, st.io_wait_s, st.compute_s, bw / 1e6,
                bw_wall / 1e6, st.attn_s, st.router_s, st.experts_s, st.output_s, pl->ram_budget / 1073741824.0, pl->cache_bytes / 1073741824.0,
                cli_peak_rss() / 1073741824.0, provider_backend_name(engine_provider(rt->e)), ps.verify_s,
                t_prompt + t_gen > 0 ? 100 * ps.verify_s / (t_prompt + t_gen) : 0);
        fprintf(stderr,
                "stats: decode: reads in flight %.1f%% of the time (io_busy_frac %.3f), %.0f MB/s while busy; "
                "prefetches issued %llu, used %llu, wasted %llu\n",
                100 * busy_frac, busy_frac, bw_busy / 1e6, (unsigned long long)ps.prefetches,
                (unsigned long long)ps.prefetch_used, (unsigned long long)ps.prefetch_wasted);
        fprintf(stderr, "stats: reader %s, %s\n", provider_backend_name(engine_provider(rt->e)),
                provider_io_note(engine_provider(rt->e)));
        if (ps.tier_slots)
            fprintf(stderr,
                    "stats: ssd tier: read %.1f MiB (%.2f MiB/token) in %llu reads, store %.1f MiB (%.2f MiB/token); "
                    "%llu of %llu slots filled (%llu at open), %llu written, %llu dropped (writer busy), %llu bad "
                    "copies replaced\n",
                    ps.tier_bytes_read / 1048576.0, n_tok ? ps.tier_bytes_read / 1048576.0 / n_tok : 0,
                    (unsigned long long)ps.tier_reads, store_bytes / 1048576.0,
                    n_tok ? store_bytes / 1048576.0 / n_tok : 0, (unsigned long long)ps.tier_entries,
                    (unsigned long long)ps.tier_slots, (unsigned long long)ps.tier_entries_at_open,
                    (unsigned long long)ps.tier_writes, (unsigned long long)ps.tier_dropped,
                    (unsigned long long)ps.tier_bad);
    }
    if (o->stats_json) {
        fprintf(stderr,
                "{\"type\":\"run\",\"prompt_tokens\":%d,\"prompt_s\":%.4f,\"gen_tokens\":%d,\"gen_s\":%.4f,"
                "\"prefill_tok_s\":%.3f,\"decode_tok_s\":%.3f,\"bytes_read\":%llu,\"reads\":%llu,"
                "\"bytes_read_per_token\":%.0f,\"cache_hit_rate\":%.4f,\"io_wait_s\":%.4f,\"compute_s\":%.4f,"
                "\"io_wait_frac\":%.4f,\"read_bw_bytes_s\":%.0f,\"read_bw_wall_bytes_s\":%.0f,\"ram_budget_bytes\":%llu,"
                "\"cache_bytes\":%llu,\"peak_rss_bytes\":%llu,\"io\":\"%s\",\"verify_s\":%.4f,\"io_busy_frac\":%.4f,"
                "\"read_bw_busy_bytes_s\":%.0f,\"prefetch_issued\":%llu,\"prefetch_used\":%llu,"
                "\"prefetch_wasted\":%llu,\"act_bits\":\"%s\",\"store_bytes_read\":%llu,\"tier_bytes_read\":%llu,"
                "\"tier_reads\":%llu,\"tier_bad\":%llu,\"tier_writes\":%llu,\"tier_dropped\":%llu,\"tier_entries\":%llu,"
                "\"tier_slots\":%llu,\"tier_entries_at_open\":%llu,\"io_note\":",
                n_prompt, t_prompt, n_gen, t_gen, t_prompt > 0 ? n_prompt / t_prompt : 0,
                t_gen > 0 ? n_gen / t_gen : 0, (unsigned long long)ps.bytes_read, (unsigned long long)ps.reads,
                n_tok ? (double)ps.bytes_read / n_tok : 0, hit, st.io_wait_s, st.compute_s,
                total > 0 ? st.io_wait_s / total : 0, bw, bw_wall, (unsigned long long)pl->ram_budget,
                (unsigned long long)pl->cache_bytes, (unsigned long long)cli_peak_rss(),
                provider_backend_name(engine_provider(rt->e)), ps.verify_s, busy_frac, bw_busy,
                (unsigned long long)ps.prefetches, (unsigned long long)ps.prefetch_used,
                (unsigned long long)ps.prefetch_wasted, o->act_bits, (unsigned long long)store_bytes,
                (unsigned long long)ps.tier_bytes_read, (unsigned long long)ps.tier_reads,
                (unsigned long long)ps.tier_bad, (unsigned long long)ps.tier_writes,
                (unsigned long long)ps.tier_dropped, (unsigned long long)ps.tier_entries,
                (unsigned long long)ps.tier_slots, (unsigned long long)ps.tier_entries_at_open);
        cli_json_str(stderr, provider_io_note(engine_provider(rt->e)));
        fputs("}\n", stderr);
    }
}
