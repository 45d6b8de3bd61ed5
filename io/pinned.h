/*
 * pinned.h - loads pinned.bin of a split model into anonymous memory (read,
 * not mmap'ed), NUMA-local to the calling thread, optionally mlock'ed, and
 * checks each tensor's XXH3 against the manifest.
 */
#ifndef MOESTREAM_PINNED_H
#define MOESTREAM_PINNED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct split_model;

struct pinned {
    uint8_t *base;     /* tensor t lives at base + split tensor offset */
    uint64_t size;     /* bytes held */
};

int pinned_load(struct pinned *out, const struct split_model *m, bool mlock_it,
                bool verify, char *err, size_t errlen);
void pinned_free(struct pinned *p);

#endif
