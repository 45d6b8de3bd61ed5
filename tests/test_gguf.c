/*
 * test_gguf.c - cmocka suite for split-tool/gguf.c.
 *
 * Covers: writer -> reader round trip of every value type (nested arrays
 * included) and of tensor data; every GGUF under $MOESTREAM_FIXTURES
 * (quant/, vocab/, models/, tinymoe/; skipped with a message when absent);
 * a model written as 3 parts and read back as one; and hand-built malformed
 * files, each checked for its error text (and for not crashing).
 * Files go to a private temporary directory removed by the group teardown.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include <cmocka.h>

#include "gguf.h"
#include "gguf_writer.h"
#include "quant.h"

static char tmpdir[256];
static char errbuf[1024];

static int group_setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/test_gguf.XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(tmpdir);
    return 0;
}

static const char *tpath(const char *name)
{
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof(p[k]), "%s/%s", tmpdir, name);
    return p[k];
}

/* ------------------------------------------------------------ round trip */

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)((i * 131u + seed * 7u + (i >> 8)) & 0xff);
}

static void test_roundtrip(void **state)
{
    (void)state;
    struct gguf_writer *w = gguf_writer_init(64);
    assert_non_null(w);
    assert_null(gguf_writer_init(48)); /* not a power of two */

    assert_int_equal(gguf_writer_set_u32(w, "t.u32", 4000000000u), 0);
    assert_int_equal(gguf_writer_set_i32(w, "t.i32", -123456), 0);
    assert_int_equal(gguf_writer_set_u64(w, "t.u64", 0xfedcba9876543210ull), 0);
    assert_int_equal(gguf_writer_set_f32(w, "t.f32", 1.5e-6f), 0);
    assert_int_equal(gguf_writer_set_bool(w, "t.bool", true), 0);
    assert_int_equal(gguf_writer_set_str(w, "t.str", "hello, gguf"), 0);
    assert_int_equal(gguf_writer_set_str(w, "t.str", "again"), -EEXIST);
    assert_int_equal(gguf_writer_set_u32(w, "general.alignment", 64), 0); /* agrees: no-op */
    assert_int_equal(gguf_writer_set_u32(w, "general.alignment", 32), -EINVAL);

    /* the remaining scalar types through copy_kv */
    struct gguf_kv kv = { .key = { 5, "t.u8_" } };
    kv.key = (struct gguf_str){ 4, "t.u8" };
    kv.val = (struct gguf_value){ .type = GGUF_VT_UINT8, .u64 = 250 };
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);
    kv.key = (struct gguf_str){ 4, "t.i8" };
    kv.val = (struct gguf_value){ .type = GGUF_VT_INT8, .i64 = -100 };
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);
    kv.key = (struct gguf_str){ 5, "t.u16" };
    kv.val = (struct gguf_value){ .type = GGUF_VT_UINT16, .u64 = 65000 };
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);
    kv.key = (struct gguf_str){ 5, "t.i16" };
    kv.val = (struct gguf_value){ .type = GGUF_VT_INT16, .i64 = -32000 };
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);
    kv.key = (struct gguf_str){ 5, "t.i64" };
    kv.val = (struct gguf_value){ .type = GGUF_VT_INT64, .i64 = INT64_MIN + 7 };
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);
    kv.key = (struct gguf_str){ 5, "t.f64" };
    kv.val = (struct gguf_value){ .type = GGUF_VT_FLOAT64, .f64 = 3.141592653589793 };
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);
    /* a string with a NUL inside */
    kv.key = (struct gguf_str){ 7, "t.nulst" };
    kv.val = (struct gguf_value){ .type = GGUF_VT_STRING, .str = { 5, "ab\0cd" } };
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);

    /* scalar arrays of every type */
    uint8_t a_u8[] = { 1, 2, 255 };
    int8_t a_i8[] = { -1, 0, 127 };
    uint16_t a_u16[] = { 1, 65535 };
    int16_t a_i16[] = { -32768, 5 };
    uint32_t a_u32[] = { 7, 8, 9, 4294967295u };
    int32_t a_i32[] = { -7, 8 };
    float a_f32[] = { 0.5f, -2.25f };
    uint8_t a_bool[] = { 1, 0, 1 };
    uint64_t a_u64[] = { 1ull << 63 };
    int64_t a_i64[] = { -1, INT64_MAX };
    double a_f64[] = { 1e300, -0.0 };
    assert_int_equal(gguf_writer_set_arr(w, "a.u8", GGUF_VT_UINT8, a_u8, 3), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.i8", GGUF_VT_INT8, a_i8, 3), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.u16", GGUF_VT_UINT16, a_u16, 2), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.i16", GGUF_VT_INT16, a_i16, 2), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.u32", GGUF_VT_UINT32, a_u32, 4), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.i32", GGUF_VT_INT32, a_i32, 2), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.f32", GGUF_VT_FLOAT32, a_f32, 2), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.bool", GGUF_VT_BOOL, a_bool, 3), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.u64", GGUF_VT_UINT64, a_u64, 1), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.i64", GGUF_VT_INT64, a_i64, 2), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.f64", GGUF_VT_FLOAT64, a_f64, 2), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.empty", GGUF_VT_UINT32, NULL, 0), 0);
    assert_int_equal(gguf_writer_set_arr(w, "a.bad", GGUF_VT_STRING, a_u8, 1), -EINVAL);
    const char *strs[] = { "alpha", "", "gamma delta" };
    assert_int_equal(gguf_writer_set_arr_str(w, "a.str", strs, 3), 0);

    /* nested: [[i32; 2], [i32; 0], [str; 2]] and a 3-level one */
    struct gguf_str inner_s[] = { { 1, "x" }, { 2, "yz" } };
    struct gguf_value inner[3];
    memset(inner, 0, sizeof(inner));
    inner[0].type = GGUF_VT_ARRAY;
    inner[0].arr.type = GGUF_VT_INT32;
    inner[0].arr.n = 2;
    inner[0].arr.data = a_i32;
    inner[1].type = GGUF_VT_ARRAY;
    inner[1].arr.type = GGUF_VT_INT32;
    inner[1].arr.n = 0;
    inner[1].arr.data = NULL;
    inner[2].type = GGUF_VT_ARRAY;
    inner[2].arr.type = GGUF_VT_STRING;
    inner[2].arr.n = 2;
    inner[2].arr.data = inner_s;
    kv.key = (struct gguf_str){ 8, "a.nested" };
    kv.val = (struct gguf_value){ .type = GGUF_VT_ARRAY };
    kv.val.arr.type = GGUF_VT_ARRAY;
    kv.val.arr.n = 3;
    kv.val.arr.data = inner;
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);
    struct gguf_value mid = { .type = GGUF_VT_ARRAY };
    mid.arr.type = GGUF_VT_ARRAY;
    mid.arr.n = 1;
    mid.arr.data = &inner[0];
    kv.key = (struct gguf_str){ 7, "a.deep3" };
    kv.val = (struct gguf_value){ .type = GGUF_VT_ARRAY };
    kv.val.arr.type = GGUF_VT_ARRAY;
    kv.val.arr.n = 1;
    kv.val.arr.data = &mid;
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);

    int64_t ne_a[] = { 64, 3 };
    int64_t ne_b[] = { 256, 2, 2 };
    int64_t ne_c[] = { 5 };
    int64_t ne_bad[] = { 33 };
    assert_int_equal(gguf_writer_add_tensor(w, "a", QT_Q8_0, 2, ne_a), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "b", QT_Q4_K, 3, ne_b), 1);
    assert_int_equal(gguf_writer_add_tensor(w, "c", QT_F32, 1, ne_c), 2);
    assert_int_equal(gguf_writer_add_tensor(w, "c", QT_F32, 1, ne_c), -EINVAL);
    assert_int_equal(gguf_writer_add_tensor(w, "d", QT_Q4_0, 1, ne_bad), -EINVAL);
    assert_int_equal(gguf_writer_add_tensor(w, "e", 4, 1, ne_c), -EINVAL);
    size_t sz[3] = { 2 * 34 * 3, 144 * 4, 20 };
    size_t total = sz[0] + sz[1] + sz[2];
    unsigned char *data = malloc(total);
    assert_non_null(data);
    fill(data, total, 1);

    const char *path = tpath("rt.gguf");
    assert_int_equal(gguf_writer_begin(w, path, errbuf, sizeof(errbuf)), 0);
    /* odd chunking that straddles tensor boundaries */
    size_t off = 0, chunk = 1;
    while (off < total) {
        size_t k = total - off < chunk ? total - off : chunk;
        assert_int_equal(gguf_writer_write(w, data + off, k, errbuf, sizeof(errbuf)), 0);
        off += k;
        chunk = chunk * 3 + 1;
    }
    assert_int_equal(gguf_writer_finish(w, errbuf, sizeof(errbuf)), 0);
    gguf_writer_free(w);

    struct gguf_ctx *g;
    int rc = gguf_open(&g, path, errbuf, sizeof(errbuf));
    if (rc)
        fail_msg("%s", errbuf);
    assert_int_equal(gguf_version(g), 3);
    assert_int_equal(gguf_alignment(g), 64);
    assert_int_equal(gguf_n_parts(g), 1);

    uint32_t u32;
    uint64_t u64;
    float f32;
    bool b;
    const char *s;
    assert_int_equal(gguf_get_u32(g, "t.u32", &u32), 0);
    assert_int_equal(u32, 4000000000u);
    assert_int_equal(gguf_get_u32(g, "t.i32", &u32), -EINVAL); /* negative */
    assert_int_equal(gguf_find_kv(g, "t.i32")->val.i64, -123456);
    assert_int_equal(gguf_get_u64(g, "t.u64", &u64), 0);
    assert_true(u64 == 0xfedcba9876543210ull);
    assert_int_equal(gguf_get_u32(g, "t.u64", &u32), -EINVAL); /* does not fit */
    assert_int_equal(gguf_get_f32(g, "t.f32", &f32), 0);
    assert_true(f32 == 1.5e-6f);
    assert_int_equal(gguf_get_bool(g, "t.bool", &b), 0);
    assert_true(b);
    assert_int_equal(gguf_get_str(g, "t.str", &s), 0);
    assert_string_equal(s, "hello, gguf");
    assert_int_equal(gguf_get_str(g, "t.missing", &s), -ENOENT);
    assert_int_equal(gguf_get_str(g, "t.u32", &s), -EINVAL);
    assert_int_equal(gguf_get_u32(g, "t.u8", &u32), 0);
    assert_int_equal(u32, 250);
    assert_int_equal(gguf_get_u32(g, "t.u16", &u32), 0);
    assert_int_equal(u32, 65000);
    assert_int_equal(gguf_find_kv(g, "t.i8")->val.i64, -100);
    assert_int_equal(gguf_find_kv(g, "t.i16")->val.i64, -32000);
    assert_true(gguf_find_kv(g, "t.i64")->val.i64 == INT64_MIN + 7);
    assert_true(gguf_find_kv(g, "t.f64")->val.f64 == 3.141592653589793);
    assert_int_equal(gguf_find_kv(g, "t.f64")->val.type, GGUF_VT_FLOAT64);
    const struct gguf_kv *nk = gguf_find_kv(g, "t.nulst");
    assert_int_equal(nk->val.str.len, 5);
    assert_memory_equal(nk->val.str.ptr, "ab\0cd", 6);
    assert_int_equal(gguf_get_u32(g, "general.alignment", &u32), 0);
    assert_int_equal(u32, 64);

    enum gguf_vtype et;
    uint64_t n;
    const void *d;
    assert_int_equal(gguf_get_arr(g, "a.u8", &et, &n, &d), 0);
    assert_int_equal(et, GGUF_VT_UINT8);
    assert_int_equal(n, 3);
    assert_int_equal(gguf_arr_u64(et, d, 2), 255);
    assert_int_equal(gguf_get_arr(g, "a.i8", &et, &n, &d), 0);
    assert_int_equal(gguf_arr_i64(et, d, 0), -1);
    assert_int_equal(gguf_arr_u64(et, d, 0), 0); /* negative clamps */
    assert_int_equal(gguf_get_arr(g, "a.u16", &et, &n, &d), 0);
    assert_int_equal(gguf_arr_u64(et, d, 1), 65535);
    assert_int_equal(gguf_get_arr(g, "a.i16", &et, &n, &d), 0);
    assert_int_equal(gguf_arr_i64(et, d, 0), -32768);
    assert_int_equal(gguf_get_arr(g, "a.u32", &et, &n, &d), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(d, a_u32, sizeof(a_u32));
    assert_int_equal(gguf_get_arr(g, "a.i32", &et, &n, &d), 0);
    assert_int_equal(gguf_arr_i64(et, d, 0), -7);
    assert_true(gguf_arr_f64(et, d, 1) == 8.0);
    assert_int_equal(gguf_get_arr(g, "a.f32", &et, &n, &d), 0);
    assert_true(gguf_arr_f64(et, d, 1) == -2.25);
    assert_int_equal(gguf_arr_i64(et, d, 1), -2);
    assert_int_equal(gguf_get_arr(g, "a.bool", &et, &n, &d), 0);
    assert_int_equal(et, GGUF_VT_BOOL);
    assert_memory_equal(d, a_bool, 3);
    assert_int_equal(gguf_get_arr(g, "a.u64", &et, &n, &d), 0);
    assert_true(gguf_arr_u64(et, d, 0) == 1ull << 63);
    assert_true(gguf_arr_i64(et, d, 0) == INT64_MAX); /* clamps */
    assert_int_equal(gguf_get_arr(g, "a.i64", &et, &n, &d), 0);
    assert_true(gguf_arr_i64(et, d, 1) == INT64_MAX);
    assert_int_equal(gguf_get_arr(g, "a.f64", &et, &n, &d), 0);
    assert_true(gguf_arr_f64(et, d, 0) == 1e300);
    assert_true(gguf_arr_u64(et, d, 0) == UINT64_MAX);
    assert_int_equal(gguf_get_arr(g, "a.empty", &et, &n, &d), 0);
    assert_int_equal(n, 0);
    assert_int_equal(et, GGUF_VT_UINT32);
    assert_int_equal(gguf_get_arr(g, "a.str", &et, &n, &d), 0);
    assert_int_equal(et, GGUF_VT_STRING);
    assert_int_equal(n, 3);
    const struct gguf_str *ss = d;
    assert_string_equal(ss[0].ptr, "alpha");
    assert_int_equal(ss[1].len, 0);
    assert_string_equal(ss[2].ptr, "gamma delta");

    assert_int_equal(gguf_get_arr(g, "a.nested", &et, &n, &d), 0);
    assert_int_equal(et, GGUF_VT_ARRAY);
    assert_int_equal(n, 3);
    const struct gguf_value *nv = d;
    assert_int_equal(nv[0].arr.type, GGUF_VT_INT32);
    assert_int_equal(nv[0].arr.n, 2);
    assert_int_equal(gguf_arr_i64(GGUF_VT_INT32, nv[0].arr.data, 1), 8);
    assert_int_equal(nv[1].arr.n, 0);
    assert_int_equal(nv[2].arr.type, GGUF_VT_STRING);
    assert_string_equal(((const struct gguf_str *)nv[2].arr.data)[1].ptr, "yz");
    assert_int_equal(gguf_get_arr(g, "a.deep3", &et, &n, &d), 0);
    nv = d;
    assert_int_equal(nv[0].arr.type, GGUF_VT_ARRAY);
    nv = nv[0].arr.data;
    assert_int_equal(nv[0].arr.type, GGUF_VT_INT32);
    assert_int_equal(gguf_arr_i64(GGUF_VT_INT32, nv[0].arr.data, 0), -7);

    /* tensors and their data */
    assert_int_equal(gguf_n_tensors(g), 3);
    const char *names[] = { "a", "b", "c" };
    off = 0;
    for (int i = 0; i < 3; i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        assert_string_equal(t->name, names[i]);
        assert_ptr_equal(gguf_find_tensor(g, names[i]), t);
        assert_int_equal(t->size, sz[i]);
        assert_int_equal(t->offset % 64, 0);
        assert_int_equal(t->file_offset % 64, 0);
        assert_int_equal(t->part, 0);
        unsigned char *buf = malloc(sz[i]);
        assert_int_equal(gguf_read_tensor(g, t, 0, buf, sz[i], errbuf, sizeof(errbuf)), 0);
        assert_memory_equal(buf, data + off, sz[i]);
        assert_int_equal(gguf_read_tensor(g, t, 1, buf, sz[i], errbuf, sizeof(errbuf)), -EINVAL);
        assert_non_null(strstr(errbuf, "exceeds its size"));
        free(buf);
        off += sz[i];
    }
    const struct gguf_tensor *tb = gguf_find_tensor(g, "b");
    assert_int_equal(tb->n_dims, 3);
    assert_int_equal(tb->ne[0], 256);
    assert_int_equal(tb->ne[2], 2);
    assert_int_equal(tb->ne[3], 1);
    assert_int_equal(tb->type, QT_Q4_K);
    assert_null(gguf_find_tensor(g, "zz"));

    /* the info listing mentions keys, abbreviated arrays and tensors */
    char *text = NULL;
    size_t tlen = 0;
    FILE *mf = open_memstream(&text, &tlen);
    assert_non_null(mf);
    assert_int_equal(gguf_print_info(g, mf), 0);
    fclose(mf);
    assert_non_null(strstr(text, "t.str"));
    assert_non_null(strstr(text, "[str; 3]"));
    assert_non_null(strstr(text, "Q4_K"));
    assert_non_null(strstr(text, "[256, 2, 2]"));
    free(text);
    gguf_close(g);
    free(data);
}

