/*
 * prefetch.c - the prefetch policies and their statistics file (see
 * prefetch.h).
 */
#include "prefetch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define COACT_MAGIC "MSCOACT1"
#define COACT_VERSION 1u
#define COACT_MIN_OCC 4u  /* occurrences of a before its row is trusted */
#define PREFETCH_MAX_K 64

struct prefetch {
    enum prefetch_kind kind;
    int n_layer, n_expert, k;
    /* statistics (COACT and BOTH only) */
    uint32_t *occ;        /* [n_layer][n_expert] */
    uint32_t *cross;      /* [n_layer][n_expert][n_expert]: a at L -> b at L+1, same token */
    uint32_t *temporal;   /* [n_layer][n_expert][n_expert]: a at L -> b at L, next token */
    int32_t *last;        /* [n_layer][k] the latest single-row choice of each layer */
    int *n_last;          /* [n_layer] */
    uint64_t *last_step;  /* [n_layer] the step that choice belongs to */
    float *score;         /* [n_expert] */
    /* usefulness */
    int32_t *issued;      /* [n_layer][k] hints given for the layer, not yet judged */
    int *n_issued;        /* [n_layer] */
    uint8_t window[PREFETCH_WINDOW];
    int w_pos, w_fill, w_sum;
    uint64_t hinted, correct;
    uint64_t step;        /* single-row steps seen (counted at layer 0) */
};

static const char *const kind_names[] = { "off", "lookahead", "coact", "both" };

int prefetch_parse_kind(const char *s, enum prefetch_kind *out)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, kind_names[i])) {
            *out = (enum prefetch_kind)i;
            return 0;
        }
    return -EINVAL;
}

const char *prefetch_kind_name(enum prefetch_kind k)
{
    return k >= PREFETCH_NONE && k <= PREFETCH_BOTH ? kind_names[k] : "unknown";
}

static int uses_stats(enum prefetch_kind k)
{
    return k == PREFETCH_COACT || k == PREFETCH_BOTH;
}

int prefetch_open(struct prefetch **out, enum prefetch_kind kind, int n_layer, int n_expert, int k)
{
    *out = NULL;
    if (kind < PREFETCH_NONE || kind > PREFETCH_BOTH || n_layer <= 0 || n_expert <= 0 || k <= 0 ||
        k > PREFETCH_MAX_K || (uses_stats(kind) && n_expert > PREFETCH_MAX_EXPERT))
        return -EINVAL;
    struct prefetch *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->kind = kind;
    p->n_layer = n_layer;
    p->n_expert = n_expert;
    p->k = k;
    size_t L = (size_t)n_layer, E = (size_t)n_expert, K = (size_t)k;
    p->issued = calloc(L * K, sizeof(*p->issued));
    p->n_issued = calloc(L, sizeof(*p->n_issued));
    p->last = calloc(L * K, sizeof(*p->last));
    p->n_last = calloc(L, sizeof(*p->n_last));
    p->last_step = calloc(L, sizeof(*p->last_step));
    p->score = calloc(E, sizeof(*p->score));
    if (uses_stats(kind)) {
        p->occ = calloc(L * E, sizeof(*p->occ));
        p->cross = calloc(L * E * E, sizeof(*p->cross));
        p->temporal = calloc(L * E * E, sizeof(*p->temporal));
    }
    if (!p->issued || !p->n_issued || !p->last || !p->n_last || !p->last_step || !p->score ||
        (uses_stats(kind) && (!p->occ || !p->cross || !p->temporal))) {
        prefetch_close(p);
        return -ENOMEM;
    }
    *out = p;
    return 0;
}

void prefetch_close(struct prefetch *p)
{
    if (!p)
        return;
    free(p->occ);
    free(p->cross);
    free(p->temporal);
    free(p->last);
    free(p->n_last);
    free(p->last_step);
    free(p->score);
    free(p->issued);
    free(p->n_issued);
    free(p);
}

enum prefetch_kind prefetch_kind(const struct prefetch *p)
{
    return p ? p->kind : PREFETCH_NONE;
}

int prefetch_active(const struct prefetch *p)
{
    return p && p->kind != PREFETCH_NONE;
}

int prefetch_wants_lookahead(const struct prefetch *p)
{
    return p && (p->kind == PREFETCH_LOOKAHEAD || p->kind == PREFETCH_BOTH);
}

static void window_push(struct prefetch *p, int hit)
{
    if (p->w_fill == PREFETCH_WINDOW)
        p->w_sum -= p->window[p->w_pos];
    else
        p->w_fill++;
    p->window[p->w_pos] = (uint8_t)hit;
    p->w_sum += hit;
    p->w_pos = (p->w_pos + 1) % PREFETCH_WINDOW;
}

static int contains(const int32_t *ids, int n, int32_t e)
{
    for (int i = 0; i < n; i++)
        if (ids[i] == e)
            return 1;
    return 0;
}

