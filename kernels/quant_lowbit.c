/*
 * quant_lowbit.c - HQ2 / HQ3 / Q8_KH (format in quant_lowbit.h): the
 * rotation, the split-time quantizers and the scalar reference kernels.
 */
#include "quant_lowbit.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "quant_ref.h"

/* Lloyd-Max levels of a unit Gaussian scaled so the outermost is 127:
 * 4 levels +-0.4528, +-1.5104 (x 84.08); 8 levels +-0.2451, +-0.7560,
 * +-1.3439, +-2.1519 (x 59.02). Mean squared error per unit variance of the
 * unrounded quantizers: 0.1175 and 0.0345. */
const int8_t quant_hq2_levels[4] = { -127, -38, 38, 127 };
const int8_t quant_hq3_levels[8] = { -127, -79, -45, -14, 14, 45, 79, 127 };

/* 256 pseudo-random bits (Python random.seed(15), getrandbits(8) x 32) */
const uint8_t quant_lowbit_sign[QK_K / 8] = {
    0xf7, 0x35, 0x02, 0x85, 0xbc, 0x09, 0x28, 0xe9, 0xfc, 0x3d, 0x04, 0x0e, 0xe1, 0xce, 0xae, 0x25,
    0xdb, 0xb1, 0xff, 0x5e, 0x3d, 0x1d, 0x56, 0x77, 0xb5, 0x5b, 0x47, 0x64, 0x43, 0x58, 0x3a, 0xef,
};

static inline int lowbit_neg(int i)
{
    return (quant_lowbit_sign[i >> 3] >> (i & 7)) & 1;
}

/* x = H x / 16, H the Sylvester Walsh-Hadamard matrix of order 256 */
static void lowbit_fwht(float *x)
{
    for (int h = 1; h < QK_K; h *= 2)
        for (int i = 0; i < QK_K; i += 2 * h)
            for (int j = i; j < i + h; j++) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
    for (int i = 0; i < QK_K; i++)
        x[i] *= 1.0f / 16.0f;
}

void quant_lowbit_rotate(float *x)
{
    for (int i = 0; i < QK_K; i++)
        if (lowbit_neg(i))
            x[i] = -x[i];
    lowbit_fwht(x);
}

void quant_lowbit_unrotate(float *x)
{
    lowbit_fwht(x);
    for (int i = 0; i < QK_K; i++)
        if (lowbit_neg(i))
            x[i] = -x[i];
}

/* ---- quantizers ------------------------------------------------------------ */

/* idx[i] = the level nearest r[i] / d (levels ascending; ties to the lower) */
static void lowbit_assign(const float *r, float d, const int8_t *lv, int nl, uint8_t *idx)
{
    float mid[7];
    for (int k = 0; k + 1 < nl; k++)
        mid[k] = d * 0.5f * (float)(lv[k] + lv[k + 1]);
    for (int i = 0; i < QK_K; i++) {
        int k = 0;
        while (k + 1 < nl && r[i] > mid[k])
            k++;
        idx[i] = (uint8_t)k;
    }
}

/* squared error of r against d * lv[idx] */
static double lowbit_err(const float *r, float d, const int8_t *lv, const uint8_t *idx)
{
    double e = 0;
    for (int i = 0; i < QK_K; i++) {
        double t = (double)r[i] - (double)d * lv[idx[i]];
        e += t * t;
    }
    return e;
}

/* Fits the fp16 block scale D and the levels of one rotated group r[256]:
 * from a few starting scales around the Gaussian optimum, alternate
 * assignment and the least-squares scale; keep the best; round D to fp16 and
 * assign once more with the rounded scale (what the kernels will use). */
static float lowbit_best_scale(const float *r, const int8_t *lv, int nl, float lm_max)
{
    double ss = 0;
    for (int i = 0; i < QK_K; i++)
        ss += (double)r[i] * r[i];
    if (ss == 0)
        return 0.0f;
    const float sigma = (float)sqrt(ss / QK_K);
    uint8_t cur[QK_K];
    float best_d = 0;
    double best_e = INFINITY;
    static const float starts[] = { 0.85f, 1.0f, 1.15f };
    for (size_t s = 0; s < sizeof(starts) / sizeof(starts[0]); s++) {
        float d = starts[s] * sigma * lm_max / 127.0f;
        for (int it = 0; it < 6; it++) {
            lowbit_assign(r, d, lv, nl, cur);
            double num = 0, den = 0;
            for (int i = 0; i < QK_K; i++) {
                num += (double)r[i] * lv[cur[i]];
                den += (double)lv[cur[i]] * lv[cur[i]];
            }
            if (den <= 0)
                break;
            d = (float)(num / den);
        }
        lowbit_assign(r, d, lv, nl, cur);
        double e = lowbit_err(r, d, lv, cur);
        if (e < best_e) {
            best_e = e;
            best_d = d;
        }
    }
    return best_d;
}

