/*
 * jinja_value.c - values of the Jinja engine: the capped arena they live in,
 * constructors, dicts (ordered, as Python's), truthiness, equality and
 * ordering with Python's rules, str()/repr() as Python prints them, JSON in
 * (jansson) and out (json.dumps with ensure_ascii=False, indent, separators
 * and sort_keys, byte for byte, floats as Python's repr).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"

/* ------------------------------------------------------------------ arena */

struct jarena_chunk {
    struct jarena_chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

void *jarena_alloc(struct jarena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (a->cap && (n > a->cap || a->used_total > a->cap - n))
        return NULL;
    struct jarena_chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t sz = n > 65536 ? n : 65536;
        c = malloc(sizeof(*c) + sz);
        if (!c)
            return NULL;
        c->size = sz;
        c->used = 0;
        /* a big one-off allocation goes behind the current chunk so the
         * current chunk's free space is not abandoned */
        if (a->head && n > 65536) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *r = c->data + c->used;
    c->used += n;
    a->used_total += n;
    return r;
}

void jarena_free(struct jarena *a)
{
    struct jarena_chunk *c = a->head;
    while (c) {
        struct jarena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
    a->used_total = 0;
}

/* ----------------------------------------------------------------- errors */

void jx_fail(struct jx *x, int rc, int line, const char *fmt, ...)
{
    if (x->err && x->errlen) {
        int k = 0;
        if (line > 0) {
            k = snprintf(x->err, x->errlen, "line %d: ", line);
            if (k < 0 || (size_t)k >= x->errlen)
                k = 0;
        }
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->err + k, x->errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    x->rc = rc;
    longjmp(x->jb, 1);
}

void *jx_alloc(struct jx *x, size_t n)
{
    void *r = jarena_alloc(&x->a, n ? n : 1);
    if (!r)
        jx_fail(x, -E2BIG, 0, "template used more than %zu bytes of memory", x->t->o.max_memory);
    return r;
}

/* ------------------------------------------------------------ constructors */

jv jv_undef(const char *name, size_t n) { return (jv){ .t = JV_UNDEF, .s = name, .n = n }; }
jv jv_none(void) { return (jv){ .t = JV_NONE }; }
jv jv_bool(bool b) { return (jv){ .t = JV_BOOL, .b = b }; }
jv jv_int(int64_t i) { return (jv){ .t = JV_INT, .i = i }; }
jv jv_float(double f) { return (jv){ .t = JV_FLOAT, .f = f }; }
jv jv_strz(const char *s) { return (jv){ .t = JV_STR, .s = s, .n = strlen(s) }; }

jv jv_str(struct jx *x, const char *s, size_t n)
{
    char *p = jx_alloc(x, n + 1);
    if (n)
        memcpy(p, s, n);
    p[n] = 0;
    return (jv){ .t = JV_STR, .s = p, .n = n };
}

jv jv_list(struct jx *x, size_t n)
{
    if (n > SIZE_MAX / sizeof(jv) / 2)
        jx_fail(x, -E2BIG, 0, "list of %zu items is too long", n);
    jv *l = jx_alloc(x, n * sizeof(jv));
    for (size_t i = 0; i < n; i++)
        l[i] = jv_none();
    return (jv){ .t = JV_LIST, .l = l, .n = n };
}

jv jv_dict(struct jx *x)
{
    struct jdict *d = jx_alloc(x, sizeof(*d));
    memset(d, 0, sizeof(*d));
    return (jv){ .t = JV_DICT, .d = d };
}

jv *jdict_get(const struct jdict *d, jv k)
{
    for (size_t i = 0; i < d->n; i++)
        if (jv_eq(&d->k[i], &k))
            return &d->v[i];
    return NULL;
}

jv *jdict_gets(const struct jdict *d, const char *k, size_t n)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JV_STR && d->k[i].n == n && !memcmp(d->k[i].s, k, n))
            return &d->v[i];
    return NULL;
}

static void jdict_append(struct jx *x, struct jdict *d, jv k, jv v)
{
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 8;
        jv *nk = jx_alloc(x, nc * sizeof(jv)), *nv = jx_alloc(x, nc * sizeof(jv));
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof(jv));
            memcpy(nv, d->v, d->n * sizeof(jv));
        }
        d->k = nk;
        d->v = nv;
        d->cap = nc;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
}

