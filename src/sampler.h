/*
 * sampler.h - picks the next token from logits: greedy, temperature, top-k,
 * top-p, min-p, repetition penalty over the last penalty_last_n tokens, and a
 * seeded generator so runs repeat. Allocates only in sampler_init.
 */
#ifndef MOESTREAM_SAMPLER_H
#define MOESTREAM_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

struct sampler_opts {
    float temperature;     /* <= 0: greedy */
    int top_k;             /* <= 0: off */
    float top_p;           /* >= 1: off */
    float min_p;           /* <= 0: off */
    float repeat_penalty;  /* 1: off */
    int repeat_last_n;     /* tokens of history the penalty looks at */
    uint64_t seed;
};

/* llama.cpp-like defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05,
 * repeat penalty 1.0 over 64 tokens, seed from sampler_random_seed(). */
void sampler_default_opts(struct sampler_opts *o);

/* A seed from the clock (nanoseconds) and the process id, below 2^32 so it
 * is easy to type back with -s. */
uint64_t sampler_random_seed(void);

/* 0, or -EINVAL with a one-line message naming the option and its range:
 * temperature finite (<= 0 is greedy), top-p and min-p in [0, 1], repeat
 * penalty finite and > 0. */
int sampler_check_opts(const struct sampler_opts *o, char *err, size_t errlen);

struct sampler;

struct sampler *sampler_init(const struct sampler_opts *o, int n_vocab);
void sampler_free(struct sampler *s);

/* Records a token in the penalty history (prompt and generated tokens). */
void sampler_accept(struct sampler *s, int32_t token);

/* Chooses a token from logits[n_vocab]; logits are modified in place. */
int32_t sampler_sample(struct sampler *s, float *logits);

#endif
