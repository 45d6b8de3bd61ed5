/*
 * cli_run.c - `moestream run` (stream a continuation of a prompt) and
 * `moestream chat` (interactive multi-turn chat formatted by the model's chat
 * template, replies parsed back into content, reasoning and tool calls).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "chatparse.h"
#include "cli.h"
#include "gguf.h"
#include "tokenizer.h"

static void run_usage(FILE *out)
{
    fprintf(out,
            "usage: moestream run -m DIR (-p TEXT | -f FILE) [options]\n"
            "Streams a continuation of the prompt to stdout; timings go to stderr.\n\n"
            "  -p, --prompt TEXT      the prompt\n"
            "  -f, --file FILE        read the prompt from FILE\n"
            "  -n, --n-predict N      tokens to generate (default 128; -1 = until end of text or context)\n"
            "      --chat             format the prompt as one user turn with the model's chat template\n"
            "                         (with --system, --chat-template FILE, --reasoning on|off, --verbose-prompt)\n"
            "      --no-display-prompt  do not echo the prompt before the continuation\n"
            "      --ignore-eos       keep generating past the end-of-text token\n"
            "      --context-shift    when the context is full, drop the older half of the tokens after the\n"
            "                         first --keep N (default 0; -1 = the whole prompt) and go on (the rest\n"
            "                         is read again); off by default, as in llama.cpp\n"
            "  -sp, --special         print special tokens such as <|im_end|> in the output (as llama.cpp;\n"
            "                         special tokens in the prompt are always recognised)\n"
            "Ctrl-C stops the generation and still prints the statistics (exit code 130).\n"
            "llama.cpp flags accepted and ignored with a notice: -ngl, -fa, -ub, --color, -v, -i, -cnv,\n"
            "-no-cnv, -r, --presence-penalty, --frequency-penalty (unless 0); --log-disable\n"
            "silences those notices. --flag=value is the same as --flag value.\n");
    cli_common_help(out);
    fprintf(out,
            "sampling:\n"
            "      --temp T           temperature (default 0.8; 0 = greedy)\n"
            "      --top-k K          (default 40; 0 = off)\n"
            "      --top-p P          (default 0.95; 1 = off)\n"
            "      --min-p P          (default 0.05; 0 = off)\n"
            "      --repeat-penalty R (default 1.0 = off)\n"
            "      --repeat-last-n N  tokens the penalty looks back (default 64)\n"
            "  -s, --seed N           random seed (default -1: from the clock; printed when sampling)\n");
}

#define RUN_FLAGS                                                                                      \
    "--model --prompt --file --n-predict --threads --ctx-size --batch-size --ram-budget --io "        \
    "--queue-depth --ssd-cache --ssd-cache-size --read-chunk --mlock --verify-reads --stats --stats-json --trace-out --special --temp --top-k " \
    "--top-p --min-p --repeat-penalty --repeat-last-n --seed --system --no-escape --preload --prefetch --coact " \
    "--pin-profile --act-bits --moe-topk --cache-type --cache-type-k --cache-type-v --cache-bias --cache-size --cache-policy --chat " CLI_COMPAT_FLAGS

/* Tokenizes text into a freshly allocated array; NULL with a message. */
static int32_t *tokenize_all(const struct tokenizer *t, const char *text, size_t len, bool bos, bool special,
                             int *n_out)
{
    int cap = (int)(len + 16);
    int32_t *ids = malloc(sizeof(int32_t) * cap);
    if (!ids) {
        fprintf(stderr, "moestream: out of memory tokenizing %zu bytes\n", len);
        return NULL;
    }
    int n = tok_encode(t, text, len, bos, special, ids, cap);
    if (n < 0 || n > cap) {
        fprintf(stderr, "moestream: tokenizer failed (%s)\n", strerror(n < 0 ? -n : ENOSPC));
        free(ids);
        return NULL;
    }
    *n_out = n;
    return ids;
}

/* Generates up to n_predict tokens after the session's current state, whose
 * last logits are in logits. Stops at end-of-generation tokens and at the
 * context end. Returns generated count, or -1 on error. */
