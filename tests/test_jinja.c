/*
 * test_jinja.c - the Jinja engine: every rendering in ../shared/fixtures/
 * templates reproduced byte for byte (8 conversations x 6 published
 * templates) and every .error refused with the template's own message;
 * language features against outputs of Python's jinja2 3.1 (set up as HF
 * transformers sets it up: trim_blocks, lstrip_blocks, loopcontrols,
 * tojson = json.dumps(ensure_ascii=False)); syntax and runtime errors; the
 * bounds (hostile templates end with a clean error, fast); `moestream
 * template` on the fixtures.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <time.h>

#include <cmocka.h>

#include "jinja.h"

#define NOW "2026-11-30 12:00:00"

static char fixtures[4096];

static bool have_templates(void)
{
    const char *env = getenv("MOESTREAM_FIXTURES");
    snprintf(fixtures, sizeof(fixtures), "%s/templates", env ? env : "../shared/fixtures");
    char p[4200];
    snprintf(p, sizeof(p), "%s/conversations.json", fixtures);
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

/* Renders src with vars (JSON text) under the HF set-up; returns the rc. */
static int render_opts(const char *src, const char *vars, const struct jinja_opts *o, char **out, char *err,
                       size_t errlen)
{
    struct jinja_tpl *t;
    *out = NULL;
    int rc = jinja_parse(&t, src, strlen(src), o, err, errlen);
    if (rc)
        return rc;
    json_t *v = vars ? json_loads(vars, 0, NULL) : NULL;
    size_t n;
    rc = jinja_render(t, v, out, &n, err, errlen);
    json_decref(v);
    jinja_free(t);
    return rc;
}

static int render(const char *src, const char *vars, char **out, char *err, size_t errlen)
{
    struct jinja_opts o;
    jinja_opts_default(&o);
    o.now = NOW;
    return render_opts(src, vars, &o, out, err, errlen);
}

static const char *const templates[] = {
    "Qwen3.5-4B", "Qwen-Qwen3-0.6B", "Qwen3-Coder", "openai-gpt-oss-120b", "deepseek-ai-DeepSeek-V3.1",
    "mistralai-Mistral-Nemo-Instruct-2407",
};

static void test_fixtures(void **state)
{
    (void)state;
    if (!have_templates()) {
        printf("  SKIP: %s not found (set MOESTREAM_FIXTURES or put ../shared/fixtures beside the repo)\n",
               fixtures);
        skip();
    }
    char p[4400], err[1024];
    snprintf(p, sizeof(p), "%s/conversations.json", fixtures);
    json_error_t je;
    json_t *all = json_load_file(p, 0, &je);
    assert_non_null(all);
    json_t *defaults = json_object_get(all, "defaults"), *convs = json_object_get(all, "conversations");
    assert_true(json_is_object(convs));
    int txt_ok = 0, txt_n = 0, err_ok = 0, err_n = 0;
    for (size_t ti = 0; ti < sizeof(templates) / sizeof(templates[0]); ti++) {
        size_t n;
        snprintf(p, sizeof(p), "%s/%s.jinja", fixtures, templates[ti]);
        char *src = read_all(p, &n);
        assert_non_null(src);
        struct jinja_opts o;
        jinja_opts_default(&o);
        o.now = json_string_value(json_object_get(defaults, "strftime_now"));
        struct jinja_tpl *t;
        int rc = jinja_parse(&t, src, n, &o, err, sizeof(err));
        if (rc)
            fail_msg("%s: %s", templates[ti], err);
        const char *name;
        json_t *conv;
        json_object_foreach(convs, name, conv) {
            json_t *vars = json_deep_copy(conv);
            const char *k;
            json_t *dv;
            json_object_foreach(defaults, k, dv) if (strcmp(k, "strftime_now") && !json_object_get(vars, k))
                json_object_set(vars, k, dv);
            char *out = NULL;
            size_t olen = 0;
            rc = jinja_render(t, vars, &out, &olen, err, sizeof(err));
            json_decref(vars);
            size_t en;
            snprintf(p, sizeof(p), "%s/%s.%s.txt", fixtures, templates[ti], name);
            char *exp = read_all(p, &en);
            if (exp) {
                txt_n++;
                if (rc == 0 && olen == en && !memcmp(out, exp, en))
                    txt_ok++;
                else
                    printf("  %s %s: %s\n", templates[ti], name, rc ? err : "output differs");
            } else {
                snprintf(p, sizeof(p), "%s/%s.%s.error", fixtures, templates[ti], name);
                exp = read_all(p, &en);
                assert_non_null(exp);
                err_n++;
                /* the file holds "TemplateError: <message>\n" */
                char *msg = strstr(exp, ": ");
                msg = msg ? msg + 2 : exp;
                msg[strcspn(msg, "\n")] = 0;
                if (rc == -EINVAL && !strcmp(err, msg))
                    err_ok++;
                else
                    printf("  %s %s: expected the error '%s', got rc %d '%s'\n", templates[ti], name, msg, rc,
                           rc ? err : "");
            }
            free(exp);
            free(out);
        }
        jinja_free(t);
        free(src);
    }
    json_decref(all);
    printf("  templates: %d/%d renderings reproduced byte for byte, %d/%d refusals with the template's message "
           "(%d/%d)\n",
           txt_ok, txt_n, err_ok, err_n, txt_ok + err_ok, txt_n + err_n);
    assert_int_equal(txt_ok, txt_n);
    assert_int_equal(err_ok, err_n);
    assert_int_equal(txt_n + err_n, 48);
}

