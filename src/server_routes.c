/*
 * server_routes.c - the endpoints of `moestream serve`: a complete request
 * (method, path, Authorization, body) in, a status and a JSON body out, or a
 * validated generation request submitted to the scheduler. No sockets here:
 * the fuzz target drives server_route directly.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "chat.h"
#include "server.h"
#include "tokenizer.h"

#define MAX_STOP 16
#define MAX_STOP_LEN 256

static const char *status_type(int status)
{
    switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 405: return "invalid_request_error";
    case 413: return "invalid_request_error";
    case 429: return "rate_limit_error";
    case 503: return "unavailable_error";
    default: return "server_error";
    }
}

static char *error_body_v(int status, const char *type, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    json_t *probe = json_string(msg); /* NULL for invalid UTF-8 (a path, a cut message) */
    if (!probe)
        for (char *c = msg; *c; c++)
            if ((unsigned char)*c >= 0x80)
                *c = '?';
    json_decref(probe);
    json_t *j = json_pack("{s:{s:i, s:s, s:s}}", "error", "code", status, "message", msg, "type",
                          type ? type : status_type(status));
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

char *server_error_body(int status, const char *type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = error_body_v(status, type, fmt, ap);
    va_end(ap);
    return s;
}

void server_resp_error(struct srv_resp *r, int status, const char *type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(r->body);
    r->status = status;
    r->body = error_body_v(status, type, fmt, ap);
    r->ctype = NULL;
    va_end(ap);
}

static void resp_json(struct srv_resp *r, int status, json_t *j)
{
    r->status = status;
    r->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!r->body)
        server_resp_error(r, 500, NULL, "out of memory");
}

/* --- request fields --------------------------------------------------- */

/* Validation failures carry the field name; 0 or -1 with r filled. */
static int get_num(json_t *o, const char *k, double lo, double hi, double *out, struct srv_resp *r)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v)) {
        server_resp_error(r, 400, NULL, "'%s' must be a number", k);
        return -1;
    }
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi)) {
        server_resp_error(r, 400, NULL, "'%s' must be between %g and %g, got %g", k, lo, hi, d);
        return -1;
    }
    *out = d;
    return 0;
}

static int get_int(json_t *o, const char *k, long long lo, long long hi, long long *out, struct srv_resp *r)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v)) {
        server_resp_error(r, 400, NULL, "'%s' must be an integer", k);
        return -1;
    }
    long long d = json_integer_value(v);
    if (d < lo || d > hi) {
        server_resp_error(r, 400, NULL, "'%s' must be between %lld and %lld, got %lld", k, lo, hi, d);
        return -1;
    }
    *out = d;
    return 0;
}

static int get_bool(json_t *o, const char *k, bool *out, struct srv_resp *r)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v)) {
        server_resp_error(r, 400, NULL, "'%s' must be true or false", k);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

static void req_id(char *out, size_t n, const char *prefix)
{
    unsigned char b[12] = { 0 };
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        uint64_t t = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)out;
        memcpy(b, &t, sizeof(t));
    }
    int k = snprintf(out, n, "%s", prefix);
    for (size_t i = 0; i < sizeof(b) && k + 2 < (int)n; i++)
        k += snprintf(out + k, n - (size_t)k, "%02x", b[i]);
}

