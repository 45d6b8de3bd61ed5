/*
 * jinja.h - a bounded Jinja2 template engine for chat templates.
 *
 * Owns: parsing a template (the subset of Jinja2 that published chat
 * templates use: if/elif/else, for with loop.* and else, break/continue,
 * set incl. namespace() attributes and block set, macro/call, filter blocks,
 * expressions with Python semantics, filters, tests and str/dict/list
 * methods) and rendering it against variables given as a jansson JSON object.
 * It renders as Hugging Face transformers' apply_chat_template does with
 * jinja2 3.1: trim_blocks, lstrip_blocks, loop controls, `tojson` as
 * json.dumps(x, ensure_ascii=False) with indent/separators/sort_keys,
 * raise_exception(msg) and strftime_now(fmt).
 *
 * Bounded: every render has a cap on output bytes, on memory (all values of a
 * render live in one arena that is never reused during the render, so the cap
 * also bounds the work of string building), on evaluation steps (statements,
 * expressions and loop iterations) and on nesting depth (macro recursion and
 * expression depth), so a hostile template ends with a clean error.
 *
 * Must not: print, exit, or keep pointers into the caller's JSON after
 * jinja_render returns. Thread-safety: a parsed template is read-only while
 * rendering, so several threads may render one template at once.
 * Called by: chat.c (prompt formatting), the `template` CLI command, tests.
 */
#ifndef MOESTREAM_JINJA_H
#define MOESTREAM_JINJA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct jinja_tpl;

struct jinja_opts {
    bool trim_blocks;    /* drop the first newline after a block tag or comment */
    bool lstrip_blocks;  /* strip spaces and tabs before a block tag or comment on its line */
    const char *now;     /* strftime_now's clock, "YYYY-MM-DD HH:MM:SS"; NULL = local time */
    size_t max_output;   /* bytes of rendered text (whole output and any macro's) */
    size_t max_memory;   /* bytes of values allocated during one render */
    uint64_t max_steps;  /* statements + expressions + loop iterations per render */
    int max_depth;       /* nesting of expressions, statements and macro calls */
};

/* The set-up HF transformers uses (trim_blocks, lstrip_blocks, local clock)
 * and limits far above what real templates need (the published ones take
 * under 100k steps and a few MiB for long conversations): 16 MiB output,
 * 128 MiB memory, 10M steps (about a second), depth 400. */
void jinja_opts_default(struct jinja_opts *o);

/* Parses src[0..len) into *out. The options are copied. Returns 0, or -EINVAL
 * with "line N: ..." in err on a syntax error, -ENOMEM. */
int jinja_parse(struct jinja_tpl **out, const char *src, size_t len, const struct jinja_opts *o, char *err,
                size_t errlen);

/* Renders t with the keys of the JSON object vars as variables (vars may be
 * NULL). On success *out is a malloc'd NUL-terminated string (the caller
 * frees it) and *out_len its length. On failure returns -EINVAL (template
 * error: the message of raise_exception() as written, or "line N: ..."),
 * -E2BIG (a limit was hit; err names it) or -ENOMEM, and *out is NULL. */
int jinja_render(const struct jinja_tpl *t, const json_t *vars, char **out, size_t *out_len, char *err,
                 size_t errlen);

void jinja_free(struct jinja_tpl *t);

#endif
