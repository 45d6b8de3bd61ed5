/*
 * fuzz_gguf.c - libFuzzer target for the GGUF reader (split-tool/gguf.c).
 *
 * Each input is written to a memfd and opened through /proc/self/fd/N.
 * On success every KV (nested arrays included) and tensor is walked, the
 * typed getters and gguf_print_info run, a few bytes of each tensor are
 * read, and the model is re-written with the writer and re-opened: a file
 * the reader accepted must survive that round trip (abort otherwise).
 * Built by `make fuzz`; seeds in tests/fuzz_seeds/.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_writer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void walk_value(const struct gguf_value *v, int depth)
{
    if (depth > 16)
        abort(); /* the reader limits nesting */
    switch (v->type) {
    case GGUF_VT_STRING:
        if (v->str.ptr[v->str.len] != '\0')
            abort();
        sink += v->str.len;
        break;
    case GGUF_VT_ARRAY:
        if (v->arr.type == GGUF_VT_STRING) {
            const struct gguf_str *s = v->arr.data;
            for (uint64_t i = 0; i < v->arr.n; i++)
                sink += s[i].len + (unsigned char)s[i].ptr[s[i].len];
        } else if (v->arr.type == GGUF_VT_ARRAY) {
            const struct gguf_value *a = v->arr.data;
            for (uint64_t i = 0; i < v->arr.n; i++)
                walk_value(&a[i], depth + 1);
        } else {
            for (uint64_t i = 0; i < v->arr.n; i++)
                sink += gguf_arr_u64(v->arr.type, v->arr.data, i) +
                        (uint64_t)gguf_arr_i64(v->arr.type, v->arr.data, i) +
                        (uint64_t)(gguf_arr_f64(v->arr.type, v->arr.data, i) != 0);
        }
        break;
    default:
        sink += v->u64;
        break;
    }
}

static FILE *devnull;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512], path[64], path2[64];
    if (!devnull)
        devnull = fopen("/dev/null", "w");
    int fd = memfd_create("fuzz.gguf", 0);
    if (fd < 0)
        abort();
    size_t done = 0;
    while (done < size) {
        ssize_t k = write(fd, data + done, size - done);
        if (k <= 0)
            abort();
        done += (size_t)k;
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    struct gguf_ctx *g = NULL;
    int rc = gguf_open(&g, path, err, sizeof(err));
    if (rc < 0) {
        if (g || strncmp(err, "gguf: ", 6) != 0)
            abort();
        close(fd);
        return 0;
    }
    uint64_t align = gguf_alignment(g);
    struct gguf_writer *w = gguf_writer_init(align);
    if (!w)
        abort();
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const struct gguf_kv *kv = gguf_kv_at(g, i);
        walk_value(&kv->val, 0);
        if (gguf_find_kv(g, kv->key.ptr) != kv)
            abort();
        uint32_t u32;
        uint64_t u64;
        float f;
        bool b;
        const char *s;
        enum gguf_vtype et;
        uint64_t n;
        const void *d;
        sink += (uint64_t)gguf_get_u32(g, kv->key.ptr, &u32) + (uint64_t)gguf_get_u64(g, kv->key.ptr, &u64) +
                (uint64_t)gguf_get_f32(g, kv->key.ptr, &f) + (uint64_t)gguf_get_bool(g, kv->key.ptr, &b) +
                (uint64_t)gguf_get_str(g, kv->key.ptr, &s) +
                (uint64_t)gguf_get_arr(g, kv->key.ptr, &et, &n, &d);
        if (gguf_writer_copy_kv(w, kv) != 0)
            abort();
    }
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        if (gguf_find_tensor(g, t->name) != t || t->size == 0 ||
            t->file_offset + t->size > gguf_part_size(g, t->part))
            abort();
        unsigned char buf[64];
        size_t n = t->size < sizeof(buf) ? (size_t)t->size : sizeof(buf);
        if (gguf_read_tensor(g, t, t->size - n, buf, n, err, sizeof(err)) != 0)
            abort();
        if (gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne) != i)
            abort();
    }
    gguf_print_info(g, devnull);

    /* round trip through the writer (tensor data zero-filled) */
    int fd2 = memfd_create("fuzz2.gguf", 0);
    if (fd2 < 0)
        abort();
    snprintf(path2, sizeof(path2), "/proc/self/fd/%d", fd2);
    if (gguf_writer_begin(w, path2, err, sizeof(err)) != 0)
        abort();
    static const unsigned char zero[4096];
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        uint64_t left = gguf_tensor_at(g, i)->size;
        while (left) {
            size_t k = left < sizeof(zero) ? (size_t)left : sizeof(zero);
            if (gguf_writer_write(w, zero, k, err, sizeof(err)) != 0)
                abort();
            left -= k;
        }
    }
    if (gguf_writer_finish(w, err, sizeof(err)) != 0)
        abort();
    gguf_writer_free(w);
    struct gguf_ctx *g2;
    if (gguf_open(&g2, path2, err, sizeof(err)) != 0) {
        fprintf(stderr, "round trip failed: %s\n", err);
        abort();
    }
    if (gguf_n_kv(g2) != gguf_n_kv(g) ||
        gguf_n_tensors(g2) != gguf_n_tensors(g))
        abort();
    gguf_close(g2);
    close(fd2);
    gguf_close(g);
    close(fd);
    return 0;
}
