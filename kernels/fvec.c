/*
 * fvec.c - the portable float loops and the dispatch to the AVX-512 ones
 * (fvec_avx512.c) chosen by fvec_select(). Must not allocate.
 */
#include "fvec.h"

#include <math.h>
#include <stddef.h>

#include "quant_ref.h"

float fvec_dot_avx512(int n, const float *x, const float *y);
void fvec_axpy_avx512(int n, float *y, float a, const float *x);
void fvec_dot_rows_avx512(int n, const float *x, const float *const *rows, int nr, float *out);
void fvec_axpy_rows_avx512(int n, float *y, const float *w, const float *const *rows, int nr);
void fvec_axpy_rows_heads_avx512(int n, int ng, float *y, int ys, const float *w, int ws, const float *const *rows,
                                 int nr);
void fvec_dot_rows_f16_avx512(int n, const float *x, const uint16_t *const *rows, int nr, float *out);
void fvec_axpy_rows_heads_f16_avx512(int n, int ng, float *y, int ys, const float *w, int ws,
                                     const uint16_t *const *rows, int nr);
void fvec_to_f16_avx512(int n, uint16_t *dst, const float *src);
float fvec_scale_max_avx512(int n, float *x, float a);
double fvec_exp_sum_avx512(int n, float *x, float mx);
void fvec_normalize_avx512(int n, float *x, double sum);

static float fvec_dot_ref(int n, const float *x, const float *y)
{
    float d = 0;
    for (int i = 0; i < n; i++)
        d += x[i] * y[i];
    return d;
}

static void fvec_axpy_ref(int n, float *y, float a, const float *x)
{
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

static bool use_avx512;

void fvec_select(bool avx512)
{
    use_avx512 = avx512;
}

float fvec_dot(int n, const float *x, const float *y)
{
    return use_avx512 ? fvec_dot_avx512(n, x, y) : fvec_dot_ref(n, x, y);
}

void fvec_axpy(int n, float *y, float a, const float *x)
{
    if (use_avx512)
        fvec_axpy_avx512(n, y, a, x);
    else
        fvec_axpy_ref(n, y, a, x);
}

void fvec_dot_rows(int n, const float *x, const float *const *rows, int nr, float *out)
{
    if (use_avx512) {
        fvec_dot_rows_avx512(n, x, rows, nr, out);
        return;
    }
    for (int r = 0; r < nr; r++)
        out[r] = fvec_dot_ref(n, x, rows[r]);
}

void fvec_axpy_rows(int n, float *y, const float *w, const float *const *rows, int nr)
{
    if (use_avx512) {
        fvec_axpy_rows_avx512(n, y, w, rows, nr);
        return;
    }
    for (int r = 0; r < nr; r++)
        fvec_axpy_ref(n, y, w[r], rows[r]);
}

void fvec_axpy_rows_heads(int n, int ng, float *y, int ys, const float *w, int ws, const float *const *rows, int nr)
{
    if (use_avx512) {
        fvec_axpy_rows_heads_avx512(n, ng, y, ys, w, ws, rows, nr);
        return;
    }
    for (int g = 0; g < ng; g++)
        fvec_axpy_rows(n, y + (size_t)g * ys, w + (size_t)g * ws, rows, nr);
}

void fvec_dot_rows_f16(int n, const float *x, const uint16_t *const *rows, int nr, float *out)
{
    if (use_avx512) {
        fvec_dot_rows_f16_avx512(n, x, rows, nr, out);
        return;
    }
    for (int r = 0; r < nr; r++) {
        float d = 0;
        for (int i = 0; i < n; i++)
            d += x[i] * quant_fp16_to_fp32(rows[r][i]);
        out[r] = d;
    }
}

void fvec_axpy_rows_heads_f16(int n, int ng, float *y, int ys, const float *w, int ws, const uint16_t *const *rows,
                              int nr)
{
    if (use_avx512) {
        fvec_axpy_rows_heads_f16_avx512(n, ng, y, ys, w, ws, rows, nr);
        return;
    }
    for (int g = 0; g < ng; g++) {
        float *yg = y + (size_t)g * ys;
        for (int r = 0; r < nr; r++) {
            const float a = w[(size_t)g * ws + r];
            for (int i = 0; i < n; i++)
                yg[i] += a * quant_fp16_to_fp32(rows[r][i]);
        }
    }
}

void fvec_to_f16(int n, uint16_t *dst, const float *src)
{
    if (use_avx512) {
        fvec_to_f16_avx512(n, dst, src);
        return;
    }
    for (int i = 0; i < n; i++)
        dst[i] = quant_fp32_to_fp16(src[i]);
}

float fvec_scale_max(int n, float *x, float a)
{
    if (use_avx512)
        return fvec_scale_max_avx512(n, x, a);
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) {
        x[i] *= a;
        if (x[i] > mx)
            mx = x[i];
    }
    return mx;
}

double fvec_exp_sum(int n, float *x, float mx)
{
    if (use_avx512)
        return fvec_exp_sum_avx512(n, x, mx);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    return sum;
}

void fvec_normalize(int n, float *x, double sum)
{
    if (use_avx512) {
        fvec_normalize_avx512(n, x, sum);
        return;
    }
    for (int i = 0; i < n; i++)
        x[i] = (float)(x[i] / sum);
}
