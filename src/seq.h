/*
 * seq.h - one sequence (a conversation, a prompt): its position and its
 * state, laid out by the model's architecture (a KV cache today; a recurrent
 * state, a latent cache or a window buffer for other architectures). Sized
 * once for n_ctx positions; the engine appends to it in engine_step.
 */
#ifndef MOESTREAM_SEQ_H
#define MOESTREAM_SEQ_H

#include <stddef.h>
#include <stdint.h>

struct model;

struct seq {
    const struct model *m;
    int n_ctx;
    int n_past;            /* positions filled */
    void *state;           /* the architecture's */
    uint64_t state_bytes;
};

/* 0 or -ENOMEM with err. */
int seq_init(struct seq **out, const struct model *m, int n_ctx, char *err, size_t errlen);
void seq_free(struct seq *s);
/* Forgets every position (the next token is at position 0). */
void seq_reset(struct seq *s);
/* Cuts the sequence back to its first n_past positions (prompt-prefix
 * reuse). 0; -ENOTSUP when the architecture's state cannot be cut back
 * (recurrent or ring state) and n_past is neither 0 nor the current length;
 * -EINVAL when n_past is outside [0, current length]. */
int seq_rewind(struct seq *s, int n_past);

#endif
