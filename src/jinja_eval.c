/*
 * jinja_eval.c - the evaluator of the Jinja engine: runs the statements of a
 * parsed template and evaluates expressions with jinja2's semantics (default
 * Undefined: printing or testing an undefined value is fine, using it in
 * arithmetic or taking its attributes is an error; attribute and item access
 * on a missing key give Undefined). Also jinja_render/jinja_parse/
 * jinja_free, the public entry points.
 *
 * Scopes: the root frame holds the caller's variables and top-level sets; a
 * for loop gets one frame for all its iterations; a macro call gets a frame
 * whose parent is the frame the macro was defined in. Every statement,
 * expression and loop iteration costs a step (max_steps); nesting counts
 * against max_depth.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "jinja_impl.h"

void jx_step(struct jx *x, int line)
{
    if (++x->steps > x->t->o.max_steps)
        jx_fail(x, -E2BIG, line, "template ran more than %llu steps", (unsigned long long)x->t->o.max_steps);
}

static void enter(struct jx *x, int line)
{
    if (++x->depth > x->t->o.max_depth)
        jx_fail(x, -E2BIG, line, "template nested deeper than %d (recursion?)", x->t->o.max_depth);
}

static _Noreturn void fail_undef(struct jx *x, const jv *u, int line)
{
    jx_fail(x, -EINVAL, line, "'%.*s' is undefined", (int)(u->s ? u->n : 0), u->s ? u->s : "");
}

static void frame_set(struct jx *x, struct jframe *f, const char *name, jv v)
{
    jdict_set(x, &f->vars, jv_strz(name), v);
}

static jv lookup(struct jx *x, const char *s, size_t n)
{
    for (struct jframe *f = x->fr; f; f = f->parent) {
        jv *v = jdict_gets(&f->vars, s, n);
        if (v)
            return *v;
    }
    const struct jfunc *g = jx_global(s, n);
    if (g)
        return (jv){ .t = JV_FUNC, .fn = g };
    return jv_undef(s, n);
}

/* ------------------------------------------------------- attribute, item */

static jv loop_attr(struct jx *x, const struct jloop *lp, const char *s, size_t n, int line)
{
    (void)x;
    (void)line;
#define IS(lit) (n == sizeof(lit) - 1 && !memcmp(s, lit, n))
    if (IS("index")) return jv_int((int64_t)lp->i + 1);
    if (IS("index0")) return jv_int((int64_t)lp->i);
    if (IS("revindex")) return jv_int((int64_t)(lp->n - lp->i));
    if (IS("revindex0")) return jv_int((int64_t)(lp->n - lp->i - 1));
    if (IS("first")) return jv_bool(lp->i == 0);
    if (IS("last")) return jv_bool(lp->i + 1 == lp->n);
    if (IS("length")) return jv_int((int64_t)lp->n);
    if (IS("depth")) return jv_int(lp->depth);
    if (IS("depth0")) return jv_int(lp->depth - 1);
    if (IS("previtem")) return lp->i > 0 ? lp->items[lp->i - 1] : jv_undef("previtem", 8);
    if (IS("nextitem")) return lp->i + 1 < lp->n ? lp->items[lp->i + 1] : jv_undef("nextitem", 8);
#undef IS
    return jv_undef(s, n);
}

jv jx_getattr(struct jx *x, jv obj, const char *name, size_t n, int line)
{
    switch (obj.t) {
    case JV_UNDEF: fail_undef(x, &obj, line);
    case JV_DICT:
    case JV_NS: {
        jv *v = jdict_gets(obj.d, name, n);
        return v ? *v : jv_undef(name, n);
    }
    case JV_LOOP: return loop_attr(x, obj.lp, name, n, line);
    default: return jv_undef(name, n);
    }
}

static bool index_of(const jv *k, size_t len, size_t *out)
{
    if (k->t != JV_INT && k->t != JV_BOOL)
        return false;
    int64_t i = k->t == JV_INT ? k->i : k->b;
    if (i < 0)
        i += (int64_t)len;
    if (i < 0 || (uint64_t)i >= len)
        return false;
    *out = (size_t)i;
    return true;
}

