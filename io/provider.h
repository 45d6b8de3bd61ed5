/*
 * provider.h - the expert provider: the only way the model code (src/) gets
 * expert weights. Behind it: the expert cache, the RAM budget and the reader
 * backends (io_uring, pread pool, buffered).
 *
 * Protocol for one layer of one forward step:
 *   provider_request(p, L, ids, n)      start loading experts ids[0..n)
 *   while ((r = provider_next(p, &e, &blob)) > 0) {
 *       compute expert e from blob;      blob stays valid and resident
 *       provider_release(p, L, e);       until released
 *   }
 *   r < 0: I/O error, message in provider_error(p).
 * Resident (hit) experts are delivered first, the others as their reads
 * complete. A request may repeat ids; each distinct id is delivered once.
 * Not thread-safe: one forward pass drives one provider.
 */
#ifndef MOESTREAM_PROVIDER_H
#define MOESTREAM_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct split_model;

enum provider_io { PROVIDER_IO_URING = 0, PROVIDER_IO_PREAD, PROVIDER_IO_BUFFERED };

struct provider_opts {
    enum provider_io io;       /* preferred backend; falls back once, saying why */
    uint64_t cache_bytes;      /* bytes for expert slots; 0 = every expert resident */
    int queue_depth;           /* reads in flight; 0 = default */
    bool verify_reads;         /* check XXH3 of every blob read */
    bool mlock;
    void (*log)(const char *msg); /* one-line notices (fallbacks); may be NULL */
};

struct provider_stats {
    uint64_t bytes_read;
    uint64_t reads;
    uint64_t hits;
    uint64_t misses;
    double io_wait_s;          /* time provider_next spent blocked on I/O */
};

struct provider;

int provider_open(struct provider **out, const struct split_model *m,
                  const struct provider_opts *o, char *err, size_t errlen);
void provider_close(struct provider *p);

int provider_request(struct provider *p, int layer, const int *experts, int n);
int provider_next(struct provider *p, int *expert, const uint8_t **blob);
void provider_release(struct provider *p, int layer, int expert);
const char *provider_error(const struct provider *p);
void provider_get_stats(const struct provider *p, struct provider_stats *s);

#endif
