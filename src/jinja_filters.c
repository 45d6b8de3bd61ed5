/*
 * jinja_filters.c - the library of the Jinja engine: filters (`x | name`),
 * tests (`x is name`), methods of strings, dicts and the loop variable
 * (`s.startswith(...)`, `d.items()`, `loop.cycle(...)`) and global functions
 * (range, namespace, dict, raise_exception, strftime_now). Semantics follow
 * jinja2 3.1 and Python 3 (str methods work on code points; whitespace is
 * Python's). tojson is HF transformers' json.dumps(ensure_ascii=False).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"

struct args {
    const jv *pos;
    int npos;
    const char **kw;
    const jv *kwv;
    int nkw;
};

/* Argument i (positional) or name (keyword), or def. */
static jv arg(const struct args *a, int i, const char *name, jv def)
{
    if (i >= 0 && i < a->npos)
        return a->pos[i];
    for (int k = 0; k < a->nkw; k++)
        if (name && !strcmp(a->kw[k], name))
            return a->kwv[k];
    return def;
}

static bool present(const jv *v) { return v->t != JV_UNDEF && v->t != JV_NONE; }

static jv want_str(struct jx *x, jv v, const char *what, int line)
{
    if (v.t == JV_UNDEF)
        jx_fail(x, -EINVAL, line, "'%.*s' is undefined", (int)(v.s ? v.n : 0), v.s ? v.s : "");
    if (v.t != JV_STR)
        jx_fail(x, -EINVAL, line, "%s expects a string, got %s", what, jv_type_name(&v));
    return v;
}

static int64_t want_int(struct jx *x, jv v, const char *what, int line)
{
    if (v.t == JV_INT)
        return v.i;
    if (v.t == JV_BOOL)
        return v.b;
    jx_fail(x, -EINVAL, line, "%s expects an integer, got %s", what, jv_type_name(&v));
}

/* ------------------------------------------------------ string helpers */

static uint32_t dec(const char *s, size_t n, size_t *i)
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
        if (dec(chars->s, chars->n, &i) == c)
            return true;
    return false;
}

/* strip from the left (1), right (2) or both (3) */
static jv strip(struct jx *x, jv s, const jv *chars, int sides)
{
    size_t a = 0, b = s.n;
    if (sides & 1)
        while (a < b) {
            size_t i = a;
            if (!in_set(dec(s.s, b, &i), chars))
                break;
            a = i;
        }
    if (sides & 2)
        while (b > a) {
            size_t j = b - 1;
            while (j > a && ((unsigned char)s.s[j] & 0xC0) == 0x80)
                j--;
            size_t i = j;
            if (!in_set(dec(s.s, b, &i), chars))
                break;
            b = j;
        }
    (void)x;
    return (jv){ .t = JV_STR, .s = s.s + a, .n = b - a };
}

static jv sub(jv s, size_t a, size_t b) { return (jv){ .t = JV_STR, .s = s.s + a, .n = b - a }; }

/* str.split(sep=None, maxsplit=-1) */
static jv split(struct jx *x, jv s, jv sep, int64_t maxsplit, int line)
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
    if (!present(&sep)) {
        size_t i = 0;
        for (;;) {
            while (i < s.n) {
                size_t j = i;
                if (!py_space(dec(s.s, s.n, &j)))
                    break;
                i = j;
            }
            if (i >= s.n)
                break;
            if (maxsplit >= 0 && (int64_t)n >= maxsplit) {
                jv rest = strip(x, sub(s, i, s.n), NULL, 2);
                PUSH(rest);
                break;
            }
            size_t st = i;
            while (i < s.n) {
                size_t j = i;
                if (py_space(dec(s.s, s.n, &j)))
                    break;
                i = j;
            }
            PUSH(sub(s, st, i));
        }
    } else {
        want_str(x, sep, "split", line);
        if (!sep.n)
            jx_fail(x, -EINVAL, line, "empty separator");
        size_t st = 0;
        for (;;) {
            const char *hit = (maxsplit < 0 || (int64_t)n < maxsplit)
                                  ? memmem(s.s + st, s.n - st, sep.s, sep.n) : NULL;
            if (!hit) {
                PUSH(sub(s, st, s.n));
                break;
            }
            size_t h = (size_t)(hit - s.s);
            PUSH(sub(s, st, h));
            st = h + sep.n;
        }
    }
