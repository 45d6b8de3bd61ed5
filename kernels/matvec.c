/*
 * matvec.c - matrix-vector (decode) and matrix-matrix (prompt) drivers.
 *
 * Owns: activation quantization into the weight type's vec_dot_type and the
 * split of weight rows into chunks handed to the pool. The kernel
 * (traits->vec_dot, read at call time so quant_select_isa applies) owns the
 * arithmetic of one row; every output element is exactly one vec_dot call
 * per activation pass, or the same dot computed by traits->vec_dot_multi,
 * which unpacks a weight row once for several activation rows and is
 * bit-identical to vec_dot row by row, so matvec and matmul give
 * bit-identical results to a per-row loop.
 * Must not allocate, print or exit. Called by the model forward pass.
 */
#include "matvec.h"

#include <assert.h>
#include <stdbool.h>
#include <string.h>

/* Aim for this many chunks per thread so a slow (descheduled) thread does not
 * hold the others up, but keep at least MATVEC_MIN_ROWS rows per chunk so the
 * per-task overhead (one atomic) stays small next to the row work. */
#define MATVEC_CHUNKS_PER_THREAD 4
#define MATVEC_MIN_ROWS 4
/* matmul: weight rows per block, sized so one block of weights stays in L2
 * (about 256 KiB) while every token is multiplied with it. */
#define MATMUL_BLOCK_BYTES (256 * 1024)
/* matmul: activation rows (tokens x passes) handed to one vec_dot_multi call
 * per weight row. The chunk's activations stay in L1 (8 rows of n = 2048 as
 * Q8_K: 18 KiB) while the row block streams from L2 once per chunk; with 32
 * or 64 rows the activations fall out of L1 and matmul of 64 tokens on the
 * dev VM drops from 27 to 23 effective GB/s (Q4_K) and 45 to 33 (Q6_K). */
#define MATMUL_CHUNK_ACT 8
/* four-row kernels with prepared activations (traits.x4_prep): bytes of
 * the stack buffer holding one chunk's prepared rows; longer rows take the
 * kernel that rearranges the activations itself (same bits) */
#define MATVEC_PREP_BYTES (128 * 1024)
/* matmul: activation rows from which the sixteen-row tile kernel (weights
 * transposed once per call) beats the four-row kernel */
#define MATMUL_TILE_MIN_ACT 8

/* Activation passes for 8-bit activation types. MATVEC_ACT8: x ~ q1 (as
 * llama.cpp). MATVEC_ACT16: x ~ q1 + q2 where q2 quantizes the residual
 * x - q1, about 16-bit activations for twice the integer work but the same
 * weight traffic: on the fixtures this takes mean KL against exact float64
 * logits from ~7e-3 (llama.cpp's level) to ~1e-5. */
static int passes_for(enum quant_type wt, enum matvec_act act)
{
    assert(act == MATVEC_ACT8 || act == MATVEC_ACT16);
    if (!quant_traits(quant_traits(wt)->vec_dot_type)->is_quantized)
        return 1;
    return act == MATVEC_ACT16 ? 2 : 1;
}

size_t matvec_act_size(enum quant_type wt, int64_t n, enum matvec_act act)
{
    return (size_t)passes_for(wt, act) * quant_row_size(quant_traits(wt)->vec_dot_type, n);
}

void matvec_quantize_act(enum quant_type wt, const float *x, void *xq, int64_t n, enum matvec_act act)
{
    const struct quant_traits *at = quant_traits(quant_traits(wt)->vec_dot_type);
    /* the ISA variant, when installed, writes the same bytes as the reference */
    quant_from_float_fn q = at->from_float_simd ? at->from_float_simd : at->from_float;
    assert(q != NULL);
    if (passes_for(wt, act) == 1) {
        q(x, xq, n);
        return;
    }
    /* block by block: q1 = Q(x), q2 = Q(x - deq(q1)), rows back to back */
    enum { MAX_BLCK = 256 };
    float deq[MAX_BLCK], res[MAX_BLCK];
    int64_t bs = at->blck_size;
    size_t row = quant_row_size(quant_traits(wt)->vec_dot_type, n);
    uint8_t *q1 = xq, *q2 = (uint8_t *)xq + row;
    assert(bs <= MAX_BLCK && at->to_float != NULL);
    for (int64_t b = 0; b < n / bs; b++) {
        const float *xb = x + b * bs;
        q(xb, q1 + (size_t)b * at->type_size, bs);
        at->to_float(q1 + (size_t)b * at->type_size, deq, bs);
        for (int64_t i = 0; i < bs; i++)
            res[i] = xb[i] - deq[i];
        q(res, q2 + (size_t)b * at->type_size, bs);
    }
}

