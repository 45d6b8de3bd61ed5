/*
 * matvec.h - matrix-vector and matrix-matrix drivers over quantized weights.
 *
 * Owns: splitting rows over the pool's threads, activation quantization into
 * the weight type's vec_dot_type. The kernels own the arithmetic of a row.
 * Must not allocate: callers pass scratch sized with matvec_act_size().
 */
#ifndef MOESTREAM_MATVEC_H
#define MOESTREAM_MATVEC_H

#include <stddef.h>
#include <stdint.h>

#include "pool.h"
#include "quant.h"

/* Activation precision of the integer dot products, chosen by the caller
 * for every product (no process-wide state, so engines, threads and call
 * sites never race over it):
 *   MATVEC_ACT16  a Q8 quantization plus a Q8 quantization of its residual:
 *                 about 16-bit activations, near-exact logits, twice the
 *                 integer work for the same weight traffic;
 *   MATVEC_ACT8   one Q8 pass, as llama.cpp.
 * Weight types whose activations stay float (F32, F16, BF16) ignore it. The
 * same value must be passed to matvec_act_size, matvec_quantize_act and the
 * product that reads the quantized rows. */
enum matvec_act { MATVEC_ACT8 = 8, MATVEC_ACT16 = 16 };

/* Bytes needed to hold n activations quantized for weights of type wt. */
size_t matvec_act_size(enum quant_type wt, int64_t n, enum matvec_act act);

/* xq = x quantized to quant_traits(wt)->vec_dot_type (n elements). */
void matvec_quantize_act(enum quant_type wt, const float *x, void *xq, int64_t n, enum matvec_act act);

/* Rows r < n_rows of x (x_stride floats apart) quantized as
 * matvec_quantize_act does, row r at xq + r * matvec_act_size(wt, n, act),
 * spread over the pool's threads (same bytes as one call per row). */
void matvec_quantize_rows(struct pool *p, enum quant_type wt, const float *x, size_t x_stride, void *xq, int64_t n,
                          int64_t n_rows, enum matvec_act act);

/* y[n_rows] = W[n_rows][n] . x[n]; W of type wt (row-major, rows of
 * quant_row_size(wt, n) bytes), xq from matvec_quantize_act. */
void matvec(struct pool *p, float *y, const void *W, enum quant_type wt,
            int64_t n_rows, int64_t n, const void *xq, enum matvec_act act);

/* Y[n_tok][n_rows] = X[n_tok][n] . W^T; Xq holds n_tok rows, each
 * matvec_act_size(wt, n, act) bytes. Reuses each weight block across tokens. */
void matmul(struct pool *p, float *Y, const void *W, enum quant_type wt,
            int64_t n_rows, int64_t n, const void *Xq, int64_t n_tok, enum matvec_act act);

/* Rows [r0, r1) of Y[n_tok][y_stride] = X[n_tok][n] . W^T on the calling
 * thread (no pool): for callers that spread several small products over the
 * pool themselves (a batch of experts). Same numbers as matvec/matmul. */
void matmul_rows(float *Y, int64_t y_stride, const void *W, enum quant_type wt, int64_t r0, int64_t r1, int64_t n,
                 const void *Xq, int64_t n_tok, enum matvec_act act);

#endif
