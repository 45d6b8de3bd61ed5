/*
 * split_requant.c - the requantizing split transform (split_requant.h).
 */
#include "split_requant.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errmsg.h"
#include "pool.h"
#include "quant.h"
#include "quant_lowbit.h"
#include "split_calib.h"

static void rq_update_note(struct split_requant *rq);

static bool rq_is_gate_up(const char *name)
{
    return !strcmp(name, "ffn_gate_exps.weight") || !strcmp(name, "ffn_up_exps.weight") ||
           !strcmp(name, "ffn_gate_up_exps.weight");
}

static int rq_plan_part(void *ctx, int layer, const char *name, int src_type, uint32_t n_dims, const int64_t ne[4],
                        int *dst_type, char *err, size_t errlen)
{
    struct split_requant *rq = ctx;
    (void)n_dims;
    bool gu = rq_is_gate_up(name), down = !strcmp(name, "ffn_down_exps.weight");
    if (!gu && !down)
        return 0;
    bool keep = ne[0] % QK_K != 0;
    if (keep) {
        rq->n_kept++;
        rq_update_note(rq);
        return 0;
    }
    if (!quant_traits(src_type)->to_float)
        return errmsg_set(err, errlen, -EINVAL,
                          "requant: layer %d part %s: cannot dequantize the source type %s to re-quantize it",
                          layer, name, quant_traits(src_type)->name);
    *dst_type = gu ? rq->gate_up_type : rq->down_type;
    if (rq->hq3 && layer < rq->n_layer && (rq->hq3[layer] & (gu ? 1 : 2)))
        *dst_type = QT_HQ3;
    rq->n_requant++;
    if (src_type < 32)
        rq->src_types |= 1u << src_type;
    rq_update_note(rq);
    return 0;
}

/* One expert part, quantized by n_threads tasks: task t takes rows
 * [t * rows / n, (t + 1) * rows / n) of every 256-column group, with its own
 * QUANT_LOWBIT_WORK scratch. Rows are quantized independently, so the bytes
 * equal a single-threaded run's. */
struct rq_job {
    struct split_requant *rq;
    int layer, expert, kind, dst_type;
    void *dst;
    int64_t ne0, rows;
};

static void rq_task(void *ctx, int task, int n_tasks)
{
    const struct rq_job *j = ctx;
    const struct split_requant *rq = j->rq;
    const int64_t r0 = j->rows * task / n_tasks, r1 = j->rows * (task + 1) / n_tasks;
    const size_t row_bytes = quant_row_size(j->dst_type, j->ne0);
    uint8_t *dst = (uint8_t *)j->dst + (size_t)r0 * row_bytes;
    const float *src = rq->buf + (size_t)r0 * (size_t)j->ne0;
    if (r1 <= r0)
        return;
    if (!rq->calib) {
        if (j->dst_type == QT_HQ2)
            quant_quantize_hq2(src, dst, (r1 - r0) * j->ne0);
        else
            quant_quantize_hq3(src, dst, (r1 - r0) * j->ne0);
        return;
    }
    const size_t bsz = quant_traits(j->dst_type)->type_size;
    for (int64_t g = 0; g < j->ne0 / QK_K; g++)
        quant_quantize_hq_group(j->dst_type, src + g * QK_K, (size_t)j->ne0, dst + (size_t)g * bsz, row_bytes,
                                r1 - r0,
                                split_calib_block(rq->calib, j->layer, j->expert, j->kind, (int)g, (int)j->ne0),
                                rq->work + (size_t)task * QUANT_LOWBIT_WORK);
}

static int rq_convert(void *ctx, int layer, int expert, const char *name, int src_type, const void *src,
                      size_t src_size, int dst_type, void *dst, size_t dst_size, const int64_t ne[4], char *err,
                      size_t errlen)
{
    struct split_requant *rq = ctx;
    int64_t n = ne[0] * ne[1] * ne[2] * ne[3];
    if (quant_row_size(src_type, n) != src_size || quant_row_size(dst_type, n) != dst_size)
        return errmsg_set(err, errlen, -EINVAL,
                          "requant: layer %d expert %d part %s: %zu bytes of %s (expected %zu for %" PRId64
                          " values)", layer, expert, name, src_size, quant_traits(src_type)->name,
                          quant_row_size(src_type, n), n);
    if ((size_t)n > rq->buf_n) {
        float *b = realloc(rq->buf, (size_t)n * sizeof(float));
        if (!b)
            return errmsg_set(err, errlen, -ENOMEM, "requant: out of memory (%" PRId64 " floats)", n);
        rq->buf = b;
        rq->buf_n = (size_t)n;
    }
    quant_traits(src_type)->to_float(src, rq->buf, n);
    if (!rq->pool) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        rq->n_threads = nc < 1 ? 1 : nc > RQ_MAX_THREADS ? RQ_MAX_THREADS : (int)nc;
        if (!(rq->pool = pool_init(rq->n_threads)))
            return errmsg_set(err, errlen, -ENOMEM, "requant: cannot start %d threads", rq->n_threads);
    }
    if (rq->calib && !rq->work && !(rq->work = malloc((size_t)rq->n_threads * QUANT_LOWBIT_WORK * sizeof(double))))
        return errmsg_set(err, errlen, -ENOMEM, "requant: out of memory");
    struct rq_job j = { .rq = rq, .layer = layer, .expert = expert, .kind = rq_is_gate_up(name) ? 0 : 1,
                        .dst_type = dst_type, .dst = dst, .ne0 = ne[0], .rows = n / ne[0] };
    /* every thread takes a share of the rows of every group: the groups of
     * a down projection are few (3 for 768 columns), the rows many */
    pool_run(rq->pool, rq_task, &j, rq->n_threads);
    return 0;
}

