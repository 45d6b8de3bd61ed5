/*
 * synth_vocab.c - the synthetic models' vocabularies: byte-level BPE in the
 * Qwen layout (byte symbols, merges shaped like a real vocabulary, the Qwen
 * specials at their real ids) and SentencePiece in the llama layout, sized to
 * the preset's n_vocab and reproducible from the seed. Part of the generator
 * (synth_impl.h); synth.c writes what is built here into the GGUF metadata.
 */
#include "synth_impl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A string set (open addressing) used to keep generated tokens unique. */
struct strset {
    char **slot;
    size_t cap;
};

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* True when s is present; with add, inserts it (the set keeps the pointer). */
static bool strset_has(struct strset *set, char *s, bool add)
{
    size_t i = str_hash(s) & (set->cap - 1);
    while (set->slot[i]) {
        if (strcmp(set->slot[i], s) == 0)
            return true;
        i = (i + 1) & (set->cap - 1);
    }
    if (add)
        set->slot[i] = s;
    return false;
}



void vocab_free(struct vocab *v)
{
    if (v->tok)
        for (int i = 0; i < v->n; i++)
            free(v->tok[i]);
    if (v->merge)
        for (int i = 0; i < v->n_merge; i++)
            free(v->merge[i]);
    free(v->tok);
    free(v->type);
    free(v->score);
    free(v->merge);
    memset(v, 0, sizeof(*v));
}

/* Words the first merges spell out, so common text tokenizes to whole
 * words (and the demo's output looks like words); the rest are random. */
static const char *const seed_words[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be",
    "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but",
    "have", "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her",
    "has", "there", "been", "if", "more", "when", "will", "would", "who", "so", "no",
    "model", "expert", "memory", "disk", "stream", "token", "layer", "weight", "cache",
    "def", "return", "self", "import", "class", "print", "int", "float", "char", "void",
    "while", "else", "true", "false", "None", "const", "struct", "static", "include",
    "Hello", "world", "The", "In", "It", "This", "What", "how", "why", "time", "people",
    "water", "light", "small", "large", "number", "first", "after", "over", "under",
    "between", "through", "about", "into", "than", "other", "some", "these", "many",
};

/* GPT-2 byte-to-unicode: printable bytes map to themselves, the others to
 * U+0100 onwards in byte order. Writes the UTF-8 of byte b's symbol. */
static void byte_symbol(int b, char out[3])
{
    static int map[256];
    static bool init;
    if (!init) {
        int n = 0;
        for (int i = 0; i < 256; i++) {
            bool printable = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174);
            map[i] = printable ? i : 256 + n++;
        }
        init = true;
    }
    int cp = map[b];
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 63));
        out[2] = 0;
    }
}

static char *str_cat(const char *a, const char *b, const char *sep)
{
    size_t la = strlen(a), ls = strlen(sep), lb = strlen(b);
    char *s = malloc(la + ls + lb + 1);
    if (!s)
        return NULL;
    memcpy(s, a, la);
    memcpy(s + la, sep, ls);
    memcpy(s + la + ls, b, lb + 1);
    return s;
}

/* Adds token left+right (and, for BPE, the merge "left right") unless it
 * exists. 1 added, 0 skipped, -ENOMEM. */
static int vocab_add_pair(struct vocab *v, struct strset *set, int limit, const char *left,
                          const char *right, bool bpe, int max_len)
{
    if (v->n >= limit)
        return 0;
    char *s = str_cat(left, right, "");
    if (!s)
        return -ENOMEM;
    if ((int)strlen(s) > max_len || strset_has(set, s, false)) {
        free(s);
        return 0;
    }
    if (bpe) {
        char *m = str_cat(left, right, " ");
        if (!m) {
            free(s);
            return -ENOMEM;
        }
        v->merge[v->n_merge++] = m;
        v->bytes += strlen(m) + 8;
    }
    strset_has(set, s, true);
    v->tok[v->n] = s;
    v->type[v->n] = 1;
    v->bytes += strlen(s) + 8;
    v->n++;
    return 1;
}

/* Spells word w (a sequence of symbols, UTF-8) as a chain of merges left to
 * right: "Ġ t" -> "Ġt", "Ġt h" -> "Ġth", ... so each prefix is a token. */
