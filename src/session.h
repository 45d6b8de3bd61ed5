/*
 * session.h - the simple case: one sequence on an engine, fed token runs of
 * any length (cut into steps of the engine's batch size). What run, chat,
 * logits, perplexity and bench use; `batch` and the server drive the engine
 * with several sequences directly (src/engine.h).
 */
#ifndef MOESTREAM_SESSION_H
#define MOESTREAM_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

struct session;

/* A sequence of n_ctx positions on e (borrowed; must outlive the session).
 * 0 or -ENOMEM with err. */
int session_init(struct session **out, struct engine *e, int n_ctx, char *err, size_t errlen);
void session_free(struct session *s);

/* Evaluates tokens[0..n) at positions n_past.. (appending to the state).
 * logits: [n][n_vocab] when all_logits, else the last position's [n_vocab];
 * may be NULL. 0, or -ENOSPC on context overflow, or the engine's error;
 * message in session_error(). */
int session_eval(struct session *s, const int32_t *tokens, int n, float *logits, bool all_logits);

/* Forgets the state (positions restart at 0). */
void session_reset(struct session *s);
int session_n_past(const struct session *s);
int session_n_ctx(const struct session *s);
const char *session_error(const struct session *s);
struct seq *session_seq(struct session *s);

#endif
