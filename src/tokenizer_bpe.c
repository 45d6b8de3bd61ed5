/*
 * tokenizer_bpe.c - byte-level BPE ("gpt2" vocabularies): the merge table,
 * the pre-tokenizer regexes (PCRE2, UTF + UCP, JIT when available) and the
 * rank-ordered merge loop.
 * Must not: print or exit. Called only by tokenizer.c (tokenizer_impl.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer_impl.h"

const struct tok_merge *tok_merge_find(const struct tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint32_t i = (uint32_t)tok_hash_u64(key) & t->merge_mask;
    for (;;) {
        const struct tok_merge *m = &t->merge_tab[i];
        if (m->key == key)
            return m;
        if (m->key == UINT64_MAX)
            return NULL;
        i = (i + 1) & t->merge_mask;
    }
}

/* Builds the (left id, right id) -> (rank, merged id) table from
 * tokenizer.ggml.merges. Merges whose sides or result are not tokens can
 * never apply to token ids and are dropped; for a repeated pair the first
 * (lowest) rank wins, as in llama.cpp. */
int tok_load_merges(struct tokenizer *t, const struct gguf_ctx *g, char *err, size_t errlen)
{
    enum gguf_vtype vt;
    uint64_t n;
    const void *data;
    if (gguf_get_arr(g, "tokenizer.ggml.merges", &vt, &n, &data) != 0 || vt != GGUF_VT_STRING) {
        errmsg_set(err, errlen, 0, "tokenizer: tokenizer.ggml.merges: expected a string array for a gpt2 (BPE) vocabulary");
        return -EINVAL;
    }
    const struct gguf_str *strs = data;
    uint32_t cap = tok_pow2_above(n);
    t->merge_tab = malloc(cap * sizeof(*t->merge_tab));
    if (!t->merge_tab)
        return -ENOMEM;
    for (uint32_t i = 0; i < cap; i++)
        t->merge_tab[i].key = UINT64_MAX;
    t->merge_mask = cap - 1;
    char *buf = malloc(t->max_piece * 2 + 8);
    if (!buf)
        return -ENOMEM;
    for (uint64_t r = 0; r < n; r++) {
        const char *s = strs[r].ptr;
        size_t len = strs[r].len;
        /* "left right": the separator is the first space after position 0 */
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp) {
            free(buf);
            errmsg_set(err, errlen, 0, "tokenizer: tokenizer.ggml.merges[%" PRIu64 "]: expected \"left right\", got \"%.*s\"",
                     r, (int)(len > 64 ? 64 : len), s);
            return -EINVAL;
        }
        size_t nl = (size_t)(sp - s), nr = len - nl - 1;
        int32_t a = tok_lookup(t, s, nl), b = tok_lookup(t, sp + 1, nr);
        if (a < 0 || b < 0 || nl + nr > t->max_piece)
            continue; /* can never apply: a side is not a token */
        memcpy(buf, s, nl);
        memcpy(buf + nl, sp + 1, nr);
        int32_t id = tok_lookup(t, buf, nl + nr);
        if (id < 0)
            continue; /* the result would not be a token */
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        uint32_t i = (uint32_t)tok_hash_u64(key) & t->merge_mask;
        while (t->merge_tab[i].key != UINT64_MAX && t->merge_tab[i].key != key)
            i = (i + 1) & t->merge_mask;
        if (t->merge_tab[i].key == key)
            continue; /* first rank wins */
        t->merge_tab[i].key = key;
        t->merge_tab[i].rank = (int32_t)r;
        t->merge_tab[i].id = id;
    }
    free(buf);
    return 0;
}

/* -------------------------------------------------------- pre-tokenizers */

/* \s in these patterns is written [\s\x{85}]: PCRE2's UCP \s is the Z
 * category plus \t-\r, while llama.cpp and HF (Oniguruma) also count U+0085. */
#define WS "\\s\\x{85}"
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])"
#define RE_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_WS_TAIL "|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+"
#define RE_QWEN2 RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*" RE_WS_TAIL
#define RE_LLAMA3 RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*" RE_WS_TAIL
#define RE_QWEN35                                                                                  \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^" WS "\\p{L}\\p{M}\\p{N}]+[\\r\\n]*" RE_WS_TAIL
/* o200k (gpt-4o, gpt-oss, llama4), as llama.cpp rewrites it: a word is an
 * optional non-letter/digit lead, a run of letters other than a-z and a run
 * of letters other than A-Z (one of the two may be empty), with an optional
 * contraction; digits in threes; punctuation runs may end in newlines or '/'. */
#define RE_O200K_UPPER "(?:(?=\\p{L})[^a-z])"
#define RE_O200K_LOWER "(?:(?=\\p{L})[^A-Z])"
#define RE_O200K                                                                                      \
    "[^\\r\\n\\p{L}\\p{N}]?" RE_O200K_UPPER "*" RE_O200K_LOWER "+" RE_CONTRACTIONS "?"               \
    "|[^\\r\\n\\p{L}\\p{N}]?" RE_O200K_UPPER "+" RE_O200K_LOWER "*" RE_CONTRACTIONS "?"              \
    "|\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+"
