/*
 * server_sse.c - the bodies `moestream serve` answers with, in the shapes
 * OpenAI clients parse: chat.completion / text_completion objects, their
 * streamed chunks as SSE events ("data: {...}\n\n", closed by
 * "data: [DONE]"), usage, and llama-server's `timings` object extended with
 * the expert I/O of the steps the request took part in (steps are shared by
 * the requests decoded together, so their I/O is counted for each).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

json_t *sse_timings_json(const struct srv_timings *t)
{
    double pms = t->prompt_ms, gms = t->predicted_ms;
    double lookups = (double)(t->hits + t->misses);
    int n_eval = t->prompt_n + t->predicted_n;
    return json_pack("{s:i, s:i, s:f, s:f, s:f, s:i, s:f, s:f, s:f, s:I, s:f, s:f, s:f, s:f}", "cache_n", t->cache_n,
                     "prompt_n", t->prompt_n, "prompt_ms", pms, "prompt_per_token_ms",
                     t->prompt_n ? pms / t->prompt_n : 0.0, "prompt_per_second",
                     pms > 0 ? 1000.0 * t->prompt_n / pms : 0.0, "predicted_n", t->predicted_n, "predicted_ms", gms,
                     "predicted_per_token_ms", t->predicted_n ? gms / t->predicted_n : 0.0, "predicted_per_second",
                     gms > 0 ? 1000.0 * t->predicted_n / gms : 0.0, "io_bytes_read", (json_int_t)t->bytes_read,
                     "io_bytes_per_token", n_eval ? (double)t->bytes_read / n_eval : 0.0, "io_wait_ms", t->io_wait_ms,
                     "io_wait_share", t->step_ms > 0 ? t->io_wait_ms / t->step_ms : 0.0, "expert_cache_hit_rate",
                     lookups > 0 ? (double)t->hits / lookups : 0.0);
}

json_t *sse_usage_json(const struct srv_timings *t)
{
    return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", t->cache_n + t->prompt_n, "completion_tokens",
                     t->predicted_n, "total_tokens", t->cache_n + t->prompt_n + t->predicted_n,
                     "prompt_tokens_details", "cached_tokens", t->cache_n);
}

static int emit_json(struct srv_req *r, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        return -1;
    int rc = server_req_emit(r, "data: ", 6);
    if (!rc)
        rc = server_req_emit(r, s, strlen(s));
    if (!rc)
        rc = server_req_emit(r, "\n\n", 2);
    free(s);
    return rc;
}

static json_t *chunk_head(const struct srv_req *r, const char *object)
{
    return json_pack("{s:s, s:s, s:i, s:s, s:s}", "id", r->id, "object", object, "created", (int)r->created, "model",
                     r->model, "system_fingerprint", "moestream");
}

int sse_chat_delta(struct srv_req *r, json_t *delta, const char *finish_reason, const struct srv_timings *t)
{
    json_t *c = chunk_head(r, "chat.completion.chunk");
    json_t *choice = json_pack("{s:i, s:o, s:o}", "index", 0, "delta", delta ? delta : json_object(),
                               "finish_reason", finish_reason ? json_string(finish_reason) : json_null());
    json_object_set_new(choice, "logprobs", json_null());
    json_object_set_new(c, "choices", json_pack("[o]", choice));
    if (t)
        json_object_set_new(c, "timings", sse_timings_json(t));
    return emit_json(r, c);
}

int sse_text(struct srv_req *r, const char *text, size_t n, const char *finish_reason, const struct srv_timings *t)
{
    json_t *c = chunk_head(r, "text_completion");
    json_t *ts = json_stringn(text, n);
    json_t *choice = json_pack("{s:o, s:i, s:n, s:o}", "text", ts ? ts : json_string(""), "index", 0, "logprobs",
                               "finish_reason", finish_reason ? json_string(finish_reason) : json_null());
    json_object_set_new(c, "choices", json_pack("[o]", choice));
    if (t)
        json_object_set_new(c, "timings", sse_timings_json(t));
    return emit_json(r, c);
}

int sse_end(struct srv_req *r, const struct srv_timings *t)
{
    if (r->include_usage) {
        json_t *c = chunk_head(r, r->kind == SRV_CHAT ? "chat.completion.chunk" : "text_completion");
        json_object_set_new(c, "choices", json_array());
        json_object_set_new(c, "usage", sse_usage_json(t));
        json_object_set_new(c, "timings", sse_timings_json(t));
        if (emit_json(r, c))
            return -1;
    }
    return server_req_emit(r, "data: [DONE]\n\n", 14);
}

int sse_error(struct srv_req *r, const char *msg)
{
    char *b = server_error_body(500, NULL, "%s", msg);
    if (!b)
        return -1;
    int rc = server_req_emit(r, "data: ", 6);
    if (!rc)
        rc = server_req_emit(r, b, strlen(b));
    if (!rc)
        rc = server_req_emit(r, "\n\n", 2);
    free(b);
    return rc;
}

json_t *sse_tool_call_json(const struct srv_req *r, int i, const struct chatparse_call *c)
{
    char id[64];
    /* stable per request and call: clients match results to calls by id */
    snprintf(id, sizeof(id), "call_%.24s_%d", strchr(r->id, '-') ? strchr(r->id, '-') + 1 : r->id, i);
    return json_pack("{s:i, s:s, s:s, s:{s:s, s:s}}", "index", i, "id", id, "type", "function", "function", "name",
                     c->name, "arguments", c->arguments);
}