/* Halves a's statistics at a layer when its count nears the u32 limit. */
static void age_row(struct prefetch *p, int layer, int a)
{
    size_t E = (size_t)p->n_expert, r = ((size_t)layer * E + (size_t)a) * E;
    p->occ[(size_t)layer * E + (size_t)a] >>= 1;
    for (size_t b = 0; b < E; b++) {
        p->cross[r + b] >>= 1;
        p->temporal[r + b] >>= 1;
    }
}

void prefetch_observe(struct prefetch *p, int layer, const int32_t *ids, int n)
{
    if (!p || p->kind == PREFETCH_NONE || layer < 0 || layer >= p->n_layer || n <= 0 || n > p->k)
        return;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= p->n_expert)
            return;
    if (layer == 0)
        p->step++;
    /* judge the hints given for this layer */
    int32_t *iss = p->issued + (size_t)layer * p->k;
    for (int i = 0; i < p->n_issued[layer]; i++) {
        int hit = contains(ids, n, iss[i]);
        window_push(p, hit);
        p->hinted++;
        p->correct += (uint64_t)hit;
    }
    p->n_issued[layer] = 0;
    if (uses_stats(p->kind)) {
        size_t E = (size_t)p->n_expert;
        /* previous layer of this token -> this layer */
        if (layer > 0 && p->last_step[layer - 1] == p->step) {
            const int32_t *prev = p->last + (size_t)(layer - 1) * p->k;
            for (int i = 0; i < p->n_last[layer - 1]; i++)
                for (int j = 0; j < n; j++)
                    p->cross[((size_t)(layer - 1) * E + (size_t)prev[i]) * E + (size_t)ids[j]]++;
        }
        /* this layer of the previous token -> this layer */
        if (p->last_step[layer] + 1 == p->step) {
            const int32_t *prev = p->last + (size_t)layer * p->k;
            for (int i = 0; i < p->n_last[layer]; i++)
                for (int j = 0; j < n; j++)
                    p->temporal[((size_t)layer * E + (size_t)prev[i]) * E + (size_t)ids[j]]++;
        }
        for (int j = 0; j < n; j++) {
            uint32_t *o = &p->occ[(size_t)layer * E + (size_t)ids[j]];
            if (++*o >= (1u << 30))
                age_row(p, layer, ids[j]);
        }
    }
    memcpy(p->last + (size_t)layer * p->k, ids, sizeof(*ids) * (size_t)n);
    p->n_last[layer] = n;
    p->last_step[layer] = p->step;
}

/* Hints allowed now: all k while the window is short, then in proportion
 * to the measured precision; 0 -> one probe every PREFETCH_PROBE_EVERY. */
static int budget(const struct prefetch *p)
{
    if (p->w_fill < 32)
        return p->k;
    double prec = (double)p->w_sum / p->w_fill;
    int b = (int)(p->k * prec / PREFETCH_GOOD_PREC + 0.5);
    if (b > p->k)
        b = p->k;
    if (b == 0 && p->step % PREFETCH_PROBE_EVERY == 0)
        b = 1;
    return b;
}

/* Adds the co-activation estimate for `layer` to p->score: the larger of
 * the mean P(b | a) over this token's choice at layer-1 and over the
 * previous token's choice at layer. */
static void coact_scores(struct prefetch *p, int layer)
{
    size_t E = (size_t)p->n_expert;
    for (size_t b = 0; b < E; b++)
        p->score[b] = 0;
    for (int src = 0; src < 2; src++) {
        int sl = src == 0 ? layer - 1 : layer;
        uint64_t want = src == 0 ? p->step : p->step - 1;
        if (sl < 0 || p->last_step[sl] != want || p->n_last[sl] == 0)
            continue;
        const uint32_t *tab = src == 0 ? p->cross : p->temporal;
        const int32_t *prev = p->last + (size_t)sl * p->k;
        int n = p->n_last[sl];
        for (size_t b = 0; b < E; b++) {
            float s = 0;
            for (int i = 0; i < n; i++) {
                uint32_t o = p->occ[(size_t)sl * E + (size_t)prev[i]];
                if (o >= COACT_MIN_OCC)
                    s += (float)tab[((size_t)sl * E + (size_t)prev[i]) * E + b] / (float)o;
            }
            s /= (float)n;
            if (s > p->score[b])
                p->score[b] = s;
        }
    }
}

int prefetch_hints(struct prefetch *p, int layer, const int32_t *guess, int n_guess, int32_t *out, int max)
{
    if (!p || p->kind == PREFETCH_NONE || layer < 0 || layer >= p->n_layer)
        return 0;
    int32_t pick[PREFETCH_MAX_K];
    int n = 0, lim = budget(p);
    if (lim > max)
        lim = max;
    if (p->kind != PREFETCH_COACT)
        for (int i = 0; i < n_guess && n < lim; i++)
            if (guess[i] >= 0 && guess[i] < p->n_expert && !contains(pick, n, guess[i]))
                pick[n++] = guess[i];
    if (uses_stats(p->kind) && n < lim) {
        coact_scores(p, layer);
        while (n < lim) {
            int best = -1;
            for (int b = 0; b < p->n_expert; b++)
                if (p->score[b] >= PREFETCH_MIN_P && (best < 0 || p->score[b] > p->score[best]) &&
                    !contains(pick, n, b))
                    best = b;
            if (best < 0)
                break;
            pick[n++] = best;
        }
    }
    memcpy(out, pick, sizeof(*out) * (size_t)n);
    memcpy(p->issued + (size_t)layer * p->k, pick, sizeof(*pick) * (size_t)n);
    p->n_issued[layer] = n;
    return n;
}

