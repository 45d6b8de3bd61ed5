/*
 * test_chatparse.c - generated text back into content, reasoning and tool
 * calls. For each tool-call format of the published templates in
 * ../shared/fixtures/templates, the assistant turn the template renders for
 * the `tools` conversation parses back to the same calls; hand-written cases
 * cover reasoning, Kimi-K2 (no template fixture), malformed and truncated
 * calls (they come back as content). Every case is also fed in chunks of 1,
 * 2, 3 and 7 bytes: what is handed out along the way is always a prefix of
 * the final parse (so never a partial marker), and the result is identical.
 * Also chat.c: string arguments parsed, ChatML fallback, templates of GGUF
 * fixtures; and `moestream chat --verbose-prompt` on tinymoe prints, turn by
 * turn, exactly what `moestream template` renders for the same history.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chat.h"
#include "chatparse.h"
#include "gguf.h"

static char fixtures[4096];
static int n_cases;

static bool have_fixtures(void)
{
    const char *env = getenv("MOESTREAM_FIXTURES");
    snprintf(fixtures, sizeof(fixtures), "%s", env ? env : "../shared/fixtures");
    char p[4200];
    snprintf(p, sizeof(p), "%s/templates/conversations.json", fixtures);
    FILE *f = fopen(p, "r");
    if (f)
        fclose(f);
    return f != NULL;
}

static char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    b[*n] = 0;
    fclose(f);
    return b;
}

static void same_msg(const struct chatparse_msg *a, const struct chatparse_msg *b)
{
    assert_string_equal(a->content, b->content);
    assert_string_equal(a->reasoning, b->reasoning);
    assert_int_equal(a->n_calls, b->n_calls);
    for (int i = 0; i < a->n_calls; i++) {
        assert_string_equal(a->calls[i].name, b->calls[i].name);
        assert_string_equal(a->calls[i].arguments, b->calls[i].arguments);
    }
}

/* Parses text one-shot and streamed in chunks; checks they agree and that
 * the streamed deltas never run ahead of the final result. */
static void parse_all_ways(const struct chatparse_opts *o, const char *text, struct chatparse_msg *out)
{
    size_t n = strlen(text);
    assert_int_equal(chatparse_parse(o, text, n, out), 0);
    static const size_t chunks[] = { 1, 2, 3, 7 };
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        struct chatparse *p;
        assert_int_equal(chatparse_init(&p, o), 0);
        char *content = calloc(1, n + 1), *reasoning = calloc(1, n + 1);
        size_t cl = 0, rl = 0;
        int calls = 0;
        for (size_t i = 0;; i += chunks[c]) {
            struct chatparse_delta d;
            bool end = i >= n;
            if (end)
                assert_int_equal(chatparse_finish(p, &d), 0);
            else
                assert_int_equal(chatparse_feed(p, text + i, i + chunks[c] <= n ? chunks[c] : n - i, &d), 0);
            if (d.content_len)
                memcpy(content + cl, d.content, d.content_len);
            cl += d.content_len;
            if (d.reasoning_len)
                memcpy(reasoning + rl, d.reasoning, d.reasoning_len);
            rl += d.reasoning_len;
            if (d.n_calls)
                assert_int_equal(d.first_call, calls);
            calls += d.n_calls;
            /* handed out so far: a prefix of the final parse */
            if (cl > strlen(out->content) || memcmp(content, out->content, cl))
                fail_msg("chunk %zu at %zu: content '%.*s' is not a prefix of '%s'", chunks[c], i, (int)cl, content,
                         out->content);
            if (rl > strlen(out->reasoning) || memcmp(reasoning, out->reasoning, rl))
                fail_msg("chunk %zu at %zu: reasoning '%.*s' is not a prefix of '%s'", chunks[c], i, (int)rl,
                         reasoning, out->reasoning);
            if (end)
                break;
        }
        assert_int_equal(cl, strlen(out->content));
        assert_int_equal(rl, strlen(out->reasoning));
        assert_int_equal(calls, out->n_calls);
        same_msg(chatparse_result(p), out);
        free(content);
        free(reasoning);
        chatparse_free(p);
    }
    n_cases++;
}

static void expect_call(const struct chatparse_msg *m, int i, const char *name, const char *args_json)
{
    assert_true(i < m->n_calls);
    assert_string_equal(m->calls[i].name, name);
    json_t *a = json_loads(m->calls[i].arguments, 0, NULL), *b = json_loads(args_json, 0, NULL);
    assert_non_null(a);
    assert_non_null(b);
    if (!json_equal(a, b))
        fail_msg("call %d arguments %s, expected %s", i, m->calls[i].arguments, args_json);
    json_decref(a);
    json_decref(b);
}