/* Kimi-K2 (tokenization_kimi.py's pat_str): Han runs are pieces of their
 * own and never join a word; otherwise the o200k split with \p{L}\p{M}
 * letters. PCRE2 has no class intersection ("[...&&[^\p{Han}]]"), hence the
 * look-ahead. */
#define RE_KIMI_UPPER "(?:(?!\\p{Han})[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}])"
#define RE_KIMI_LOWER "(?:(?!\\p{Han})[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}])"
#define RE_KIMI                                                                                       \
    "\\p{Han}+|[^\\r\\n\\p{L}\\p{N}]?" RE_KIMI_UPPER "*" RE_KIMI_LOWER "+" RE_CONTRACTIONS "?"                 \
    "|[^\\r\\n\\p{L}\\p{N}]?" RE_KIMI_UPPER "+" RE_KIMI_LOWER "*" RE_CONTRACTIONS "?"                          \
    "|\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*" RE_WS_TAIL
#define RE_CJK "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"
/* deepseek-llm letters: the cased-letter (Lu/Ll/Lt) ranges of its tokenizer.json */
#define RE_DS_LETTERS                                                                              \
    "A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}" \
    "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}"          \
    "\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}" \
    "\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}" \
    "\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}" \
    "\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}"       \
    "\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}"        \
    "\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}" \
    "\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}"        \
    "\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}" \
    "\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}"        \
    "\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}" \
    "\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}" \
    "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"              \
    "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"        \
    "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}"

struct tok_pre_def {
    const char *names[6];      /* tokenizer.ggml.pre values */
    bool ignore_merges;
    const char *re[TOK_MAX_REGEX];
};