static void test_writer_errors(void **state)
{
    (void)state;
    struct gguf_writer *w = gguf_writer_init(0);
    int64_t ne[] = { 32 };
    assert_int_equal(gguf_writer_add_tensor(w, "t", QT_F32, 1, ne), 0);
    assert_int_equal(gguf_writer_begin(w, tpath("werr.gguf"), errbuf, sizeof(errbuf)), 0);
    assert_int_equal(gguf_writer_set_u32(w, "late", 1), -EINVAL);
    char buf[200] = { 0 };
    assert_int_equal(gguf_writer_write(w, buf, 100, errbuf, sizeof(errbuf)), 0);
    assert_int_equal(gguf_writer_finish(w, errbuf, sizeof(errbuf)), -EINVAL);
    assert_non_null(strstr(errbuf, "tensor 't' got 100 of 128 bytes"));
    gguf_writer_free(w);

    w = gguf_writer_init(0);
    assert_int_equal(gguf_writer_add_tensor(w, "t", QT_F32, 1, ne), 0);
    assert_int_equal(gguf_writer_begin(w, tpath("werr.gguf"), errbuf, sizeof(errbuf)), 0);
    assert_int_equal(gguf_writer_write(w, buf, 129, errbuf, sizeof(errbuf)), -EINVAL);
    assert_non_null(strstr(errbuf, "1 bytes beyond the last tensor"));
    gguf_writer_free(w);

    w = gguf_writer_init(0);
    assert_int_not_equal(gguf_writer_begin(w, "/nonexistent-dir/x.gguf", errbuf, sizeof(errbuf)), 0);
    assert_non_null(strstr(errbuf, "cannot create"));
    gguf_writer_free(w);
}