jv jx_getitem(struct jx *x, jv obj, jv key, int line)
{
    size_t i;
    switch (obj.t) {
    case JV_UNDEF: fail_undef(x, &obj, line);
    case JV_LIST:
        if (index_of(&key, obj.n, &i))
            return obj.l[i];
        break;
    case JV_STR: {
        size_t len = ju_len(obj.s, obj.n);
        if (index_of(&key, len, &i)) {
            size_t a = ju_off(obj.s, obj.n, i), b = ju_off(obj.s, obj.n, i + 1);
            return jv_str(x, obj.s + a, b - a);
        }
        break;
    }
    case JV_DICT:
    case JV_NS: {
        jv *v = jdict_get(obj.d, key);
        if (v)
            return *v;
        break;
    }
    case JV_LOOP:
        if (key.t == JV_STR)
            return loop_attr(x, obj.lp, key.s, key.n, line);
        break;
    default: break;
    }
    if (key.t == JV_STR)
        return jv_undef(key.s, key.n);
    return jv_undef("item", 4);
}

/* Python slice semantics on n items: start/stop/step may be none */
static void slice_range(struct jx *x, const jv *sv, size_t n, int64_t *start, int64_t *step, size_t *count, int line)
{
    int64_t st = 1, a, b, len = (int64_t)n;
    if (sv[2].t != JV_NONE && sv[2].t != JV_UNDEF) {
        if (sv[2].t != JV_INT)
            jx_fail(x, -EINVAL, line, "slice step must be an integer");
        st = sv[2].i;
        if (st == 0)
            jx_fail(x, -EINVAL, line, "slice step cannot be zero");
    }
    for (int k = 0; k < 2; k++)
        if (sv[k].t != JV_NONE && sv[k].t != JV_UNDEF && sv[k].t != JV_INT)
            jx_fail(x, -EINVAL, line, "slice indices must be integers or None");
    if (st > 0) {
        a = sv[0].t == JV_INT ? sv[0].i : 0;
        b = sv[1].t == JV_INT ? sv[1].i : len;
        if (a < 0) a = a + len < 0 ? 0 : a + len;
        if (b < 0) b = b + len < 0 ? 0 : b + len;
        if (a > len) a = len;
        if (b > len) b = len;
        *count = b > a ? (size_t)((b - a + st - 1) / st) : 0;
    } else {
        a = sv[0].t == JV_INT ? sv[0].i : len - 1;
        b = sv[1].t == JV_INT ? sv[1].i : -len - 1;
        if (a < 0) a = a + len < 0 ? -1 : a + len;
        if (b < 0) b = b + len < 0 ? -1 : b + len;
        if (a >= len) a = len - 1;
        if (b >= len) b = len - 1;
        *count = a > b ? (size_t)((a - b + (-st) - 1) / (-st)) : 0;
    }
    *start = a;
    *step = st;
}

static jv do_slice(struct jx *x, jv obj, const jv *sv, int line)
{
    int64_t a, st;
    size_t cnt;
    if (obj.t == JV_LIST) {
        slice_range(x, sv, obj.n, &a, &st, &cnt, line);
        jv r = jv_list(x, cnt);
        for (size_t i = 0; i < cnt; i++)
            r.l[i] = obj.l[a + (int64_t)i * st];
        return r;
    }
    if (obj.t == JV_STR) {
        size_t len = ju_len(obj.s, obj.n);
        slice_range(x, sv, len, &a, &st, &cnt, line);
        if (st == 1) {
            size_t o1 = ju_off(obj.s, obj.n, (size_t)a), o2 = ju_off(obj.s, obj.n, (size_t)a + cnt);
            return jv_str(x, obj.s + o1, o2 - o1);
        }
        /* code point offsets, then copy each */
        size_t *offs = jx_alloc(x, (len + 1) * sizeof(size_t));
        size_t c = 0;
        for (size_t i = 0; i < obj.n; i++)
            if (((unsigned char)obj.s[i] & 0xC0) != 0x80)
                offs[c++] = i;
        offs[len] = obj.n;
        struct jbuf b = { 0 };
        for (size_t i = 0; i < cnt; i++) {
            size_t k = (size_t)(a + (int64_t)i * st);
            jbuf_put(x, &b, obj.s + offs[k], offs[k + 1] - offs[k]);
        }
        return jbuf_take(x, &b);
    }
    if (obj.t == JV_UNDEF)
        fail_undef(x, &obj, line);
    return jv_undef("slice", 5);
}

/* ------------------------------------------------------------ arithmetic */

