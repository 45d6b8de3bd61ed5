/*
 * devbench.c - random-read bandwidth of one file through the reader
 * (io/devbench.h). All reads are whole blocks into one registered buffer;
 * offsets come from a splitmix64 sequence so runs are repeatable.
 */
#include "devbench.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static double devbench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t devbench_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int devbench_size(const char *path, uint64_t *size, bool *is_blockdev, char *err, size_t errlen)
{
    struct stat st;
    *is_blockdev = false;
    if (stat(path, &st) != 0) {
        int e = errno;
        snprintf(err, errlen, "devbench: %s: %s", path, strerror(e));
        return -e;
    }
    if (S_ISREG(st.st_mode)) {
        *size = (uint64_t)st.st_size;
        return 0;
    }
    if (!S_ISBLK(st.st_mode)) {
        snprintf(err, errlen, "devbench: %s is neither a regular file nor a block device", path);
        return -EINVAL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "devbench: cannot open %s: %s", path, strerror(e));
        return -e;
    }
    uint64_t bytes = 0;
    int rc = ioctl(fd, BLKGETSIZE64, &bytes);
    int e = errno;
    close(fd);
    if (rc != 0) {
        snprintf(err, errlen, "devbench: %s: BLKGETSIZE64 failed: %s", path, strerror(e));
        return -e;
    }
    *size = bytes;
    *is_blockdev = true;
    return 0;
}

int devbench_run(const struct devbench_opts *o, struct devbench_result *res, char *err, size_t errlen)
{
    uint64_t size;
    bool blk;
    int rc;

    memset(res, 0, sizeof(*res));
    if (o->block == 0 || o->block % 4096 || o->queue_depth < 1) {
        snprintf(err, errlen, "devbench: block %zu must be a positive multiple of 4096, queue depth %d positive",
                 o->block, o->queue_depth);
        return -EINVAL;
    }
    if ((rc = devbench_size(o->path, &size, &blk, err, errlen)) < 0)
        return rc;
    if (size < o->block) {
        snprintf(err, errlen, "devbench: %s holds %llu bytes, less than one %zu-byte read", o->path,
                 (unsigned long long)size, o->block);
        return -EINVAL;
    }
    size_t buf_bytes = o->block * (size_t)o->queue_depth;
    uint8_t *buf = mmap(NULL, buf_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        snprintf(err, errlen, "devbench: cannot map a %zu-byte buffer: %s", buf_bytes, strerror(errno));
        return -ENOMEM;
    }
    int *free_slots = malloc(sizeof(int) * (size_t)o->queue_depth);
    struct reader_completion *comps = malloc(sizeof(*comps) * (size_t)o->queue_depth);
    struct reader *r = NULL;
    if (!free_slots || !comps) {
        snprintf(err, errlen, "devbench: out of memory");
        rc = -ENOMEM;
        goto out_free;
    }
    struct iovec iov = { buf, buf_bytes };
    struct reader_opts ro = { 0 };
    ro.backend = o->backend;
    ro.queue_depth = o->queue_depth;
    ro.bufs = buf_bytes <= (1ull << 30) ? &iov : NULL; /* io_uring's limit per buffer */
    ro.n_bufs = ro.bufs ? 1 : 0;
    ro.log = o->log;
    const char *paths[1] = { o->path };
    if ((rc = reader_open(&r, paths, 1, &ro, err, errlen)) < 0)
        goto out_free;
    res->backend = reader_backend(r);
    res->align = reader_alignment(r);
    if (o->block % res->align) {
        snprintf(err, errlen, "devbench: %zu-byte reads are not a multiple of the %zu-byte O_DIRECT alignment of %s",
                 o->block, res->align, o->path);
        rc = -EINVAL;
        goto out_close;
    }
    uint64_t step = res->align > DEVBENCH_OFFSET_ALIGN ? res->align : DEVBENCH_OFFSET_ALIGN;
    if ((size - o->block) / step == 0)
        step = res->align; /* a small file: finer offsets */
    uint64_t n_off = (size - o->block) / step + 1, seed = o->seed, submitted = 0;
    int n_free = o->queue_depth, in_flight = 0;
    for (int i = 0; i < o->queue_depth; i++)
        free_slots[i] = i;

    double t0 = devbench_now(), deadline = t0 + o->seconds;
    bool stopping = false;
    for (;;) {
        while (!stopping && n_free > 0) {
            int slot = free_slots[--n_free];
            uint64_t off = devbench_rng(&seed) % n_off * step;
            rc = reader_submit(r, 0, off, o->block, buf + (size_t)slot * o->block, (uint64_t)slot);
            if (rc < 0) {
                snprintf(err, errlen, "devbench: cannot submit a read of %s at offset %llu: %s", o->path,
                         (unsigned long long)off, strerror(-rc));
                goto out_close;
            }
            in_flight++;
            submitted += o->block;
            if (o->max_bytes && submitted >= o->max_bytes)
                stopping = true;
        }
        if (in_flight == 0)
            break;
        int n = reader_reap(r, comps, o->queue_depth, true);
        if (n < 0) {
            snprintf(err, errlen, "devbench: waiting for reads of %s failed: %s", o->path, strerror(-n));
            rc = n;
            goto out_close;
        }
        for (int i = 0; i < n; i++) {
            if (comps[i].res < 0) {
                snprintf(err, errlen, "devbench: %s", reader_error(r));
                rc = comps[i].res;
                goto out_close;
            }
            free_slots[n_free++] = (int)comps[i].tag;
            in_flight--;
            res->bytes += o->block;
            res->reads++;
        }
        if (!stopping && devbench_now() >= deadline)
            stopping = true;
    }
    res->seconds = devbench_now() - t0;
    rc = 0;
out_close:
    reader_close(r);
out_free:
    free(comps);
    free(free_slots);
    munmap(buf, buf_bytes);
    return rc;
}
