/*
 * tokenizer.c - GGUF vocabularies: loading, special tokens, decoding.
 *
 * Owns: the vocabulary copy (one text arena, a text -> id hash table), token
 * types and special ids, special-token partitioning, the per-call scratch and
 * merge heap, detokenization and the streaming detokenizer. The BPE merge
 * table, regexes and merge loop live in tokenizer_bpe.c, the SentencePiece
 * merge loop in tokenizer_spm.c (shared layout: tokenizer_impl.h).
 * Must not: print, exit, or reference the gguf_ctx after tok_init.
 * Called through tokenizer.h by the runtime, the server and tests.
 *
 * Behaviour follows llama.cpp (src/llama-vocab.cpp), whose outputs the test
 * fixtures hold:
 *  - Special tokens are cut out longest text first, each token's occurrences
 *    in every remaining raw fragment before the next token is tried.
 *  - BPE: the text of a raw fragment is split by the pre-tokenizer regexes
 *    applied in sequence (each regex splits every piece the previous one
 *    produced; matches and the gaps between them both become pieces). Each
 *    piece is merged byte by byte, lowest merge rank first, ties to the left.
 *    Invalid UTF-8 bytes become U+FFFD before splitting (llama.cpp does this
 *    when it decodes to code points).
 *  - SPM: spaces become U+2581, a U+2581 is prepended to a fragment at the
 *    start or after a special token, symbols are UTF-8 characters merged
 *    into the highest-scoring vocabulary token first (ties to the left), and
 *    symbols that are not tokens fall back to <0xXX> byte tokens.
 */
#include "tokenizer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer_impl.h"

/* ------------------------------------------------------------ utilities */

/* Checks the UTF-8 sequence at p (avail bytes). Returns its length when it is
 * complete and valid, 0 when the bytes are a valid but incomplete prefix,
 * -1 when p[0] cannot start a valid sequence here. */
int tok_utf8_check(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    int need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return -1;
    if (c < 0xE0) {
        need = 2;
    } else if (c < 0xF0) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c < 0xF5) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return -1;
    }
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= avail)
            return 0;
        unsigned char lim_lo = i == 1 ? lo : 0x80, lim_hi = i == 1 ? hi : 0xBF;
        if (p[i] < lim_lo || p[i] > lim_hi)
            return -1;
    }
    return need;
}

size_t tok_put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* GPT-2 byte-level alphabet: printable Latin-1 bytes stand for themselves,
 * the other 68 bytes map in order to U+0100.. (so no byte is whitespace or
 * a control character inside the vocabulary). */
uint32_t tok_byte_to_cp(unsigned b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
        return b;
    uint32_t n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174))
            n++;
    return 256 + n;
}

/* Inverse of tok_byte_to_cp; -1 for code points outside the alphabet. */
static int tok_cp_to_byte(uint32_t cp)
{
    if (cp < 256)
        return ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || cp >= 174) ? (int)cp : -1;
    if (cp >= 256 + 68)
        return -1;
    uint32_t n = cp - 256;
    for (unsigned x = 0; x < 256; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174) && n-- == 0)
            return (int)x;
    return -1;
}

/* ------------------------------------------------------------ vocabulary */

int32_t tok_lookup(const struct tokenizer *t, const char *s, size_t n)
{
    uint32_t i = (uint32_t)tok_hash_bytes(s, n) & t->str_mask;
    for (;;) {
        int32_t id = t->str_tab[i];
        if (id < 0)
            return -1;
        const struct tok_token *tk = &t->tokens[id];
        if (tk->len == n && memcmp(t->text + tk->off, s, n) == 0)
            return id;
        i = (i + 1) & t->str_mask;
    }
}

/* Reads an integer token id key (any integer type); def when absent, -1
 * when negative or too large. */
static int32_t tok_get_id(const struct gguf_ctx *g, const char *key, int32_t def)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv)
        return def;
    switch (kv->val.type) {
    case GGUF_VT_INT8:
    case GGUF_VT_INT16:
    case GGUF_VT_INT32:
    case GGUF_VT_INT64:
        return kv->val.i64 < 0 || kv->val.i64 > INT32_MAX ? -1 : (int32_t)kv->val.i64;
    case GGUF_VT_UINT8:
    case GGUF_VT_UINT16:
    case GGUF_VT_UINT32:
    case GGUF_VT_UINT64:
        return kv->val.u64 > INT32_MAX ? -1 : (int32_t)kv->val.u64;
    default:
        return def;
    }
}

