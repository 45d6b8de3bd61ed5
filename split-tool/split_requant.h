/*
 * split_requant.h - the requantizing transform of moestream-split --requant:
 * routed-expert weight parts (ffn_{gate,up,down}_exps.weight and the fused
 * ffn_gate_up_exps.weight) are dequantized from their source type and
 * re-quantized to HQ2 / HQ3 (kernels/quant_lowbit.h); every other tensor,
 * and parts whose rows are not a multiple of 256, keep their bytes.
 * No calibration data is used.
 *
 * Owns: the policy (which part gets which type), a scratch buffer of one
 * expert slice in float, the threads that quantize one expert part (every
 * online CPU; the bytes equal a one-thread run's), and the one-line note the
 * manifest records.
 * Must not print or exit. Used by split_main.c and tests.
 */
#ifndef MOESTREAM_SPLIT_REQUANT_H
#define MOESTREAM_SPLIT_REQUANT_H

#include <stddef.h>
#include <stdint.h>

#include "split.h"

struct split_calib;
struct pool;

/* at most this many quantizer threads */
#define RQ_MAX_THREADS 64

struct split_requant {
    int gate_up_type;         /* QT_HQ2 / QT_HQ3 for gate and up */
    int down_type;            /* QT_HQ2 / QT_HQ3 for down */
    uint8_t *hq3;             /* [n_layer] bit 0: gate/up at HQ3, bit 1: down at HQ3 (a q2 budget) */
    int n_layer;
    double bpw;               /* bits per weight of the re-quantized parts under that plan */
    const struct split_calib *calib; /* self-calibration statistics (borrowed); NULL = plain fit */
    double *work;             /* n_threads x QUANT_LOWBIT_WORK doubles for the weighted quantizer */
    struct pool *pool;        /* the threads that quantize one expert part (all online CPUs) */
    int n_threads;
    float *buf;               /* one expert slice as float */
    size_t buf_n;             /* floats in buf */
    uint64_t n_requant, n_kept; /* parts (per layer) re-quantized / kept */
    uint32_t src_types;       /* bit t set: a re-quantized part came from type t < 32 */
    char mode[4];             /* "q2" / "q3" */
    char calib_note[96];      /* "self-calibrated on N generated tokens"; empty = none */
    char note[512];           /* manifest line, kept up to date while split_convert plans (sized for
                               * the longest parts rq_update_note joins: no truncation) */
    struct split_transform tf;
};

/* Sets rq up for mode "q2" (HQ2 everywhere) or "q3" (HQ3 everywhere).
 * 0, or -EINVAL with err naming the mode. */
int split_requant_init(struct split_requant *rq, const char *mode, char *err, size_t errlen);
/* Pass rq->note as split_options.requant_note: the plan fills it in before
 * the manifest is written. */
/* A q2 budget: bpw bits per weight on average over the routed experts of
 * layers first..last (every layer's parts the same size), spent on HQ3 for
 * the parts that matter most on tinymoe (measured, bench/README.md): the
 * first layer whole, then gate/up from both ends inwards, then the down
 * projections; everything else HQ2. 0, or -EINVAL (bpw outside the range of
 * HQ2 .. HQ3, or not q2). */
int split_requant_set_budget(struct split_requant *rq, int first, int last, double bpw, char *err, size_t errlen);
/* Uses the self-calibration statistics c (borrowed) for the weighted
 * quantizer from now on. */
void split_requant_set_calib(struct split_requant *rq, const struct split_calib *c);
/* Sets the format of the down projections (QT_HQ2 / QT_HQ3). */
void split_requant_set_down(struct split_requant *rq, int type);
void split_requant_free(struct split_requant *rq);

#endif
