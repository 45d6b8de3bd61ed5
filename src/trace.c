/*
 * trace.c - the routing trace writer and reader (format in trace.h). The
 * reader's JSON is the subset the writer produces: one flat object per line
 * whose values are integers, numbers, strings or arrays of numbers; anything
 * else is rejected with its line and column.
 */
#include "trace.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct trace_writer {
    FILE *f;
    int n_batch;
    int eval_pos0;   /* position of the first token of the current session_eval */
    int step_base;   /* step number of its first chunk */
    int next_step;   /* first unused step number */
};

int trace_writer_open(struct trace_writer **out, const char *path, const struct trace_header *h, char *err,
                      size_t errlen)
{
    struct trace_writer *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, errlen, "trace: out of memory");
        return -ENOMEM;
    }
    w->f = fopen(path, "w");
    if (!w->f) {
        int rc = -errno;
        snprintf(err, errlen, "%s: cannot create the trace file: %s", path, strerror(errno));
        free(w);
        return rc;
    }
    w->n_batch = h->n_batch > 0 ? h->n_batch : 1;
    fprintf(w->f,
            "{\"format\":\"%s\",\"version\":%d,\"n_layer\":%d,\"n_expert\":%d,\"n_expert_used\":%d,"
            "\"n_ctx\":%d,\"n_batch\":%d,\"n_threads\":%d,\"ram_budget\":%llu,\"cache_bytes\":%llu,"
            "\"preload\":%d}\n",
            TRACE_FORMAT, TRACE_VERSION, h->n_layer, h->n_expert, h->n_expert_used, h->n_ctx, h->n_batch,
            h->n_threads, (unsigned long long)h->ram_budget, (unsigned long long)h->cache_bytes,
            h->preload ? 1 : 0);
    *out = w;
    return 0;
}

void trace_writer_begin_eval(struct trace_writer *w, int n_past, int n)
{
    (void)n;
    w->eval_pos0 = n_past;
    w->step_base = w->next_step;
}

void trace_writer_route(void *ctx, int pos, int layer, const int32_t *experts, const float *weights, int k)
{
    struct trace_writer *w = ctx;
    /* session_eval cuts its tokens into chunks of n_batch from its first one */
    int step = w->step_base + (pos - w->eval_pos0) / w->n_batch;
    if (step + 1 > w->next_step)
        w->next_step = step + 1;
    fprintf(w->f, "{\"step\":%d,\"pos\":%d,\"layer\":%d,\"experts\":[", step, pos, layer);
    for (int i = 0; i < k; i++)
        fprintf(w->f, "%s%d", i ? "," : "", experts[i]);
    fprintf(w->f, "],\"weights\":[");
    for (int i = 0; i < k; i++)
        fprintf(w->f, "%s%.6g", i ? "," : "", weights[i]);
    fprintf(w->f, "]}\n");
}

int trace_writer_close(struct trace_writer *w, char *err, size_t errlen)
{
    if (!w)
        return 0;
    int bad = ferror(w->f);
    bad |= fclose(w->f) != 0;
    free(w);
    if (bad) {
        snprintf(err, errlen, "trace: writing the trace file failed (disk full?)");
        return -EIO;
    }
    return 0;
}

/* ---- reader ---- */

enum field_kind { F_INT, F_STR, F_NUMS };

struct field {
    const char *name;
    enum field_kind kind;
    int64_t *i;            /* F_INT */
    char *str;             /* F_STR, str_len bytes */
    size_t str_len;
    double *nums;          /* F_NUMS, up to TRACE_MAX_K */
    int *n_nums;
    bool seen;
};

struct cursor {
    const char *s;
    size_t i;
    char why[160];
};