static bool tok_get_flag(const struct gguf_ctx *g, const char *key, bool def)
{
    bool v;
    return gguf_get_bool(g, key, &v) == 0 ? v : def;
}

static int tok_load_vocab(struct tokenizer *t, const struct gguf_ctx *g, char *err, size_t errlen)
{
    enum gguf_vtype vt;
    uint64_t n;
    const void *data;
    int rc = gguf_get_arr(g, "tokenizer.ggml.tokens", &vt, &n, &data);
    if (rc != 0 || vt != GGUF_VT_STRING || n == 0 || n > INT32_MAX / 2) {
        errmsg_set(err, errlen, 0, "tokenizer: tokenizer.ggml.tokens: expected a non-empty string array, %s",
                 rc ? "key absent or not an array" : "got another type or size");
        return -EINVAL;
    }
    const struct gguf_str *strs = data;
    t->n_vocab = (int)n;
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        total += strs[i].len + 1;
        if (strs[i].len > t->max_piece)
            t->max_piece = strs[i].len;
    }
    if (total > UINT32_MAX) {
        errmsg_set(err, errlen, 0, "tokenizer: tokenizer.ggml.tokens: %zu bytes of text (max 4 GiB)", total);
        return -EINVAL;
    }
    t->tokens = calloc(n, sizeof(*t->tokens));
    t->text = malloc(total);
    if (!t->tokens || !t->text)
        return -ENOMEM;
    size_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        memcpy(t->text + off, strs[i].ptr, strs[i].len);
        t->text[off + strs[i].len] = 0;
        t->tokens[i].off = (uint32_t)off;
        t->tokens[i].len = (uint32_t)strs[i].len;
        t->tokens[i].type = TOK_TYPE_NORMAL;
        off += strs[i].len + 1;
    }

    if (gguf_get_arr(g, "tokenizer.ggml.token_type", &vt, &n, &data) == 0) {
        if (n != (uint64_t)t->n_vocab || vt == GGUF_VT_STRING || vt == GGUF_VT_ARRAY) {
            errmsg_set(err, errlen, 0, "tokenizer: tokenizer.ggml.token_type: expected %d integers, got %" PRIu64 " of type %s",
                     t->n_vocab, n, gguf_vtype_name(vt));
            return -EINVAL;
        }
        for (uint64_t i = 0; i < n; i++) {
            int64_t ty = gguf_arr_i64(vt, data, i);
            t->tokens[i].type = (ty >= TOK_TYPE_NORMAL && ty <= TOK_TYPE_BYTE) ? (uint8_t)ty : TOK_TYPE_NORMAL;
        }
    }
    if (gguf_get_arr(g, "tokenizer.ggml.scores", &vt, &n, &data) == 0) {
        if (n != (uint64_t)t->n_vocab || vt == GGUF_VT_STRING || vt == GGUF_VT_ARRAY) {
            errmsg_set(err, errlen, 0, "tokenizer: tokenizer.ggml.scores: expected %d numbers, got %" PRIu64 " of type %s",
                     t->n_vocab, n, gguf_vtype_name(vt));
            return -EINVAL;
        }
        for (uint64_t i = 0; i < n; i++)
            t->tokens[i].score = (float)gguf_arr_f64(vt, data, i);
    }

    /* text -> id; on duplicate texts the lowest id wins */
    uint32_t cap = tok_pow2_above((uint64_t)t->n_vocab);
    t->str_tab = malloc(cap * sizeof(int32_t));
    if (!t->str_tab)
        return -ENOMEM;
    memset(t->str_tab, 0xff, cap * sizeof(int32_t));
    t->str_mask = cap - 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const struct tok_token *tk = &t->tokens[id];
        if (tok_lookup(t, t->text + tk->off, tk->len) >= 0)
            continue;
        uint32_t i = (uint32_t)tok_hash_bytes(t->text + tk->off, tk->len) & t->str_mask;
        while (t->str_tab[i] >= 0)
            i = (i + 1) & t->str_mask;
        t->str_tab[i] = id;
    }
    return 0;
}

