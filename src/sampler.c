/*
 * sampler.c - the sampling chain: repetition penalty, then greedy, or top-k ->
 * softmax with temperature -> top-p -> min-p -> draw. Candidates are sorted
 * only as far as needed (partial selection for top-k).
 */
#include "sampler.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sampler {
    struct sampler_opts o;
    int n_vocab;
    int32_t *idx;       /* [n_vocab] candidate ids */
    float *prob;        /* [n_vocab] */
    int32_t *hist;      /* ring of the last repeat_last_n tokens */
    int n_hist, hist_pos;
    uint64_t rng;
};

void sampler_default_opts(struct sampler_opts *o)
{
    o->temperature = 0.8f;
    o->top_k = 40;
    o->top_p = 0.95f;
    o->min_p = 0.05f;
    o->repeat_penalty = 1.0f;
    o->repeat_last_n = 64;
    o->seed = sampler_random_seed();
}

uint64_t sampler_random_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 20);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x & 0xffffffffull;
}

int sampler_check_opts(const struct sampler_opts *o, char *err, size_t errlen)
{
    const char *what = NULL;
    char got[32];
    float v = 0;
    if (!isfinite(o->temperature))
        what = "--temp: expected a finite temperature (0 = greedy)", v = o->temperature;
    else if (!(o->top_p >= 0 && o->top_p <= 1))
        what = "--top-p: expected a probability in [0, 1] (1 = off)", v = o->top_p;
    else if (!(o->min_p >= 0 && o->min_p <= 1))
        what = "--min-p: expected a probability in [0, 1] (0 = off)", v = o->min_p;
    else if (!(isfinite(o->repeat_penalty) && o->repeat_penalty > 0))
        what = "--repeat-penalty: expected a factor > 0 (1 = off)", v = o->repeat_penalty;
    if (!what)
        return 0;
    snprintf(got, sizeof(got), "%g", (double)v);
    snprintf(err, errlen, "%s, got %s", what, got);
    return -EINVAL;
}

struct sampler *sampler_init(const struct sampler_opts *o, int n_vocab)
{
    struct sampler *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->o = *o;
    if (s->o.repeat_last_n < 0)
        s->o.repeat_last_n = 0;
    s->n_vocab = n_vocab;
    s->idx = malloc(sizeof(int32_t) * n_vocab);
    s->prob = malloc(sizeof(float) * n_vocab);
    s->hist = malloc(sizeof(int32_t) * (s->o.repeat_last_n + 1));
    s->rng = o->seed * 0x9E3779B97F4A7C15ull + 1;
    if (!s->idx || !s->prob || !s->hist) {
        sampler_free(s);
        return NULL;
    }
    return s;
}

void sampler_free(struct sampler *s)
{
    if (!s)
        return;
    free(s->idx);
    free(s->prob);
    free(s->hist);
    free(s);
}

void sampler_accept(struct sampler *s, int32_t token)
{
    if (s->o.repeat_last_n == 0)
        return;
    s->hist[s->hist_pos] = token;
    s->hist_pos = (s->hist_pos + 1) % s->o.repeat_last_n;
    if (s->n_hist < s->o.repeat_last_n)
        s->n_hist++;
}

/* xorshift64*: uniform in [0, 1) */
static double next_uniform(struct sampler *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (double)((s->rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static void swap(int32_t *a, int32_t *b)
{
    int32_t t = *a;
    *a = *b;
    *b = t;
}

/* Moves the k largest logits to idx[0..k), sorted descending. */
static void select_top(int32_t *idx, int n, int k, const float *logits)
{
    /* partial selection sort is O(n k); use a quickselect-style partition for big k */
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = logits[idx[(lo + hi) / 2]];
        int i = lo, j = hi;
        while (i <= j) {
            while (logits[idx[i]] > pivot)
                i++;
            while (logits[idx[j]] < pivot)
                j--;
            if (i <= j)
                swap(&idx[i++], &idx[j--]);
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            break;
    }
    /* insertion sort of the first k (k is small in practice) */
    for (int a = 1; a < k; a++) {
        int32_t v = idx[a];
        int b = a - 1;
        while (b >= 0 && (logits[idx[b]] < logits[v] || (logits[idx[b]] == logits[v] && idx[b] > v))) {
            idx[b + 1] = idx[b];
            b--;
        }
        idx[b + 1] = v;
    }
}

int32_t sampler_sample(struct sampler *s, float *logits)
{
    const struct sampler_opts *o = &s->o;
    int n = s->n_vocab;
    if (o->repeat_penalty != 1.0f)
        for (int i = 0; i < s->n_hist; i++) {
            int32_t t = s->hist[i];
            if (t < 0 || t >= n)
                continue;
            /* apply once per distinct token */
            bool seen = false;
            for (int j = 0; j < i; j++)
                seen |= s->hist[j] == t;
            if (!seen)
                logits[t] = logits[t] > 0 ? logits[t] / o->repeat_penalty : logits[t] * o->repeat_penalty;
        }
    if (o->temperature <= 0) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (logits[i] > logits[best])
                best = i;
        return best;
    }
    for (int i = 0; i < n; i++)
        s->idx[i] = i;
    int k = o->top_k > 0 && o->top_k < n ? o->top_k : n;
    select_top(s->idx, n, k, logits);
    double sum = 0, mx = logits[s->idx[0]];
    for (int i = 0; i < k; i++) {
        s->prob[i] = (float)exp((logits[s->idx[i]] - mx) / o->temperature);
        sum += s->prob[i];
    }
    for (int i = 0; i < k; i++)
        s->prob[i] = (float)(s->prob[i] / sum);
    int keep = k;
    if (o->top_p < 1.0f) {
        double c = 0;
        for (int i = 0; i < k; i++) {
            c += s->prob[i];
            if (c >= o->top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    if (o->min_p > 0) {
        float floor_p = o->min_p * s->prob[0];
        int i = 1;
        while (i < keep && s->prob[i] >= floor_p)
            i++;
        keep = i;
    }
    double total = 0;
    for (int i = 0; i < keep; i++)
        total += s->prob[i];
    double r = next_uniform(s) * total, c = 0;
    for (int i = 0; i < keep; i++) {
        c += s->prob[i];
        if (r < c)
            return s->idx[i];
    }
    return s->idx[keep - 1];
}
