/*
 * qdprobe.h - the queue-depth probe run at open when --queue-depth is not
 * given: a few hundred milliseconds of O_DIRECT reads of real expert blobs
 * (blob-sized reads at random 16 KiB-aligned offsets of one experts file,
 * through io/devbench.c) at 1, 4 and 16 reads in flight. The smallest depth
 * that reaches QDPROBE_ENOUGH of the best bandwidth is where the device
 * saturates: a USB disk behind a 150 MB/s link is saturated by one read, an
 * SSD wants many. The provider turns that into its queue depth.
 *
 * Owns nothing after it returns (devbench opens and closes its reader and
 * buffer). Does not print: the result carries a one-line summary.
 */
#ifndef MOESTREAM_QDPROBE_H
#define MOESTREAM_QDPROBE_H

#include <stddef.h>
#include <stdint.h>

#include "reader.h"

#define QDPROBE_N 3
#define QDPROBE_ENOUGH 0.9      /* of the best bandwidth */
#define QDPROBE_SECONDS 0.1     /* per depth, plus draining the reads in flight */

struct qdprobe_result {
    int qd[QDPROBE_N];          /* 1, 4, 16 */
    double bw[QDPROBE_N];       /* bytes/s at each depth */
    int saturated;              /* smallest qd reaching QDPROBE_ENOUGH of the best */
    double seconds;             /* the probe's wall time */
    enum reader_backend backend;
};

/* Probes `path` with reads of `block` bytes (a multiple of 4096). 0 or
 * -errno with err. */
int qdprobe_run(const char *path, size_t block, enum reader_backend backend, struct qdprobe_result *r,
                char *err, size_t errlen);

#endif