/* -------------------------------------------------------------- fixtures */

static const char *fixtures(void)
{
    const char *f = getenv("MOESTREAM_FIXTURES");
    static char def[512];
    if (!f || !*f) {
        snprintf(def, sizeof(def), "../shared/fixtures");
        f = def;
    }
    struct stat st;
    if (stat(f, &st) != 0 || !S_ISDIR(st.st_mode))
        return NULL;
    return f;
}

/* Opens every *.gguf of fixtures/sub; returns how many were read. */
static int read_dir(const char *sub, bool want_tensors)
{
    const char *f = fixtures();
    char dir[600], p[900];
    snprintf(dir, sizeof(dir), "%s/%s", f, sub);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    int count = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".gguf") != 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct gguf_ctx *g;
        int rc = gguf_open(&g, p, errbuf, sizeof(errbuf));
        if (rc)
            fail_msg("%s", errbuf);
        if (want_tensors)
            assert_true(gguf_n_tensors(g) > 0);
        else
            assert_int_equal(gguf_n_tensors(g), 0);
        /* every tensor lies within the file and reads */
        for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
            const struct gguf_tensor *t = gguf_tensor_at(g, i);
            assert_true(t->file_offset + t->size <= gguf_part_size(g, 0));
            unsigned char b[16];
            size_t n = t->size < sizeof(b) ? (size_t)t->size : sizeof(b);
            assert_int_equal(gguf_read_tensor(g, t, t->size - n, b, n, errbuf, sizeof(errbuf)), 0);
        }
        if (strcmp(sub, "quant") == 0) {
            /* QTYPE.gguf holds attn_q [512,256] and ffn_down_exps [256,512,2] of QTYPE */
            char tname[32];
            snprintf(tname, sizeof(tname), "%.*s", (int)(l - 5), e->d_name);
            const struct gguf_tensor *q = gguf_find_tensor(g, "attn_q");
            const struct gguf_tensor *x = gguf_find_tensor(g, "ffn_down_exps");
            assert_non_null(q);
            assert_non_null(x);
            assert_string_equal(quant_traits(q->type)->name, tname);
            assert_int_equal(q->ne[0], 512);
            assert_int_equal(q->ne[1], 256);
            assert_int_equal(q->size, quant_row_size(q->type, 512) * 256);
            assert_int_equal(x->n_dims, 3);
            assert_int_equal(x->ne[2], 2);
            assert_int_equal(x->size, quant_row_size(x->type, 256) * 1024);
            const struct gguf_tensor *r = gguf_find_tensor(g, "attn_q.ref");
            assert_non_null(r);
            assert_int_equal(r->type, QT_F32);
        } else if (strcmp(sub, "vocab") == 0) {
            enum gguf_vtype et;
            uint64_t n;
            const void *data;
            assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &data), 0);
            assert_int_equal(et, GGUF_VT_STRING);
            assert_true(n > 1000);
        } else {
            const char *arch;
            assert_int_equal(gguf_get_str(g, "general.architecture", &arch), 0);
            assert_string_equal(arch, "qwen3moe");
            uint32_t n_expert;
            assert_int_equal(gguf_get_u32(g, "qwen3moe.expert_count", &n_expert), 0);
            assert_true(n_expert == 16 || n_expert == 32);
            assert_non_null(gguf_find_tensor(g, "blk.0.ffn_down_exps.weight"));
        }
        FILE *null = fopen("/dev/null", "w");
        assert_int_equal(gguf_print_info(g, null), 0);
        fclose(null);
        gguf_close(g);
        count++;
    }
    closedir(d);
    return count;
}