static bool isnum(const jv *v) { return v->t == JV_INT || v->t == JV_FLOAT || v->t == JV_BOOL; }
static double fnum(const jv *v) { return v->t == JV_FLOAT ? v->f : v->t == JV_INT ? (double)v->i : v->b; }
static int64_t inum(const jv *v) { return v->t == JV_INT ? v->i : v->t == JV_BOOL ? v->b : 0; }

static const char *op_sym(int op)
{
    static const char *const s[] = { "+", "-", "*", "/", "//", "%", "**", "~" };
    return op >= 0 && op <= OP_CONCAT ? s[op] : "?";
}

static _Noreturn void fail_ovf(struct jx *x, int line) { jx_fail(x, -EINVAL, line, "integer overflow"); }

static jv repeat(struct jx *x, jv s, int64_t k, int line)
{
    if (k <= 0)
        return s.t == JV_STR ? jv_strz("") : jv_list(x, 0);
    size_t unit = s.t == JV_STR ? s.n : s.n * sizeof(jv);
    if (unit && (uint64_t)k > (x->t->o.max_memory / unit) + 1)
        jx_fail(x, -E2BIG, line, "template used more than %zu bytes of memory", x->t->o.max_memory);
    if (s.t == JV_STR) {
        char *p = jx_alloc(x, s.n * (size_t)k + 1);
        for (int64_t i = 0; i < k; i++)
            memcpy(p + (size_t)i * s.n, s.s, s.n);
        p[s.n * (size_t)k] = 0;
        return (jv){ .t = JV_STR, .s = p, .n = s.n * (size_t)k };
    }
    jv r = jv_list(x, s.n * (size_t)k);
    for (int64_t i = 0; i < k; i++)
        if (s.n)
            memcpy(r.l + (size_t)i * s.n, s.l, s.n * sizeof(jv));
    return r;
}

static jv arith(struct jx *x, int op, jv a, jv b, int line)
{
    if (op == OP_CONCAT) {
        struct jbuf o = { 0 };
        jv_str_to(x, &o, &a);
        jv_str_to(x, &o, &b);
        return jbuf_take(x, &o);
    }
    if (a.t == JV_UNDEF)
        fail_undef(x, &a, line);
    if (b.t == JV_UNDEF)
        fail_undef(x, &b, line);
    if (isnum(&a) && isnum(&b)) {
        bool fl = a.t == JV_FLOAT || b.t == JV_FLOAT;
        int64_t p = inum(&a), q = inum(&b), r;
        double f = fnum(&a), g = fnum(&b);
        switch (op) {
        case OP_ADD:
            if (fl) return jv_float(f + g);
            if (__builtin_add_overflow(p, q, &r)) fail_ovf(x, line);
            return jv_int(r);
        case OP_SUB:
            if (fl) return jv_float(f - g);
            if (__builtin_sub_overflow(p, q, &r)) fail_ovf(x, line);
            return jv_int(r);
        case OP_MUL:
            if (fl) return jv_float(f * g);
            if (__builtin_mul_overflow(p, q, &r)) fail_ovf(x, line);
            return jv_int(r);
        case OP_DIV:
            if (g == 0) jx_fail(x, -EINVAL, line, "division by zero");
            return jv_float(f / g);
        case OP_FLOORDIV:
        case OP_MOD:
            if (fl ? g == 0 : q == 0) jx_fail(x, -EINVAL, line, "integer division or modulo by zero");
            if (fl) {
                double m = fmod(f, g);
                if (m != 0 && ((m < 0) != (g < 0)))
                    m += g;
                return op == OP_MOD ? jv_float(m) : jv_float(floor((f - m) / g + 0.5));
            }
            if (p == INT64_MIN && q == -1) fail_ovf(x, line);
            {
                int64_t d = p / q, m = p % q;
                if (m != 0 && ((m < 0) != (q < 0))) {
                    d--;
                    m += q;
                }
                return op == OP_MOD ? jv_int(m) : jv_int(d);
            }
        case OP_POW:
            if (fl || q < 0) return jv_float(pow(f, g));
            r = 1;
            for (int64_t e = q, base = p; e; e >>= 1) {
                if (e & 1 && __builtin_mul_overflow(r, base, &r)) fail_ovf(x, line);
                if (e > 1 && __builtin_mul_overflow(base, base, &base)) fail_ovf(x, line);
            }
            return jv_int(r);
        }
    }
    if (op == OP_ADD && a.t == JV_STR && b.t == JV_STR) {
        char *s = jx_alloc(x, a.n + b.n + 1);
        memcpy(s, a.s, a.n);
        memcpy(s + a.n, b.s, b.n);
        s[a.n + b.n] = 0;
        return (jv){ .t = JV_STR, .s = s, .n = a.n + b.n };
    }
    if (op == OP_ADD && a.t == JV_LIST && b.t == JV_LIST) {
        jv r = jv_list(x, a.n + b.n);
        if (a.n) memcpy(r.l, a.l, a.n * sizeof(jv));
        if (b.n) memcpy(r.l + a.n, b.l, b.n * sizeof(jv));
        return r;
    }
    if (op == OP_MUL && (a.t == JV_STR || a.t == JV_LIST) && (b.t == JV_INT || b.t == JV_BOOL))
        return repeat(x, a, inum(&b), line);
    if (op == OP_MUL && (b.t == JV_STR || b.t == JV_LIST) && (a.t == JV_INT || a.t == JV_BOOL))
        return repeat(x, b, inum(&a), line);
    if (op == OP_ADD && a.t == JV_STR)
        jx_fail(x, -EINVAL, line, "can only concatenate str (not \"%s\") to str", jv_type_name(&b));
    jx_fail(x, -EINVAL, line, "unsupported operand type(s) for %s: '%s' and '%s'", op_sym(op), jv_type_name(&a),
            jv_type_name(&b));
}

