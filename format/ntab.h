/*
 * ntab.h - an open-addressing hash index from names (byte strings, not
 * copied) to integer indices, for the GGUF reader's tensor and key tables
 * and the writer's duplicate checks.
 *
 * Owns: the index array. The names belong to the caller and must outlive
 * the table. Not thread-safe.
 */
#ifndef MOESTREAM_NTAB_H
#define MOESTREAM_NTAB_H

#include <stdint.h>

struct ntab_ent {
    const char *p;
    uint64_t len;
    int64_t idx; /* -1 = empty */
};

struct ntab {
    struct ntab_ent *e;
    uint64_t cap; /* power of two or 0 */
    uint64_t n;
};

/* The index stored for the name, or -1. */
int64_t ntab_find(const struct ntab *t, const char *p, uint64_t len);
/* 0, -EEXIST (name present) or -ENOMEM. */
int ntab_insert(struct ntab *t, const char *p, uint64_t len, int64_t idx);
void ntab_free(struct ntab *t);

#endif