/* template, variables (JSON), what jinja2 3.1 renders */
static const struct { const char *src, *vars, *expect; } cases[] = {
    { "{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}|{{ 7 / 2 }}",
      "{}",
      "7|9|3|-4|1|2|1024|3.5" },
    { "{{ 'a' ~ 1 ~ none ~ true }}|{{ 'ab' * 3 }}|{{ [1, 2] + [3] }}",
      "{}",
      "a1NoneTrue|ababab|[1, 2, 3]" },
    { "{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1.5e-7 }} {{ 3.0 * 2 }} {{ 10 / 4 }}",
      "{}",
      "1.0 0.30000000000000004 1e+20 1.5e-07 6.0 2.5" },
    { "{{ x }}|{{ x.y is defined }}|{{ y is defined }}|{{ y is undefined }}|{{ none is none }}",
      "{\"x\": {\"y\": 1}}",
      "{'y': 1}|True|False|True|True" },
    { "{% if a %}A{% elif b %}B{% else %}C{% endif %}",
      "{\"b\": 1}",
      "B" },
    { "{% for i in items %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{% if not loop.last %},{% endif %}{% endfor %}",
      "{\"items\": [\"a\", \"b\", \"c\"]}",
      "10TrueFalse33,21FalseFalse32,32FalseTrue31" },
    { "{% for i in items %}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %}",
      "{\"items\": [1, 2, 3]}",
      "-2;1-3;2-;" },
    { "{% for i in [] %}x{% else %}empty{% endfor %}",
      "{}",
      "empty" },
    { "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i > 4 %}{% break %}{% endif %}{{ i }}{% endfor %}",
      "{}",
      "0134" },
    { "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}",
      "{\"d\": {\"z\": 1, \"a\": 2}}",
      "z=1;a=2;za" },
    { "{% for x in xs if x is odd %}{{ x }}{{ loop.length }}{% endfor %}",
      "{\"xs\": [1, 2, 3, 4, 5]}",
      "133353" },
    { "{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
      "{}",
      "6" },
    { "{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}",
      "{}",
      "1" },
    { "{% set a, b = [1, 2] %}{{ a }}{{ b }}{% set t = 1, 2 %}{{ t }}",
      "{}",
      "12(1, 2)" },
    { "{% set blk %}inner {{ 1 + 1 }}{% endset %}[{{ blk }}]",
      "{}",
      "[inner 2]" },
    { "{% macro m(a, b='B', c=none) %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ m(1) }}|{{ m(1, 2) }}|{{ m(1, c=3) }}",
      "{}",
      "1BNone|12None|1B3" },
    { "{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}",
      "{}",
      "54321" },
    { "{% macro w() %}<{{ caller() }}>{% endmacro %}{% call w() %}body{% endcall %}",
      "{}",
      "<body>" },
    { "{% macro w() %}<{{ caller(7) }}>{% endmacro %}{% call(v) w() %}v={{ v }}{% endcall %}",
      "{}",
      "<v=7>" },
    { "{% filter upper %}shout {{ 'this' }}{% endfilter %}",
      "{}",
      "SHOUT THIS" },
    { "{{ '  hi  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ [1,2,3] | length }}|{{ 'h\303\251llo' | length }}|{{ [3,1,2] | first }}|{{ [3,1,2] | last }}",
      "{}",
      "hi|hi|3|5|3|2" },
    { "{{ [1, 2, 3] | join(', ') }}|{{ 'a-b-c' | replace('-', '+') }}|{{ 'Hello' | upper }}{{ 'Hello' | lower }}|{{ 'hello world' | title }}|{{ 'hello' | capitalize }}",
      "{}",
      "1, 2, 3|a+b+c|HELLOhello|Hello World|Hello" },
    { "{{ x | default('d') }}|{{ '' | default('d') }}|{{ '' | default('d', true) }}|{{ none | string }}|{{ 3 | string }}",
      "{}",
      "d||d|None|3" },
    { "{{ d | items | list }}|{{ d.keys() | list }}|{{ d.values() | list }}|{{ d.get('a') }}|{{ d.get('q', 9) }}",
      "{\"d\": {\"a\": 1, \"b\": [1, \"x\"]}}",
      "[('a', 1), ('b', [1, 'x'])]|['a', 'b']|[1, [1, 'x']]|1|9" },
    { "{{ xs | tojson }}|{{ d | tojson }}|{{ d | tojson(indent=2) }}|{{ d | tojson(sort_keys=true) }}|{{ '\303\251\"\\n' | tojson }}",
      "{\"xs\": [1, 2.5, null, true, \"s\"], \"d\": {\"b\": 1, \"a\": {\"c\": []}}}",
      "[1, 2.5, null, true, \"s\"]|{\"b\": 1, \"a\": {\"c\": []}}|{\n  \"b\": 1,\n  \"a\": {\n    \"c\": []\n  }\n}|{\"a\": {\"c\": []}, \"b\": 1}|\"\303\251\\\"\\n\"" },
    { "{{ d | tojson(separators=(',', ':')) }}|{{ [] | tojson(indent=2) }}|{{ {} | tojson }}",
      "{\"d\": {\"b\": 1, \"a\": [1, 2]}}",
      "{\"b\":1,\"a\":[1,2]}|[]|{}" },
    { "{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}{{ 'abc'.startswith(('x', 'a')) }}",
      "{}",
      "['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|TrueTrueTrue" },
    { "{{ '\\n\\nx\\n'.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ 'xxaxx'.rstrip('x') }}|{{ 'AbC'.upper() }}{{ 'AbC'.lower() }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'hello'.find('l') }}|{{ 'hello'.count('l') }}",
      "{}",
      "x|axx|xxa|ABCabc|bba|2|2" },
    { "{{ xs[0] }}{{ xs[-1] }}{{ xs[1:] }}{{ xs[:-1] }}{{ xs[::-1] }}{{ xs[::2] }}{{ 'h\303\251llo'[1:3] }}{{ 'hello'[::-1] }}{{ xs[10] }}",
      "{\"xs\": [1, 2, 3, 4]}",
      "14[2, 3, 4][1, 2, 3][4, 3, 2, 1][1, 3]\303\251lolleh" },
    { "{{ 1 in xs }}{{ 5 not in xs }}{{ 'el' in 'hello' }}{{ 'a' in d }}{{ 1 == 1.0 }}{{ 'a' < 'b' }}{{ [1, 2] == [1, 2] }}{{ d == {'a': 1} }}",
      "{\"xs\": [1, 2], \"d\": {\"a\": 1}}",
      "TrueTrueTrueTrueTrueTrueTrueTrue" },
    { "{{ 'yes' if x else 'no' }}|{{ 'yes' if y }}|{{ x and 'A' }}|{{ y or 'B' }}|{{ not x }}",
      "{\"x\": 1}",
      "yes||A|B|False" },
    { "{{ x is string }}{{ x is mapping }}{{ d is mapping }}{{ xs is iterable }}{{ xs is sequence }}{{ 3 is number }}{{ 3 is integer }}{{ 3.5 is float }}{{ true is boolean }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 'a' is in 'abc' }}{{ x is eq 'hi' }}",
      "{\"x\": \"hi\", \"d\": {}, \"xs\": [1]}",
      "TrueFalseTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrue" },
    { "{{ msgs | selectattr('role', 'equalto', 'user') | list | length }}|{{ msgs | map(attribute='role') | join(',') }}|{{ msgs | rejectattr('role', 'eq', 'user') | map(attribute='c') | list }}",
      "{\"msgs\": [{\"role\": \"user\", \"c\": 1}, {\"role\": \"assistant\", \"c\": 2}, {\"role\": \"user\", \"c\": 3}]}",
      "2|user,assistant,user|[2]" },
    { "{{ [3, 1, 2] | sort }}|{{ [3, 1, 2] | sort(reverse=true) }}|{{ ['b', 'A', 'c'] | sort }}|{{ [1, 2, 2, 1] | unique | list }}|{{ [1, 2] | reverse | list }}|{{ [1, 2, 3] | sum }}|{{ [4, 2, 8] | min }}{{ [4, 2, 8] | max }}",
      "{}",
      "[1, 2, 3]|[3, 2, 1]|['A', 'b', 'c']|[1, 2]|[2, 1]|6|28" },
    { "{{ '3' | int + 1 }}|{{ 'x' | int }}|{{ '2.5' | float }}|{{ -3 | abs }}|{{ 2.567 | round(2) }}|{{ 2.5 | round }}|{{ 'a\\nb' | indent(2) }}|{{ 'a b  c' | wordcount }}",
      "{}",
      "4|0|2.5|3|2.57|2.0|a\n  b|3" },
    { "{{ range(3) | list }}{{ range(1, 7, 2) | list }}{{ range(5, 0, -2) | list }}",
      "{}",
      "[0, 1, 2][1, 3, 5][5, 3, 1]" },
    { "{{ d }}|{{ xs }}|{{ [\"it's\", 'a\"b'] }}|{{ true }}|{{ none }}",
      "{\"d\": {\"a\": [1, \"x\"], \"b\": null}, \"xs\": [1.5, false]}",
      "{'a': [1, 'x'], 'b': None}|[1.5, False]|[\"it's\", 'a\"b']|True|None" },
    { "{{ strftime_now('%Y-%m-%d %H:%M') }}",
      "{}",
      "2026-11-30 12:00" },
    { "{%- if true -%}\n  a  \n{%- endif -%}\n  b\n{{- ' c ' -}}\n d",
      "{}",
      "ab c d" },
    { "<{% if true %}\n    x\n{% endif %}\n>",
      "{}",
      "<    x\n>" },
    { "  {% if true %}\nA\n  {% endif %}\nB\n  {# c #}\nC",
      "{}",
      "A\nB\nC" },
    { "{% for i in [1,2] %}\n  {{ i }}\n{% endfor %}\n",
      "{}",
      "  1\n  2\n" },
    { "{{ 'a\\tb\\u00e9\\x41' }}",
      "{}",
      "a\tb\303\251A" },
    { "{# comment #}{%+ if true %}  keep{% endif %}",
      "{}",
      "  keep" },
    { "{{ loop_messages }}{% set loop_messages = messages[1:] %}{{ loop_messages | length }}",
      "{\"messages\": [1, 2, 3]}",
      "2" },
    { "{% set d = {'a': 1, 'b': {'c': 2}} %}{{ d.b.c }}{{ d['b']['c'] }}{{ d | length }}",
      "{}",
      "222" },
    { "{{ 'x' if none is none else 'y' }}{{ (1, 2) }}{{ [1, [2, 3]] | tojson }}",
      "{}",
      "x(1, 2)[1, [2, 3]]" },
    { "{{ messages[0].content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}",
      "{\"messages\": [{\"content\": \"<think>\\nr\\n</think>\\n\\nc\"}]}",
      "r" },
    { "{% for m in ms %}{% for t in m %}{{ loop.index }}{% endfor %}{{ loop.index }};{% endfor %}",
      "{\"ms\": [[1, 2], [3]]}",
      "121;12;" },
    { "{{ 'h\303\251llo w\303\266rld \316\221\316\222\316\223 \320\260\320\261\320\262'.upper() }}|{{ '\303\200\303\211\303\216 \316\251mega'.lower() }}|{{ '\303\251lan vital' | title }}|{{ '\303\211COLE' is upper }}",
      "{}",
      "H\303\211LLO W\303\226RLD \316\221\316\222\316\223 \320\220\320\221\320\222|\303\240\303\251\303\256 \317\211mega|\303\211lan Vital|True" },
    { "{{ 2 | round }}|{{ 2.5 | round }}|{{ 3.5 | round }}|{{ 'a-b c_d' | wordcount }}|{{ none | safe }}|{{ 4.0 is even }}|{{ {'a': 1} is lower }}",
      "{}",
      "2|2.0|4.0|3|None|True|True" },
    { "a\015\n{% if true %}\015\nb\015\n{% endif %}\015\nc\015\n",
      "{}",
      "a\nb\nc" },
    { "{{ ['b', 'A', 'c'] | max }}{{ ['b', 'A', 'c'] | min }}{{ ['b', 'a', 'C'] | sort | join }}",
      "{}",
      "cAabC" },
};