static bool contains(struct jx *x, jv hay, jv needle, int line)
{
    switch (hay.t) {
    case JV_UNDEF: return false;
    case JV_STR:
        if (needle.t != JV_STR)
            jx_fail(x, -EINVAL, line, "'in <string>' requires string as left operand, not %s", jv_type_name(&needle));
        return needle.n == 0 || memmem(hay.s, hay.n, needle.s, needle.n) != NULL;
    case JV_LIST:
        for (size_t i = 0; i < hay.n; i++)
            if (jv_eq(&hay.l[i], &needle))
                return true;
        return false;
    case JV_DICT:
    case JV_NS: return jdict_get(hay.d, needle) != NULL;
    default: jx_fail(x, -EINVAL, line, "argument of type '%s' is not iterable", jv_type_name(&hay));
    }
}

static jv compare(struct jx *x, int op, jv a, jv b, int line)
{
    switch (op) {
    case OP_EQ: return jv_bool(jv_eq(&a, &b));
    case OP_NE: return jv_bool(!jv_eq(&a, &b));
    case OP_IN: return jv_bool(contains(x, b, a, line));
    case OP_NOTIN: return jv_bool(!contains(x, b, a, line));
    default: break;
    }
    int c = jv_cmp(x, &a, &b, line);
    switch (op) {
    case OP_LT: return jv_bool(c < 0);
    case OP_LE: return jv_bool(c <= 0);
    case OP_GT: return jv_bool(c > 0);
    default: return jv_bool(c >= 0);
    }
}

/* ------------------------------------------------------------ calls */

static void render_body(struct jx *x, const struct jnode *body);

jv jx_call_macro(struct jx *x, struct jmacro *m, const jv *args, int nargs, const char **kw, const jv *kwv, int nkw,
                 struct jmacro *caller, int line)
{
    const struct jnode *d = m->def;
    enter(x, line);
    struct jframe *fr = jx_alloc(x, sizeof(*fr));
    memset(fr, 0, sizeof(*fr));
    fr->parent = m->scope;
    if (nargs > d->nnames)
        jx_fail(x, -EINVAL, line, "macro '%s' takes not more than %d argument(s)", d->s, d->nnames);
    struct jframe *saved_fr = x->fr;
    struct jbuf *saved_out = x->out;
    x->fr = fr;
    for (int i = 0; i < d->nnames; i++) {
        jv v;
        bool have = false;
        if (i < nargs) {
            v = args[i];
            have = true;
        }
        for (int k = 0; k < nkw; k++)
            if (!strcmp(kw[k], d->names[i])) {
                if (have)
                    jx_fail(x, -EINVAL, line, "macro '%s' got multiple values for argument '%s'", d->s, kw[k]);
                v = kwv[k];
                have = true;
            }
        if (!have)
            v = d->kids2[i] ? jx_eval(x, d->kids2[i]) : jv_undef(d->names[i], strlen(d->names[i]));
        frame_set(x, fr, d->names[i], v);
    }
    for (int k = 0; k < nkw; k++) {
        bool known = false;
        for (int i = 0; i < d->nnames; i++)
            known |= !strcmp(kw[k], d->names[i]);
        if (!known)
            jx_fail(x, -EINVAL, line, "macro '%s' takes no keyword argument '%s'", d->s, kw[k]);
    }
    if (caller)
        frame_set(x, fr, "caller", (jv){ .t = JV_MACRO, .m = caller });
    struct jbuf out = { 0 };
    x->out = &out;
    int saved_ctl = x->ctl;
    render_body(x, d->b);
    x->ctl = saved_ctl;
    x->out = saved_out;
    x->fr = saved_fr;
    x->depth--;
    return jbuf_take(x, &out);
}