static void test_fixtures(void **state)
{
    (void)state;
    if (!fixtures()) {
        print_message("skipped: fixtures not found (set MOESTREAM_FIXTURES or put ../shared/fixtures)\n");
        skip();
    }
    assert_int_equal(read_dir("quant", true), 17);
    assert_int_equal(read_dir("vocab", false), 8);
    assert_int_equal(read_dir("models", true), 3);
    assert_int_equal(read_dir("tinymoe", true), 1);
}

/* ------------------------------------------------------------ multi-part */

static void write_part(const char *name, int no, int count, int first, int nt, int64_t total,
                       int32_t tensors_total, bool with_no)
{
    struct gguf_writer *w = gguf_writer_init(0);
    assert_non_null(w);
    if (no == 0) {
        assert_int_equal(gguf_writer_set_str(w, "general.architecture", "test"), 0);
        assert_int_equal(gguf_writer_set_i32(w, "split.tensors.count", tensors_total), 0);
    }
    struct gguf_kv kv = { .key = { 8, "split.no" }, .val = { .type = GGUF_VT_UINT16, .u64 = (uint64_t)no } };
    if (with_no)
        assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);
    kv.key = (struct gguf_str){ 11, "split.count" };
    kv.val.u64 = (uint64_t)count;
    assert_int_equal(gguf_writer_copy_kv(w, &kv), 0);
    (void)total;
    for (int i = 0; i < nt; i++) {
        char tn[32];
        snprintf(tn, sizeof(tn), "blk.%d.w", first + i);
        int64_t ne[] = { 32, first + i + 1 };
        assert_true(gguf_writer_add_tensor(w, tn, QT_Q8_0, 2, ne) >= 0);
    }
    assert_int_equal(gguf_writer_begin(w, tpath(name), errbuf, sizeof(errbuf)), 0);
    for (int i = 0; i < nt; i++) {
        size_t sz = 34 * (size_t)(first + i + 1);
        unsigned char *b = malloc(sz);
        fill(b, sz, (unsigned)(first + i));
        assert_int_equal(gguf_writer_write(w, b, sz, errbuf, sizeof(errbuf)), 0);
        free(b);
    }
    assert_int_equal(gguf_writer_finish(w, errbuf, sizeof(errbuf)), 0);
    gguf_writer_free(w);
}

