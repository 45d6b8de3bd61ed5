/*
 * jinja_filters.c - filters (`x | name`) and tests (`x is name`) of the Jinja
 * engine. Semantics follow jinja2 3.1 and Python 3; tojson is HF
 * transformers' json.dumps(ensure_ascii=False). The str operations behind
 * trim/upper/replace/split live in jinja_methods.c.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"

/* ------------------------------------------------------------ tojson */

static jv tojson(struct jx *x, jv v, const struct jargs *a, int line)
{
    struct jtojson o = { .indent = -1, .item_sep = ", ", .key_sep = ": " };
    jv ind = jx_arg(a, 0, "indent", jv_none());
    if (jx_present(&ind)) {
        o.indent = (int)jx_want_int(x, ind, "tojson indent", line);
        if (o.indent < 0)
            o.indent = 0;
        if (o.indent > 64)
            jx_fail(x, -EINVAL, line, "tojson indent %d is too large", o.indent);
        o.item_sep = ",";
    }
    jv seps = jx_arg(a, 1, "separators", jv_none());
    if (jx_present(&seps)) {
        if (seps.t != JV_LIST || seps.n != 2 || seps.l[0].t != JV_STR || seps.l[1].t != JV_STR)
            jx_fail(x, -EINVAL, line, "tojson separators must be a pair of strings");
        o.item_sep = jv_str(x, seps.l[0].s, seps.l[0].n).s;
        o.key_sep = jv_str(x, seps.l[1].s, seps.l[1].n).s;
    }
    jv sk = jx_arg(a, 2, "sort_keys", jv_bool(false));
    o.sort_keys = jv_truthy(&sk);
    jv ea = jx_arg(a, -1, "ensure_ascii", jv_bool(false));
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
    jx_want_str(x, attr, "attribute", line);
    size_t st = 0;
    for (size_t i = 0; i <= attr.n; i++)
        if (i == attr.n || attr.s[i] == '.') {
            v = jx_getitem(x, v, jx_substr(attr, st, i), line);
            st = i + 1;
        }
    return v;
}