jv jx_call_value(struct jx *x, jv callee, const jv *args, int nargs, const char **kw, const jv *kwv, int nkw, int line)
{
    if (callee.t == JV_MACRO)
        return jx_call_macro(x, callee.m, args, nargs, kw, kwv, nkw, NULL, line);
    if (callee.t == JV_FUNC)
        return callee.fn->fn(x, jv_none(), args, nargs, kw, kwv, nkw, line);
    if (callee.t == JV_UNDEF)
        fail_undef(x, &callee, line);
    jx_fail(x, -EINVAL, line, "'%s' object is not callable", jv_type_name(&callee));
}

struct argv_ {
    jv *pos, *kwv;
    const char **kw;
    int npos, nkw;
};

static void eval_args(struct jx *x, const struct jnode *e, struct argv_ *a)
{
    a->npos = e->nkids;
    a->nkw = e->nkids2;
    a->pos = jx_alloc(x, (size_t)(a->npos + 1) * sizeof(jv));
    a->kwv = jx_alloc(x, (size_t)(a->nkw + 1) * sizeof(jv));
    a->kw = e->names;
    for (int i = 0; i < a->npos; i++)
        a->pos[i] = jx_eval(x, e->kids[i]);
    for (int i = 0; i < a->nkw; i++)
        a->kwv[i] = jx_eval(x, e->kids2[i]);
}

static jv eval_call(struct jx *x, const struct jnode *e, struct jmacro *caller)
{
    struct argv_ a;
    const struct jnode *cn = e->a;
    if (cn->kind == E_ATTR) {
        jv self = jx_eval(x, cn->a);
        const struct jfunc *m = jx_method(&self, cn->s, cn->slen);
        if (m) {
            eval_args(x, e, &a);
            return m->fn(x, self, a.pos, a.npos, a.kw, a.kwv, a.nkw, e->line);
        }
        jv callee = jx_getattr(x, self, cn->s, cn->slen, e->line);
        eval_args(x, e, &a);
        if (caller && callee.t == JV_MACRO)
            return jx_call_macro(x, callee.m, a.pos, a.npos, a.kw, a.kwv, a.nkw, caller, e->line);
        return jx_call_value(x, callee, a.pos, a.npos, a.kw, a.kwv, a.nkw, e->line);
    }
    jv callee = jx_eval(x, cn);
    eval_args(x, e, &a);
    if (caller && callee.t == JV_MACRO)
        return jx_call_macro(x, callee.m, a.pos, a.npos, a.kw, a.kwv, a.nkw, caller, e->line);
    return jx_call_value(x, callee, a.pos, a.npos, a.kw, a.kwv, a.nkw, e->line);
}

/* Applies the filter chain f (ending at placeholder ph) to v. */
static jv apply_chain(struct jx *x, const struct jnode *f, const struct jnode *ph, jv v)
{
    if (f == ph)
        return v;
    jv in = apply_chain(x, f->a, ph, v);
    struct argv_ a;
    eval_args(x, f, &a);
    return jx_filter(x, f->s, in, a.pos, a.npos, a.kw, a.kwv, a.nkw, f->line);
}

/* ------------------------------------------------------------ expressions */