#undef PUSH
    return (jv){ .t = JV_LIST, .l = parts, .n = n };
}

static jv replace(struct jx *x, jv s, jv old, jv nw, int64_t count)
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
            dec(s.s, s.n, &j);
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

static jv casemap(struct jx *x, jv s, int mode) /* 0 lower, 1 upper, 2 capitalize, 3 title */
{
    struct jbuf b = { 0 };
    bool prev_cased = false;
    for (size_t i = 0; i < s.n;) {
        size_t st = i;
        uint32_t c = dec(s.s, s.n, &i), u = cp_upper(c), l = cp_lower(c);
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

static bool affix_any(struct jx *x, jv s, jv a, bool end, int line)
{
    if (a.t == JV_LIST) {
        for (size_t i = 0; i < a.n; i++)
            if (affix(s, a.l[i], end))
                return true;
        return false;
    }
    want_str(x, a, end ? "endswith" : "startswith", line);
    return affix(s, a, end);
}

/* ------------------------------------------------------------ tojson */

static jv tojson(struct jx *x, jv v, const struct args *a, int line)
{
    struct jtojson o = { .indent = -1, .item_sep = ", ", .key_sep = ": " };
    jv ind = arg(a, 0, "indent", jv_none());
    if (present(&ind)) {
        o.indent = (int)want_int(x, ind, "tojson indent", line);
        if (o.indent < 0)
            o.indent = 0;
        if (o.indent > 64)
            jx_fail(x, -EINVAL, line, "tojson indent %d is too large", o.indent);
        o.item_sep = ",";
    }
    jv seps = arg(a, 1, "separators", jv_none());
    if (present(&seps)) {
        if (seps.t != JV_LIST || seps.n != 2 || seps.l[0].t != JV_STR || seps.l[1].t != JV_STR)
            jx_fail(x, -EINVAL, line, "tojson separators must be a pair of strings");
        o.item_sep = jv_str(x, seps.l[0].s, seps.l[0].n).s;
        o.key_sep = jv_str(x, seps.l[1].s, seps.l[1].n).s;
    }
    jv sk = arg(a, 2, "sort_keys", jv_bool(false));
    o.sort_keys = jv_truthy(&sk);
    jv ea = arg(a, -1, "ensure_ascii", jv_bool(false));
    o.ensure_ascii = jv_truthy(&ea);
    struct jbuf b = { 0 };
    jv_tojson_to(x, &b, &v, &o, 0, line);
    return jbuf_take(x, &b);
}

/* ------------------------------------------------------------ sorting */

static void msort(struct jx *x, jv *v, jv *keys, size_t n, jv *tmp, jv *tmpk, bool rev, int line)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    msort(x, v, keys, h, tmp, tmpk, rev, line);
    msort(x, v + h, keys + h, n - h, tmp, tmpk, rev, line);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        jx_step(x, line);
        int c = jv_cmp(x, &keys[j], &keys[i], line);
        bool take_right = rev ? c > 0 : c < 0;
        tmp[k] = take_right ? v[j] : v[i];
        tmpk[k++] = take_right ? keys[j++] : keys[i++];
    }
    while (i < h) {
        tmp[k] = v[i];
        tmpk[k++] = keys[i++];
    }
    while (j < n) {
        tmp[k] = v[j];
        tmpk[k++] = keys[j++];
    }
    memcpy(v, tmp, n * sizeof(jv));
    memcpy(keys, tmpk, n * sizeof(jv));
}

