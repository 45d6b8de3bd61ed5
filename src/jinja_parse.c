/*
 * jinja_parse.c - the parser of the Jinja engine: tokens (jinja_lex.c) in,
 * syntax tree (struct jnode, jinja_impl.h) out.
 *
 * The parser is recursive descent with jinja2's precedence (lowest first):
 * inline if, or, and, not, comparisons and `in`, + -, ~, * / // %, **,
 * unary - +, then postfix (. [] ()) and filters/tests. Nesting is capped at
 * the template's max_depth so a hostile template cannot overflow the stack.
 * Errors (jp_fail, here and in the lexer) unwind with longjmp to
 * jinja_parse_tree, which returns -EINVAL.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"

void jp_fail(struct parser *p, int line, const char *fmt, ...)
{
    if (p->err && p->errlen) {
        int k = snprintf(p->err, p->errlen, "line %d: ", line);
        if (k < 0 || (size_t)k >= p->errlen)
            k = 0;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + k, p->errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    if (!p->rc)
        p->rc = -EINVAL;
    longjmp(p->jb, 1);
}

void *jp_alloc(struct parser *p, size_t n)
{
    void *r = jarena_alloc(&p->t->arena, n ? n : 1);
    if (!r) {
        p->rc = -ENOMEM;
        jp_fail(p, 0, "out of memory");
    }
    return r;
}

char *jp_strdup(struct parser *p, const char *s, size_t n)
{
    char *r = jp_alloc(p, n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

/* ----------------------------------------------------------------- parser */

static struct tok *cur(struct parser *p) { return &p->toks[p->pos]; }
static struct tok *nexttok(struct parser *p)
{
    struct tok *t = &p->toks[p->pos];
    if (t->type != T_EOF)
        p->pos++;
    return t;
}
static bool is_op(struct parser *p, const char *op) { return cur(p)->type == T_OP && !strcmp(cur(p)->op, op); }
static bool is_name(struct parser *p, const char *nm) { return cur(p)->type == T_NAME && !strcmp(cur(p)->s, nm); }
static bool is_name_at(struct parser *p, size_t k, const char *nm)
{
    return p->pos + k < p->ntok && p->toks[p->pos + k].type == T_NAME && !strcmp(p->toks[p->pos + k].s, nm);
}

static const char *tok_desc(const struct tok *t)
{
    switch (t->type) {
    case T_EOF: return "end of template";
    case T_TEXT: return "text";
    case T_VBEGIN: return "'{{'";
    case T_VEND: return "'}}'";
    case T_BBEGIN: return "'{%'";
    case T_BEND: return "'%}'";
    case T_NAME: return t->s;
    case T_STR: return "string literal";
    case T_INT: case T_FLOAT: return "number";
    default: return t->op;
    }
}

static void expect_op(struct parser *p, const char *op)
{
    if (!is_op(p, op))
        jp_fail(p, cur(p)->line, "expected '%s', got %s", op, tok_desc(cur(p)));
    nexttok(p);
}

static void expect_type(struct parser *p, int type, const char *what)
{
    if (cur(p)->type != type)
        jp_fail(p, cur(p)->line, "expected %s, got %s", what, tok_desc(cur(p)));
    nexttok(p);
}

static const char *expect_name(struct parser *p)
{
    if (cur(p)->type != T_NAME)
        jp_fail(p, cur(p)->line, "expected a name, got %s", tok_desc(cur(p)));
    return nexttok(p)->s;
}

static struct jnode *mk(struct parser *p, int kind, int line)
{
    struct jnode *n = jp_alloc(p, sizeof(*n));
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->line = line;
    return n;
}

/* growable node / name vectors, copied into the arena when done */
struct nvec {
    struct jnode **v;
    const char **nm;
    int n, cap;
};
static void nvec_push(struct parser *p, struct nvec *v, struct jnode *n, const char *nm)
{
    if (v->n == v->cap) {
        int nc = v->cap ? v->cap * 2 : 8;
        struct jnode **nv = jp_alloc(p, (size_t)nc * sizeof(*nv));
        const char **nn = jp_alloc(p, (size_t)nc * sizeof(*nn));
        if (v->n) {
            memcpy(nv, v->v, (size_t)v->n * sizeof(*nv));
            memcpy(nn, v->nm, (size_t)v->n * sizeof(*nn));
        }
        v->v = nv;
        v->nm = nn;
        v->cap = nc;
    }
    v->v[v->n] = n;
    v->nm[v->n] = nm;
    v->n++;
}