static void test_features(void **state)
{
    (void)state;
    char err[512];
    int ok = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out;
        int rc = render(cases[i].src, cases[i].vars, &out, err, sizeof(err));
        if (rc)
            printf("  case %zu: %s\n    error: %s\n", i, cases[i].src, err);
        else if (strcmp(out, cases[i].expect))
            printf("  case %zu: %s\n    expected '%s'\n    got      '%s'\n", i, cases[i].src, cases[i].expect, out);
        else
            ok++;
        free(out);
    }
    printf("  %d/%zu language cases match jinja2\n", ok, sizeof(cases) / sizeof(cases[0]));
    assert_int_equal(ok, (int)(sizeof(cases) / sizeof(cases[0])));
}

static void expect_error(const char *src, const char *vars, int want_rc, const char *needle)
{
    char err[512], *out;
    int rc = render(src, vars, &out, err, sizeof(err));
    if (rc != want_rc || !strstr(err, needle))
        fail_msg("%s: expected rc %d with '%s', got rc %d '%s'", src, want_rc, needle, rc, rc ? err : out);
    assert_null(out);
}

static void test_errors(void **state)
{
    (void)state;
    /* syntax errors name the line */
    expect_error("a\n{% if x %}b", NULL, -EINVAL, "line 2: unexpected end of template, expected 'endif'");
    expect_error("{% for x in y %}{% endif %}", NULL, -EINVAL, "unexpected 'endif'");
    expect_error("{{ 1 + }}", NULL, -EINVAL, "line 1: unexpected '}}' in expression");
    expect_error("\n\n{% frobnicate %}", NULL, -EINVAL, "line 3: unknown tag 'frobnicate'");
    expect_error("{{ 'abc }}", NULL, -EINVAL, "unterminated string literal");
    expect_error("{# never closed", NULL, -EINVAL, "unterminated comment");
    /* runtime errors */
    expect_error("{{ x | nosuch }}", NULL, -EINVAL, "no filter named 'nosuch'");
    expect_error("{{ x is nosuch }}", NULL, -EINVAL, "no test named 'nosuch'");
    expect_error("{{ raise_exception('No user query found in messages.') }}", NULL, -EINVAL,
                 "No user query found in messages.");
    expect_error("{{ a.b }}", NULL, -EINVAL, "'a' is undefined");
    expect_error("{{ 'a' + 1 }}", NULL, -EINVAL, "can only concatenate str (not \"int\") to str");
    expect_error("{{ 1 // 0 }}", NULL, -EINVAL, "division or modulo by zero");
    expect_error("{{ 9223372036854775807 + 1 }}", NULL, -EINVAL, "integer overflow");
    expect_error("{% set x.y = 1 %}", "{\"x\": {}}", -EINVAL, "non-namespace");
    expect_error("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", NULL, -EINVAL, "takes not more than 1");
    expect_error("{{ x | tojson }}", NULL, -EINVAL, "not JSON serializable");
    /* raise_exception's message is the whole error, without a line prefix */
    char err[256], *out;
    assert_int_equal(render("\n\n{{ raise_exception('exact') }}", NULL, &out, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "exact");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Hostile templates end with -E2BIG (or -EINVAL for the parser's depth)
 * and the limit's name, quickly, under small limits and under the defaults. */
static void test_bounds(void **state)
{
    (void)state;
    static const struct { const char *src, *needle; int rc; } hostile[] = {
        { "{% set r = range(8000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}", "steps", -E2BIG },
        { "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "deeper", -E2BIG },
        { "{% for i in range(1000000) %}{{ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' * 100 }}{% endfor %}", "output",
          -E2BIG },
        { "{{ 'x' * 4000000000 }}", "memory", -E2BIG },
        { "{{ range(4000000000) | length }}", "memory", -E2BIG },
        { "{% set ns = namespace(s='xy') %}{% for i in range(200) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
          "than", -E2BIG },
        { "{% set ns = namespace(l=[1]) %}{% for i in range(200) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
          "memory", -E2BIG },
        { "{% for i in range(3000000) %}{% set x = [i, i, i, i] %}{% endfor %}", "", -E2BIG },
    };
    struct jinja_opts small;
    jinja_opts_default(&small);
    small.max_steps = 2000000;
    small.max_memory = 32u << 20;
    small.max_output = 1u << 20;
    small.max_depth = 100;
    for (int pass = 0; pass < 2; pass++) {
        struct jinja_opts o;
        jinja_opts_default(&o);
        for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
            char err[512], *out;
            double t0 = now_s();
            int rc = render_opts(hostile[i].src, NULL, pass ? &o : &small, &out, err, sizeof(err));
            double dt = now_s() - t0;
            if (rc != hostile[i].rc || !strstr(err, hostile[i].needle))
                fail_msg("%s: expected rc %d '%s', got rc %d '%s'", hostile[i].src, hostile[i].rc, hostile[i].needle,
                         rc, rc ? err : "");
            if (pass == 0 && dt > 2.0)
                fail_msg("%s took %.1f s under small limits", hostile[i].src, dt);
            assert_null(out);
        }
    }
    /* the parser caps nesting (default depth 400) */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 16);
    strcpy(deep, "{{ ");
    memset(deep + 3, '(', depth);
    deep[3 + depth] = '1';
    memset(deep + 4 + depth, ')', depth);
    strcpy(deep + 4 + 2 * depth, " }}");
    char err[512], *out;
    assert_int_equal(render(deep, NULL, &out, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "nesting deeper than"));
    free(deep);
    /* deeply nested JSON input */
    char *nested = malloc(2 * 1000 + 1);
    for (int i = 0; i < 1000; i++) {
        nested[i] = '[';
        nested[2000 - 1 - i] = ']';
    }
    nested[2000] = 0;
    char vars[2100];
    snprintf(vars, sizeof(vars), "{\"x\": %s}", nested);
    free(nested);
    json_t *v = json_loads(vars, 0, NULL);
    if (v) { /* jansson itself may refuse this depth; either way nothing overflows */
        struct jinja_tpl *t;
        assert_int_equal(jinja_parse(&t, "{{ x | tojson }}", 16, NULL, err, sizeof(err)), 0);
        size_t n;
        assert_int_equal(jinja_render(t, v, &out, &n, err, sizeof(err)), -E2BIG);
        jinja_free(t);
        json_decref(v);
    }
}

/* whitespace control: the rules HF's set-up follows, checked on edge cases */
static void test_whitespace(void **state)
{
    (void)state;
    struct jinja_opts o;
    jinja_opts_default(&o);
    o.trim_blocks = o.lstrip_blocks = false;
    char err[256], *out;
    assert_int_equal(render_opts("  {% if true %}\nx\n  {% endif %}\n", NULL, &o, &out, err, sizeof(err)), 0);
    assert_string_equal(out, "  \nx\n  "); /* plain jinja2: nothing stripped but the final newline */
    free(out);
    assert_int_equal(render("  {% if true %}\nx\n  {% endif %}\n", NULL, &out, err, sizeof(err)), 0);
    assert_string_equal(out, "x\n");
    free(out);
    assert_int_equal(render("a  {%- if true -%}  \n b {%+ endif %}\n", NULL, &out, err, sizeof(err)), 0);
    assert_string_equal(out, "ab ");
    free(out);
}

static void test_cli(void **state)
{
    (void)state;
    const char *bin = getenv("MOESTREAM_BIN");
    if (!bin || !have_templates()) {
        printf("  SKIP: needs MOESTREAM_BIN (make test sets it) and the template fixtures\n");
        skip();
    }
    char conv[] = "/tmp/moestream-test-jinja-XXXXXX";
    int fd = mkstemp(conv);
    assert_true(fd >= 0);
    const char *json = "{\"messages\": [{\"role\": \"user\", \"content\": \"Write a haiku about disks.\"}], "
                       "\"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}";
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    char cmd[9000];
    snprintf(cmd, sizeof(cmd),
             "%s/moestream template --template %s/openai-gpt-oss-120b.jinja --now '" NOW "' %s | cmp -s - "
             "%s/openai-gpt-oss-120b.user.txt",
             bin, fixtures, conv, fixtures);
    assert_int_equal(system(cmd), 0);
    /* a refusal: the template's message on stderr, exit status 1 */
    const char *bad = "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"b\"}]}";
    fd = open(conv, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    snprintf(cmd, sizeof(cmd),
             "%s/moestream template --template %s/mistralai-Mistral-Nemo-Instruct-2407.jinja %s 2>&1 >/dev/null | "
             "grep -q 'conversation roles must alternate'",
             bin, fixtures, conv);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd), "%s/moestream template --template %s/mistralai-Mistral-Nemo-Instruct-2407.jinja %s "
             ">/dev/null 2>&1", bin, fixtures, conv);
    int st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    unlink(conv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures), cmocka_unit_test(test_features), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bounds),   cmocka_unit_test(test_whitespace), cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