void jdict_set(struct jx *x, struct jdict *d, jv k, jv v)
{
    jv *e = jdict_get(d, k);
    if (e)
        *e = v;
    else
        jdict_append(x, d, k, v);
}

const char *jv_type_name(const jv *v)
{
    switch (v->t) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST: return "list";
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    case JV_MACRO: return "Macro";
    case JV_FUNC: return "function";
    default: return "LoopContext";
    }
}

bool jv_truthy(const jv *v)
{
    switch (v->t) {
    case JV_UNDEF: case JV_NONE: return false;
    case JV_BOOL: return v->b;
    case JV_INT: return v->i != 0;
    case JV_FLOAT: return v->f != 0;
    case JV_STR: case JV_LIST: return v->n != 0;
    case JV_DICT: return v->d->n != 0;
    default: return true;
    }
}

static bool is_num(const jv *v) { return v->t == JV_INT || v->t == JV_FLOAT || v->t == JV_BOOL; }
static double num_f(const jv *v) { return v->t == JV_FLOAT ? v->f : v->t == JV_INT ? (double)v->i : v->b; }
static int64_t num_i(const jv *v) { return v->t == JV_INT ? v->i : v->b; }

bool jv_eq(const jv *a, const jv *b)
{
    if (is_num(a) && is_num(b)) {
        if (a->t == JV_FLOAT || b->t == JV_FLOAT)
            return num_f(a) == num_f(b);
        return num_i(a) == num_i(b);
    }
    if (a->t != b->t)
        return false;
    switch (a->t) {
    case JV_UNDEF: case JV_NONE: return true;
    case JV_STR: return a->n == b->n && !memcmp(a->s, b->s, a->n);
    case JV_LIST:
        if (a->n != b->n)
            return false;
        for (size_t i = 0; i < a->n; i++)
            if (!jv_eq(&a->l[i], &b->l[i]))
                return false;
        return true;
    case JV_DICT:
        if (a->d->n != b->d->n)
            return false;
        for (size_t i = 0; i < a->d->n; i++) {
            jv *o = jdict_get(b->d, a->d->k[i]);
            if (!o || !jv_eq(&a->d->v[i], o))
                return false;
        }
        return true;
    case JV_NS: return a->d == b->d;
    case JV_MACRO: return a->m == b->m;
    case JV_FUNC: return a->fn == b->fn;
    default: return a->lp == b->lp;
    }
}

bool jv_is_str(const jv *v, const char *s) { return v->t == JV_STR && v->n == strlen(s) && !memcmp(v->s, s, v->n); }

int jv_cmp(struct jx *x, const jv *a, const jv *b, int line)
{
    if (is_num(a) && is_num(b)) {
        if (a->t == JV_FLOAT || b->t == JV_FLOAT) {
            double p = num_f(a), q = num_f(b);
            return p < q ? -1 : p > q ? 1 : 0;
        }
        int64_t p = num_i(a), q = num_i(b);
        return p < q ? -1 : p > q;
    }
    if (a->t == JV_STR && b->t == JV_STR) {
        size_t m = a->n < b->n ? a->n : b->n;
        int c = memcmp(a->s, b->s, m); /* UTF-8 byte order is code point order */
        return c ? c : a->n < b->n ? -1 : a->n > b->n;
    }
    if (a->t == JV_LIST && b->t == JV_LIST) {
        for (size_t i = 0; i < a->n && i < b->n; i++) {
            if (!jv_eq(&a->l[i], &b->l[i]))
                return jv_cmp(x, &a->l[i], &b->l[i], line);
        }
        return a->n < b->n ? -1 : a->n > b->n;
    }
    if (a->t == JV_UNDEF || b->t == JV_UNDEF) {
        const jv *u = a->t == JV_UNDEF ? a : b;
        jx_fail(x, -EINVAL, line, "'%.*s' is undefined", (int)u->n, u->s ? u->s : "");
    }
    jx_fail(x, -EINVAL, line, "'<' not supported between instances of '%s' and '%s'", jv_type_name(a),
            jv_type_name(b));
}

/* ---------------------------------------------------------------- buffers */