static jv attr_path(struct jx *x, jv v, jv attr, int line)
{
    if (attr.t == JV_INT)
        return jx_getitem(x, v, attr, line);
    want_str(x, attr, "attribute", line);
    size_t st = 0;
    for (size_t i = 0; i <= attr.n; i++)
        if (i == attr.n || attr.s[i] == '.') {
            v = jx_getitem(x, v, sub(attr, st, i), line);
            st = i + 1;
        }
    return v;
}

static jv as_list(struct jx *x, jv v, int line)
{
    if (v.t == JV_LIST)
        return v;
    if (v.t == JV_UNDEF)
        return jv_list(x, 0);
    if (v.t == JV_DICT) {
        jv r = jv_list(x, v.d->n);
        for (size_t i = 0; i < v.d->n; i++)
            r.l[i] = v.d->k[i];
        return r;
    }
    if (v.t == JV_STR) {
        jv r = jv_list(x, ju_len(v.s, v.n));
        size_t k = 0;
        for (size_t i = 0; i < v.n;) {
            size_t j = i;
            dec(v.s, v.n, &j);
            r.l[k++] = sub(v, i, j);
            i = j;
        }
        r.n = k;
        return r;
    }
    jx_fail(x, -EINVAL, line, "'%s' object is not iterable", jv_type_name(&v));
}

static jv html_escape(struct jx *x, jv s)
{
    struct jbuf b = { 0 };
    for (size_t i = 0; i < s.n; i++) {
        switch (s.s[i]) {
        case '&': jbuf_put(x, &b, "&amp;", 5); break;
        case '<': jbuf_put(x, &b, "&lt;", 4); break;
        case '>': jbuf_put(x, &b, "&gt;", 4); break;
        case '"': jbuf_put(x, &b, "&#34;", 5); break;
        case '\'': jbuf_put(x, &b, "&#39;", 5); break;
        default: jbuf_putc(x, &b, s.s[i]);
        }
    }
    return jbuf_take(x, &b);
}

/* select/reject/selectattr/rejectattr */
static jv select_items(struct jx *x, jv v, const struct args *a, bool by_attr, bool keep, int line)
{
    jv items = as_list(x, v, line);
    jv r = jv_list(x, items.n);
    size_t k = 0;
    int first = by_attr ? 1 : 0;
    jv attr = by_attr ? arg(a, 0, NULL, jv_none()) : jv_none();
    jv test = arg(a, first, NULL, jv_none());
    for (size_t i = 0; i < items.n; i++) {
        jx_step(x, line);
        jv it = by_attr ? attr_path(x, items.l[i], attr, line) : items.l[i];
        bool ok;
        if (test.t == JV_NONE) {
            ok = jv_truthy(&it);
        } else {
            want_str(x, test, "select test name", line);
            char name[64];
            snprintf(name, sizeof(name), "%.*s", (int)test.n, test.s);
            ok = jx_test(x, name, it, a->pos + first + 1, a->npos > first + 1 ? a->npos - first - 1 : 0, line);
        }
        if (ok == keep)
            r.l[k++] = items.l[i];
    }
    r.n = k;
    return r;
}