/* The assistant turn the template renders: text between the first start
 * marker and the following end marker. */
static char *between(const char *s, const char *start, const char *end)
{
    const char *a = strstr(s, start);
    assert_non_null(a);
    a += strlen(start);
    const char *b = strstr(a, end);
    assert_non_null(b);
    return strndup(a, (size_t)(b - a));
}

static void test_roundtrip(void **state)
{
    (void)state;
    if (!have_fixtures()) {
        printf("  SKIP: fixtures not found (set MOESTREAM_FIXTURES or put ../shared/fixtures beside the repo)\n");
        skip();
    }
    static const struct {
        const char *tmpl, *start, *end;
        enum chatparse_format fmt;
        int n_calls; /* gpt-oss renders one call per assistant message */
    } fams[] = {
        { "Qwen3.5-4B", "<|im_start|>assistant", "<|im_end|>", CHATPARSE_QWEN_XML, 2 },
        { "Qwen3-Coder", "<|im_start|>assistant", "<|im_end|>", CHATPARSE_QWEN_XML, 2 },
        { "Qwen-Qwen3-0.6B", "<|im_start|>assistant", "<|im_end|>", CHATPARSE_HERMES, 2 },
        { "openai-gpt-oss-120b", "<|start|>assistant", "<|call|>", CHATPARSE_HARMONY, 1 },
        { "deepseek-ai-DeepSeek-V3.1", "<｜Assistant｜>", "<｜end▁of▁sentence｜>", CHATPARSE_DEEPSEEK, 2 },
        { "mistralai-Mistral-Nemo-Instruct-2407", "", "</s>", CHATPARSE_MISTRAL, 2 },
    };
    char p[4400], err[512];
    snprintf(p, sizeof(p), "%s/templates/conversations.json", fixtures);
    json_t *all = json_load_file(p, 0, NULL);
    json_t *tools = json_object_get(json_object_get(all, "conversations"), "tools");
    assert_non_null(tools);
    for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
        size_t n = 0;
        snprintf(p, sizeof(p), "%s/templates/%s.jinja", fixtures, fams[f].tmpl);
        char *src = read_all(p, &n);
        assert_non_null(src);
        struct chat_tmpl *t;
        assert_int_equal(chat_tmpl_init(&t, src, n, "<s>", "</s>", "2026-11-30 12:00:00", err, sizeof(err)), 0);
        json_t *conv = json_deep_copy(tools);
        if (fams[f].fmt == CHATPARSE_MISTRAL) {
            /* Mistral wants 9-character call ids and strict user/assistant
             * alternation: the same calls, one user turn */
            json_t *msgs = json_object_get(conv, "messages");
            json_array_remove(msgs, 5);
            json_array_remove(msgs, 0);
            for (int k = 0; k < 2; k++) {
                const char *id = k ? "call00002" : "call00001";
                json_object_set_new(json_array_get(json_object_get(json_array_get(msgs, 1), "tool_calls"), (size_t)k),
                                    "id", json_string(id));
                json_object_set_new(json_array_get(msgs, 2 + (size_t)k), "tool_call_id", json_string(id));
            }
        }
        char *out;
        size_t olen;
        if (chat_render(t, conv, &out, &olen, err, sizeof(err)))
            fail_msg("%s: %s", fams[f].tmpl, err);
        const char *from = fams[f].fmt == CHATPARSE_MISTRAL ? strstr(out, "[TOOL_CALLS]") : out;
        assert_non_null(from);
        char *turn = between(from, fams[f].start, fams[f].end);
        struct chatparse_opts o;
        chatparse_opts_detect(&o, src, NULL);
        assert_int_equal(o.format, fams[f].fmt);
        struct chatparse_msg m;
        parse_all_ways(&o, turn, &m);
        if (m.n_calls != fams[f].n_calls)
            fail_msg("%s (%s): %d calls parsed from '%s', expected %d", fams[f].tmpl, chatparse_format_name(o.format),
                     m.n_calls, turn, fams[f].n_calls);
        expect_call(&m, 0, "get_weather", "{\"city\": \"Paris\", \"unit\": \"celsius\"}");
        if (fams[f].n_calls > 1)
            expect_call(&m, 1, "read_file", "{\"path\": \"notes.txt\"}");
        assert_string_equal(m.content, "");
        printf("  %-40s %-9s %d call(s) parsed back\n", fams[f].tmpl, chatparse_format_name(o.format), m.n_calls);
        chatparse_msg_free(&m);
        free(turn);
        free(out);
        json_decref(conv);
        chat_tmpl_free(t);
        free(src);
    }
    json_decref(all);
}

