/*
 * seq.c - sequence allocation through the architecture's state ops.
 */
#include "seq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "arch.h"
#include "model.h"

int seq_init(struct seq **out, const struct model *m, int n_ctx, char *err, size_t errlen)
{
    const struct arch_ops *a = model_arch(m);
    struct seq *s = calloc(1, sizeof(*s));
    if (!s || n_ctx <= 0 || a->state_init(m, n_ctx, &s->state) < 0) {
        free(s);
        snprintf(err, errlen, "sequence: cannot allocate the state of %d positions (%.1f MiB)", n_ctx,
                 a->state_bytes(model_hparams(m), n_ctx > 0 ? n_ctx : 0) / 1048576.0);
        return -ENOMEM;
    }
    s->m = m;
    s->n_ctx = n_ctx;
    s->state_bytes = a->state_bytes(model_hparams(m), n_ctx);
    *out = s;
    return 0;
}

void seq_free(struct seq *s)
{
    if (!s)
        return;
    model_arch(s->m)->state_free(s->state);
    free(s);
}

int seq_rewind(struct seq *s, int n_past)
{
    if (n_past < 0 || n_past > s->n_past)
        return -EINVAL;
    if (n_past == s->n_past)
        return 0;
    if (n_past == 0) {
        seq_reset(s);
        return 0;
    }
    if (!model_arch(s->m)->rewindable)
        return -ENOTSUP;
    s->n_past = n_past;
    return 0;
}

void seq_reset(struct seq *s)
{
    s->n_past = 0;
    model_arch(s->m)->state_reset(s->m, s->state);
}