/* Sampling, limits, stop strings, streaming flags common to both routes. */
static int parse_common(struct server *s, json_t *j, struct srv_req *q, struct srv_resp *r)
{
    q->samp = s->o.samp;
    q->samp.temperature = 0.8f; /* llama-server's default */
    q->max_tokens = s->o.n_predict;
    double d;
    long long ll;
    d = q->samp.temperature;
    if (get_num(j, "temperature", 0, 100, &d, r))
        return -1;
    q->samp.temperature = (float)d;
    d = q->samp.top_p;
    if (get_num(j, "top_p", 0, 1, &d, r))
        return -1;
    q->samp.top_p = (float)d;
    d = q->samp.min_p;
    if (get_num(j, "min_p", 0, 1, &d, r))
        return -1;
    q->samp.min_p = (float)d;
    d = q->samp.repeat_penalty;
    if (get_num(j, "repeat_penalty", 0, 100, &d, r))
        return -1;
    q->samp.repeat_penalty = (float)d;
    ll = q->samp.top_k;
    if (get_int(j, "top_k", -1, 1 << 30, &ll, r))
        return -1;
    q->samp.top_k = (int)ll;
    ll = -1;
    if (get_int(j, "seed", -(1LL << 62), 1LL << 62, &ll, r))
        return -1;
    if (json_object_get(j, "seed") && !json_is_null(json_object_get(j, "seed")))
        q->samp.seed = (uint64_t)ll;
    else {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
            seed = (uint64_t)time(NULL);
        q->samp.seed = seed;
    }
    static const char *const max_keys[] = { "max_tokens", "max_completion_tokens", "n_predict" };
    for (int i = 0; i < 3; i++) {
        ll = q->max_tokens;
        if (get_int(j, max_keys[i], -1, 1 << 30, &ll, r))
            return -1;
        q->max_tokens = (int)ll;
    }
    ll = 1;
    if (get_int(j, "n", 1, 1, &ll, r))
        return -1;
    if (get_bool(j, "stream", &q->stream, r))
        return -1;
    json_t *so = json_object_get(j, "stream_options");
    if (so && json_is_object(so) && get_bool(so, "include_usage", &q->include_usage, r))
        return -1;
    if (get_bool(j, "return_tokens", &q->return_tokens, r))
        return -1;
    json_t *st = json_object_get(j, "stop");
    if (st && !json_is_null(st)) {
        json_t *one = json_is_string(st) ? st : NULL;
        size_t n = one ? 1 : json_is_array(st) ? json_array_size(st) : (size_t)-1;
        if (n == (size_t)-1 || n > MAX_STOP) {
            server_resp_error(r, 400, NULL, "'stop' must be a string or an array of at most %d strings", MAX_STOP);
            return -1;
        }
        q->stop = calloc(n + 1, sizeof(char *));
        if (!q->stop)
            return server_resp_error(r, 500, NULL, "out of memory"), -1;
        for (size_t i = 0; i < n; i++) {
            json_t *v = one ? one : json_array_get(st, i);
            if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > MAX_STOP_LEN) {
                server_resp_error(r, 400, NULL, "'stop' entries must be non-empty strings of at most %d bytes",
                                  MAX_STOP_LEN);
                return -1;
            }
            q->stop[q->n_stop++] = strdup(json_string_value(v));
        }
    }
    json_t *rf = json_object_get(j, "response_format");
    if (rf && !json_is_null(rf)) {
        json_t *t = json_is_object(rf) ? json_object_get(rf, "type") : NULL;
        const char *ts = json_is_string(t) ? json_string_value(t) : "";
        if (strcmp(ts, "text") && strcmp(ts, "json_object")) {
            server_resp_error(r, 400, NULL,
                              "'response_format.type' must be \"text\" or \"json_object\" (json_schema is not "
                              "supported)");
            return -1;
        }
    }
    const char *model = json_string_value(json_object_get(j, "model"));
    snprintf(q->model, sizeof(q->model), "%s", model ? model : s->o.alias);
    q->created = (long)time(NULL);
    return 0;
}

static int tokenize_text(struct server *s, const char *text, size_t len, bool bos, bool special, int32_t **ids,
                         int *n, struct srv_resp *r)
{
    int cap = (int)(len + 16);
    if (len > (size_t)1 << 28)
        return server_resp_error(r, 400, NULL, "text too long"), -1;
    *ids = malloc(sizeof(int32_t) * (size_t)cap);
    if (!*ids)
        return server_resp_error(r, 500, NULL, "out of memory"), -1;
    int k = tok_encode(s->tok, text, len, bos, special, *ids, cap);
    if (k < 0 || k > cap) {
        free(*ids);
        *ids = NULL;
        return server_resp_error(r, 400, NULL, "the tokenizer failed on the text (%s)",
                                 strerror(k < 0 ? -k : ENOSPC)),
               -1;
    }
    *n = k;
    return 0;
}

