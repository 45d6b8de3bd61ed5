/*
 * session.c - one sequence on an engine: chunking into steps.
 */
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seq.h"

struct session {
    struct engine *e;
    struct seq *q;
    int n_vocab;
    /* one step's rows: positions, sequence pointers, logits flags */
    int32_t *pos;
    struct seq **seqs;
    uint8_t *out;
    char err[512];
};

int session_init(struct session **out, struct engine *e, int n_ctx, char *err, size_t errlen)
{
    int nb = engine_n_batch(e);
    struct session *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "session: out of memory");
        return -ENOMEM;
    }
    s->e = e;
    s->n_vocab = model_hparams(engine_model(e))->n_vocab;
    s->pos = calloc((size_t)nb, sizeof(*s->pos));
    s->seqs = calloc((size_t)nb, sizeof(*s->seqs));
    s->out = calloc((size_t)nb, 1);
    int rc = seq_init(&s->q, engine_model(e), n_ctx, err, errlen);
    if (rc < 0 || !s->pos || !s->seqs || !s->out) {
        if (rc == 0)
            snprintf(err, errlen, "session: out of memory");
        session_free(s);
        return -ENOMEM;
    }
    for (int i = 0; i < nb; i++)
        s->seqs[i] = s->q;
    *out = s;
    return 0;
}

void session_free(struct session *s)
{
    if (!s)
        return;
    seq_free(s->q);
    free(s->pos);
    free(s->seqs);
    free(s->out);
    free(s);
}

int session_eval(struct session *s, const int32_t *tokens, int n, float *logits, bool all_logits)
{
    if (n <= 0)
        return 0;
    if (s->q->n_past + n > s->q->n_ctx) {
        snprintf(s->err, sizeof(s->err), "context full: %d tokens already, %d more do not fit in n_ctx %d (raise -c)",
                 s->q->n_past, n, s->q->n_ctx);
        return -ENOSPC;
    }
    int nb = engine_n_batch(s->e);
    size_t nv = (size_t)s->n_vocab;
    for (int c0 = 0; c0 < n; c0 += nb) {
        int nc = n - c0 < nb ? n - c0 : nb;
        bool last = c0 + nc == n;
        float *lg = NULL;
        if (logits && all_logits)
            lg = logits + (size_t)c0 * nv;
        else if (logits && last)
            lg = logits;
        for (int t = 0; t < nc; t++) {
            s->pos[t] = s->q->n_past + t;
            s->out[t] = all_logits || t == nc - 1;
        }
        struct engine_batch b = { nc, tokens + c0, s->pos, s->seqs, s->out };
        int rc = engine_step(s->e, &b, lg);
        if (rc < 0) {
            snprintf(s->err, sizeof(s->err), "%s", engine_error(s->e));
            return rc;
        }
    }
    return 0;
}

void session_reset(struct session *s)
{
    seq_reset(s->q);
}

int session_n_past(const struct session *s)
{
    return s->q->n_past;
}

int session_n_ctx(const struct session *s)
{
    return s->q->n_ctx;
}

const char *session_error(const struct session *s)
{
    return s->err;
}

struct seq *session_seq(struct session *s)
{
    return s->q;
}