/* ------------------------------------------------------------ tok_init */

static int tok_cmp_special_len(const void *a, const void *b, void *arg)
{
    const struct tokenizer *t = arg;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = t->tokens[x].len, ly = t->tokens[y].len;
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

static void tok_setup_specials(struct tokenizer *t, const struct gguf_ctx *g)
{
    /* end-of-turn / end-of-generation markers llama.cpp recognises by text;
     * they are forced to control type as llama.cpp does */
    static const char *const eot_names[] = {"<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>",
                                            "<|endoftext|>", "<EOT>", "_<EOT>",
                                            "<\xef\xbd\x9c\x65nd\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>" /* <｜end▁of▁sentence｜> */};
    static const char *const eog_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
                                            "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>",
                                            "<|end_of_text|>", "<end_of_utterance>"};
    if (t->eot < 0) {
        for (size_t i = 0; i < sizeof(eot_names) / sizeof(eot_names[0]) && t->eot < 0; i++)
            t->eot = tok_find(t, eot_names[i]);
    }
    for (size_t i = 0; i < sizeof(eog_names) / sizeof(eog_names[0]); i++) {
        int32_t id = tok_find(t, eog_names[i]);
        if (id >= 0) {
            t->tokens[id].flags |= TOK_FLAG_EOG;
            t->tokens[id].type = TOK_TYPE_CONTROL;
        }
    }
    if (t->eot >= 0)
        t->tokens[t->eot].type = TOK_TYPE_CONTROL;
    int32_t eog[3] = {t->eos, t->eot, t->eom};
    for (int i = 0; i < 3; i++)
        if (eog[i] >= 0)
            t->tokens[eog[i]].flags |= TOK_FLAG_EOG;

    t->n_specials = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        uint8_t ty = t->tokens[id].type;
        if ((ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_USER_DEFINED || ty == TOK_TYPE_UNKNOWN) && t->tokens[id].len)
            t->specials[t->n_specials++] = id;
    }
    qsort_r(t->specials, (size_t)t->n_specials, sizeof(int32_t), tok_cmp_special_len, t);

    /* Phi-3 strips whitespace right of its special tokens (llama.cpp keys
     * this on the model name) */
    const char *name = NULL;
    if (gguf_get_str(g, "general.name", &name) == 0 && (strcasestr(name, "phi-3") || strcasestr(name, "phi3"))) {
        for (int i = 0; i < t->n_specials; i++)
            t->tokens[t->specials[i]].flags |= TOK_FLAG_RSTRIP;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t i = 0; i < 3; i++) {
            int32_t id = tok_find(t, keep[i]);
            if (id >= 0)
                t->tokens[id].flags &= (uint8_t)~TOK_FLAG_RSTRIP;
        }
        int32_t id = tok_find(t, "</s>");
        if (id >= 0)
            t->tokens[id].flags |= TOK_FLAG_RSTRIP;
    }
}

