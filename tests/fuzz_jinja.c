/*
 * fuzz_jinja.c - libFuzzer target for the Jinja engine (src/jinja*.c) and
 * the output parser (src/chatparse.c).
 *
 * Input: a template, a NUL byte, then a JSON object of variables (when the
 * JSON is missing or invalid, a small fixed conversation is used). The
 * template is parsed and rendered twice under small limits (200k steps,
 * 16 MiB, 1 MiB of output, depth 100: each input stays fast and small);
 * both renders must agree. The rendered text then goes through the output
 * parser of every format, one-shot and in 7-byte chunks, which must agree
 * too (abort otherwise). Built and run by `make fuzz-jinja`.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatparse.h"
#include "jinja.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char default_vars[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"hi\"},"
    " {\"role\": \"assistant\", \"content\": \"<think>\\nr\\n</think>\\n\\nyo\", \"tool_calls\": [{\"type\": "
    "\"function\", \"id\": \"abcdefghi\", \"function\": {\"name\": \"f\", \"arguments\": {\"a\": [1, 2.5, null]}}}]},"
    " {\"role\": \"tool\", \"tool_call_id\": \"abcdefghi\", \"content\": \"42\"}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\","
    " \"properties\": {\"a\": {\"type\": \"array\"}}}}}], \"add_generation_prompt\": true, \"bos_token\": \"<s>\","
    " \"eos_token\": \"</s>\"}";

static void check_parse(enum chatparse_format f, const char *text, size_t n)
{
    struct chatparse_opts o = { .format = f, .think = f != CHATPARSE_HARMONY, .think_open = (n & 1) != 0 };
    struct chatparse_msg one;
    if (chatparse_parse(&o, text, n, &one))
        return;
    struct chatparse *p;
    if (chatparse_init(&p, &o)) {
        chatparse_msg_free(&one);
        return;
    }
    struct chatparse_delta d;
    size_t cl = 0;
    for (size_t i = 0; i < n; i += 7) {
        if (chatparse_feed(p, text + i, n - i < 7 ? n - i : 7, &d))
            abort();
        if (d.content_len && memcmp(d.content, one.content + cl, d.content_len))
            abort(); /* a streamed delta that the final parse does not have */
        cl += d.content_len;
    }
    if (chatparse_finish(p, &d))
        abort();
    const struct chatparse_msg *m = chatparse_result(p);
    if (strcmp(m->content, one.content) || strcmp(m->reasoning, one.reasoning) || m->n_calls != one.n_calls)
        abort();
    for (int i = 0; i < one.n_calls; i++)
        if (strcmp(m->calls[i].name, one.calls[i].name) || strcmp(m->calls[i].arguments, one.calls[i].arguments))
            abort();
    chatparse_free(p);
    chatparse_msg_free(&one);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *src = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    json_t *vars = NULL;
    if (nul)
        vars = json_loadb((const char *)nul + 1, size - tlen - 1, 0, NULL);
    if (!json_is_object(vars)) {
        json_decref(vars);
        vars = json_loads(default_vars, 0, NULL);
    }
    struct jinja_opts o;
    jinja_opts_default(&o);
    o.now = "2026-11-30 12:00:00";
    o.max_steps = 200000;
    o.max_memory = 16u << 20;
    o.max_output = 1u << 20;
    o.max_depth = 100;
    char err[256];
    struct jinja_tpl *t;
    if (jinja_parse(&t, src, tlen, &o, err, sizeof(err)) == 0) {
        char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        int ra = jinja_render(t, vars, &a, &na, err, sizeof(err));
        int rb = jinja_render(t, vars, &b, &nb, err, sizeof(err));
        if (ra != rb || (ra == 0 && (na != nb || memcmp(a, b, na))))
            abort(); /* rendering must be deterministic */
        if (ra == 0 && (a[na] != 0))
            abort();
        if (ra == 0)
            for (int f = CHATPARSE_NONE; f <= CHATPARSE_MISTRAL; f++)
                check_parse((enum chatparse_format)f, a, na);
        free(a);
        free(b);
        jinja_free(t);
    }
    json_decref(vars);
    return 0;
}
