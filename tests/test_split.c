/*
 * test_split.c - the splitter (split.c), the split-format reader
 * (splitfmt.c) and the moestream-split command line.
 *
 * Every fixture model (and synthetic MoE models written here with the GGUF
 * writer, one of them in two parts) is split, verified, and compared tensor
 * by tensor with its source: each pinned tensor and each expert's slice of
 * each stacked tensor must be byte-identical. Rejection tests check the error
 * text: corrupted blob (names layer and expert), non-MoE input, existing
 * output, truncated experts file, newer format version, missing directory.
 * Fixture tests are skipped with a message when the fixtures are absent.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "gguf.h"
#include "gguf_writer.h"
#include "pinned.h"
#include "provider.h"
#include "quant.h"
#include "split.h"
#include "splitfmt.h"

static char tmp_root[1024]; /* short enough that every path built from it fits 4096 */

/* ---- helpers ------------------------------------------------------------- */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static void rm_rf(const char *p)
{
    nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void path_join(char *out, size_t n, const char *a, const char *b)
{
    int k = snprintf(out, n, "%s/%s", a, b);
    assert_true(k > 0 && (size_t)k < n);
}

static bool file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* No DIR.tmp-* entries left in tmp_root. */
static void assert_no_tmp_dirs(void)
{
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "ls -d '%s'/*.tmp-* >/dev/null 2>&1", tmp_root);
    assert_int_not_equal(system(cmd), 0);
}

static int convert(const char *in, const char *out, bool force, char *err, size_t errlen)
{
    struct split_options o = {.input = in, .output_dir = out, .force = force};
    return split_convert(&o, NULL, err, errlen);
}

/* Reads n bytes at off of path. */
static void read_at(const char *path, uint64_t off, void *buf, size_t n)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    size_t at = 0;
    while (at < n) {
        ssize_t r = pread(fd, (char *)buf + at, n - at, (off_t)(off + at));
        assert_true(r > 0);
        at += (size_t)r;
    }
    close(fd);
}

static void flip_byte(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

/* Every source tensor is in the split, byte for byte: pinned tensors in
 * pinned.bin, and for an expert tensor, expert e's slice at its part offset
 * in blob e of experts-LLL.bin. Also checks that nothing else is there. */
static void compare_with_source(const char *src, const char *dir)
{
    char err[1024];
    struct gguf_ctx *g;
    struct split_model *m;
    int rc = gguf_open(&g, src, err, sizeof(err));
    if (rc < 0)
        fail_msg("%s", err);
    rc = split_open(&m, dir, err, sizeof(err));
    if (rc < 0)
        fail_msg("%s", err);

    int64_t n_seen_pinned = 0, n_seen_parts = 0;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        unsigned char *a = malloc(t->size), *b = malloc(t->size);
        assert_non_null(a);
        assert_non_null(b);
        rc = gguf_read_tensor(g, t, 0, a, t->size, err, sizeof(err));
        if (rc < 0)
            fail_msg("%s", err);
        const struct split_tensor *st = split_find_tensor(m, t->name);
        int L;
        if (st) {
            n_seen_pinned++;
            assert_int_equal(st->type, t->type);
            assert_int_equal(st->n_dims, t->n_dims);
            assert_memory_equal(st->ne, t->ne, sizeof(st->ne));
            assert_int_equal(st->size, t->size);
            assert_int_equal(st->offset % SPLIT_PINNED_ALIGN, 0);
            read_at(m->pinned_path, st->offset, b, t->size);
            if (memcmp(a, b, t->size) != 0)
                fail_msg("pinned tensor %s differs from the source", t->name);
        } else {
            assert_true(split_is_expert_name(t->name, &L));
            assert_true(L < m->n_layer);
            const struct split_layer *l = &m->layers[L];
            const struct split_part *p = split_find_part(l, strchr(t->name + 4, '.') + 1);
            if (!p)
                fail_msg("tensor %s is neither pinned nor a part of layer %d", t->name, L);
            n_seen_parts++;
            assert_int_equal(p->type, t->type);
            assert_int_equal(p->size * (uint64_t)l->n_expert, t->size);
            assert_int_equal(p->offset % SPLIT_PART_ALIGN, 0);
            assert_int_equal(l->blob_size % SPLIT_BLOB_ALIGN, 0);
            for (int e = 0; e < l->n_expert; e++) {
                read_at(l->path, (uint64_t)e * l->blob_size + p->offset, b, p->size);
                if (memcmp(a + (uint64_t)e * p->size, b, p->size) != 0)
                    fail_msg("layer %d expert %d part %s differs from the source", L, e,
                             p->name);
            }
        }
        free(a);
        free(b);
    }
    int64_t n_parts = 0;
    for (int L = 0; L < m->n_layer; L++)
        n_parts += m->layers[L].n_part;
    assert_int_equal(n_seen_pinned, m->n_tensor);
    assert_int_equal(n_seen_parts, n_parts);

    /* Metadata: every source KV but general.alignment and split.* is copied. */
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const char *k = gguf_kv_at(g, i)->key.ptr;
        bool skip = !strcmp(k, "general.alignment") || !strncmp(k, "split.", 6);
        const struct gguf_kv *mk = gguf_find_kv(m->manifest, k);
        if (skip)
            assert_null(mk);
        else if (!mk)
            fail_msg("key %s missing from the manifest", k);
        else
            assert_int_equal(mk->val.type, gguf_kv_at(g, i)->val.type);
    }
    split_close(m);
    gguf_close(g);
}

