/*
 * gguf_writer.h - a small streaming GGUF v3 writer (the splitter's manifest,
 * synthetic models, test fixtures).
 *
 * Owns: the header it builds in memory (keys, values, tensor infos), the
 * output file while it is written, and its output buffer.
 */
#ifndef MOESTREAM_GGUF_WRITER_H
#define MOESTREAM_GGUF_WRITER_H

#include "gguf.h"

/*
 * Collect KVs and tensor infos, then gguf_writer_begin() writes the
 * header to path; the data of each tensor follows in the order added, through
 * gguf_writer_write() (any chunking); gguf_writer_finish() pads, checks that
 * every tensor got exactly its size, fsyncs and closes. Always writes v3.
 * Setters return 0, -EEXIST for a key already set, -EINVAL for a bad value
 * or after begin. general.alignment is written by the writer itself when the
 * alignment is not 32; setting or copying it is accepted only when it is a
 * u32 equal to the writer's alignment. Not thread-safe.
 */
struct gguf_writer;

struct gguf_writer *gguf_writer_init(uint64_t alignment); /* 0 = default 32 */
void gguf_writer_free(struct gguf_writer *w);
int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v);
int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v);
/* Scalar array: n elements of type t, packed as in the file. */
int gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_vtype t,
                        const void *data, uint64_t n);
int gguf_writer_set_arr_str(struct gguf_writer *w, const char *key,
                            const char *const *strs, uint64_t n);
/* Copies one KV (any type, nested arrays included) from a reader. */
int gguf_writer_copy_kv(struct gguf_writer *w, const struct gguf_kv *kv);
/* Adds a tensor info; returns its index or -EINVAL. */
int gguf_writer_add_tensor(struct gguf_writer *w, const char *name, int type,
                           uint32_t n_dims, const int64_t *ne);
int gguf_writer_begin(struct gguf_writer *w, const char *path, char *err, size_t errlen);
int gguf_writer_write(struct gguf_writer *w, const void *data, size_t n, char *err, size_t errlen);
int gguf_writer_finish(struct gguf_writer *w, char *err, size_t errlen);

#endif
