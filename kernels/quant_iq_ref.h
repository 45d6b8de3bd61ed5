/*
 * quant_iq_ref.h - scalar reference dequantization and dot products of the
 * codebook ("IQ") 1-3 bit formats and the ternary TQ1_0: IQ2_XXS, IQ2_XS,
 * IQ2_S, IQ3_XXS, IQ1_S, IQ1_M, TQ1_0.
 *
 * Owns: the arithmetic definition of these formats (the numbers of their
 * codebooks live in quant_grids.h). Installed by quant.c as to_float,
 * vec_dot_ref and the initial vec_dot; the SIMD kernels of quant_iq_avx2.c
 * and quant_iq_avx512.c are tested against them. Must not allocate, print
 * or keep state; thread-safe.
 *
 * Every format here has 256-element super-blocks and dots against Q8_K
 * activations: quant_dot_<fmt>_ref(n, s, w, a) sets *s = sum_i w[i] * a[i]
 * over one row of n elements (n a multiple of 256). Each element is an
 * integer q times a float step of its 16- or 32-element sub-block, so the
 * dot is exact in integers per sub-block and float only across them.
 */
#ifndef MOESTREAM_QUANT_IQ_REF_H
#define MOESTREAM_QUANT_IQ_REF_H

#include <stdint.h>

#include "quant_blocks.h"

/* IQ1_M keeps its fp16 super-block scale in the top nibbles of the four
 * 16-bit words of scales[]; this reassembles it. */
qhalf quant_iq1m_scale(const block_iq1_m *b);

void quant_to_float_iq2_xxs_ref(const void *src, float *dst, int64_t n);
void quant_to_float_iq2_xs_ref(const void *src, float *dst, int64_t n);
void quant_to_float_iq2_s_ref(const void *src, float *dst, int64_t n);
void quant_to_float_iq3_xxs_ref(const void *src, float *dst, int64_t n);
void quant_to_float_iq1_s_ref(const void *src, float *dst, int64_t n);
void quant_to_float_iq1_m_ref(const void *src, float *dst, int64_t n);
void quant_to_float_tq1_0_ref(const void *src, float *dst, int64_t n);

void quant_dot_iq2_xxs_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_iq2_xs_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_iq2_s_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_iq3_xxs_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_iq1_s_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_iq1_m_ref(int64_t n, float *s, const void *w, const void *a);
void quant_dot_tq1_0_ref(int64_t n, float *s, const void *w, const void *a);

#endif
