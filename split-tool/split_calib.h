/*
 * split_calib.h - self-calibration for moestream-split --requant: the source
 * model writes its own text (sampled at temperature 1 from its end-of-text
 * token, no external data), and while it does, the input statistics of every
 * routed expert are accumulated: for each (layer, expert) the second moments
 * E[w^2 x x^T] of its input x (what gate and up multiply) and of its down
 * projection's input, w the router weight of the row. Kept as 256x256 blocks
 * on the diagonal (one per group of 256 inputs: the quantizer's groups).
 *
 * Owns: running the source model (src/ session API) with an activation hook,
 * the statistics arrays. Must not print or exit. Used by split_main.c and
 * split_requant.c.
 */
#ifndef MOESTREAM_SPLIT_CALIB_H
#define MOESTREAM_SPLIT_CALIB_H

#include <stddef.h>
#include <stdint.h>

#define SPLIT_CALIB_GROUP 256
/* tokens moestream-split generates by default (measured on tinymoe q2: 4096
 * self-generated tokens take the 20-chunk perplexity from 9.67 to 9.15) */
#define SPLIT_CALIB_DEFAULT 4096

struct split_calib {
    int n_layer, n_expert, n_embd, n_ff;
    float *cov;      /* per (layer, expert): kind 0 blocks [n_embd / 256][256][256], then kind 1 [n_ff / 256][256][256] */
    double *wsum;    /* [n_layer][n_expert][2]: sum of w^2 over the rows seen */
    uint64_t *rows;  /* [n_layer][n_expert]: rows seen */
    int64_t n_tokens; /* tokens generated */
};

/* Bytes the statistics of a model take (to refuse what does not fit). */
uint64_t split_calib_bytes(int n_layer, int n_expert, int n_embd, int n_ff);

/* Opens the model at path (GGUF or split), generates n_tokens tokens in
 * sequences of n_ctx (seeded), collecting the statistics. max_bytes caps the
 * statistics' memory (-E2BIG with a message naming the need). 0 or -errno. */
int split_calib_run(struct split_calib *c, const char *path, int n_tokens, int n_ctx, uint64_t seed, int n_threads,
                    uint64_t max_bytes, char *err, size_t errlen);

/* The 256x256 second-moment block of group g of (layer, expert, kind)
 * (kind 0: expert input, 1: down input), unnormalised sums; NULL
 * when the expert was never routed or the shape is not the calibrated one. */
const float *split_calib_block(const struct split_calib *c, int layer, int expert, int kind, int g, int dim);

void split_calib_free(struct split_calib *c);

#endif
