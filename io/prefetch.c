/*
 * prefetch.c - the prefetch policies (see prefetch.h).
 */
#include "prefetch.h"

#include <errno.h>
#include <stdlib.h>

struct prefetch {
    enum prefetch_kind kind;
    int n_layer, n_expert;
};

int prefetch_open(struct prefetch **out, enum prefetch_kind kind, int n_layer, int n_expert)
{
    if (kind != PREFETCH_NONE && kind != PREFETCH_LOOKAHEAD)
        return -EINVAL;
    struct prefetch *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->kind = kind;
    p->n_layer = n_layer;
    p->n_expert = n_expert;
    *out = p;
    return 0;
}

void prefetch_close(struct prefetch *p)
{
    free(p);
}

enum prefetch_kind prefetch_kind(const struct prefetch *p)
{
    return p ? p->kind : PREFETCH_NONE;
}

int prefetch_wants_lookahead(const struct prefetch *p)
{
    return p && p->kind == PREFETCH_LOOKAHEAD;
}

void prefetch_observe(struct prefetch *p, int layer, const int32_t *ids, int n)
{
    /* the lookahead policy keeps no history; co-activation policies will */
    (void)p, (void)layer, (void)ids, (void)n;
}

int prefetch_hints(struct prefetch *p, int layer, const int32_t *guess, int n_guess, int32_t *out, int max)
{
    if (!p || p->kind == PREFETCH_NONE || layer < 0 || layer >= p->n_layer)
        return 0;
    int n = 0;
    for (int i = 0; i < n_guess && n < max; i++)
        if (guess[i] >= 0 && guess[i] < p->n_expert)
            out[n++] = guess[i];
    return n;
}
