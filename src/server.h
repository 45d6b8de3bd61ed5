/*
 * server.h - `moestream serve` internals shared by its files: the server
 * object, a generation request as the HTTP side hands it to the scheduler,
 * and the contracts between the four parts:
 *   server_http.c   libmicrohttpd: bodies, limits, auth, waiting/streaming, disconnects
 *   server_routes.c endpoints: JSON in, validation, prompt rendering, JSON out (no I/O: fuzzable)
 *   server_queue.c  requests' lifetime (references) and the bounded queue between the two sides
 *   server_sched.c  the one thread that owns the engine: slots, steps, sampling, stops
 *   server_sse.c    response and SSE chunk bodies (OpenAI / llama-server shapes), timings
 * Locking: one mutex (server.mu) guards the queue, every request's shared
 * fields and the metrics; the engine, the slots and the samplers belong to
 * the scheduler thread alone. Must not print or exit (cli_serve.c does).
 */
#ifndef MOESTREAM_SERVER_H
#define MOESTREAM_SERVER_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatparse.h"
#include "sampler.h"

struct model;
struct engine;
struct tokenizer;
struct chat_tmpl;
struct seq;

struct server_opts {
    const char *host;          /* "127.0.0.1" */
    int port;                  /* 0: any free port */
    int parallel;              /* sequences decoded together */
    int queue_max;             /* requests waiting beyond the active ones */
    size_t body_limit;         /* bytes; larger bodies get 413 */
    const char *api_key;       /* NULL: no auth */
    const char *alias;         /* model id in /v1/models */
    int n_predict;             /* default max_tokens (-1: until the context end) */
    struct sampler_opts samp;  /* defaults; requests override */
    double keepalive_s;        /* SSE comment after this much silence */
};

enum srv_kind { SRV_CHAT, SRV_COMPLETION };
enum srv_state { SRV_QUEUED, SRV_ACTIVE, SRV_DONE };

/* One generation. Fields above `refs` are written by the routes before
 * submission and read-only afterwards. */
struct srv_req {
    enum srv_kind kind;
    bool stream, include_usage, return_tokens;
    int32_t *prompt;
    int n_prompt;
    int max_tokens;            /* -1: until the context end */
    struct sampler_opts samp;
    char **stop;
    int n_stop;
    struct chatparse_opts po;  /* chat: how the output is parsed back */
    char id[40];
    char model[128];
    long created;
    /* shared, under server.mu */
    int refs;                  /* HTTP side + scheduler */
    enum srv_state state;
    atomic_int cancel;         /* client gone: stop at the next token */
    pthread_cond_t cv;         /* signalled when out grows or the request ends */
    char *out;                 /* stream: SSE bytes not sent yet [out_off, out_len) */
    size_t out_len, out_off, out_cap;
    int status;                /* non-stream: HTTP status of body */
    char *body;                /* non-stream: the response body when done */
};

struct server_metrics {
    uint64_t requests, requests_ok, requests_error, rejected_busy, cancelled;
    uint64_t prompt_tokens, prompt_reused, gen_tokens, steps;
    double prompt_s, gen_s;    /* summed per request */
    uint64_t bytes_read, hits, misses;
    double io_wait_s, busy_s;  /* provider wait; wall time inside engine_step */
    int active, queued;
};

struct server {
    struct server_opts o;
    struct model *m;           /* NULL while loading (and in the fuzz target) */
    struct engine *e;
    struct tokenizer *tok;
    struct chat_tmpl *tmpl;
    char *tmpl_src;            /* for chatparse_opts_detect */
    int n_ctx, n_vocab;
    atomic_int ready;          /* model loaded, scheduler running */
    atomic_int draining;       /* SIGTERM: refuse new work, finish the rest */
    pthread_mutex_t mu;
    struct server_metrics met;
    uint64_t ram_budget;       /* for /metrics (0: none) */
    /* the bounded queue (server_queue.c), under mu */
    struct srv_req **queue;
    int q_head, q_len, q_cap;
    pthread_cond_t work;       /* wakes the scheduler */
    bool accepting;            /* a scheduler runs and takes from the queue */
    bool stopping;             /* the scheduler is asked to exit */
    struct sched *sched;       /* NULL: no engine (fuzz target) */
    struct http *http;
    double t_start;
};