static void enter(struct parser *p)
{
    if (++p->depth > p->t->o.max_depth)
        jp_fail(p, cur(p)->line, "template nesting deeper than %d", p->t->o.max_depth);
}

static struct jnode *parse_expr(struct parser *p, bool with_cond);
static struct jnode *parse_unary(struct parser *p, bool with_filter);
static struct jnode *parse_primary(struct parser *p);
static struct jnode *parse_postfix(struct parser *p, struct jnode *n);

/* (args): positional and name=value */
static void parse_call_args(struct parser *p, struct jnode *call)
{
    struct nvec pos = { 0 }, kw = { 0 };
    expect_op(p, "(");
    while (!is_op(p, ")")) {
        if (pos.n || kw.n)
            expect_op(p, ",");
        if (is_op(p, ")"))
            break;
        if (cur(p)->type == T_NAME && p->pos + 1 < p->ntok && p->toks[p->pos + 1].type == T_OP &&
            !strcmp(p->toks[p->pos + 1].op, "=")) {
            const char *nm = nexttok(p)->s;
            nexttok(p);
            nvec_push(p, &kw, parse_expr(p, true), nm);
        } else {
            if (kw.n)
                jp_fail(p, cur(p)->line, "positional argument after a keyword argument");
            nvec_push(p, &pos, parse_expr(p, true), NULL);
        }
    }
    nexttok(p);
    call->kids = pos.v;
    call->nkids = pos.n;
    call->kids2 = kw.v;
    call->nkids2 = kw.n;
    call->names = kw.nm;
    call->nnames = kw.n;
}

static struct jnode *parse_filter_expr(struct parser *p, struct jnode *n)
{
    for (;;) {
        if (is_op(p, "|")) {
            int line = nexttok(p)->line;
            struct jnode *f = mk(p, E_FILTER, line);
            f->s = expect_name(p);
            f->a = n;
            if (is_op(p, "("))
                parse_call_args(p, f);
            n = f;
        } else if (is_name(p, "is")) {
            int line = nexttok(p)->line;
            struct jnode *t = mk(p, E_TEST, line);
            if (is_name(p, "not")) {
                nexttok(p);
                t->op = 1;
            }
            t->s = expect_name(p);
            t->a = n;
            struct tok *c = cur(p);
            if (is_op(p, "(")) {
                parse_call_args(p, t);
            } else if ((c->type == T_NAME || c->type == T_STR || c->type == T_INT || c->type == T_FLOAT ||
                        is_op(p, "[") || is_op(p, "{")) &&
                       !is_name(p, "else") && !is_name(p, "or") && !is_name(p, "and")) {
                if (is_name(p, "is"))
                    jp_fail(p, c->line, "tests cannot be chained with 'is'");
                struct nvec a = { 0 };
                nvec_push(p, &a, parse_postfix(p, parse_primary(p)), NULL);
                t->kids = a.v;
                t->nkids = 1;
            }
            n = t;
        } else if (is_op(p, "(")) {
            struct jnode *c = mk(p, E_CALL, cur(p)->line);
            c->a = n;
            parse_call_args(p, c);
            n = c;
        } else {
            return n;
        }
    }
}