struct quant_rows_job {
    enum quant_type wt;
    enum matvec_act act;
    const float *x;
    size_t x_stride, row;
    uint8_t *xq;
    int64_t n, n_rows, per_task;
};

static void quant_rows_task(void *ctx, int task, int n_tasks)
{
    (void)n_tasks;
    const struct quant_rows_job *j = ctx;
    int64_t r1 = (task + 1) * j->per_task < j->n_rows ? (task + 1) * j->per_task : j->n_rows;
    for (int64_t r = task * j->per_task; r < r1; r++)
        matvec_quantize_act(j->wt, j->x + (size_t)r * j->x_stride, j->xq + (size_t)r * j->row, j->n, j->act);
}

void matvec_quantize_rows(struct pool *p, enum quant_type wt, const float *x, size_t x_stride, void *xq, int64_t n,
                          int64_t n_rows, enum matvec_act act)
{
    struct quant_rows_job j = { wt, act, x, x_stride, matvec_act_size(wt, n, act), xq, n, n_rows, 0 };
    if (n_rows <= 0)
        return;
    /* a few rows per task (about 16K elements), so short batches stay on
     * the calling thread */
    j.per_task = (16384 + n - 1) / n;
    if (j.per_task < 1)
        j.per_task = 1;
    int n_tasks = (int)((n_rows + j.per_task - 1) / j.per_task);
    if (n_tasks == 1)
        quant_rows_task(&j, 0, 1);
    else
        pool_run(p, quant_rows_task, &j, n_tasks);
}

struct matvec_job {
    float *y;               /* matvec: [n_rows]; matmul: [n_tok][n_rows] */
    const uint8_t *W;       /* [n_rows][row_size] */
    const uint8_t *xq;      /* [n_tok][act_size] */
    quant_dot_fn dot;
    quant_dot_multi_fn dot_multi; /* NULL: the type has none in this ISA */
    quant_dot_x4_fn dot_x4;       /* four rows at once; NULL: none */
    quant_gemm16_fn gemm16;       /* sixteen rows x many activations; NULL: none */
    quant_x4_prep_fn x4_prep;     /* with dot_x4p: activations prepared once per chunk */
    quant_dot_x4_fn dot_x4p;
    size_t prep_row;              /* bytes of one prepared activation row; 0: none */
    size_t pass2;           /* offset of the residual activation row; 0 = one pass */
    size_t act_row;         /* bytes of one activation row of one pass */
    int passes;             /* 1, or 2 (the row, then its residual) */
    int64_t n_rows;
    int64_t n;              /* elements per row */
    int64_t rows_per_task;
    size_t row_size;        /* bytes per weight row */
    size_t act_size;        /* bytes per quantized activation row */
    int64_t n_tok;
};

static int64_t matvec_rows_per_task(int64_t n_rows, int n_threads, int64_t min_rows)
{
    int64_t want = (int64_t)n_threads * MATVEC_CHUNKS_PER_THREAD;
    int64_t rows = (n_rows + want - 1) / want;
    if (rows < min_rows)
        rows = min_rows;
    return rows;
}

/* One output: the dot of a weight row with the activations (and with their
 * residual row in two-pass mode), always summed in the same order. */
static inline float matvec_dot(const struct matvec_job *j, const uint8_t *w, const uint8_t *x)
{
    if (j->pass2 && j->dot_multi) {
        float s2[2];
        j->dot_multi(j->n, s2, 1, w, x, j->pass2, 2);
        return s2[0] + s2[1];
    }
    float s;
    j->dot(j->n, &s, w, x);
    if (j->pass2) {
        float s2;
        j->dot(j->n, &s2, w, x + j->pass2);
        s += s2;
    }
    return s;
}

