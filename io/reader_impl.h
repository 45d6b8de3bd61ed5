/*
 * reader_impl.h - internals shared by reader.c and the backends
 * (reader_uring.c, reader_pread.c, reader_buffered.c). Nothing outside the
 * reader_* files includes this.
 *
 * reader.c owns the request table, the files, alignment, retries and the
 * fault hook; a backend only starts raw reads and hands back finished ones
 * with req->res set to the byte count or -errno, unchecked.
 */
#ifndef MOESTREAM_READER_IMPL_H
#define MOESTREAM_READER_IMPL_H

#include "reader.h"

struct reader_req {
    int file;             /* index into reader.fds */
    uint64_t offset;      /* bytes */
    size_t len;           /* bytes */
    size_t need;          /* bytes that must arrive (a read ending past EOF may stop short) */
    uint8_t *dst;
    uint64_t tag;         /* caller's */
    int attempts;         /* reads started for this request */
    int res;              /* raw result from the backend: bytes or -errno */
    int buf_index;        /* registered buffer holding dst, -1 if none */
    int group;            /* reader_submitv group, -1 for a single read */
};

struct reader_group {
    uint64_t tag;
    int left;             /* member reads not finished */
    int res;              /* first failure, 0 */
};

struct reader_ops {
    const char *name;
    /* Allocates backend state in r->be; 0 or -errno with err filled. */
    int (*setup)(struct reader *r, char *err, size_t errlen);
    /* Called with nothing in flight. */
    void (*teardown)(struct reader *r);
    /* Starts one read; 0 or -errno. */
    int (*start)(struct reader *r, struct reader_req *q);
    /* Up to max finished requests into done (res set). With wait, blocks for
     * at least one while any is in flight. Returns the count or -errno. */
    int (*collect)(struct reader *r, struct reader_req **done, int max, bool wait);
};

struct reader {
    const struct reader_ops *ops;
    enum reader_backend backend;
    int n_files;
    char **paths;                 /* [n_files] copies */
    int *fds;                     /* [n_files] */
    bool direct;                  /* files opened with O_DIRECT */
    size_t align;                 /* bytes */
    int qd;                       /* capacity */
    struct reader_req *reqs;      /* [qd] */
    int *free_ids;                /* [qd] stack of free request indexes */
    int n_free;
    struct reader_req **scratch;  /* [qd] for collect */
    struct reader_group *groups;  /* [qd] */
    int *free_groups;             /* [qd] stack */
    int n_free_groups;
    const struct iovec *bufs;     /* caller's regions, borrowed */
    int n_bufs;
    void (*log)(const char *msg);
    void (*progress)(const char *what, uint64_t done, uint64_t total);
    const struct reader_fault *fault;
    struct reader_fault env_fault; /* from MOESTREAM_FAULT, when set */
    struct reader_env_fault {
        int kind;                  /* 0 none, 1 short, 2 eio, 3 flip */
        uint64_t nth;              /* fault the nth read started (1-based) */
        uint64_t started;          /* reads started so far */
        const char *victim_path;   /* the faulted read: r->paths[file] ... */
        uint64_t victim_offset;    /* ... and offset; NULL path once spent */
    } envf;
    void *be;                     /* backend state */
    char err[640];
};

extern const struct reader_ops reader_uring_ops;
extern const struct reader_ops reader_pread_ops;
extern const struct reader_ops reader_buffered_ops;

#endif
