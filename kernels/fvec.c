/*
 * fvec.c - the portable float loops and the dispatch to the AVX-512 ones
 * (fvec_avx512.c) chosen by fvec_select(). Must not allocate.
 */
#include "fvec.h"

float fvec_dot_avx512(int n, const float *x, const float *y);
void fvec_axpy_avx512(int n, float *y, float a, const float *x);
void fvec_dot_rows_avx512(int n, const float *x, const float *const *rows, int nr, float *out);
void fvec_axpy_rows_avx512(int n, float *y, const float *w, const float *const *rows, int nr);

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