static void lowbit_fit(const float *r, const int8_t *lv, int nl, float lm_max, qhalf *D, uint8_t *idx)
{
    *D = quant_fp32_to_fp16(lowbit_best_scale(r, lv, nl, lm_max) * 127.0f);
    lowbit_assign(r, quant_fp16_to_fp32(*D) / 127.0f, lv, nl, idx);
}

void quant_quantize_hq2(const float *src, void *dst, int64_t n)
{
    block_hq2 *y = dst;
    float r[QK_K];
    uint8_t idx[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++) {
        memcpy(r, src + b * QK_K, sizeof(r));
        quant_lowbit_rotate(r);
        lowbit_fit(r, quant_hq2_levels, 4, 1.5104f, &y[b].d, idx);
        memset(y[b].qs, 0, sizeof(y[b].qs));
        for (int j = 0; j < QK_K; j++)
            y[b].qs[j & 63] |= (uint8_t)(idx[j] << (2 * (j >> 6)));
    }
}

void quant_quantize_hq3(const float *src, void *dst, int64_t n)
{
    block_hq3 *y = dst;
    float r[QK_K];
    uint8_t idx[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++) {
        memcpy(r, src + b * QK_K, sizeof(r));
        quant_lowbit_rotate(r);
        lowbit_fit(r, quant_hq3_levels, 8, 2.1519f, &y[b].d, idx);
        memset(y[b].qs, 0, sizeof(y[b].qs));
        memset(y[b].qh, 0, sizeof(y[b].qh));
        for (int j = 0; j < QK_K; j++) {
            y[b].qs[j & 63] |= (uint8_t)((idx[j] & 3) << (2 * (j >> 6)));
            y[b].qh[j >> 3] |= (uint8_t)((idx[j] >> 2) << (j & 7));
        }
    }
}

/* ---- weighted quantizer (GPTQ / LDLQ in the rotated domain) --------------- */

static void lowbit_pack(int type, qhalf D, const uint8_t *idx, uint8_t *dst)
{
    if (type == QT_HQ2) {
        block_hq2 *y = (block_hq2 *)(void *)dst;
        y->d = D;
        memset(y->qs, 0, sizeof(y->qs));
        for (int j = 0; j < QK_K; j++)
            y->qs[j & 63] |= (uint8_t)(idx[j] << (2 * (j >> 6)));
        return;
    }
    block_hq3 *y = (block_hq3 *)(void *)dst;
    y->d = D;
    memset(y->qs, 0, sizeof(y->qs));
    memset(y->qh, 0, sizeof(y->qh));
    for (int j = 0; j < QK_K; j++) {
        y->qs[j & 63] |= (uint8_t)((idx[j] & 3) << (2 * (j >> 6)));
        y->qh[j >> 3] |= (uint8_t)((idx[j] >> 2) << (j & 7));
    }
}

/* x[256] = R x (double) */
static void lowbit_rotate_d(double *x)
{
    for (int i = 0; i < QK_K; i++)
        if (lowbit_neg(i))
            x[i] = -x[i];
    for (int h = 1; h < QK_K; h *= 2)
        for (int i = 0; i < QK_K; i += 2 * h)
            for (int j = i; j < i + h; j++) {
                double a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
    for (int i = 0; i < QK_K; i++)
        x[i] *= 1.0 / 16.0;
}

/* In-place lower Cholesky factor of the symmetric positive definite a[n][n]
 * (upper triangle left as is); -1 when a is not positive definite. */
static int lowbit_cholesky(double *a, int n)
{
    for (int j = 0; j < n; j++) {
        double s = a[j * n + j];
        for (int k = 0; k < j; k++)
            s -= a[j * n + k] * a[j * n + k];
        if (!(s > 0))
            return -1;
        const double l = sqrt(s);
        a[j * n + j] = l;
        for (int i = j + 1; i < n; i++) {
            double t = a[i * n + j];
            for (int k = 0; k < j; k++)
                t -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = t / l;
        }
    }
    return 0;
}

/*
 * U (upper, row-major in u) with U^T U = Hr^-1, Hr = R H R^T + damping: the
 * factor GPTQ propagates errors with. Hr is kept in hr for the error
 * measure. -1 when H is not usable (zero or not positive definite).
 */
static int lowbit_prepare(const float *H, double *hr, double *u, double *t)
{
    enum { N = QK_K };
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < N; j++)
            hr[i * N + j] = H[i * N + j];
        lowbit_rotate_d(hr + i * N); /* rows: H R^T */
    }
    for (int i = 0; i < N; i++)      /* transpose: R H */
        for (int j = 0; j < i; j++) {
            double x = hr[i * N + j];
            hr[i * N + j] = hr[j * N + i];
            hr[j * N + i] = x;
        }
    for (int i = 0; i < N; i++)
        lowbit_rotate_d(hr + i * N); /* R H R^T */
    double m = 0;
    for (int i = 0; i < N; i++)
        m += hr[i * N + i];
    m /= N;
    if (!(m > 0))
        return -1;
    for (int i = 0; i < N; i++)
        hr[i * N + i] += QUANT_LOWBIT_DAMP * m;
    /* With P the order reversal and P Hr P = L L^T, Hr = M M^T for the upper
     * triangular M = P L P, so Hr^-1 = U^T U with U = M^-1 (upper): one
     * Cholesky factor and one triangular inverse. t = P Hr P, factored. */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            t[i * N + j] = hr[(N - 1 - i) * N + (N - 1 - j)];
    if (lowbit_cholesky(t, N) < 0)
        return -1;
    /* M[i][j] = L[N-1-i][N-1-j] for j >= i; U = M^-1 by back substitution, column by column */
    memset(u, 0, sizeof(double) * N * N);
