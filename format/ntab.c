/*
 * ntab.c - name hash index (FNV-1a, linear probing, load factor <= 1/2).
 */
#include "ntab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t ntab_hash(const char *p, uint64_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (uint64_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int ntab_resize(struct ntab *t, uint64_t cap)
{
    struct ntab_ent *e = malloc(cap * sizeof(*e));
    if (!e)
        return -ENOMEM;
    for (uint64_t i = 0; i < cap; i++)
        e[i].idx = -1;
    for (uint64_t i = 0; i < t->cap; i++) {
        if (t->e[i].idx < 0)
            continue;
        uint64_t j = ntab_hash(t->e[i].p, t->e[i].len) & (cap - 1);
        while (e[j].idx >= 0)
            j = (j + 1) & (cap - 1);
        e[j] = t->e[i];
    }
    free(t->e);
    t->e = e;
    t->cap = cap;
    return 0;
}

int64_t ntab_find(const struct ntab *t, const char *p, uint64_t len)
{
    if (t->cap == 0)
        return -1;
    uint64_t j = ntab_hash(p, len) & (t->cap - 1);
    while (t->e[j].idx >= 0) {
        if (t->e[j].len == len && memcmp(t->e[j].p, p, len) == 0)
            return t->e[j].idx;
        j = (j + 1) & (t->cap - 1);
    }
    return -1;
}

int ntab_insert(struct ntab *t, const char *p, uint64_t len, int64_t idx)
{
    if (ntab_find(t, p, len) >= 0)
        return -EEXIST;
    if ((t->n + 1) * 2 > t->cap) {
        uint64_t cap = t->cap ? t->cap * 2 : 16;
        if (ntab_resize(t, cap) < 0)
            return -ENOMEM;
    }
    uint64_t j = ntab_hash(p, len) & (t->cap - 1);
    while (t->e[j].idx >= 0)
        j = (j + 1) & (t->cap - 1);
    t->e[j] = (struct ntab_ent){ p, len, idx };
    t->n++;
    return 0;
}

void ntab_free(struct ntab *t)
{
    free(t->e);
    *t = (struct ntab){ 0 };
}
