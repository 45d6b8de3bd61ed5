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
/* The same, calling progress("loading pinned weights", done, total) after
 * every read of up to 64 MiB and ("checking pinned weights", ...) after every
 * tensor checked, the last call with done == total. progress may be NULL. */
int pinned_load_progress(struct pinned *out, const struct split_model *m, bool mlock_it, bool verify,
                         void (*progress)(const char *what, uint64_t done, uint64_t total), char *err,
                         size_t errlen);
void pinned_free(struct pinned *p);

#endif
