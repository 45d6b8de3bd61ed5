/*
 * cli_eval.c - evaluation subcommands: `moestream logits` (float32 logits for
 * every position, how the reference fixtures are checked), `moestream
 * perplexity` (llama-perplexity's protocol) and `moestream tokenize`.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "gguf.h"
#include "splitfmt.h"
#include "tokenizer.h"

/* --kl-base file magic, "2MSKLDBL" (version 2: the header counts the chunks) */
#define KL_MAGIC 0x4c42444c4b534d32ull

static int write_all(const char *path, const void *data, size_t n)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fflush(f) || ferror(f)) {
        fprintf(stderr, "moestream: %s: cannot write %zu bytes: %s\n", path, n, strerror(errno));
        if (f)
            fclose(f);
        remove(tmp);
        return -1;
    }
    if (fclose(f) || rename(tmp, path)) {
        fprintf(stderr, "moestream: %s: cannot write: %s\n", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

/* Reads the tokens from --tokens (int32) or tokenizes --text. */
static int32_t *load_tokens(const struct cli_opts *o, const struct tokenizer *tok, int *n_out, bool bos)
{
    size_t len;
    if (o->tokens_in) {
        char *raw = cli_read_file(o->tokens_in, &len);
        if (!raw)
            return NULL;
        if (len % 4 != 0 || len == 0) {
            fprintf(stderr, "moestream: %s: size %zu is not a non-empty multiple of 4 (int32 token ids expected)\n",
                    o->tokens_in, len);
            free(raw);
            return NULL;
        }
        *n_out = (int)(len / 4);
        return (int32_t *)raw;
    }
    char *text = cli_read_file(o->text_in, &len);
    if (!text)
        return NULL;
    if (o->escape_text)
        len = cli_unescape(text, len);
    int cap = (int)len + 16;
    int32_t *ids = malloc(sizeof(int32_t) * cap);
    int n = ids ? tok_encode(tok, text, len, bos, o->special, ids, cap) : -ENOMEM;
    free(text);
    if (n < 0 || n > cap) {
        fprintf(stderr, "moestream: %s: tokenizer failed (%s)\n", o->text_in, strerror(n < 0 ? -n : ENOSPC));
        free(ids);
        return NULL;
    }
    *n_out = n;
    if (o->tokens_out && write_all(o->tokens_out, ids, sizeof(int32_t) * (size_t)n) < 0) {
        free(ids);
        return NULL;
    }
    return ids;
}

static void logits_usage(FILE *out)
{
    fprintf(out,
            "usage: moestream logits -m DIR (--tokens IN.i32 | --text FILE) --out OUT.f32 [options]\n"
            "Evaluates the tokens in one sequence and writes float32 logits for every position,\n"
            "[n_tokens][n_vocab], little-endian.\n\n"
            "      --tokens FILE      int32 token ids\n"
            "      --text FILE        tokenize FILE first (no BOS unless --bos; --special parses special tokens)\n"
            "      --tokens-out FILE  save the ids --text produced\n"
            "      --out FILE         where the logits go\n");
    cli_common_help(out);
}

int cli_logits(int argc, char **argv)
{
    struct cli_opts o;
    cli_parse(&o, argc, argv,
              "--model --tokens --text --tokens-out --out --threads --ctx-size --batch-size --ram-budget --io "
              "--queue-depth --ssd-cache --ssd-cache-size --read-chunk --mlock --verify-reads --stats --stats-json --special --bos --trace-out --preload --prefetch --coact --pin-profile --act-bits --moe-topk --cache-type --cache-type-k --cache-type-v --cache-bias --cache-size",
              logits_usage);
    if ((!o.tokens_in == !o.text_in) || !o.out) {
        fprintf(stderr, "moestream logits: pass exactly one of --tokens or --text, and --out (see --help)\n");
        return 2;
    }
    struct cli_runtime rt;
    if (cli_load(&rt, &o))
        return 1;
    int rc = 1, n = 0;
    int32_t *ids = load_tokens(&o, rt.tok, &n, o.bos);
    float *logits = NULL;
    if (!ids)
        goto out;
    if (n > session_n_ctx(rt.s)) {
        fprintf(stderr, "moestream logits: %d tokens do not fit the context of %d: pass -c %d\n", n,
                session_n_ctx(rt.s), n);
        goto out;
    }
    size_t nv = (size_t)model_hparams(rt.m)->n_vocab;
    logits = malloc(sizeof(float) * nv * (size_t)n);
    if (!logits) {
        fprintf(stderr, "moestream logits: out of memory for %d x %zu logits\n", n, nv);
        goto out;
    }
    double t0 = cli_now();
    if (session_eval(rt.s, ids, n, logits, true) < 0) {
        fprintf(stderr, "moestream: %s\n", session_error(rt.s));
        goto out;
    }
    double dt = cli_now() - t0;
    if (write_all(o.out, logits, sizeof(float) * nv * (size_t)n) < 0)
        goto out;
    fprintf(stderr, "moestream: %d positions x %zu logits -> %s (%.2f tok/s)\n", n, nv, o.out, n / dt);
    cli_print_stats(&rt, &o, n, dt, 0, 0);
    rc = 0;
out:
    free(logits);
    free(ids);
    cli_unload(&rt);
    return rc;
}

static void ppl_usage(FILE *out)
{
    fprintf(out,
            "usage: moestream perplexity -m DIR -f TEXT [-c 512] [options]\n"
            "Perplexity as llama-perplexity computes it: the token stream is cut into chunks of c\n"
            "tokens, each evaluated from an empty context, and the predictions of positions\n"
            "c/2 .. c-2 are scored.\n\n"
            "  -f, --file FILE        text to score\n"
            "  -c, --ctx-size N       chunk length (default 512)\n"
            "      --chunks N         score only the first N chunks\n"
            "  -b, --batch-size N     tokens per step (default: the whole chunk; -b 1 = as in decode)\n"
            "      --kl-base FILE     if FILE is absent, save the scored logits there; if present,\n"
            "                         compare with them: KL divergence and top-1 agreement\n");
    cli_common_help(out);
}

/* log-softmax of logits[n] at index i, in double */
static double log_prob(const float *logits, int n, int i)
{
    double mx = logits[0];
    for (int j = 1; j < n; j++)
        if (logits[j] > mx)
            mx = logits[j];
    double sum = 0;
    for (int j = 0; j < n; j++)
        sum += exp(logits[j] - mx);
    return logits[i] - mx - log(sum);
}

/* KL(p_base || p_new) for one position; top-1 agreement in *same. */
static double kl_div(const float *base, const float *cur, int n, int *same)
{
    double mb = base[0], mc = cur[0];
    int ab = 0, ac = 0;
    for (int j = 1; j < n; j++) {
        if (base[j] > mb) mb = base[j], ab = j;
        if (cur[j] > mc) mc = cur[j], ac = j;
    }
    double sb = 0, sc = 0;
    for (int j = 0; j < n; j++) {
        sb += exp(base[j] - mb);
        sc += exp(cur[j] - mc);
    }
    double lsb = log(sb), lsc = log(sc), kl = 0;
    for (int j = 0; j < n; j++) {
        double lpb = base[j] - mb - lsb, lpc = cur[j] - mc - lsc;
        kl += exp(lpb) * (lpb - lpc);
    }
    *same = ab == ac;
    return kl;
}

int cli_perplexity(int argc, char **argv)
{
    struct cli_opts o;
    cli_parse(&o, argc, argv,
              "--model --file --ctx-size --batch-size --threads --ram-budget --io --queue-depth --ssd-cache --ssd-cache-size --read-chunk --mlock "
              "--verify-reads --stats --stats-json --chunks --kl-base --bos --no-escape --preload --prefetch --coact --pin-profile --act-bits --moe-topk --cache-type --cache-type-k --cache-type-v --cache-bias --cache-size",
              ppl_usage);
    if (!o.prompt_file) {
        fprintf(stderr, "moestream perplexity: pass the text with -f FILE (see --help)\n");
        return 2;
    }
    if (o.n_ctx == 0)
        o.n_ctx = 512;
    if (o.n_ctx < 4) {
        /* the second half of each chunk is scored: fewer than 4 positions score nothing useful */
        fprintf(stderr, "moestream perplexity: -c %d: expected a chunk of at least 4 tokens (default 512)\n",
                o.n_ctx);
        return 2;
    }
    /* a chunk is one step unless -b asks for smaller steps (same numbers;
     * -b 1 lets the expert cache see the tokens one at a time, as in decode) */
    bool batch_given = false;
    for (int i = 1; i < argc; i++)
        batch_given |= !strcmp(argv[i], "-b") || !strncmp(argv[i], "--batch-size", 12);
    if (!batch_given || o.n_batch > o.n_ctx)
        o.n_batch = o.n_ctx;
    struct cli_runtime rt;
    if (cli_load(&rt, &o))
        return 1;
    int rc = 1, n = 0;
    o.text_in = o.prompt_file;
    o.escape_text = !o.no_escape;
    int32_t *ids = load_tokens(&o, rt.tok, &n, o.bos || tok_wants_bos(rt.tok));
    float *logits = NULL, *base = NULL;
    FILE *kl_f = NULL;
    bool kl_save = false;
    if (!ids)
        goto out;
    int c = o.n_ctx, first = c / 2;
    int n_chunk = n / c;
    if (o.chunks > 0 && o.chunks < n_chunk)
        n_chunk = o.chunks;
    if (n_chunk == 0) {
        fprintf(stderr, "moestream perplexity: %s has %d tokens, fewer than one chunk of %d: use a smaller -c\n",
                o.prompt_file, n, c);
        goto out;
    }
    size_t nv = (size_t)model_hparams(rt.m)->n_vocab;
    logits = malloc(sizeof(float) * nv * (size_t)c);
    base = malloc(sizeof(float) * nv);
    if (!logits || !base) {
        fprintf(stderr, "moestream perplexity: out of memory\n");
        goto out;
    }
    if (o.kl_base) {
        struct stat st;
        kl_save = stat(o.kl_base, &st) != 0;
        kl_f = fopen(o.kl_base, kl_save ? "wb" : "rb");
        if (!kl_f) {
            fprintf(stderr, "moestream: %s: %s\n", o.kl_base, strerror(errno));
            goto out;
        }
        /* header: magic, n_vocab, positions per chunk, chunks (0 until the
         * run that writes it completes, so an interrupted run's file is refused) */
        uint64_t hdr[4] = { KL_MAGIC, nv, (uint64_t)(c - 1 - first), 0 };
        if (kl_save)
            fwrite(hdr, sizeof(hdr), 1, kl_f);
        else {
            uint64_t got[4];
            if (st.st_size < (off_t)sizeof(got)) {
                fprintf(stderr, "moestream: %s: incomplete KL base (%lld bytes: the run that wrote it was "
                                "interrupted): delete it to recreate it\n",
                        o.kl_base, (long long)st.st_size);
                goto out;
            }
            if (fread(got, sizeof(got), 1, kl_f) != 1 || got[0] != hdr[0] || got[1] != hdr[1] || got[2] != hdr[2]) {
                fprintf(stderr, "moestream: %s: not a KL base for this vocabulary and -c %d (delete it to "
                                "recreate it)\n",
                        o.kl_base, c);
                goto out;
            }
            uint64_t want = sizeof(hdr) + got[3] * hdr[2] * nv * sizeof(float);
            if (got[3] == 0 || (uint64_t)st.st_size != want) {
                fprintf(stderr, "moestream: %s: incomplete KL base (the run that wrote it was interrupted): "
                                "delete it to recreate it\n",
                        o.kl_base);
                goto out;
            }
            if (got[3] != (uint64_t)n_chunk) {
                fprintf(stderr, "moestream: %s: holds %llu chunks, this run scores %d: pass --chunks %llu or "
                                "delete it to recreate it\n",
                        o.kl_base, (unsigned long long)got[3], n_chunk, (unsigned long long)got[3]);
                goto out;
            }
        }
    }
    double nll = 0, nll2 = 0, kl_sum = 0;
    long count = 0, same_count = 0;
    double t0 = cli_now(), last_line = 0;
    fprintf(stderr, "moestream: %d tokens, %d chunks of %d\n", n, n_chunk, c);
    for (int ch = 0; ch < n_chunk; ch++) {
        session_reset(rt.s);
        if (session_eval(rt.s, ids + (size_t)ch * c, c, logits, true) < 0) {
            fprintf(stderr, "moestream: %s\n", session_error(rt.s));
            goto out;
        }
        for (int i = first; i < c - 1; i++) {
            const float *lg = logits + (size_t)i * nv;
            double lp = log_prob(lg, (int)nv, ids[(size_t)ch * c + i + 1]);
            nll -= lp;
            nll2 += lp * lp;
            count++;
            if (kl_f && kl_save && fwrite(lg, sizeof(float), nv, kl_f) != nv) {
                fprintf(stderr, "moestream: %s: write failed\n", o.kl_base);
                goto out;
            }
            if (kl_f && !kl_save) {
                if (fread(base, sizeof(float), nv, kl_f) != nv) {
                    fprintf(stderr, "moestream: %s: ends early: it was made from fewer chunks\n", o.kl_base);
                    goto out;
                }
                int same;
                kl_sum += kl_div(base, lg, (int)nv, &same);
                same_count += same;
            }
        }
        double el = cli_now() - t0;
        /* a line per chunk when chunks are slow (no wait over ~1 s goes silent) */
        if (ch == 0 || (ch + 1) % 10 == 0 || ch + 1 == n_chunk || el - last_line >= 1.0)
        {
            fprintf(stderr, "[%d/%d] ppl %.4f  (%.1f s, ETA %.0f s)\n", ch + 1, n_chunk, exp(nll / count), el,
                    el / (ch + 1) * (n_chunk - ch - 1));
            last_line = el;
        }
    }
    double mean = nll / count, var = nll2 / count - mean * mean;
    double se = sqrt(var > 0 ? var / (count - 1 > 0 ? count - 1 : 1) : 0);
    printf("perplexity: %.4f +/- %.4f over %d chunks (%ld predictions)\n", exp(mean), exp(mean) * se, n_chunk,
           count);
    if (kl_f && !kl_save)
        printf("kl-divergence: mean %.6g, top-1 agreement %.4f\n", kl_sum / count, (double)same_count / count);
    if (kl_f && kl_save) {
        uint64_t hdr[4] = { KL_MAGIC, nv, (uint64_t)(c - 1 - first), (uint64_t)n_chunk };
        if (fseek(kl_f, 0, SEEK_SET) != 0 || fwrite(hdr, sizeof(hdr), 1, kl_f) != 1) {
            fprintf(stderr, "moestream: %s: write failed\n", o.kl_base);
            goto out;
        }
        printf("kl-base: saved %ld positions to %s\n", count, o.kl_base);
    }
    cli_print_stats(&rt, &o, n_chunk * c, cli_now() - t0, 0, 0);
    rc = 0;
out:
    if (kl_f && fclose(kl_f) != 0 && kl_save) {
        fprintf(stderr, "moestream: %s: write failed\n", o.kl_base);
        rc = 1;
    }
    if (rc && kl_save && o.kl_base)
        remove(o.kl_base);
    free(base);
    free(logits);
    free(ids);
    cli_unload(&rt);
    return rc;
}

static void tokenize_usage(FILE *out)
{
    fprintf(out,
            "usage: moestream tokenize -m DIR|VOCAB.gguf [--ids] [--bos] [--special] < TEXT\n"
            "Reads UTF-8 text from stdin and prints its tokens.\n\n"
            "  -m, --model PATH       a split model directory or any GGUF file with a vocabulary\n"
            "      --ids              print only the ids, space-separated, on one line\n"
            "      --bos              prepend the BOS token\n"
            "      --special          match special tokens such as <|im_start|> (else they stay literal text)\n");
}

int cli_tokenize(int argc, char **argv)
{
    struct cli_opts o;
    cli_parse(&o, argc, argv, "--model --ids --bos --special", tokenize_usage);
    if (!o.model_dir) {
        fprintf(stderr, "moestream tokenize: pass -m DIR or -m VOCAB.gguf (see --help)\n");
        return 2;
    }
    char err[1024], path[4200];
    struct stat st;
    snprintf(path, sizeof(path), "%s", o.model_dir);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(path, sizeof(path), "%s/%s", o.model_dir, SPLIT_MANIFEST);
    struct gguf_ctx *g;
    if (gguf_open(&g, path, err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream: %s\n", err);
        return 1;
    }
    struct tokenizer *tok;
    if (tok_init(&tok, g, err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream: %s: %s\n", path, err);
        gguf_close(g);
        return 1;
    }
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    while (text) {
        size_t got = fread(text + len, 1, cap - len, stdin);
        len += got;
        if (len < cap)
            break;
        char *nt = realloc(text, cap * 2);
        if (!nt) {
            free(text);
            text = NULL;
            break;
        }
        text = nt;
        cap *= 2;
    }
    int rc = 1;
    int n = 0, idcap = (int)len + 16;
    int32_t *ids = text ? malloc(sizeof(int32_t) * idcap) : NULL;
    if (!ids) {
        fprintf(stderr, "moestream tokenize: out of memory\n");
        goto out;
    }
    n = tok_encode(tok, text, len, o.bos, o.special, ids, idcap);
    if (n < 0 || n > idcap) {
        fprintf(stderr, "moestream tokenize: tokenizer failed (%s)\n", strerror(n < 0 ? -n : ENOSPC));
        goto out;
    }
    if (o.ids) {
        for (int i = 0; i < n; i++)
            printf("%s%d", i ? " " : "", ids[i]);
        printf("\n");
    } else {
        char piece[1024];
        for (int i = 0; i < n; i++) {
            int pl = tok_decode_piece(tok, ids[i], piece, sizeof(piece) - 1, true);
            if (pl < 0)
                pl = 0;
            if (pl > (int)sizeof(piece) - 1)
                pl = (int)sizeof(piece) - 1;
            piece[pl] = 0;
            printf("%6d -> '%s'\n", ids[i], piece);
        }
    }
    rc = 0;
out:
    free(ids);
    free(text);
    tok_free(tok);
    gguf_close(g);
    return rc;
}