int tok_init(struct tokenizer **out, const struct gguf_ctx *g, char *err, size_t errlen)
{
    if (!out || !g)
        return -EINVAL;
    *out = NULL;
    struct tokenizer *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    int rc;
    const char *model = NULL, *pre = NULL;
    if (gguf_get_str(g, "tokenizer.ggml.model", &model) != 0) {
        errmsg_set(err, errlen, 0, "tokenizer: tokenizer.ggml.model: key absent (expected \"gpt2\" or \"llama\")");
        rc = -EINVAL;
        goto fail;
    }
    if (strcmp(model, "gpt2") == 0) {
        t->model = TOK_MODEL_BPE;
    } else if (strcmp(model, "llama") == 0) {
        t->model = TOK_MODEL_SPM;
    } else {
        errmsg_set(err, errlen, 0, "tokenizer: tokenizer.ggml.model: unsupported \"%s\" (expected \"gpt2\" or \"llama\")", model);
        rc = -ENOTSUP;
        goto fail;
    }
    rc = tok_load_vocab(t, g, err, errlen);
    if (rc)
        goto fail;

    if (t->model == TOK_MODEL_BPE) {
        if (gguf_get_str(g, "tokenizer.ggml.pre", &pre) != 0)
            pre = "default";
        rc = tok_setup_pre(t, pre, err, errlen);
        if (rc)
            goto fail;
        rc = tok_load_merges(t, g, err, errlen);
        if (rc)
            goto fail;
        for (unsigned b = 0; b < 256; b++) {
            char buf[4];
            size_t n = tok_put_utf8(buf, tok_byte_to_cp(b));
            t->byte_id[b] = tok_lookup(t, buf, n);
        }
        t->add_bos = tok_get_flag(g, "tokenizer.ggml.add_bos_token", false);
        t->bos = tok_get_id(g, "tokenizer.ggml.bos_token_id", -1);
        t->eos = tok_get_id(g, "tokenizer.ggml.eos_token_id", -1);
        t->unk = tok_get_id(g, "tokenizer.ggml.unknown_token_id", -1);
    } else {
        snprintf(t->pre, sizeof(t->pre), "default");
        for (unsigned b = 0; b < 256; b++) {
            char buf[8];
            snprintf(buf, sizeof(buf), "<0x%02X>", b);
            t->byte_id[b] = tok_lookup(t, buf, 6);
        }
        t->add_space_prefix = tok_get_flag(g, "tokenizer.ggml.add_space_prefix", true);
        t->add_bos = tok_get_flag(g, "tokenizer.ggml.add_bos_token", true);
        t->bos = tok_get_id(g, "tokenizer.ggml.bos_token_id", 1);
        t->eos = tok_get_id(g, "tokenizer.ggml.eos_token_id", 2);
        t->unk = tok_get_id(g, "tokenizer.ggml.unknown_token_id", 0);
    }
    t->eot = tok_get_id(g, "tokenizer.ggml.eot_token_id", -1);
    t->eom = tok_get_id(g, "tokenizer.ggml.eom_token_id", -1);
    int32_t *ids[] = {&t->bos, &t->eos, &t->eot, &t->eom, &t->unk};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        if (*ids[i] >= t->n_vocab)
            *ids[i] = -1;

    t->specials = malloc((size_t)t->n_vocab * sizeof(int32_t));
    if (!t->specials) {
        rc = -ENOMEM;
        goto fail;
    }
    tok_setup_specials(t, g);
    *out = t;
    return 0;
fail:
    if (rc == -ENOMEM)
        errmsg_set(err, errlen, 0, "tokenizer: out of memory for a %d-token vocabulary", t->n_vocab);
    tok_free(t);
    return rc;
}

void tok_free(struct tokenizer *t)
{
    if (!t)
        return;
    for (int i = 0; i < TOK_MAX_REGEX; i++)
        pcre2_code_free(t->re[i]);
    free(t->specials);
    free(t->merge_tab);
    free(t->str_tab);
    free(t->text);
    free(t->tokens);
    free(t);
}

/* ------------------------------------------------------------ queries */

enum tok_model tok_model(const struct tokenizer *t) { return t->model; }
const char *tok_pre_name(const struct tokenizer *t) { return t->pre; }
int tok_n_vocab(const struct tokenizer *t) { return t->n_vocab; }
int32_t tok_bos(const struct tokenizer *t) { return t->bos; }
int32_t tok_eos(const struct tokenizer *t) { return t->eos; }
int32_t tok_eot(const struct tokenizer *t) { return t->eot; }
bool tok_wants_bos(const struct tokenizer *t) { return t->add_bos && t->bos >= 0; }
size_t tok_max_piece(const struct tokenizer *t) { return t->max_piece; }

bool tok_is_eog(const struct tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->tokens[id].flags & TOK_FLAG_EOG);
}

enum tok_type tok_get_type(const struct tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab ? (enum tok_type)t->tokens[id].type : (enum tok_type)0;
}

bool tok_is_control(const struct tokenizer *t, int32_t id)
{
    return tok_get_type(t, id) == TOK_TYPE_CONTROL;
}

int32_t tok_find(const struct tokenizer *t, const char *text)
{
    return tok_lookup(t, text, strlen(text));
}

const char *tok_text(const struct tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab)
        return NULL;
    if (len)
        *len = t->tokens[id].len;
    return t->text + t->tokens[id].off;
}

/* ------------------------------------------------------------ encoding */

int tok_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

