/*
 * logit_kl.h - test helper: how far one set of logits is from a reference,
 * the measure the fixtures' tolerances are stated in (mean KL(ref || x) over
 * positions, in double, and top-1 agreement). Header-only, test code only.
 */
#ifndef MOESTREAM_LOGIT_KL_H
#define MOESTREAM_LOGIT_KL_H

#include <math.h>
#include <stddef.h>

/* ref and x: n positions of nv logits each. */
static inline void logit_kl(const float *ref, const float *x, int n, int nv, double *kl_mean, double *top1)
{
    double kl = 0;
    int same = 0;
    for (int t = 0; t < n; t++) {
        const float *a = ref + (size_t)t * nv, *b = x + (size_t)t * nv;
        double ma = a[0], mb = b[0];
        int ia = 0, ib = 0;
        for (int i = 1; i < nv; i++) {
            if (a[i] > ma) ma = a[i], ia = i;
            if (b[i] > mb) mb = b[i], ib = i;
        }
        double sa = 0, sb = 0;
        for (int i = 0; i < nv; i++)
            sa += exp(a[i] - ma), sb += exp(b[i] - mb);
        double la = log(sa), lb = log(sb), k = 0;
        for (int i = 0; i < nv; i++) {
            double pa = a[i] - ma - la, pb = b[i] - mb - lb;
            k += exp(pa) * (pa - pb);
        }
        kl += k;
        same += ia == ib;
    }
    *kl_mean = kl / n;
    *top1 = (double)same / n;
}

#endif
