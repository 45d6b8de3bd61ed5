/*
 * jinja_methods.c - Python's str operations on UTF-8 (code points, Python's
 * whitespace, a small case table), the methods of strings, dicts and the loop
 * variable (`s.startswith(...)`, `d.items()`, `loop.cycle(...)`) and the
 * global functions (range, namespace, dict, raise_exception, strftime_now).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"

/* ------------------------------------------------------ string helpers */

uint32_t ju_dec(const char *s, size_t n, size_t *i)
{
    unsigned char c = (unsigned char)s[*i];
    int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    uint32_t cp = extra ? c & (0x3F >> extra) : c;
    (*i)++;
    for (int k = 0; k < extra && *i < n && ((unsigned char)s[*i] & 0xC0) == 0x80; k++)
        cp = (cp << 6) | ((unsigned char)s[(*i)++] & 0x3F);
    return cp;
}

static bool py_space(uint32_t c)
{
    return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static bool in_set(uint32_t c, const jv *chars)
{
    if (!chars)
        return py_space(c);
    for (size_t i = 0; i < chars->n;)
        if (ju_dec(chars->s, chars->n, &i) == c)
            return true;
    return false;
}

/* strip from the left (1), right (2) or both (3) */
jv jx_str_strip(struct jx *x, jv s, const jv *chars, int sides)
{
    size_t a = 0, b = s.n;
    if (sides & 1)
        while (a < b) {
            size_t i = a;
            if (!in_set(ju_dec(s.s, b, &i), chars))
                break;
            a = i;
        }
    if (sides & 2)
        while (b > a) {
            size_t j = b - 1;
            while (j > a && ((unsigned char)s.s[j] & 0xC0) == 0x80)
                j--;
            size_t i = j;
            if (!in_set(ju_dec(s.s, b, &i), chars))
                break;
            b = j;
        }
    (void)x;
    return (jv){ .t = JV_STR, .s = s.s + a, .n = b - a };
}

/* str.jx_str_split(sep=None, maxsplit=-1) */
jv jx_str_split(struct jx *x, jv s, jv sep, int64_t maxsplit, int line)
{
    size_t cap = 8, n = 0;
    jv *parts = jx_alloc(x, cap * sizeof(jv));
#define PUSH(v)                                                                   \
    do {                                                                          \
        if (n == cap) {                                                           \
            jv *np = jx_alloc(x, cap * 2 * sizeof(jv));                           \
            memcpy(np, parts, n * sizeof(jv));                                    \
            parts = np;                                                           \
            cap *= 2;                                                             \
        }                                                                         \
        parts[n++] = (v);                                                         \
    } while (0)
    if (!jx_present(&sep)) {
        size_t i = 0;
        for (;;) {
            while (i < s.n) {
                size_t j = i;
                if (!py_space(ju_dec(s.s, s.n, &j)))
                    break;
                i = j;
            }
            if (i >= s.n)
                break;
            if (maxsplit >= 0 && (int64_t)n >= maxsplit) {
                jv rest = jx_str_strip(x, jx_substr(s, i, s.n), NULL, 2);
                PUSH(rest);
                break;
            }
            size_t st = i;
            while (i < s.n) {
                size_t j = i;
                if (py_space(ju_dec(s.s, s.n, &j)))
                    break;
                i = j;
            }
            PUSH(jx_substr(s, st, i));
        }
    } else {
        jx_want_str(x, sep, "split", line);
        if (!sep.n)
            jx_fail(x, -EINVAL, line, "empty separator");
        size_t st = 0;
        for (;;) {
            const char *hit = (maxsplit < 0 || (int64_t)n < maxsplit)
                                  ? memmem(s.s + st, s.n - st, sep.s, sep.n) : NULL;
            if (!hit) {
                PUSH(jx_substr(s, st, s.n));
                break;
            }
            size_t h = (size_t)(hit - s.s);
            PUSH(jx_substr(s, st, h));
            st = h + sep.n;
        }
    }
#undef PUSH
    return (jv){ .t = JV_LIST, .l = parts, .n = n };
}

jv jx_str_replace(struct jx *x, jv s, jv old, jv nw, int64_t count)
{
    struct jbuf b = { 0 };
    size_t i = 0;
    int64_t done = 0;
    if (!old.n) { /* Python inserts nw around every code point */
        while (count < 0 || done < count) {
            jbuf_put(x, &b, nw.s, nw.n);
            done++;
            if (i >= s.n)
                break;
            size_t j = i;
            ju_dec(s.s, s.n, &j);
            jbuf_put(x, &b, s.s + i, j - i);
            i = j;
        }
        jbuf_put(x, &b, s.s + i, s.n - i);
        return jbuf_take(x, &b);
    }
    while (i <= s.n && (count < 0 || done < count)) {
        const char *hit = memmem(s.s + i, s.n - i, old.s, old.n);
        if (!hit)
            break;
        size_t h = (size_t)(hit - s.s);
        jbuf_put(x, &b, s.s + i, h - i);
        jbuf_put(x, &b, nw.s, nw.n);
        i = h + old.n;
        done++;
    }
    jbuf_put(x, &b, s.s + i, s.n - i);
    return jbuf_take(x, &b);
}

/* Case mapping for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic
 * (the scripts chat text mostly needs); other code points are caseless
 * here. Every pair has the same UTF-8 length. */
static uint32_t cp_upper(uint32_t c)
{
    if (c >= 'a' && c <= 'z') return c - 32;
    if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 32;
    if (c == 0xFF) return 0x178;
    if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) return c & ~1u;
    if (((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) && !(c & 1)) return c - 1;
    if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
    if (c >= 0x430 && c <= 0x44F) return c - 32;
    if (c >= 0x450 && c <= 0x45F) return c - 80;
    return c;
}

static uint32_t cp_lower(uint32_t c)
{
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
    if (c == 0x178) return 0xFF;
    if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) return c | 1u;
    if (((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) && (c & 1)) return c + 1;
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    return c;
}

static void put_cp(struct jx *x, struct jbuf *b, uint32_t cp)
{
    char o[4];
    int k = 0;
    if (cp < 0x80) {
        o[k++] = (char)cp;
    } else if (cp < 0x800) {
        o[k++] = (char)(0xC0 | (cp >> 6));
        o[k++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        o[k++] = (char)(0xE0 | (cp >> 12));
        o[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[k++] = (char)(0x80 | (cp & 0x3F));
    } else {
        o[k++] = (char)(0xF0 | (cp >> 18));
        o[k++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[k++] = (char)(0x80 | (cp & 0x3F));
    }
    jbuf_put(x, b, o, (size_t)k);
}

jv jx_str_case(struct jx *x, jv s, int mode) /* 0 lower, 1 upper, 2 capitalize, 3 title */
{
    struct jbuf b = { 0 };
    bool prev_cased = false;
    for (size_t i = 0; i < s.n;) {
        size_t st = i;
        uint32_t c = ju_dec(s.s, s.n, &i), u = cp_upper(c), l = cp_lower(c);
        bool cased = u != c || l != c;
        bool up = mode == 1 || (mode == 2 && st == 0) || (mode == 3 && !prev_cased);
        uint32_t r = up ? u : l;
        if (r == c) /* unchanged: keep the original bytes (also invalid UTF-8) */
            jbuf_put(x, &b, s.s + st, i - st);
        else
            put_cp(x, &b, r);
        prev_cased = cased;
    }
    return jbuf_take(x, &b);
}

static bool affix(jv s, jv a, bool end)
{
    if (a.t != JV_STR || a.n > s.n)
        return false;
    return !memcmp(end ? s.s + s.n - a.n : s.s, a.s, a.n);
}

static bool jx_str_affix_any(struct jx *x, jv s, jv a, bool end, int line)
{
    if (a.t == JV_LIST) {
        for (size_t i = 0; i < a.n; i++)
            if (affix(s, a.l[i], end))
                return true;
        return false;
    }
    jx_want_str(x, a, end ? "endswith" : "startswith", line);
    return affix(s, a, end);
}

/* --------------------------------------------------------------- methods */

#define METHOD(fname) \
    static jv fname(struct jx *x, jv self, const jv *pos, int npos, const char **kw, const jv *kwv, int nkw, int line)
#define ARGS struct jargs A = { pos, npos, kw, kwv, nkw }, *a = &A; (void)a; (void)x; (void)line

METHOD(m_strip) { ARGS; jv c = jx_arg(a, 0, "chars", jv_none()); return jx_str_strip(x, self, jx_present(&c) ? &c : NULL, 3); }
METHOD(m_lstrip) { ARGS; jv c = jx_arg(a, 0, "chars", jv_none()); return jx_str_strip(x, self, jx_present(&c) ? &c : NULL, 1); }
METHOD(m_rstrip) { ARGS; jv c = jx_arg(a, 0, "chars", jv_none()); return jx_str_strip(x, self, jx_present(&c) ? &c : NULL, 2); }
METHOD(m_split)
{
    ARGS;
    return jx_str_split(x, self, jx_arg(a, 0, "sep", jv_none()), jx_want_int(x, jx_arg(a, 1, "maxsplit", jv_int(-1)), "split", line),
                 line);
}
METHOD(m_startswith) { ARGS; return jv_bool(jx_str_affix_any(x, self, jx_arg(a, 0, "prefix", jv_none()), false, line)); }
METHOD(m_endswith) { ARGS; return jv_bool(jx_str_affix_any(x, self, jx_arg(a, 0, "suffix", jv_none()), true, line)); }
METHOD(m_upper) { ARGS; return jx_str_case(x, self, 1); }
METHOD(m_lower) { ARGS; return jx_str_case(x, self, 0); }
METHOD(m_title) { ARGS; return jx_str_case(x, self, 3); }
METHOD(m_capitalize) { ARGS; return jx_str_case(x, self, 2); }
METHOD(m_replace)
{
    ARGS;
    jv old = jx_want_str(x, jx_arg(a, 0, "old", jv_none()), "replace", line);
    jv nw = jx_want_str(x, jx_arg(a, 1, "new", jv_none()), "replace", line);
    return jx_str_replace(x, self, old, nw, jx_want_int(x, jx_arg(a, 2, "count", jv_int(-1)), "replace", line));
}
METHOD(m_find)
{
    ARGS;
    jv s = jx_want_str(x, jx_arg(a, 0, "sub", jv_none()), "find", line);
    const char *h = memmem(self.s, self.n, s.s, s.n);
    return jv_int(h ? (int64_t)ju_len(self.s, (size_t)(h - self.s)) : -1);
}
METHOD(m_count)
{
    ARGS;
    jv s = jx_want_str(x, jx_arg(a, 0, "sub", jv_none()), "count", line);
    if (!s.n)
        return jv_int((int64_t)ju_len(self.s, self.n) + 1);
    int64_t c = 0;
    for (const char *p = self.s, *e = self.s + self.n; (p = memmem(p, (size_t)(e - p), s.s, s.n)); p += s.n)
        c++;
    return jv_int(c);
}
METHOD(m_join)
{
    ARGS;
    jv l = jx_as_list(x, jx_arg(a, 0, "iterable", jv_none()), line);
    struct jbuf b = { 0 };
    for (size_t i = 0; i < l.n; i++) {
        if (i)
            jbuf_put(x, &b, self.s, self.n);
        jbuf_put(x, &b, jx_want_str(x, l.l[i], "join", line).s, l.l[i].n);
    }
    return jbuf_take(x, &b);
}
METHOD(m_isdigit)
{
    ARGS;
    for (size_t i = 0; i < self.n; i++)
        if (self.s[i] < '0' || self.s[i] > '9')
            return jv_bool(false);
    return jv_bool(self.n > 0);
}
METHOD(m_items) { ARGS; return jx_filter(x, "items", self, NULL, 0, NULL, NULL, 0, line); }
METHOD(m_keys) { ARGS; return jx_as_list(x, self, line); }
METHOD(m_values)
{
    ARGS;
    jv r = jv_list(x, self.d->n);
    for (size_t i = 0; i < self.d->n; i++)
        r.l[i] = self.d->v[i];
    return r;
}
METHOD(m_get)
{
    ARGS;
    jv *v = jdict_get(self.d, jx_arg(a, 0, "key", jv_none()));
    return v ? *v : jx_arg(a, 1, "default", jv_none());
}
METHOD(m_cycle)
{
    ARGS;
    if (npos == 0)
        jx_fail(x, -EINVAL, line, "no items for cycling given");
    return pos[self.lp->i % (size_t)npos];
}

static const struct jfunc str_methods[] = {
    { "strip", m_strip },   { "lstrip", m_lstrip },       { "rstrip", m_rstrip },         { "split", m_split },
    { "upper", m_upper },   { "lower", m_lower },         { "title", m_title },           { "capitalize", m_capitalize },
    { "replace", m_replace }, { "find", m_find },         { "count", m_count },           { "join", m_join },
    { "isdigit", m_isdigit }, { "startswith", m_startswith }, { "endswith", m_endswith },  { NULL, NULL },
};
static const struct jfunc dict_methods[] = {
    { "items", m_items }, { "keys", m_keys }, { "values", m_values }, { "get", m_get }, { NULL, NULL },
};
static const struct jfunc loop_methods[] = { { "cycle", m_cycle }, { NULL, NULL } };

static const struct jfunc *find_fn(const struct jfunc *t, const char *name, size_t n)
{
    for (; t->name; t++)
        if (strlen(t->name) == n && !memcmp(t->name, name, n))
            return t;
    return NULL;
}

const struct jfunc *jx_method(const jv *v, const char *name, size_t n)
{
    switch (v->t) {
    case JV_STR: return find_fn(str_methods, name, n);
    case JV_DICT: return find_fn(dict_methods, name, n);
    case JV_LOOP: return find_fn(loop_methods, name, n);
    default: return NULL;
    }
}

/* ---------------------------------------------------------------- globals */

METHOD(g_range)
{
    ARGS;
    (void)self;
    int64_t start = 0, stop, step = 1;
    if (npos == 1) {
        stop = jx_want_int(x, pos[0], "range", line);
    } else if (npos == 2 || npos == 3) {
        start = jx_want_int(x, pos[0], "range", line);
        stop = jx_want_int(x, pos[1], "range", line);
        if (npos == 3)
            step = jx_want_int(x, pos[2], "range", line);
    } else {
        jx_fail(x, -EINVAL, line, "range expected 1 to 3 arguments, got %d", npos);
    }
    if (step == 0)
        jx_fail(x, -EINVAL, line, "range() arg 3 must not be zero");
    uint64_t n = 0;
    if (step > 0 && stop > start)
        n = ((uint64_t)stop - (uint64_t)start + (uint64_t)step - 1) / (uint64_t)step;
    else if (step < 0 && start > stop)
        n = ((uint64_t)start - (uint64_t)stop + (uint64_t)(-(step + 1)) + 1) / ((uint64_t)(-(step + 1)) + 1);
    if (n > x->t->o.max_memory / sizeof(jv))
        jx_fail(x, -E2BIG, line, "range of %llu items is larger than the memory limit", (unsigned long long)n);
    jv r = jv_list(x, (size_t)n);
    for (uint64_t i = 0; i < n; i++)
        r.l[i] = jv_int((int64_t)((uint64_t)start + i * (uint64_t)step));
    return r;
}

METHOD(g_namespace)
{
    ARGS;
    (void)self;
    jv d = jv_dict(x);
    for (int i = 0; i < npos; i++) {
        if (pos[i].t != JV_DICT)
            jx_fail(x, -EINVAL, line, "namespace() takes keyword arguments or a dict");
        for (size_t k = 0; k < pos[i].d->n; k++)
            jdict_set(x, d.d, pos[i].d->k[k], pos[i].d->v[k]);
    }
    for (int i = 0; i < nkw; i++)
        jdict_set(x, d.d, jv_strz(kw[i]), kwv[i]);
    d.t = JV_NS;
    return d;
}

METHOD(g_dict)
{
    jv d = g_namespace(x, self, pos, npos, kw, kwv, nkw, line);
    d.t = JV_DICT;
    return d;
}

METHOD(g_raise)
{
    ARGS;
    (void)self;
    jv m = npos ? jv_tostr(x, &pos[0]) : jv_strz("");
    /* the template's own message, as written: no line prefix */
    jx_fail(x, -EINVAL, 0, "%.*s", (int)m.n, m.s);
}

METHOD(g_strftime_now)
{
    ARGS;
    (void)self;
    jv f = jx_want_str(x, jx_arg(a, 0, "format", jv_none()), "strftime_now", line);
    char fmt[256], out[512];
    if (f.n >= sizeof(fmt))
        jx_fail(x, -EINVAL, line, "strftime_now format longer than %zu bytes", sizeof(fmt) - 1);
    memcpy(fmt, f.s, f.n);
    fmt[f.n] = 0;
    struct tm tm;
    if (x->t->o.now)
        gmtime_r(&x->now, &tm);
    else
        localtime_r(&x->now, &tm);
    size_t k = f.n ? strftime(out, sizeof(out), fmt, &tm) : 0;
    return jv_str(x, out, k);
}

static const struct jfunc globals[] = {
    { "range", g_range },           { "namespace", g_namespace },       { "dict", g_dict },
    { "raise_exception", g_raise }, { "strftime_now", g_strftime_now }, { NULL, NULL },
};

const struct jfunc *jx_global(const char *name, size_t n) { return find_fn(globals, name, n); }