static int vocab_add_word(struct vocab *v, struct strset *set, int limit, const char *prefix,
                          const char *w, bool bpe)
{
    char cur[64], sym[8];
    snprintf(cur, sizeof(cur), "%s", prefix);
    for (const char *c = w; *c; c++) {
        if (bpe)
            byte_symbol((uint8_t)*c, sym);
        else
            snprintf(sym, sizeof(sym), "%c", *c);
        if (cur[0]) {
            int rc = vocab_add_pair(v, set, limit, cur, sym, bpe, 48);
            if (rc < 0)
                return rc;
        }
        size_t l = strlen(cur);
        if (l + strlen(sym) + 1 > sizeof(cur))
            return 0;
        strcat(cur, sym);
    }
    return 0;
}

static bool is_letters(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
            return false;
    return true;
}

/* Random merges until n reaches limit, shaped like real vocabularies: the
 * left side is a word piece with or without the space marker ("Ġ" / U+2581),
 * the right side a word piece without it, so every token is something the
 * qwen2 pre-tokenizer can actually produce ("Ġconst", "ation"); half the
 * time the right side is a single letter, so short pieces dominate. */
static int vocab_fill_random(struct vocab *v, struct strset *set, int first, int limit,
                             bool bpe, uint64_t seed, const char *marker)
{
    int *lead = malloc((size_t)limit * sizeof(int)), *word = malloc((size_t)limit * sizeof(int));
    int *single = malloc(64 * sizeof(int));
    int n_lead = 0, n_word = 0, n_single = 0, rc = 0;
    size_t ml = strlen(marker);
    if (!lead || !word || !single) {
        rc = -ENOMEM;
        goto out;
    }
    for (int i = first; i < v->n; i++) {
        const char *t = v->tok[i];
        if (is_letters(t)) {
            word[n_word++] = i;
            lead[n_lead++] = i;
            if (!t[1] && n_single < 64)
                single[n_single++] = i;
        } else if (!strncmp(t, marker, ml) && is_letters(t + ml)) {
            lead[n_lead++] = i;
        }
    }
    if (n_single == 0) {
        rc = -EINVAL;
        goto out;
    }
    struct rng r = { seed };
    long stall = 0;
    while (v->n < limit) {
        int a = lead[rng_int(&r, 0, n_lead - 1)];
        int b = (rng_next(&r) & 1) ? single[rng_int(&r, 0, n_single - 1)]
                                   : word[rng_int(&r, 0, n_word - 1)];
        int before = v->n;
        rc = vocab_add_pair(v, set, limit, v->tok[a], v->tok[b], bpe, 16);
        if (rc < 0)
            goto out;
        if (rc == 0) {
            if (++stall > 100000000L) { /* cannot happen for sane sizes */
                rc = -EDEADLK;
                goto out;
            }
            continue;
        }
        if (is_letters(v->tok[before]))
            word[n_word++] = before;
        lead[n_lead++] = before;
    }
    rc = 0;
out:
    free(lead);
    free(word);
    free(single);
    return rc;
}

/* Qwen2/3 specials, in their real order (151643..151668). */
static const char *const qwen_specials[] = {
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
    "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
    "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
    "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>",
    "<think>", "</think>",
};
#define QWEN_N_BPE_REAL 151643 /* regular tokens of the real Qwen vocabulary */

static int vocab_alloc(struct vocab *v, int n, bool bpe, bool scores)
{
    v->tok = calloc((size_t)n, sizeof(*v->tok));
    v->type = calloc((size_t)n, sizeof(*v->type));
    v->score = scores ? calloc((size_t)n, sizeof(*v->score)) : NULL;
    v->merge = bpe ? calloc((size_t)n, sizeof(*v->merge)) : NULL;
    if (!v->tok || !v->type || (scores && !v->score) || (bpe && !v->merge))
        return -ENOMEM;
    return 0;
}

static int vocab_push(struct vocab *v, struct strset *set, const char *s, int type)
{
    char *c = strdup(s);
    if (!c)
        return -ENOMEM;
    if (set)
        strset_has(set, c, true);
    v->tok[v->n] = c;
    v->type[v->n] = type;
    v->bytes += strlen(c) + 8;
    v->n++;
    return 0;
}

/* Byte-level BPE in the Qwen layout: 256 byte symbols, merges, then the
 * specials. The real-size vocabulary (151936) puts the specials at their real
 * ids and fills the tail with "[PADn]" like convert_hf_to_gguf does; smaller
 * ones keep <|endoftext|>, <|im_start|>, <|im_end|> as the last three ids. */
