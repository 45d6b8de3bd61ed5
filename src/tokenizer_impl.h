/*
 * tokenizer_impl.h - internals shared by tokenizer.c, tokenizer_bpe.c and
 * tokenizer_spm.c: the vocabulary layout, the per-call scratch, the merge
 * heap and small UTF-8 helpers. Nothing outside the tokenizer includes it.
 */
#ifndef MOESTREAM_TOKENIZER_IMPL_H
#define MOESTREAM_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8

#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errmsg.h"

#include "tokenizer.h"

#define TOK_MAX_REGEX 6
#define TOK_FLAG_LSTRIP 1u /* strip ASCII whitespace left of this special token */
#define TOK_FLAG_RSTRIP 2u /* ... and right of it */
#define TOK_FLAG_EOG 4u    /* ends generation */
#define TOK_DEAD (-2)      /* symbol merged into its left neighbour */

struct tok_token {
    uint32_t off;   /* into tokenizer.text */
    uint32_t len;   /* bytes, without the NUL */
    float score;    /* SPM merge priority (higher first) */
    uint8_t type;   /* enum tok_type */
    uint8_t flags;  /* TOK_FLAG_* */
};

struct tok_merge {
    uint64_t key;   /* left id << 32 | right id; UINT64_MAX when the slot is empty */
    int32_t rank;   /* position in tokenizer.ggml.merges (lower merges first) */
    int32_t id;     /* token of the merged text */
};

struct tokenizer {
    enum tok_model model;
    char pre[32];
    int n_vocab;
    struct tok_token *tokens;   /* [n_vocab] */
    char *text;                 /* every token text, NUL-terminated */
    int32_t *str_tab;           /* open addressing, -1 empty; text -> id */
    uint32_t str_mask;
    struct tok_merge *merge_tab;
    uint32_t merge_mask;
    int32_t byte_id[256];       /* BPE: token of the byte's byte-level char; SPM: <0xXX> */
    int n_regex;
    pcre2_code *re[TOK_MAX_REGEX];
    bool ignore_merges;         /* llama3: a piece that is a token is not merged */
    bool add_space_prefix;      /* SPM */
    bool add_bos;
    int32_t bos, eos, eot, eom, unk;
    int32_t *specials;          /* ids cut out of text, longest text first */
    int n_specials;
    size_t max_piece;
};

/* ------------------------------------------------------------ encoding */

/* One candidate merge of symbol left and its right neighbour. key orders
 * the heap, smallest first: BPE rank << 32 | left, or for SPM the negated
 * score in the high half so higher scores pop first, ties to the left.
 * 16 bytes: the SPM heap of a long text holds one entry per character and
 * popping it is most of the SPM time. A popped entry is still valid when
 * the pair (left, next[left]) is unchanged: for BPE the same ids still have
 * a merge of that rank (a rank names one pair, and a symbol's text only
 * grows), for SPM the two lengths still add up to size. */
struct tok_bigram {
    uint64_t key;
    int32_t left;
    uint32_t size;  /* SPM: merged byte length */
};

struct tok_out {
    int32_t *ids;
    int max;
    int n;
};

/* Per-call scratch: encoding allocates only here, so one tokenizer can
 * serve several threads. */
struct tok_work {
    const struct tokenizer *t;
    struct tok_out *out;
    pcre2_match_data *md[TOK_MAX_REGEX];
    int32_t *sym_id, *sym_prev, *sym_next;
    uint32_t *sym_off, *sym_len;
    size_t sym_cap;
    struct tok_bigram *heap;
    size_t heap_n, heap_cap;
    char *buf;          /* sanitized / escaped text */
    size_t buf_cap;
    char *word;         /* llama3 byte-level word */
    size_t word_cap;
};

static inline uint64_t tok_hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static inline uint64_t tok_hash_u64(uint64_t k)
{
    k *= 0x9E3779B97F4A7C15ull;
    return k ^ (k >> 31);
}

static inline uint32_t tok_pow2_above(uint64_t n)
{
    uint32_t c = 16;
    while (c < 2 * n)
        c <<= 1;
    return c;
}

/* Length of a UTF-8 sequence from its lead byte, as llama.cpp counts it
 * (continuation bytes count as 1). */
static inline size_t tok_utf8_len(unsigned char c)
{
    static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lens[c >> 4];
}

static inline void tok_emit(struct tok_out *o, int32_t id)
{
    if (o->n < o->max)
        o->ids[o->n] = id;
    if (o->n < INT32_MAX)
        o->n++;
}

/* tokenizer.c */
/* Length of the valid complete UTF-8 sequence at p, 0 for a valid but
 * incomplete prefix, -1 when p[0] cannot start a valid sequence. */
int tok_utf8_check(const unsigned char *p, size_t avail);
size_t tok_put_utf8(char *out, uint32_t cp);
uint32_t tok_byte_to_cp(unsigned b);
int32_t tok_lookup(const struct tokenizer *t, const char *s, size_t n); /* text -> id or -1 */
int tok_grow(void **p, size_t *cap, size_t need, size_t elem);
int tok_reserve_syms(struct tok_work *w, size_t n);
int tok_heap_push(struct tok_work *w, const struct tok_bigram *e);
struct tok_bigram tok_heap_pop(struct tok_work *w);

/* tokenizer_bpe.c */
int tok_setup_pre(struct tokenizer *t, const char *pre, char *err, size_t errlen);
int tok_load_merges(struct tokenizer *t, const struct gguf_ctx *g, char *err, size_t errlen);
const struct tok_merge *tok_merge_find(const struct tokenizer *t, int32_t a, int32_t b);
/* Pre-tokenizes and merges one raw text fragment, appending to w->out. */
int tok_bpe_fragment(struct tok_work *w, const char *s, size_t n);

/* tokenizer_spm.c */
/* Merges one raw text fragment (prefix: prepend U+2581), appending to w->out. */
int tok_spm_fragment(struct tok_work *w, const char *s, size_t n, bool prefix);

#endif