jv jx_as_list(struct jx *x, jv v, int line)
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
            ju_dec(v.s, v.n, &j);
            r.l[k++] = jx_substr(v, i, j);
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
static jv select_items(struct jx *x, jv v, const struct jargs *a, bool by_attr, bool keep, int line)
{
    jv items = jx_as_list(x, v, line);
    jv r = jv_list(x, items.n);
    size_t k = 0;
    int first = by_attr ? 1 : 0;
    jv attr = by_attr ? jx_arg(a, 0, NULL, jv_none()) : jv_none();
    jv test = jx_arg(a, first, NULL, jv_none());
    for (size_t i = 0; i < items.n; i++) {
        jx_step(x, line);
        jv it = by_attr ? attr_path(x, items.l[i], attr, line) : items.l[i];
        bool ok;
        if (test.t == JV_NONE) {
            ok = jv_truthy(&it);
        } else {
            jx_want_str(x, test, "select test name", line);
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
    struct jargs A = { pos, npos, kw, kwv, nkw }, *a = &A;
#define F(n) (!strcmp(name, n))
    if (F("default") || F("d")) {
        jv boolean = jx_arg(a, 1, "boolean", jv_bool(false));
        bool use = v.t == JV_UNDEF || (jv_truthy(&boolean) && !jv_truthy(&v));
        return use ? jx_arg(a, 0, "default_value", jv_strz("")) : v;
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
        return jx_as_list(x, v, line);
    if (F("first") || F("last")) {
        jv l = jx_as_list(x, v, line);
        if (!l.n)
            return jv_undef(name, strlen(name));
        return F("first") ? l.l[0] : l.l[l.n - 1];
    }
    if (F("join")) {
        jv l = jx_as_list(x, v, line);
        jv sep = jx_arg(a, 0, "d", jv_strz(""));
        jv attr = jx_arg(a, 1, "attribute", jv_none());
        struct jbuf b = { 0 };
        for (size_t i = 0; i < l.n; i++) {
            if (i)
                jv_str_to(x, &b, &sep);
            jv it = jx_present(&attr) ? attr_path(x, l.l[i], attr, line) : l.l[i];
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
        jv l = jx_as_list(x, v, line), r = jv_list(x, l.n);
        for (size_t i = 0; i < l.n; i++)
            r.l[i] = l.l[l.n - 1 - i];
        return r;
    }
    if (F("unique")) {
        jv l = jx_as_list(x, v, line), r = jv_list(x, l.n);
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
        jv l = ds ? jx_filter(x, "items", v, NULL, 0, NULL, NULL, 0, line) : jx_as_list(x, v, line);
        jv rev = jx_arg(a, ds ? 2 : 0, "reverse", jv_bool(false));
        jv attr = ds ? jv_int(0) : jx_arg(a, 2, "attribute", jv_none());
        jv r = jv_list(x, l.n), keys = jv_list(x, l.n), t1 = jv_list(x, l.n), t2 = jv_list(x, l.n);
        for (size_t i = 0; i < l.n; i++) {
            r.l[i] = l.l[i];
            keys.l[i] = jx_present(&attr) ? attr_path(x, l.l[i], attr, line) : l.l[i];
            if (keys.l[i].t == JV_STR)
                keys.l[i] = jx_str_case(x, keys.l[i], 0);
        }
        msort(x, r.l, keys.l, l.n, t1.l, t2.l, jv_truthy(&rev), line);
        return r;
    }
    if (F("map")) {
        jv l = jx_as_list(x, v, line), r = jv_list(x, l.n);
        jv attr = jx_arg(a, -1, "attribute", jv_undef("", 0));
        for (size_t i = 0; i < l.n; i++) {
            jx_step(x, line);
            if (attr.t != JV_UNDEF) {
                r.l[i] = attr_path(x, l.l[i], attr, line);
                if (r.l[i].t == JV_UNDEF)
                    r.l[i] = jx_arg(a, -1, "default", r.l[i]);
            } else {
                jv fname = jx_want_str(x, jx_arg(a, 0, NULL, jv_none()), "map", line);
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
        jv nm = jx_want_str(x, jx_arg(a, 0, "name", jv_none()), "attr", line);
        return jx_getattr(x, v, nm.s, nm.n, line);
    }
    if (F("sum")) {
        jv l = jx_as_list(x, v, line), attr = jx_arg(a, 0, "attribute", jv_none()), acc = jx_arg(a, 1, "start", jv_int(0));
        for (size_t i = 0; i < l.n; i++) {
            jv it = jx_present(&attr) ? attr_path(x, l.l[i], attr, line) : l.l[i];
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
        jv l = jx_as_list(x, v, line);
        if (!l.n)
            return jv_undef(name, 3);
        jv best = l.l[0];
        for (size_t i = 1; i < l.n; i++) { /* case_sensitive=False, as jinja2's default */
            jv p = l.l[i].t == JV_STR ? jx_str_case(x, l.l[i], 0) : l.l[i];
            jv q = best.t == JV_STR ? jx_str_case(x, best, 0) : best;
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
        jv def = jx_arg(a, 0, "default", jv_int(0));
        if (v.t == JV_INT)
            return v;
        if (v.t == JV_BOOL)
            return jv_int(v.b);
        if (v.t == JV_FLOAT)
            return isfinite(v.f) && fabs(v.f) < 9.2e18 ? jv_int((int64_t)v.f) : def;
        if (v.t == JV_STR) {
            char buf[64];
            jv t = jx_str_strip(x, v, NULL, 3);
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
        jv def = jx_arg(a, 0, "default", jv_float(0));
        if (v.t == JV_FLOAT)
            return v;
        if (v.t == JV_INT || v.t == JV_BOOL)
            return jv_float(v.t == JV_INT ? (double)v.i : v.b);
        if (v.t == JV_STR) {
            char buf[64];
            jv t = jx_str_strip(x, v, NULL, 3);
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
        int64_t prec = jx_want_int(x, jx_arg(a, 0, "precision", jv_int(0)), "round", line);
        jv method = jx_arg(a, 1, "method", jv_strz("common"));
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
            jv chars = jx_arg(a, 0, "chars", jv_none());
            return jx_str_strip(x, s, jx_present(&chars) ? &chars : NULL, 3);
        }
        if (F("upper")) return jx_str_case(x, s, 1);
        if (F("lower")) return jx_str_case(x, s, 0);
        if (F("capitalize")) return jx_str_case(x, s, 2);
        if (F("title")) return jx_str_case(x, s, 3);
        if (F("e") || F("escape") || F("forceescape")) return html_escape(x, s);
        if (F("replace")) {
            jv o0 = jx_arg(a, 0, "old", jv_undef("old", 3)), n0 = jx_arg(a, 1, "new", jv_undef("new", 3));
            jv old = jv_tostr(x, &o0), nw = jv_tostr(x, &n0);
            jv cnt = jx_arg(a, 2, "count", jv_none());
            return jx_str_replace(x, s, old, nw, jx_present(&cnt) ? jx_want_int(x, cnt, "replace count", line) : -1);
        }
        if (F("split"))
            return jx_str_split(x, s, jx_arg(a, 0, "sep", jv_none()), jx_want_int(x, jx_arg(a, 1, "maxsplit", jv_int(-1)), "split", line),
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
        jv w = jx_arg(a, 0, "width", jv_int(4));
        jv first = jx_arg(a, 1, "first", jv_bool(false)), blank = jx_arg(a, 2, "blank", jv_bool(false));
        struct jbuf pad = { 0 }, b = { 0 };
        if (w.t == JV_STR) {
            jbuf_put(x, &pad, w.s, w.n);
        } else {
            int64_t k = jx_want_int(x, w, "indent width", line);
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
        int64_t i = jx_want_int(x, v, name, line);
        if (T("odd")) return (i % 2) != 0;
        if (T("even")) return (i % 2) == 0;
        int64_t d = jx_want_int(x, a0, "divisibleby", line);
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