static void test_multipart(void **state)
{
    (void)state;
    write_part("mp-00001-of-00003.gguf", 0, 3, 0, 2, 0, 7, true);
    write_part("mp-00002-of-00003.gguf", 1, 3, 2, 3, 0, 7, true);
    write_part("mp-00003-of-00003.gguf", 2, 3, 5, 2, 0, 7, false); /* split.no absent: fine */
    struct gguf_ctx *g;
    int rc = gguf_open(&g, tpath("mp-00001-of-00003.gguf"), errbuf, sizeof(errbuf));
    if (rc)
        fail_msg("%s", errbuf);
    assert_int_equal(gguf_n_parts(g), 3);
    assert_int_equal(gguf_n_tensors(g), 7);
    assert_non_null(strstr(gguf_part_path(g, 2), "mp-00003-of-00003.gguf"));
    assert_true(gguf_part_fd(g, 1) >= 0);
    int parts[7] = { 0, 0, 1, 1, 1, 2, 2 };
    for (int i = 0; i < 7; i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        char tn[32];
        snprintf(tn, sizeof(tn), "blk.%d.w", i);
        assert_string_equal(t->name, tn);
        assert_int_equal(t->part, parts[i]);
        assert_ptr_equal(gguf_find_tensor(g, tn), t);
        size_t sz = 34 * (size_t)(i + 1);
        assert_int_equal(t->size, sz);
        unsigned char *want = malloc(sz), *got = malloc(sz);
        fill(want, sz, (unsigned)i);
        assert_int_equal(gguf_read_tensor(g, t, 0, got, sz, errbuf, sizeof(errbuf)), 0);
        assert_memory_equal(got, want, sz);
        free(want);
        free(got);
    }
    const char *arch;
    assert_int_equal(gguf_get_str(g, "general.architecture", &arch), 0);
    assert_string_equal(arch, "test");
    gguf_close(g);

    /* opening a later part is refused with a hint */
    rc = gguf_open(&g, tpath("mp-00002-of-00003.gguf"), errbuf, sizeof(errbuf));
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(errbuf, "this is part 2 of 3; open the first part"));

    /* a part with the wrong split.no */
    write_part("mq-00001-of-00002.gguf", 0, 2, 0, 1, 0, 2, true);
    write_part("mq-00002-of-00002.gguf", 0, 2, 1, 1, 0, 2, true);
    rc = gguf_open(&g, tpath("mq-00001-of-00002.gguf"), errbuf, sizeof(errbuf));
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(errbuf, "split.no is 0 (expected 1 for part 2 of 2)"));

    /* a missing part */
    write_part("mr-00001-of-00002.gguf", 0, 2, 0, 1, 0, 2, true);
    rc = gguf_open(&g, tpath("mr-00001-of-00002.gguf"), errbuf, sizeof(errbuf));
    assert_int_equal(rc, -ENOENT);
    assert_non_null(strstr(errbuf, "cannot open part 2 of 2"));

    /* split.tensors.count disagrees, and a tensor duplicated across parts */
    write_part("ms-00001-of-00002.gguf", 0, 2, 0, 1, 0, 5, true);
    write_part("ms-00002-of-00002.gguf", 1, 2, 1, 1, 0, 5, true);
    rc = gguf_open(&g, tpath("ms-00001-of-00002.gguf"), errbuf, sizeof(errbuf));
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(errbuf, "split.tensors.count is 5 but the 2 parts hold 2 tensors"));
    write_part("mt-00001-of-00002.gguf", 0, 2, 0, 1, 0, 2, true);
    write_part("mt-00002-of-00002.gguf", 1, 2, 0, 1, 0, 2, true);
    rc = gguf_open(&g, tpath("mt-00001-of-00002.gguf"), errbuf, sizeof(errbuf));
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(errbuf, "duplicate tensor name 'blk.0.w' (also in part 1"));

    /* a single-named file that says it is split */
    write_part("single.gguf", 0, 3, 0, 1, 0, 1, true);
    rc = gguf_open(&g, tpath("single.gguf"), errbuf, sizeof(errbuf));
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(errbuf, "split.count is 3 but the file name does not follow name-00001-of-00003.gguf"));
}

