/*
 * tokenizer_spm.c - SentencePiece BPE ("llama" vocabularies): spaces as
 * U+2581, merges of adjacent UTF-8 characters into the highest-scoring
 * vocabulary token first (ties to the left), <0xXX> byte fallback.
 * Must not: print or exit. Called only by tokenizer.c (tokenizer_impl.h).
 */
#include <errno.h>
#include <string.h>

#include "tokenizer_impl.h"

static int tok_spm_try(struct tok_work *w, int32_t l, int32_t r)
{
    if (l < 0 || r < 0)
        return 0;
    uint32_t size = w->sym_len[l] + w->sym_len[r];
    int32_t id = tok_lookup(w->t, w->buf + w->sym_off[l], size);
    if (id < 0)
        return 0;
    uint32_t u;
    float f = w->t->tokens[id].score;
    memcpy(&u, &f, sizeof(u));
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* order-preserving */
    struct tok_bigram e = {(uint64_t)(~u) << 32 | (uint32_t)l, l, size};
    return tok_heap_push(w, &e);
}

int tok_spm_fragment(struct tok_work *w, const char *s, size_t n, bool prefix)
{
    const struct tokenizer *t = w->t;
    /* escape: ' ' -> U+2581 (3 bytes) */
    if (tok_grow((void **)&w->buf, &w->buf_cap, 3 * n + 3, 1))
        return -ENOMEM;
    size_t m = 0;
    if (prefix) {
        memcpy(w->buf, "\xe2\x96\x81", 3);
        m = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(w->buf + m, "\xe2\x96\x81", 3);
            m += 3;
        } else {
            w->buf[m++] = s[i];
        }
    }
    if (m == 0)
        return 0;
    if (m > INT32_MAX || tok_reserve_syms(w, m))
        return -ENOMEM;
    int32_t ns = 0;
    for (size_t off = 0; off < m; ns++) {
        size_t l = tok_utf8_len((unsigned char)w->buf[off]);
        if (l > m - off)
            l = m - off;
        w->sym_off[ns] = (uint32_t)off;
        w->sym_len[ns] = (uint32_t)l;
        w->sym_prev[ns] = ns - 1;
        off += l;
        w->sym_next[ns] = off < m ? ns + 1 : -1;
    }
    w->heap_n = 0;
    for (int32_t i = 1; i < ns; i++)
        if (tok_spm_try(w, i - 1, i))
            return -ENOMEM;
    while (w->heap_n) {
        struct tok_bigram e = tok_heap_pop(w);
        int32_t right = w->sym_next[e.left];
        uint32_t ll = w->sym_len[e.left], rl = right >= 0 ? w->sym_len[right] : 0;
        if (ll == 0 || rl == 0 || ll + rl != e.size)
            continue;
        w->sym_len[e.left] = ll + rl;
        w->sym_len[right] = 0;
        int32_t nx = w->sym_next[right];
        w->sym_next[e.left] = nx;
        if (nx >= 0)
            w->sym_prev[nx] = e.left;
        if (tok_spm_try(w, w->sym_prev[e.left], e.left) || tok_spm_try(w, e.left, nx))
            return -ENOMEM;
    }
    for (int32_t i = 0; i != -1; i = w->sym_next[i]) {
        const char *p = w->buf + w->sym_off[i];
        int32_t id = tok_lookup(t, p, w->sym_len[i]);
        if (id >= 0) {
            tok_emit(w->out, id);
            continue;
        }
        for (uint32_t j = 0; j < w->sym_len[i]; j++) {
            int32_t b = t->byte_id[(unsigned char)p[j]];
            if (b < 0)
                b = t->unk;
            if (b >= 0)
                tok_emit(w->out, b);
        }
    }
    return 0;
}

/* A piece of the input: raw text (id < 0) or a special token. */