int tok_reserve_syms(struct tok_work *w, size_t n)
{
    if (n <= w->sym_cap)
        return 0;
    size_t c = w->sym_cap ? w->sym_cap : 64;
    while (c < n)
        c *= 2;
    int32_t *a = realloc(w->sym_id, c * sizeof(int32_t));
    if (a)
        w->sym_id = a;
    int32_t *b = realloc(w->sym_prev, c * sizeof(int32_t));
    if (b)
        w->sym_prev = b;
    int32_t *d = realloc(w->sym_next, c * sizeof(int32_t));
    if (d)
        w->sym_next = d;
    uint32_t *e = realloc(w->sym_off, c * sizeof(uint32_t));
    if (e)
        w->sym_off = e;
    uint32_t *f = realloc(w->sym_len, c * sizeof(uint32_t));
    if (f)
        w->sym_len = f;
    if (!a || !b || !d || !e || !f)
        return -ENOMEM;
    w->sym_cap = c;
    return 0;
}

int tok_heap_push(struct tok_work *w, const struct tok_bigram *e)
{
    if (tok_grow((void **)&w->heap, &w->heap_cap, w->heap_n + 1, sizeof(*w->heap)))
        return -ENOMEM;
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (w->heap[p].key <= e->key)
            break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = *e;
    return 0;
}

struct tok_bigram tok_heap_pop(struct tok_work *w)
{
    struct tok_bigram top = w->heap[0];
    struct tok_bigram last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && w->heap[c + 1].key < w->heap[c].key)
            c++;
        if (last.key <= w->heap[c].key)
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n)
        w->heap[i] = last;
    return top;
}

struct tok_frag {
    size_t off, len;
    int32_t id;
};

static uint32_t tok_quad_hash(const char *s, unsigned bits)
{
    uint32_t v;
    memcpy(&v, s, 4);
    return (v * 2654435761u) >> (32 - bits);
}

static bool tok_isspace(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Cuts special tokens out of text, longest first; frags and nf are updated in place. */
static int tok_partition(const struct tokenizer *t, const char *text, size_t len, bool parse_special,
                         struct tok_frag **frags, size_t *nf)
{
    /* Which bytes, byte pairs and (hashed) 4-byte windows occur in the text:
     * most special tokens are absent and can be skipped without a search
     * (deepseek-llm has 2,398 "[PADnnnnnn]" user-defined tokens; memmem for
     * each of them was 60% of the time on a 550 KB text). */
    unsigned qbits = 12;
    while (qbits < 23 && ((size_t)1 << qbits) < 8 * len)
        qbits++;
    uint64_t *pairs = calloc(65536 / 64 + ((size_t)1 << qbits) / 64, sizeof(uint64_t));
    uint64_t *quads = pairs + 65536 / 64;
    uint64_t bytes[4] = {0};
    struct tok_frag *a = *frags, *b = NULL;
    size_t na = *nf, cap_b = 0;
    int rc = 0;
    if (!pairs)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++) {
        unsigned c = (unsigned char)text[i];
        bytes[c >> 6] |= 1ull << (c & 63);
        if (i + 1 < len) {
            unsigned p = c << 8 | (unsigned char)text[i + 1];
            pairs[p >> 6] |= 1ull << (p & 63);
        }
        if (i + 4 <= len) {
            uint32_t q = tok_quad_hash(text + i, qbits);
            quads[q >> 6] |= 1ull << (q & 63);
        }
    }
    for (int k = 0; k < t->n_specials; k++) {
        int32_t id = t->specials[k];
        const struct tok_token *tk = &t->tokens[id];
        if (!parse_special && (tk->type == TOK_TYPE_CONTROL || tk->type == TOK_TYPE_UNKNOWN))
            continue;
        const char *st = t->text + tk->off;
        size_t sl = tk->len;
        unsigned c0 = (unsigned char)st[0];
        if (sl > len || !(bytes[c0 >> 6] >> (c0 & 63) & 1))
            continue;
        if (sl > 1) {
            unsigned p = c0 << 8 | (unsigned char)st[1];
            if (!(pairs[p >> 6] >> (p & 63) & 1))
                continue;
        }
        if (sl >= 4) {
            uint32_t q0 = tok_quad_hash(st, qbits), q1 = tok_quad_hash(st + sl - 4, qbits);
            if (!(quads[q0 >> 6] >> (q0 & 63) & 1) || !(quads[q1 >> 6] >> (q1 & 63) & 1))
                continue;
        }
        bool found = false;
        for (size_t i = 0; i < na && !found; i++)
            found = a[i].id < 0 && a[i].len >= sl && memmem(text + a[i].off, a[i].len, st, sl);
        if (!found)
            continue;
        size_t nb = 0;
        for (size_t i = 0; i < na; i++) {
            if (a[i].id >= 0) {
                if ((rc = tok_grow((void **)&b, &cap_b, nb + 1, sizeof(*b))))
                    goto out;
                b[nb++] = a[i];
                continue;
            }
            size_t pos = a[i].off, end = a[i].off + a[i].len;
            for (;;) {
                const char *m = pos < end ? memmem(text + pos, end - pos, st, sl) : NULL;
                if (!m)
                    break;
                size_t mo = (size_t)(m - text), left = mo - pos;
                if (tk->flags & TOK_FLAG_LSTRIP)
                    while (left > 0 && tok_isspace(text[pos + left - 1]))
                        left--;
                if ((rc = tok_grow((void **)&b, &cap_b, nb + 2, sizeof(*b))))
                    goto out;
                if (left > 0)
                    b[nb++] = (struct tok_frag){pos, left, -1};
                b[nb++] = (struct tok_frag){mo, sl, id};
                pos = mo + sl;
                if (tk->flags & TOK_FLAG_RSTRIP)
                    while (pos < end && tok_isspace(text[pos]))
                        pos++;
            }
            if (pos < end) {
                if ((rc = tok_grow((void **)&b, &cap_b, nb + 1, sizeof(*b))))
                    goto out;
                b[nb++] = (struct tok_frag){pos, end - pos, -1};
            }
        }
        /* b becomes the current list */
        free(a);
        a = b;
        na = nb;
        b = NULL;
        cap_b = 0;
    }
out:
    free(b);
    free(pairs);
    *frags = a;
    *nf = na;
    return rc;
}