char *sse_chat_body(const struct srv_req *r, const struct chatparse_msg *m, const char *finish_reason,
                    const struct srv_timings *t)
{
    json_t *msg = json_pack("{s:s}", "role", "assistant");
    if (m->n_calls && !m->content[0])
        json_object_set_new(msg, "content", json_null());
    else
        json_object_set_new(msg, "content", json_string(m->content));
    if (m->reasoning[0])
        json_object_set_new(msg, "reasoning_content", json_string(m->reasoning));
    if (m->n_calls) {
        json_t *calls = json_array();
        for (int i = 0; i < m->n_calls; i++) {
            json_t *c = sse_tool_call_json(r, i, &m->calls[i]);
            json_object_del(c, "index");
            json_array_append_new(calls, c);
        }
        json_object_set_new(msg, "tool_calls", calls);
    }
    json_t *c = chunk_head(r, "chat.completion");
    json_object_set_new(c, "choices", json_pack("[{s:i, s:o, s:s, s:n}]", "index", 0, "message", msg,
                                                "finish_reason", finish_reason, "logprobs"));
    json_object_set_new(c, "usage", sse_usage_json(t));
    json_object_set_new(c, "timings", sse_timings_json(t));
    char *s = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    return s;
}

char *sse_text_body(const struct srv_req *r, const char *text, size_t n, const char *finish_reason,
                    const struct srv_timings *t, const int32_t *ids, int n_ids)
{
    json_t *c = chunk_head(r, "text_completion");
    json_t *ts = json_stringn(text, n);
    json_object_set_new(c, "choices", json_pack("[{s:o, s:i, s:n, s:s}]", "text", ts ? ts : json_string(""),
                                                "index", 0, "logprobs", "finish_reason", finish_reason));
    json_object_set_new(c, "usage", sse_usage_json(t));
    json_object_set_new(c, "timings", sse_timings_json(t));
    if (ids) {
        json_t *a = json_array();
        for (int i = 0; i < n_ids; i++)
            json_array_append_new(a, json_integer(ids[i]));
        json_object_set_new(c, "tokens", a);
    }
    char *s = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    return s;
}

int sse_chat_feed(struct srv_req *r, struct chatparse *cp, const char *p, size_t n, bool finish)
{
    struct chatparse_delta d;
    int rc = n ? chatparse_feed(cp, p, n, &d) : 0;
    if (rc)
        return rc;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0 && !n)
            continue;
        if (pass == 1) {
            if (!finish)
                break;
            if ((rc = chatparse_finish(cp, &d)))
                return rc;
        }
        if (!r->stream)
            continue;
        if (d.reasoning_len && sse_chat_delta(r, json_pack("{s:s%}", "reasoning_content", d.reasoning,
                                                            d.reasoning_len), NULL, NULL))
            return -ENOMEM;
        if (d.content_len &&
            sse_chat_delta(r, json_pack("{s:s%}", "content", d.content, d.content_len), NULL, NULL))
            return -ENOMEM;
        const struct chatparse_msg *m = chatparse_result(cp);
        for (int i = d.first_call; i < d.first_call + d.n_calls; i++)
            if (sse_chat_delta(r, json_pack("{s:[o]}", "tool_calls", sse_tool_call_json(r, i, &m->calls[i])),
                               NULL, NULL))
                return -ENOMEM;
    }
    return 0;
}