void prefetch_get_stats(const struct prefetch *p, struct prefetch_stats *s)
{
    memset(s, 0, sizeof(*s));
    if (!p)
        return;
    s->hinted = p->hinted;
    s->correct = p->correct;
    s->precision = p->w_fill ? (double)p->w_sum / p->w_fill : 0;
    s->budget = p->kind == PREFETCH_NONE ? 0 : budget(p);
}

/* ---- the statistics file ---- */

struct coact_header {
    char magic[8];
    uint32_t version, n_layer, n_expert, reserved;
    uint64_t payload;
};

static size_t payload_words(const struct prefetch *p)
{
    size_t L = (size_t)p->n_layer, E = (size_t)p->n_expert;
    return L * E + 2 * L * E * E;
}

int prefetch_save(const struct prefetch *p, const char *path, char *err, size_t errlen)
{
    if (!p || !uses_stats(p->kind)) {
        snprintf(err, errlen, "%s: no co-activation statistics to save (prefetch policy %s)", path,
                 prefetch_kind_name(prefetch_kind(p)));
        return -EINVAL;
    }
    size_t L = (size_t)p->n_layer, E = (size_t)p->n_expert;
    struct coact_header h = { .version = COACT_VERSION, .n_layer = (uint32_t)L, .n_expert = (uint32_t)E,
                              .payload = payload_words(p) * sizeof(uint32_t) };
    memcpy(h.magic, COACT_MAGIC, 8);
    XXH3_state_t *st = XXH3_createState();
    if (!st) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, p->occ, L * E * sizeof(uint32_t));
    XXH3_64bits_update(st, p->cross, L * E * E * sizeof(uint32_t));
    XXH3_64bits_update(st, p->temporal, L * E * E * sizeof(uint32_t));
    uint64_t sum = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(e));
        return -e;
    }
    int ok = fwrite(&h, sizeof(h), 1, f) == 1 && fwrite(p->occ, sizeof(uint32_t), L * E, f) == L * E &&
             fwrite(p->cross, sizeof(uint32_t), L * E * E, f) == L * E * E &&
             fwrite(p->temporal, sizeof(uint32_t), L * E * E, f) == L * E * E && fwrite(&sum, 8, 1, f) == 1;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path)) {
        int e = errno ? errno : EIO;
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(e));
        remove(tmp);
        return -e;
    }
    return 0;
}

int prefetch_load(struct prefetch *p, const char *path, char *err, size_t errlen)
{
    if (!p || !uses_stats(p->kind)) {
        snprintf(err, errlen, "%s: co-activation statistics need --prefetch coact or both", path);
        return -EINVAL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
        return -e;
    }
    size_t L = (size_t)p->n_layer, E = (size_t)p->n_expert;
    struct coact_header h;
    int rc = -EINVAL;
    uint32_t *buf = NULL;
    if (fread(&h, sizeof(h), 1, f) != 1 || memcmp(h.magic, COACT_MAGIC, 8)) {
        snprintf(err, errlen, "%s: not a co-activation statistics file (expected magic %s)", path, COACT_MAGIC);
        goto done;
    }
    if (h.version != COACT_VERSION) {
        snprintf(err, errlen, "%s: version %u, expected %u", path, h.version, COACT_VERSION);
        goto done;
    }
    if (h.n_layer != L || h.n_expert != E || h.payload != payload_words(p) * sizeof(uint32_t)) {
        snprintf(err, errlen, "%s: statistics of %u layers x %u experts, this model has %zu x %zu", path, h.n_layer,
                 h.n_expert, L, E);
        goto done;
    }
    size_t words = payload_words(p);
    uint64_t sum;
    buf = malloc(words * sizeof(uint32_t));
    if (!buf) {
        rc = -ENOMEM;
        snprintf(err, errlen, "%s: out of memory", path);
        goto done;
    }
    if (fread(buf, sizeof(uint32_t), words, f) != words || fread(&sum, 8, 1, f) != 1) {
        snprintf(err, errlen, "%s: truncated (expected %zu payload bytes and a checksum)", path,
                 words * sizeof(uint32_t));
        goto done;
    }
    uint64_t got = XXH3_64bits(buf, words * sizeof(uint32_t));
    if (got != sum || fgetc(f) != EOF) {
        snprintf(err, errlen, "%s: corrupt: %s", path,
                 got != sum ? "payload checksum mismatch" : "trailing bytes after the checksum");
        goto done;
    }
    memcpy(p->occ, buf, L * E * sizeof(uint32_t));
    memcpy(p->cross, buf + L * E, L * E * E * sizeof(uint32_t));
    memcpy(p->temporal, buf + L * E + L * E * E, L * E * E * sizeof(uint32_t));
    rc = 0;
done:
    free(buf);
    fclose(f);
    return rc;
}