jv jx_filter(struct jx *x, const char *name, jv v, const jv *pos, int npos, const char **kw, const jv *kwv, int nkw,
             int line)
{
    struct args A = { pos, npos, kw, kwv, nkw }, *a = &A;
#define F(n) (!strcmp(name, n))
    if (F("default") || F("d")) {
        jv boolean = arg(a, 1, "boolean", jv_bool(false));
        bool use = v.t == JV_UNDEF || (jv_truthy(&boolean) && !jv_truthy(&v));
        return use ? arg(a, 0, "default_value", jv_strz("")) : v;
    }
    if (F("safe") || F("string")) /* Markup(v): a string either way (no autoescaping here) */
        return jv_tostr(x, &v);
    if (F("tojson"))
        return tojson(x, v, a, line);
    if (F("length") || F("count")) {
        switch (v.t) {
        case JV_STR: return jv_int((int64_t)ju_len(v.s, v.n));
        case JV_LIST: return jv_int((int64_t)v.n);
        case JV_DICT: case JV_NS: return jv_int((int64_t)v.d->n);
        case JV_UNDEF: return jv_int(0);
        default: jx_fail(x, -EINVAL, line, "object of type '%s' has no len()", jv_type_name(&v));
        }
    }
    if (F("items")) {
        if (v.t == JV_UNDEF)
            return jv_list(x, 0);
        if (v.t != JV_DICT)
            jx_fail(x, -EINVAL, line, "Can only get item pairs from a mapping.");
        jv r = jv_list(x, v.d->n);
        for (size_t i = 0; i < v.d->n; i++) {
            r.l[i] = jv_list(x, 2);
            r.l[i].tuple = 1;
            r.l[i].l[0] = v.d->k[i];
            r.l[i].l[1] = v.d->v[i];
        }
        return r;
    }
    if (F("list"))
        return as_list(x, v, line);
    if (F("first") || F("last")) {
        jv l = as_list(x, v, line);
        if (!l.n)
            return jv_undef(name, strlen(name));
        return F("first") ? l.l[0] : l.l[l.n - 1];
    }
    if (F("join")) {
        jv l = as_list(x, v, line);
        jv sep = arg(a, 0, "d", jv_strz(""));
        jv attr = arg(a, 1, "attribute", jv_none());
        struct jbuf b = { 0 };
        for (size_t i = 0; i < l.n; i++) {
            if (i)
                jv_str_to(x, &b, &sep);
            jv it = present(&attr) ? attr_path(x, l.l[i], attr, line) : l.l[i];
            jv_str_to(x, &b, &it);
        }
        return jbuf_take(x, &b);
    }
    if (F("reverse")) {
        if (v.t == JV_STR) {
            struct jbuf b = { 0 };
            size_t i = v.n;
            while (i > 0) {
                size_t j = i - 1;
                while (j > 0 && ((unsigned char)v.s[j] & 0xC0) == 0x80)
                    j--;
                jbuf_put(x, &b, v.s + j, i - j);
                i = j;
            }
            return jbuf_take(x, &b);
        }
        jv l = as_list(x, v, line), r = jv_list(x, l.n);
        for (size_t i = 0; i < l.n; i++)
            r.l[i] = l.l[l.n - 1 - i];
        return r;
    }
    if (F("unique")) {
        jv l = as_list(x, v, line), r = jv_list(x, l.n);
        size_t k = 0;
        for (size_t i = 0; i < l.n; i++) {
            bool seen = false;
            for (size_t j = 0; j < k && !seen; j++) {
                jx_step(x, line);
                seen = jv_eq(&r.l[j], &l.l[i]);
            }
            if (!seen)
                r.l[k++] = l.l[i];
        }
        r.n = k;
        return r;
    }
    if (F("sort") || F("dictsort")) {
        bool ds = F("dictsort");
        jv l = ds ? jx_filter(x, "items", v, NULL, 0, NULL, NULL, 0, line) : as_list(x, v, line);
        jv rev = arg(a, ds ? 2 : 0, "reverse", jv_bool(false));
        jv attr = ds ? jv_int(0) : arg(a, 2, "attribute", jv_none());
        jv r = jv_list(x, l.n), keys = jv_list(x, l.n), t1 = jv_list(x, l.n), t2 = jv_list(x, l.n);
        for (size_t i = 0; i < l.n; i++) {
            r.l[i] = l.l[i];
            keys.l[i] = present(&attr) ? attr_path(x, l.l[i], attr, line) : l.l[i];
            if (keys.l[i].t == JV_STR)
                keys.l[i] = casemap(x, keys.l[i], 0);
        }
        msort(x, r.l, keys.l, l.n, t1.l, t2.l, jv_truthy(&rev), line);
        return r;
    }
    if (F("map")) {
        jv l = as_list(x, v, line), r = jv_list(x, l.n);
        jv attr = arg(a, -1, "attribute", jv_undef("", 0));
        for (size_t i = 0; i < l.n; i++) {
            jx_step(x, line);
            if (attr.t != JV_UNDEF) {
                r.l[i] = attr_path(x, l.l[i], attr, line);
                if (r.l[i].t == JV_UNDEF)
                    r.l[i] = arg(a, -1, "default", r.l[i]);
            } else {
                jv fname = want_str(x, arg(a, 0, NULL, jv_none()), "map", line);
                char nm[64];
                snprintf(nm, sizeof(nm), "%.*s", (int)fname.n, fname.s);
                r.l[i] = jx_filter(x, nm, l.l[i], pos + 1, npos > 0 ? npos - 1 : 0, NULL, NULL, 0, line);
            }
        }
        return r;
    }
    if (F("select") || F("reject"))
        return select_items(x, v, a, false, F("select"), line);
    if (F("selectattr") || F("rejectattr"))
        return select_items(x, v, a, true, F("selectattr"), line);
    if (F("attr")) {
        jv nm = want_str(x, arg(a, 0, "name", jv_none()), "attr", line);
        return jx_getattr(x, v, nm.s, nm.n, line);
    }
    if (F("sum")) {
        jv l = as_list(x, v, line), attr = arg(a, 0, "attribute", jv_none()), acc = arg(a, 1, "start", jv_int(0));
        for (size_t i = 0; i < l.n; i++) {
            jv it = present(&attr) ? attr_path(x, l.l[i], attr, line) : l.l[i];
            if (it.t == JV_INT && acc.t == JV_INT) {
                int64_t r;
                if (__builtin_add_overflow(acc.i, it.i, &r))
                    jx_fail(x, -EINVAL, line, "integer overflow");
                acc = jv_int(r);
            } else if ((it.t == JV_INT || it.t == JV_FLOAT) && (acc.t == JV_INT || acc.t == JV_FLOAT)) {
                acc = jv_float((acc.t == JV_INT ? (double)acc.i : acc.f) + (it.t == JV_INT ? (double)it.i : it.f));
            } else {
                jx_fail(x, -EINVAL, line, "sum: cannot add %s", jv_type_name(&it));
            }
        }
        return acc;
    }
    if (F("min") || F("max")) {
        jv l = as_list(x, v, line);
        if (!l.n)
            return jv_undef(name, 3);
        jv best = l.l[0];
        for (size_t i = 1; i < l.n; i++) { /* case_sensitive=False, as jinja2's default */
            jv p = l.l[i].t == JV_STR ? casemap(x, l.l[i], 0) : l.l[i];
            jv q = best.t == JV_STR ? casemap(x, best, 0) : best;
            int c = jv_cmp(x, &p, &q, line);
            if (F("min") ? c < 0 : c > 0)
                best = l.l[i];
        }
        return best;
    }
    if (F("abs")) {
        if (v.t == JV_INT) {
            if (v.i == INT64_MIN)
                jx_fail(x, -EINVAL, line, "integer overflow");
            return jv_int(v.i < 0 ? -v.i : v.i);
        }
        if (v.t == JV_FLOAT)
            return jv_float(fabs(v.f));
        jx_fail(x, -EINVAL, line, "bad operand type for abs(): '%s'", jv_type_name(&v));
    }
    if (F("int")) {
        jv def = arg(a, 0, "default", jv_int(0));
        if (v.t == JV_INT)
            return v;
        if (v.t == JV_BOOL)
            return jv_int(v.b);
        if (v.t == JV_FLOAT)
            return isfinite(v.f) && fabs(v.f) < 9.2e18 ? jv_int((int64_t)v.f) : def;
        if (v.t == JV_STR) {
            char buf[64];
            jv t = strip(x, v, NULL, 3);
            if (t.n == 0 || t.n >= sizeof(buf))
                return def;
            memcpy(buf, t.s, t.n);
            buf[t.n] = 0;
            char *e;
            errno = 0;
            long long r = strtoll(buf, &e, 10);
            if (!*e && !errno)
                return jv_int(r);
            double d = strtod(buf, &e);
            return !*e && isfinite(d) && fabs(d) < 9.2e18 ? jv_int((int64_t)d) : def;
        }
        return def;
    }
    if (F("float")) {
        jv def = arg(a, 0, "default", jv_float(0));
        if (v.t == JV_FLOAT)
            return v;
        if (v.t == JV_INT || v.t == JV_BOOL)
            return jv_float(v.t == JV_INT ? (double)v.i : v.b);
        if (v.t == JV_STR) {
            char buf[64];
            jv t = strip(x, v, NULL, 3);
            if (t.n == 0 || t.n >= sizeof(buf))
                return def;
            memcpy(buf, t.s, t.n);
            buf[t.n] = 0;
            char *e;
            double d = strtod(buf, &e);
            return *e ? def : jv_float(d);
        }
        return def;
    }
    if (F("round")) {
        int64_t prec = want_int(x, arg(a, 0, "precision", jv_int(0)), "round", line);
        jv method = arg(a, 1, "method", jv_strz("common"));
        if ((v.t == JV_INT || v.t == JV_BOOL) && prec >= 0) /* Python: round(int, n) is the int */
            return jv_int(v.t == JV_INT ? v.i : v.b);
        double f = v.t == JV_INT ? (double)v.i : v.t == JV_FLOAT ? v.f : 0;
        if (v.t != JV_INT && v.t != JV_FLOAT)
            jx_fail(x, -EINVAL, line, "round expects a number, got %s", jv_type_name(&v));
        if (prec < -300 || prec > 300)
            jx_fail(x, -EINVAL, line, "round precision %lld is out of range", (long long)prec);
        double m = pow(10, (double)prec);
        double r = jv_is_str(&method, "floor") ? floor(f * m) / m
                 : jv_is_str(&method, "ceil")  ? ceil(f * m) / m
                                               : rint(f * m) / m; /* Python's round: half to even */
        return jv_float(r);
    }
    /* the rest take a string */
    if (F("trim") || F("upper") || F("lower") || F("capitalize") || F("title") || F("replace") || F("split") ||
        F("e") || F("escape") || F("forceescape") || F("indent") || F("wordcount")) {
        jv s = v.t == JV_STR ? v : jv_tostr(x, &v);
        if (F("trim")) {
            jv chars = arg(a, 0, "chars", jv_none());
            return strip(x, s, present(&chars) ? &chars : NULL, 3);
        }
        if (F("upper")) return casemap(x, s, 1);
        if (F("lower")) return casemap(x, s, 0);
        if (F("capitalize")) return casemap(x, s, 2);
        if (F("title")) return casemap(x, s, 3);
        if (F("e") || F("escape") || F("forceescape")) return html_escape(x, s);
        if (F("replace")) {
            jv o0 = arg(a, 0, "old", jv_undef("old", 3)), n0 = arg(a, 1, "new", jv_undef("new", 3));
            jv old = jv_tostr(x, &o0), nw = jv_tostr(x, &n0);
            jv cnt = arg(a, 2, "count", jv_none());
            return replace(x, s, old, nw, present(&cnt) ? want_int(x, cnt, "replace count", line) : -1);
        }
        if (F("split"))
            return split(x, s, arg(a, 0, "sep", jv_none()), want_int(x, arg(a, 1, "maxsplit", jv_int(-1)), "split", line),
                         line);
        if (F("wordcount")) { /* runs of \w (letters, digits, _; any non-ASCII counts as a letter) */
            int64_t words = 0;
            bool in = false;
            for (size_t i = 0; i < s.n; i++) {
                unsigned char c = (unsigned char)s.s[i];
                bool w = c >= 0x80 || c == '_' || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z');
                words += w && !in;
                in = w;
            }
            return jv_int(words);
        }
        /* indent(width=4, first=False, blank=False): lines after the first
         * (and the first when first=True) get the padding; blank lines only
         * when blank=True */
        jv w = arg(a, 0, "width", jv_int(4));
        jv first = arg(a, 1, "first", jv_bool(false)), blank = arg(a, 2, "blank", jv_bool(false));
        struct jbuf pad = { 0 }, b = { 0 };
        if (w.t == JV_STR) {
            jbuf_put(x, &pad, w.s, w.n);
        } else {
            int64_t k = want_int(x, w, "indent width", line);
            for (int64_t i = 0; i < k && i < 1024; i++)
                jbuf_putc(x, &pad, ' ');
        }
        size_t st = 0;
        bool firstline = true;
        for (size_t i = 0; i <= s.n; i++) {
            if (i < s.n && s.s[i] != '\n')
                continue;
            bool empty = i == st;
            if ((!firstline || jv_truthy(&first)) && (!empty || jv_truthy(&blank)))
                jbuf_put(x, &b, pad.p, pad.n);
            jbuf_put(x, &b, s.s + st, i - st);
            if (i < s.n)
                jbuf_putc(x, &b, '\n');
            st = i + 1;
            firstline = false;
        }
        return jbuf_take(x, &b);
    }
#undef F
    jx_fail(x, -EINVAL, line, "no filter named '%s'", name);
}

