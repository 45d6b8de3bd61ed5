/*
 * fvec.h - float vector primitives for the attention inner loops: the dot
 * product of two float rows and y += a * x, one row or a block of rows, with
 * the rows in float or (an F16 KV cache) IEEE half, and the float -> half
 * rounding of the cache writes.
 *
 * Owns: the choice between the portable loops and the AVX-512 ones
 * (fvec_avx512.c), made by quant_select_isa() through fvec_select().
 * Must not allocate. Called by src/attn.c.
 */
#ifndef MOESTREAM_FVEC_H
#define MOESTREAM_FVEC_H

#include <stdbool.h>
#include <stdint.h>

/* sum_i x[i] * y[i] (n >= 0; the summation order depends on the ISA) */
float fvec_dot(int n, const float *x, const float *y);
/* y[i] += a * x[i] for i < n (each element rounded as a * x[i] + y[i]) */
void fvec_axpy(int n, float *y, float a, const float *x);
/* out[r] = fvec_dot-like dot of x with rows[r] for r < nr (1 <= nr <= 16):
 * one query against a block of keys; per row the same operations whatever
 * nr is (the summation order may differ from fvec_dot's) */
void fvec_dot_rows(int n, const float *x, const float *const *rows, int nr, float *out);
/* y[i] += w[r] * rows[r][i], r = 0, 1, ..., nr - 1 in order: exactly nr
 * fvec_axpy calls, with y kept in registers between them */
void fvec_axpy_rows(int n, float *y, const float *w, const float *const *rows, int nr);
/* y_g[i] += w_g[r] * rows[r][i] for every head g < ng (y_g = y + g * ys,
 * w_g = w + g * ws), r in order: per head exactly fvec_axpy_rows, with
 * each value row read once for all the heads */
void fvec_axpy_rows_heads(int n, int ng, float *y, int ys, const float *w, int ws, const float *const *rows, int nr);
/* The same over rows of IEEE half floats (an F16 KV cache): each element
 * widened to float exactly, then the float arithmetic above; per row the
 * same operations whatever nr is, and fvec_axpy_rows_heads_f16 per head
 * exactly nr in-order fmas (y = w[r] * x + y) */
void fvec_dot_rows_f16(int n, const float *x, const uint16_t *const *rows, int nr, float *out);
void fvec_axpy_rows_heads_f16(int n, int ng, float *y, int ys, const float *w, int ws, const uint16_t *const *rows,
                              int nr);
/* dst[i] = src[i] as IEEE half bits, rounded to nearest even (overflow to
 * infinity); the same bits on both ISAs */
void fvec_to_f16(int n, uint16_t *dst, const float *src);
/* The softmax pieces, one (row, head) at a time: x[i] *= a, returning the
 * largest x[i] (-INFINITY for n = 0); x[i] = e^(x[i] - mx), returning their
 * sum; x[i] = x[i] / sum. Per element the same operations whatever n is. */
float fvec_scale_max(int n, float *x, float a);
double fvec_exp_sum(int n, float *x, float mx);
void fvec_normalize(int n, float *x, double sum);
/* true: the AVX-512 loops; false: the portable ones. Not thread-safe. */
void fvec_select(bool avx512);

#endif
