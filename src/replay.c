/*
 * replay.c - trace replay through the expert provider (src/replay.h).
 */
#include "replay.h"

#include "belady.h"

#include "expert_stream.h"
#include "provider.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double replay_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Belady's MIN over the trace's accesses as the provider counts them: each
 * distinct expert of a layer of a step, in first-seen order. */
static int replay_belady(const struct trace *t, int n_expert, uint64_t n_slots, struct replay_stats *st, char *err,
                         size_t errlen)
{
    size_t total = 0;
    for (int r = 0; r < t->n_rec; r++)
        total += (size_t)t->rec[r].k;
    int32_t *keys = malloc((total ? total : 1) * sizeof(*keys));
    uint32_t *seen = calloc((size_t)t->h.n_layer * (size_t)n_expert, sizeof(*seen));
    uint8_t *dec = malloc(total ? total : 1);
    if (!keys || !seen || !dec) {
        free(dec);
        free(keys);
        free(seen);
        snprintf(err, errlen, "replay: out of memory");
        return -ENOMEM;
    }
    size_t n = 0;
    uint32_t stamp = 0;
    for (int s = 0; s < t->n_steps; s++)
        for (int r = t->step_first[s]; r < t->step_first[s + 1];) {
            int layer = t->rec[r].layer;
            stamp++;
            for (; r < t->step_first[s + 1] && t->rec[r].layer == layer; r++)
                for (int j = 0; j < t->rec[r].k; j++) {
                    int32_t key = layer * n_expert + t->experts[t->rec[r].first + j];
                    if (seen[key] != stamp) {
                        seen[key] = stamp;
                        dec[n] = t->step_tokens[s] == 1;
                        st->decode_accesses += dec[n];
                        keys[n++] = key;
                    }
                }
        }
    int rc = belady_hits(keys, NULL, n, (size_t)n_slots, &st->belady_hits);
    if (rc == 0)
        rc = belady_hits(keys, dec, n, (size_t)n_slots, &st->belady_decode_hits);
    free(dec);
    st->accesses = n;
    free(keys);
    free(seen);
    if (rc < 0)
        snprintf(err, errlen, "replay: Belady's MIN over %zu accesses: %s", n, strerror(-rc));
    return rc;
}

int replay_run(struct engine *e, const struct trace *t, struct replay_stats *st, char *err, size_t errlen)
{
    const struct model *m = engine_model(e);
    const struct model_hparams *hp = model_hparams(m);
    memset(st, 0, sizeof(*st));
    if (t->h.n_layer != hp->n_layer || t->h.n_expert != hp->n_expert || t->h.n_expert_used != hp->n_expert_used) {
        snprintf(err, errlen,
                 "replay: the trace was recorded on a model with %d layers, %d experts, %d used; this one has "
                 "%d, %d, %d: replay it on the model it came from",
                 t->h.n_layer, t->h.n_expert, t->h.n_expert_used, hp->n_layer, hp->n_expert, hp->n_expert_used);
        return -EINVAL;
    }
    struct expert_stream_scratch es = { 0 };
    int max_step = 1;
    for (int i = 0; i < t->n_steps; i++)
        if (t->step_tokens[i] > max_step)
            max_step = t->step_tokens[i];
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)hp->n_expert_used * (size_t)max_step);
    es.uniq = malloc(sizeof(int32_t) * (size_t)hp->n_expert);
    es.seen = calloc((size_t)hp->n_expert, sizeof(uint32_t));
    es.b_ids = malloc(sizeof(int32_t) * (size_t)hp->n_expert);
    es.b_blobs = malloc(sizeof(*es.b_blobs) * (size_t)hp->n_expert);
    if (!ids || !es.uniq || !es.seen || !es.b_ids || !es.b_blobs) {
        free(ids);
        free(es.uniq);
        free(es.seen);
        free(es.b_ids);
        free(es.b_blobs);
        snprintf(err, errlen, "replay: out of memory");
        return -ENOMEM;
    }
    struct provider *prov = engine_provider(e);
    struct provider_stats p0, p1;
    provider_get_stats(prov, &p0);
    int cap = model_plan(m)->request_cap, rc = 0;
    uint64_t decode_bytes = 0;

    for (int s = 0; s < t->n_steps && rc == 0; s++) {
        struct provider_stats ps0;
        provider_get_stats(prov, &ps0);
        double t0 = replay_now();
        for (int r = t->step_first[s]; r < t->step_first[s + 1] && rc == 0;) {
            /* one layer of the step: the union of its tokens' experts, in order */
            int layer = t->rec[r].layer, n_ids = 0;
            for (; r < t->step_first[s + 1] && t->rec[r].layer == layer; r++)
                for (int j = 0; j < t->rec[r].k; j++)
                    ids[n_ids++] = t->experts[t->rec[r].first + j];
            int n_uniq = expert_stream_union(&es, ids, n_ids);
            rc = expert_stream_run(prov, layer, &es, n_uniq, cap, NULL, NULL, NULL, NULL);
            if (rc < 0)
                snprintf(err, errlen, "replay: step %d layer %d: %s", s, layer, provider_error(prov));
        }
        double dt = replay_now() - t0;
        if (t->step_tokens[s] == 1) {
            struct provider_stats ps1;
            provider_get_stats(prov, &ps1);
            decode_bytes += ps1.bytes_read - ps0.bytes_read;
            st->decode_s += dt;
            st->n_decode_tokens++;
        } else {
            st->prefill_s += dt;
            st->n_prefill_tokens += t->step_tokens[s];
        }
        st->n_steps++;
    }
    provider_get_stats(prov, &p1);
    if (rc == 0)
        rc = replay_belady(t, hp->n_expert, p1.n_slots, st, err, errlen);
    st->n_tokens = st->n_prefill_tokens + st->n_decode_tokens;
    st->bytes_read = p1.bytes_read - p0.bytes_read;
    st->decode_bytes_read = decode_bytes;
    st->reads = p1.reads - p0.reads;
    st->hits = p1.hits - p0.hits;
    st->misses = p1.misses - p0.misses;
    st->evictions = p1.evictions - p0.evictions;
    st->io_wait_s = p1.io_wait_s - p0.io_wait_s;
    free(ids);
    free(es.uniq);
    free(es.seen);
    free(es.b_ids);
    free(es.b_blobs);
    return rc < 0 ? rc : 0;
}
