/*
 * widen.h - widening the routed experts of a real MoE GGUF with zero
 * neurons, for I/O benchmarks whose routing is real.
 *
 * Every stacked expert tensor blk.N.ffn_{gate,up}_exps (ne = [n_embd, n_ff,
 * n_expert]) gets zero rows up to n_ff = N, and blk.N.ffn_down_exps (ne =
 * [n_ff, n_embd, n_expert]) zero columns up to N: gate and up rows of zeros
 * give silu(0) * 0 = 0, and zero down columns weigh those zeros, so the
 * padded neurons add exactly nothing and the logits stay those of the source
 * model. All-zero bytes dequantize to 0 in every ggml block type; padding is
 * whole blocks, so N - n_ff must be a multiple of the down tensor's block
 * size. The "<arch>.expert_feed_forward_length" key becomes N; every other
 * key and tensor is copied unchanged.
 *
 * Owns: the tensor plan of the widened file and the streamed copy (one
 * expert slice in memory at a time). Must not print or exit.
 * Called by synth_main.c (moestream-synth --widen-experts) and tests.
 */
#ifndef MOESTREAM_WIDEN_H
#define MOESTREAM_WIDEN_H

#include <stddef.h>
#include <stdint.h>

/* Writes src with its experts widened to n_ff_exp = n_ff into dst (through
 * dst.tmp-<pid>, renamed when complete). 0, or -errno / -EINVAL with one
 * line in err (n_ff smaller than the source's, not a multiple of the block,
 * no expert tensors, I/O errors). *bytes_out (may be NULL): bytes written. */
int widen_experts(const char *src, const char *dst, int n_ff, uint64_t *bytes_out, char *err, size_t errlen);

#endif