/* What a route answers: a status and a body, or a submitted request. */
struct srv_resp {
    int status;
    char *body;                /* malloc'd JSON or text */
    const char *ctype;         /* NULL: application/json */
    int retry_after;           /* > 0: Retry-After seconds (429) */
    struct srv_req *req;       /* submitted: the HTTP side waits or streams */
};

/* --- server_routes.c --- */
/* Handles one complete request; never blocks. auth is the Authorization
 * header (NULL when absent). Fills *r; always returns 0. */
int server_route(struct server *s, const char *method, const char *url, const char *auth, const char *body,
                 size_t len, struct srv_resp *r);
/* An OpenAI-shaped error body {"error":{"code","message","type"}}. */
char *server_error_body(int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void server_resp_error(struct srv_resp *r, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* --- server_queue.c --- */
/* The queue holds o.queue_max + o.parallel requests. 0 or -ENOMEM. */
int server_queue_init(struct server *s);
void server_queue_free(struct server *s);
/* Queues r (takes a reference). -EBUSY: queue full (more than o.queue_max
 * would wait); -ESHUTDOWN: draining or no scheduler. */
int server_submit(struct server *s, struct srv_req *r);
/* The oldest queued request (mu held), NULL when empty. */
struct srv_req *server_queue_pop(struct server *s);
struct srv_req *server_req_new(void);
/* Drops one reference (frees at zero): _put takes server.mu, _put_locked
 * is called with it held. */
void server_req_put(struct server *s, struct srv_req *r);
void server_req_put_locked(struct srv_req *r);

/* --- server_sched.c --- */
/* Starts the scheduler thread on s->m/e/tok with s->o.parallel slots. */
int server_sched_start(struct server *s, char *err, size_t errlen);
/* Waits (at most timeout_s) for queued and active work to finish, then
 * stops the thread and frees the slots. */
void server_sched_stop(struct server *s, double timeout_s);
/* Appends SSE bytes to a request and wakes its HTTP thread (mu held). */
int server_req_emit(struct srv_req *r, const char *s, size_t n);
/* Process RSS in bytes (now). */
uint64_t server_rss(void);

/* --- server_sse.c: bodies (scheduler side) --- */
struct srv_timings {
    int cache_n, prompt_n, predicted_n;
    double prompt_ms, predicted_ms;
    uint64_t bytes_read, hits, misses;
    double io_wait_ms, step_ms;
};
/* A chat.completion.chunk / text_completion chunk with choices[0] = {delta or
 * text, finish_reason}; delta is stolen. Appends "data: ...\n\n". */
int sse_chat_delta(struct srv_req *r, json_t *delta, const char *finish_reason, const struct srv_timings *t);
int sse_text(struct srv_req *r, const char *text, size_t n, const char *finish_reason, const struct srv_timings *t);
/* The usage chunk (choices []) when include_usage, then data: [DONE]. */
int sse_end(struct srv_req *r, const struct srv_timings *t);
/* An error event in the stream. */
int sse_error(struct srv_req *r, const char *msg);
json_t *sse_timings_json(const struct srv_timings *t);
json_t *sse_usage_json(const struct srv_timings *t);
/* Chat output text through the parser: when streaming, the final content,
 * reasoning and complete tool calls of this piece go out as deltas (finish:
 * the parser's held-back rest too). 0 or -errno. */
int sse_chat_feed(struct srv_req *r, struct chatparse *cp, const char *p, size_t n, bool finish);
/* Tool call i of a parse as an OpenAI tool_calls element (with index, id). */
json_t *sse_tool_call_json(const struct srv_req *r, int i, const struct chatparse_call *c);
/* Non-stream bodies. */
char *sse_chat_body(const struct srv_req *r, const struct chatparse_msg *m, const char *finish_reason,
                    const struct srv_timings *t);
char *sse_text_body(const struct srv_req *r, const char *text, size_t n, const char *finish_reason,
                    const struct srv_timings *t, const int32_t *ids, int n_ids);

/* --- server_http.c --- */
/* Starts libmicrohttpd (thread per connection) on o.host:o.port; *port gets
 * the bound port. 0 or -errno with err. */
int server_http_start(struct server *s, int *port, char *err, size_t errlen);
/* Stops accepting (new connections are refused). */
void server_http_quiesce(struct server *s);
void server_http_stop(struct server *s);

#endif