#define LB_M(i, j) t[(N - 1 - (i)) * N + (N - 1 - (j))]
    for (int j = N - 1; j >= 0; j--) {
        u[j * N + j] = 1.0 / LB_M(j, j);
        for (int i = j - 1; i >= 0; i--) {
            double acc = 0;
            for (int k = i + 1; k <= j; k++)
                acc += LB_M(i, k) * u[k * N + j];
            u[i * N + j] = -acc / LB_M(i, i);
        }
    }
#undef LB_M
    return 0;
}

/* y[256] = Hr x */
static void lowbit_hmul(const double *hr, const double *x, double *y)
{
    for (int i = 0; i < QK_K; i++) {
        double t = 0;
        for (int j = 0; j < QK_K; j++)
            t += hr[i * QK_K + j] * x[j];
        y[i] = t;
    }
}

/* GPTQ of one rotated row w0 at scale d: levels chosen in order, each
 * rounding error spread over the later positions through U */
static void lowbit_gptq_row(const double *u, const double *w0, float d, const int8_t *lv, int nl, uint8_t *idx)
{
    double w[QK_K];
    memcpy(w, w0, sizeof(w));
    for (int j = 0; j < QK_K; j++) {
        const double x = w[j] / d;
        int k = 0;
        while (k + 1 < nl && x > 0.5 * (lv[k] + lv[k + 1]))
            k++;
        idx[j] = (uint8_t)k;
        const double e = (w[j] - (double)d * lv[k]) / u[j * QK_K + j];
        const double *uj = u + j * QK_K;
        for (int l = j + 1; l < QK_K; l++)
            w[l] -= e * uj[l];
    }
}

void quant_quantize_hq_group(int type, const float *src, size_t src_stride, uint8_t *dst, size_t dst_stride,
                             int64_t n_rows, const float *H, double *work)
{
    const int8_t *lv = type == QT_HQ2 ? quant_hq2_levels : quant_hq3_levels;
    const int nl = type == QT_HQ2 ? 4 : 8;
    const float lm_max = type == QT_HQ2 ? 1.5104f : 2.1519f;
    double *hr = work, *u = work + QK_K * QK_K, *t = work + 2 * QK_K * QK_K;
    const bool weighted = H && lowbit_prepare(H, hr, u, t) == 0;
    float r[QK_K];
    double w0[QK_K];
    uint8_t idx[QK_K], best_idx[QK_K];
    for (int64_t row = 0; row < n_rows; row++) {
        memcpy(r, src + (size_t)row * src_stride, sizeof(r));
        quant_lowbit_rotate(r);
        uint8_t *out = dst + (size_t)row * dst_stride;
        const float d0 = lowbit_best_scale(r, lv, nl, lm_max);
        if (!weighted || d0 == 0.0f) {
            qhalf D = quant_fp32_to_fp16(d0 * 127.0f);
            lowbit_assign(r, quant_fp16_to_fp32(D) / 127.0f, lv, nl, idx);
            lowbit_pack(type, D, idx, out);
            continue;
        }
        for (int i = 0; i < QK_K; i++)
            w0[i] = r[i];
        /* (w0 - d c)^T Hr (w0 - d c) = w0'Hr w0 - 2 d c'Hr w0 + d^2 c'Hr c */
        double hw[QK_K], hc[QK_K], c[QK_K], ww = 0;
        lowbit_hmul(hr, w0, hw);
        for (int i = 0; i < QK_K; i++)
            ww += w0[i] * hw[i];
        double best_e = INFINITY;
        qhalf best_D = 0;
        static const float mult[] = { 0.9f, 1.0f, 1.1f };
        for (size_t m = 0; m < sizeof(mult) / sizeof(mult[0]); m++) {
            qhalf D = quant_fp32_to_fp16(d0 * mult[m] * 127.0f);
            const float d = quant_fp16_to_fp32(D) / 127.0f;
            lowbit_gptq_row(u, w0, d, lv, nl, idx);
            /* the least-squares scale for these levels under Hr */
            for (int i = 0; i < QK_K; i++)
                c[i] = lv[idx[i]];
            lowbit_hmul(hr, c, hc);
            double num = 0, den = 0;
            for (int i = 0; i < QK_K; i++) {
                num += c[i] * hw[i];
                den += c[i] * hc[i];
            }
            qhalf D2 = den > 0 ? quant_fp32_to_fp16((float)(num / den) * 127.0f) : D;
            for (int pass = 0; pass < 2; pass++) {
                qhalf Dp = pass ? D2 : D;
                const double dp = quant_fp16_to_fp32(Dp) / 127.0, e = ww - 2 * dp * num + dp * dp * den;
                if (e < best_e) {
                    best_e = e;
                    best_D = Dp;
                    memcpy(best_idx, idx, sizeof(idx));
                }
            }
        }
        lowbit_pack(type, best_D, best_idx, out);
    }
}

