/*
 * cli_batch.c - `moestream batch`: one prompt per line of a file, generated
 * as concurrent sequences on one engine. Every step carries one row per
 * decoding sequence plus prompt rows of the sequences still prefilling, so
 * the sequences share each expert read. Finished sequences make room for the
 * next prompt. Outputs are printed in prompt order, each exactly as
 * `moestream run` prints it alone (sampling is per sequence, seeded alike).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "seq.h"
#include "tokenizer.h"

static void batch_usage(FILE *out)
{
    fprintf(out,
            "usage: moestream batch -m DIR -f PROMPTS.txt [-n N] [--parallel N] [options]\n"
            "Generates a continuation of every line of PROMPTS.txt (one prompt per line; empty lines\n"
            "are skipped) as concurrent sequences that share each forward step and each expert read.\n"
            "Outputs go to stdout in prompt order, each as `moestream run` prints it (the prompt, then its\n"
            "continuation; --no-display-prompt leaves the prompt out); statistics to stderr.\n\n"
            "  -f, --file FILE        the prompts\n"
            "  -n, --n-predict N      tokens to generate per prompt (default 128; -1 = until end of text or context)\n"
            "      --parallel N       sequences decoded together (default 4)\n"
            "      --special          parse special tokens such as <|im_start|> in the prompts\n");
    cli_common_help(out);
    fprintf(out,
            "sampling (each sequence has its own sampler, seeded alike):\n"
            "      --temp T           temperature (default 0.8; 0 = greedy)\n"
            "      --top-k K, --top-p P, --min-p P, --repeat-penalty R, --repeat-last-n N, -s/--seed N\n");
}

#define BATCH_FLAGS                                                                                           \
    "--model --file --n-predict --parallel --threads --ctx-size --batch-size --ram-budget --io --queue-depth --ssd-cache --ssd-cache-size --read-chunk " \
    "--mlock --verify-reads --stats --stats-json --special --temp --top-k --top-p --min-p --repeat-penalty "   \
    "--repeat-last-n --seed --no-escape --preload --prefetch --coact --pin-profile --act-bits --moe-topk --cache-type --cache-type-k --cache-type-v --cache-bias --cache-size --cache-policy " CLI_COMPAT_FLAGS

struct job {
    const char *prompt;      /* the prompt's text (escapes processed) */
    size_t prompt_len;
    int32_t *ids;            /* the prompt's tokens */
    int n_prompt;
    char *out;               /* generated text */
    size_t out_len, out_cap;
    int n_gen;
    bool done;
};

enum slot_state { SLOT_FREE, SLOT_PREFILL, SLOT_DECODE };

struct slot {
    enum slot_state st;
    struct seq *q;
    struct sampler *smp;
    struct tok_stream ts;
    int job;                 /* index into jobs */
    int fed;                 /* prompt tokens evaluated */
    int32_t pending;         /* decode: the token to evaluate next */
};

static int append(struct job *j, const char *s, int n)
{
    if (n <= 0)
        return 0;
    if (j->out_len + (size_t)n + 1 > j->out_cap) {
        size_t cap = (j->out_cap + (size_t)n + 1) * 2;
        char *p = realloc(j->out, cap);
        if (!p)
            return -ENOMEM;
        j->out = p;
        j->out_cap = cap;
    }
    memcpy(j->out + j->out_len, s, (size_t)n);
    j->out_len += (size_t)n;
    j->out[j->out_len] = 0;
    return 0;
}

/* Splits text into non-empty lines (in place). Returns the count. */
static int split_lines(char *text, size_t len, char ***lines)
{
    int n = 0, cap = 16;
    char **v = malloc(sizeof(char *) * (size_t)cap);
    if (!v)
        return -1;
    char *p = text, *end = text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        if (e > p && e[-1] == '\r')
            e[-1] = 0;
        *e = 0;
        if (*p) {
            if (n == cap) {
                char **nv = realloc(v, sizeof(char *) * (size_t)(cap *= 2));
                if (!nv) {
                    free(v);
                    return -1;
                }
                v = nv;
            }
            v[n++] = p;
        }
        p = e + 1;
    }
    *lines = v;
    return n;
}

