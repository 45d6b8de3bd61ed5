/*
 * fvec_avx512.c - AVX-512 float dot product and y += a * x (fvec.h), for
 * the attention of every (row, head) pair: rows of head_dim floats, usually
 * 64..256, so one pass of 16-lane FMAs and a masked tail; F16 rows are
 * widened by vcvtph2ps on load. Must not allocate
 * or run on a CPU without AVX-512F (fvec_select is told by quant.c).
 */
#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

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

/* The row loops below exist for float rows and for half rows (the F16 KV
 * cache). Each is written once, as an always-inlined body that reads row r
 * through rf[r] (float) or rh[r] (half, widened exactly by vcvtph2ps)
 * according to the constant `half`; the entry points instantiate it. Per
 * element both give the same operations, so half rows give the bits of the
 * float loop on the rows widened to float. */
#define FVEC_INLINE static inline __attribute__((always_inline))

/* sixteen elements i.. of row r, or the lanes of mask k (the rest zero) */
FVEC_INLINE __m512 fvec_ld(const float *const *rf, const uint16_t *const *rh, int r, int i, const int half)
{
    return half ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(rh[r] + i))) : _mm512_loadu_ps(rf[r] + i);
}

FVEC_INLINE __m512 fvec_ld_mask(__mmask16 k, const float *const *rf, const uint16_t *const *rh, int r, int i,
                                const int half)
{
    return half ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, rh[r] + i)) : _mm512_maskz_loadu_ps(k, rf[r] + i);
}

/* 16-lane chunks of x against sixteen rows (rows past nr repeat row
 * nr - 1 and are dropped at the store), loops of constant trip count so the
 * sixteen accumulators stay in registers; per row the same operations
 * whatever nr is */
FVEC_INLINE void fvec_dot_rows_body(int n, const float *x, const float *const *rf, const uint16_t *const *rh, int nr,
                                    float *out, const int half)
{
    const float *pf[16];
    const uint16_t *ph[16];
    for (int r = 0; r < 16; r++) {
        if (half)
            ph[r] = rh[r < nr ? r : nr - 1];
        else
            pf[r] = rf[r < nr ? r : nr - 1];
    }
    __m512 acc[16];
#pragma GCC unroll 16
    for (int r = 0; r < 16; r++)
        acc[r] = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 xv = _mm512_loadu_ps(x + i);
#pragma GCC unroll 16
        for (int r = 0; r < 16; r++)
            acc[r] = _mm512_fmadd_ps(xv, fvec_ld(pf, ph, r, i, half), acc[r]);
    }
    if (i < n) {
        const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        const __m512 xv = _mm512_maskz_loadu_ps(k, x + i);
#pragma GCC unroll 16
        for (int r = 0; r < 16; r++)
            acc[r] = _mm512_fmadd_ps(xv, fvec_ld_mask(k, pf, ph, r, i, half), acc[r]);
    }
    _mm512_mask_storeu_ps(out, (__mmask16)((1u << nr) - 1), fvec_hsum16(acc));
}

/* one head: y[i] += w[r] * rows[r][i], r in order, 64 floats per pass in
 * registers, then 16 at a time (masked tail) */
FVEC_INLINE void fvec_axpy_rows_body(int n, float *y, const float *w, const float *const *rf,
                                     const uint16_t *const *rh, int nr, const int half)
{
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 y0 = _mm512_loadu_ps(y + i), y1 = _mm512_loadu_ps(y + i + 16);
        __m512 y2 = _mm512_loadu_ps(y + i + 32), y3 = _mm512_loadu_ps(y + i + 48);
        for (int r = 0; r < nr; r++) {
            const __m512 a = _mm512_set1_ps(w[r]);
            y0 = _mm512_fmadd_ps(a, fvec_ld(rf, rh, r, i, half), y0);
            y1 = _mm512_fmadd_ps(a, fvec_ld(rf, rh, r, i + 16, half), y1);
            y2 = _mm512_fmadd_ps(a, fvec_ld(rf, rh, r, i + 32, half), y2);
            y3 = _mm512_fmadd_ps(a, fvec_ld(rf, rh, r, i + 48, half), y3);
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
            y0 = _mm512_fmadd_ps(_mm512_set1_ps(w[r]), fvec_ld_mask(k, rf, rh, r, i, half), y0);
        _mm512_mask_storeu_ps(y + i, k, y0);
    }
}

/* Four heads at once over 64-float chunks (sixteen accumulators): each value
 * row chunk is loaded once for the four heads; per element the same fma
 * sequence as fvec_axpy_rows_body (y = w[r] * x + y, r in order). Heads
 * past a multiple of four and the tail past a multiple of 64 go through
 * fvec_axpy_rows_body, which computes the same per element. */