static struct jnode *parse_postfix(struct parser *p, struct jnode *n)
{
    for (;;) {
        int line = cur(p)->line;
        if (is_op(p, ".")) {
            nexttok(p);
            struct jnode *a = mk(p, E_ATTR, line);
            a->a = n;
            if (cur(p)->type == T_INT) { /* x.0 is x[0] */
                a->kind = E_INDEX;
                a->b = mk(p, E_LIT, line);
                a->b->lit = jv_int(nexttok(p)->i);
            } else {
                a->s = expect_name(p);
                a->slen = strlen(a->s);
            }
            n = a;
        } else if (is_op(p, "[")) {
            nexttok(p);
            enter(p);
            struct jnode *start = NULL, *stop = NULL, *step = NULL;
            bool slice = false;
            if (!is_op(p, ":"))
                start = parse_expr(p, true);
            if (is_op(p, ":")) {
                slice = true;
                nexttok(p);
                if (!is_op(p, "]") && !is_op(p, ":"))
                    stop = parse_expr(p, true);
                if (is_op(p, ":")) {
                    nexttok(p);
                    if (!is_op(p, "]"))
                        step = parse_expr(p, true);
                }
            }
            expect_op(p, "]");
            p->depth--;
            struct jnode *s = mk(p, slice ? E_SLICE : E_INDEX, line);
            s->a = n;
            if (slice) {
                struct nvec v = { 0 };
                nvec_push(p, &v, start, NULL);
                nvec_push(p, &v, stop, NULL);
                nvec_push(p, &v, step, NULL);
                s->kids = v.v;
                s->nkids = 3;
            } else {
                s->b = start;
            }
            n = s;
        } else if (is_op(p, "(")) {
            struct jnode *c = mk(p, E_CALL, line);
            c->a = n;
            parse_call_args(p, c);
            n = c;
        } else {
            return n;
        }
    }
}

static struct jnode *parse_primary(struct parser *p)
{
    struct tok *t = cur(p);
    int line = t->line;
    struct jnode *n;
    enter(p);
    if (t->type == T_NAME) {
        nexttok(p);
        n = mk(p, E_LIT, line);
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True")) {
            n->lit = jv_bool(true);
        } else if (!strcmp(t->s, "false") || !strcmp(t->s, "False")) {
            n->lit = jv_bool(false);
        } else if (!strcmp(t->s, "none") || !strcmp(t->s, "None")) {
            n->lit = jv_none();
        } else {
            n->kind = E_NAME;
            n->s = t->s;
            n->slen = t->n;
        }
    } else if (t->type == T_STR) {
        size_t total = 0;
        for (size_t k = p->pos; p->toks[k].type == T_STR; k++)
            total += p->toks[k].n;
        char *s = jp_alloc(p, total + 1);
        size_t o = 0;
        while (cur(p)->type == T_STR) {
            memcpy(s + o, cur(p)->s, cur(p)->n);
            o += cur(p)->n;
            nexttok(p);
        }
        s[o] = 0;
        n = mk(p, E_LIT, line);
        n->lit.t = JV_STR;
        n->lit.s = s;
        n->lit.n = o;
    } else if (t->type == T_INT || t->type == T_FLOAT) {
        nexttok(p);
        n = mk(p, E_LIT, line);
        n->lit = t->type == T_INT ? jv_int(t->i) : jv_float(t->f);
    } else if (is_op(p, "(")) {
        nexttok(p);
        if (is_op(p, ")")) {
            nexttok(p);
            n = mk(p, E_LIST, line);
            n->op = 1;
        } else {
            n = parse_expr(p, true);
            if (is_op(p, ",")) {
                struct nvec v = { 0 };
                nvec_push(p, &v, n, NULL);
                while (is_op(p, ",")) {
                    nexttok(p);
                    if (is_op(p, ")"))
                        break;
                    nvec_push(p, &v, parse_expr(p, true), NULL);
                }
                n = mk(p, E_LIST, line);
                n->op = 1;
                n->kids = v.v;
                n->nkids = v.n;
            }
            expect_op(p, ")");
        }
    } else if (is_op(p, "[")) {
        nexttok(p);
        struct nvec v = { 0 };
        while (!is_op(p, "]")) {
            if (v.n)
                expect_op(p, ",");
            if (is_op(p, "]"))
                break;
            nvec_push(p, &v, parse_expr(p, true), NULL);
        }
        nexttok(p);
        n = mk(p, E_LIST, line);
        n->kids = v.v;
        n->nkids = v.n;
    } else if (is_op(p, "{")) {
        nexttok(p);
        struct nvec k = { 0 }, v = { 0 };
        while (!is_op(p, "}")) {
            if (k.n)
                expect_op(p, ",");
            if (is_op(p, "}"))
                break;
            nvec_push(p, &k, parse_expr(p, true), NULL);
            expect_op(p, ":");
            nvec_push(p, &v, parse_expr(p, true), NULL);
        }
        nexttok(p);
        n = mk(p, E_DICT, line);
        n->kids = k.v;
        n->nkids = k.n;
        n->kids2 = v.v;
        n->nkids2 = v.n;
    } else {
        jp_fail(p, line, "unexpected %s in expression", tok_desc(t));
    }
    p->depth--;
    return n;
}