int cli_batch(int argc, char **argv)
{
    struct cli_opts o;
    cli_parse(&o, argc, argv, BATCH_FLAGS, batch_usage);
    if (!o.prompt_file) {
        fprintf(stderr, "moestream batch: no prompts: pass -f PROMPTS.txt (one prompt per line; see --help)\n");
        return 2;
    }
    if (o.n_parallel <= 0)
        o.n_parallel = 4;
    size_t len;
    char *text = cli_read_file(o.prompt_file, &len);
    if (!text)
        return 1;
    char **lines = NULL;
    int n_jobs = split_lines(text, len, &lines);
    if (n_jobs <= 0) {
        fprintf(stderr, "moestream batch: %s has no prompts\n", o.prompt_file);
        free(text);
        free(lines);
        return 1;
    }
    if (o.n_parallel > n_jobs)
        o.n_parallel = n_jobs;

    int rc = 1, n_ctx, n_batch;
    char err[1024];
    struct model *m = NULL;
    struct engine *e = NULL;
    struct tokenizer *tok = NULL;
    struct job *jobs = calloc((size_t)n_jobs, sizeof(*jobs));
    struct slot *slots = calloc((size_t)o.n_parallel, sizeof(*slots));
    int32_t *rt = NULL, *rp = NULL;
    struct seq **rs = NULL;
    uint8_t *ro = NULL;
    int *row_slot = NULL;
    float *logits = NULL;
    char *piece = NULL;
    if (!jobs || !slots)
        goto out;
    if (cli_open_model(&m, &o, &n_ctx, &n_batch) || cli_open_engine(&e, m, &o))
        goto out;
    if (tok_init(&tok, model_manifest(m), err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream: %s: tokenizer: %s\n", o.model_dir, err);
        goto out;
    }
    if (o.preload && engine_preload(e, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream: preload: %s\n", err);
        goto out;
    }
    int nv = model_hparams(m)->n_vocab;
    size_t piece_cap = 3 * tok_max_piece(tok) + 16;
    rt = malloc(sizeof(int32_t) * (size_t)n_batch);
    rp = malloc(sizeof(int32_t) * (size_t)n_batch);
    rs = malloc(sizeof(*rs) * (size_t)n_batch);
    ro = malloc((size_t)n_batch);
    row_slot = malloc(sizeof(int) * (size_t)n_batch);
    logits = malloc(sizeof(float) * (size_t)n_batch * nv);
    piece = malloc(piece_cap);
    if (!rt || !rp || !rs || !ro || !row_slot || !logits || !piece)
        goto out;
    for (int j = 0; j < n_jobs; j++) {
        size_t l = strlen(lines[j]);
        if (!o.no_escape)
            l = cli_unescape(lines[j], l);
        jobs[j].prompt = lines[j];
        jobs[j].prompt_len = l;
        jobs[j].ids = malloc(sizeof(int32_t) * (l + 16));
        if (!jobs[j].ids)
            goto out;
        /* as run: special tokens in the prompt are always recognised */
        jobs[j].n_prompt = tok_encode(tok, lines[j], l, tok_wants_bos(tok), true, jobs[j].ids, (int)l + 16);
        if (jobs[j].n_prompt <= 0 || jobs[j].n_prompt >= n_ctx) {
            fprintf(stderr, "moestream batch: prompt %d has %d tokens (the context holds %d): %s\n", j + 1,
                    jobs[j].n_prompt, n_ctx, jobs[j].n_prompt <= 0 ? "empty or untokenizable" : "raise -c");
            goto out;
        }
    }
    for (int s = 0; s < o.n_parallel; s++) {
        if (seq_init(&slots[s].q, m, n_ctx, err, sizeof(err)) < 0) {
            fprintf(stderr, "moestream: %s\n", err);
            goto out;
        }
        slots[s].st = SLOT_FREE;
    }

    struct provider_stats p0, p1;
    provider_get_stats(engine_provider(e), &p0);
    double t0 = cli_now();
    int next_job = 0, n_done = 0, n_steps = 0;
    long total_gen = 0, total_prompt = 0;
    while (n_done < n_jobs) {
        /* admit prompts into free slots */
        for (int s = 0; s < o.n_parallel && next_job < n_jobs; s++) {
            struct slot *sl = &slots[s];
            if (sl->st != SLOT_FREE)
                continue;
            sampler_free(sl->smp);
            sl->smp = sampler_init(&o.samp, nv);
            if (!sl->smp)
                goto out;
            seq_reset(sl->q);
            tok_stream_init(&sl->ts, tok, o.special);
            sl->job = next_job++;
            sl->fed = 0;
            sl->st = SLOT_PREFILL;
            struct job *j = &jobs[sl->job];
            for (int i = 0; i < j->n_prompt; i++)
                sampler_accept(sl->smp, j->ids[i]);
            total_prompt += j->n_prompt;
        }
        /* one step: a row per decoding sequence, then prompt rows */
        int n = 0;
        for (int s = 0; s < o.n_parallel && n < n_batch; s++)
            if (slots[s].st == SLOT_DECODE) {
                rt[n] = slots[s].pending;
                rp[n] = slots[s].q->n_past;
                rs[n] = slots[s].q;
                ro[n] = 1;
                row_slot[n++] = s;
            }
        for (int s = 0; s < o.n_parallel && n < n_batch; s++) {
            struct slot *sl = &slots[s];
            if (sl->st != SLOT_PREFILL)
                continue;
            struct job *j = &jobs[sl->job];
            while (sl->fed < j->n_prompt && n < n_batch) {
                rt[n] = j->ids[sl->fed];
                rp[n] = sl->fed;
                rs[n] = sl->q;
                ro[n] = sl->fed == j->n_prompt - 1;
                row_slot[n++] = s;
                sl->fed++;
            }
        }
        struct engine_batch b = { n, rt, rp, rs, ro };
        if (engine_step(e, &b, logits) < 0) {
            fprintf(stderr, "moestream batch: %s\n", engine_error(e));
            goto out;
        }
        n_steps++;
        /* sample for every row that produced logits */
        int li = 0;
        for (int r = 0; r < n; r++) {
            if (!ro[r])
                continue;
            struct slot *sl = &slots[row_slot[r]];
            struct job *j = &jobs[sl->job];
            float *lg = logits + (size_t)li++ * nv;
            sl->st = SLOT_DECODE;
            bool stop = false;
            if (o.n_predict >= 0 && j->n_gen >= o.n_predict)
                stop = true;
            else if (sl->q->n_past >= n_ctx) {
                fprintf(stderr, "moestream batch: prompt %d: context full (%d tokens): stopping; raise -c\n",
                        sl->job + 1, n_ctx);
                stop = true;
            } else {
                int32_t id = sampler_sample(sl->smp, lg);
                if (tok_is_eog(tok, id) && !o.ignore_eos) {
                    stop = true;
                } else {
                    sampler_accept(sl->smp, id);
                    int pl = tok_stream_push(&sl->ts, id, piece, piece_cap);
                    if (append(j, piece, pl) < 0)
                        goto out;
                    j->n_gen++;
                    total_gen++;
                    sl->pending = id;
                    if (o.n_predict >= 0 && j->n_gen >= o.n_predict)
                        stop = true;
                }
            }
            if (stop) {
                int pl = tok_stream_flush(&sl->ts, piece, piece_cap);
                if (append(j, piece, pl) < 0)
                    goto out;
                j->done = true;
                sl->st = SLOT_FREE;
                n_done++;
            }
        }
    }
    double wall = cli_now() - t0;
    provider_get_stats(engine_provider(e), &p1);
    for (int j = 0; j < n_jobs; j++) {
        if (!o.no_display_prompt)
            fwrite(jobs[j].prompt, 1, jobs[j].prompt_len, stdout);
        if (jobs[j].out_len)
            fwrite(jobs[j].out, 1, jobs[j].out_len, stdout);
        fputc('\n', stdout);
    }
    fflush(stdout);
    uint64_t bytes = p1.bytes_read - p0.bytes_read;
    uint64_t hits = p1.hits - p0.hits, misses = p1.misses - p0.misses;
    fprintf(stderr,
            "moestream batch: %d prompts (%ld tokens), %ld generated in %.2f s with %d in parallel: %.2f tok/s "
            "aggregate, %d forward steps\n",
            n_jobs, total_prompt, total_gen, wall, o.n_parallel, wall > 0 ? total_gen / wall : 0, n_steps);
    if (o.stats || o.stats_json) {
        double hit = hits + misses ? (double)hits / (double)(hits + misses) : 0;
        if (o.stats)
            fprintf(stderr,
                    "stats: read %.1f MiB (%.2f MiB per generated token), cache hit rate %.1f%%, peak RSS %.2f GiB, "
                    "RAM budget %.2f GiB\n",
                    bytes / 1048576.0, total_gen ? bytes / 1048576.0 / total_gen : 0, 100 * hit,
                    cli_peak_rss() / 1073741824.0, model_plan(m)->ram_budget / 1073741824.0);
        if (o.stats_json)
            fprintf(stderr,
                    "{\"type\":\"batch\",\"prompts\":%d,\"parallel\":%d,\"prompt_tokens\":%ld,\"gen_tokens\":%ld,"
                    "\"wall_s\":%.4f,\"gen_tok_s\":%.3f,\"bytes_read\":%llu,\"bytes_read_per_gen_token\":%.0f,"
                    "\"cache_hit_rate\":%.4f,\"steps\":%d,\"peak_rss_bytes\":%llu}\n",
                    n_jobs, o.n_parallel, total_prompt, total_gen, wall, wall > 0 ? total_gen / wall : 0,
                    (unsigned long long)bytes, total_gen ? (double)bytes / total_gen : 0, hit, n_steps,
                    (unsigned long long)cli_peak_rss());
    }
    rc = 0;
out:
    if (rc && (!jobs || !slots))
        fprintf(stderr, "moestream batch: out of memory\n");
    for (int s = 0; slots && s < o.n_parallel; s++) {
        seq_free(slots[s].q);
        sampler_free(slots[s].smp);
    }
    for (int j = 0; jobs && j < n_jobs; j++) {
        free(jobs[j].ids);
        free(jobs[j].out);
    }
    free(jobs);
    free(slots);
    free(rt);
    free(rp);
    free(rs);
    free(ro);
    free(row_slot);
    free(logits);
    free(piece);
    tok_free(tok);
    engine_close(e);
    model_close(m);
    free(lines);
    free(text);
    return rc;
}
