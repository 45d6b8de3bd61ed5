/*
 * chatparse.c - generated text -> content, reasoning and tool calls (see
 * chatparse.h).
 *
 * One pure function, parse(text, final), does all the work: in partial mode
 * (final = false) it stops before anything undecided (a suffix that may be
 * the start of a marker, an unclosed call) and trims trailing whitespace, so
 * its content and reasoning are always prefixes of the final parse's. The
 * streaming object re-parses its buffer on every feed and hands out what
 * grew. Generations are short (kilobytes), so re-parsing costs little next to
 * a forward pass.
 */
#include "chatparse.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom || !n)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        while (nc < b->n + n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

struct calls {
    struct chatparse_call *v;
    int n, cap;
    bool oom;
};

static void calls_free(struct calls *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->v[i].name);
        free(c->v[i].arguments);
    }
    free(c->v);
    memset(c, 0, sizeof(*c));
}

/* Takes a name and an arguments JSON value (an object, or a string holding
 * one). false when the arguments are not an object. */
static bool calls_add(struct calls *c, const char *name, size_t nlen, json_t *args)
{
    json_t *obj = args;
    if (json_is_string(args)) {
        obj = json_loadb(json_string_value(args), json_string_length(args), 0, NULL);
        if (!obj)
            return false;
    } else {
        json_incref(obj);
    }
    if (!json_is_object(obj) || nlen == 0) {
        json_decref(obj);
        return false;
    }
    char *a = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    char *nm = strndup(name, nlen);
    if (c->n == c->cap) {
        int nc = c->cap ? c->cap * 2 : 4;
        struct chatparse_call *nv = realloc(c->v, (size_t)nc * sizeof(*nv));
        if (!nv) {
            free(a);
            free(nm);
            c->oom = true;
            return true;
        }
        c->v = nv;
        c->cap = nc;
    }
    if (!a || !nm) {
        free(a);
        free(nm);
        c->oom = true;
        return true;
    }
    c->v[c->n].name = nm;
    c->v[c->n].arguments = a;
    c->n++;
    return true;
}

static const char *find(const char *s, size_t n, size_t from, const char *m)
{
    if (from > n)
        return NULL;
    return memmem(s + from, n - from, m, strlen(m));
}

static bool starts(const char *s, size_t n, size_t at, const char *m)
{
    size_t k = strlen(m);
    return at <= n && n - at >= k && !memcmp(s + at, m, k);
}

/* Length of the longest suffix of s[from..n) that is a proper prefix of one
 * of the markers: text that must wait for the next bytes. */
static size_t partial_tail(const char *s, size_t n, size_t from, const char *const *markers)
{
    size_t best = 0;
    for (int k = 0; markers[k]; k++) {
        size_t ml = strlen(markers[k]);
        for (size_t l = ml - 1; l > best; l--)
            if (l <= n - from && !memcmp(s + n - l, markers[k], l)) {
                best = l;
                break;
            }
    }
    return best;
}

static bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

