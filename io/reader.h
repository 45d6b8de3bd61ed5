/*
 * reader.h - asynchronous whole-blob reads from a fixed set of files.
 *
 * Owns the file descriptors, the O_DIRECT alignment, the io_uring ring and
 * its registered files/buffers, or the pread thread pool. Knows nothing about
 * experts or caches: the caller (io/provider.c) submits (file, offset, length,
 * destination, tag) and reaps tagged completions. Every completion is checked
 * here: a short read or an I/O error is retried READER_MAX_RETRY times, then
 * reported with the file and offset in reader_error(). A completion with
 * res == 0 is a full, verified-length read; nothing else reaches the caller
 * as success.
 *
 * Backends sit behind an ops table (reader_uring.c, reader_pread.c,
 * reader_buffered.c). When the preferred backend cannot work, the reader falls
 * back once along uring -> pread -> buffered and says why through opts->log.
 *
 * Not thread-safe: one thread submits and reaps. No allocation after
 * reader_open.
 */
#ifndef MOESTREAM_READER_H
#define MOESTREAM_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define READER_MAX_RETRY 3
#define READER_DEFAULT_QD 16

enum reader_backend { READER_URING = 0, READER_PREAD, READER_BUFFERED };

/*
 * Test hook. on_complete sees every raw completion before it is checked and
 * returns the result to use instead (a shorter count, -EIO, ...); it may also
 * modify the bytes at dst. The *_errno fields make the reader believe a setup
 * step failed (0 = no effect), to exercise the fallbacks anywhere.
 */
struct reader_fault {
    int (*on_complete)(void *ctx, const char *path, uint64_t offset, size_t len,
                       uint8_t *dst, int res);
    void *ctx;
    int uring_init_errno;   /* pretend io_uring_queue_init failed with -this */
    int direct_open_errno;  /* pretend open(O_DIRECT) failed with -this */
};

/*
 * Without opts->fault, the environment variable MOESTREAM_FAULT=KIND:N
 * (KIND short, eio or flip) makes the Nth read the reader starts come back
 * short once, fail with EIO on every attempt, or arrive with one byte
 * flipped - for end-to-end tests of the binaries. Logged once at open.
 */
#define READER_FAULT_ENV "MOESTREAM_FAULT"

struct reader_opts {
    enum reader_backend backend;  /* preferred; falls back once */
    int queue_depth;              /* reads in flight; 0 = READER_DEFAULT_QD */
    const struct iovec *bufs;     /* destination regions to register (uring), may be NULL */
    int n_bufs;                   /* each region <= 1 GiB, page aligned */
    void (*log)(const char *msg); /* one-line notices (fallbacks); may be NULL */
    /* uring: called with ("registering the expert cache", bytes done, total)
     * after each buffer is registered (about 1 s per GiB); may be NULL */
    void (*progress)(const char *what, uint64_t done, uint64_t total);
    const struct reader_fault *fault; /* tests only; NULL in production */
};

struct reader_completion {
    uint64_t tag;
    int res;               /* 0 = full read; -errno after the retries ran out */
};

struct reader;

/* Opens paths[0..n_paths) read-only (O_DIRECT except for the buffered
 * backend) and sets up the backend. 0 or -errno with a sentence in err. */
int reader_open(struct reader **out, const char *const *paths, int n_paths,
                const struct reader_opts *o, char *err, size_t errlen);
/* Waits for reads in flight, then frees everything. NULL is a no-op. */
void reader_close(struct reader *r);

/* The backend actually in use after fallbacks. */
enum reader_backend reader_backend(const struct reader *r);
const char *reader_backend_name(enum reader_backend b);
/* Required alignment of offset, length and destination (bytes, power of 2). */
size_t reader_alignment(const struct reader *r);
/* Reads that can be in flight at once. */
int reader_capacity(const struct reader *r);
int reader_in_flight(const struct reader *r);

/* Queues a read of len bytes at offset of file `file` into dst. Returns 0,
 * -EBUSY when reader_capacity() reads are in flight, -EINVAL for a bad file
 * index or misaligned offset/len/dst. Reads start at once. */
int reader_submit(struct reader *r, int file, uint64_t offset, size_t len, void *dst,
                  uint64_t tag);
/* One range of a gathered read. */
struct reader_range {
    int file;
    uint64_t offset;
    size_t len;
    void *dst;
    size_t need;          /* bytes that must arrive (<= len): an aligned over-read
                           * may end past the end of the file; 0 = len */
};

/* Queues n reads (each aligned as for reader_submit) that complete as one:
 * a single completion with `tag`, res 0 when all arrived, else the first
 * failure. Takes n of the reader's capacity. 0, -EBUSY when fewer than n
 * requests are free, -EINVAL as for reader_submit. */
int reader_submitv(struct reader *r, const struct reader_range *rg, int n, uint64_t tag);

/* Collects up to max finished reads into out. With wait, blocks until at
 * least one is available (returns 0 only when nothing is in flight). Returns
 * the count or -errno for a failure of the backend itself. A completion with
 * res < 0 failed for good: reader_error() names file and offset of the most
 * recent such failure. */
int reader_reap(struct reader *r, struct reader_completion *out, int max, bool wait);
const char *reader_error(const struct reader *r);

#endif