static struct jnode *parse_unary(struct parser *p, bool with_filter)
{
    int line = cur(p)->line;
    struct jnode *n;
    enter(p);
    if (is_op(p, "-") || is_op(p, "+")) {
        bool neg = is_op(p, "-");
        nexttok(p);
        n = mk(p, neg ? E_NEG : E_POS, line);
        n->a = parse_unary(p, false);
    } else {
        n = parse_primary(p);
    }
    n = parse_postfix(p, n);
    if (with_filter)
        n = parse_filter_expr(p, n);
    p->depth--;
    return n;
}

static struct jnode *bin(struct parser *p, int kind, int op, struct jnode *a, struct jnode *b, int line)
{
    struct jnode *n = mk(p, kind, line);
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static struct jnode *parse_pow(struct parser *p)
{
    struct jnode *a = parse_unary(p, true);
    while (is_op(p, "**")) {
        int line = nexttok(p)->line;
        a = bin(p, E_BIN, OP_POW, a, parse_unary(p, true), line);
    }
    return a;
}

static struct jnode *parse_math2(struct parser *p)
{
    struct jnode *a = parse_pow(p);
    for (;;) {
        int op = is_op(p, "*") ? OP_MUL : is_op(p, "/") ? OP_DIV : is_op(p, "//") ? OP_FLOORDIV : is_op(p, "%") ? OP_MOD : -1;
        if (op < 0)
            return a;
        int line = nexttok(p)->line;
        a = bin(p, E_BIN, op, a, parse_pow(p), line);
    }
}

static struct jnode *parse_concat(struct parser *p)
{
    struct jnode *a = parse_math2(p);
    while (is_op(p, "~")) {
        int line = nexttok(p)->line;
        a = bin(p, E_BIN, OP_CONCAT, a, parse_math2(p), line);
    }
    return a;
}

static struct jnode *parse_math1(struct parser *p)
{
    struct jnode *a = parse_concat(p);
    for (;;) {
        int op = is_op(p, "+") ? OP_ADD : is_op(p, "-") ? OP_SUB : -1;
        if (op < 0)
            return a;
        int line = nexttok(p)->line;
        a = bin(p, E_BIN, op, a, parse_concat(p), line);
    }
}

static struct jnode *parse_compare(struct parser *p)
{
    struct jnode *a = parse_math1(p);
    for (;;) {
        int line = cur(p)->line, op = -1;
        static const struct { const char *s; int op; } ops[] = {
            { "==", OP_EQ }, { "!=", OP_NE }, { "<", OP_LT }, { "<=", OP_LE }, { ">", OP_GT }, { ">=", OP_GE },
        };
        for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++)
            if (is_op(p, ops[k].s))
                op = ops[k].op;
        if (op >= 0) {
            nexttok(p);
        } else if (is_name(p, "in")) {
            nexttok(p);
            op = OP_IN;
        } else if (is_name(p, "not") && is_name_at(p, 1, "in")) {
            nexttok(p);
            nexttok(p);
            op = OP_NOTIN;
        } else {
            return a;
        }
        a = bin(p, E_CMP, op, a, parse_math1(p), line);
    }
}

static struct jnode *parse_not(struct parser *p)
{
    if (is_name(p, "not")) {
        int line = nexttok(p)->line;
        enter(p);
        struct jnode *n = mk(p, E_NOT, line);
        n->a = parse_not(p);
        p->depth--;
        return n;
    }
    return parse_compare(p);
}

static struct jnode *parse_and(struct parser *p)
{
    struct jnode *a = parse_not(p);
    while (is_name(p, "and")) {
        int line = nexttok(p)->line;
        a = bin(p, E_AND, 0, a, parse_not(p), line);
    }
    return a;
}

