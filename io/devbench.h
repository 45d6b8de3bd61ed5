/*
 * devbench.h - raw random-read bandwidth of one file or block device through
 * the reader (io/reader.h): O_DIRECT reads of a fixed size at random aligned
 * offsets, a fixed number in flight, for a fixed time or byte count. The
 * number to compare the expert streaming rate with (`moestream iobench
 * --device`).
 * Owns its reader and one buffer of queue_depth * block bytes. Does not
 * print or exit. Called by src/cli_iobench.c.
 */
#ifndef MOESTREAM_DEVBENCH_H
#define MOESTREAM_DEVBENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reader.h"

/* Offsets are multiples of this (the split format's blob alignment) when the
 * reader's alignment is smaller. */
#define DEVBENCH_OFFSET_ALIGN 16384

struct devbench_opts {
    const char *path;
    enum reader_backend backend;   /* preferred; the reader falls back once */
    size_t block;                  /* bytes per read: a multiple of 4096 */
    int queue_depth;               /* reads in flight */
    double seconds;                /* stop starting reads after this long */
    uint64_t max_bytes;            /* ... or after this many bytes; 0 = no limit */
    uint64_t seed;                 /* offsets are a function of it */
    void (*log)(const char *msg);  /* the reader's fallback notices; may be NULL */
};

struct devbench_result {
    uint64_t bytes;                /* read, all full reads */
    uint64_t reads;
    double seconds;                /* first submit to last completion */
    enum reader_backend backend;   /* in use after any fallback */
    size_t align;                  /* the reader's O_DIRECT alignment */
};

/* Size of a regular file or block device in bytes. 0 or -errno with err;
 * -EINVAL for other kinds of file. */
int devbench_size(const char *path, uint64_t *size, bool *is_blockdev, char *err, size_t errlen);

/* Runs one measurement. The file must hold at least one block. 0 or -errno
 * with err (a failed read names file and offset). */
int devbench_run(const struct devbench_opts *o, struct devbench_result *res, char *err, size_t errlen);

#endif