/* One JSON line per generated token (--stats-json): what that token's
 * forward step read and waited for, as deltas of the provider's counters. */
static void token_stats(const struct cli_runtime *rt, int i, double dt, struct provider_stats *last)
{
    struct provider_stats ps;
    provider_get_stats(engine_provider(rt->e), &ps);
    fprintf(stderr,
            "{\"type\":\"token\",\"token\":%d,\"pos\":%d,\"ms\":%.3f,\"bytes_read\":%llu,\"reads\":%llu,"
            "\"hits\":%llu,\"misses\":%llu,\"io_wait_ms\":%.3f,\"io_busy_ms\":%.3f,\"prefetch_issued\":%llu,"
            "\"prefetch_used\":%llu,\"prefetch_wasted\":%llu}\n",
            i, session_n_past(rt->s) - 1, dt * 1e3, (unsigned long long)(ps.bytes_read - last->bytes_read),
            (unsigned long long)(ps.reads - last->reads), (unsigned long long)(ps.hits - last->hits),
            (unsigned long long)(ps.misses - last->misses), (ps.io_wait_s - last->io_wait_s) * 1e3,
            (ps.busy_s - last->busy_s) * 1e3, (unsigned long long)(ps.prefetches - last->prefetches),
            (unsigned long long)(ps.prefetch_used - last->prefetch_used),
            (unsigned long long)(ps.prefetch_wasted - last->prefetch_wasted));
    *last = ps;
}

/* Set by SIGINT (Ctrl-C): generate() stops at the next token. */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Ctrl-C sets `interrupted` instead of killing the process; without
 * SA_RESTART so that a blocking read of the chat's stdin returns EINTR. */
static void catch_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

/* The tokens in the session, for --context-shift (run and chat only). */
static struct {
    int32_t *tok;
    int n, cap;
    int n_first;   /* tokens of the first prompt (--keep -1) */
} hist;

/* cli_eval that also records the tokens. */
static int run_eval(struct cli_runtime *rt, const int32_t *ids, int n, float *logits)
{
    if (hist.n + n > hist.cap) {
        int cap = (hist.n + n) * 2 + 64;
        int32_t *t = realloc(hist.tok, sizeof(int32_t) * (size_t)cap);
        if (!t) {
            fprintf(stderr, "moestream: out of memory\n");
            return -1;
        }
        hist.tok = t;
        hist.cap = cap;
    }
    int rc = cli_eval(rt, ids, n, logits, false);
    if (rc < 0) {
        fprintf(stderr, "\nmoestream: %s\n", session_error(rt->s));
        return rc;
    }
    memcpy(hist.tok + hist.n, ids, sizeof(int32_t) * (size_t)n);
    hist.n += n;
    return 0;
}

/* --context-shift: makes room for `need` more tokens by keeping the first
 * --keep tokens (at least the BOS), dropping the older half of the rest
 * (more if needed) and reading what is left again from an empty session (as
 * llama.cpp's context shift does, without shifting the cache in place).
 * 0, or -1 with a message when nothing can be dropped. */
static int context_shift(struct cli_runtime *rt, const struct cli_opts *o, int need, float *logits)
{
    int n_ctx = session_n_ctx(rt->s), n = hist.n;
    int keep = o->keep < 0 ? hist.n_first : o->keep;
    if (keep < 1 && tok_wants_bos(rt->tok))
        keep = 1;
    if (keep > n)
        keep = n;
    int discard = (n - keep) / 2;
    if (n - discard + need >= n_ctx)
        discard = n + need - n_ctx + 1;
    if (discard < 1 || discard > n - keep - 1) {
        fprintf(stderr, "\nmoestream: context full (%d tokens) and nothing left to drop after the %d kept "
                        "tokens: raise -c or lower --keep\n",
                n_ctx, keep);
        return -1;
    }
    memmove(hist.tok + keep, hist.tok + keep + discard, sizeof(int32_t) * (size_t)(n - keep - discard));
    hist.n = n - discard;
    session_reset(rt->s);
    if (cli_eval(rt, hist.tok, hist.n, logits, false) < 0) {
        fprintf(stderr, "\nmoestream: %s\n", session_error(rt->s));
        return -1;
    }
    if (!o->log_disable)
        fprintf(stderr, "\nmoestream: context full: dropped %d tokens after the first %d, re-read %d "
                        "(--context-shift)\n",
                discard, keep, hist.n);
    return 0;
}