/* Message content as a string: text parts of an array joined. */
static json_t *flatten_content(json_t *c, struct srv_resp *r)
{
    if (!json_is_array(c))
        return json_incref(c);
    size_t i;
    json_t *p;
    char *buf = NULL;
    size_t len = 0;
    json_array_foreach(c, i, p) {
        const char *type = json_string_value(json_object_get(p, "type"));
        json_t *t = json_object_get(p, "text");
        if (!type || strcmp(type, "text") || !json_is_string(t)) {
            free(buf);
            server_resp_error(r, 400, NULL, "messages: only text content parts are supported");
            return NULL;
        }
        size_t tl = json_string_length(t);
        char *nb = realloc(buf, len + tl + 1);
        if (!nb) {
            free(buf);
            return NULL;
        }
        buf = nb;
        memcpy(buf + len, json_string_value(t), tl);
        len += tl;
        buf[len] = 0;
    }
    json_t *s = json_stringn(buf ? buf : "", len);
    free(buf);
    return s;
}

/* The conversation object chat_render takes, from a chat request. */
static json_t *chat_conv(json_t *j, struct srv_resp *r)
{
    json_t *msgs = json_object_get(j, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        server_resp_error(r, 400, NULL, "'messages' must be a non-empty array");
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!json_is_object(m) || !role) {
            server_resp_error(r, 400, NULL, "messages[%zu] must be an object with a string 'role'", i);
            json_decref(out);
            return NULL;
        }
        json_t *c = json_object_get(m, "content");
        if (c && !json_is_null(c) && !json_is_string(c) && !json_is_array(c)) {
            server_resp_error(r, 400, NULL, "messages[%zu].content must be a string, an array or null", i);
            json_decref(out);
            return NULL;
        }
        json_t *mc = json_copy(m);
        if (c && json_is_array(c)) {
            json_t *fc = flatten_content(c, r);
            if (!fc) {
                json_decref(mc);
                json_decref(out);
                return NULL;
            }
            json_object_set_new(mc, "content", fc);
        }
        json_array_append_new(out, mc);
    }
    json_t *conv = json_pack("{s:o, s:b}", "messages", out, "add_generation_prompt", 1);
    json_t *tools = json_object_get(j, "tools");
    const char *choice = json_string_value(json_object_get(j, "tool_choice"));
    if (tools && !json_is_null(tools)) {
        if (!json_is_array(tools)) {
            server_resp_error(r, 400, NULL, "'tools' must be an array");
            json_decref(conv);
            return NULL;
        }
        json_array_foreach(tools, i, m) {
            json_t *fn = json_object_get(m, "function");
            if (!json_is_object(fn) || !json_is_string(json_object_get(fn, "name"))) {
                server_resp_error(r, 400, NULL, "tools[%zu] must have a function with a string name", i);
                json_decref(conv);
                return NULL;
            }
        }
        if (json_array_size(tools) && !(choice && !strcmp(choice, "none")))
            json_object_set(conv, "tools", tools);
    }
    json_t *kw = json_object_get(j, "chat_template_kwargs");
    if (json_is_object(kw))
        json_object_update(conv, kw);
    return conv;
}