void jbuf_put(struct jx *x, struct jbuf *b, const char *s, size_t n)
{
    if (!n)
        return;
    if (n > x->t->o.max_output || b->n > x->t->o.max_output - n)
        jx_fail(x, -E2BIG, 0, "template output longer than %zu bytes", x->t->o.max_output);
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        while (nc < b->n + n)
            nc *= 2;
        char *np = jx_alloc(x, nc);
        if (b->n)
            memcpy(np, b->p, b->n);
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

void jbuf_putc(struct jx *x, struct jbuf *b, char c) { jbuf_put(x, b, &c, 1); }

void jbuf_putf(struct jx *x, struct jbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (k > 0)
        jbuf_put(x, b, tmp, (size_t)k < sizeof(tmp) ? (size_t)k : sizeof(tmp) - 1);
}

jv jbuf_take(struct jx *x, struct jbuf *b)
{
    jv r = { .t = JV_STR, .s = b->n ? b->p : "", .n = b->n };
    (void)x;
    return r;
}

/* ------------------------------------------------------------------- UTF-8 */

size_t ju_len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

size_t ju_off(const char *s, size_t n, size_t cp)
{
    size_t c = 0, i = 0;
    for (; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (c == cp)
                return i;
            c++;
        }
    }
    return n;
}

/* ---------------------------------------------------------- str and repr */

/* Python's repr(float): the shortest digits that round-trip; scientific
 * notation below 1e-4 and from 1e16 up. */
static void float_repr(struct jx *x, struct jbuf *b, double f)
{
    if (isnan(f)) {
        jbuf_put(x, b, "nan", 3);
        return;
    }
    if (isinf(f)) {
        jbuf_put(x, b, f < 0 ? "-inf" : "inf", f < 0 ? 4 : 3);
        return;
    }
    char e[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec - 1, f);
        if (strtod(e, NULL) == f)
            break;
    }
    /* e: [-]d[.ddd]e[+-]XX */
    char digits[24];
    int nd = 0, exp10;
    const char *q = e;
    bool neg = *q == '-';
    if (neg)
        q++;
    for (; *q && *q != 'e'; q++)
        if (*q != '.')
            digits[nd++] = *q;
    exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    char out[64];
    int k = 0;
    if (neg)
        out[k++] = '-';
    if (exp10 < -4 || exp10 >= 16) {
        out[k++] = digits[0];
        if (nd > 1) {
            out[k++] = '.';
            for (int i = 1; i < nd; i++)
                out[k++] = digits[i];
        }
        k += snprintf(out + k, sizeof(out) - (size_t)k, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    } else if (exp10 < 0) {
        out[k++] = '0';
        out[k++] = '.';
        for (int i = 0; i < -exp10 - 1; i++)
            out[k++] = '0';
        for (int i = 0; i < nd; i++)
            out[k++] = digits[i];
    } else {
        for (int i = 0; i <= exp10; i++)
            out[k++] = i < nd ? digits[i] : '0';
        out[k++] = '.';
        if (nd > exp10 + 1) {
            for (int i = exp10 + 1; i < nd; i++)
                out[k++] = digits[i];
        } else {
            out[k++] = '0';
        }
    }
    jbuf_put(x, b, out, (size_t)k);
}

static void str_repr(struct jx *x, struct jbuf *b, const char *s, size_t n)
{
    bool sq = memchr(s, '\'', n) != NULL, dq = memchr(s, '"', n) != NULL;
    char q = sq && !dq ? '"' : '\'';
    jbuf_putc(x, b, q);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == (unsigned char)q) {
            jbuf_putc(x, b, '\\');
            jbuf_putc(x, b, (char)c);
        } else if (c == '\n') {
            jbuf_put(x, b, "\\n", 2);
        } else if (c == '\r') {
            jbuf_put(x, b, "\\r", 2);
        } else if (c == '\t') {
            jbuf_put(x, b, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            jbuf_putf(x, b, "\\x%02x", c);
        } else {
            jbuf_putc(x, b, (char)c);
        }
    }
    jbuf_putc(x, b, q);
}

void jv_repr_to(struct jx *x, struct jbuf *b, const jv *v)
{
    if (v->t == JV_STR)
        str_repr(x, b, v->s, v->n);
    else
        jv_str_to(x, b, v);
}