jv jx_eval(struct jx *x, const struct jnode *e)
{
    jx_step(x, e->line);
    enter(x, e->line);
    jv r;
    switch (e->kind) {
    case E_LIT: r = e->lit; break;
    case E_NAME: r = lookup(x, e->s, e->slen); break;
    case E_LIST:
        r = jv_list(x, (size_t)e->nkids);
        r.tuple = e->op;
        for (int i = 0; i < e->nkids; i++)
            r.l[i] = jx_eval(x, e->kids[i]);
        break;
    case E_DICT:
        r = jv_dict(x);
        for (int i = 0; i < e->nkids; i++) {
            jv k = jx_eval(x, e->kids[i]);
            jdict_set(x, r.d, k, jx_eval(x, e->kids2[i]));
        }
        break;
    case E_ATTR: r = jx_getattr(x, jx_eval(x, e->a), e->s, e->slen, e->line); break;
    case E_INDEX: {
        jv o = jx_eval(x, e->a);
        r = jx_getitem(x, o, jx_eval(x, e->b), e->line);
        break;
    }
    case E_SLICE: {
        jv o = jx_eval(x, e->a), sv[3];
        for (int i = 0; i < 3; i++)
            sv[i] = e->kids[i] ? jx_eval(x, e->kids[i]) : jv_none();
        r = do_slice(x, o, sv, e->line);
        break;
    }
    case E_CALL: r = eval_call(x, e, NULL); break;
    case E_FILTER: {
        jv v = jx_eval(x, e->a);
        struct argv_ a;
        eval_args(x, e, &a);
        r = jx_filter(x, e->s, v, a.pos, a.npos, a.kw, a.kwv, a.nkw, e->line);
        break;
    }
    case E_TEST: {
        jv v = jx_eval(x, e->a);
        struct argv_ a;
        eval_args(x, e, &a);
        r = jv_bool(jx_test(x, e->s, v, a.pos, a.npos, e->line) != (e->op != 0));
        break;
    }
    case E_NEG:
    case E_POS: {
        jv v = jx_eval(x, e->a);
        if (v.t == JV_UNDEF)
            fail_undef(x, &v, e->line);
        if (!isnum(&v))
            jx_fail(x, -EINVAL, e->line, "bad operand type for unary %s: '%s'", e->kind == E_NEG ? "-" : "+",
                    jv_type_name(&v));
        if (e->kind == E_POS)
            r = v.t == JV_BOOL ? jv_int(v.b) : v;
        else if (v.t == JV_FLOAT)
            r = jv_float(-v.f);
        else if (inum(&v) == INT64_MIN)
            fail_ovf(x, e->line);
        else
            r = jv_int(-inum(&v));
        break;
    }
    case E_NOT: {
        jv v = jx_eval(x, e->a);
        r = jv_bool(!jv_truthy(&v));
        break;
    }
    case E_AND:
        r = jx_eval(x, e->a);
        if (jv_truthy(&r))
            r = jx_eval(x, e->b);
        break;
    case E_OR:
        r = jx_eval(x, e->a);
        if (!jv_truthy(&r))
            r = jx_eval(x, e->b);
        break;
    case E_BIN: {
        jv a = jx_eval(x, e->a);
        r = arith(x, e->op, a, jx_eval(x, e->b), e->line);
        break;
    }
    case E_CMP: {
        jv a = jx_eval(x, e->a);
        r = compare(x, e->op, a, jx_eval(x, e->b), e->line);
        break;
    }
    case E_COND: {
        jv c = jx_eval(x, e->a);
        if (jv_truthy(&c))
            r = jx_eval(x, e->b);
        else
            r = e->c ? jx_eval(x, e->c) : jv_undef("", 0);
        break;
    }
    default: jx_fail(x, -EINVAL, e->line, "internal: node %d is not an expression", e->kind);
    }
    x->depth--;
    return r;
}

/* ------------------------------------------------------------ statements */

static void exec(struct jx *x, const struct jnode *n);

static void exec_list(struct jx *x, struct jnode *const *kids, int n)
{
    for (int i = 0; i < n && !x->ctl; i++)
        exec(x, kids[i]);
}

static void render_body(struct jx *x, const struct jnode *body)
{
    if (body)
        exec_list(x, body->kids, body->nkids);
}