struct pcase {
    enum chatparse_format fmt;
    bool think, think_open;
    const char *text, *content, *reasoning;
    int n_calls;
    const char *name0, *args0;
};

static const struct pcase pcases[] = {
    /* reasoning */
    { CHATPARSE_NONE, true, false, "<think>\nLet me think.\n</think>\n\nThe answer is 4.", "The answer is 4.",
      "Let me think.", 0, NULL, NULL },
    { CHATPARSE_NONE, true, true, "reasoning here\n</think>\n\nanswer", "answer", "reasoning here", 0, NULL, NULL },
    { CHATPARSE_NONE, true, true, "still thinking when the budget ran out", "",
      "still thinking when the budget ran out", 0, NULL, NULL },
    { CHATPARSE_HERMES, true, false, "plain <thin answer", "plain <thin answer", "", 0, NULL, NULL },
    { CHATPARSE_NONE, true, false, "<thin", "<thin", "", 0, NULL, NULL },
    { CHATPARSE_HARMONY, false, false,
      "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final<|message|>Done.<|return|>",
      "Done.", "Think.", 0, NULL, NULL },
    /* calls */
    { CHATPARSE_HARMONY, false, false,
      "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary "
      "to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Oslo\"}<|call|>",
      "", "Need weather.", 1, "get_weather", "{\"city\": \"Oslo\"}" },
    { CHATPARSE_KIMI, false, false,
      "Let me check.<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0"
      "<|tool_call_argument_begin|>{\"city\": \"Oslo\"}<|tool_call_end|><|tool_call_begin|>functions.read_file:1"
      "<|tool_call_argument_begin|>{\"path\": \"a\"}<|tool_call_end|><|tool_calls_section_end|>",
      "Let me check.", "", 2, "get_weather", "{\"city\": \"Oslo\"}" },
    { CHATPARSE_HERMES, true, false,
      "<think>\nuse f\n</think>\n\nSure.\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>",
      "Sure.", "use f", 1, "f", "{\"a\": 1}" },
    { CHATPARSE_HERMES, false, false, "<tool_call>\n{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": [1, 2]}\"}\n</tool_call>",
      "", "", 1, "f", "{\"a\": [1, 2]}" },
    { CHATPARSE_QWEN_XML, false, false,
      "<tool_call>\n<function=write>\n<parameter=text>\nline1\nline2\n</parameter>\n<parameter=n>\n3\n</parameter>\n"
      "</function>\n</tool_call>",
      "", "", 1, "write", "{\"text\": \"line1\\nline2\", \"n\": 3}" },
    { CHATPARSE_DEEPSEEK, true, false,
      "<think></think>Checking.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": "
      "\"Rome\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
      "Checking.", "", 1, "get_weather", "{\"city\": \"Rome\"}" },
    { CHATPARSE_MISTRAL, false, false, "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"x\": \"y\"}, \"id\": \"abcdefghi\"}]",
      "", "", 1, "f", "{\"x\": \"y\"}" },
    /* malformed and truncated calls: plain content */
    { CHATPARSE_HERMES, false, false, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": }\n</tool_call>",
      "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": }\n</tool_call>", "", 0, NULL, NULL },
    { CHATPARSE_HERMES, false, false, "ok <tool_call>\n{\"name\": \"f\", \"argu",
      "ok <tool_call>\n{\"name\": \"f\", \"argu", "", 0, NULL, NULL },
    { CHATPARSE_HERMES, false, false, "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>",
      "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>", "", 0, NULL, NULL },
    { CHATPARSE_QWEN_XML, false, false, "<tool_call>\n<function=get_weather>\n<parameter=city>\nPar",
      "<tool_call>\n<function=get_weather>\n<parameter=city>\nPar", "", 0, NULL, NULL },
    { CHATPARSE_QWEN_XML, false, false, "<tool_call>\nhello\n</tool_call> after", "<tool_call>\nhello\n</tool_call> after",
      "", 0, NULL, NULL },
    { CHATPARSE_QWEN_XML, false, false, "<tool_call>\n<function=f>\n<parameter=a>\n1\n</function>\n</tool_call>",
      "<tool_call>\n<function=f>\n<parameter=a>\n1\n</function>\n</tool_call>", "", 0, NULL, NULL },
    { CHATPARSE_DEEPSEEK, false, false, "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\"",
      "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\"", "", 0, NULL, NULL },
    { CHATPARSE_KIMI, false, false,
      "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>not json"
      "<|tool_call_end|><|tool_calls_section_end|>",
      "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>not json"
      "<|tool_call_end|><|tool_calls_section_end|>",
      "", 0, NULL, NULL },
    { CHATPARSE_MISTRAL, false, false, "[TOOL_CALLS][{\"name\": \"f\", \"argum", "[TOOL_CALLS][{\"name\": \"f\", \"argum",
      "", 0, NULL, NULL },
    { CHATPARSE_MISTRAL, false, false, "[TOOL_CALLS] not json", "[TOOL_CALLS] not json", "", 0, NULL, NULL },
    { CHATPARSE_HARMONY, false, false, "<|channel|>commentary to=functions.f <|constrain|>json<|message|>{\"a\": 1",
      "{\"a\": 1", "", 0, NULL, NULL },
    { CHATPARSE_HARMONY, false, false, "<|channel|>commentary to=functions.f json<|message|>{bad<|call|>", "{bad", "", 0,
      NULL, NULL },
    { CHATPARSE_HERMES, false, false, "The tag <tool_c", "The tag <tool_c", "", 0, NULL, NULL },
    { CHATPARSE_HARMONY, false, false, "plain text without a header", "plain text without a header", "", 0, NULL, NULL },
};

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(pcases) / sizeof(pcases[0]); i++) {
        const struct pcase *c = &pcases[i];
        struct chatparse_opts o = { .format = c->fmt, .think = c->think, .think_open = c->think_open };
        struct chatparse_msg m;
        parse_all_ways(&o, c->text, &m);
        if (strcmp(m.content, c->content) || strcmp(m.reasoning, c->reasoning) || m.n_calls != c->n_calls)
            fail_msg("case %zu '%s': content '%s' reasoning '%s' calls %d; expected '%s' '%s' %d", i, c->text,
                     m.content, m.reasoning, m.n_calls, c->content, c->reasoning, c->n_calls);
        if (c->n_calls)
            expect_call(&m, 0, c->name0, c->args0);
        chatparse_msg_free(&m);
    }
    printf("  %d parser cases (each one-shot and in chunks of 1, 2, 3, 7 bytes)\n", n_cases);
}

