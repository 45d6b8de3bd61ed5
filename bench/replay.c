/*
 * replay.c - trace replay through the expert provider (bench/replay.h).
 */
#include "replay.h"

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

int replay_request_cap(const struct model *m)
{
    return model_request_cap(m);
}

int replay_run(struct model *m, const struct trace *t, struct replay_stats *st, char *err, size_t errlen)
{
    const struct model_hparams *hp = &m->hp;
    memset(st, 0, sizeof(*st));
    if (t->h.n_layer != hp->n_layer || t->h.n_expert != hp->n_expert || t->h.n_expert_used != hp->n_expert_used) {
        snprintf(err, errlen,
                 "replay: the trace was recorded on a model with %d layers, %d experts, %d used; this one has "
                 "%d, %d, %d: replay it on the model it came from",
                 t->h.n_layer, t->h.n_expert, t->h.n_expert_used, hp->n_layer, hp->n_expert, hp->n_expert_used);
        return -EINVAL;
    }
    int *uniq = malloc(sizeof(int) * (size_t)hp->n_expert);
    uint32_t *seen = calloc((size_t)hp->n_expert, sizeof(uint32_t));
    if (!uniq || !seen) {
        free(uniq);
        free(seen);
        snprintf(err, errlen, "replay: out of memory");
        return -ENOMEM;
    }
    struct provider *prov = m->prov;
    struct provider_stats p0, p1;
    provider_get_stats(prov, &p0);
    int cap = replay_request_cap(m), rc = 0;
    uint32_t stamp = 0;
    uint64_t decode_bytes = 0;

    for (int s = 0; s < t->n_steps && rc == 0; s++) {
        struct provider_stats ps0;
        provider_get_stats(prov, &ps0);
        double t0 = replay_now();
        for (int r = t->step_first[s]; r < t->step_first[s + 1] && rc == 0;) {
            /* one layer of the step: the union of its tokens' experts, in order */
            int layer = t->rec[r].layer, n_uniq = 0;
            stamp++;
            for (; r < t->step_first[s + 1] && t->rec[r].layer == layer; r++)
                for (int j = 0; j < t->rec[r].k; j++) {
                    int e = t->experts[t->rec[r].first + j];
                    if (seen[e] != stamp) {
                        seen[e] = stamp;
                        uniq[n_uniq++] = e;
                    }
                }
            for (int c0 = 0; c0 < n_uniq && rc == 0; c0 += cap) {
                int nc = n_uniq - c0 < cap ? n_uniq - c0 : cap;
                rc = provider_request(prov, layer, uniq + c0, nc);
                int e;
                const uint8_t *blob;
                while (rc >= 0 && (rc = provider_next(prov, &e, &blob)) > 0)
                    provider_release(prov, layer, e);
                if (rc < 0)
                    snprintf(err, errlen, "replay: step %d layer %d: %s", s, layer, provider_error(prov));
            }
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
    st->n_tokens = st->n_prefill_tokens + st->n_decode_tokens;
    st->bytes_read = p1.bytes_read - p0.bytes_read;
    st->decode_bytes_read = decode_bytes;
    st->reads = p1.reads - p0.reads;
    st->hits = p1.hits - p0.hits;
    st->misses = p1.misses - p0.misses;
    st->evictions = p1.evictions - p0.evictions;
    st->io_wait_s = p1.io_wait_s - p0.io_wait_s;
    free(uniq);
    free(seen);
    return rc < 0 ? rc : 0;
}
