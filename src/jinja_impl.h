/*
 * jinja_impl.h - internals shared by the files of the Jinja engine
 * (jinja_lex.c: tokens; jinja_parse.c: syntax tree; jinja_value.c: arena,
 * values, str/repr, JSON in and out; jinja_eval.c: statements and
 * expressions; jinja_filters.c: filters, tests, methods and global
 * functions). Nothing outside jinja*.c includes it.
 *
 * Errors inside a render unwind with longjmp to jinja_render (jx_fail): every
 * allocation of a render comes from its arena, so unwinding leaks nothing, and
 * the evaluator reads as the language does instead of as error plumbing.
 */
#ifndef MOESTREAM_JINJA_IMPL_H
#define MOESTREAM_JINJA_IMPL_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "jinja.h"

/* ---- arena: bump allocation in chunks, capped, freed at once ---- */
struct jarena_chunk;
struct jarena {
    struct jarena_chunk *head;
    size_t used_total; /* bytes handed out, compared with cap */
    size_t cap;        /* 0 = unlimited */
};
/* NULL when the cap is reached or malloc fails. */
void *jarena_alloc(struct jarena *a, size_t n);
void jarena_free(struct jarena *a);

/* ---- values ---- */
enum jv_type {
    JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT,
    JV_NS,    /* namespace(): a dict whose attributes `set` may assign */
    JV_MACRO, /* macro or call-block caller */
    JV_FUNC,  /* global function (range, namespace, ...) or bound method */
    JV_LOOP,  /* the `loop` variable of a for */
};

struct jdict;
struct jmacro;
struct jloop;

typedef struct jv {
    int t;        /* enum jv_type */
    int tuple;    /* JV_LIST made as a tuple: prints as (a, b) */
    size_t n;     /* bytes of s (JV_STR, JV_UNDEF name), items of l (JV_LIST) */
    union {
        bool b;
        int64_t i;
        double f;
        const char *s;   /* JV_STR (not NUL-terminated), JV_UNDEF: the missing name */
        struct jv *l;    /* JV_LIST */
        struct jdict *d; /* JV_DICT, JV_NS */
        struct jmacro *m;
        struct jloop *lp;
        const struct jfunc *fn;
    };
} jv;

struct jdict {
    size_t n, cap;
    jv *k, *v;
};

/* ---- syntax tree ---- */
enum jnode_kind {
    /* statements */
    N_BODY, N_TEXT, N_OUTPUT, N_IF, N_FOR, N_SET, N_SETATTR, N_SETBLOCK, N_MACRO, N_CALLBLOCK,
    N_FILTERBLOCK, N_BREAK, N_CONTINUE,
    /* expressions */
    E_LIT, E_NAME, E_LIST, E_DICT, E_ATTR, E_INDEX, E_SLICE, E_CALL, E_FILTER, E_TEST, E_NEG, E_POS,
    E_NOT, E_AND, E_OR, E_BIN, E_CMP, E_COND,
};

enum jop { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CONCAT,
           OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN };

struct jnode {
    int kind; /* enum jnode_kind */
    int op;   /* enum jop (E_BIN, E_CMP); negated (E_TEST); recursive flag */
    int line;
    const char *s; /* name (E_NAME, E_ATTR, E_FILTER, E_TEST, N_SET, N_MACRO ...) or text */
    size_t slen;
    jv lit;        /* E_LIT */
    struct jnode *a, *b, *c; /* operands; N_IF: cond; N_FOR: iter, filter cond */
    struct jnode **kids;     /* body / items / positional args */
    int nkids;
    struct jnode **kids2;    /* else body / dict values / keyword arg values / macro defaults */
    int nkids2;
    const char **names;      /* for targets / macro params / keyword names (NUL-terminated) */
    int nnames;
};

struct jinja_tpl {
    struct jinja_opts o;
    struct jarena arena; /* the tree and its strings */
    struct jnode *root;
};

/* ---- render state ---- */
struct jbuf {
    char *p;
    size_t n, cap;
};

struct jframe {
    struct jframe *parent;
    struct jdict vars;
};

