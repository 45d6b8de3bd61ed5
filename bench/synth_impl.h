/*
 * synth_impl.h - what the synthetic-model generator's files share (bench/
 * synth.c, synth_ds2.c, synth_q35.c, synth_oss.c, synth_vocab.c): the tensor
 * table being planned, the hooks of the other layouts, the random numbers
 * and the vocabulary. Internal to the generator; see synth.h for the contract.
 */
#ifndef MOESTREAM_SYNTH_IMPL_H
#define MOESTREAM_SYNTH_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "synth.h"

struct gguf_writer;

/* Tensors per block at most (deepseek2 MoE layers have 18). */
#define SYNTH_MAX_LAYER_TENSORS 24

enum tkind {
    TK_EMBD, TK_OUTPUT_NORM, TK_OUTPUT,
    TK_ATTN_NORM, TK_Q, TK_K, TK_V, TK_Q_NORM, TK_K_NORM, TK_O,
    TK_FFN_NORM, TK_ROUTER, TK_GATE_EXPS, TK_UP_EXPS, TK_DOWN_EXPS,
    /* deepseek2 */
    TK_Q_A, TK_Q_A_NORM, TK_Q_B, TK_KV_A, TK_KV_A_NORM, TK_K_B, TK_V_B,
    TK_GATE, TK_UP, TK_DOWN, TK_GATE_SHEXP, TK_UP_SHEXP, TK_DOWN_SHEXP, TK_PROBS_B,
    /* qwen35moe (bench/synth_q35.c) */
    TK_QKV, TK_ZGATE, TK_SSM_CONV, TK_SSM_DT, TK_SSM_A, TK_SSM_BETA, TK_SSM_ALPHA,
    TK_SSM_NORM, TK_SSM_OUT, TK_SH_GATE_INP, TK_SH_GATE, TK_SH_UP, TK_SH_DOWN,
    /* gpt-oss (bench/synth_oss.c): F32 biases, sinks, per-expert biases */
    TK_BIAS, TK_SINKS, TK_EXPS_BIAS,
};

struct stensor {
    char name[64];
    enum tkind kind;
    int layer;            /* -1 for non-block tensors */
    int type;             /* enum quant_type */
    uint32_t n_dims;
    int64_t ne[4];        /* unused dims 1 */
    uint64_t size;        /* bytes */
    float sigma;          /* std of the dequantized values (quantized kinds) */
};

struct plan {
    struct synth_shape sh;   /* preset with the option overrides applied */
    const struct synth_options *opt;
    int n_tensor;
    struct stensor *t;       /* [n_tensor] */
    uint64_t data_bytes;
};

/* Appends tensor `base` of block `layer` (-1: not a block tensor) to the
 * plan with the scheme's type for kind k. 0 or -EINVAL with err. */
int synth_plan_add(struct plan *p, enum tkind k, int layer, const char *base, uint32_t n_dims, int64_t ne0,
                   int64_t ne1, int64_t ne2, char *err, size_t errlen);
/* The same with the tensor's name after "blk.L." taken verbatim ("ssm_a"). */
int synth_plan_add_named(struct plan *p, enum tkind k, int layer, const char *name, uint32_t n_dims, int64_t ne0,
                         int64_t ne1, int64_t ne2, char *err, size_t errlen);

/* llama.cpp's use_more_bits(i, n) of the _M mixes. */
bool synth_use_more_bits(int i, int n);

/* deepseek2 (bench/synth_ds2.c): the tensors of block L, the type of a
 * tensor kind in a scheme, and the architecture's metadata keys. */
int synth_ds2_layer(struct plan *p, int L, char *err, size_t errlen);
int synth_ds2_type(const struct synth_shape *sh, enum synth_quant q, enum tkind k, int layer);
int synth_ds2_keys(struct gguf_writer *w, const struct synth_shape *s);

/* qwen35moe (bench/synth_q35.c): the tensors of block L (*n_attn_seen counts
 * the full-attention layers planned so far, for attn_v's mix), and the
 * architecture's metadata keys. */
int synth_q35_layer(struct plan *p, int L, int *n_attn_seen, char *err, size_t errlen);
int synth_q35_keys(struct gguf_writer *w, const struct synth_shape *s);

/* gpt-oss (bench/synth_oss.c): the tensors of block L and the keys. */
int synth_oss_layer(struct plan *p, int L, char *err, size_t errlen);
int synth_oss_keys(struct gguf_writer *w, const struct synth_shape *s);

/* splitmix64 random numbers (synth.c's blocks, synth_vocab.c's words). */
/* splitmix64: one 64-bit output per step, good enough for noise and fast
 * (about 1 ns per call); the whole stream of a unit derives from its seed. */
struct rng {
    uint64_t s;
};

static inline uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t mix64(uint64_t a, uint64_t b)
{
    struct rng r = { a ^ (b * 0xd6e8feb86659fd93ull) };
    rng_next(&r);
    return rng_next(&r);
}

/* uniform in [0, 1) */
static inline float rng_unif(struct rng *r)
{
    return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

/* uniform integer in [lo, hi] */
static inline int rng_int(struct rng *r, int lo, int hi)
{
    return lo + (int)(((rng_next(r) >> 32) * (uint64_t)(hi - lo + 1)) >> 32);
}

static inline void rng_fill(struct rng *r, void *dst, size_t n)
{
    uint8_t *p = dst;
    while (n >= 8) {
        uint64_t v = rng_next(r);
        memcpy(p, &v, 8);
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t v = rng_next(r);
        memcpy(p, &v, n);
    }
}

/* A generated vocabulary (synth_vocab.c). */
struct vocab {
    int n;                /* tokens */
    char **tok;           /* [n] UTF-8 */
    int32_t *type;        /* [n] llama token types: 1 normal 2 unknown 3 control 4 user 5 unused 6 byte */
    float *score;         /* [n] (SentencePiece only) */
    int n_merge;
    char **merge;         /* [n_merge] "left right" (BPE only) */
    int bos, eos, unk, pad;
    uint64_t bytes;       /* total string bytes, for the file-size estimate */
};

/* Byte-level BPE in the Qwen layout / SentencePiece in the llama layout, of
 * n_vocab tokens from seed. 0 or -ENOMEM; vocab_free releases either. */
int vocab_build_bpe(struct vocab *v, int n_vocab, uint64_t seed);
int vocab_build_spm(struct vocab *v, int n_vocab, uint64_t seed);
void vocab_free(struct vocab *v);

#endif