int split_requant_init(struct split_requant *rq, const char *mode, char *err, size_t errlen)
{
    memset(rq, 0, sizeof(*rq));
    if (!strcmp(mode, "q2")) {
        rq->gate_up_type = rq->down_type = QT_HQ2;
    } else if (!strcmp(mode, "q3")) {
        rq->gate_up_type = rq->down_type = QT_HQ3;
    } else {
        return errmsg_set(err, errlen, -EINVAL, "requant: unknown mode '%s' (expected q2 or q3)", mode);
    }
    snprintf(rq->mode, sizeof(rq->mode), "%s", mode);
    rq_update_note(rq);
    rq->tf.plan_part = rq_plan_part;
    rq->tf.convert = rq_convert;
    rq->tf.ctx = rq;
    return 0;
}

static void rq_update_note(struct split_requant *rq)
{
    char hq3[160] = "";
    size_t h = 0;
    for (int L = 0; rq->hq3 && L < rq->n_layer && h < sizeof(hq3); L++)
        if (rq->hq3[L])
            h += (size_t)snprintf(hq3 + h, sizeof(hq3) - h, "%s%d%s", h ? "," : "; HQ3 in layers ", L,
                                  rq->hq3[L] == 3 ? "" : rq->hq3[L] == 1 ? "(gate/up)" : "(down)");
    if (rq->hq3 && h < sizeof(hq3))
        snprintf(hq3 + h, sizeof(hq3) - h, "; %.4f bits per weight", rq->bpw);
    char from[128] = "";
    size_t at = 0;
    for (int t = 0; t < 32 && at < sizeof(from); t++)
        if (rq->src_types & (1u << t))
            at += (size_t)snprintf(from + at, sizeof(from) - at, "%s%s", at ? "," : "", quant_traits(t)->name);
    snprintf(rq->note, sizeof(rq->note),
             "%s: routed experts gate/up %s, down %s (Hadamard-256, Lloyd-Max codebook, %s), "
             "from %s; %" PRIu64 " layer parts re-quantized, %" PRIu64 " kept%s",
             rq->mode, quant_traits(rq->gate_up_type)->name, quant_traits(rq->down_type)->name,
             rq->calib_note[0] ? rq->calib_note : "no calibration", at ? from : "-", rq->n_requant, rq->n_kept,
             hq3);
}

/* bits per weight of a block type (scales included) */
static double rq_bpw(int type)
{
    return 8.0 * (double)quant_traits(type)->type_size / (double)quant_traits(type)->blck_size;
}

int split_requant_set_budget(struct split_requant *rq, int first, int last, double bpw, char *err, size_t errlen)
{
    const double lo = rq_bpw(QT_HQ2), hi = rq_bpw(QT_HQ3);
    if (rq->gate_up_type != QT_HQ2 || rq->down_type != QT_HQ2)
        return errmsg_set(err, errlen, -EINVAL, "requant: a bits-per-weight budget needs q2 everywhere");
    if (!(bpw >= lo && bpw <= hi))
        return errmsg_set(err, errlen, -EINVAL, "requant: %.4g bits per weight is outside %.4f .. %.4f", bpw, lo,
                          hi);
    if (first < 0 || last < first)
        return 0;
    free(rq->hq3);
    rq->n_layer = last + 1;
    rq->hq3 = calloc((size_t)rq->n_layer, 1);
    if (!rq->hq3)
        return errmsg_set(err, errlen, -ENOMEM, "requant: out of memory");
    /* parts of the same size in every layer: k of the 3 n parts fit at HQ3 */
    const int n = last - first + 1, total = 3 * n;
    int k = (int)((bpw - lo) / (hi - lo) * total + 1e-9), used = 0;
    /* priority: the first layer whole, then gate/up from both ends inwards
     * (last, first + 1, last - 1, ...), then the down projections likewise */
    for (int kind = 0; kind < 2; kind++)
        for (int i = 0; i < n; i++) {
            int L = i == 0 ? first : i % 2 ? last - i / 2 : first + i / 2;
            if (kind == 1 && i == 0)
                continue;
            for (int part = 0; part < (i == 0 ? 2 : 1); part++) {
                int bit = i == 0 ? (part ? 2 : 1) : kind ? 2 : 1, cost = bit == 1 ? 2 : 1;
                if (used + cost <= k) {
                    rq->hq3[L] |= (uint8_t)bit;
                    used += cost;
                }
            }
        }
    rq->bpw = lo + (hi - lo) * used / total;
    rq_update_note(rq);
    return 0;
}

void split_requant_set_calib(struct split_requant *rq, const struct split_calib *c)
{
    rq->calib = c;
    snprintf(rq->calib_note, sizeof(rq->calib_note), "GPTQ self-calibrated on %" PRId64 " generated tokens",
             c->n_tokens);
    rq_update_note(rq);
}

void split_requant_set_down(struct split_requant *rq, int type)
{
    rq->down_type = type;
    rq_update_note(rq);
}

void split_requant_free(struct split_requant *rq)
{
    if (rq->pool)
        pool_free(rq->pool);
    rq->pool = NULL;
    free(rq->buf);
    free(rq->work);
    free(rq->hq3);
    rq->hq3 = NULL;
    rq->work = NULL;
    rq->buf = NULL;
    rq->buf_n = 0;
}