/* --------------------------------------------------------- malformed */

struct bb {
    unsigned char p[8192];
    size_t len;
};

static void put(struct bb *b, const void *s, size_t n)
{
    assert_true(b->len + n <= sizeof(b->p));
    memcpy(b->p + b->len, s, n);
    b->len += n;
}
static void u32(struct bb *b, uint32_t v) { put(b, &v, 4); }
static void u64(struct bb *b, uint64_t v) { put(b, &v, 8); }
static void str(struct bb *b, const char *s) { u64(b, strlen(s)); put(b, s, strlen(s)); }

static void hdr(struct bb *b, uint32_t version, uint64_t nt, uint64_t nkv)
{
    b->len = 0;
    put(b, "GGUF", 4);
    u32(b, version);
    u64(b, nt);
    u64(b, nkv);
}

/* tensor info with up to 4 dims given as int64 (n_dims taken as given) */
static void tinfo(struct bb *b, const char *name, uint32_t nd, const int64_t *ne, uint32_t type, uint64_t off)
{
    str(b, name);
    u32(b, nd);
    for (uint32_t i = 0; i < nd; i++)
        u64(b, (uint64_t)ne[i]);
    u32(b, type);
    u64(b, off);
}

static void pad_data(struct bb *b, size_t align, size_t data)
{
    while (b->len % align)
        b->p[b->len++] = 0;
    for (size_t i = 0; i < data; i++)
        b->p[b->len++] = (unsigned char)i;
}

/* Writes b (first n bytes) to a file and expects gguf_open to fail with
 * a message that starts "gguf: " and holds want. */
static void expect_fail_n(const struct bb *b, size_t n, const char *want)
{
    const char *p = tpath("bad.gguf");
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b->p, 1, n, f), n);
    fclose(f);
    struct gguf_ctx *g = NULL;
    errbuf[0] = '\0';
    int rc = gguf_open(&g, p, errbuf, sizeof(errbuf));
    if (rc == 0) {
        gguf_close(g);
        fail_msg("opened a file that should fail with '%s' (%zu bytes)", want ? want : "", n);
    }
    assert_true(rc < 0);
    assert_null(g);
    assert_true(strncmp(errbuf, "gguf: ", 6) == 0);
    if (want && !strstr(errbuf, want))
        fail_msg("error '%s' lacks '%s'", errbuf, want);
}