/* Items a for loop walks: list items, dict keys, string characters. */
static jv iter_items(struct jx *x, jv v, int line)
{
    switch (v.t) {
    case JV_LIST: return v;
    case JV_UNDEF: return jv_list(x, 0);
    case JV_DICT: {
        jv r = jv_list(x, v.d->n);
        for (size_t i = 0; i < v.d->n; i++)
            r.l[i] = v.d->k[i];
        return r;
    }
    case JV_STR: {
        size_t len = ju_len(v.s, v.n), k = 0;
        jv r = jv_list(x, len);
        for (size_t i = 0; i < v.n;) {
            size_t j = i + 1;
            while (j < v.n && ((unsigned char)v.s[j] & 0xC0) == 0x80)
                j++;
            r.l[k++] = jv_str(x, v.s + i, j - i);
            i = j;
        }
        return r;
    }
    default: jx_fail(x, -EINVAL, line, "'%s' object is not iterable", jv_type_name(&v));
    }
}

static void bind_targets(struct jx *x, struct jframe *f, const char **names, int n, jv v, int line)
{
    if (n == 1) {
        frame_set(x, f, names[0], v);
        return;
    }
    jv items = iter_items(x, v, line);
    if (items.n != (size_t)n)
        jx_fail(x, -EINVAL, line, "cannot unpack %zu values into %d names", items.n, n);
    for (int i = 0; i < n; i++)
        frame_set(x, f, names[i], items.l[i]);
}

static void exec_for(struct jx *x, const struct jnode *n)
{
    jv items = iter_items(x, jx_eval(x, n->a), n->line);
    struct jframe *fr = jx_alloc(x, sizeof(*fr));
    memset(fr, 0, sizeof(*fr));
    fr->parent = x->fr;
    struct jframe *saved = x->fr;
    x->fr = fr;
    if (n->b) { /* for x in y if cond: filter first, loop.length counts what is left */
        jv kept = jv_list(x, items.n);
        size_t k = 0;
        for (size_t i = 0; i < items.n; i++) {
            jx_step(x, n->line);
            bind_targets(x, fr, n->names, n->nnames, items.l[i], n->line);
            jv c = jx_eval(x, n->b);
            if (jv_truthy(&c))
                kept.l[k++] = items.l[i];
        }
        kept.n = k;
        items = kept;
    }
    int depth = 1;
    for (struct jframe *f = saved; f; f = f->parent) {
        jv *outer = jdict_gets(&f->vars, "loop", 4);
        if (outer && outer->t == JV_LOOP) {
            depth = outer->lp->depth + 1;
            break;
        }
    }
    struct jloop *lp = jx_alloc(x, sizeof(*lp));
    lp->items = items.l;
    lp->n = items.n;
    lp->depth = depth;
    for (size_t i = 0; i < items.n; i++) {
        jx_step(x, n->line);
        lp->i = i;
        bind_targets(x, fr, n->names, n->nnames, items.l[i], n->line);
        frame_set(x, fr, "loop", (jv){ .t = JV_LOOP, .lp = lp });
        exec_list(x, n->kids, n->nkids);
        if (x->ctl == 1) {
            x->ctl = 0;
            break;
        }
        x->ctl = 0;
    }
    if (!items.n && n->nkids2)
        exec_list(x, n->kids2, n->nkids2);
    x->fr = saved;
}

static jv render_to_string(struct jx *x, const struct jnode *body)
{
    struct jbuf out = { 0 }, *saved = x->out;
    x->out = &out;
    render_body(x, body);
    x->out = saved;
    return jbuf_take(x, &out);
}