struct jmacro {
    const struct jnode *def;     /* N_MACRO or N_CALLBLOCK */
    struct jframe *scope;        /* frame the body's free names resolve in */
    struct jmacro *caller;       /* for macros invoked by a call block */
};

struct jloop {
    const jv *items;
    size_t n, i;
    int depth;
};

struct jx;
typedef jv (*jfunc_fn)(struct jx *x, jv self, const jv *args, int nargs, const char **kw, const jv *kwv, int nkw,
                       int line);
struct jfunc {
    const char *name;
    jfunc_fn fn;
};

struct jx {
    const struct jinja_tpl *t;
    struct jarena a;
    struct jframe *root;
    jmp_buf jb;
    int rc;
    char *err;
    size_t errlen;
    uint64_t steps;
    int depth;
    int ctl; /* 0, 1 = break, 2 = continue pending */
    time_t now;
    struct jframe *fr;     /* innermost scope */
    struct jbuf *out;      /* where text goes (a macro renders into its own) */
};

/* ---- jinja_value.c ---- */
_Noreturn void jx_fail(struct jx *x, int rc, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void *jx_alloc(struct jx *x, size_t n);
jv jv_undef(const char *name, size_t n);
jv jv_none(void);
jv jv_bool(bool b);
jv jv_int(int64_t i);
jv jv_float(double f);
jv jv_str(struct jx *x, const char *s, size_t n); /* copies */
jv jv_strz(const char *s);                        /* static string, not copied */
jv jv_list(struct jx *x, size_t n);               /* n items, all none */
jv jv_dict(struct jx *x);
void jdict_set(struct jx *x, struct jdict *d, jv k, jv v);
jv *jdict_get(const struct jdict *d, jv k);
jv *jdict_gets(const struct jdict *d, const char *k, size_t n);
const char *jv_type_name(const jv *v);
bool jv_truthy(const jv *v);
bool jv_eq(const jv *a, const jv *b);
int jv_cmp(struct jx *x, const jv *a, const jv *b, int line); /* <0, 0, >0 or jx_fail */
bool jv_is_str(const jv *v, const char *s);
/* str(v) appended to b; repr(v) for the Python repr of containers */
void jv_str_to(struct jx *x, struct jbuf *b, const jv *v);
void jv_repr_to(struct jx *x, struct jbuf *b, const jv *v);
jv jv_tostr(struct jx *x, const jv *v);
struct jtojson {
    int indent;           /* -1: none */
    const char *item_sep; /* ", " or "," when indenting */
    const char *key_sep;
    bool sort_keys;
    bool ensure_ascii;
};
void jv_tojson_to(struct jx *x, struct jbuf *b, const jv *v, const struct jtojson *o, int level, int line);
jv jv_from_json(struct jx *x, const json_t *j, int depth);

void jbuf_put(struct jx *x, struct jbuf *b, const char *s, size_t n);
void jbuf_putc(struct jx *x, struct jbuf *b, char c);
void jbuf_putf(struct jx *x, struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
jv jbuf_take(struct jx *x, struct jbuf *b);

/* UTF-8: code points of s[0..n), byte offset of code point i */
size_t ju_len(const char *s, size_t n);
size_t ju_off(const char *s, size_t n, size_t cp);

/* ---- jinja_eval.c ---- */
jv jx_eval(struct jx *x, const struct jnode *e);
jv jx_call_value(struct jx *x, jv callee, const jv *args, int nargs, const char **kw, const jv *kwv, int nkw, int line);
void jx_step(struct jx *x, int line);
jv jx_getattr(struct jx *x, jv obj, const char *name, size_t n, int line);
jv jx_getitem(struct jx *x, jv obj, jv key, int line);
jv jx_call_macro(struct jx *x, struct jmacro *m, const jv *args, int nargs, const char **kw, const jv *kwv, int nkw,
                 struct jmacro *caller, int line);

/* ---- arguments of filters, methods and globals: positional i or keyword name ---- */
struct jargs {
    const jv *pos;
    int npos;
    const char **kw;
    const jv *kwv;
    int nkw;
};

static inline jv jx_arg(const struct jargs *a, int i, const char *name, jv def)
{
    if (i >= 0 && i < a->npos)
        return a->pos[i];
    for (int k = 0; k < a->nkw; k++)
        if (name && !strcmp(a->kw[k], name))
            return a->kwv[k];
    return def;
}

static inline bool jx_present(const jv *v) { return v->t != JV_UNDEF && v->t != JV_NONE; }

static inline jv jx_want_str(struct jx *x, jv v, const char *what, int line)
{
    if (v.t == JV_UNDEF)
        jx_fail(x, -22 /* EINVAL */, line, "'%.*s' is undefined", (int)(v.s ? v.n : 0), v.s ? v.s : "");
    if (v.t != JV_STR)
        jx_fail(x, -22, line, "%s expects a string, got %s", what, jv_type_name(&v));
    return v;
}

static inline int64_t jx_want_int(struct jx *x, jv v, const char *what, int line)
{
    if (v.t == JV_INT)
        return v.i;
    if (v.t == JV_BOOL)
        return v.b;
    jx_fail(x, -22, line, "%s expects an integer, got %s", what, jv_type_name(&v));
}

/* ---- jinja_methods.c: Python str operations (code points, Python whitespace) ---- */
/* the code point at s[*i] (advancing *i; a bad sequence yields its bits, never reads past n) */
uint32_t ju_dec(const char *s, size_t n, size_t *i);
/* s[a..b) as a string value (no copy) */
static inline jv jx_substr(jv s, size_t a, size_t b) { return (jv){ .t = JV_STR, .s = s.s + a, .n = b - a }; }
/* strip chars (NULL: whitespace) from the left (sides 1), right (2) or both (3) */
jv jx_str_strip(struct jx *x, jv s, const jv *chars, int sides);
/* str.split(sep=None, maxsplit=-1) */
jv jx_str_split(struct jx *x, jv s, jv sep, int64_t maxsplit, int line);
/* str.replace(old, new, count=-1) */
jv jx_str_replace(struct jx *x, jv s, jv old, jv nw, int64_t count);
/* mode 0 lower, 1 upper, 2 capitalize, 3 title */
jv jx_str_case(struct jx *x, jv s, int mode);

/* ---- jinja_filters.c ---- */
/* a value as a list (str: its characters, dict: its keys) or jx_fail */
jv jx_as_list(struct jx *x, jv v, int line);
jv jx_filter(struct jx *x, const char *name, jv v, const jv *args, int nargs, const char **kw, const jv *kwv, int nkw,
             int line);
bool jx_test(struct jx *x, const char *name, jv v, const jv *args, int nargs, int line);
/* ---- jinja_methods.c ---- */
/* a global function by name, or NULL */
const struct jfunc *jx_global(const char *name, size_t n);
/* a method of v by name (str, dict, list, loop), or NULL */
const struct jfunc *jx_method(const jv *v, const char *name, size_t n);

/* ---- jinja_lex.c / jinja_parse.c ---- */
enum tok_type { T_EOF, T_TEXT, T_VBEGIN, T_VEND, T_BBEGIN, T_BEND, T_NAME, T_STR, T_INT, T_FLOAT, T_OP };

struct tok {
    int type;
    int line;
    char op[3];
    const char *s; /* T_TEXT, T_NAME, T_STR: arena copy, NUL-terminated */
    size_t n;
    int64_t i;
    double f;
};

struct parser {
    struct jinja_tpl *t;
    const char *src;
    size_t len;
    struct tok *toks;
    size_t ntok, cap, pos;
    int depth;
    jmp_buf jb;
    int rc;
    char *err;
    size_t errlen;
};

/* one-line error "line N: ..." into the parser's buffer, then unwind */
_Noreturn void jp_fail(struct parser *p, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void *jp_alloc(struct parser *p, size_t n); /* from the template's arena */
char *jp_strdup(struct parser *p, const char *s, size_t n);
void jp_lex(struct parser *p); /* fills p->toks, ending with T_EOF */
int jinja_parse_tree(struct jinja_tpl *t, const char *src, size_t len, char *err, size_t errlen);

#endif