static void expect_fail(const struct bb *b, const char *want) { expect_fail_n(b, b->len, want); }

static void expect_ok(const struct bb *b)
{
    const char *p = tpath("ok.gguf");
    FILE *f = fopen(p, "wb");
    fwrite(b->p, 1, b->len, f);
    fclose(f);
    struct gguf_ctx *g;
    int rc = gguf_open(&g, p, errbuf, sizeof(errbuf));
    if (rc)
        fail_msg("%s", errbuf);
    gguf_close(g);
}

/* A valid file: 2 KVs (one array), 2 tensors. */
static void base(struct bb *b)
{
    hdr(b, 3, 2, 2);
    str(b, "general.name");
    u32(b, GGUF_VT_STRING);
    str(b, "tiny");
    str(b, "list");
    u32(b, GGUF_VT_ARRAY);
    u32(b, GGUF_VT_UINT16);
    u64(b, 3);
    uint16_t v[3] = { 1, 2, 3 };
    put(b, v, 6);
    int64_t ne[] = { 32, 2 };
    tinfo(b, "w0", 2, ne, QT_Q8_0, 0);
    tinfo(b, "w1", 1, ne, QT_F32, 96);
    pad_data(b, 32, 96 + 128);
}

static void test_bad_magic_version(void **state)
{
    (void)state;
    struct bb b;
    base(&b);
    expect_ok(&b);
    b.p[0] = 'X';
    expect_fail(&b, "offset 0: bad magic 58475546");
    base(&b);
    uint32_t v = 1;
    memcpy(b.p + 4, &v, 4);
    expect_fail(&b, "offset 4: unsupported version 1 (expected 2 or 3)");
    v = 0x03000000;
    memcpy(b.p + 4, &v, 4);
    expect_fail(&b, "big-endian");
    v = 2;
    memcpy(b.p + 4, &v, 4);
    expect_ok(&b); /* v2 reads like v3 */
    expect_fail_n(&b, 0, "magic truncated");
}

static void test_truncated_everywhere(void **state)
{
    (void)state;
    struct bb b;
    base(&b);
    size_t full = b.len;
    int truncated = 0, past = 0;
    for (size_t n = 0; n < full; n++) {
        expect_fail_n(&b, n, NULL);
        truncated += strstr(errbuf, "truncated") != NULL;
        past += strstr(errbuf, "runs past end of file") != NULL;
    }
    assert_true(truncated > 20);
    assert_true(past > 20);
    assert_int_equal(truncated + past, (int)full);
}

static void test_huge_lengths(void **state)
{
    (void)state;
    struct bb b;
    hdr(&b, 3, 0, 1);
    u64(&b, UINT64_MAX);
    pad_data(&b, 4096, 0);
    expect_fail(&b, "offset 24: key length 18446744073709551615 runs past end of file (size 4096)");

    hdr(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, GGUF_VT_STRING);
    u64(&b, 1000);
    put(&b, "abc", 3);
    expect_fail(&b, "offset 37: string length 1000 runs past end of file");

    hdr(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, GGUF_VT_ARRAY);
    u32(&b, GGUF_VT_UINT64);
    u64(&b, UINT64_MAX / 4);
    expect_fail(&b, "offset 41: array count 4611686018427387903 of u64 runs past end of file");

    hdr(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, GGUF_VT_ARRAY);
    u32(&b, GGUF_VT_STRING);
    u64(&b, 3);
    str(&b, "a");
    str(&b, "b");
    expect_fail(&b, "array count 3 of str runs past end of file");
    u64(&b, 100);
    expect_fail(&b, "string length 100 runs past end of file");

    hdr(&b, 3, 0, UINT64_MAX);
    expect_fail(&b, "offset 16: kv count 18446744073709551615 runs past end of file");
    hdr(&b, 3, 1ull << 40, 0);
    expect_fail(&b, "offset 8: tensor count 1099511627776 runs past end of file");
}

static void test_bad_types(void **state)
{
    (void)state;
    struct bb b;
    hdr(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, 13);
    u32(&b, 0);
    expect_fail(&b, "offset 33: key 'k': unknown value type 13 (expected 0..12)");

    hdr(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, GGUF_VT_ARRAY);
    u32(&b, 99);
    u64(&b, 0);
    expect_fail(&b, "offset 37: unknown array element type 99");

    /* arrays nested 9 deep */
    hdr(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, GGUF_VT_ARRAY);
    for (int i = 0; i < 9; i++) {
        u32(&b, GGUF_VT_ARRAY);
        u64(&b, 1);
    }
    u32(&b, GGUF_VT_UINT8);
    u64(&b, 0);
    expect_fail(&b, "arrays nested deeper than 8 levels");

    hdr(&b, 3, 0, 1);
    u64(&b, 3);
    put(&b, "a\0b", 3);
    u32(&b, GGUF_VT_UINT8);
    put(&b, "x", 1);
    expect_fail(&b, "offset 24: key contains a NUL byte");
}