static void skip_ws(struct cursor *c)
{
    while (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\r')
        c->i++;
}

static bool expect(struct cursor *c, char ch)
{
    skip_ws(c);
    if (c->s[c->i] != ch) {
        snprintf(c->why, sizeof(c->why), "expected '%c', got %s%c%s", ch, c->s[c->i] ? "'" : "",
                 c->s[c->i] ? c->s[c->i] : ' ', c->s[c->i] ? "'" : "end of line");
        return false;
    }
    c->i++;
    return true;
}

static bool parse_string(struct cursor *c, char *out, size_t cap)
{
    if (!expect(c, '"'))
        return false;
    size_t n = 0;
    while (c->s[c->i] && c->s[c->i] != '"') {
        if (c->s[c->i] == '\\') {
            snprintf(c->why, sizeof(c->why), "escapes in strings are not part of the trace format");
            return false;
        }
        if (n + 1 < cap)
            out[n++] = c->s[c->i];
        c->i++;
    }
    if (!c->s[c->i]) {
        snprintf(c->why, sizeof(c->why), "unterminated string");
        return false;
    }
    c->i++;
    out[n] = 0;
    return true;
}

static bool parse_number(struct cursor *c, double *v)
{
    skip_ws(c);
    char *end;
    errno = 0;
    *v = strtod(c->s + c->i, &end);
    if (end == c->s + c->i || errno || !isfinite(*v)) {
        snprintf(c->why, sizeof(c->why), "expected a number");
        return false;
    }
    c->i = (size_t)(end - c->s);
    return true;
}

/* Parses one flat object into fields; every field must appear exactly once. */
static bool parse_object(struct cursor *c, struct field *f, int nf)
{
    for (int j = 0; j < nf; j++)
        f[j].seen = false;
    if (!expect(c, '{'))
        return false;
    skip_ws(c);
    bool first = true;
    while (c->s[c->i] != '}') {
        if (!first && !expect(c, ','))
            return false;
        first = false;
        char key[64];
        if (!parse_string(c, key, sizeof(key)) || !expect(c, ':'))
            return false;
        struct field *fd = NULL;
        for (int j = 0; j < nf; j++)
            if (!strcmp(f[j].name, key))
                fd = &f[j];
        if (!fd) {
            snprintf(c->why, sizeof(c->why), "unknown key \"%s\"", key);
            return false;
        }
        if (fd->seen) {
            snprintf(c->why, sizeof(c->why), "key \"%s\" appears twice", key);
            return false;
        }
        fd->seen = true;
        double v;
        switch (fd->kind) {
        case F_INT:
            if (!parse_number(c, &v))
                return false;
            if (v != floor(v) || v < -9.0e15 || v > 9.0e15) {
                snprintf(c->why, sizeof(c->why), "\"%s\" must be an integer", key);
                return false;
            }
            *fd->i = (int64_t)v;
            break;
        case F_STR:
            if (!parse_string(c, fd->str, fd->str_len))
                return false;
            break;
        case F_NUMS:
            *fd->n_nums = 0;
            if (!expect(c, '['))
                return false;
            skip_ws(c);
            while (c->s[c->i] != ']') {
                if (*fd->n_nums > 0 && !expect(c, ','))
                    return false;
                if (*fd->n_nums == TRACE_MAX_K) {
                    snprintf(c->why, sizeof(c->why), "\"%s\" has more than %d entries", key, TRACE_MAX_K);
                    return false;
                }
                if (!parse_number(c, &fd->nums[(*fd->n_nums)++]))
                    return false;
                skip_ws(c);
            }
            c->i++;
            break;
        }
        skip_ws(c);
    }
    c->i++;
    skip_ws(c);
    if (c->s[c->i] && c->s[c->i] != '\n') {
        snprintf(c->why, sizeof(c->why), "text after the object");
        return false;
    }
    for (int j = 0; j < nf; j++)
        if (!f[j].seen) {
            snprintf(c->why, sizeof(c->why), "missing key \"%s\"", f[j].name);
            return false;
        }
    return true;
}

void trace_free(struct trace *t)
{
    if (!t)
        return;
    free(t->rec);
    free(t->experts);
    free(t->weights);
    free(t->step_first);
    free(t->step_tokens);
    free(t);
}

static bool in_int(int64_t v, int64_t lo, int64_t hi)
{
    return v >= lo && v <= hi;
}

/* Header values are checked for ranges; returns false with why. */
static bool header_ok(const int64_t *v, char *why, size_t n)
{
    static const char *names[] = { "n_layer", "n_expert", "n_expert_used", "n_ctx", "n_batch", "n_threads" };
    static const int64_t hi[] = { 1 << 16, 1 << 16, TRACE_MAX_K, 1 << 30, 1 << 30, 1 << 16 };
    for (int i = 0; i < 6; i++)
        if (!in_int(v[i], 1, hi[i])) {
            snprintf(why, n, "\"%s\" is %lld, expected 1..%lld", names[i], (long long)v[i], (long long)hi[i]);
            return false;
        }
    if (v[2] > v[1]) {
        snprintf(why, n, "\"n_expert_used\" %lld exceeds \"n_expert\" %lld", (long long)v[2], (long long)v[1]);
        return false;
    }
    return true;
}

int trace_read(struct trace **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f) {
        int rc = -errno;
        snprintf(err, errlen, "%s: cannot open the trace: %s", path, strerror(errno));
        return rc;
    }
    struct trace *t = calloc(1, sizeof(*t));
    char *line = NULL;
    size_t line_cap = 0, cap_rec = 0, cap_e = 0, n_e = 0, cap_steps = 0;
    int rc = -EINVAL, lineno = 0;
    struct cursor c = { 0 };
    double ev[TRACE_MAX_K], wv[TRACE_MAX_K];
    if (!t)
        goto oom;

    /* the header */
    ssize_t got = getline(&line, &line_cap, f);
    lineno = 1;
    if (got <= 0) {
        snprintf(err, errlen, "%s: empty file: not a routing trace (record one with `moestream run --trace-out`)",
                 path);
        goto fail;
    }
    {
        char fmt[64] = "";
        int64_t version, hv[6], budget, cache, preload;
        struct field hf[] = {
            { "format", F_STR, .str = fmt, .str_len = sizeof(fmt) },
            { "version", F_INT, .i = &version },
            { "n_layer", F_INT, .i = &hv[0] },
            { "n_expert", F_INT, .i = &hv[1] },
            { "n_expert_used", F_INT, .i = &hv[2] },
            { "n_ctx", F_INT, .i = &hv[3] },
            { "n_batch", F_INT, .i = &hv[4] },
            { "n_threads", F_INT, .i = &hv[5] },
            { "ram_budget", F_INT, .i = &budget },
            { "cache_bytes", F_INT, .i = &cache },
            { "preload", F_INT, .i = &preload },
        };
        c.s = line;
        c.i = 0;
        bool parsed = parse_object(&c, hf, (int)(sizeof(hf) / sizeof(hf[0])));
        /* a foreign file (or a record line first) gets a clear message */
        if (strcmp(fmt, TRACE_FORMAT) != 0) {
            snprintf(err, errlen,
                     "%s line 1: not a moestream routing trace (expected a header with \"format\":\"%s\"; "
                     "record one with `moestream run --trace-out`)",
                     path, TRACE_FORMAT);
            goto fail;
        }
        if (!parsed)
            goto bad_line;
        if (version != TRACE_VERSION) {
            snprintf(err, errlen, "%s line 1: trace version %lld, this moestream reads version %d", path,
                     (long long)version, TRACE_VERSION);
            goto fail;
        }
        if (!header_ok(hv, c.why, sizeof(c.why)) || budget < 0 || cache < 0 || (preload != 0 && preload != 1)) {
            if (!c.why[0])
                snprintf(c.why, sizeof(c.why), "\"ram_budget\", \"cache_bytes\" or \"preload\" out of range");
            c.i = 0;
            goto bad_line;
        }
        t->h = (struct trace_header){ (int)hv[0], (int)hv[1], (int)hv[2], (int)hv[3], (int)hv[4], (int)hv[5],
                                      (uint64_t)budget, (uint64_t)cache, preload == 1 };
    }

    /* the records */
    int prev_step = -1, prev_layer = -1, prev_pos = -1, step_layer0 = -1;
    while ((got = getline(&line, &line_cap, f)) > 0) {
        lineno++;
        if (got == 1 && line[0] == '\n')
            continue;
        int64_t step, pos, layer;
        int ne = 0, nw = 0;
        struct field rf[] = {
            { "step", F_INT, .i = &step },
            { "pos", F_INT, .i = &pos },
            { "layer", F_INT, .i = &layer },
            { "experts", F_NUMS, .nums = ev, .n_nums = &ne },
            { "weights", F_NUMS, .nums = wv, .n_nums = &nw },
        };
        c.s = line;
        c.i = 0;
        c.why[0] = 0;
        if (!parse_object(&c, rf, (int)(sizeof(rf) / sizeof(rf[0]))))
            goto bad_line;
        c.i = 0;
        if (!in_int(step, 0, INT32_MAX) || (step != prev_step && step != prev_step + 1)) {
            snprintf(c.why, sizeof(c.why), "step %lld after step %d: steps must count up from 0 by one",
                     (long long)step, prev_step);
            goto bad_line;
        }
        if (!in_int(layer, 0, t->h.n_layer - 1)) {
            snprintf(c.why, sizeof(c.why), "layer %lld outside 0..%d", (long long)layer, t->h.n_layer - 1);
            goto bad_line;
        }
        if (!in_int(pos, 0, t->h.n_ctx - 1)) {
            snprintf(c.why, sizeof(c.why), "pos %lld outside the context 0..%d", (long long)pos, t->h.n_ctx - 1);
            goto bad_line;
        }
        if (ne != t->h.n_expert_used || nw != ne) {
            snprintf(c.why, sizeof(c.why), "%d experts and %d weights, the header says %d per token", ne, nw,
                     t->h.n_expert_used);
            goto bad_line;
        }
        bool new_step = step != prev_step;
        if (!new_step && (layer < prev_layer || (layer == prev_layer && pos <= prev_pos))) {
            snprintf(c.why, sizeof(c.why),
                     "layer %lld pos %lld after layer %d pos %d: records of a step go layer by layer, "
                     "tokens in order",
                     (long long)layer, (long long)pos, prev_layer, prev_pos);
            goto bad_line;
        }
        if (new_step) {
            if ((size_t)t->n_steps + 2 > cap_steps) {
                cap_steps = cap_steps ? cap_steps * 2 : 1024;
                int *sf = realloc(t->step_first, cap_steps * sizeof(int));
                if (sf)
                    t->step_first = sf;
                int *st = sf ? realloc(t->step_tokens, cap_steps * sizeof(int)) : NULL;
                if (!sf || !st)
                    goto oom;
                t->step_tokens = st;
            }
            t->step_first[t->n_steps] = t->n_rec;
            t->step_tokens[t->n_steps] = 0;
            t->n_steps++;
            step_layer0 = (int)layer;
        }
        if (layer == step_layer0)
            t->step_tokens[t->n_steps - 1]++;
        if ((size_t)t->n_rec == cap_rec) {
            cap_rec = cap_rec ? cap_rec * 2 : 4096;
            struct trace_rec *r = realloc(t->rec, cap_rec * sizeof(*r));
            if (!r)
                goto oom;
            t->rec = r;
        }
        if (n_e + (size_t)ne > cap_e) {
            cap_e = cap_e ? cap_e * 2 : 4096 * (size_t)ne;
            int32_t *e = realloc(t->experts, cap_e * sizeof(*e));
            if (e)
                t->experts = e;
            float *w = e ? realloc(t->weights, cap_e * sizeof(*w)) : NULL;
            if (!e || !w)
                goto oom;
            t->weights = w;
        }
        for (int j = 0; j < ne; j++) {
            if (ev[j] != floor(ev[j]) || !in_int((int64_t)ev[j], 0, t->h.n_expert - 1)) {
                snprintf(c.why, sizeof(c.why), "expert %g outside 0..%d", ev[j], t->h.n_expert - 1);
                goto bad_line;
            }
            t->experts[n_e + j] = (int32_t)ev[j];
            t->weights[n_e + j] = (float)wv[j];
        }
        t->rec[t->n_rec++] = (struct trace_rec){ (int)step, (int)pos, (int)layer, ne, n_e };
        n_e += (size_t)ne;
        prev_step = (int)step;
        prev_layer = (int)layer;
        prev_pos = (int)pos;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error after line %d", path, lineno);
        rc = -EIO;
        goto fail;
    }
    if (t->n_rec == 0) {
        snprintf(err, errlen, "%s: the trace has a header but no records (did the run evaluate any token?)", path);
        goto fail;
    }
    if (!t->step_first) {
        t->step_first = malloc(sizeof(int));
        if (!t->step_first)
            goto oom;
    }
    t->step_first[t->n_steps] = t->n_rec;
    for (int s = 0; s < t->n_steps; s++) {
        t->n_tokens += t->step_tokens[s];
        if (t->step_tokens[s] == 1)
            t->n_decode_tokens++;
    }
    free(line);
    fclose(f);
    *out = t;
    return 0;

bad_line:
    snprintf(err, errlen, "%s line %d column %zu: %s", path, lineno, c.i + 1, c.why);
    goto fail;
oom:
    snprintf(err, errlen, "%s: out of memory reading the trace", path);
    rc = -ENOMEM;
fail:
    free(line);
    fclose(f);
    trace_free(t);
    return rc;
}