/* What chat keeps of a reply: its token ids (in the session now) and text. */
struct gen_capture {
    int32_t *ids;
    int n, cap;
    char *text;
    size_t len, tcap;
};

static void capture_add(struct gen_capture *c, int32_t id, const char *piece, int len)
{
    if (c->n == c->cap) {
        int nc = c->cap ? c->cap * 2 : 256;
        int32_t *ni = realloc(c->ids, sizeof(int32_t) * (size_t)nc);
        if (!ni)
            return;
        c->ids = ni;
        c->cap = nc;
    }
    c->ids[c->n++] = id;
    if (len <= 0)
        return;
    if (c->len + (size_t)len + 1 > c->tcap) {
        size_t nc = c->tcap ? c->tcap * 2 : 4096;
        while (nc < c->len + (size_t)len + 1)
            nc *= 2;
        char *nt = realloc(c->text, nc);
        if (!nt)
            return;
        c->text = nt;
        c->tcap = nc;
    }
    memcpy(c->text + c->len, piece, (size_t)len);
    c->len += (size_t)len;
    c->text[c->len] = 0;
}

static int generate(struct cli_runtime *rt, const struct cli_opts *o, struct sampler *smp, float *logits,
                    int n_predict, double *t_gen, struct gen_capture *capture)
{
    bool per_token_json = o->stats_json;
    struct tok_stream ts;
    tok_stream_init(&ts, rt->tok, o->special);
    size_t cap = 3 * tok_max_piece(rt->tok) + 16;
    char *piece = malloc(cap);
    if (!piece)
        return -1;
    int n = 0;
    provider_get_stats(engine_provider(rt->e), &rt->gen0);
    rt->has_gen0 = true;
    double t0 = cli_now();
    struct provider_stats last;
    provider_get_stats(engine_provider(rt->e), &last);
    while ((n_predict < 0 || n < n_predict) && !interrupted) {
        if (session_n_past(rt->s) >= session_n_ctx(rt->s)) {
            if (o->context_shift && !capture) {
                if (context_shift(rt, o, 1, logits) < 0) {
                    free(piece);
                    return -1;
                }
            } else {
                fprintf(stderr, "\nmoestream: context full (%d tokens): stopping; raise -c for longer output%s\n",
                        session_n_ctx(rt->s), capture ? "" : " or pass --context-shift");
                break;
            }
        }
        int32_t id = sampler_sample(smp, logits);
        if (tok_is_eog(rt->tok, id) && !o->ignore_eos)
            break;
        sampler_accept(smp, id);
        int len = tok_stream_push(&ts, id, piece, cap);
        if (len > 0) {
            fwrite(piece, 1, (size_t)len, stdout);
            fflush(stdout);
        }
        if (capture)
            capture_add(capture, id, piece, len);
        n++;
        double ts = cli_now();
        if (run_eval(rt, &id, 1, logits) < 0) {
            free(piece);
            return -1;
        }
        if (per_token_json)
            token_stats(rt, n, cli_now() - ts, &last);
    }
    int len = tok_stream_flush(&ts, piece, cap);
    if (len > 0)
        fwrite(piece, 1, (size_t)len, stdout);
    if (capture && len > 0) { /* text only: the ids are in already */
        capture_add(capture, -1, piece, len);
        capture->n--;
    }
    fflush(stdout);
    *t_gen = cli_now() - t0;
    free(piece);
    return n;
}

static struct chat_tmpl *chat_load_template(const struct cli_opts *o, const struct cli_runtime *rt, char **src);

/* run --chat: the prompt becomes one user turn (after --system) formatted by
 * the chat template. Replaces *text; 0 or -1 with a printed line. */