static void test_duplicates(void **state)
{
    (void)state;
    struct bb b;
    hdr(&b, 3, 0, 2);
    str(&b, "k");
    u32(&b, GGUF_VT_UINT8);
    put(&b, "x", 1);
    str(&b, "k");
    u32(&b, GGUF_VT_UINT8);
    put(&b, "y", 1);
    expect_fail(&b, "offset 38: duplicate key 'k'");

    hdr(&b, 3, 2, 0);
    int64_t ne[] = { 32 };
    tinfo(&b, "t", 1, ne, QT_F32, 0);
    tinfo(&b, "t", 1, ne, QT_F32, 128);
    pad_data(&b, 32, 256);
    expect_fail(&b, "duplicate tensor name 't'");
}

static void test_bad_dims(void **state)
{
    (void)state;
    struct bb b;
    int64_t ne5[] = { 32, 1, 1, 1, 1 };
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 5, ne5, QT_F32, 0);
    pad_data(&b, 32, 128);
    expect_fail(&b, "offset 33: tensor 't': n_dims 5 (expected at most 4)");

    int64_t ne0[] = { 32, 0 };
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 2, ne0, QT_F32, 0);
    pad_data(&b, 32, 128);
    expect_fail(&b, "offset 45: tensor 't': dimension 1 is 0 (expected a positive count)");

    int64_t neg[] = { 32, -5 };
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 2, neg, QT_F32, 0);
    pad_data(&b, 32, 128);
    expect_fail(&b, "dimension 1 is -5");

    int64_t big[] = { 1ll << 40, 1ll << 30 };
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 2, big, QT_F32, 0);
    pad_data(&b, 32, 128);
    expect_fail(&b, "element count overflows at dimension 1");

    int64_t bytes[] = { 1ll << 61 };
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 1, bytes, QT_F64, 0);
    pad_data(&b, 32, 128);
    expect_fail(&b, "byte size overflows 64 bits");

    int64_t odd[] = { 48, 2 };
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 2, odd, QT_Q4_0, 0);
    pad_data(&b, 32, 128);
    expect_fail(&b, "ne[0] 48 is not a multiple of the Q4_0 block size 32");

    int64_t ok[] = { 32 };
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 1, ok, 4, 0);
    pad_data(&b, 32, 128);
    expect_fail(&b, "offset 45: tensor 't': unknown type id 4");
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 1, ok, 0x80000000u, 0);
    pad_data(&b, 32, 128);
    expect_fail(&b, "unknown type id 2147483648");
}

static void test_bad_offsets(void **state)
{
    (void)state;
    struct bb b;
    int64_t ne[] = { 32 };
    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 1, ne, QT_F32, 16);
    pad_data(&b, 32, 256);
    expect_fail(&b, "offset 49: tensor 't': data offset 16 is not a multiple of the alignment 32");

    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 1, ne, QT_F32, 64);
    pad_data(&b, 32, 128);
    expect_fail(&b, "tensor 't': data [64, +128) at file offset 128 runs past end of file (size 192)");

    hdr(&b, 3, 1, 0);
    tinfo(&b, "t", 1, ne, QT_F32, UINT64_MAX - 31);
    pad_data(&b, 32, 128);
    expect_fail(&b, "runs past end of file");

    hdr(&b, 3, 2, 0);
    tinfo(&b, "a", 1, ne, QT_F32, 0);
    tinfo(&b, "b", 1, ne, QT_F32, 96);
    pad_data(&b, 32, 256);
    expect_fail(&b, "tensor 'b' data [96, 224) overlaps tensor 'a' [0, 128)");

    /* overlap detected regardless of info order */
    hdr(&b, 3, 2, 0);
    tinfo(&b, "a", 1, ne, QT_F32, 64);
    tinfo(&b, "b", 1, ne, QT_F32, 0);
    pad_data(&b, 32, 256);
    expect_fail(&b, "tensor 'a' data [64, 192) overlaps tensor 'b' [0, 128)");
}

static void test_bad_alignment(void **state)
{
    (void)state;
    struct bb b;
    uint32_t vals[] = { 0, 48 };
    for (int i = 0; i < 2; i++) {
        hdr(&b, 3, 0, 1);
        str(&b, "general.alignment");
        u32(&b, GGUF_VT_UINT32);
        u32(&b, vals[i]);
        expect_fail(&b, "offset 53: general.alignment");
        assert_non_null(strstr(errbuf, "is not a power of two"));
    }
    hdr(&b, 3, 0, 1);
    str(&b, "general.alignment");
    u32(&b, GGUF_VT_UINT64);
    u64(&b, 64);
    expect_fail(&b, "general.alignment has type u64 (expected u32)");

    /* a valid alignment of 64 moves the data section */
    int64_t ne[] = { 32 };
    hdr(&b, 3, 1, 1);
    str(&b, "general.alignment");
    u32(&b, GGUF_VT_UINT32);
    u32(&b, 64);
    tinfo(&b, "t", 1, ne, QT_F32, 32);
    pad_data(&b, 64, 256);
    expect_fail(&b, "data offset 32 is not a multiple of the alignment 64");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_bad_magic_version),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_huge_lengths),
        cmocka_unit_test(test_bad_types),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_bad_dims),
        cmocka_unit_test(test_bad_offsets),
        cmocka_unit_test(test_bad_alignment),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
