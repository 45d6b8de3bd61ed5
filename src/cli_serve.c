/*
 * cli_serve.c - `moestream serve`: the OpenAI-compatible HTTP server
 * (src/server*.c). Listens first (GET /health answers 503 while the model
 * loads), then loads the model with a budget that counts --parallel sequence
 * states, starts the scheduler and answers until SIGTERM/SIGINT, which
 * drains: new work is refused, requests in flight finish, then it exits 0.
 */
#include <signal.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "cli.h"
#include "gguf.h"
#include "server.h"
#include "tokenizer.h"

static void serve_usage(FILE *out)
{
    fprintf(out,
            "usage: moestream serve -m DIR [--host 127.0.0.1] [--port 8080] [--parallel N] [options]\n"
            "An OpenAI-compatible HTTP server: POST /v1/chat/completions, /v1/completions, /tokenize,\n"
            "/detokenize, /apply-template; GET /v1/models, /health, /metrics (Prometheus). Up to --parallel\n"
            "requests are decoded together in shared forward steps; more wait in a bounded queue.\n\n"
            "      --host ADDR        IPv4 address to bind (default 127.0.0.1; 0.0.0.0 for every interface)\n"
            "      --port N           TCP port (default 8080; 0 = any free port, printed at start)\n"
            "      --parallel N       sequences decoded together (default 4); the RAM budget counts N states\n"
            "      --queue N          requests that may wait beyond those (default 16; then 429 + Retry-After)\n"
            "      --api-key KEY      require Authorization: Bearer KEY on every endpoint but /health\n"
            "      --alias NAME       model id in /v1/models and responses (default: the model directory name)\n"
            "      --body-limit SIZE  largest request body (default 4M; larger get 413)\n"
            "      --keepalive S      SSE keep-alive comment after S seconds of silence (default 10)\n"
            "  -n, --n-predict N      default max_tokens (default -1: until end of text or context)\n"
            "      --chat-template F  use the Jinja template in file F instead of the model's\n");
    cli_common_help(out);
    fprintf(out, "sampling defaults (requests override): --temp --top-k --top-p --min-p --repeat-penalty --seed\n");
}

#define SERVE_FLAGS                                                                                          \
    "--model --n-predict --parallel --threads --ctx-size --batch-size --ram-budget --io --queue-depth --ssd-cache --ssd-cache-size --read-chunk "      \
    "--mlock --verify-reads --temp --top-k --top-p --min-p --repeat-penalty --repeat-last-n --seed --preload " \
    "--prefetch --act-bits --moe-topk --cache-type --cache-type-k --cache-type-v --cache-bias --cache-size --cache-policy --chat-template --jinja"

static struct chat_tmpl *load_template(const struct cli_opts *o, const struct gguf_ctx *g, char **src)
{
    char err[1024];
    struct chat_tmpl *model_t = NULL, *t = NULL;
    bool fallback = false;
    *src = NULL;
    if (chat_tmpl_from_gguf(&model_t, g, NULL, &fallback, err, sizeof(err)) && !o->chat_template) {
        fprintf(stderr, "moestream: %s: %s (override it with --chat-template FILE)\n", o->model_dir, err);
        return NULL;
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
        fprintf(stderr, "moestream serve: %s has no chat template; using ChatML\n", o->model_dir);
    return model_t;
}

static int take_int(const char *flag, const char *v, int lo, int hi)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || end == v || x < lo || x > hi) {
        fprintf(stderr, "moestream serve: %s %s: expected an integer in %d..%d\n", flag, v, lo, hi);
        exit(2);
    }
    return (int)x;
}