/* Renders and tokenizes a chat request's prompt; *prompt_text for the parser. */
static int chat_prompt(struct server *s, json_t *j, int32_t **ids, int *n, char **text, struct srv_resp *r)
{
    json_t *conv = chat_conv(j, r);
    if (!conv)
        return -1;
    char err[512];
    size_t plen;
    int rc = chat_render(s->tmpl, conv, text, &plen, err, sizeof(err));
    json_decref(conv);
    if (rc) {
        server_resp_error(r, 400, NULL, "the chat template refused the conversation: %s", err);
        return -1;
    }
    const char *bos = chat_tmpl_bos(s->tmpl);
    bool add_bos = tok_wants_bos(s->tok) && !(bos[0] && !strncmp(*text, bos, strlen(bos)));
    return tokenize_text(s, *text, plen, add_bos, true, ids, n, r);
}

static void req_free_unsubmitted(struct srv_req *q)
{
    if (!q)
        return;
    free(q->prompt);
    for (int i = 0; i < q->n_stop; i++)
        free(q->stop[i]);
    free(q->stop);
    pthread_cond_destroy(&q->cv);
    free(q);
}

static void generation(struct server *s, json_t *j, enum srv_kind kind, struct srv_resp *r)
{
    struct srv_req *q = server_req_new();
    char *text = NULL;
    if (!q)
        return server_resp_error(r, 500, NULL, "out of memory");
    q->kind = kind;
    if (parse_common(s, j, q, r))
        goto fail;
    if (kind == SRV_CHAT) {
        if (chat_prompt(s, j, &q->prompt, &q->n_prompt, &text, r))
            goto fail;
        chatparse_opts_detect(&q->po, s->tmpl_src, text);
        req_id(q->id, sizeof(q->id), "chatcmpl-");
    } else {
        json_t *p = json_object_get(j, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
            p = json_array_get(p, 0);
        if (json_is_string(p)) {
            if (tokenize_text(s, json_string_value(p), json_string_length(p), tok_wants_bos(s->tok), true,
                              &q->prompt, &q->n_prompt, r))
                goto fail;
        } else if (json_is_array(p) && json_array_size(p) > 0 && json_array_size(p) < (size_t)1 << 24) {
            q->n_prompt = (int)json_array_size(p);
            q->prompt = malloc(sizeof(int32_t) * (size_t)q->n_prompt);
            if (!q->prompt)
                goto oom;
            for (int i = 0; i < q->n_prompt; i++) {
                json_t *v = json_array_get(p, (size_t)i);
                if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= s->n_vocab) {
                    server_resp_error(r, 400, NULL, "prompt[%d] must be a token id in 0..%d", i, s->n_vocab - 1);
                    goto fail;
                }
                q->prompt[i] = (int32_t)json_integer_value(v);
            }
        } else {
            server_resp_error(r, 400, NULL, "'prompt' must be a string, one string in an array, or token ids");
            goto fail;
        }
        req_id(q->id, sizeof(q->id), "cmpl-");
    }
    if (q->n_prompt == 0) {
        server_resp_error(r, 400, NULL, "the prompt is empty");
        goto fail;
    }
    if (q->n_prompt >= s->n_ctx) {
        server_resp_error(r, 400, "exceed_context_size_error",
                          "the prompt has %d tokens; the context holds %d (start the server with a larger -c)",
                          q->n_prompt, s->n_ctx);
        goto fail;
    }
    free(text);
    text = NULL;
    int rc = server_submit(s, q);
    if (rc == -EBUSY) {
        server_resp_error(r, 429, NULL, "the server is busy: %d requests running and the queue is full; retry",
                          s->o.parallel);
        r->retry_after = 1;
        goto fail;
    }
    if (rc) {
        server_resp_error(r, 503, NULL, "the server is shutting down or has no model");
        goto fail;
    }
    r->req = q;
    r->status = 200;
    return;
oom:
    server_resp_error(r, 500, NULL, "out of memory");
fail:
    free(text);
    req_free_unsubmitted(q);
}

