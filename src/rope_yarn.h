/*
 * rope_yarn.h - rotary embeddings with context-length scaling (none, linear,
 * YaRN) as llama.cpp applies them: per rotated pair a blend of interpolated
 * (theta * freq_scale) and extrapolated (theta) angles along a ramp between
 * the correction dimensions of beta_fast / beta_slow, and a magnitude factor
 * (mscale) on cos and sin. Also the attention-scale correction DeepSeek-V2/V3
 * and Kimi-K2 apply (yarn_log_multiplier).
 *
 * Owns: the YaRN arithmetic and its parameters. Allocates nothing.
 */
#ifndef MOESTREAM_ROPE_YARN_H
#define MOESTREAM_ROPE_YARN_H

#include <stdbool.h>

struct rope_yarn {
    int n_rot;             /* rotated dims per head */
    float base;            /* rope.freq_base */
    float freq_scale;      /* 1 / rope.scaling.factor (1: unscaled) */
    float ext_factor;      /* 1 with YaRN, else 0 */
    float attn_factor;     /* the factor llama.cpp hands its rope op */
    float log_mul;         /* yarn_log_multiplier as llama.cpp uses it (GGUF value / 0.1) */
    float corr[2];         /* correction dims: ramp from corr[0] to corr[1] */
};

enum rope_scaling { ROPE_SCALING_NONE = 0, ROPE_SCALING_LINEAR = 1, ROPE_SCALING_YARN = 2 };

/* Fills r. factor <= 1 or ROPE_SCALING_NONE: plain rope. log_mul_gguf is
 * the GGUF key's value (0 when absent). */
void rope_yarn_init(struct rope_yarn *r, int n_rot, float base, enum rope_scaling type, float factor, int n_ctx_orig,
                    float beta_fast, float beta_slow, float log_mul_gguf);

/* cs[i], sn[i] (i < n_rot / 2) for position pos, mscale included. */
void rope_yarn_table(const struct rope_yarn *r, float *cs, float *sn, int pos);

/* The softmax scale of DeepSeek-style MLA attention with head size dk:
 * mscale^2 / sqrt(dk), mscale = 1 + 0.1 * log_mul * ln(factor) (times the
 * unscaled attention factor). */
float rope_yarn_kq_scale(const struct rope_yarn *r, int dk);

#endif