/* ------------------------------------------------------------------ tests */

bool jx_test(struct jx *x, const char *name, jv v, const jv *args, int nargs, int line)
{
    jv a0 = nargs > 0 ? args[0] : jv_undef("", 0);
#define T(n) (!strcmp(name, n))
    if (T("defined")) return v.t != JV_UNDEF;
    if (T("undefined")) return v.t == JV_UNDEF;
    if (T("none")) return v.t == JV_NONE;
    if (T("boolean")) return v.t == JV_BOOL;
    if (T("true")) return v.t == JV_BOOL && v.b;
    if (T("false")) return v.t == JV_BOOL && !v.b;
    if (T("integer")) return v.t == JV_INT;
    if (T("float")) return v.t == JV_FLOAT;
    if (T("number")) return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL;
    if (T("string")) return v.t == JV_STR;
    if (T("mapping")) return v.t == JV_DICT;
    /* jinja2's Undefined has __iter__ and __len__, so it passes these two */
    if (T("iterable")) return v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_UNDEF;
    if (T("sequence")) return v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_UNDEF;
    if (T("callable")) return v.t == JV_MACRO || v.t == JV_FUNC;
    if (T("sameas")) return v.t == a0.t && jv_eq(&v, &a0) && (v.t != JV_STR || v.s == a0.s);
    if (T("escaped")) return false;
    if (T("lower") || T("upper")) { /* str(value).islower() / isupper() */
        v = jv_tostr(x, &v);
        bool cased = false;
        for (size_t i = 0; i < v.n; i++) {
            char c = v.s[i];
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                cased = true;
            if (T("lower") ? (c >= 'A' && c <= 'Z') : (c >= 'a' && c <= 'z'))
                return false;
        }
        return cased;
    }
    if ((T("odd") || T("even")) && v.t == JV_FLOAT) {
        double m = fmod(v.f, 2);
        return T("odd") ? m != 0 : m == 0;
    }
    if (T("odd") || T("even") || T("divisibleby")) {
        int64_t i = want_int(x, v, name, line);
        if (T("odd")) return (i % 2) != 0;
        if (T("even")) return (i % 2) == 0;
        int64_t d = want_int(x, a0, "divisibleby", line);
        if (d == 0)
            jx_fail(x, -EINVAL, line, "integer division or modulo by zero");
        return d == -1 || i % d == 0;
    }
    if (T("eq") || T("equalto") || T("==")) return jv_eq(&v, &a0);
    if (T("ne") || T("!=")) return !jv_eq(&v, &a0);
    if (T("lt") || T("lessthan") || T("<")) return jv_cmp(x, &v, &a0, line) < 0;
    if (T("le") || T("<=")) return jv_cmp(x, &v, &a0, line) <= 0;
    if (T("gt") || T("greaterthan") || T(">")) return jv_cmp(x, &v, &a0, line) > 0;
    if (T("ge") || T(">=")) return jv_cmp(x, &v, &a0, line) >= 0;
    if (T("in")) {
        if (a0.t == JV_STR)
            return v.t == JV_STR && (v.n == 0 || memmem(a0.s, a0.n, v.s, v.n));
        if (a0.t == JV_LIST) {
            for (size_t i = 0; i < a0.n; i++)
                if (jv_eq(&a0.l[i], &v))
                    return true;
            return false;
        }
        if (a0.t == JV_DICT)
            return jdict_get(a0.d, v) != NULL;
        jx_fail(x, -EINVAL, line, "argument of type '%s' is not iterable", jv_type_name(&a0));
    }
#undef T
    jx_fail(x, -EINVAL, line, "no test named '%s'", name);
}

