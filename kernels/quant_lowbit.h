/*
 * quant_lowbit.h - moestream's own low-bit formats for requantized routed
 * experts: HQ2 (2.0625 bits per weight) and HQ3 (3.0625), and the rotated
 * activation type Q8_KH their dots take.
 *
 * The format (block structs in quant_blocks.h):
 * - A weight row is cut into groups of 256. Each group is rotated,
 *   r = R w with R = H D / 16: D a fixed diagonal of +-1 (quant_lowbit_sign,
 *   one bit per position, the same for every group), H the 256x256
 *   Walsh-Hadamard matrix (Sylvester order, entries +-1), and /16 makes R
 *   orthogonal. Rotated weights of a trained matrix are close to Gaussian,
 *   whatever outliers the row had.
 * - Each rotated value is one level of a fixed codebook (the Lloyd-Max
 *   quantizer of a unit Gaussian, 4 levels for HQ2, 8 for HQ3, stored as
 *   int8 with the outermost level 127) times the block scale:
 *   r[i] = D * levels[idx[i]] / 127, D an fp16 (the magnitude of the
 *   outermost level, which keeps D in fp16's normal range).
 * - Activations are rotated the same way, once per activation row and group
 *   (not once per weight row), then quantized as Q8_K: Q8_KH is block_q8_K
 *   of R x. Since R is orthogonal, w . x = (R w) . (R x), so a dot is an
 *   integer sum of codebook levels times int8 activations per block.
 *   Q8_KH differs from Q8_K in one field: the dots need only the sum of a
 *   block's 256 activations, so bsums holds, in its first 4 bytes, that sum
 *   times -128 as an int32 (the AVX-512 dot stores its levels + 128 for
 *   vpdpbusd and starts each block's integer sum from this: a plain load),
 *   and zeros after it.
 * - No calibration data: the scale of each block is fitted to the block's
 *   own rotated values (alternating assignment and least-squares scale).
 *
 * Owns: the format facts (sign pattern, codebooks), the rotation, the
 * quantizers used at split time, and the scalar reference kernels
 * (dequantization, activation quantization, dot) installed in the traits
 * table by quant.c. The SIMD dots live in quant_lowbit_avx2.c and
 * quant_lowbit_avx512.c and are tested against these.
 * Must not allocate, print or keep state; every function is thread-safe.
 */
#ifndef MOESTREAM_QUANT_LOWBIT_H
#define MOESTREAM_QUANT_LOWBIT_H

#include <stddef.h>
#include <stdint.h>

#include "quant_blocks.h"

/* Codebooks: int8 levels in ascending order (value = D * level / 127). */
extern const int8_t quant_hq2_levels[4];
extern const int8_t quant_hq3_levels[8];
/* The sign diagonal D: bit i of byte i / 8 set means position i is negated. */
extern const uint8_t quant_lowbit_sign[QK_K / 8];

/* x[256] = R x[256] in place (R = H D / 16, orthogonal). */
void quant_lowbit_rotate(float *x);
/* x[256] = R^T x[256] in place (the inverse of quant_lowbit_rotate). */
void quant_lowbit_unrotate(float *x);

/* Weight quantizers (split time): dst = src[n] in HQ2 / HQ3; n a multiple
 * of 256. Each 256-group is rotated, then its scale and levels are fitted
 * to minimize the squared error of the rotated group (equal to the error of
 * the group itself, R being orthogonal). */
void quant_quantize_hq2(const float *src, void *dst, int64_t n);
void quant_quantize_hq3(const float *src, void *dst, int64_t n);

/* Weighted quantizer (split time, with self-calibration statistics): one
 * group of 256 columns of n_rows rows, row r's 256 floats at src + r *
 * src_stride, its block written at dst + r * dst_stride (type QT_HQ2 or
 * QT_HQ3). H[256][256] = E[x x^T] of the inputs this group multiplies
 * (unrotated; NULL or unusable: the plain fit). The levels are chosen by
 * GPTQ in the rotated domain (each rounding error is compensated by the
 * positions after it, weighted by R H R^T plus QUANT_LOWBIT_DAMP times its
 * mean diagonal), and the scale among a few candidates by the error
 * (w - q)^T R H R^T (w - q). work: QUANT_LOWBIT_WORK doubles. */
/* A strong shrinkage of the statistics towards their mean diagonal: a few
 * thousand self-generated tokens give a noisy 256x256 estimate. Measured on
 * tinymoe q2 (2.45 bpw, 4096 tokens, ppl of 20 chunks; plain fit 9.673):
 * 0.01 -> 10.08, 0.1 -> 9.46, 0.3 -> 9.36, 1 -> 9.22, 3 -> 9.15, 10 -> 9.26. */
#define QUANT_LOWBIT_DAMP 3.0
#define QUANT_LOWBIT_WORK (3 * QK_K * QK_K)
void quant_quantize_hq_group(int type, const float *src, size_t src_stride, uint8_t *dst, size_t dst_stride,
                             int64_t n_rows, const float *H, double *work);

/* Reference kernels (traits table). to_float returns the unrotated weights. */
void quant_to_float_hq2_ref(const void *src, float *dst, int64_t n);
void quant_to_float_hq3_ref(const void *src, float *dst, int64_t n);
/* Q8_KH: from_float rotates each 256-group and quantizes it as Q8_K;
 * to_float dequantizes and rotates back, so x - to_float(from_float(x)) is
 * the residual in the original domain (the two-pass activations of matvec). */
void quant_from_float_q8_kh_ref(const float *src, void *dst, int64_t n);
void quant_to_float_q8_kh_ref(const void *src, float *dst, int64_t n);
/* Q8_K block -> Q8_KH block of the same values: bsums rewritten (above) */
void quant_q8_kh_offset(block_q8_K *y);
/* s = w[n] . x[n]; w HQ2 / HQ3, a = x as Q8_KH */
void quant_dot_hq2_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_hq3_ref(int64_t n, float *s, const void *w, const void *a);

#endif