static void test_detect(void **state)
{
    (void)state;
    struct chatparse_opts o;
    chatparse_opts_detect(&o, "{{ '<think>\\n' }}<tool_call>", "<|im_start|>assistant\n<think>\n");
    assert_int_equal(o.format, CHATPARSE_HERMES);
    assert_true(o.think && o.think_open);
    chatparse_opts_detect(&o, "<think> <tool_call>", "<|im_start|>assistant\n<think>\n\n</think>\n\n");
    assert_false(o.think_open);
    chatparse_opts_detect(&o, NULL, NULL);
    assert_int_equal(o.format, CHATPARSE_NONE);
}

static void test_chat(void **state)
{
    (void)state;
    char err[512], *out;
    size_t n;
    struct chat_tmpl *t;
    /* ChatML fallback; OpenAI-style string arguments become objects */
    assert_int_equal(chat_tmpl_init(&t, NULL, 0, NULL, NULL, NULL, err, sizeof(err)), 0);
    json_t *conv = json_loads("{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", "
                              "\"content\": \"U\"}], \"add_generation_prompt\": false}",
                              0, NULL);
    assert_int_equal(chat_render(t, conv, &out, &n, err, sizeof(err)), 0);
    assert_string_equal(out, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n");
    free(out);
    json_decref(conv);
    chat_tmpl_free(t);
    const char *src = "{{ bos_token }}{% for m in messages %}{% for c in m.tool_calls %}{{ c.function.arguments.city }}"
                      "{% endfor %}{% endfor %}{% if add_generation_prompt %}>{% endif %}";
    assert_int_equal(chat_tmpl_init(&t, src, strlen(src), "<B>", "<E>", NULL, err, sizeof(err)), 0);
    conv = json_loads("{\"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": \"w\", "
                      "\"arguments\": \"{\\\"city\\\": \\\"Oslo\\\"}\"}}]}]}",
                      0, NULL);
    assert_int_equal(chat_render(t, conv, &out, &n, err, sizeof(err)), 0);
    assert_string_equal(out, "<B>Oslo>");
    free(out);
    json_decref(conv);
    conv = json_loads("{\"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": \"w\", "
                      "\"arguments\": \"{not json\"}}]}]}",
                      0, NULL);
    assert_int_equal(chat_render(t, conv, &out, &n, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "messages[0].tool_calls[0]: arguments are not valid JSON"));
    json_decref(conv);
    chat_tmpl_free(t);
    /* a syntax error in a template names the line */
    assert_int_equal(chat_tmpl_init(&t, "a\n{% if %}", 10, NULL, NULL, NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "line 2"));
    /* GGUF fixtures: tinymoe has no template (ChatML), qwen35moe has one */
    if (!have_fixtures()) {
        printf("  SKIP (GGUF part): fixtures not found\n");
        return;
    }
    static const struct { const char *file; bool fallback; } ggufs[] = {
        { "tinymoe/tinymoe-Q8_0.gguf", true },
        { "arch/qwen35moe-Q8_0.gguf", false },
    };
    for (size_t i = 0; i < sizeof(ggufs) / sizeof(ggufs[0]); i++) {
        char p[4400];
        snprintf(p, sizeof(p), "%s/%s", fixtures, ggufs[i].file);
        struct gguf_ctx *g;
        if (gguf_open(&g, p, err, sizeof(err))) {
            printf("  SKIP %s: %s\n", ggufs[i].file, err);
            continue;
        }
        bool fb;
        assert_int_equal(chat_tmpl_from_gguf(&t, g, NULL, &fb, err, sizeof(err)), 0);
        assert_int_equal(fb, ggufs[i].fallback);
        conv = json_loads("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 0, NULL);
        assert_int_equal(chat_render(t, conv, &out, &n, err, sizeof(err)), 0);
        assert_string_equal(out, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
        free(out);
        json_decref(conv);
        chat_tmpl_free(t);
        gguf_close(g);
    }
}

static char *slurp(const char *path)
{
    size_t n;
    char *s = read_all(path, &n);
    assert_non_null(s);
    return s;
}

/* The prompt of the k-th "formatted prompt (N bytes):" block in chat's stderr. */
static char *nth_prompt(const char *log, int k)
{
    const char *p = log;
    for (int i = 0; i <= k; i++) {
        p = strstr(p, "moestream chat: formatted prompt (");
        assert_non_null(p);
        p += strlen("moestream chat: formatted prompt (");
    }
    size_t n = strtoul(p, NULL, 10);
    p = strchr(p, '\n');
    assert_non_null(p);
    return strndup(p + 1, n);
}

static void test_chat_verbose_prompt(void **state)
{
    (void)state;
    const char *bin = getenv("MOESTREAM_BIN");
    if (!bin || !have_fixtures()) {
        printf("  SKIP: needs MOESTREAM_BIN (make test sets it) and the fixtures\n");
        skip();
    }
    char dir[] = "/tmp/moestream-test-chat-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[9000];
    snprintf(cmd, sizeof(cmd), "%s/moestream-split %s/tinymoe/tinymoe-Q8_0.gguf -o %s/m >/dev/null 2>&1", bin,
             fixtures, dir);
    assert_int_equal(system(cmd), 0);
    /* two turns, greedy, short replies */
    snprintf(cmd, sizeof(cmd),
             "printf 'def add(a, b):\\nand sub\\n' | %s/moestream chat -m %s/m --jinja --system 'Be brief.' "
             "--reasoning off -n 6 --temp 0 -t 1 --verbose-prompt >%s/out.txt 2>%s/err.txt",
             bin, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s/err.txt", dir);
    char *log = slurp(cmd);
    assert_non_null(strstr(log, "has no chat template; using ChatML"));
    char *p1 = nth_prompt(log, 0), *p2 = nth_prompt(log, 1);
    /* turn 1 as `moestream template` renders it */
    snprintf(cmd, sizeof(cmd),
             "printf '%%s' '{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": "
             "\"user\", \"content\": \"def add(a, b):\"}], \"enable_thinking\": false}' | %s/moestream template -m "
             "%s/m >%s/t1.txt 2>/dev/null",
             bin, dir, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s/t1.txt", dir);
    char *t1 = slurp(cmd);
    assert_string_equal(p1, t1);
    /* turn 2 holds turn 1, the reply (as content) and the new message */
    assert_int_equal(strncmp(p2, t1, strlen(t1) - strlen("<|im_start|>assistant\n")), 0);
    assert_non_null(strstr(p2, "<|im_start|>user\nand sub<|im_end|>\n<|im_start|>assistant\n"));
    printf("  chat --verbose-prompt: turn 1 identical to `moestream template` (%zu bytes), turn 2 extends it\n",
           strlen(t1));
    free(p1);
    free(p2);
    free(t1);
    free(log);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_cases), cmocka_unit_test(test_detect),
        cmocka_unit_test(test_chat), cmocka_unit_test(test_chat_verbose_prompt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