static struct jnode *parse_or(struct parser *p)
{
    struct jnode *a = parse_and(p);
    while (is_name(p, "or")) {
        int line = nexttok(p)->line;
        a = bin(p, E_OR, 0, a, parse_and(p), line);
    }
    return a;
}

static struct jnode *parse_expr(struct parser *p, bool with_cond)
{
    enter(p);
    struct jnode *a = parse_or(p);
    while (with_cond && is_name(p, "if")) {
        int line = nexttok(p)->line;
        struct jnode *c = mk(p, E_COND, line);
        c->a = parse_or(p);
        c->b = a;
        if (is_name(p, "else")) {
            nexttok(p);
            c->c = parse_expr(p, true);
        }
        a = c;
    }
    p->depth--;
    return a;
}

/* An expression, or a tuple `a, b` (set x = a, b) as a list. */
static struct jnode *parse_tuple_expr(struct parser *p, bool with_cond)
{
    int line = cur(p)->line;
    struct jnode *a = parse_expr(p, with_cond);
    if (!is_op(p, ","))
        return a;
    struct nvec v = { 0 };
    nvec_push(p, &v, a, NULL);
    while (is_op(p, ",")) {
        nexttok(p);
        nvec_push(p, &v, parse_expr(p, with_cond), NULL);
    }
    struct jnode *l = mk(p, E_LIST, line);
    l->op = 1;
    l->kids = v.v;
    l->nkids = v.n;
    return l;
}

/* ------------------------------------------------------------- statements */

static struct jnode *parse_body(struct parser *p, const char *const *stops, const char **stopped);

static void end_tag(struct parser *p) { expect_type(p, T_BEND, "'%}'"); }

/* Consumes `{% name` of an end/else tag the body stopped at. */
static const char *take_stop(struct parser *p) { return nexttok(p)->s; }

static struct jnode *body_until(struct parser *p, const char *const *stops, const char **stopped)
{
    return parse_body(p, stops, stopped);
}

static struct jnode *parse_if(struct parser *p, int line)
{
    static const char *const stops[] = { "elif", "else", "endif", NULL };
    struct jnode *n = mk(p, N_IF, line);
    n->a = parse_expr(p, true);
    end_tag(p);
    const char *st;
    n->b = body_until(p, stops, &st);
    take_stop(p);
    if (!strcmp(st, "elif")) {
        n->c = parse_if(p, cur(p)->line);
        return n;
    }
    if (!strcmp(st, "else")) {
        static const char *const end[] = { "endif", NULL };
        end_tag(p);
        n->c = body_until(p, end, &st);
        take_stop(p);
    }
    end_tag(p);
    return n;
}

static struct jnode *parse_for(struct parser *p, int line)
{
    static const char *const stops[] = { "else", "endfor", NULL };
    struct jnode *n = mk(p, N_FOR, line);
    struct nvec t = { 0 };
    bool paren = is_op(p, "(");
    if (paren)
        nexttok(p);
    do {
        if (t.n)
            nexttok(p);
        nvec_push(p, &t, NULL, expect_name(p));
    } while (is_op(p, ","));
    if (paren)
        expect_op(p, ")");
    n->names = t.nm;
    n->nnames = t.n;
    if (!is_name(p, "in"))
        jp_fail(p, cur(p)->line, "expected 'in' in for, got %s", tok_desc(cur(p)));
    nexttok(p);
    n->a = parse_tuple_expr(p, false);
    if (is_name(p, "if")) {
        nexttok(p);
        n->b = parse_expr(p, true);
    }
    if (is_name(p, "recursive"))
        jp_fail(p, cur(p)->line, "recursive for loops are not supported");
    end_tag(p);
    const char *st;
    struct jnode *body = body_until(p, stops, &st);
    n->kids = body->kids;
    n->nkids = body->nkids;
    take_stop(p);
    if (!strcmp(st, "else")) {
        static const char *const end[] = { "endfor", NULL };
        end_tag(p);
        struct jnode *eb = body_until(p, end, &st);
        n->kids2 = eb->kids;
        n->nkids2 = eb->nkids;
        take_stop(p);
    }
    end_tag(p);
    return n;
}