static void trim(const char **s, size_t *n)
{
    while (*n && is_ws(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_ws((*s)[*n - 1]))
        (*n)--;
}

/* ------------------------------------------------------- call blocks */

enum blk { BLK_OK, BLK_INCOMPLETE, BLK_BAD };

/* A block [m, *end) of one format starting at its open marker. */
typedef enum blk (*block_fn)(const char *s, size_t n, size_t m, size_t *end, struct calls *c, bool final);

static json_t *load_json(const char *s, size_t n)
{
    return json_loadb(s, n, JSON_DECODE_ANY, NULL);
}

static enum blk hermes_block(const char *s, size_t n, size_t m, size_t *end, struct calls *c, bool final)
{
    (void)final;
    size_t b = m + strlen("<tool_call>");
    const char *e = find(s, n, b, "</tool_call>");
    if (!e)
        return BLK_INCOMPLETE;
    *end = (size_t)(e - s) + strlen("</tool_call>");
    const char *in = s + b;
    size_t len = (size_t)(e - in);
    trim(&in, &len);
    json_t *j = load_json(in, len);
    json_t *name = json_object_get(j, "name"), *args = json_object_get(j, "arguments");
    bool ok = json_is_string(name) && args &&
              calls_add(c, json_string_value(name), json_string_length(name), args);
    json_decref(j);
    return ok ? BLK_OK : BLK_BAD;
}

/* A parameter value as Qwen's XML format writes it: a JSON value when it
 * parses as an object, array, number, true/false/null; text otherwise. */
static json_t *xml_value(const char *v, size_t n)
{
    if (n && v[0] == '\n') {
        v++;
        n--;
    }
    if (n && v[n - 1] == '\n')
        n--;
    json_t *j = load_json(v, n);
    if (j && !json_is_string(j))
        return j;
    json_decref(j);
    return json_stringn(v, n);
}

static enum blk xml_block(const char *s, size_t n, size_t m, size_t *end, struct calls *c, bool final)
{
    (void)final;
    size_t b = m + strlen("<tool_call>");
    const char *e = find(s, n, b, "</tool_call>");
    if (!e)
        return BLK_INCOMPLETE;
    size_t stop = (size_t)(e - s);
    *end = stop + strlen("</tool_call>");
    size_t i = b;
    while (i < stop && is_ws(s[i]))
        i++;
    if (!starts(s, stop, i, "<function="))
        return BLK_BAD;
    i += strlen("<function=");
    const char *gt = memchr(s + i, '>', stop - i);
    if (!gt)
        return BLK_BAD;
    const char *name = s + i;
    size_t nlen = (size_t)(gt - name);
    i = (size_t)(gt - s) + 1;
    json_t *args = json_object();
    bool ok = false;
    for (;;) {
        while (i < stop && is_ws(s[i]))
            i++;
        if (starts(s, stop, i, "</function>")) {
            i += strlen("</function>");
            while (i < stop && is_ws(s[i]))
                i++;
            ok = i == stop;
            break;
        }
        if (!starts(s, stop, i, "<parameter="))
            break;
        i += strlen("<parameter=");
        const char *pgt = memchr(s + i, '>', stop - i);
        if (!pgt)
            break;
        char *pname = strndup(s + i, (size_t)(pgt - (s + i)));
        size_t vs = (size_t)(pgt - s) + 1;
        const char *pe = find(s, stop, vs, "</parameter>");
        if (!pe || !pname) {
            free(pname);
            break;
        }
        json_object_set_new(args, pname, xml_value(s + vs, (size_t)(pe - (s + vs))));
        free(pname);
        i = (size_t)(pe - s) + strlen("</parameter>");
    }
    ok = ok && calls_add(c, name, nlen, args);
    json_decref(args);
    return ok ? BLK_OK : BLK_BAD;
}

/* DeepSeek-V3.1 and Kimi-K2: a section of calls, each NAME SEP ARGS END */
static enum blk section_block(const char *s, size_t n, size_t m, size_t *end, struct calls *c, const char *open,
                              const char *close, const char *call_begin, const char *sep, const char *call_end,
                              bool kimi)
{
    size_t b = m + strlen(open);
    const char *e = find(s, n, b, close);
    if (!e)
        return BLK_INCOMPLETE;
    size_t stop = (size_t)(e - s);
    *end = stop + strlen(close);
    size_t i = b;
    struct calls got = { 0 };
    bool ok = true;
    for (;;) {
        while (i < stop && is_ws(s[i]))
            i++;
        if (i == stop)
            break;
        if (!starts(s, stop, i, call_begin)) {
            ok = false;
            break;
        }
        i += strlen(call_begin);
        const char *sp = find(s, stop, i, sep), *ce = sp ? find(s, stop, (size_t)(sp - s), call_end) : NULL;
        if (!sp || !ce) {
            ok = false;
            break;
        }
        const char *name = s + i;
        size_t nlen = (size_t)(sp - name);
        trim(&name, &nlen);
        if (kimi) { /* functions.NAME:IDX */
            if (nlen > 10 && !memcmp(name, "functions.", 10)) {
                name += 10;
                nlen -= 10;
            }
            const char *colon = memrchr(name, ':', nlen);
            if (colon)
                nlen = (size_t)(colon - name);
        }
        const char *as = sp + strlen(sep);
        json_t *args = load_json(as, (size_t)(ce - as));
        bool good = args && calls_add(&got, name, nlen, args);
        json_decref(args);
        if (!good) {
            ok = false;
            break;
        }
        i = (size_t)(ce - s) + strlen(call_end);
    }
    if (ok && got.n && !got.oom) {
        for (int k = 0; k < got.n; k++) {
            json_t *a = json_loads(got.v[k].arguments, 0, NULL);
            calls_add(c, got.v[k].name, strlen(got.v[k].name), a);
            json_decref(a);
        }
    }
    calls_free(&got);
    return ok && *end ? BLK_OK : BLK_BAD;
}

static enum blk deepseek_block(const char *s, size_t n, size_t m, size_t *end, struct calls *c, bool final)
{
    (void)final;
    return section_block(s, n, m, end, c, "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>",
                         "<｜tool▁sep｜>", "<｜tool▁call▁end｜>", false);
}

static enum blk kimi_block(const char *s, size_t n, size_t m, size_t *end, struct calls *c, bool final)
{
    (void)final;
    return section_block(s, n, m, end, c, "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>",
                         "<|tool_call_begin|>", "<|tool_call_argument_begin|>", "<|tool_call_end|>", true);
}

static enum blk mistral_block(const char *s, size_t n, size_t m, size_t *end, struct calls *c, bool final)
{
    size_t b = m + strlen("[TOOL_CALLS]");
    json_error_t je;
    json_t *j = json_loadb(s + b, n - b, JSON_DISABLE_EOF_CHECK, &je);
    if (!j) { /* unfinished while streaming; malformed or truncated at the end */
        if (!final)
            return BLK_INCOMPLETE;
        *end = n;
        return BLK_BAD;
    }
    *end = b + (size_t)je.position;
    struct calls got = { 0 };
    bool ok = json_is_array(j) && json_array_size(j) > 0;
    size_t k;
    json_t *it;
    json_array_foreach(j, k, it) {
        json_t *name = json_object_get(it, "name"), *args = json_object_get(it, "arguments");
        if (!json_is_string(name) || !args || !calls_add(&got, json_string_value(name), json_string_length(name), args)) {
            ok = false;
            break;
        }
    }
    json_decref(j);
    if (ok && !got.oom)
        for (int i = 0; i < got.n; i++) {
            json_t *a = json_loads(got.v[i].arguments, 0, NULL);
            calls_add(c, got.v[i].name, strlen(got.v[i].name), a);
            json_decref(a);
        }
    calls_free(&got);
    return ok ? BLK_OK : BLK_BAD;
}

/* ------------------------------------------------------------- parse */

struct result {
    struct sbuf content, reasoning;
    struct calls calls;
};

/* Content with tool calls of the format, from s[i..n). */
static void parse_content(const struct chatparse_opts *o, const char *s, size_t n, size_t i, bool final,
                          struct result *r)
{
    const char *open = NULL;
    block_fn fn = NULL;
    switch (o->format) {
    case CHATPARSE_QWEN_XML: open = "<tool_call>"; fn = xml_block; break;
    case CHATPARSE_HERMES: open = "<tool_call>"; fn = hermes_block; break;
    case CHATPARSE_DEEPSEEK: open = "<｜tool▁calls▁begin｜>"; fn = deepseek_block; break;
    case CHATPARSE_KIMI: open = "<|tool_calls_section_begin|>"; fn = kimi_block; break;
    case CHATPARSE_MISTRAL: open = "[TOOL_CALLS]"; fn = mistral_block; break;
    default: break;
    }
    while (i < n) {
        const char *m = open ? find(s, n, i, open) : NULL;
        if (!m) {
            const char *const mk[] = { open, NULL };
            size_t hold = final || !open ? 0 : partial_tail(s, n, i, mk);
            sb_put(&r->content, s + i, n - i - hold);
            return;
        }
        size_t at = (size_t)(m - s), end = 0;
        sb_put(&r->content, s + i, at - i);
        enum blk st = fn(s, n, at, &end, &r->calls, final);
        if (st == BLK_INCOMPLETE) {
            if (final) /* a truncated call is content */
                sb_put(&r->content, s + at, n - at);
            return;
        }
        if (st == BLK_BAD) /* a malformed call is content, up to its end marker */
            sb_put(&r->content, s + at, end - at);
        i = end;
    }
}

static const char *const harmony_marks[] = { "<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>",
                                             "<|call|>", "<|constrain|>", NULL };

/* gpt-oss: messages of header <|message|> body terminator */
static void parse_harmony(const char *s, size_t n, bool final, struct result *r)
{
    size_t i = 0;
    while (i < n) {
        if (starts(s, n, i, "<|start|>"))
            i += strlen("<|start|>");
        const char *msg = find(s, n, i, "<|message|>");
        if (!msg) {
            if (final) { /* no header: not harmony, plain text */
                sb_put(&r->content, s + i, n - i);
            }
            return;
        }
        const char *h = s + i;
        size_t hlen = (size_t)(msg - h);
        size_t b = (size_t)(msg - s) + strlen("<|message|>");
        /* body ends at the first terminator */
        const char *e = NULL, *term = NULL;
        static const char *const terms[] = { "<|end|>", "<|return|>", "<|call|>" };
        for (int k = 0; k < 3; k++) {
            const char *t = find(s, n, b, terms[k]);
            if (t && (!e || t < e)) {
                e = t;
                term = terms[k];
            }
        }
        size_t bend = e ? (size_t)(e - s) : n;
        if (!e && !final)
            bend = n - partial_tail(s, n, b, harmony_marks);
        const char *ch = memmem(h, hlen, "<|channel|>", strlen("<|channel|>"));
        const char *to = memmem(h, hlen, "to=", 3);
        bool analysis = ch && hlen - (size_t)(ch - h) >= 19 && !memcmp(ch + 11, "analysis", 8);
        if (to && (size_t)(h + hlen - to) > 13 && !memcmp(to + 3, "functions.", 10)) {
            const char *nm = to + 13, *ne = nm;
            while (ne < h + hlen && *ne != ' ' && *ne != '<')
                ne++;
            if (!e && !final) /* call still open */
                return;
            /* at the end, a call without <|call|> is complete when its JSON
             * is: generation stops at <|call|> and drops it */
            json_t *args = load_json(s + b, bend - b);
            bool ok = args && calls_add(&r->calls, nm, (size_t)(ne - nm), args);
            json_decref(args);
            if (!ok)
                sb_put(&r->content, s + b, bend - b);
        } else {
            sb_put(analysis ? &r->reasoning : &r->content, s + b, bend - b);
        }
        if (!e)
            return;
        i = (size_t)(e - s) + strlen(term);
    }
}

static void parse(const struct chatparse_opts *o, const char *s, size_t n, bool final, struct result *r)
{
    if (o->format == CHATPARSE_HARMONY) {
        parse_harmony(s, n, final, r);
        return;
    }
    size_t i = 0;
    if (o->think) {
        size_t rs = 0;
        bool in = o->think_open;
        if (!in) {
            size_t k = 0;
            while (k < n && is_ws(s[k]))
                k++;
            if (starts(s, n, k, "<think>")) {
                in = true;
                rs = k + strlen("<think>");
            } else if (!final && n - k < strlen("<think>") && !memcmp(s + k, "<think>", n - k)) {
                return; /* may still become <think> */
            }
        }
        if (in) {
            const char *e = find(s, n, rs, "</think>");
            if (!e) {
                static const char *const mk[] = { "</think>", NULL };
                size_t hold = final ? 0 : partial_tail(s, n, rs, mk);
                sb_put(&r->reasoning, s + rs, n - rs - hold);
                return;
            }
            sb_put(&r->reasoning, s + rs, (size_t)(e - s) - rs);
            i = (size_t)(e - s) + strlen("</think>");
        }
    }
    parse_content(o, s, n, i, final, r);
}

/* Trimmed copies into msg: trimming is prefix-monotonic, so partial and
 * final results stay consistent. */
static int to_msg(struct result *r, struct chatparse_msg *m)
{
    memset(m, 0, sizeof(*m));
    const char *c = r->content.p ? r->content.p : "", *rs = r->reasoning.p ? r->reasoning.p : "";
    size_t cn = r->content.n, rn = r->reasoning.n;
    trim(&c, &cn);
    trim(&rs, &rn);
    m->content = strndup(c, cn);
    m->reasoning = strndup(rs, rn);
    m->calls = r->calls.v;
    m->n_calls = r->calls.n;
    bool oom = r->content.oom || r->reasoning.oom || r->calls.oom || !m->content || !m->reasoning;
    free(r->content.p);
    free(r->reasoning.p);
    memset(&r->calls, 0, sizeof(r->calls));
    if (oom) {
        chatparse_msg_free(m);
        return -ENOMEM;
    }
    return 0;
}

int chatparse_parse(const struct chatparse_opts *o, const char *text, size_t n, struct chatparse_msg *out)
{
    struct result r = { 0 };
    parse(o, text, n, true, &r);
    return to_msg(&r, out);
}

void chatparse_msg_free(struct chatparse_msg *m)
{
    free(m->content);
    free(m->reasoning);
    struct calls c = { .v = m->calls, .n = m->n_calls };
    calls_free(&c);
    memset(m, 0, sizeof(*m));
}

void chatparse_opts_detect(struct chatparse_opts *o, const char *t, const char *prompt)
{
    memset(o, 0, sizeof(*o));
    t = t ? t : "";
    if (strstr(t, "<|channel|>"))
        o->format = CHATPARSE_HARMONY;
    else if (strstr(t, "<｜tool▁calls▁begin｜>"))
        o->format = CHATPARSE_DEEPSEEK;
    else if (strstr(t, "<|tool_calls_section_begin|>"))
        o->format = CHATPARSE_KIMI;
    else if (strstr(t, "[TOOL_CALLS]"))
        o->format = CHATPARSE_MISTRAL;
    else if (strstr(t, "<function="))
        o->format = CHATPARSE_QWEN_XML;
    else if (strstr(t, "<tool_call>"))
        o->format = CHATPARSE_HERMES;
    o->think = o->format != CHATPARSE_HARMONY && strstr(t, "<think>") != NULL;
    if (o->think && prompt) {
        size_t n = strlen(prompt);
        while (n && is_ws(prompt[n - 1]))
            n--;
        o->think_open = n >= 7 && !memcmp(prompt + n - 7, "<think>", 7);
    }
}

const char *chatparse_format_name(enum chatparse_format f)
{
    static const char *const names[] = { "none", "qwen-xml", "hermes", "harmony", "deepseek", "kimi", "mistral" };
    return (unsigned)f < sizeof(names) / sizeof(names[0]) ? names[f] : "?";
}

/* ------------------------------------------------------------ streaming */

struct chatparse {
    struct chatparse_opts o;
    struct sbuf text;
    struct chatparse_msg msg;
    size_t sent_content, sent_reasoning;
    int sent_calls;
};

int chatparse_init(struct chatparse **out, const struct chatparse_opts *o)
{
    *out = calloc(1, sizeof(**out));
    if (!*out)
        return -ENOMEM;
    (*out)->o = *o;
    return 0;
}

static int step(struct chatparse *p, bool final, struct chatparse_delta *d)
{
    struct result r = { 0 };
    parse(&p->o, p->text.p ? p->text.p : "", p->text.n, final, &r);
    struct chatparse_msg m;
    int rc = to_msg(&r, &m);
    if (rc)
        return rc;
    chatparse_msg_free(&p->msg);
    p->msg = m;
    memset(d, 0, sizeof(*d));
    /* partial results are prefixes of later ones; guard anyway */
    size_t cn = strlen(m.content), rn = strlen(m.reasoning);
    if (cn > p->sent_content) {
        d->content = m.content + p->sent_content;
        d->content_len = cn - p->sent_content;
        p->sent_content = cn;
    }
    if (rn > p->sent_reasoning) {
        d->reasoning = m.reasoning + p->sent_reasoning;
        d->reasoning_len = rn - p->sent_reasoning;
        p->sent_reasoning = rn;
    }
    if (m.n_calls > p->sent_calls) {
        d->first_call = p->sent_calls;
        d->n_calls = m.n_calls - p->sent_calls;
        p->sent_calls = m.n_calls;
    }
    return 0;
}

int chatparse_feed(struct chatparse *p, const char *s, size_t n, struct chatparse_delta *d)
{
    sb_put(&p->text, s, n);
    if (p->text.oom)
        return -ENOMEM;
    return step(p, false, d);
}

int chatparse_finish(struct chatparse *p, struct chatparse_delta *d) { return step(p, true, d); }

const struct chatparse_msg *chatparse_result(const struct chatparse *p) { return &p->msg; }

void chatparse_free(struct chatparse *p)
{
    if (!p)
        return;
    chatparse_msg_free(&p->msg);
    free(p->text.p);
    free(p);
}