static int run_chat_format(const struct cli_opts *o, const struct cli_runtime *rt, char **text, size_t *len)
{
    char *src = NULL, *out = NULL, err[1024];
    struct chat_tmpl *t = chat_load_template(o, rt, &src);
    free(src);
    if (!t)
        return -1;
    json_t *msgs = json_array();
    if (o->system)
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", o->system));
    json_array_append_new(msgs, json_pack("{s:s, s:s%}", "role", "user", "content", *text, *len));
    json_t *conv = json_pack("{s:o, s:b}", "messages", msgs, "add_generation_prompt", 1);
    if (o->reasoning >= 0)
        json_object_set_new(conv, "enable_thinking", json_boolean(o->reasoning));
    size_t n;
    int rc = chat_render(t, conv, &out, &n, err, sizeof(err));
    json_decref(conv);
    chat_tmpl_free(t);
    if (rc) {
        fprintf(stderr, "moestream run: the chat template failed: %s\n", err);
        return -1;
    }
    if (o->verbose_prompt) {
        fprintf(stderr, "moestream run: formatted prompt (%zu bytes):\n", n);
        fwrite(out, 1, n, stderr);
        fprintf(stderr, "\nmoestream run: end of formatted prompt\n");
    }
    free(*text);
    *text = out;
    *len = n;
    return 0;
}

int cli_run(int argc, char **argv)
{
    struct cli_opts o;
    cli_parse(&o, argc, argv, RUN_FLAGS, run_usage);
    if (!o.prompt && !o.prompt_file) {
        fprintf(stderr, "moestream run: no prompt: pass -p TEXT or -f FILE (see --help)\n");
        return 2;
    }
    char *text = NULL;
    size_t len;
    if (o.prompt_file) {
        if (!(text = cli_read_file(o.prompt_file, &len)))
            return 1;
    } else {
        text = strdup(o.prompt);
        len = strlen(text);
    }
    if (!o.no_escape)
        len = cli_unescape(text, len);
    struct cli_runtime rt;
    if (cli_load(&rt, &o)) {
        free(text);
        return 1;
    }
    if (o.chat && run_chat_format(&o, &rt, &text, &len)) {
        free(text);
        cli_unload(&rt);
        return 1;
    }
    int rc = 1, n_prompt = 0;
    /* as llama.cpp: special tokens in the prompt are always recognised; a
     * formatted prompt holds the template's BOS */
    int32_t *ids = tokenize_all(rt.tok, text, len, tok_wants_bos(rt.tok) && !o.chat, true, &n_prompt);
    float *logits = malloc(sizeof(float) * model_hparams(rt.m)->n_vocab);
    struct sampler *smp = sampler_init(&o.samp, model_hparams(rt.m)->n_vocab);
    if (!ids || !logits || !smp)
        goto out;
    if (n_prompt == 0) {
        fprintf(stderr, "moestream run: the prompt is empty after tokenization\n");
        goto out;
    }
    if (n_prompt >= session_n_ctx(rt.s)) {
        fprintf(stderr, "moestream run: the prompt has %d tokens, the context only %d: raise -c\n", n_prompt,
                session_n_ctx(rt.s));
        goto out;
    }
    if (o.samp.temperature > 0)
        fprintf(stderr, "moestream: sampling with seed %llu (repeat with -s %llu)\n",
                (unsigned long long)o.samp.seed, (unsigned long long)o.samp.seed);
    catch_sigint();
    if (!o.no_display_prompt && !o.chat) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    double t0 = cli_now();
    if (run_eval(&rt, ids, n_prompt, logits) < 0)
        goto out;
    hist.n_first = n_prompt;
    double t_prompt = cli_now() - t0, t_gen = 0;
    for (int i = 0; i < n_prompt; i++)
        sampler_accept(smp, ids[i]);
    int n_gen = generate(&rt, &o, smp, logits, o.n_predict, &t_gen, NULL);
    if (n_gen < 0)
        goto out;
    fputc('\n', stdout);
    fflush(stdout);
    if (interrupted)
        fprintf(stderr, "moestream: interrupted (Ctrl-C) after %d generated tokens\n", n_gen);
    fprintf(stderr, "moestream: prompt %d tokens %.2f tok/s, decode %d tokens %.2f tok/s\n", n_prompt,
            t_prompt > 0 ? n_prompt / t_prompt : 0, n_gen, t_gen > 0 ? n_gen / t_gen : 0);
    cli_print_stats(&rt, &o, n_prompt, t_prompt, n_gen, t_gen);
    rc = interrupted ? 130 : 0;
out:
    sampler_free(smp);
    free(logits);
    free(ids);
    free(text);
    free(hist.tok);
    if (cli_unload(&rt))
        rc = 1;
    return rc;
}