static struct jnode *parse_set(struct parser *p, int line)
{
    const char *name = expect_name(p);
    if (is_op(p, ".")) {
        nexttok(p);
        struct jnode *n = mk(p, N_SETATTR, line);
        n->s = name;
        struct nvec v = { 0 };
        nvec_push(p, &v, NULL, expect_name(p));
        n->names = v.nm;
        n->nnames = 1;
        expect_op(p, "=");
        n->a = parse_tuple_expr(p, true);
        end_tag(p);
        return n;
    }
    struct nvec t = { 0 };
    nvec_push(p, &t, NULL, name);
    while (is_op(p, ",")) {
        nexttok(p);
        nvec_push(p, &t, NULL, expect_name(p));
    }
    if (is_op(p, "=")) {
        nexttok(p);
        struct jnode *n = mk(p, N_SET, line);
        n->names = t.nm;
        n->nnames = t.n;
        n->a = parse_tuple_expr(p, true);
        end_tag(p);
        return n;
    }
    if (t.n != 1)
        jp_fail(p, line, "a block set assigns one name");
    struct jnode *n = mk(p, N_SETBLOCK, line);
    n->names = t.nm;
    n->nnames = 1;
    if (is_op(p, "|")) { /* {% set x | filter %}: the filters apply to the body */
        struct jnode *ph = mk(p, E_LIT, line);
        ph->lit = jv_none();
        n->a = parse_filter_expr(p, ph);
        n->c = ph;
    }
    end_tag(p);
    static const char *const stops[] = { "endset", NULL };
    const char *st;
    n->b = body_until(p, stops, &st);
    take_stop(p);
    end_tag(p);
    return n;
}

/* (a, b=default, ...) of a macro or a call block's caller */
static void parse_params(struct parser *p, struct jnode *n)
{
    struct nvec names = { 0 }, defs = { 0 };
    expect_op(p, "(");
    while (!is_op(p, ")")) {
        if (names.n)
            expect_op(p, ",");
        if (is_op(p, ")"))
            break;
        const char *nm = expect_name(p);
        struct jnode *d = NULL;
        if (is_op(p, "=")) {
            nexttok(p);
            d = parse_expr(p, true);
        }
        nvec_push(p, &names, NULL, nm);
        nvec_push(p, &defs, d, NULL);
    }
    nexttok(p);
    n->names = names.nm;
    n->nnames = names.n;
    n->kids2 = defs.v;
    n->nkids2 = defs.n;
}

static struct jnode *parse_macro(struct parser *p, int line)
{
    struct jnode *n = mk(p, N_MACRO, line);
    n->s = expect_name(p);
    n->slen = strlen(n->s);
    parse_params(p, n);
    end_tag(p);
    static const char *const stops[] = { "endmacro", NULL };
    const char *st;
    n->b = body_until(p, stops, &st);
    take_stop(p);
    if (cur(p)->type == T_NAME)
        nexttok(p);
    end_tag(p);
    return n;
}

static struct jnode *parse_callblock(struct parser *p, int line)
{
    struct jnode *n = mk(p, N_CALLBLOCK, line);
    n->s = "caller";
    n->slen = 6;
    if (is_op(p, "("))
        parse_params(p, n);
    n->a = parse_expr(p, true);
    if (n->a->kind != E_CALL)
        jp_fail(p, line, "expected a call after 'call'");
    end_tag(p);
    static const char *const stops[] = { "endcall", NULL };
    const char *st;
    n->b = body_until(p, stops, &st);
    take_stop(p);
    end_tag(p);
    return n;
}

static struct jnode *parse_filterblock(struct parser *p, int line)
{
    struct jnode *n = mk(p, N_FILTERBLOCK, line);
    struct jnode *ph = mk(p, E_LIT, line);
    ph->lit = jv_none();
    /* the filter chain starts at a placeholder the body's text replaces */
    struct jnode *f = ph;
    do {
        if (f != ph)
            expect_op(p, "|");
        struct jnode *g = mk(p, E_FILTER, cur(p)->line);
        g->s = expect_name(p);
        g->a = f;
        if (is_op(p, "("))
            parse_call_args(p, g);
        f = g;
    } while (is_op(p, "|"));
    n->a = f;
    n->c = ph;
    end_tag(p);
    static const char *const stops[] = { "endfilter", NULL };
    const char *st;
    n->b = body_until(p, stops, &st);
    take_stop(p);
    end_tag(p);
    return n;
}