/* ---- synthetic models ---------------------------------------------------- */

struct syn_tensor {
    char name[64];
    int type;
    uint32_t n_dims;
    int64_t ne[4];
};

struct syn {
    struct syn_tensor t[64];
    int n;
};

static void syn_add(struct syn *s, const char *name, int type, uint32_t n_dims, int64_t ne0,
                    int64_t ne1, int64_t ne2)
{
    struct syn_tensor *t = &s->t[s->n++];
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->type = type;
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = ne2;
    t->ne[3] = 1;
}

static uint64_t syn_size(const struct syn_tensor *t)
{
    return quant_row_size(t->type, t->ne[0]) * (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]);
}

/* A MoE layout of an architecture the runtime does not run ("synthetic-moe",
 * shaped like gpt-oss): layer 0 dense; layers 1..2 with 4 experts, stacked
 * weights in three types, per-expert biases (2-D) and a per-expert scale (1-D), plus
 * router, shared expert and exp_probs_b (pinned). moe = false: no experts. */
static void syn_build(struct syn *s, bool moe)
{
    char nm[64];
    memset(s, 0, sizeof(*s));
    syn_add(s, "token_embd.weight", QT_Q8_0, 2, 256, 64, 1);
    syn_add(s, "output_norm.weight", QT_F32, 1, 256, 1, 1);
    for (int L = 0; L < 3; L++) {
#define N(x) (snprintf(nm, sizeof(nm), "blk.%d." x, L), nm)
        syn_add(s, N("attn_norm.weight"), QT_F32, 1, 256, 1, 1);
        syn_add(s, N("attn_q.weight"), QT_Q4_K, 2, 256, 64, 1);
        if (L == 0 || !moe) {
            syn_add(s, N("ffn_gate.weight"), QT_Q8_0, 2, 256, 32, 1);
            syn_add(s, N("ffn_down.weight"), QT_F16, 2, 32, 256, 1);
            continue;
        }
        syn_add(s, N("ffn_gate_inp.weight"), QT_F32, 2, 256, 4, 1);
        syn_add(s, N("exp_probs_b.bias"), QT_F32, 1, 4, 1, 1);
        syn_add(s, N("ffn_gate_exps.weight"), QT_Q4_K, 3, 256, 32, 4);
        syn_add(s, N("ffn_gate_exps.bias"), QT_F32, 2, 32, 4, 1);
        syn_add(s, N("ffn_up_exps.weight"), QT_Q8_0, 3, 256, 32, 4);
        syn_add(s, N("ffn_down_exps.weight"), QT_F16, 3, 32, 256, 4);
        syn_add(s, N("ffn_down_exps.bias"), QT_F32, 2, 256, 4, 1);
        syn_add(s, N("ffn_down_exps.scale"), QT_F32, 1, 4, 1, 1);
        syn_add(s, N("ffn_up_shexp.weight"), QT_Q8_0, 2, 256, 32, 1);
#undef N
    }
}

static void syn_fill(unsigned char *buf, uint64_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 12345u;
    for (uint64_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        buf[i] = (unsigned char)(x >> 24);
    }
}

/* Writes tensors [from, to) of s to path with the model KVs (part 0) or only
 * split.* (later parts). n_parts > 1 adds split.no/count/tensors.count. */