static void chat_usage(FILE *out)
{
    fprintf(out,
            "usage: moestream chat -m DIR [--system TEXT] [options]\n"
            "Interactive multi-turn chat, formatted with the model's own chat template (Jinja, from\n"
            "the GGUF; ChatML with a notice when the model has none).\n"
            "Type a message and press enter; an empty line or end of input (Ctrl-D) quits. Ctrl-C\n"
            "while the model answers stops the answer (the chat goes on); at the prompt it quits.\n\n"
            "  -sys, --system TEXT    system prompt\n"
            "      --chat-template F  use the Jinja template in file F instead of the model's\n"
            "      --jinja            accepted for llama.cpp habit (templates are always Jinja)\n"
            "      --reasoning on|off passed to the template as enable_thinking (default: the\n"
            "                         template's own default)\n"
            "      --verbose-prompt   print each formatted prompt on stderr, exactly as rendered\n"
            "  -n, --n-predict N      most tokens per reply (default 128; -1 = until the model stops)\n");
    cli_common_help(out);
    fprintf(out, "sampling flags as for `moestream run --help`.\n");
}

#define CHAT_FLAGS RUN_FLAGS

/* The chat template: --chat-template FILE or the model's (ChatML when it
 * has none). *src gets the template text (for the output parser). */
static struct chat_tmpl *chat_load_template(const struct cli_opts *o, const struct cli_runtime *rt, char **src)
{
    char err[1024];
    struct chat_tmpl *model_t = NULL, *t = NULL;
    bool fallback = false;
    const struct gguf_ctx *g = model_manifest(rt->m);
    if (chat_tmpl_from_gguf(&model_t, g, NULL, &fallback, err, sizeof(err))) {
        if (!o->chat_template) {
            fprintf(stderr, "moestream: %s: %s (override it with --chat-template FILE)\n", o->model_dir, err);
            return NULL;
        }
        model_t = NULL;
    }
    if (o->chat_template) {
        size_t len;
        *src = cli_read_file(o->chat_template, &len);
        if (*src && chat_tmpl_init(&t, *src, len, model_t ? chat_tmpl_bos(model_t) : NULL,
                                   model_t ? chat_tmpl_eos(model_t) : NULL, NULL, err, sizeof(err)))
            fprintf(stderr, "moestream: %s: %s\n", o->chat_template, err);
        chat_tmpl_free(model_t);
        return t;
    }
    const char *s = NULL;
    gguf_get_str(g, "tokenizer.chat_template", &s);
    *src = strdup(s ? s : chat_chatml_template);
    if (fallback)
        fprintf(stderr, "moestream: %s has no chat template; using ChatML\n", o->model_dir);
    return model_t;
}

/* --context-shift in chat: drops the oldest turn after the system messages
 * (a user message and the replies and tool results up to the next user
 * message), never the last user message. 1 when something was dropped. */
static bool chat_role_is(json_t *messages, size_t i, const char *role)
{
    const char *r = json_string_value(json_object_get(json_array_get(messages, i), "role"));
    return r && !strcmp(r, role);
}

static int chat_drop_oldest_turn(json_t *messages)
{
    size_t n = json_array_size(messages), first = 0;
    while (first < n && chat_role_is(messages, first, "system"))
        first++;
    size_t end = first + 1;
    while (end < n && !chat_role_is(messages, end, "user"))
        end++;
    if (first >= n || end >= n) /* nothing before the last user turn */
        return 0;
    for (size_t i = first; i < end; i++)
        json_array_remove(messages, first);
    return 1;
}