int cli_serve(int argc, char **argv)
{
    struct server s;
    memset(&s, 0, sizeof(s));
    struct server_opts *so = &s.o;
    so->host = "127.0.0.1";
    so->port = 8080;
    so->queue_max = 16;
    so->body_limit = 4u << 20;
    so->keepalive_s = 10;
    /* the server's own flags; the rest go to cli_parse */
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    int n_rest = 0;
    if (!rest)
        return 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ours = !strcmp(a, "--host") || !strcmp(a, "--port") || !strcmp(a, "--api-key") ||
                    !strcmp(a, "--alias") || !strcmp(a, "--queue") || !strcmp(a, "--body-limit") ||
                    !strcmp(a, "--keepalive");
        if (!ours) {
            rest[n_rest++] = argv[i];
            continue;
        }
        if (!v) {
            fprintf(stderr, "moestream serve: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--host"))
            so->host = v;
        else if (!strcmp(a, "--port"))
            so->port = take_int(a, v, 0, 65535);
        else if (!strcmp(a, "--api-key"))
            so->api_key = v;
        else if (!strcmp(a, "--alias"))
            so->alias = v;
        else if (!strcmp(a, "--queue"))
            so->queue_max = take_int(a, v, 0, 4096);
        else if (!strcmp(a, "--keepalive"))
            so->keepalive_s = take_int(a, v, 1, 3600);
        else {
            uint64_t b;
            if (model_parse_size(v, &b) || b == 0 || b > (1ull << 32)) {
                fprintf(stderr, "moestream serve: --body-limit %s: expected a size such as 4M\n", v);
                return 2;
            }
            so->body_limit = (size_t)b;
        }
    }
    struct cli_opts o;
    cli_parse(&o, n_rest, rest, SERVE_FLAGS, serve_usage);
    if (o.n_parallel <= 0)
        o.n_parallel = 4;
    so->parallel = o.n_parallel;
    so->n_predict = o.has_n_predict ? o.n_predict : -1;
    so->samp = o.samp;
    if (!o.model_dir) {
        fprintf(stderr, "moestream serve: no model given: pass -m DIR (a directory made by moestream-split)\n");
        return 2;
    }
    if (!so->alias) {
        const char *b = strrchr(o.model_dir, '/');
        so->alias = b && b[1] ? b + 1 : o.model_dir;
    }

    /* signals are taken by sigwait in this thread only */
    sigset_t sig;
    sigemptyset(&sig);
    sigaddset(&sig, SIGTERM);
    sigaddset(&sig, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sig, NULL);
    signal(SIGPIPE, SIG_IGN);

    pthread_mutex_init(&s.mu, NULL);
    s.t_start = (double)time(NULL);
    char err[1024];
    int port = 0, rc = 1;
    struct chat_tmpl *tmpl = NULL;
    if (server_queue_init(&s) || server_http_start(&s, &port, err, sizeof(err))) {
        fprintf(stderr, "moestream serve: %s\n", s.queue ? err : "out of memory");
        server_queue_free(&s);
        free(rest);
        return 1;
    }
    fprintf(stderr, "moestream serve: listening on http://%s:%d (loading %s)\n", so->host, port, o.model_dir);
    if (cli_open_model(&s.m, &o, &s.n_ctx, &(int){ 0 }) || cli_open_engine(&s.e, s.m, &o))
        goto out;
    if (tok_init(&s.tok, model_manifest(s.m), err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream: %s: tokenizer: %s\n", o.model_dir, err);
        goto out;
    }
    tmpl = load_template(&o, model_manifest(s.m), &s.tmpl_src);
    if (!tmpl)
        goto out;
    s.tmpl = tmpl;
    s.n_vocab = model_hparams(s.m)->n_vocab;
    s.ram_budget = model_plan(s.m)->ram_budget;
    if (o.preload && engine_preload(s.e, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "moestream: preload: %s\n", err);
        goto out;
    }
    if (server_sched_start(&s, err, sizeof(err))) {
        fprintf(stderr, "moestream serve: %s\n", err);
        goto out;
    }
    atomic_store(&s.ready, 1);
    const struct model_plan *pl = model_plan(s.m);
    fprintf(stderr,
            "moestream serve: ready on http://%s:%d/v1 (model '%s', %d parallel x %d context, queue %d, RAM budget "
            "%.2f GiB%s)\n",
            so->host, port, so->alias, so->parallel, s.n_ctx, so->queue_max, pl->ram_budget / 1073741824.0,
            so->api_key ? ", API key required" : "");
    int got = 0;
    sigwait(&sig, &got);
    fprintf(stderr, "moestream serve: %s: draining (finishing requests in flight)\n",
            got == SIGTERM ? "SIGTERM" : "SIGINT");
    rc = 0;
out:
    atomic_store(&s.draining, 1);
    server_http_quiesce(&s);
    server_sched_stop(&s, 120);
    server_http_stop(&s);
    server_queue_free(&s);
    if (!rc)
        fprintf(stderr, "moestream serve: stopped\n");
    chat_tmpl_free(tmpl);
    free(s.tmpl_src);
    tok_free(s.tok);
    engine_close(s.e);
    model_close(s.m);
    pthread_mutex_destroy(&s.mu);
    free(rest);
    return rc;
}