void jv_str_to(struct jx *x, struct jbuf *b, const jv *v)
{
    if (++x->depth > x->t->o.max_depth)
        jx_fail(x, -E2BIG, 0, "value nested deeper than %d", x->t->o.max_depth);
    switch (v->t) {
    case JV_UNDEF: break;
    case JV_NONE: jbuf_put(x, b, "None", 4); break;
    case JV_BOOL: v->b ? jbuf_put(x, b, "True", 4) : jbuf_put(x, b, "False", 5); break;
    case JV_INT: jbuf_putf(x, b, "%lld", (long long)v->i); break;
    case JV_FLOAT: float_repr(x, b, v->f); break;
    case JV_STR: jbuf_put(x, b, v->s, v->n); break;
    case JV_LIST:
        jbuf_putc(x, b, v->tuple ? '(' : '[');
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                jbuf_put(x, b, ", ", 2);
            jv_repr_to(x, b, &v->l[i]);
        }
        if (v->tuple && v->n == 1)
            jbuf_putc(x, b, ',');
        jbuf_putc(x, b, v->tuple ? ')' : ']');
        break;
    case JV_DICT:
    case JV_NS:
        if (v->t == JV_NS)
            jbuf_put(x, b, "<Namespace ", 11);
        jbuf_putc(x, b, '{');
        for (size_t i = 0; i < v->d->n; i++) {
            if (i)
                jbuf_put(x, b, ", ", 2);
            jv_repr_to(x, b, &v->d->k[i]);
            jbuf_put(x, b, ": ", 2);
            jv_repr_to(x, b, &v->d->v[i]);
        }
        jbuf_putc(x, b, '}');
        if (v->t == JV_NS)
            jbuf_putc(x, b, '>');
        break;
    case JV_MACRO: jbuf_put(x, b, "<Macro>", 7); break;
    case JV_FUNC: jbuf_put(x, b, "<function>", 10); break;
    default: jbuf_put(x, b, "<LoopContext>", 13); break;
    }
    x->depth--;
}

jv jv_tostr(struct jx *x, const jv *v)
{
    if (v->t == JV_STR)
        return *v;
    struct jbuf b = { 0 };
    jv_str_to(x, &b, v);
    return jbuf_take(x, &b);
}

/* ------------------------------------------------------------------- JSON */

static void json_str(struct jx *x, struct jbuf *b, const char *s, size_t n, bool ascii)
{
    jbuf_putc(x, b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': jbuf_put(x, b, "\\\"", 2); continue;
        case '\\': jbuf_put(x, b, "\\\\", 2); continue;
        case '\n': jbuf_put(x, b, "\\n", 2); continue;
        case '\r': jbuf_put(x, b, "\\r", 2); continue;
        case '\t': jbuf_put(x, b, "\\t", 2); continue;
        case '\b': jbuf_put(x, b, "\\b", 2); continue;
        case '\f': jbuf_put(x, b, "\\f", 2); continue;
        default: break;
        }
        if (c < 0x20) {
            jbuf_putf(x, b, "\\u%04x", c);
        } else if (c >= 0x80 && ascii) {
            uint32_t cp = 0;
            int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
            cp = c & (0x3F >> extra);
            for (int k = 0; k < extra && i + 1 < n; k++)
                cp = (cp << 6) | ((unsigned char)s[++i] & 0x3F);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                jbuf_putf(x, b, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
            } else {
                jbuf_putf(x, b, "\\u%04x", cp);
            }
        } else {
            jbuf_putc(x, b, (char)c);
        }
    }
    jbuf_putc(x, b, '"');
}

static void json_nl(struct jx *x, struct jbuf *b, const struct jtojson *o, int level)
{
    jbuf_putc(x, b, '\n');
    for (int i = 0; i < o->indent * level; i++)
        jbuf_putc(x, b, ' ');
}

static int key_cmp_ctx_cmp(const void *a, const void *b)
{
    const jv *p = *(const jv *const *)a, *q = *(const jv *const *)b;
    size_t m = p->n < q->n ? p->n : q->n;
    int c = memcmp(p->s, q->s, m);
    return c ? c : p->n < q->n ? -1 : p->n > q->n;
}