/* Renders the conversation, evaluates what the session does not hold yet
 * (all of it again when the template rewrote earlier turns). With
 * --context-shift, the oldest turns are dropped until the prompt fits. */
static int chat_prompt(struct cli_runtime *rt, struct sampler *smp, const struct cli_opts *o,
                       const struct chat_tmpl *t, json_t *messages, struct gen_capture *fed, float *logits,
                       char **prompt_out)
{
    char err[1024];
    char *prompt = NULL;
    size_t plen;
    int32_t *ids = NULL;
    int n = 0, dropped = 0;
    for (;;) {
        json_t *conv = json_pack("{s:O, s:b}", "messages", messages, "add_generation_prompt", 1);
        if (o->reasoning >= 0)
            json_object_set_new(conv, "enable_thinking", json_boolean(o->reasoning));
        int rc = chat_render(t, conv, &prompt, &plen, err, sizeof(err));
        json_decref(conv);
        if (rc) {
            fprintf(stderr, "moestream chat: the chat template failed: %s\n", err);
            return -1;
        }
        const char *bos = chat_tmpl_bos(t);
        bool add_bos = tok_wants_bos(rt->tok) && !(bos[0] && !strncmp(prompt, bos, strlen(bos)));
        ids = tokenize_all(rt->tok, prompt, plen, add_bos, true, &n);
        if (!ids) {
            free(prompt);
            return -1;
        }
        /* the session will hold exactly ids[0..n); one position must stay free */
        if (n < session_n_ctx(rt->s) || !o->context_shift || !chat_drop_oldest_turn(messages))
            break;
        dropped++;
        free(ids);
        free(prompt);
    }
    *prompt_out = prompt;
    if (dropped && !o->log_disable)
        fprintf(stderr, "moestream chat: context full: dropped %d earlier turn%s (--context-shift)\n", dropped,
                dropped > 1 ? "s" : "");
    if (o->verbose_prompt) {
        fprintf(stderr, "moestream chat: formatted prompt (%zu bytes):\n", plen);
        fwrite(prompt, 1, plen, stderr);
        fprintf(stderr, "\nmoestream chat: end of formatted prompt\n");
    }
    if (n >= session_n_ctx(rt->s)) {
        fprintf(stderr, "moestream chat: the conversation no longer fits in the context (%d tokens): "
                        "start again with a larger -c%s\n",
                session_n_ctx(rt->s), o->context_shift ? "" : ", or pass --context-shift");
        free(ids);
        return -1;
    }
    int keep = 0;
    while (keep < n && keep < fed->n && ids[keep] == fed->ids[keep])
        keep++;
    if (keep < fed->n) { /* the template changed what came before: start over */
        session_reset(rt->s);
        hist.n = 0;
        keep = 0;
    }
    fed->n = 0;
    for (int i = 0; i < n; i++)
        capture_add(fed, ids[i], NULL, 0);
    int rc = n > keep ? run_eval(rt, ids + keep, n - keep, logits) : 0;
    for (int i = keep; i < n; i++)
        sampler_accept(smp, ids[i]);
    free(ids);
    return rc;
}

/* The reply as an OpenAI-shaped assistant message. */
static json_t *chat_reply_message(const struct chatparse_msg *m)
{
    json_t *msg = json_pack("{s:s, s:s}", "role", "assistant", "content", m->content);
    if (m->reasoning[0])
        json_object_set_new(msg, "reasoning_content", json_string(m->reasoning));
    if (m->n_calls) {
        json_t *calls = json_array();
        for (int i = 0; i < m->n_calls; i++)
            json_array_append_new(calls, json_pack("{s:s, s:{s:s, s:s}}", "type", "function", "function", "name",
                                                   m->calls[i].name, "arguments", m->calls[i].arguments));
        json_object_set_new(msg, "tool_calls", calls);
    }
    return msg;
}