static void route_models(struct server *s, struct srv_resp *r)
{
    json_t *m = json_pack("{s:s, s:s, s:i, s:s, s:{s:i, s:i, s:i}}", "id", s->o.alias, "object", "model", "created",
                          (int)s->t_start, "owned_by", "moestream", "meta", "n_ctx", s->n_ctx, "n_vocab", s->n_vocab,
                          "parallel", s->o.parallel);
    resp_json(r, 200, json_pack("{s:s, s:[o]}", "object", "list", "data", m));
}

static void route_tokenize(struct server *s, json_t *j, struct srv_resp *r)
{
    json_t *c = json_object_get(j, "content");
    if (!json_is_string(c))
        return server_resp_error(r, 400, NULL, "'content' must be a string");
    bool add_special = false, with_pieces = false;
    if (get_bool(j, "add_special", &add_special, r) || get_bool(j, "with_pieces", &with_pieces, r))
        return;
    int32_t *ids = NULL;
    int n = 0;
    if (tokenize_text(s, json_string_value(c), json_string_length(c), add_special && tok_wants_bos(s->tok), true,
                      &ids, &n, r))
        return;
    json_t *arr = json_array();
    char piece[1024];
    for (int i = 0; i < n; i++) {
        if (!with_pieces) {
            json_array_append_new(arr, json_integer(ids[i]));
            continue;
        }
        int pl = tok_decode_piece(s->tok, ids[i], piece, sizeof(piece), true);
        pl = pl < 0 ? 0 : pl > (int)sizeof(piece) ? (int)sizeof(piece) : pl;
        json_t *ps = json_stringn(piece, (size_t)pl);
        json_array_append_new(arr, json_pack("{s:i, s:o}", "id", ids[i], "piece", ps ? ps : json_string("")));
    }
    free(ids);
    resp_json(r, 200, json_pack("{s:o}", "tokens", arr));
}

static void route_detokenize(struct server *s, json_t *j, struct srv_resp *r)
{
    json_t *t = json_object_get(j, "tokens");
    if (!json_is_array(t))
        return server_resp_error(r, 400, NULL, "'tokens' must be an array of token ids");
    size_t n = json_array_size(t), cap = 3 * tok_max_piece(s->tok) + 16;
    char *out = malloc(n * cap + 16), *piece = malloc(cap);
    size_t len = 0;
    if (!out || !piece) {
        free(out);
        free(piece);
        return server_resp_error(r, 500, NULL, "out of memory");
    }
    struct tok_stream ts;
    tok_stream_init(&ts, s->tok, false);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(t, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= s->n_vocab) {
            free(out);
            free(piece);
            return server_resp_error(r, 400, NULL, "tokens[%zu] must be a token id in 0..%d", i, s->n_vocab - 1);
        }
        int pl = tok_stream_push(&ts, (int32_t)json_integer_value(v), piece, cap);
        if (pl > 0) {
            memcpy(out + len, piece, (size_t)pl);
            len += (size_t)pl;
        }
    }
    int pl = tok_stream_flush(&ts, piece, cap);
    if (pl > 0) {
        memcpy(out + len, piece, (size_t)pl);
        len += (size_t)pl;
    }
    json_t *c = json_stringn(out, len);
    free(out);
    free(piece);
    resp_json(r, 200, json_pack("{s:o}", "content", c ? c : json_string("")));
}

static void route_apply_template(struct server *s, json_t *j, struct srv_resp *r)
{
    json_t *conv = chat_conv(j, r);
    if (!conv)
        return;
    char err[512], *text = NULL;
    size_t len;
    int rc = chat_render(s->tmpl, conv, &text, &len, err, sizeof(err));
    json_decref(conv);
    if (rc)
        return server_resp_error(r, 400, NULL, "the chat template refused the conversation: %s", err);
    json_t *p = json_stringn(text, len);
    free(text);
    resp_json(r, 200, json_pack("{s:o}", "prompt", p ? p : json_string("")));
}