static const struct tok_pre_def tok_pre_defs[] = {
    {{"qwen2", "deepseek-r1-qwen", "stablelm2", "hunyuan"}, false, {RE_QWEN2}},
    {{"qwen35"}, false, {RE_QWEN35}},
    {{"gpt-4o", "llama4"}, false, {RE_O200K}},
    {{"kimi-k2"}, false, {RE_KIMI}},
    {{"llama3", "llama-v3", "llama-bpe", "falcon3", "dbrx", "smaug-bpe"}, true, {RE_LLAMA3}},
    {{"gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jais"}, false, {RE_GPT2}},
    {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone"}, false, {"\\p{N}", RE_GPT2}},
    {{"deepseek-coder"}, false, {"[\\r\\n]", "[" WS "]?\\p{L}+", "[" WS "]?\\p{P}+", RE_CJK, "\\p{N}"}},
    {{"deepseek-llm"},
     false,
     {"[\\r\\n]", "[" WS "]?[" RE_DS_LETTERS "]+",
      "[" WS "]?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
      "[" WS "]+$", RE_CJK, "\\p{N}+"}},
    /* DeepSeek-V3/R1: digits in threes, CJK/kana runs, then a GPT-4-like
     * word/punctuation split (one ASCII punctuation may lead a Latin word) */
    {{"deepseek-v3"},
     false,
     {"\\p{N}{1,3}", "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
      "| ?[\\p{P}\\p{S}]+[\\r\\n]*|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+"}},
    {{"default"}, false, {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
};

int tok_setup_pre(struct tokenizer *t, const char *pre, char *err, size_t errlen)
{
    const struct tok_pre_def *def = NULL;
    for (size_t i = 0; i < sizeof(tok_pre_defs) / sizeof(tok_pre_defs[0]) && !def; i++)
        for (int j = 0; j < 6 && tok_pre_defs[i].names[j]; j++)
            if (strcmp(pre, tok_pre_defs[i].names[j]) == 0)
                def = &tok_pre_defs[i];
    if (!def) {
        errmsg_set(err, errlen, 0, "tokenizer: tokenizer.ggml.pre: unsupported pre-tokenizer \"%s\" "
                   "(supported: qwen2, qwen35, gpt-4o, kimi-k2, llama3, gpt-2, starcoder, deepseek-llm, deepseek-coder, "
                   "deepseek-v3, default)", pre);
        return -ENOTSUP;
    }
    snprintf(t->pre, sizeof(t->pre), "%s", pre);
    t->ignore_merges = def->ignore_merges;
    for (int i = 0; i < TOK_MAX_REGEX && def->re[i]; i++) {
        int ecode;
        PCRE2_SIZE eoff;
        t->re[i] = pcre2_compile((PCRE2_SPTR)def->re[i], PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ecode, &eoff, NULL);
        if (!t->re[i]) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(ecode, msg, sizeof(msg));
            errmsg_set(err, errlen, 0, "tokenizer: pre-tokenizer %s regex %d: PCRE2 error at offset %zu: %s",
                     pre, i, (size_t)eoff, (const char *)msg);
            return -EINVAL;
        }
        t->n_regex = i + 1;
        /* JIT is optional: pcre2_match falls back to the interpreter */
        (void)pcre2_jit_compile(t->re[i], PCRE2_JIT_COMPLETE);
    }
    return 0;
}

/* ------------------------------------------------------------ merging */

static int tok_bpe_try(struct tok_work *w, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return 0;
    int32_t a = w->sym_id[l], b = w->sym_id[r];
    if (a < 0 || b < 0)
        return 0;
    const struct tok_merge *m = tok_merge_find(w->t, a, b);
    if (!m)
        return 0;
    struct tok_bigram e = {(uint64_t)(uint32_t)m->rank << 32 | (uint32_t)l, l, 0};
    return tok_heap_push(w, &e);
}

/* Merges one pre-tokenized piece (raw bytes) and emits its tokens. */
static int tok_bpe_word(struct tok_work *w, const char *s, size_t n)
{
    const struct tokenizer *t = w->t;
    if (n == 0)
        return 0;
    if (t->ignore_merges) {
        if (tok_grow((void **)&w->word, &w->word_cap, n * 2, 1))
            return -ENOMEM;
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            m += tok_put_utf8(w->word + m, tok_byte_to_cp((unsigned char)s[i]));
        int32_t id = tok_lookup(t, w->word, m);
        if (id >= 0) {
            tok_emit(w->out, id);
            return 0;
        }
    }
    if (n > INT32_MAX || tok_reserve_syms(w, n))
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        w->sym_id[i] = t->byte_id[(unsigned char)s[i]];
        w->sym_prev[i] = (int32_t)i - 1;
        w->sym_next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    w->heap_n = 0;
    for (size_t i = 1; i < n; i++)
        if (tok_bpe_try(w, (int32_t)i - 1, (int32_t)i))
            return -ENOMEM;
    while (w->heap_n) {
        struct tok_bigram e = tok_heap_pop(w);
        int32_t right = w->sym_next[e.left];
        if (w->sym_id[e.left] < 0 || right < 0 || w->sym_id[right] < 0)
            continue;
        const struct tok_merge *m = tok_merge_find(t, w->sym_id[e.left], w->sym_id[right]);
        if (!m || m->rank != (int32_t)(e.key >> 32))
            continue; /* stale: a side changed since it was queued */
        int32_t nx = w->sym_next[right];
        w->sym_id[e.left] = m->id;
        w->sym_id[right] = TOK_DEAD;
        w->sym_next[e.left] = nx;
        if (nx >= 0)
            w->sym_prev[nx] = e.left;
        if (tok_bpe_try(w, w->sym_prev[e.left], e.left) || tok_bpe_try(w, e.left, nx))
            return -ENOMEM;
    }
    for (int32_t i = 0; i != -1; i = w->sym_next[i])
        if (w->sym_id[i] >= 0)
            tok_emit(w->out, w->sym_id[i]);
    return 0;
}

/* Splits s[0..n) with regex level and passes every match and every gap
 * between matches to the next level; past the last regex, to BPE. */
static int tok_split(struct tok_work *w, int level, const char *s, size_t n)
{
    const struct tokenizer *t = w->t;
    if (level == t->n_regex)
        return tok_bpe_word(w, s, n);
    if (n == 0)
        return 0;
    pcre2_code *re = t->re[level];
    pcre2_match_data *md = w->md[level];
    size_t pos = 0, last = 0;
    int rc;
    while (pos < n) {
        int m = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (m == PCRE2_ERROR_JIT_STACKLIMIT)
            m = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
        if (m == PCRE2_ERROR_NOMATCH)
            break;
        if (m < 0)
            return -EIO;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { /* empty match: step over one character */
            pos = ms + tok_utf8_len((unsigned char)s[ms]);
            continue;
        }
        if (ms > last && (rc = tok_split(w, level + 1, s + last, ms - last)))
            return rc;
        if ((rc = tok_split(w, level + 1, s + ms, me - ms)))
            return rc;
        last = pos = me;
    }
    if (last < n)
        return tok_split(w, level + 1, s + last, n - last);
    return 0;
}

int tok_bpe_fragment(struct tok_work *w, const char *s, size_t n)
{
    /* PCRE2 is run without its UTF check, so hand it valid UTF-8 only:
     * every byte that does not start a valid sequence becomes U+FFFD */
    size_t i = 0;
    while (i < n) {
        int l = tok_utf8_check((const unsigned char *)s + i, n - i);
        if (l <= 0)
            break;
        i += (size_t)l;
    }
    if (i < n) {
        if (tok_grow((void **)&w->buf, &w->buf_cap, i + (n - i) * 3, 1))
            return -ENOMEM;
        memcpy(w->buf, s, i);
        size_t o = i;
        while (i < n) {
            int l = tok_utf8_check((const unsigned char *)s + i, n - i);
            if (l > 0) {
                memcpy(w->buf + o, s + i, (size_t)l);
                o += (size_t)l;
                i += (size_t)l;
            } else {
                o += tok_put_utf8(w->buf + o, 0xFFFD);
                i++;
            }
        }
        s = w->buf;
        n = o;
    }
    return tok_split(w, 0, s, n);
}

