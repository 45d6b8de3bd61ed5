/*
 * fvec.h - float vector primitives for the attention inner loops: the dot
 * product of two float rows and y += a * x.
 *
 * Owns: the choice between the portable loops and the AVX-512 ones
 * (fvec_avx512.c), made by quant_select_isa() through fvec_select().
 * Must not allocate. Called by src/attn.c.
 */
#ifndef MOESTREAM_FVEC_H
#define MOESTREAM_FVEC_H

#include <stdbool.h>

/* sum_i x[i] * y[i] (n >= 0; the summation order depends on the ISA) */
float fvec_dot(int n, const float *x, const float *y);
/* y[i] += a * x[i] for i < n (each element rounded as a * x[i] + y[i]) */
void fvec_axpy(int n, float *y, float a, const float *x);
/* true: the AVX-512 loops; false: the portable ones. Not thread-safe. */
void fvec_select(bool avx512);

#endif