/* ---- reference kernels ----------------------------------------------------- */

static inline int hq2_idx(const block_hq2 *b, int j)
{
    return (b->qs[j & 63] >> (2 * (j >> 6))) & 3;
}

static inline int hq3_idx(const block_hq3 *b, int j)
{
    return ((b->qs[j & 63] >> (2 * (j >> 6))) & 3) | (((b->qh[j >> 3] >> (j & 7)) & 1) << 2);
}

void quant_to_float_hq2_ref(const void *src, float *dst, int64_t n)
{
    const block_hq2 *x = src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = quant_fp16_to_fp32(x[b].d) / 127.0f;
        float *y = dst + b * QK_K;
        for (int j = 0; j < QK_K; j++)
            y[j] = d * (float)quant_hq2_levels[hq2_idx(&x[b], j)];
        quant_lowbit_unrotate(y);
    }
}

void quant_to_float_hq3_ref(const void *src, float *dst, int64_t n)
{
    const block_hq3 *x = src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float d = quant_fp16_to_fp32(x[b].d) / 127.0f;
        float *y = dst + b * QK_K;
        for (int j = 0; j < QK_K; j++)
            y[j] = d * (float)quant_hq3_levels[hq3_idx(&x[b], j)];
        quant_lowbit_unrotate(y);
    }
}

void quant_from_float_q8_kh_ref(const float *src, void *dst, int64_t n)
{
    block_q8_K *y = dst;
    float r[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++) {
        memcpy(r, src + b * QK_K, sizeof(r));
        quant_lowbit_rotate(r);
        quant_from_float_q8_k_ref(r, &y[b], QK_K);
        quant_q8_kh_offset(&y[b]);
    }
}

void quant_q8_kh_offset(block_q8_K *y)
{
    int32_t sum = 0;
    for (int j = 0; j < QK_K / 16; j++)
        sum += y->bsums[j];
    const int32_t off = -128 * sum;
    memset(y->bsums, 0, sizeof(y->bsums));
    memcpy(y->bsums, &off, sizeof(off));
}

void quant_to_float_q8_kh_ref(const void *src, float *dst, int64_t n)
{
    const block_q8_K *x = src;
    for (int64_t b = 0; b < n / QK_K; b++) {
        quant_to_float_q8_k_ref(&x[b], dst + b * QK_K, QK_K);
        quant_lowbit_unrotate(dst + b * QK_K);
    }
}

/* s = w . x: per block the integer sum of levels times activations, scaled
 * by D * d_x; the common 1/127 of the levels once at the end */
void quant_dot_hq2_ref(int64_t n, float *s, const void *w, const void *a)
{
    const block_hq2 *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int32_t sumi = 0;
        for (int j = 0; j < QK_K; j++)
            sumi += quant_hq2_levels[hq2_idx(&x[b], j)] * y[b].qs[j];
        sum += quant_fp16_to_fp32(x[b].d) * y[b].d * (float)sumi;
    }
    *s = sum * (1.0f / 127.0f);
}

void quant_dot_hq3_ref(int64_t n, float *s, const void *w, const void *a)
{
    const block_hq3 *x = w;
    const block_q8_K *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK_K; b++) {
        int32_t sumi = 0;
        for (int j = 0; j < QK_K; j++)
            sumi += quant_hq3_levels[hq3_idx(&x[b], j)] * y[b].qs[j];
        sum += quant_fp16_to_fp32(x[b].d) * y[b].d * (float)sumi;
    }
    *s = sum * (1.0f / 127.0f);
}
