/*
 * jinja_lex.c - the lexer of the Jinja engine: template text in, tokens
 * (struct tok, jinja_impl.h) out, with jinja2 3.1's whitespace control:
 * `{%-` strips all whitespace before a tag, `-%}` all whitespace after it;
 * lstrip_blocks strips spaces and tabs between the start of a line and a
 * block tag or comment (not `{{`, not after `{%+`); trim_blocks drops the
 * first newline after a block tag or comment; one trailing newline of the
 * template is dropped (keep_trailing_newline=False). String literals are
 * decoded as Python's unicode-escape. Errors unwind through jp_fail.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"

/* ------------------------------------------------------------------ lexer */

static struct tok *push_tok(struct parser *p, int type, int line)
{
    if (p->ntok == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 256;
        struct tok *nt = realloc(p->toks, nc * sizeof(*nt));
        if (!nt) {
            p->rc = -ENOMEM;
            jp_fail(p, line, "out of memory");
        }
        p->toks = nt;
        p->cap = nc;
    }
    struct tok *t = &p->toks[p->ntok++];
    memset(t, 0, sizeof(*t));
    t->type = type;
    t->line = line;
    return t;
}

static int line_at(const struct parser *p, size_t off, size_t *cache_off, int *cache_line)
{
    for (size_t i = *cache_off; i < off; i++)
        if (p->src[i] == '\n')
            (*cache_line)++;
    *cache_off = off;
    return *cache_line;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static bool is_id0(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_dig(char c) { return c >= '0' && c <= '9'; }

static void put_utf8(char *o, size_t *k, uint32_t cp)
{
    if (cp < 0x80) {
        o[(*k)++] = (char)cp;
    } else if (cp < 0x800) {
        o[(*k)++] = (char)(0xC0 | (cp >> 6));
        o[(*k)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        o[(*k)++] = (char)(0xE0 | (cp >> 12));
        o[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        o[(*k)++] = (char)(0xF0 | (cp >> 18));
        o[(*k)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A string literal at src[i] (quote q); Python's unicode-escape decoding as
 * jinja2 applies it. Returns the index after the closing quote. */
static size_t lex_string(struct parser *p, size_t i, int line, struct tok *t)
{
    char q = p->src[i++];
    size_t start = i;
    while (i < p->len && p->src[i] != q) {
        if (p->src[i] == '\\' && i + 1 < p->len)
            i++;
        i++;
    }
    if (i >= p->len)
        jp_fail(p, line, "unterminated string literal");
    size_t n = i - start;
    char *o = jp_alloc(p, n * 2 + 1); /* an escape never grows by more than 2x (\x80 -> 2 bytes) */
    size_t k = 0;
    for (size_t j = start; j < i; j++) {
        char c = p->src[j];
        if (c != '\\') {
            o[k++] = c;
            continue;
        }
        char e = p->src[++j];
        int nd = 0;
        switch (e) {
        case 'n': o[k++] = '\n'; break;
        case 't': o[k++] = '\t'; break;
        case 'r': o[k++] = '\r'; break;
        case '\\': o[k++] = '\\'; break;
        case '\'': o[k++] = '\''; break;
        case '"': o[k++] = '"'; break;
        case 'a': o[k++] = '\a'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'v': o[k++] = '\v'; break;
        case '\n': break;
        case 'x': nd = 2; break;
        case 'u': nd = 4; break;
        case 'U': nd = 8; break;
        default:
            if (e >= '0' && e <= '7') {
                uint32_t cp = 0;
                int m = 0;
                while (m < 3 && j < i && p->src[j] >= '0' && p->src[j] <= '7') {
                    cp = cp * 8 + (uint32_t)(p->src[j] - '0');
                    j++;
                    m++;
                }
                j--;
                put_utf8(o, &k, cp);
            } else {
                o[k++] = '\\';
                o[k++] = e;
            }
        }
        if (nd) {
            uint32_t cp = 0;
            for (int m = 0; m < nd; m++) {
                int h = j + 1 + (size_t)m < i ? hexval(p->src[j + 1 + m]) : -1;
                if (h < 0)
                    jp_fail(p, line, "truncated \\%c escape in string literal", e);
                cp = cp * 16 + (uint32_t)h;
            }
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                jp_fail(p, line, "invalid code point U+%X in string literal", (unsigned)cp);
            j += (size_t)nd;
            put_utf8(o, &k, cp);
        }
    }
    o[k] = 0;
    t->s = o;
    t->n = k;
    return i + 1;
}

/* Tokens of one tag's inside, from src[i] to its end marker. Returns the
 * index after the marker; *strip_after tells whether it was `-%}`/`-}}`,
 * *keep_nl whether it was `+%}`. */
static size_t lex_tag(struct parser *p, size_t i, bool block, int line, bool *strip_after, bool *keep_nl)
{
    char close = block ? '%' : '}';
    for (;;) {
        while (i < p->len && is_ws(p->src[i])) {
            if (p->src[i] == '\n')
                line++;
            i++;
        }
        if (i >= p->len)
            jp_fail(p, line, "unexpected end of template inside a %s", block ? "block tag" : "variable tag");
        const char *s = p->src + i;
        size_t left = p->len - i;
        if ((s[0] == '-' || s[0] == '+') && left >= 3 && s[1] == close && s[2] == '}') {
            *strip_after = s[0] == '-';
            *keep_nl = s[0] == '+';
            push_tok(p, block ? T_BEND : T_VEND, line);
            return i + 3;
        }
        if (left >= 2 && s[0] == close && s[1] == '}') {
            push_tok(p, block ? T_BEND : T_VEND, line);
            return i + 2;
        }
        if (is_id0(s[0])) {
            size_t j = i;
            while (j < p->len && (is_id0(p->src[j]) || is_dig(p->src[j])))
                j++;
            struct tok *t = push_tok(p, T_NAME, line);
            t->s = jp_strdup(p, s, j - i);
            t->n = j - i;
            i = j;
            continue;
        }
        if (is_dig(s[0])) {
            size_t j = i;
            bool fl = false;
            while (j < p->len && (is_dig(p->src[j]) || p->src[j] == '_'))
                j++;
            if (j + 1 < p->len && p->src[j] == '.' && is_dig(p->src[j + 1])) {
                fl = true;
                j++;
                while (j < p->len && (is_dig(p->src[j]) || p->src[j] == '_'))
                    j++;
            }
            if (j < p->len && (p->src[j] == 'e' || p->src[j] == 'E')) {
                size_t k = j + 1;
                if (k < p->len && (p->src[k] == '+' || p->src[k] == '-'))
                    k++;
                if (k < p->len && is_dig(p->src[k])) {
                    fl = true;
                    j = k;
                    while (j < p->len && is_dig(p->src[j]))
                        j++;
                }
            }
            char buf[64];
            size_t k = 0;
            for (size_t m = i; m < j && k < sizeof(buf) - 1; m++)
                if (p->src[m] != '_')
                    buf[k++] = p->src[m];
            buf[k] = 0;
            struct tok *t = push_tok(p, fl ? T_FLOAT : T_INT, line);
            if (fl) {
                t->f = strtod(buf, NULL);
            } else {
                errno = 0;
                long long v = strtoll(buf, NULL, 10);
                if (errno || j - i >= sizeof(buf) - 1)
                    jp_fail(p, line, "integer literal %s is out of range", buf);
                t->i = v;
            }
            i = j;
            continue;
        }
        if (s[0] == '\'' || s[0] == '"') {
            struct tok *t = push_tok(p, T_STR, line);
            i = lex_string(p, i, line, t);
            continue;
        }
        static const char *const two[] = { "//", "**", "==", "!=", "<=", ">=" };
        struct tok *t = NULL;
        for (size_t k = 0; k < sizeof(two) / sizeof(two[0]); k++)
            if (left >= 2 && s[0] == two[k][0] && s[1] == two[k][1]) {
                t = push_tok(p, T_OP, line);
                memcpy(t->op, s, 2);
                i += 2;
                break;
            }
        if (t)
            continue;
        if (strchr("+-*/%~<>=.,:|()[]{}", s[0])) {
            t = push_tok(p, T_OP, line);
            t->op[0] = s[0];
            i++;
            continue;
        }
        jp_fail(p, line, "unexpected character '%c' in tag", s[0]);
    }
}

void jp_lex(struct parser *p)
{
    size_t pos = 0, lc_off = 0;
    int lc_line = 1;
    bool line_starting = true;
    /* as jinja2: every \r\n and \r becomes \n first (in text and in
     * literals alike), then one trailing newline goes
     * (keep_trailing_newline=False) */
    char *norm = jp_alloc(p, p->len + 1);
    size_t len = 0;
    for (size_t i = 0; i < p->len; i++) {
        if (p->src[i] == '\r') {
            norm[len++] = '\n';
            if (i + 1 < p->len && p->src[i + 1] == '\n')
                i++;
        } else {
            norm[len++] = p->src[i];
        }
    }
    if (len && norm[len - 1] == '\n')
        len--;
    norm[len] = 0;
    p->src = norm;
    p->len = len;
    while (pos < len) {
        size_t q = pos;
        while (q + 1 < len && !(p->src[q] == '{' && (p->src[q + 1] == '{' || p->src[q + 1] == '%' || p->src[q + 1] == '#')))
            q++;
        if (q + 1 >= len)
            q = len;
        size_t tend = q;
        char kind = q < len ? p->src[q + 1] : 0;
        char sign = q + 2 < len ? p->src[q + 2] : 0;
        if (kind) {
            if (sign == '-') {
                while (tend > pos && is_ws(p->src[tend - 1]))
                    tend--;
            } else if (sign != '+' && p->t->o.lstrip_blocks && kind != '{') {
                size_t l = tend;
                while (l > pos && p->src[l - 1] != '\n')
                    l--;
                bool had_nl = l > pos;
                if (had_nl || line_starting) {
                    bool all_ws = true;
                    for (size_t m = l; m < tend; m++)
                        if (!is_ws(p->src[m]))
                            all_ws = false;
                    if (all_ws)
                        tend = l;
                }
            }
        }
        if (tend > pos) {
            struct tok *t = push_tok(p, T_TEXT, line_at(p, pos, &lc_off, &lc_line));
            t->s = jp_strdup(p, p->src + pos, tend - pos);
            t->n = tend - pos;
        }
        if (!kind)
            break;
        int line = line_at(p, q, &lc_off, &lc_line);
        size_t i = q + 2 + (sign == '-' || sign == '+');
        bool strip_after = false, keep_nl = false;
        if (kind == '#') {
            size_t e = i;
            while (e + 1 < len && !(p->src[e] == '#' && p->src[e + 1] == '}'))
                e++;
            if (e + 1 >= len)
                jp_fail(p, line, "unterminated comment");
            strip_after = e > i && p->src[e - 1] == '-';
            keep_nl = e > i && p->src[e - 1] == '+';
            i = e + 2;
        } else {
            push_tok(p, kind == '%' ? T_BBEGIN : T_VBEGIN, line);
            i = lex_tag(p, i, kind == '%', line, &strip_after, &keep_nl);
        }
        size_t after = i;
        if (strip_after) {
            while (i < len && is_ws(p->src[i]))
                i++;
        } else if (kind != '{' && p->t->o.trim_blocks && !keep_nl && i < len && p->src[i] == '\n') {
            i++;
        }
        line_starting = i > after ? p->src[i - 1] == '\n' : false;
        pos = i;
    }
    push_tok(p, T_EOF, line_at(p, len, &lc_off, &lc_line));
}

