/*
 * qdprobe.c - the queue-depth probe (io/qdprobe.h): three short devbench
 * runs and the saturation rule. Called by io/provider.c at open.
 */
#include "qdprobe.h"

#include "devbench.h"

#include <string.h>
#include <time.h>

static double qdprobe_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int qdprobe_run(const char *path, size_t block, enum reader_backend backend, struct qdprobe_result *r,
                char *err, size_t errlen)
{
    static const int qds[QDPROBE_N] = { 1, 4, 16 };
    double t0 = qdprobe_now(), best = 0;

    memset(r, 0, sizeof *r);
    for (int i = 0; i < QDPROBE_N; i++) {
        struct devbench_opts o = { 0 };
        struct devbench_result res;

        o.path = path;
        o.backend = backend;
        o.block = block;
        o.queue_depth = qds[i];
        o.seconds = QDPROBE_SECONDS;
        o.seed = 0x51ab5eedull + (uint64_t)i; /* other blobs at each depth: no device cache reuse */
        int rc = devbench_run(&o, &res, err, errlen);
        if (rc < 0)
            return rc;
        r->qd[i] = qds[i];
        r->bw[i] = res.seconds > 0 ? (double)res.bytes / res.seconds : 0;
        r->backend = res.backend;
        if (r->bw[i] > best)
            best = r->bw[i];
    }
    r->saturated = qds[QDPROBE_N - 1];
    for (int i = 0; i < QDPROBE_N; i++)
        if (r->bw[i] >= QDPROBE_ENOUGH * best) {
            r->saturated = r->qd[i];
            break;
        }
    r->seconds = qdprobe_now() - t0;
    return 0;
}
