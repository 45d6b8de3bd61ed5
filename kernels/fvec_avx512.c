/*
 * fvec_avx512.c - AVX-512 float dot product and y += a * x (fvec.h), for
 * the attention of every (row, head) pair: rows of head_dim floats, usually
 * 64..256, so one pass of 16-lane FMAs and a masked tail. Must not allocate
 * or run on a CPU without AVX-512F (fvec_select is told by quant.c).
 */
#include <immintrin.h>

float fvec_dot_avx512(int n, const float *x, const float *y);
void fvec_axpy_avx512(int n, float *y, float a, const float *x);
void fvec_dot_rows_avx512(int n, const float *x, const float *const *rows, int nr, float *out);
void fvec_axpy_rows_avx512(int n, float *y, const float *w, const float *const *rows, int nr);

float fvec_dot_avx512(int n, const float *x, const float *y)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
    }
    for (; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, x + i), _mm512_maskz_loadu_ps(k, y + i), a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

void fvec_axpy_avx512(int n, float *y, float a, const float *x)
{
    const __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, k, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(k, x + i), _mm512_maskz_loadu_ps(k, y + i)));
    }
}

/* lanes of the result: the lane sums of a[0..15], in order */
static inline __m512 fvec_hsum16(const __m512 a[16])
{
    __m512 s[8], u[4];
    for (int i = 0; i < 8; i++)
        s[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    /* s[i] 128-bit lane: [a2i: 0+2, a2i+1: 0+2, a2i: 1+3, a2i+1: 1+3] */
    for (int i = 0; i < 4; i++)
        u[i] = _mm512_add_ps(_mm512_shuffle_ps(s[2 * i], s[2 * i + 1], 0x44),
                             _mm512_shuffle_ps(s[2 * i], s[2 * i + 1], 0xEE));
    /* u[i] 128-bit lane L: the partial sums (over lane L) of rows 4i..4i+3 */
    const __m512 v0 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x88), _mm512_shuffle_f32x4(u[0], u[1], 0xDD));
    const __m512 v1 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x88), _mm512_shuffle_f32x4(u[2], u[3], 0xDD));
    return _mm512_add_ps(_mm512_shuffle_f32x4(v0, v1, 0x88), _mm512_shuffle_f32x4(v0, v1, 0xDD));
}

/* 16-lane chunks of x stay in registers for every row (head_dim <= 256) */
void fvec_dot_rows_avx512(int n, const float *x, const float *const *rows, int nr, float *out)
{
    __m512 acc[16];
    for (int r = 0; r < 16; r++)
        acc[r] = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 xv = _mm512_maskz_loadu_ps(k, x + i);
        for (int r = 0; r < nr; r++)
            acc[r] = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(k, rows[r] + i), acc[r]);
    }
    _mm512_mask_storeu_ps(out, (__mmask16)((1u << nr) - 1), fvec_hsum16(acc));
}

void fvec_axpy_rows_avx512(int n, float *y, const float *w, const float *const *rows, int nr)
{
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 y0 = _mm512_loadu_ps(y + i), y1 = _mm512_loadu_ps(y + i + 16);
        __m512 y2 = _mm512_loadu_ps(y + i + 32), y3 = _mm512_loadu_ps(y + i + 48);
        for (int r = 0; r < nr; r++) {
            const __m512 a = _mm512_set1_ps(w[r]);
            const float *x = rows[r] + i;
            y0 = _mm512_fmadd_ps(a, _mm512_loadu_ps(x), y0);
            y1 = _mm512_fmadd_ps(a, _mm512_loadu_ps(x + 16), y1);
            y2 = _mm512_fmadd_ps(a, _mm512_loadu_ps(x + 32), y2);
            y3 = _mm512_fmadd_ps(a, _mm512_loadu_ps(x + 48), y3);
        }
        _mm512_storeu_ps(y + i, y0);
        _mm512_storeu_ps(y + i + 16, y1);
        _mm512_storeu_ps(y + i + 32, y2);
        _mm512_storeu_ps(y + i + 48, y3);
    }
    for (; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 y0 = _mm512_maskz_loadu_ps(k, y + i);
        for (int r = 0; r < nr; r++)
            y0 = _mm512_fmadd_ps(_mm512_set1_ps(w[r]), _mm512_maskz_loadu_ps(k, rows[r] + i), y0);
        _mm512_mask_storeu_ps(y + i, k, y0);
    }
}