/* --------------------------------------------------------------- methods */

#define METHOD(fname) \
    static jv fname(struct jx *x, jv self, const jv *pos, int npos, const char **kw, const jv *kwv, int nkw, int line)
#define ARGS struct args A = { pos, npos, kw, kwv, nkw }, *a = &A; (void)a; (void)x; (void)line

METHOD(m_strip) { ARGS; jv c = arg(a, 0, "chars", jv_none()); return strip(x, self, present(&c) ? &c : NULL, 3); }
METHOD(m_lstrip) { ARGS; jv c = arg(a, 0, "chars", jv_none()); return strip(x, self, present(&c) ? &c : NULL, 1); }
METHOD(m_rstrip) { ARGS; jv c = arg(a, 0, "chars", jv_none()); return strip(x, self, present(&c) ? &c : NULL, 2); }
METHOD(m_split)
{
    ARGS;
    return split(x, self, arg(a, 0, "sep", jv_none()), want_int(x, arg(a, 1, "maxsplit", jv_int(-1)), "split", line),
                 line);
}
METHOD(m_startswith) { ARGS; return jv_bool(affix_any(x, self, arg(a, 0, "prefix", jv_none()), false, line)); }
METHOD(m_endswith) { ARGS; return jv_bool(affix_any(x, self, arg(a, 0, "suffix", jv_none()), true, line)); }
METHOD(m_upper) { ARGS; return casemap(x, self, 1); }
METHOD(m_lower) { ARGS; return casemap(x, self, 0); }
METHOD(m_title) { ARGS; return casemap(x, self, 3); }
METHOD(m_capitalize) { ARGS; return casemap(x, self, 2); }
METHOD(m_replace)
{
    ARGS;
    jv old = want_str(x, arg(a, 0, "old", jv_none()), "replace", line);
    jv nw = want_str(x, arg(a, 1, "new", jv_none()), "replace", line);
    return replace(x, self, old, nw, want_int(x, arg(a, 2, "count", jv_int(-1)), "replace", line));
}
METHOD(m_find)
{
    ARGS;
    jv s = want_str(x, arg(a, 0, "sub", jv_none()), "find", line);
    const char *h = memmem(self.s, self.n, s.s, s.n);
    return jv_int(h ? (int64_t)ju_len(self.s, (size_t)(h - self.s)) : -1);
}
METHOD(m_count)
{
    ARGS;
    jv s = want_str(x, arg(a, 0, "sub", jv_none()), "count", line);
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
    jv l = as_list(x, arg(a, 0, "iterable", jv_none()), line);
    struct jbuf b = { 0 };
    for (size_t i = 0; i < l.n; i++) {
        if (i)
            jbuf_put(x, &b, self.s, self.n);
        jbuf_put(x, &b, want_str(x, l.l[i], "join", line).s, l.l[i].n);
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
METHOD(m_keys) { ARGS; return as_list(x, self, line); }
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
    jv *v = jdict_get(self.d, arg(a, 0, "key", jv_none()));
    return v ? *v : arg(a, 1, "default", jv_none());
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
        stop = want_int(x, pos[0], "range", line);
    } else if (npos == 2 || npos == 3) {
        start = want_int(x, pos[0], "range", line);
        stop = want_int(x, pos[1], "range", line);
        if (npos == 3)
            step = want_int(x, pos[2], "range", line);
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
    jv f = want_str(x, arg(a, 0, "format", jv_none()), "strftime_now", line);
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