int vocab_build_bpe(struct vocab *v, int n_vocab, uint64_t seed)
{
    bool real = n_vocab >= QWEN_N_BPE_REAL + 26;
    int n_special = real ? 26 : 3;
    int n_bpe = real ? QWEN_N_BPE_REAL : n_vocab - 3;
    struct strset set = { 0 };
    int rc = vocab_alloc(v, n_vocab, true, false);
    set.cap = 1;
    while (set.cap < (size_t)n_vocab * 2)
        set.cap <<= 1;
    set.slot = calloc(set.cap, sizeof(*set.slot));
    if (rc || !set.slot) {
        rc = -ENOMEM;
        goto out_set;
    }
    /* byte symbols in token order: printable bytes first, as GPT-2/Qwen */
    char sym[3];
    for (int pass = 0; pass < 2; pass++) {
        for (int b = 0; b < 256; b++) {
            bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
            if (printable != (pass == 0))
                continue;
            byte_symbol(b, sym);
            if ((rc = vocab_push(v, &set, sym, 1)))
                goto out_set;
        }
    }
    char space[3];
    byte_symbol(' ', space);
    for (size_t i = 0; i < sizeof(seed_words) / sizeof(seed_words[0]) && rc == 0; i++) {
        rc = vocab_add_word(v, &set, n_bpe, space, seed_words[i], true);
        rc = rc ? rc : vocab_add_word(v, &set, n_bpe, "", seed_words[i], true);
    }
    rc = rc ? rc : vocab_fill_random(v, &set, 0, n_bpe, true, mix64(seed, 0xb9e), space);
    for (int i = 0; i < n_special && rc == 0; i++) {
        const char *s = qwen_specials[i];
        rc = vocab_push(v, NULL, s, s[1] == '|' ? 3 : 4); /* <|x|> control, <x> user-defined */
    }
    while (rc == 0 && v->n < n_vocab) {
        char pad[32];
        snprintf(pad, sizeof(pad), "[PAD%d]", v->n);
        rc = vocab_push(v, NULL, pad, 5);
    }
    v->bos = v->pad = n_bpe;   /* <|endoftext|> */
    v->eos = n_bpe + 2;        /* <|im_end|> */
    v->unk = -1;
out_set:
    free(set.slot);
    return rc;
}

/* SentencePiece (llama) layout: <unk> <s> </s>, <0x00>..<0xFF>, then pieces
 * with U+2581 for spaces, scored by rank. llama.cpp's SPM tokenizer merges
 * adjacent symbols whose concatenation is a piece, so every chain is usable. */
int vocab_build_spm(struct vocab *v, int n_vocab, uint64_t seed)
{
    struct strset set = { 0 };
    int rc = vocab_alloc(v, n_vocab, false, true);
    set.cap = 1;
    while (set.cap < (size_t)n_vocab * 2)
        set.cap <<= 1;
    set.slot = calloc(set.cap, sizeof(*set.slot));
    if (rc || !set.slot) {
        rc = -ENOMEM;
        goto out_set;
    }
    rc = vocab_push(v, &set, "<unk>", 2);
    rc = rc ? rc : vocab_push(v, &set, "<s>", 3);
    rc = rc ? rc : vocab_push(v, &set, "</s>", 3);
    for (int b = 0; b < 256 && rc == 0; b++) {
        char s[8];
        snprintf(s, sizeof(s), "<0x%02X>", b);
        rc = vocab_push(v, &set, s, 6);
    }
    int first_piece = v->n;
    static const char *const ws = "\xe2\x96\x81"; /* U+2581 */
    rc = rc ? rc : vocab_push(v, &set, ws, 1);
    for (int c = 33; c < 127 && rc == 0; c++) {
        char s[2] = { (char)c, 0 };
        rc = vocab_push(v, &set, s, 1);
    }
    for (size_t i = 0; i < sizeof(seed_words) / sizeof(seed_words[0]) && rc == 0; i++) {
        rc = vocab_add_word(v, &set, n_vocab, ws, seed_words[i], false);
        rc = rc ? rc : vocab_add_word(v, &set, n_vocab, "", seed_words[i], false);
    }
    rc = rc ? rc : vocab_fill_random(v, &set, first_piece, n_vocab, false, mix64(seed, 0x5b3), ws);
    for (int i = first_piece; i < v->n; i++)
        v->score[i] = -(float)(i - first_piece);
    v->unk = 0;
    v->bos = 1;
    v->eos = 2;
    v->pad = -1;
out_set:
    free(set.slot);
    return rc;
}