int cli_chat(int argc, char **argv)
{
    struct cli_opts o;
    cli_parse(&o, argc, argv, CHAT_FLAGS, chat_usage);
    struct cli_runtime rt;
    if (cli_load(&rt, &o))
        return 1;
    int rc = 1;
    char *src = NULL, *line = NULL, *prompt = NULL;
    size_t cap = 0;
    struct gen_capture fed = { 0 }, reply = { 0 };
    json_t *messages = json_array();
    float *logits = malloc(sizeof(float) * model_hparams(rt.m)->n_vocab);
    struct sampler *smp = sampler_init(&o.samp, model_hparams(rt.m)->n_vocab);
    struct chat_tmpl *t = chat_load_template(&o, &rt, &src);
    if (!t || !logits || !smp || !messages)
        goto out;
    if (o.system)
        json_array_append_new(messages, json_pack("{s:s, s:s}", "role", "system", "content", o.system));
    if (o.samp.temperature > 0)
        fprintf(stderr, "moestream: sampling with seed %llu (repeat with -s %llu)\n",
                (unsigned long long)o.samp.seed, (unsigned long long)o.samp.seed);
    bool tty = isatty(0);
    catch_sigint();
    /* totals for the statistics at the end (--stats, --stats-json) */
    int n_gen_total = 0;
    double t_gen_total = 0, t_start = cli_now(), t_typing = 0;
    for (;;) {
        if (tty)
            fprintf(stderr, "> ");
        double t_read = cli_now();
        ssize_t got = getline(&line, &cap, stdin);
        t_typing += cli_now() - t_read;
        if (got <= 0 || interrupted)
            break;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = 0;
        if (got == 0)
            break;
        json_array_append_new(messages, json_pack("{s:s, s:s#}", "role", "user", "content", line, (int)got));
        free(prompt);
        prompt = NULL;
        if (chat_prompt(&rt, smp, &o, t, messages, &fed, logits, &prompt) < 0)
            goto out;
        double t_gen;
        reply.n = 0;
        reply.len = 0;
        interrupted = 0;
        int n_gen = generate(&rt, &o, smp, logits, o.n_predict, &t_gen, &reply);
        if (n_gen < 0)
            goto out;
        fputc('\n', stdout);
        fflush(stdout);
        if (interrupted) {
            fprintf(stderr, "moestream chat: answer stopped (Ctrl-C); Ctrl-C at the prompt quits\n");
            interrupted = 0;
        }
        for (int i = 0; i < reply.n; i++) /* the session holds the reply's tokens now */
            capture_add(&fed, reply.ids[i], NULL, 0);
        struct chatparse_opts po;
        chatparse_opts_detect(&po, src, prompt);
        struct chatparse_msg pm;
        if (chatparse_parse(&po, reply.text ? reply.text : "", reply.len, &pm) == 0) {
            for (int i = 0; i < pm.n_calls; i++)
                fprintf(stderr, "moestream chat: tool call %s(%s)\n", pm.calls[i].name, pm.calls[i].arguments);
            json_array_append_new(messages, chat_reply_message(&pm));
            chatparse_msg_free(&pm);
        }
        if (o.stats)
            fprintf(stderr, "moestream: %d tokens, %.2f tok/s\n", n_gen, t_gen > 0 ? n_gen / t_gen : 0);
        n_gen_total += n_gen;
        t_gen_total += t_gen;
    }
    /* the whole conversation: prompt = everything the model read (system,
     * user turns, turn markers), time without the time spent waiting for input */
    double t_prompt_total = cli_now() - t_start - t_typing - t_gen_total;
    cli_print_stats(&rt, &o, session_n_past(rt.s) - n_gen_total, t_prompt_total > 0 ? t_prompt_total : 0,
                    n_gen_total, t_gen_total);
    rc = 0;
out:
    free(line);
    free(hist.tok);
    free(prompt);
    free(src);
    free(fed.ids);
    free(fed.text);
    free(reply.ids);
    free(reply.text);
    json_decref(messages);
    chat_tmpl_free(t);
    sampler_free(smp);
    free(logits);
    cli_unload(&rt);
    return rc;
}