static void route_metrics(struct server *s, struct srv_resp *r)
{
    struct server_metrics m;
    pthread_mutex_lock(&s->mu);
    m = s->met;
    pthread_mutex_unlock(&s->mu);
    uint64_t budget = s->ram_budget, rss = server_rss();
    double lookups = (double)(m.hits + m.misses);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return server_resp_error(r, 500, NULL, "out of memory");
#define METRIC(name, type, help, fmt, val)                                                                    \
    fprintf(f, "# HELP moestream_" name " " help "\n# TYPE moestream_" name " " type "\nmoestream_" name " " fmt \
               "\n",                                                                                          \
            val)
    METRIC("requests_total", "counter", "Generation requests accepted.", "%llu", (unsigned long long)m.requests);
    METRIC("requests_failed_total", "counter", "Generation requests that ended in an error.", "%llu",
           (unsigned long long)m.requests_error);
    METRIC("requests_rejected_total", "counter", "Requests refused with 429 (queue full).", "%llu",
           (unsigned long long)m.rejected_busy);
    METRIC("requests_cancelled_total", "counter", "Generations stopped because the client went away.", "%llu",
           (unsigned long long)m.cancelled);
    METRIC("requests_processing", "gauge", "Requests in a sequence slot.", "%d", m.active);
    METRIC("requests_deferred", "gauge", "Requests waiting in the queue.", "%d", m.queued);
    METRIC("prompt_tokens_total", "counter", "Prompt tokens evaluated.", "%llu", (unsigned long long)m.prompt_tokens);
    METRIC("prompt_tokens_reused_total", "counter", "Prompt tokens reused from a slot's cached prefix.", "%llu",
           (unsigned long long)m.prompt_reused);
    METRIC("tokens_predicted_total", "counter", "Tokens generated.", "%llu", (unsigned long long)m.gen_tokens);
    METRIC("prompt_seconds_total", "counter", "Prompt processing time, summed over requests.", "%.6f", m.prompt_s);
    METRIC("tokens_predicted_seconds_total", "counter", "Generation time, summed over requests.", "%.6f", m.gen_s);
    METRIC("engine_steps_total", "counter", "Forward steps run.", "%llu", (unsigned long long)m.steps);
    METRIC("engine_busy_seconds_total", "counter", "Wall time inside forward steps.", "%.6f", m.busy_s);
    METRIC("expert_cache_hits_total", "counter", "Expert lookups served from the cache.", "%llu",
           (unsigned long long)m.hits);
    METRIC("expert_cache_misses_total", "counter", "Expert lookups that read from disk.", "%llu",
           (unsigned long long)m.misses);
    METRIC("expert_cache_hit_rate", "gauge", "Expert cache hits / lookups since start.", "%.6f",
           lookups > 0 ? (double)m.hits / lookups : 0.0);
    METRIC("bytes_read_total", "counter", "Expert bytes read from disk.", "%llu", (unsigned long long)m.bytes_read);
    METRIC("bytes_read_per_token", "gauge", "Expert bytes read per evaluated token (prompt + generated).", "%.1f",
           m.prompt_tokens + m.gen_tokens ? (double)m.bytes_read / (double)(m.prompt_tokens + m.gen_tokens) : 0.0);
    METRIC("io_wait_seconds_total", "counter", "Time forward steps were blocked on expert reads.", "%.6f",
           m.io_wait_s);
    METRIC("io_wait_share", "gauge", "Share of forward-step time blocked on I/O.", "%.6f",
           m.busy_s > 0 ? m.io_wait_s / m.busy_s : 0.0);
    METRIC("read_bandwidth_bytes_per_second", "gauge", "Expert bytes read per second of I/O wait.", "%.1f",
           m.io_wait_s > 0 ? (double)m.bytes_read / m.io_wait_s : 0.0);
    METRIC("rss_bytes", "gauge", "Resident set size of the process.", "%llu", (unsigned long long)rss);
    METRIC("ram_budget_bytes", "gauge", "The RAM budget (weights, sequence states, scratch, expert cache).", "%llu",
           (unsigned long long)budget);
    METRIC("rss_budget_ratio", "gauge", "RSS / RAM budget.", "%.4f", budget ? (double)rss / (double)budget : 0.0);
    METRIC("slots", "gauge", "Sequence slots (--parallel).", "%d", s->o.parallel);
#undef METRIC
    fclose(f);
    r->status = 200;
    r->body = buf;
    r->ctype = "text/plain; version=0.0.4";
}

