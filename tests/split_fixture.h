/*
 * split_fixture.h - test helper for the io/ suites (test_reader, test_provider):
 * builds a struct split_model by hand over experts files of random bytes in
 * a scratch directory on a disk file system (O_DIRECT needs one; /tmp here
 * is ext4, tmpfs is only used deliberately). Keeps every blob in memory so a
 * test can compare what the reader delivered. Header-only, test code only.
 */
#ifndef MOESTREAM_SPLIT_FIXTURE_H
#define MOESTREAM_SPLIT_FIXTURE_H

#include "splitfmt.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

struct split_fixture {
    char dir[256];
    struct split_model m;
    uint8_t **data;        /* [n_layer] file contents, n_expert * blob_size bytes */
};

static uint64_t fixture_rng(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Layers with n_expert experts each, except every layer in no_expert_mask
 * (bit L) which has none. blob_bytes used bytes of blob_size. 0 or -1. */
static int fixture_make(struct split_fixture *f, const char *parent, int n_layer, int n_expert,
                        uint64_t blob_size, uint64_t blob_bytes, unsigned no_expert_mask,
                        uint64_t seed)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/moestream-split-XXXXXX", parent);
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->m.dir, sizeof f->m.dir, "%s", f->dir);
    f->m.n_layer = n_layer;
    f->m.layers = calloc((size_t)n_layer, sizeof *f->m.layers);
    f->data = calloc((size_t)n_layer, sizeof *f->data);
    if (!f->m.layers || !f->data)
        return -1;
    for (int l = 0; l < n_layer; l++) {
        struct split_layer *ly = &f->m.layers[l];
        uint64_t *xx;
        size_t bytes;
        int fd;

        if (no_expert_mask & (1u << l))
            continue;
        ly->n_expert = n_expert;
        ly->blob_size = blob_size;
        ly->blob_bytes = blob_bytes;
        snprintf(ly->path, sizeof ly->path, "%s/" SPLIT_EXPERTS_FMT, f->dir, l);
        bytes = (size_t)n_expert * blob_size;
        f->data[l] = calloc(1, bytes);
        xx = calloc((size_t)n_expert, sizeof *xx);
        if (!f->data[l] || !xx)
            return -1;
        for (int e = 0; e < n_expert; e++) {
            uint8_t *b = f->data[l] + (size_t)e * blob_size;

            for (uint64_t i = 0; i < blob_bytes; i += 8) {
                uint64_t v = fixture_rng(&seed);

                memcpy(b + i, &v, blob_bytes - i < 8 ? blob_bytes - i : 8);
            }
            xx[e] = XXH3_64bits(b, blob_bytes);
        }
        ly->blob_xxh3 = xx;
        fd = open(ly->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            return -1;
        if (write(fd, f->data[l], bytes) != (ssize_t)bytes) {
            close(fd);
            return -1;
        }
        close(fd);
    }
    return 0;
}

static const uint8_t *fixture_blob(const struct split_fixture *f, int layer, int expert)
{
    return f->data[layer] + (size_t)expert * f->m.layers[layer].blob_size;
}

static void fixture_free(struct split_fixture *f)
{
    for (int l = 0; l < f->m.n_layer; l++) {
        if (f->m.layers && f->m.layers[l].n_expert) {
            unlink(f->m.layers[l].path);
            free((void *)f->m.layers[l].blob_xxh3);
        }
        if (f->data)
            free(f->data[l]);
    }
    free(f->data);
    free(f->m.layers);
    if (f->dir[0])
        rmdir(f->dir);
    memset(f, 0, sizeof *f);
}

#endif