/* Rows [r0, r1) against nt tokens through the four-row kernel:
 * y[t * ys + r] for t < nt, x = the first token's quantized row (tokens
 * act_size apart, each passes rows of act_row bytes). Two passes sum as
 * matvec_dot does: pass 1 + pass 2. */
/* Rows [r0, r1) against nt tokens through the sixteen-row tile kernel (same
 * bits as the four-row one); tokens in chunks of QUANT_GEMM16_MAX_ACT
 * activation rows. */
static void matvec_rows_tile(const struct matvec_job *j, float *y, size_t ys, int64_t r0, int64_t r1,
                             const uint8_t *x, int64_t nt)
{
    const int64_t chunk = QUANT_GEMM16_MAX_ACT / j->passes;
    for (int64_t r = r0; r < r1; r += 16) {
        const int nr = r1 - r < 16 ? (int)(r1 - r) : 16;
        const uint8_t *w = j->W + (size_t)r * j->row_size;
        for (int64_t t0 = 0; t0 < nt; t0 += chunk) {
            const int64_t n_t = nt - t0 < chunk ? nt - t0 : chunk;
            const uint8_t *xt = x + (size_t)t0 * j->act_size;
            j->gemm16(j->n, y + (size_t)t0 * ys + (size_t)r, ys, w, j->row_size, nr, xt, j->act_row, (int)n_t, j->passes);
        }
    }
}

static void matvec_rows_x4(const struct matvec_job *j, float *y, size_t ys, int64_t r0, int64_t r1, const uint8_t *x,
                           int64_t nt)
{
    if (j->gemm16 && nt * j->passes >= MATMUL_TILE_MIN_ACT) {
        matvec_rows_tile(j, y, ys, r0, r1, x, nt);
        return;
    }
    /* tokens outer (a chunk's activations stay in L1), four rows inner */
    float s[MATMUL_CHUNK_ACT * 4];
    uint8_t prep[MATVEC_PREP_BYTES] __attribute__((aligned(64)));
    const bool use_prep = j->prep_row && j->prep_row * MATMUL_CHUNK_ACT <= sizeof(prep);
    const int64_t chunk = MATMUL_CHUNK_ACT / j->passes;
    for (int64_t t0 = 0; t0 < nt; t0 += chunk) {
        const int64_t n_t = nt - t0 < chunk ? nt - t0 : chunk;
        const uint8_t *xt = x + (size_t)t0 * j->act_size;
        /* activation rows a = t * passes + p are act_row bytes apart */
        quant_dot_x4_fn dot = j->dot_x4;
        size_t as = j->act_row;
        if (use_prep) {
            j->x4_prep(j->n, xt, j->act_row, (int)(n_t * j->passes), prep);
            dot = j->dot_x4p, xt = prep, as = j->prep_row;
        }
        if (t0 == 0) {
            /* the Q4_K/Q6_K kernels prefetch QUANT_X4_PF_GROUPS groups ahead
             * (the others one): fetch the first groups of the range here */
            int64_t re = r0 + 4 * QUANT_X4_PF_GROUPS < r1 ? r0 + 4 * QUANT_X4_PF_GROUPS : r1;
            quant_prefetch_range(j->W + (size_t)r0 * j->row_size, (size_t)(re - r0) * j->row_size);
        }
        for (int64_t r = r0; r < r1; r += 4) {
            const int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
            const uint8_t *w[4];
            for (int q = 0; q < 4; q++)
                w[q] = j->W + (size_t)(r + (q < nr ? q : nr - 1)) * j->row_size;
            if (j->passes == 1) {
                dot(j->n, y + (size_t)t0 * ys + (size_t)r, ys, w, nr, xt, as, (int)n_t);
                continue;
            }
            dot(j->n, s, 4, w, nr, xt, as, (int)(2 * n_t));
            for (int64_t t = 0; t < n_t; t++)
                for (int q = 0; q < nr; q++)
                    y[(size_t)(t0 + t) * ys + (size_t)(r + q)] = s[8 * t + q] + s[8 * t + 4 + q];
        }
    }
}