static bool auth_ok(const struct server *s, const char *auth)
{
    if (!s->o.api_key)
        return true;
    if (!auth || strncasecmp(auth, "Bearer ", 7))
        return false;
    const char *k = auth + 7;
    size_t a = strlen(k), b = strlen(s->o.api_key);
    unsigned diff = a != b; /* constant time over the key */
    for (size_t i = 0; i < b; i++)
        diff |= (unsigned)(unsigned char)s->o.api_key[i] ^ (unsigned)(unsigned char)(i < a ? k[i] : 0);
    return diff == 0;
}

int server_route(struct server *s, const char *method, const char *url, const char *auth, const char *body,
                 size_t len, struct srv_resp *r)
{
    memset(r, 0, sizeof(*r));
    char path[256];
    size_t pl = strcspn(url, "?");
    snprintf(path, sizeof(path), "%.*s", (int)(pl < sizeof(path) ? pl : sizeof(path) - 1), url);
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(path, "/health") || !strcmp(path, "/v1/health")) {
        if (!get)
            return server_resp_error(r, 405, NULL, "use GET %s", path), 0;
        if (!atomic_load(&s->ready))
            return server_resp_error(r, 503, NULL, "Loading model"), 0;
        resp_json(r, 200, json_pack("{s:s}", "status", "ok"));
        return 0;
    }
    if (!auth_ok(s, auth))
        return server_resp_error(r, 401, NULL, "invalid or missing API key (send Authorization: Bearer KEY)"), 0;
    static const struct { const char *path; bool post; } routes[] = {
        { "/v1/models", false },          { "/models", false },          { "/metrics", false },
        { "/v1/chat/completions", true }, { "/chat/completions", true }, { "/v1/completions", true },
        { "/completions", true },         { "/tokenize", true },         { "/detokenize", true },
        { "/apply-template", true },
    };
    int k = -1;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (!strcmp(path, routes[i].path))
            k = (int)i;
    if (k < 0)
        return server_resp_error(r, 404, NULL, "no endpoint %s %s", method, path), 0;
    if (routes[k].post ? !post : !get)
        return server_resp_error(r, 405, NULL, "use %s %s", routes[k].post ? "POST" : "GET", path), 0;
    if (!atomic_load(&s->ready))
        return server_resp_error(r, 503, NULL, "Loading model"), 0;
    if (!strcmp(path, "/metrics"))
        return route_metrics(s, r), 0;
    if (!routes[k].post)
        return route_models(s, r), 0;
    json_error_t je;
    json_t *j = json_loadb(body ? body : "", len, JSON_DECODE_INT_AS_REAL * 0, &je);
    if (!j)
        return server_resp_error(r, 400, NULL, "invalid JSON at line %d, column %d (byte %d): %s", je.line,
                                 je.column, je.position, je.text),
               0;
    if (!json_is_object(j)) {
        json_decref(j);
        return server_resp_error(r, 400, NULL, "the request body must be a JSON object"), 0;
    }
    if (strstr(path, "chat/completions"))
        generation(s, j, SRV_CHAT, r);
    else if (strstr(path, "completions"))
        generation(s, j, SRV_COMPLETION, r);
    else if (!strcmp(path, "/tokenize"))
        route_tokenize(s, j, r);
    else if (!strcmp(path, "/detokenize"))
        route_detokenize(s, j, r);
    else
        route_apply_template(s, j, r);
    json_decref(j);
    return 0;
}
