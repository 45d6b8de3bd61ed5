/*
 * expert_stream.c - union, cap and deliver-as-ready over the provider.
 */
#include "expert_stream.h"

#include <time.h>

#include "provider.h"

static double stream_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int expert_stream_union(struct expert_stream_scratch *s, const int32_t *ids, int n)
{
    int n_uniq = 0;
    if (++s->stamp == 0) /* wrapped: stamps of 0 would look seen */
        s->stamp = 1;
    for (int i = 0; i < n; i++)
        if (s->seen[ids[i]] != s->stamp) {
            s->seen[ids[i]] = s->stamp;
            s->uniq[n_uniq++] = ids[i];
        }
    return n_uniq;
}

int expert_stream_run(struct provider *p, int layer, struct expert_stream_scratch *s, int n_uniq, int cap,
                      expert_stream_batch_fn fn, expert_stream_started_fn started, void *ctx, double *io_wait_s)
{
    for (int c0 = 0; c0 < n_uniq; c0 += cap) {
        int nc = n_uniq - c0 < cap ? n_uniq - c0 : cap;
        int rc = provider_request(p, layer, s->uniq + c0, nc);
        if (rc >= 0 && c0 == 0 && started)
            started(ctx);
        for (;;) {
            /* wait for one expert, then take every other one already
             * resident: hits arrive together, misses as they complete */
            int e, nb = 0;
            const uint8_t *blob;
            double t0 = stream_now();
            if (rc >= 0)
                rc = provider_next(p, &e, &blob);
            if (io_wait_s)
                *io_wait_s += stream_now() - t0;
            if (rc <= 0)
                break;
            s->b_ids[nb] = e;
            s->b_blobs[nb++] = blob;
            while (provider_ready_count(p) > 0 && (rc = provider_next(p, &e, &blob)) > 0) {
                s->b_ids[nb] = e;
                s->b_blobs[nb++] = blob;
            }
            int frc = fn ? fn(ctx, s->b_ids, s->b_blobs, nb) : 0;
            for (int i = 0; i < nb; i++)
                provider_release(p, layer, s->b_ids[i]);
            if (frc < 0) {
                /* drain what is still in flight so the provider is reusable */
                while (rc > 0 && (rc = provider_next(p, &e, &blob)) > 0)
                    provider_release(p, layer, e);
                return frc;
            }
            if (rc < 0)
                break;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}