/* y[r0..r1) = W[r0..r1)[n] . x[n] */
static void matvec_task(void *ctx, int task, int n_tasks)
{
    (void)n_tasks;
    const struct matvec_job *j = ctx;
    int64_t r0 = (int64_t)task * j->rows_per_task;
    int64_t r1 = r0 + j->rows_per_task;
    if (r1 > j->n_rows)
        r1 = j->n_rows;
    if (j->dot_x4) {
        matvec_rows_x4(j, j->y, 0, r0, r1, j->xq, 1);
        return;
    }
    for (int64_t r = r0; r < r1; r++)
        j->y[r] = matvec_dot(j, j->W + (size_t)r * j->row_size, j->xq);
}

void matvec(struct pool *p, float *y, const void *W, enum quant_type wt,
            int64_t n_rows, int64_t n, const void *xq, enum matvec_act act)
{
    const struct quant_traits *tr = quant_traits(wt);
    assert(tr->vec_dot != NULL && n % tr->blck_size == 0);
    if (n_rows <= 0)
        return;
    struct matvec_job j = {
        .y = y, .W = W, .xq = xq, .dot = tr->vec_dot, .dot_multi = tr->vec_dot_multi, .dot_x4 = tr->vec_dot_x4, .gemm16 = tr->gemm16,
        .x4_prep = tr->x4_prep, .dot_x4p = tr->vec_dot_x4p, .prep_row = tr->x4_prep ? tr->x4_prep_size(n) : 0,
        .n_rows = n_rows, .n = n, .row_size = quant_row_size(wt, n), .n_tok = 1,
        .act_size = matvec_act_size(wt, n, act), .act_row = quant_row_size(tr->vec_dot_type, n),
        .passes = passes_for(wt, act),
    };
    if (j.passes == 2)
        j.pass2 = j.act_row;
    j.rows_per_task = matvec_rows_per_task(n_rows, pool_n_threads(p), MATVEC_MIN_ROWS);
    if (j.dot_x4) /* whole groups of four rows per task */
        j.rows_per_task = (j.rows_per_task + 3) & ~(int64_t)3;
    pool_run(p, matvec_task, &j, (int)((n_rows + j.rows_per_task - 1) / j.rows_per_task));
}

/* Y[t][r0..r1) = X[t] . W[r0..r1)^T for every token t; the inner loop runs
 * over rows of the block so each weight row is reused from cache n_tok times */
static void matmul_block(const struct matvec_job *j, int64_t r0, int64_t r1)
{
    if (j->dot_x4) {
        matvec_rows_x4(j, j->y, (size_t)j->n_rows, r0, r1, j->xq, j->n_tok);
        return;
    }
    if (!j->dot_multi) {
        for (int64_t t = 0; t < j->n_tok; t++) {
            const uint8_t *x = j->xq + (size_t)t * j->act_size;
            float *yt = j->y + (size_t)t * (size_t)j->n_rows;
            for (int64_t r = r0; r < r1; r++)
                yt[r] = matvec_dot(j, j->W + (size_t)r * j->row_size, x);
        }
        return;
    }
    /* Activation row a = t * passes + p (token t, pass p) starts at
     * xq + a * act_row: the rows are evenly spaced, so a chunk of tokens is
     * one vec_dot_multi call per weight row. */
    const int64_t chunk_tok = MATMUL_CHUNK_ACT / j->passes;
    float s[MATMUL_CHUNK_ACT];
    for (int64_t t0 = 0; t0 < j->n_tok; t0 += chunk_tok) {
        const int64_t nt = j->n_tok - t0 < chunk_tok ? j->n_tok - t0 : chunk_tok;
        const uint8_t *x = j->xq + (size_t)t0 * j->act_size;
        float *y = j->y + (size_t)t0 * (size_t)j->n_rows;
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *w = j->W + (size_t)r * j->row_size;
            if (j->passes == 1) {
                j->dot_multi(j->n, y + r, (size_t)j->n_rows, w, x, j->act_row, (int)nt);
                continue;
            }
            j->dot_multi(j->n, s, 1, w, x, j->act_row, (int)(2 * nt));
            for (int64_t t = 0; t < nt; t++)
                y[(size_t)t * (size_t)j->n_rows + (size_t)r] = s[2 * t] + s[2 * t + 1];
        }
    }
}