void jv_tojson_to(struct jx *x, struct jbuf *b, const jv *v, const struct jtojson *o, int level, int line)
{
    if (level > x->t->o.max_depth)
        jx_fail(x, -E2BIG, line, "tojson: value nested deeper than %d", x->t->o.max_depth);
    jx_step(x, line);
    switch (v->t) {
    case JV_NONE: jbuf_put(x, b, "null", 4); return;
    case JV_BOOL: v->b ? jbuf_put(x, b, "true", 4) : jbuf_put(x, b, "false", 5); return;
    case JV_INT: jbuf_putf(x, b, "%lld", (long long)v->i); return;
    case JV_FLOAT:
        if (isnan(v->f))
            jbuf_put(x, b, "NaN", 3);
        else if (isinf(v->f))
            jbuf_put(x, b, v->f < 0 ? "-Infinity" : "Infinity", v->f < 0 ? 9 : 8);
        else
            float_repr(x, b, v->f);
        return;
    case JV_STR: json_str(x, b, v->s, v->n, o->ensure_ascii); return;
    case JV_LIST:
        jbuf_putc(x, b, '[');
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                jbuf_put(x, b, o->item_sep, strlen(o->item_sep));
            if (o->indent >= 0)
                json_nl(x, b, o, level + 1);
            jv_tojson_to(x, b, &v->l[i], o, level + 1, line);
        }
        if (o->indent >= 0 && v->n)
            json_nl(x, b, o, level);
        jbuf_putc(x, b, ']');
        return;
    case JV_DICT: {
        struct jdict *d = v->d;
        const jv **order = jx_alloc(x, (d->n ? d->n : 1) * sizeof(*order));
        for (size_t i = 0; i < d->n; i++) {
            order[i] = &d->k[i];
            if (d->k[i].t != JV_STR && o->sort_keys)
                jx_fail(x, -EINVAL, line, "tojson: sort_keys needs string keys");
        }
        if (o->sort_keys && d->n > 1)
            qsort(order, d->n, sizeof(*order), key_cmp_ctx_cmp);
        jbuf_putc(x, b, '{');
        for (size_t i = 0; i < d->n; i++) {
            const jv *k = order[i];
            const jv *val = &d->v[k - d->k];
            if (i)
                jbuf_put(x, b, o->item_sep, strlen(o->item_sep));
            if (o->indent >= 0)
                json_nl(x, b, o, level + 1);
            if (k->t == JV_STR) {
                json_str(x, b, k->s, k->n, o->ensure_ascii);
            } else if (k->t == JV_INT || k->t == JV_FLOAT || k->t == JV_BOOL || k->t == JV_NONE) {
                struct jbuf kb = { 0 };
                jv_tojson_to(x, &kb, k, o, level + 1, line);
                json_str(x, b, kb.p, kb.n, o->ensure_ascii);
            } else {
                jx_fail(x, -EINVAL, line, "tojson: keys must be str, int, float, bool or None, not %s",
                        jv_type_name(k));
            }
            jbuf_put(x, b, o->key_sep, strlen(o->key_sep));
            jv_tojson_to(x, b, val, o, level + 1, line);
        }
        if (o->indent >= 0 && d->n)
            json_nl(x, b, o, level);
        jbuf_putc(x, b, '}');
        return;
    }
    default:
        jx_fail(x, -EINVAL, line, "Object of type %s is not JSON serializable", jv_type_name(v));
    }
}

jv jv_from_json(struct jx *x, const json_t *j, int depth)
{
    if (depth > x->t->o.max_depth)
        jx_fail(x, -E2BIG, 0, "input JSON nested deeper than %d", x->t->o.max_depth);
    switch (json_typeof(j)) {
    case JSON_NULL: return jv_none();
    case JSON_TRUE: return jv_bool(true);
    case JSON_FALSE: return jv_bool(false);
    case JSON_INTEGER: return jv_int((int64_t)json_integer_value(j));
    case JSON_REAL: return jv_float(json_real_value(j));
    case JSON_STRING: return jv_str(x, json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        jv l = jv_list(x, json_array_size(j));
        for (size_t i = 0; i < l.n; i++)
            l.l[i] = jv_from_json(x, json_array_get(j, i), depth + 1);
        return l;
    }
    case JSON_OBJECT: {
        jv d = jv_dict(x);
        const char *k;
        json_t *v;
        /* jansson keeps object keys in insertion (= input) order: tojson
         * must print them as the conversation wrote them */
        json_object_foreach((json_t *)j, k, v) {
            jv val = jv_from_json(x, v, depth + 1);
            jdict_append(x, d.d, jv_str(x, k, strlen(k)), val); /* keys are unique already */
        }
        return d;
    }
    }
    return jv_none();
}