static void syn_write_part(const struct syn *s, const char *path, bool moe, int part,
                           int n_parts, int from, int to)
{
    char err[1024];
    struct gguf_writer *w = gguf_writer_init(0);
    assert_non_null(w);
    if (part == 0) {
        const char *arch = moe ? "synthetic-moe" : "llama";
        char key[96];
        assert_int_equal(gguf_writer_set_str(w, "general.architecture", arch), 0);
        assert_int_equal(gguf_writer_set_str(w, "general.name", "synthetic"), 0);
        snprintf(key, sizeof(key), "%s.block_count", arch);
        assert_int_equal(gguf_writer_set_u32(w, key, 3), 0);
        snprintf(key, sizeof(key), "%s.embedding_length", arch);
        assert_int_equal(gguf_writer_set_u32(w, key, 256), 0);
        if (moe) {
            assert_int_equal(gguf_writer_set_u32(w, "synthetic-moe.expert_count", 4), 0);
            assert_int_equal(gguf_writer_set_u32(w, "synthetic-moe.expert_used_count", 2), 0);
        }
        const char *toks[] = {"a", "b", "c"};
        assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3), 0);
    }
    if (n_parts > 1) {
        assert_int_equal(gguf_writer_set_u32(w, "split.no", (uint32_t)part), 0);
        assert_int_equal(gguf_writer_set_u32(w, "split.count", (uint32_t)n_parts), 0);
        assert_int_equal(gguf_writer_set_u32(w, "split.tensors.count", (uint32_t)s->n), 0);
    }
    for (int i = from; i < to; i++)
        assert_true(gguf_writer_add_tensor(w, s->t[i].name, s->t[i].type, s->t[i].n_dims,
                                           s->t[i].ne) >= 0);
    if (gguf_writer_begin(w, path, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    for (int i = from; i < to; i++) {
        uint64_t n = syn_size(&s->t[i]);
        unsigned char *buf = malloc(n);
        assert_non_null(buf);
        syn_fill(buf, n, (uint32_t)i + 1);
        if (gguf_writer_write(w, buf, n, err, sizeof(err)) < 0)
            fail_msg("%s", err);
        free(buf);
    }
    if (gguf_writer_finish(w, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    gguf_writer_free(w);
}

/* Synthetic model at tmp_root/name; returns the path to pass to the splitter. */
static const char *syn_model(const char *name, bool moe, int n_parts)
{
    static char path[4096];
    struct syn s;
    syn_build(&s, moe);
    if (n_parts == 1) {
        snprintf(path, sizeof(path), "%s/%s.gguf", tmp_root, name);
        syn_write_part(&s, path, moe, 0, 1, 0, s.n);
        return path;
    }
    for (int k = 0; k < n_parts; k++) {
        snprintf(path, sizeof(path), "%s/%s-%05d-of-%05d.gguf", tmp_root, name, k + 1, n_parts);
        syn_write_part(&s, path, moe, k, n_parts, s.n * k / n_parts, s.n * (k + 1) / n_parts);
    }
    snprintf(path, sizeof(path), "%s/%s-%05d-of-%05d.gguf", tmp_root, name, 1, n_parts);
    return path;
}

/* ---- fixtures ------------------------------------------------------------ */

static const char *fixtures_dir(void)
{
    const char *f = getenv("MOESTREAM_FIXTURES");
    if (f && *f)
        return f;
    return file_exists("../shared/fixtures") ? "../shared/fixtures" : NULL;
}

static void test_fixture_models(void **state)
{
    (void)state;
    const char *fx = fixtures_dir();
    static const char *const models[] = {
        "models/q3moe-a-Q8_0.gguf", "models/q3moe-a-Q4_K_M.gguf", "models/q3moe-a-Q2_K.gguf",
        "tinymoe/tinymoe-Q8_0.gguf"};
    int found = 0;
    for (size_t i = 0; fx && i < sizeof(models) / sizeof(models[0]); i++) {
        char src[4096], out[4096], err[1024];
        path_join(src, sizeof(src), fx, models[i]);
        if (!file_exists(src))
            continue;
        found++;
        snprintf(out, sizeof(out), "%s/fx%zu", tmp_root, i);
        struct split_stats st;
        struct split_options o = {.input = src, .output_dir = out};
        int rc = split_convert(&o, &st, err, sizeof(err));
        if (rc < 0)
            fail_msg("%s: %s", src, err);
        assert_true(st.n_expert_layers > 0);
        rc = split_verify(out, NULL, NULL, err, sizeof(err));
        if (rc < 0)
            fail_msg("%s: %s", out, err);
        compare_with_source(src, out);
        rm_rf(out);
    }
    if (!found) {
        print_message("skipped: no fixture models under %s (set MOESTREAM_FIXTURES)\n",
                      fx ? fx : "../shared/fixtures");
        skip();
    }
}

/* Copies GGUF src to dst with tensor `drop` left out and tensor `reshape`
 * (if any) declared with ne[1] = ne1 (data zero-filled: the architecture
 * check refuses before any data is read). */
static void copy_gguf_edited(const char *src, const char *dst, const char *drop, const char *reshape, int64_t ne1)
{
    char err[1024];
    struct gguf_ctx *g;
    if (gguf_open(&g, src, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    struct gguf_writer *w = gguf_writer_init(gguf_alignment(g));
    assert_non_null(w);
    for (int64_t i = 0; i < gguf_n_kv(g); i++)
        assert_int_equal(gguf_writer_copy_kv(w, gguf_kv_at(g, i)), 0);
    uint64_t *sizes = calloc((size_t)gguf_n_tensors(g), sizeof(*sizes));
    assert_non_null(sizes);
    int n = 0;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        if (drop && strcmp(t->name, drop) == 0)
            continue;
        int64_t ne[GGUF_MAX_DIMS];
        memcpy(ne, t->ne, sizeof(ne));
        uint64_t rows = 1;
        if (reshape && strcmp(t->name, reshape) == 0)
            ne[1] = ne1;
        for (uint32_t d = 1; d < t->n_dims; d++)
            rows *= (uint64_t)ne[d];
        sizes[n++] = quant_row_size(t->type, ne[0]) * rows;
        assert_true(gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, ne) >= 0);
    }
    if (gguf_writer_begin(w, dst, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    static const unsigned char zero[4096];
    for (int i = 0; i < n; i++)
        for (uint64_t left = sizes[i]; left;) {
            size_t k = left < sizeof(zero) ? (size_t)left : sizeof(zero);
            assert_int_equal(gguf_writer_write(w, zero, k, err, sizeof(err)), 0);
            left -= k;
        }
    if (gguf_writer_finish(w, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    gguf_writer_free(w);
    free(sizes);
    gguf_close(g);
}

/* deepseek2 (DeepSeek-V3 layout): the check passes, every tensor is mapped
 * (dense FFN, shared experts and exp_probs_b pinned; routed experts in
 * blobs, byte-identical to the source), and a missing or mis-shaped tensor
 * is refused before anything is written, naming it. */
static void test_deepseek2_map_and_refuse(void **state)
{
    (void)state;
    const char *fx = fixtures_dir();
    char src[4096], out[4096], bad[4096], err[1024];
    if (fx)
        path_join(src, sizeof(src), fx, "arch/deepseek2-Q8_0.gguf");
    if (!fx || !file_exists(src)) {
        print_message("skipped: arch/deepseek2-Q8_0.gguf not found (set MOESTREAM_FIXTURES)\n");
        skip();
    }
    snprintf(out, sizeof(out), "%s/ds2.split", tmp_root);
    struct split_options o = {.input = src, .output_dir = out, .check_runnable = true};
    struct split_stats st;
    if (split_convert(&o, &st, err, sizeof(err)) < 0)
        fail_msg("%s: %s", src, err);
    assert_int_equal(st.n_layer, 3);
    assert_int_equal(st.n_expert_layers, 2);
    compare_with_source(src, out);
    struct split_model *sm;
    assert_int_equal(split_open(&sm, out, err, sizeof(err)), 0);
    assert_int_equal(sm->layers[0].n_expert, 0);
    assert_int_equal(sm->layers[1].n_expert, 16);
    static const char *const pinned[] = {"blk.0.ffn_gate.weight", "blk.0.ffn_down.weight", "blk.1.ffn_up_shexp.weight",
                                         "blk.2.ffn_down_shexp.weight", "blk.1.exp_probs_b.bias",
                                         "blk.2.attn_k_b.weight", "blk.2.attn_v_b.weight"};
    for (size_t i = 0; i < sizeof(pinned) / sizeof(pinned[0]); i++)
        if (!split_find_tensor(sm, pinned[i]))
            fail_msg("%s is not pinned", pinned[i]);
    assert_null(split_find_tensor(sm, "blk.1.ffn_gate_exps.weight"));
    assert_non_null(split_find_part(&sm->layers[2], "ffn_down_exps.weight"));
    split_close(sm);
    rm_rf(out);

    static const struct {
        const char *drop, *reshape;
        int64_t ne1;
        const char *want;
    } cases[] = {
        {"blk.1.ffn_down_shexp.weight", NULL, 0, "blk.1.ffn_down_shexp.weight is missing"},
        {"blk.0.ffn_up.weight", NULL, 0, "blk.0.ffn_up.weight is missing"},
        {"blk.2.attn_k_b.weight", NULL, 0, "blk.2.attn_k_b.weight is missing"},
        {NULL, "blk.2.attn_kv_a_mqa.weight", 72, "blk.2.attn_kv_a_mqa.weight has shape [256, 72], expected [256, 80]"},
        {NULL, "blk.1.attn_q_b.weight", 96, "blk.1.attn_q_b.weight has shape [128, 96], expected [128, 192]"},
        {NULL, "blk.1.ffn_gate_exps.weight", 128, "expert part ffn_gate_exps.weight"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(bad, sizeof(bad), "%s/ds2-bad%zu.gguf", tmp_root, i);
        copy_gguf_edited(src, bad, cases[i].drop, cases[i].reshape, cases[i].ne1);
        struct split_options ob = {.input = bad, .output_dir = out, .check_runnable = true};
        int rc = split_convert(&ob, NULL, err, sizeof(err));
        print_message("  %s\n", err);
        assert_true(rc < 0);
        if (!strstr(err, cases[i].want))
            fail_msg("error does not name the tensor: want \"%s\" in \"%s\"", cases[i].want, err);
        assert_false(file_exists(out));
        assert_no_tmp_dirs();
        unlink(bad);
    }
}

/* ---- synthetic ---------------------------------------------------------- */

/* A copy of the fixture at src in dst with the length-prefixed string `from`
 * (a tensor name or key) replaced by `to` of the same length; or, when
 * ne1 >= 0, the second dimension of tensor `from` set to ne1; or, when u32 is
 * nonzero, the u32 value of key `from` set to u32. */
static void patch_copy(const char *src, const char *dst, const char *from, const char *to, int64_t ne1,
                       uint32_t u32)
{
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    size_t fl = strlen(from);
    unsigned char *hit = memmem(buf, (size_t)n, from, fl);
    /* a tensor name is preceded by its u64 length; metadata keys likewise */
    while (hit && (hit - buf < 8 || memcmp(hit - 8, &(uint64_t){ fl }, 8) != 0))
        hit = memmem(hit + 1, (size_t)n - (size_t)(hit + 1 - buf), from, fl);
    assert_non_null(hit);
    if (u32) {
        /* key, u32 value type, u32 value */
        memcpy(hit + fl + 4, &u32, 4);
    } else if (ne1 < 0) {
        memcpy(hit, to, fl);
    } else {
        /* name, u32 n_dims, u64 ne[0], u64 ne[1] */
        uint32_t nd;
        memcpy(&nd, hit + fl, 4);
        assert_true(nd >= 2);
        memcpy(hit + fl + 4 + 8, &ne1, 8);
    }
    f = fopen(dst, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    free(buf);
}

/* Qwen3.5/3.6-MoE: every tensor recognised (delta-net weights, ssm_* norms
 * and conv, shared expert and its gate pinned; routed experts in blobs);
 * a file with a missing delta-net tensor, a mis-shaped conv or an
 * inconsistent SSM size is refused before anything is written, naming the
 * tensor (or key), expected and actual. */
static void test_qwen35moe_family(void **state)
{
    (void)state;
    const char *fx = fixtures_dir();
    char src[4096], out[4096], bad[4096], err[1024];
    if (!fx) {
        print_message("skipped: fixtures not found (set MOESTREAM_FIXTURES)\n");
        skip();
    }
    path_join(src, sizeof(src), fx, "arch/qwen35moe-Q8_0.gguf");
    if (!file_exists(src)) {
        print_message("skipped: %s not found\n", src);
        skip();
    }
    snprintf(out, sizeof(out), "%s/q35", tmp_root);
    struct split_stats st;
    struct split_options o = {.input = src, .output_dir = out, .check_runnable = true};
    if (split_convert(&o, &st, err, sizeof(err)) < 0)
        fail_msg("%s: %s", src, err);
    assert_int_equal(st.n_expert_layers, 4);
    if (split_verify(out, NULL, NULL, err, sizeof(err)) < 0)
        fail_msg("%s: %s", out, err);
    compare_with_source(src, out);
    struct split_model *sm;
    assert_int_equal(split_open(&sm, out, err, sizeof(err)), 0);
    const char *pinned[] = { "blk.0.ssm_conv1d.weight", "blk.0.ssm_a", "blk.0.ssm_norm.weight", "blk.0.attn_qkv.weight",
                             "blk.0.attn_gate.weight", "blk.1.ssm_alpha.weight", "blk.2.ssm_out.weight",
                             "blk.3.attn_q_norm.weight", "blk.3.ffn_gate_inp_shexp.weight",
                             "blk.3.ffn_down_shexp.weight" };
    for (size_t i = 0; i < sizeof(pinned) / sizeof(pinned[0]); i++)
        if (!split_find_tensor(sm, pinned[i]))
            fail_msg("%s is not pinned", pinned[i]);
    assert_null(split_find_tensor(sm, "blk.0.ffn_up_exps.weight"));
    assert_int_equal(sm->layers[2].n_expert, 16);
    split_close(sm);
    rm_rf(out);

    static const struct {
        const char *from, *to;
        int64_t ne1;
        uint32_t u32;
        const char *want[3];
    } cases[] = {
        { "blk.1.ssm_beta.weight", "blk.1.ssm_bXta.weight", -1, 0,
          { "blk.1.ssm_beta.weight is missing", "", "" } },
        { "blk.2.ssm_conv1d.weight", NULL, 384, 0, { "blk.2.ssm_conv1d.weight", "[4, 384]", "expected [4, 512]" } },
        { "blk.0.ssm_out.weight", NULL, 200, 0, { "blk.0.ssm_out.weight", "[256, 200]", "expected [256, 256]" } },
        { "qwen35moe.ssm.inner_size", "qwen35moe.ssm.innXr_size", -1, 0, { "ssm.inner_size is missing", "", "" } },
        /* inner size 192 with 4 value heads of 64: inconsistent */
        { "qwen35moe.ssm.inner_size", NULL, -1, 192, { "inner 192", "expected rank * state = 256", "" } },
        /* one key head where the tensors have two: q/k/v conv channels differ */
        { "qwen35moe.ssm.group_count", NULL, -1, 1, { "blk.0.attn_qkv.weight", "[256, 512]", "expected [256, 384]" } },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(bad, sizeof(bad), "%s/bad%zu.gguf", tmp_root, i);
        patch_copy(src, bad, cases[i].from, cases[i].to, cases[i].ne1, cases[i].u32);
        snprintf(out, sizeof(out), "%s/bad%zu", tmp_root, i);
        struct split_options ob = {.input = bad, .output_dir = out, .check_runnable = true};
        err[0] = 0;
        int rc = split_convert(&ob, NULL, err, sizeof(err));
        print_message("  refused: %s\n", err);
        assert_true(rc < 0);
        for (int w = 0; w < 3; w++)
            if (!strstr(err, cases[i].want[w]))
                fail_msg("error '%s' does not say '%s'", err, cases[i].want[w]);
        assert_false(file_exists(out));
        unlink(bad);
    }
}

/* ---- synthetic ---------------------------------------------------------- */


static void test_synthetic_roundtrip(void **state)
{
    (void)state;
    char out[4096], err[1024];
    const char *src = syn_model("syn", true, 1);
    snprintf(out, sizeof(out), "%s/syn.split", tmp_root);
    if (convert(src, out, false, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    if (split_verify(out, NULL, NULL, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    compare_with_source(src, out);

    struct split_model *m;
    assert_int_equal(split_open(&m, out, err, sizeof(err)), 0);
    assert_int_equal(m->n_layer, 3);
    assert_int_equal(m->layers[0].n_expert, 0);
    assert_int_equal(m->layers[1].n_expert, 4);
    assert_int_equal(m->layers[1].n_part, 6);
    const struct split_part *sc = split_find_part(&m->layers[1], "ffn_down_exps.scale");
    assert_non_null(sc);
    assert_int_equal(sc->size, 4);
    const struct split_part *bias = split_find_part(&m->layers[2], "ffn_gate_exps.bias");
    assert_non_null(bias);
    assert_int_equal(bias->n_dims, 1);
    assert_int_equal(bias->ne[0], 32);
    assert_null(split_find_part(&m->layers[1], "ffn_up_shexp.weight"));
    assert_non_null(split_find_tensor(m, "blk.1.ffn_up_shexp.weight"));
    assert_non_null(split_find_tensor(m, "blk.1.exp_probs_b.bias"));
    assert_non_null(split_find_tensor(m, "blk.2.ffn_gate_inp.weight"));
    assert_non_null(split_find_tensor(m, "blk.0.ffn_gate.weight"));
    assert_null(split_find_tensor(m, "blk.1.ffn_up_exps.weight"));
    const char *arch;
    assert_int_equal(gguf_get_str(m->manifest, "general.architecture", &arch), 0);
    assert_string_equal(arch, "synthetic-moe");
    split_close(m);
    assert_no_tmp_dirs();
    rm_rf(out);
}

static void test_multipart(void **state)
{
    (void)state;
    char out[4096], err[1024];
    const char *src = syn_model("mp", true, 2);
    struct gguf_ctx *g;
    if (gguf_open(&g, src, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(gguf_n_parts(g), 2);
    gguf_close(g);
    snprintf(out, sizeof(out), "%s/mp.split", tmp_root);
    if (convert(src, out, false, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    if (split_verify(out, NULL, NULL, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    compare_with_source(src, out);
    rm_rf(out);
}

/* A GGUF opened as a split (split_open_gguf) has the split's tables, its
 * pinned weights load to the same bytes, and the provider delivers every
 * expert with the same part bytes as the split's blobs (aligned over-reads
 * moved into place, the last slice ending the file included). */
static void check_gguf_as_split(const char *src, const char *dir, enum provider_io io)
{
    char err[1024];
    struct split_model *a, *b;
    if (split_open_gguf(&a, src, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(split_open(&b, dir, err, sizeof(err)), 0);
    assert_true(a->from_gguf);
    assert_int_equal(a->n_layer, b->n_layer);
    assert_int_equal(a->n_tensor, b->n_tensor);
    struct pinned pa, pb;
    assert_int_equal(pinned_load(&pa, a, false, true, err, sizeof(err)), 0);
    assert_int_equal(pinned_load(&pb, b, false, true, err, sizeof(err)), 0);
    for (int64_t i = 0; i < b->n_tensor; i++) {
        const struct split_tensor *tb = &b->tensors[i], *ta = split_find_tensor(a, tb->name);
        assert_non_null(ta);
        assert_int_equal(ta->type, tb->type);
        assert_int_equal(ta->size, tb->size);
        assert_memory_equal(ta->ne, tb->ne, sizeof(ta->ne));
        assert_memory_equal(pa.base + ta->offset, pb.base + tb->offset, tb->size);
    }
    pinned_free(&pa);
    pinned_free(&pb);
    struct provider_opts o = {.io = io, .cache_bytes = 0, .max_active = 4};
    struct provider *p;
    if (provider_open(&p, a, &o, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    int checked = 0;
    for (int L = 0; L < b->n_layer; L++) {
        const struct split_layer *la = &a->layers[L], *lb = &b->layers[L];
        assert_int_equal(la->n_expert, lb->n_expert);
        assert_int_equal(la->n_part, lb->n_part);
        if (!lb->n_expert)
            continue;
        int fd = open(lb->path, O_RDONLY);
        assert_true(fd >= 0);
        uint8_t *want = malloc(lb->blob_size);
        for (int e = 0; e < lb->n_expert; e++) {
            int id = e, got_e, rc;
            const uint8_t *blob;
            assert_int_equal(provider_request(p, L, &id, 1), 0);
            assert_int_equal(provider_next(p, &got_e, &blob), 1);
            assert_int_equal(got_e, e);
            assert_int_equal(pread(fd, want, lb->blob_size, (off_t)((uint64_t)e * lb->blob_size)),
                             (ssize_t)lb->blob_size);
            for (int q = 0; q < lb->n_part; q++) {
                const struct split_part *qa = split_find_part(la, lb->parts[q].name);
                assert_non_null(qa);
                assert_int_equal(qa->size, lb->parts[q].size);
                assert_memory_equal(blob + qa->offset, want + lb->parts[q].offset, qa->size);
            }
            provider_release(p, L, e);
            assert_int_equal((rc = provider_next(p, &got_e, &blob)), 0);
            checked++;
        }
        free(want);
        close(fd);
    }
    assert_true(checked > 0);
    provider_close(p);
    split_close(a);
    split_close(b);
}

static void test_open_gguf(void **state)
{
    (void)state;
    char out[4096], err[1024];
    for (int parts = 1; parts <= 2; parts++) {
        const char *src = syn_model(parts == 1 ? "og1" : "og2", true, parts);
        snprintf(out, sizeof(out), "%s/og%d.split", tmp_root, parts);
        if (convert(src, out, false, err, sizeof(err)) < 0)
            fail_msg("%s", err);
        check_gguf_as_split(src, out, PROVIDER_IO_URING);
        check_gguf_as_split(src, out, PROVIDER_IO_PREAD);
        check_gguf_as_split(src, out, PROVIDER_IO_BUFFERED);
        rm_rf(out);
    }
}

static void test_corruption_named(void **state)
{
    (void)state;
    char out[4096], err[1024];
    const char *src = syn_model("cor", true, 1);
    snprintf(out, sizeof(out), "%s/cor.split", tmp_root);
    if (convert(src, out, false, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    struct split_model *m;
    assert_int_equal(split_open(&m, out, err, sizeof(err)), 0);
    struct split_layer l2 = m->layers[2];
    char pinned[4200];
    snprintf(pinned, sizeof(pinned), "%s", m->pinned_path);
    const struct split_tensor *q = split_find_tensor(m, "blk.1.attn_q.weight");
    assert_non_null(q);
    uint64_t q_off = q->offset + q->size / 2;
    split_close(m);

    /* A byte inside the used part of expert 3's blob of layer 2. */
    flip_byte(l2.path, 3 * l2.blob_size + l2.blob_bytes / 2);
    assert_int_equal(split_verify(out, NULL, NULL, err, sizeof(err)), -EBADMSG);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, "layer 2 expert 3:"));
    assert_non_null(strstr(err, "experts-002.bin"));
    flip_byte(l2.path, 3 * l2.blob_size + l2.blob_bytes / 2);
    assert_int_equal(split_verify(out, NULL, NULL, err, sizeof(err)), 0);

    /* Trailing blob padding must stay zero. */
    assert_true(l2.blob_size > l2.blob_bytes);
    flip_byte(l2.path, 1 * l2.blob_size + l2.blob_size - 1);
    assert_int_equal(split_verify(out, NULL, NULL, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "layer 2 expert 1:"));
    assert_non_null(strstr(err, "padding"));
    flip_byte(l2.path, 1 * l2.blob_size + l2.blob_size - 1);

    /* A pinned tensor. */
    flip_byte(pinned, q_off);
    assert_int_equal(split_verify(out, NULL, NULL, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "blk.1.attn_q.weight"));
    rm_rf(out);
}

static void test_refuse_non_moe(void **state)
{
    (void)state;
    char out[4096], err[1024];
    const char *src = syn_model("dense", false, 1);
    snprintf(out, sizeof(out), "%s/dense.split", tmp_root);
    assert_int_equal(convert(src, out, false, err, sizeof(err)), -EINVAL);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, "not a Mixture-of-Experts model"));
    assert_false(file_exists(out));
    assert_no_tmp_dirs();
}

static void test_existing_dir(void **state)
{
    (void)state;
    char out[4096], err[1024], junk[4200];
    const char *src = syn_model("ex", true, 1);
    snprintf(out, sizeof(out), "%s/ex.split", tmp_root);
    assert_int_equal(mkdir(out, 0755), 0);
    assert_int_equal(convert(src, out, false, err, sizeof(err)), -EEXIST);
    assert_non_null(strstr(err, "--force"));
    if (convert(src, out, true, err, sizeof(err)) < 0) /* empty dir: replaced */
        fail_msg("%s", err);
    assert_int_equal(convert(src, out, false, err, sizeof(err)), -EEXIST);
    if (convert(src, out, true, err, sizeof(err)) < 0) /* a split: replaced */
        fail_msg("%s", err);
    if (split_verify(out, NULL, NULL, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    /* A directory holding anything else is never replaced. */
    path_join(junk, sizeof(junk), out, "notes.txt");
    FILE *f = fopen(junk, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(convert(src, out, true, err, sizeof(err)), -ENOTEMPTY);
    assert_non_null(strstr(err, "notes.txt"));
    assert_true(file_exists(junk));
    assert_no_tmp_dirs();
    rm_rf(out);
}

static void test_cancel_leaves_nothing(void **state)
{
    (void)state;
    char out[4096], err[1024];
    const char *src = syn_model("can", true, 1);
    snprintf(out, sizeof(out), "%s/can.split", tmp_root);
    volatile sig_atomic_t cancel = 1;
    struct split_options o = {.input = src, .output_dir = out, .cancel = &cancel};
    assert_int_equal(split_convert(&o, NULL, err, sizeof(err)), -ECANCELED);
    assert_false(file_exists(out));
    assert_no_tmp_dirs();

    /* A temp dir left by a killed split (its pid is gone) is cleaned up by
     * the next split into the same directory. */
    char stale[4200], f[4300];
    snprintf(stale, sizeof(stale), "%s.tmp-%d", out, 999999999);
    assert_int_equal(mkdir(stale, 0755), 0);
    path_join(f, sizeof(f), stale, SPLIT_PINNED);
    FILE *fp = fopen(f, "w");
    assert_non_null(fp);
    fclose(fp);
    cancel = 0;
    if (split_convert(&o, NULL, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_false(file_exists(stale));
    assert_no_tmp_dirs();
    rm_rf(out);
}

/* A write error (here EFBIG from a file-size limit, as ENOSPC would be) is
 * reported with the file and offset, and the temp dir is removed. */
static void test_write_error_cleans_up(void **state)
{
    (void)state;
    char out[4096], err[1024];
    const char *src = syn_model("wr", true, 1);
    snprintf(out, sizeof(out), "%s/wr.split", tmp_root);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 8192;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = convert(src, out, false, err, sizeof(err));
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(rc, -EFBIG);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, "pinned.bin at offset"));
    assert_false(file_exists(out));
    assert_no_tmp_dirs();
}

static void test_open_rejects(void **state)
{
    (void)state;
    char out[4096], err[1024], path[4200];
    struct split_model *m = NULL;
    const char *src = syn_model("rej", true, 1);

    snprintf(out, sizeof(out), "%s/missing.split", tmp_root);
    assert_int_equal(split_open(&m, out, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "moestream-split MODEL.gguf -o"));

    snprintf(out, sizeof(out), "%s/rej.split", tmp_root);
    if (convert(src, out, false, err, sizeof(err)) < 0)
        fail_msg("%s", err);

    /* Truncated experts file. */
    path_join(path, sizeof(path), out, "experts-001.bin");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 1), 0);
    assert_true(split_open(&m, out, err, sizeof(err)) < 0);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, "experts-001.bin"));
    assert_non_null(strstr(err, "truncated"));
    assert_true(split_verify(out, NULL, NULL, err, sizeof(err)) < 0);
    assert_int_equal(truncate(path, st.st_size), 0);

    /* Truncated pinned.bin. */
    path_join(path, sizeof(path), out, SPLIT_PINNED);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 4096), 0);
    assert_true(split_open(&m, out, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "pinned.bin"));
    assert_int_equal(truncate(path, st.st_size), 0);
    assert_int_equal(split_open(&m, out, err, sizeof(err)), 0);
    split_close(m);

    /* A manifest from a newer moestream: rewrite it with format_version 2. */
    char mpath[4200], mnew[4300];
    path_join(mpath, sizeof(mpath), out, SPLIT_MANIFEST);
    snprintf(mnew, sizeof(mnew), "%s.new", mpath);
    struct gguf_ctx *g;
    assert_int_equal(gguf_open(&g, mpath, err, sizeof(err)), 0);
    struct gguf_writer *w = gguf_writer_init(0);
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const struct gguf_kv *kv = gguf_kv_at(g, i);
        if (strcmp(kv->key.ptr, "moestream.format_version") == 0)
            assert_int_equal(gguf_writer_set_u32(w, kv->key.ptr, SPLIT_FORMAT_VERSION + 1), 0);
        else
            assert_int_equal(gguf_writer_copy_kv(w, kv), 0);
    }
    assert_int_equal(gguf_writer_begin(w, mnew, err, sizeof(err)), 0);
    assert_int_equal(gguf_writer_finish(w, err, sizeof(err)), 0);
    gguf_writer_free(w);
    gguf_close(g);
    assert_int_equal(rename(mnew, mpath), 0);
    /* rewritten without its checksum update: refused as altered */
    assert_int_equal(split_open(&m, out, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "does not match its checksum"));
    /* as a newer moestream would write it: checksum updated */
    assert_int_equal(split_write_manifest_sum(out, err, sizeof(err)), 0);
    assert_int_equal(split_open(&m, out, err, sizeof(err)), -EPROTONOSUPPORT);
    print_message("  %s\n", err);
    assert_non_null(strstr(err, "upgrade moestream"));

    /* No manifest: an interrupted split. */
    assert_int_equal(unlink(mpath), 0);
    assert_int_equal(split_open(&m, out, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "no manifest.gguf"));
    rm_rf(out);
}

/* ---- command line ------------------------------------------------------- */

static int run(const char *cmd)
{
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void **state)
{
    (void)state;
    const char *bin = getenv("MOESTREAM_BIN");
    char exe[4096], cmd[16384], out[4096];
    if (!bin || !*bin) {
        print_message("skipped: MOESTREAM_BIN is not set (make test sets it)\n");
        skip();
    }
    path_join(exe, sizeof(exe), bin, "moestream-split");
    if (access(exe, X_OK) != 0) {
        print_message("skipped: %s not built\n", exe);
        skip();
    }
    const char *src = syn_model("cli", true, 1);
    snprintf(out, sizeof(out), "%s/cli.split", tmp_root);
    snprintf(cmd, sizeof(cmd), "'%s' --help >/dev/null", exe);
    assert_int_equal(run(cmd), 0);
    snprintf(cmd, sizeof(cmd), "'%s' verify --help >/dev/null", exe);
    assert_int_equal(run(cmd), 0);
    snprintf(cmd, sizeof(cmd), "'%s' >/dev/null 2>&1", exe);
    assert_int_equal(run(cmd), 2);
    snprintf(cmd, sizeof(cmd), "'%s' '%s' --bogus >/dev/null 2>&1", exe, src);
    assert_int_equal(run(cmd), 2);
    /* a synthetic layout of an architecture the runtime does not run: refused
     * before anything is written, naming the architecture; --no-check splits it */
    snprintf(cmd, sizeof(cmd), "'%s' '%s' -o '%s' -q 2>&1 | grep -q \"architecture 'synthetic-moe' is not supported\"",
             exe, src, out);
    assert_int_equal(run(cmd), 0);
    assert_int_not_equal(access(out, F_OK), 0);
    snprintf(cmd, sizeof(cmd), "'%s' '%s' -o '%s' -q --no-check", exe, src, out);
    assert_int_equal(run(cmd), 0);
    snprintf(cmd, sizeof(cmd), "'%s' '%s' -o '%s' -q --no-check 2>/dev/null", exe, src, out);
    assert_int_equal(run(cmd), 1);
    snprintf(cmd, sizeof(cmd), "'%s' '%s' -o '%s' --force --no-check 2>/dev/null", exe, src, out);
    assert_int_equal(run(cmd), 0);
    snprintf(cmd, sizeof(cmd), "'%s' verify '%s' -q", exe, out);
    assert_int_equal(run(cmd), 0);
    snprintf(cmd, sizeof(cmd), "'%s' info '%s' | grep -q 'layer 1: 4 experts'", exe, out);
    assert_int_equal(run(cmd), 0);
    snprintf(cmd, sizeof(cmd), "'%s' info '%s' | grep -q ffn_down_exps.scale", exe, src);
    assert_int_equal(run(cmd), 0);
    snprintf(cmd, sizeof(cmd), "'%s' verify '%s/nope' 2>&1 | grep -q 'moestream-split MODEL'",
             exe, tmp_root);
    assert_int_equal(run(cmd), 0);
    snprintf(cmd, sizeof(cmd), "'%s' verify '%s/nope' 2>/dev/null", exe, tmp_root);
    assert_int_equal(run(cmd), 1);
    rm_rf(out);
}

static int group_setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    if (!t || !*t || strlen(t) > 900)
        t = "/tmp";
    snprintf(tmp_root, sizeof(tmp_root), "%s/test_split.XXXXXX", t);
    return mkdtemp(tmp_root) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    rm_rf(tmp_root);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deepseek2_map_and_refuse),
        cmocka_unit_test(test_synthetic_roundtrip),
        cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_open_gguf),
        cmocka_unit_test(test_corruption_named),
        cmocka_unit_test(test_refuse_non_moe),
        cmocka_unit_test(test_existing_dir),
        cmocka_unit_test(test_cancel_leaves_nothing),
        cmocka_unit_test(test_write_error_cleans_up),
        cmocka_unit_test(test_open_rejects),
        cmocka_unit_test(test_fixture_models),
        cmocka_unit_test(test_qwen35moe_family),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