int tok_encode(const struct tokenizer *t, const char *text, size_t len, bool add_bos, bool parse_special,
               int32_t *ids, int max_ids)
{
    if (!t || (!text && len) || max_ids < 0 || (!ids && max_ids > 0))
        return -EINVAL;
    struct tok_out out = {ids, max_ids, 0};
    if (add_bos && t->bos >= 0)
        tok_emit(&out, t->bos);
    if (len == 0)
        return out.n;

    struct tok_work w = {.t = t, .out = &out};
    struct tok_frag *frags = malloc(sizeof(*frags));
    size_t nf = 1;
    int rc = 0;
    if (!frags)
        return -ENOMEM;
    frags[0] = (struct tok_frag){0, len, -1};
    rc = tok_partition(t, text, len, parse_special, &frags, &nf);
    if (rc)
        goto out;
    for (int i = 0; i < t->n_regex; i++) {
        w.md[i] = pcre2_match_data_create_from_pattern(t->re[i], NULL);
        if (!w.md[i]) {
            rc = -ENOMEM;
            goto out;
        }
    }
    bool prev_special = true; /* SPM: a space is prefixed to the first text */
    for (size_t i = 0; i < nf && !rc; i++) {
        if (frags[i].id >= 0) {
            tok_emit(&out, frags[i].id);
            prev_special = true;
        } else if (t->model == TOK_MODEL_BPE) {
            rc = tok_bpe_fragment(&w, text + frags[i].off, frags[i].len);
        } else {
            rc = tok_spm_fragment(&w, text + frags[i].off, frags[i].len, t->add_space_prefix && prev_special);
            prev_special = false;
        }
    }
out:
    for (int i = 0; i < TOK_MAX_REGEX; i++)
        pcre2_match_data_free(w.md[i]);
    free(w.sym_id);
    free(w.sym_prev);
    free(w.sym_next);
    free(w.sym_off);
    free(w.sym_len);
    free(w.heap);
    free(w.buf);
    free(w.word);
    free(frags);
    return rc ? rc : out.n;
}

/* ------------------------------------------------------------ decoding */