static struct jnode *parse_statement(struct parser *p)
{
    int line = cur(p)->line;
    const char *kw = expect_name(p);
    enter(p);
    struct jnode *n;
    if (!strcmp(kw, "if")) {
        n = parse_if(p, line);
    } else if (!strcmp(kw, "for")) {
        n = parse_for(p, line);
    } else if (!strcmp(kw, "set")) {
        n = parse_set(p, line);
    } else if (!strcmp(kw, "macro")) {
        n = parse_macro(p, line);
    } else if (!strcmp(kw, "call")) {
        n = parse_callblock(p, line);
    } else if (!strcmp(kw, "filter")) {
        n = parse_filterblock(p, line);
    } else if (!strcmp(kw, "break") || !strcmp(kw, "continue")) {
        n = mk(p, kw[0] == 'b' ? N_BREAK : N_CONTINUE, line);
        end_tag(p);
    } else if (!strcmp(kw, "generation")) { /* HF's assistant-mask extension: renders its body */
        end_tag(p);
        static const char *const stops[] = { "endgeneration", NULL };
        const char *st;
        n = body_until(p, stops, &st);
        take_stop(p);
        end_tag(p);
    } else {
        jp_fail(p, line, "unknown tag '%s'", kw);
    }
    p->depth--;
    return n;
}

static struct jnode *parse_body(struct parser *p, const char *const *stops, const char **stopped)
{
    struct nvec v = { 0 };
    int line = cur(p)->line;
    for (;;) {
        struct tok *t = cur(p);
        if (t->type == T_EOF) {
            if (stops) {
                int k = 0;
                while (stops[k + 1])
                    k++;
                jp_fail(p, t->line, "unexpected end of template, expected '%s'", stops[k]);
            }
            break;
        }
        if (t->type == T_TEXT) {
            struct jnode *n = mk(p, N_TEXT, t->line);
            n->s = t->s;
            n->slen = t->n;
            nexttok(p);
            nvec_push(p, &v, n, NULL);
        } else if (t->type == T_VBEGIN) {
            nexttok(p);
            struct jnode *n = mk(p, N_OUTPUT, t->line);
            n->a = parse_tuple_expr(p, true);
            expect_type(p, T_VEND, "'}}'");
            nvec_push(p, &v, n, NULL);
        } else if (t->type == T_BBEGIN) {
            nexttok(p);
            if (cur(p)->type == T_NAME && stops) {
                bool hit = false;
                for (int k = 0; stops[k]; k++)
                    if (!strcmp(cur(p)->s, stops[k])) {
                        *stopped = stops[k];
                        hit = true;
                    }
                if (hit)
                    break;
            }
            if (cur(p)->type == T_NAME &&
                (!strncmp(cur(p)->s, "end", 3) || !strcmp(cur(p)->s, "else") || !strcmp(cur(p)->s, "elif")))
                jp_fail(p, cur(p)->line, "unexpected '%s'", cur(p)->s);
            nvec_push(p, &v, parse_statement(p), NULL);
        } else {
            jp_fail(p, t->line, "unexpected %s", tok_desc(t));
        }
    }
    struct jnode *b = mk(p, N_BODY, line);
    b->kids = v.v;
    b->nkids = v.n;
    return b;
}

int jinja_parse_tree(struct jinja_tpl *t, const char *src, size_t len, char *err, size_t errlen)
{
    struct parser p = { .t = t, .src = src, .len = len, .err = err, .errlen = errlen };
    if (setjmp(p.jb)) {
        free(p.toks);
        return p.rc ? p.rc : -EINVAL;
    }
    jp_lex(&p);
    t->root = parse_body(&p, NULL, NULL);
    free(p.toks);
    return 0;
}