static void exec(struct jx *x, const struct jnode *n)
{
    jx_step(x, n->line);
    enter(x, n->line);
    switch (n->kind) {
    case N_BODY: render_body(x, n); break;
    case N_TEXT: jbuf_put(x, x->out, n->s, n->slen); break;
    case N_OUTPUT: {
        jv v = jx_eval(x, n->a);
        jv_str_to(x, x->out, &v);
        break;
    }
    case N_IF: {
        jv c = jx_eval(x, n->a);
        if (jv_truthy(&c))
            render_body(x, n->b);
        else if (n->c)
            exec(x, n->c);
        break;
    }
    case N_FOR: exec_for(x, n); break;
    case N_SET: bind_targets(x, x->fr, n->names, n->nnames, jx_eval(x, n->a), n->line); break;
    case N_SETATTR: {
        jv ns = lookup(x, n->s, strlen(n->s));
        if (ns.t != JV_NS)
            jx_fail(x, -EINVAL, n->line, "cannot assign attribute on non-namespace object '%s'", n->s);
        jv v = jx_eval(x, n->a);
        jdict_set(x, ns.d, jv_strz(n->names[0]), v);
        break;
    }
    case N_SETBLOCK: {
        jv v = render_to_string(x, n->b);
        if (n->a)
            v = apply_chain(x, n->a, n->c, v);
        frame_set(x, x->fr, n->names[0], v);
        break;
    }
    case N_MACRO: {
        struct jmacro *m = jx_alloc(x, sizeof(*m));
        m->def = n;
        m->scope = x->fr;
        frame_set(x, x->fr, n->s, (jv){ .t = JV_MACRO, .m = m });
        break;
    }
    case N_CALLBLOCK: {
        struct jmacro *c = jx_alloc(x, sizeof(*c));
        c->def = n;
        c->scope = x->fr;
        jv v = eval_call(x, n->a, c);
        jv_str_to(x, x->out, &v);
        break;
    }
    case N_FILTERBLOCK: {
        jv v = apply_chain(x, n->a, n->c, render_to_string(x, n->b));
        jv_str_to(x, x->out, &v);
        break;
    }
    case N_BREAK: x->ctl = 1; break;
    case N_CONTINUE: x->ctl = 2; break;
    default: jx_fail(x, -EINVAL, n->line, "internal: node %d is not a statement", n->kind);
    }
    x->depth--;
}

/* ------------------------------------------------------------ public API */

void jinja_opts_default(struct jinja_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->trim_blocks = true;
    o->lstrip_blocks = true;
    o->max_output = 16u << 20;
    o->max_memory = 128u << 20;
    o->max_steps = 10000000;
    o->max_depth = 400;
}

int jinja_parse(struct jinja_tpl **out, const char *src, size_t len, const struct jinja_opts *o, char *err,
                size_t errlen)
{
    *out = NULL;
    struct jinja_tpl *t = calloc(1, sizeof(*t));
    if (!t)
        return errmsg_set(err, errlen, -ENOMEM, "out of memory");
    if (o)
        t->o = *o;
    else
        jinja_opts_default(&t->o);
    if (t->o.max_depth <= 0)
        t->o.max_depth = 400;
    int rc = jinja_parse_tree(t, src, len, err, errlen);
    if (rc) {
        jinja_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void jinja_free(struct jinja_tpl *t)
{
    if (!t)
        return;
    jarena_free(&t->arena);
    free(t);
}

int jinja_render(const struct jinja_tpl *t, const json_t *vars, char **out, size_t *out_len, char *err, size_t errlen)
{
    *out = NULL;
    if (out_len)
        *out_len = 0;
    struct jx *x = calloc(1, sizeof(*x));
    if (!x)
        return errmsg_set(err, errlen, -ENOMEM, "out of memory");
    x->t = t;
    x->a.cap = t->o.max_memory;
    x->err = err;
    x->errlen = errlen;
    int rc = 0;
    if (setjmp(x->jb)) {
        rc = x->rc ? x->rc : -EINVAL;
        goto done;
    }
    x->now = time(NULL);
    if (t->o.now) {
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        const char *e = strptime(t->o.now, "%Y-%m-%d %H:%M:%S", &tm);
        if (!e || *e)
            jx_fail(x, -EINVAL, 0, "clock '%s' is not YYYY-MM-DD HH:MM:SS", t->o.now);
        x->now = timegm(&tm);
    }
    x->root = jx_alloc(x, sizeof(*x->root));
    memset(x->root, 0, sizeof(*x->root));
    x->fr = x->root;
    if (vars && json_is_object(vars)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)vars, k, v) frame_set(x, x->root, k, jv_from_json(x, v, 0));
    } else if (vars) {
        jx_fail(x, -EINVAL, 0, "template variables must be a JSON object");
    }
    struct jbuf o = { 0 };
    x->out = &o;
    render_body(x, t->root);
    char *s = malloc(o.n + 1);
    if (!s) {
        rc = errmsg_set(err, errlen, -ENOMEM, "out of memory");
        goto done;
    }
    if (o.n)
        memcpy(s, o.p, o.n);
    s[o.n] = 0;
    *out = s;
    if (out_len)
        *out_len = o.n;
done:
    jarena_free(&x->a);
    free(x);
    return rc;
}