static void matmul_task(void *ctx, int task, int n_tasks)
{
    (void)n_tasks;
    const struct matvec_job *j = ctx;
    int64_t r0 = (int64_t)task * j->rows_per_task;
    int64_t r1 = r0 + j->rows_per_task;
    if (r1 > j->n_rows)
        r1 = j->n_rows;
    matmul_block(j, r0, r1);
}

void matmul(struct pool *p, float *Y, const void *W, enum quant_type wt,
            int64_t n_rows, int64_t n, const void *Xq, int64_t n_tok, enum matvec_act act)
{
    const struct quant_traits *tr = quant_traits(wt);
    assert(tr->vec_dot != NULL && n % tr->blck_size == 0);
    if (n_rows <= 0 || n_tok <= 0)
        return;
    if (n_tok == 1) {
        matvec(p, Y, W, wt, n_rows, n, Xq, act);
        return;
    }
    struct matvec_job j = {
        .y = Y, .W = W, .xq = Xq, .dot = tr->vec_dot, .dot_multi = tr->vec_dot_multi, .dot_x4 = tr->vec_dot_x4, .gemm16 = tr->gemm16,
        .x4_prep = tr->x4_prep, .dot_x4p = tr->vec_dot_x4p, .prep_row = tr->x4_prep ? tr->x4_prep_size(n) : 0,
        .n_rows = n_rows,
        .n = n, .row_size = quant_row_size(wt, n), .act_size = matvec_act_size(wt, n, act), .n_tok = n_tok,
        .act_row = quant_row_size(tr->vec_dot_type, n), .passes = passes_for(wt, act),
    };
    if (j.passes == 2)
        j.pass2 = j.act_row;
    /* block = rows fitting in MATMUL_BLOCK_BYTES, but small enough that every
     * thread gets MATVEC_CHUNKS_PER_THREAD blocks when the matrix allows */
    int64_t cache_rows = (int64_t)(MATMUL_BLOCK_BYTES / (j.row_size ? j.row_size : 1));
    if (cache_rows < 1)
        cache_rows = 1;
    int64_t rows = matvec_rows_per_task(n_rows, pool_n_threads(p), 1);
    j.rows_per_task = rows < cache_rows ? rows : cache_rows;
    if (j.gemm16) /* whole tiles of sixteen rows per task */
        j.rows_per_task = (j.rows_per_task + 15) & ~(int64_t)15;
    else if (j.dot_x4)
        j.rows_per_task = (j.rows_per_task + 3) & ~(int64_t)3;
    pool_run(p, matmul_task, &j, (int)((n_rows + j.rows_per_task - 1) / j.rows_per_task));
}

void matmul_rows(float *Y, int64_t y_stride, const void *W, enum quant_type wt, int64_t r0, int64_t r1, int64_t n,
                 const void *Xq, int64_t n_tok, enum matvec_act act)
{
    const struct quant_traits *tr = quant_traits(wt);
    assert(tr->vec_dot != NULL && n % tr->blck_size == 0);
    if (r1 <= r0 || n_tok <= 0)
        return;
    struct matvec_job j = {
        .y = Y, .W = W, .xq = Xq, .dot = tr->vec_dot, .dot_multi = tr->vec_dot_multi, .dot_x4 = tr->vec_dot_x4, .gemm16 = tr->gemm16,
        .x4_prep = tr->x4_prep, .dot_x4p = tr->vec_dot_x4p, .prep_row = tr->x4_prep ? tr->x4_prep_size(n) : 0,
        .n_rows = y_stride,
        .n = n, .row_size = quant_row_size(wt, n), .act_size = matvec_act_size(wt, n, act), .n_tok = n_tok,
        .act_row = quant_row_size(tr->vec_dot_type, n), .passes = passes_for(wt, act),
    };
    if (j.passes == 2)
        j.pass2 = j.act_row;
    matmul_block(&j, r0, r1);
}