FVEC_INLINE void fvec_axpy_rows_heads_body(int n, int ng, float *y, int ys, const float *w, int ws,
                                           const float *const *rf, const uint16_t *const *rh, int nr,
                                           const int half)
{
    const int n64 = n & ~63;
    int g = 0;
    for (; g + 4 <= ng; g += 4) {
        float *y0 = y + (size_t)g * ys;
        const float *w0 = w + (size_t)g * ws;
        for (int i = 0; i < n64; i += 64) {
            __m512 acc[4][4];
#pragma GCC unroll 4
            for (int h = 0; h < 4; h++)
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++)
                    acc[h][c] = _mm512_loadu_ps(y0 + (size_t)h * ys + i + 16 * c);
            for (int r = 0; r < nr; r++) {
                const __m512 x0 = fvec_ld(rf, rh, r, i, half), x1 = fvec_ld(rf, rh, r, i + 16, half);
                const __m512 x2 = fvec_ld(rf, rh, r, i + 32, half), x3 = fvec_ld(rf, rh, r, i + 48, half);
#pragma GCC unroll 4
                for (int h = 0; h < 4; h++) {
                    const __m512 a = _mm512_set1_ps(w0[(size_t)h * ws + r]);
                    acc[h][0] = _mm512_fmadd_ps(a, x0, acc[h][0]);
                    acc[h][1] = _mm512_fmadd_ps(a, x1, acc[h][1]);
                    acc[h][2] = _mm512_fmadd_ps(a, x2, acc[h][2]);
                    acc[h][3] = _mm512_fmadd_ps(a, x3, acc[h][3]);
                }
            }
#pragma GCC unroll 4
            for (int h = 0; h < 4; h++)
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++)
                    _mm512_storeu_ps(y0 + (size_t)h * ys + i + 16 * c, acc[h][c]);
        }
        if (n64 < n) {
            const float *tf[64];
            const uint16_t *th[64];
            for (int r0 = 0; r0 < nr; r0 += 64) {
                const int m = nr - r0 < 64 ? nr - r0 : 64;
                for (int r = 0; r < m; r++) {
                    if (half)
                        th[r] = rh[r0 + r] + n64;
                    else
                        tf[r] = rf[r0 + r] + n64;
                }
                for (int h = 0; h < 4; h++)
                    fvec_axpy_rows_body(n - n64, y0 + (size_t)h * ys + n64, w0 + (size_t)h * ws + r0, tf, th, m,
                                        half);
            }
        }
    }
    for (; g < ng; g++)
        fvec_axpy_rows_body(n, y + (size_t)g * ys, w + (size_t)g * ws, rf, rh, nr, half);
}

void fvec_dot_rows_avx512(int n, const float *x, const float *const *rows, int nr, float *out)
{
    fvec_dot_rows_body(n, x, rows, NULL, nr, out, 0);
}

void fvec_axpy_rows_avx512(int n, float *y, const float *w, const float *const *rows, int nr)
{
    fvec_axpy_rows_body(n, y, w, rows, NULL, nr, 0);
}

void fvec_axpy_rows_heads_avx512(int n, int ng, float *y, int ys, const float *w, int ws, const float *const *rows,
                                 int nr)
{
    fvec_axpy_rows_heads_body(n, ng, y, ys, w, ws, rows, NULL, nr, 0);
}

void fvec_dot_rows_f16_avx512(int n, const float *x, const uint16_t *const *rows, int nr, float *out)
{
    fvec_dot_rows_body(n, x, NULL, rows, nr, out, 1);
}

void fvec_axpy_rows_heads_f16_avx512(int n, int ng, float *y, int ys, const float *w, int ws,
                                     const uint16_t *const *rows, int nr)
{
    fvec_axpy_rows_heads_body(n, ng, y, ys, w, ws, NULL, rows, nr, 1);
}

/* vcvtps2ph, round to nearest even: the bits of quant_fp32_to_fp16 */
void fvec_to_f16_avx512(int n, uint16_t *dst, const float *src)
{
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if (i < n) {
        const __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        _mm256_mask_storeu_epi16(dst + i, k,
                                 _mm512_cvtps_ph(_mm512_maskz_loadu_ps(k, src + i),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
}

float fvec_scale_max_avx512(int n, float *x, float a)
{
    const __m512 va = _mm512_set1_ps(a);
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), va);
        _mm512_mask_storeu_ps(x + i, k, v);
        mx = _mm512_mask_max_ps(mx, k, mx, v);
    }
    return _mm512_reduce_max_ps(mx);
}

/* e^x for x <= 0 (the softmax's x - max): x = n ln2 + r, |r| <= ln2 / 2,
 * e^r by its degree-6 Taylor polynomial (relative error about 2e-7), times
 * 2^n by vscalefps; below -104 the result is 0 */
static inline __m512 fvec_exp_neg(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

double fvec_exp_sum_avx512(int n, float *x, float mx)
{
    const __m512 vm = _mm512_set1_ps(mx);
    __m512 sum = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 e = fvec_exp_neg(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm));
        _mm512_mask_storeu_ps(x + i, k, e);
        sum = _mm512_mask_add_ps(sum, k, sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

void fvec_normalize_avx512(int n, float *x, double sum)
{
    const __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
    for (int i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), inv));
    }
}
