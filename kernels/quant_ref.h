/*
 * quant_ref.h - scalar reference kernels: fp16/bf16 conversion, dequantization
 * (to_float), activation quantization (from_float) and dot products, one per
 * block format, plus the value tables the formats are defined by.
 *
 * Owns: the arithmetic definition of every supported format. These functions
 * are never replaced: quant.c installs them as traits->to_float, ->from_float
 * and ->vec_dot_ref, and the SIMD variants (quant_avx2.c, quant_avx512.c) are
 * tested against them. Must not allocate, print or keep state; all functions
 * are thread-safe.
 *
 * Dot shapes: quant_dot_<w>_ref(n, s, w, a): *s = sum_i w[i] * a[i] over one
 * row of n elements (n a multiple of the weight block size), with a quantized
 * to the activation type named in the comment (Q8_0 for the 32-element
 * formats, Q8_K for the 256-element formats, F32 for F32/F16/BF16).
 */
#ifndef MOESTREAM_QUANT_REF_H
#define MOESTREAM_QUANT_REF_H

#include <stdint.h>

#include "quant_blocks.h"

/* IEEE binary16 / bfloat16 <-> binary32, round-to-nearest-even; NaN stays NaN. */
float quant_fp16_to_fp32(qhalf h);
qhalf quant_fp32_to_fp16(float f);
float quant_bf16_to_fp32(uint16_t h);
uint16_t quant_fp32_to_bf16(float f);
/* MXFP4 block scale: 2^(e - 128), i.e. half of the e8m0 value 2^(e - 127)
 * (the fp4 table below holds doubled values so it stays integral). */
float quant_e8m0_to_fp32_half(uint8_t e);

/* Format tables (facts from ggml-common.h). */
extern const int8_t quant_kvalues_iq4nl[16]; /* IQ4_NL / IQ4_XS non-linear values */
extern const int8_t quant_kvalues_mxfp4[16]; /* e2m1 values times 2 */
extern const uint32_t quant_iq3s_grid[512];  /* 4 unsigned bytes (1..15, odd) per index */

/* Dequantization: dst[n] = src[n] as float; n a multiple of the block size. */
void quant_to_float_f32_ref(const void *src, float *dst, int64_t n);
void quant_to_float_f16_ref(const void *src, float *dst, int64_t n);
void quant_to_float_bf16_ref(const void *src, float *dst, int64_t n);
void quant_to_float_q4_0_ref(const void *src, float *dst, int64_t n);
void quant_to_float_q4_1_ref(const void *src, float *dst, int64_t n);
void quant_to_float_q5_0_ref(const void *src, float *dst, int64_t n);
void quant_to_float_q5_1_ref(const void *src, float *dst, int64_t n);
void quant_to_float_q8_0_ref(const void *src, float *dst, int64_t n);
void quant_to_float_q2_k_ref(const void *src, float *dst, int64_t n);
void quant_to_float_q3_k_ref(const void *src, float *dst, int64_t n);
void quant_to_float_q4_k_ref(const void *src, float *dst, int64_t n);
void quant_to_float_q5_k_ref(const void *src, float *dst, int64_t n);
void quant_to_float_q6_k_ref(const void *src, float *dst, int64_t n);
void quant_to_float_q8_k_ref(const void *src, float *dst, int64_t n);
void quant_to_float_iq4_nl_ref(const void *src, float *dst, int64_t n);
void quant_to_float_iq4_xs_ref(const void *src, float *dst, int64_t n);
void quant_to_float_iq3_s_ref(const void *src, float *dst, int64_t n);
void quant_to_float_mxfp4_ref(const void *src, float *dst, int64_t n);
void quant_to_float_tq2_0_ref(const void *src, float *dst, int64_t n);

/* Activation quantization: dst = src[n] in the named format.
 * Q8_0: d = max|x| / 127 (stored fp16), q = round(x / d).
 * Q8_K: as ggml, d = -max_signed / 127 where max_signed is the element of
 * largest magnitude, q = min(127, round(x / d)), bsums = sums of 16 q. */
void quant_from_float_f32_ref(const float *src, void *dst, int64_t n);
void quant_from_float_f16_ref(const float *src, void *dst, int64_t n);
void quant_from_float_bf16_ref(const float *src, void *dst, int64_t n);
void quant_from_float_q8_0_ref(const float *src, void *dst, int64_t n);
void quant_from_float_q8_k_ref(const float *src, void *dst, int64_t n);

/* Dots. Weights F32/F16/BF16 . activations F32 */
void quant_dot_f32_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_f16_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_bf16_ref(int64_t n, float *s, const void *w, const void *a);
/* 32-element weights . activations Q8_0 */
void quant_dot_q4_0_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_q4_1_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_q5_0_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_q5_1_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_q8_0_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_iq4_nl_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_mxfp4_ref(int64_t n, float *s, const void *w, const void *a);
/* 256-element weights . activations Q8_K */
void quant_dot_q2_k_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_q3_k_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_q4_k_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_q5_k_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_q6_k_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_iq4_xs_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_iq3_s_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_tq2_0_ref(int64_t n, float *s, const void *w, const void *a);

#endif