static int tok_copy_out(char *buf, size_t n, const char *s, size_t len)
{
    if (buf && n)
        memcpy(buf, s, len < n ? len : n);
    return (int)len;
}

int tok_decode_piece(const struct tokenizer *t, int32_t id, char *buf, size_t n, bool special)
{
    if (id < 0 || id >= t->n_vocab)
        return -EINVAL;
    const struct tok_token *tk = &t->tokens[id];
    const char *s = t->text + tk->off;
    switch (tk->type) {
    case TOK_TYPE_CONTROL:
        return special ? tok_copy_out(buf, n, s, tk->len) : 0;
    case TOK_TYPE_UNUSED:
        return 0;
    case TOK_TYPE_UNKNOWN:
    case TOK_TYPE_USER_DEFINED:
        return tok_copy_out(buf, n, s, tk->len);
    case TOK_TYPE_BYTE:
        if (t->model == TOK_MODEL_SPM && tk->len == 6) {
            char c = (char)strtoul(s + 3, NULL, 16);
            return tok_copy_out(buf, n, &c, 1);
        }
        break;
    default:
        break;
    }
    size_t o = 0;
    if (t->model == TOK_MODEL_SPM) {
        for (size_t i = 0; i < tk->len;) {
            if (i + 3 <= tk->len && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                if (o < n)
                    buf[o] = ' ';
                o++;
                i += 3;
            } else {
                if (o < n)
                    buf[o] = s[i];
                o++;
                i++;
            }
        }
        return (int)o;
    }
    for (size_t i = 0; i < tk->len;) {
        int l = tok_utf8_check((const unsigned char *)s + i, tk->len - i);
        if (l <= 0)
            l = 1;
        uint32_t cp = (unsigned char)s[i];
        if (l == 2)
            cp = (uint32_t)(s[i] & 0x1F) << 6 | (s[i + 1] & 0x3F);
        int b = l <= 2 ? tok_cp_to_byte(cp) : -1;
        if (b >= 0) {
            if (o < n)
                buf[o] = (char)b;
            o++;
        } else { /* not in the byte alphabet: pass through */
            for (int k = 0; k < l; k++, o++)
                if (o < n)
                    buf[o] = s[i + (size_t)k];
        }
        i += (size_t)l;
    }
    return (int)o;
}

/* ------------------------------------------------------------ streaming */

void tok_stream_init(struct tok_stream *ts, const struct tokenizer *t, bool special)
{
    memset(ts, 0, sizeof(*ts));
    ts->tok = t;
    ts->special = special;
}

int tok_stream_push(struct tok_stream *ts, int32_t id, char *out, size_t n)
{
    int plen = tok_decode_piece(ts->tok, id, NULL, 0, ts->special);
    if (plen < 0)
        return plen;
    size_t total = (size_t)ts->n_pend + (size_t)plen;
    /* the input is staged at the end of out and rewritten from the start;
     * each byte expands to at most 3 (U+FFFD), so the writer never
     * overtakes the reader with this much room */
    if (n < 3 * total + 2 || !out)
        return -ENOSPC;
    unsigned char *src = (unsigned char *)out + (n - total);
    memcpy(src, ts->pend, (size_t)ts->n_pend);
    tok_decode_piece(ts->tok, id, (char *)src + ts->n_pend, (size_t)plen, ts->special);
    ts->n_pend = 0;
    size_t r = 0, o = 0;
    while (r < total) {
        int l = tok_utf8_check(src + r, total - r);
        if (l > 0) {
            memmove(out + o, src + r, (size_t)l);
            o += (size_t)l;
            r += (size_t)l;
        } else if (l == 0) { /* incomplete tail: hold back */
            ts->n_pend = (int)(total - r);
            memmove(ts->pend, src + r, (size_t)ts->n_pend);
            break;
        } else {
            o += tok_put_utf8(out + o, 0xFFFD);
            r++;
        }
    }
    return (int)o;
}

int tok_stream_flush(struct tok_stream *ts, char *out, size_t n)
{
    if (n < (size_t)ts->n_pend * 3 || (!out && ts->n_pend))
        return -ENOSPC;
    size_t o = 0;
    for (int i = 0; i < ts->n_pend; i++)
        o += tok_put_utf8(out + o, 0xFFFD);
    ts->n_pend = 0;
    return (int)o;
}

