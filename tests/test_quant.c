/*
 * test_quant.c - the quant module: conversions, reference dequantization
 * against gguf-py's (fixtures), activation quantizers, and every ISA's
 * vec_dot against a float64 dot of the dequantized operands.
 *
 * Fixtures: $MOESTREAM_FIXTURES/quant/<TYPE>.gguf and quant-iq/<TYPE>.gguf
 * (the importance-matrix formats; default ../shared/fixtures); each fixture
 * test is skipped with a message when its directory is absent. The GGUF
 * tensor table is read by a tiny private parser below so this suite does
 * not depend on split-tool/.
 *
 * Dot tolerances: with e = the float64 sum of dequant(w)[i] * dequant(a)[i]
 * and L1 = the float64 sum of |dequant(w)[i] * dequant(a)[i]| over the row,
 *   vec_dot_ref:       |s - e| <= 1e-5 * L1 + 1e-30 (all formats)
 *   avx2 / avx512:     |s - e| <= DOT_TOL_SIMD * L1 + 1e-30
 * with DOT_TOL_SIMD 5e-5 for every format: the integer sums are exact in
 * every variant, only the float accumulation of block results (order, FMA)
 * differs, which costs a few float32 ulps per block.
 *
 * vec_dot_multi, where an ISA has one, must equal that ISA's vec_dot on
 * each activation row bit for bit (no tolerance): matmul and matvec mix the
 * two and their tests compare with per-row vec_dot exactly.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fvec.h"
#include "quant.h"
#include "quant_iq_ref.h"
#include "quant_ref.h"

#define DOT_TOL_REF 1e-5
#define DOT_TOL_SIMD 5e-5

/* weight formats with kernels, in GGUF id order */
static const int test_formats[] = {
    QT_F32, QT_F16, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_Q8_0, QT_Q2_K, QT_Q3_K,
    QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_IQ2_XXS, QT_IQ2_XS, QT_IQ3_XXS, QT_IQ1_S, QT_IQ4_NL,
    QT_IQ3_S, QT_IQ2_S, QT_IQ4_XS, QT_IQ1_M, QT_BF16, QT_TQ1_0, QT_TQ2_0, QT_MXFP4,
};
#define N_FORMATS ((int)(sizeof(test_formats) / sizeof(test_formats[0])))

/* ---- deterministic random numbers ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* uniform in [-1, 1) */
static float rng_float(void)
{
    return (float)((double)(rng_next() >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

/* ---- a tiny GGUF tensor-table reader (test-private) ---- */

struct tt_tensor {
    char name[128];
    uint32_t n_dims;
    int64_t ne[4];
    uint32_t type;
    uint64_t offset;
};

struct tt_file {
    uint8_t *buf;
    size_t len;
    size_t pos;
    size_t data_off;
    uint64_t n_tensors;
    struct tt_tensor *t;
    char err[256];
};

static int tt_need(struct tt_file *f, size_t n)
{
    if (f->len - f->pos < n) {
        snprintf(f->err, sizeof(f->err), "truncated at byte %zu (need %zu)", f->pos, n);
        return -1;
    }
    return 0;
}

static int tt_u32(struct tt_file *f, uint32_t *v)
{
    if (tt_need(f, 4))
        return -1;
    memcpy(v, f->buf + f->pos, 4);
    f->pos += 4;
    return 0;
}

static int tt_u64(struct tt_file *f, uint64_t *v)
{
    if (tt_need(f, 8))
        return -1;
    memcpy(v, f->buf + f->pos, 8);
    f->pos += 8;
    return 0;
}

static int tt_skip_value(struct tt_file *f, uint32_t vt, int depth)
{
    static const size_t sz[13] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };
    if (vt > 12 || depth > 4) {
        snprintf(f->err, sizeof(f->err), "bad value type %u at byte %zu", vt, f->pos);
        return -1;
    }
    if (vt == 8) {
        uint64_t len;
        if (tt_u64(f, &len) || tt_need(f, len))
            return -1;
        f->pos += len;
        return 0;
    }
    if (vt == 9) {
        uint32_t et;
        uint64_t n;
        if (tt_u32(f, &et) || tt_u64(f, &n))
            return -1;
        if (et != 8 && et != 9 && et <= 12) {
            if (n > f->len || tt_need(f, n * sz[et]))
                return -1;
            f->pos += n * sz[et];
            return 0;
        }
        for (uint64_t i = 0; i < n; i++)
            if (tt_skip_value(f, et, depth + 1))
                return -1;
        return 0;
    }
    if (tt_need(f, sz[vt]))
        return -1;
    f->pos += sz[vt];
    return 0;
}

static int tt_open(struct tt_file *f, const char *path)
{
    memset(f, 0, sizeof(*f));
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(f->err, sizeof(f->err), "%s", strerror(errno));
        return -1;
    }
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->buf = malloc((size_t)len);
    if (!f->buf || fread(f->buf, 1, (size_t)len, fp) != (size_t)len) {
        snprintf(f->err, sizeof(f->err), "short read");
        fclose(fp);
        return -1;
    }
    fclose(fp);
    f->len = (size_t)len;

    uint32_t magic, version, alignment = 32;
    uint64_t n_kv;
    if (tt_u32(f, &magic) || tt_u32(f, &version) || tt_u64(f, &f->n_tensors) || tt_u64(f, &n_kv))
        return -1;
    if (magic != 0x46554747u || f->n_tensors > 1024) {
        snprintf(f->err, sizeof(f->err), "bad magic or tensor count");
        return -1;
    }
    for (uint64_t i = 0; i < n_kv; i++) {
        uint64_t klen;
        uint32_t vt;
        if (tt_u64(f, &klen) || tt_need(f, klen))
            return -1;
        const char *key = (const char *)f->buf + f->pos;
        bool is_align = klen == 17 && memcmp(key, "general.alignment", 17) == 0;
        f->pos += klen;
        if (tt_u32(f, &vt))
            return -1;
        if (is_align && vt == 4) {
            if (tt_u32(f, &alignment))
                return -1;
        } else if (tt_skip_value(f, vt, 0)) {
            return -1;
        }
    }
    f->t = calloc(f->n_tensors ? f->n_tensors : 1, sizeof(*f->t));
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        struct tt_tensor *t = &f->t[i];
        uint64_t nlen;
        if (tt_u64(f, &nlen) || tt_need(f, nlen) || nlen >= sizeof(t->name))
            return -1;
        memcpy(t->name, f->buf + f->pos, nlen);
        f->pos += nlen;
        if (tt_u32(f, &t->n_dims) || t->n_dims > 4)
            return -1;
        for (int d = 0; d < 4; d++)
            t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++)
            if (tt_u64(f, (uint64_t *)&t->ne[d]))
                return -1;
        if (tt_u32(f, &t->type) || tt_u64(f, &t->offset))
            return -1;
    }
    f->data_off = (f->pos + alignment - 1) / alignment * alignment;
    return 0;
}

static void tt_close(struct tt_file *f)
{
    free(f->buf);
    free(f->t);
}

static const struct tt_tensor *tt_find(const struct tt_file *f, const char *name)
{
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->t[i].name, name) == 0)
            return &f->t[i];
    return NULL;
}

/* pointer to the tensor's data, or NULL when it does not fit in the file */
static const void *tt_data(const struct tt_file *f, const struct tt_tensor *t, size_t size)
{
    if (t->offset > f->len || f->data_off + t->offset > f->len || f->len - f->data_off - t->offset < size)
        return NULL;
    return f->buf + f->data_off + t->offset;
}

/* ---- fixtures ---- */

static char fixtures_quant[4096], fixtures_quant_iq[4096];
static bool have_fixtures, have_fixtures_iq;

static bool file_exists(const char *dir, const char *name)
{
    char probe[4200];
    snprintf(probe, sizeof(probe), "%s/%s", dir, name);
    FILE *fp = fopen(probe, "rb");
    if (fp)
        fclose(fp);
    return fp != NULL;
}

static int group_setup(void **state)
{
    (void)state;
    const char *dir = getenv("MOESTREAM_FIXTURES");
    snprintf(fixtures_quant, sizeof(fixtures_quant), "%s/quant", dir && *dir ? dir : "../shared/fixtures");
    snprintf(fixtures_quant_iq, sizeof(fixtures_quant_iq), "%s/quant-iq", dir && *dir ? dir : "../shared/fixtures");
    have_fixtures = file_exists(fixtures_quant, "Q8_0.gguf");
    have_fixtures_iq = file_exists(fixtures_quant_iq, "IQ2_XXS.gguf");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    quant_select_isa("ref");
    return 0;
}

/* ---- conversions ---- */

static void test_fp16_conversions(void **state)
{
    (void)state;
    /* every finite half survives fp16 -> fp32 -> fp16 */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            continue; /* NaN */
        float f = quant_fp16_to_fp32((qhalf)h);
        assert_int_equal(quant_fp32_to_fp16(f), h);
    }
    assert_true(quant_fp16_to_fp32(0x3c00) == 1.0f);
    assert_true(quant_fp16_to_fp32(0xc000) == -2.0f);
    assert_true(quant_fp16_to_fp32(0x0001) == ldexpf(1.0f, -24));
    assert_true(quant_fp16_to_fp32(0x7bff) == 65504.0f);
    assert_true(isinf(quant_fp16_to_fp32(0x7c00)));
    assert_true(isnan(quant_fp16_to_fp32(0x7e00)));
    /* rounding: ties to even, overflow to inf, subnormals */
    assert_int_equal(quant_fp32_to_fp16(1.0f + ldexpf(1.0f, -11)), 0x3c00);          /* tie -> even */
    assert_int_equal(quant_fp32_to_fp16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02);      /* tie -> even */
    assert_int_equal(quant_fp32_to_fp16(1.0f + ldexpf(1.0f, -11) + ldexpf(1.0f, -20)), 0x3c01);
    assert_int_equal(quant_fp32_to_fp16(65519.0f), 0x7bff);
    assert_int_equal(quant_fp32_to_fp16(65520.0f), 0x7c00);
    assert_int_equal(quant_fp32_to_fp16(-1e10f), 0xfc00);
    assert_int_equal(quant_fp32_to_fp16(ldexpf(1.0f, -25)), 0x0000);                 /* tie -> 0 */
    assert_int_equal(quant_fp32_to_fp16(ldexpf(3.0f, -25)), 0x0002);                 /* tie -> even */
    assert_int_equal(quant_fp32_to_fp16(ldexpf(1023.0f, -24)), 0x03ff);
    assert_int_equal(quant_fp32_to_fp16(ldexpf(2047.0f, -25)), 0x0400);              /* rounds up to normal */
    assert_true((quant_fp32_to_fp16(NAN) & 0x7fff) > 0x7c00);
}

static void test_bf16_conversions(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f))
            continue;
        assert_int_equal(quant_fp32_to_bf16(quant_bf16_to_fp32((uint16_t)h)), h);
    }
    assert_int_equal(quant_fp32_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3f80);            /* tie -> even */
    assert_int_equal(quant_fp32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)), 0x3f82);
    assert_true(isnan(quant_bf16_to_fp32(quant_fp32_to_bf16(NAN))));
    assert_true(quant_e8m0_to_fp32_half(128) == 1.0f);
    assert_true(quant_e8m0_to_fp32_half(0) == ldexpf(1.0f, -128));
    assert_true(quant_e8m0_to_fp32_half(254) == ldexpf(1.0f, 126));
}

/* ---- dequantization against gguf-py ---- */

static const char *const fixture_types[] = {
    "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K",
    "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS", "IQ3_S", "MXFP4", "TQ2_0",
};
/* in quant-iq/ (quantized with an importance matrix) */
static const char *const fixture_types_iq[] = {
    "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ1_S", "IQ1_M",
};

static int type_by_name(const char *name)
{
    for (int t = 0; t < QT_COUNT; t++)
        if (quant_type_known(t) && strcmp(quant_traits(t)->name, name) == 0)
            return t;
    return -1;
}

static void check_tensor(const char *file, struct tt_file *f, int want_type, const char *name)
{
    char refname[160];
    snprintf(refname, sizeof(refname), "%s.ref", name);
    const struct tt_tensor *t = tt_find(f, name), *r = tt_find(f, refname);
    if (!t || !r)
        fail_msg("%s: tensor %s or %s missing", file, name, refname);
    if ((int)t->type != want_type || r->type != QT_F32)
        fail_msg("%s: %s has type %u (expected %d), %s type %u (expected F32)", file, name, t->type, want_type,
                 refname, r->type);
    int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    if (r->ne[0] * r->ne[1] * r->ne[2] * r->ne[3] != n)
        fail_msg("%s: %s and %s differ in element count", file, name, refname);
    const int64_t ne0 = t->ne[0], n_rows = n / ne0;
    const size_t row_size = quant_row_size(want_type, ne0);
    assert_true(row_size > 0);
    const uint8_t *q = tt_data(f, t, row_size * (size_t)n_rows);
    const float *ref = tt_data(f, r, sizeof(float) * (size_t)n);
    if (!q || !ref)
        fail_msg("%s: tensor data of %s out of the file", file, name);
    const quant_to_float_fn to_float = quant_traits(want_type)->to_float;
    assert_non_null(to_float);
    float *row = malloc(sizeof(float) * (size_t)ne0);
    int64_t bad = 0;
    double worst = 0;
    int64_t worst_i = -1;
    for (int64_t r_i = 0; r_i < n_rows; r_i++) {
        to_float(q + (size_t)r_i * row_size, row, ne0);
        for (int64_t j = 0; j < ne0; j++) {
            float rv;
            memcpy(&rv, (const uint8_t *)ref + sizeof(float) * (size_t)(r_i * ne0 + j), sizeof(rv));
            double diff = fabs((double)row[j] - (double)rv);
            double tol = 1e-6 * fmax(1.0, fabs((double)rv));
            if (!(diff <= tol)) {
                if (bad == 0 || diff > worst) {
                    worst = diff;
                    worst_i = r_i * ne0 + j;
                }
                bad++;
            }
        }
    }
    free(row);
    if (bad)
        fail_msg("%s: %s: %lld of %lld elements differ from %s; worst |diff| %g at element %lld", file, name,
                 (long long)bad, (long long)n, refname, worst, (long long)worst_i);
}

static void check_fixture_dir(const char *dir, const char *const *types, size_t n_types)
{
    for (size_t i = 0; i < n_types; i++) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/%s.gguf", dir, types[i]);
        struct tt_file f;
        if (tt_open(&f, path))
            fail_msg("%s: %s", path, f.err);
        int t = type_by_name(types[i]);
        assert_true(t >= 0);
        check_tensor(path, &f, t, "attn_q");
        check_tensor(path, &f, t, "ffn_down_exps");
        tt_close(&f);
    }
}

static void test_dequant_fixtures(void **state)
{
    (void)state;
    if (!have_fixtures) {
        print_message("skipped: no quant fixtures in %s (set MOESTREAM_FIXTURES)\n", fixtures_quant);
        skip();
    }
    check_fixture_dir(fixtures_quant, fixture_types, sizeof(fixture_types) / sizeof(fixture_types[0]));
}

static void test_dequant_fixtures_iq(void **state)
{
    (void)state;
    if (!have_fixtures_iq) {
        print_message("skipped: no quant-iq fixtures in %s (set MOESTREAM_FIXTURES)\n", fixtures_quant_iq);
        skip();
    }
    check_fixture_dir(fixtures_quant_iq, fixture_types_iq, sizeof(fixture_types_iq) / sizeof(fixture_types_iq[0]));
}

/* ---- TQ1_0 (no fixture): encode from the format's definition, decode ---- */

/* byte holding base-3 digits t[0] (most significant) .. t[nd - 1], padded
 * to 5 digits with zeros, stored as ceil(v * 256 / 243) */
static uint8_t tq1_pack(const int *t, int nd)
{
    unsigned v = 0;
    for (int k = 0; k < 5; k++)
        v = v * 3 + (unsigned)(k < nd ? t[k] : 0);
    return (uint8_t)((v * 256 + 242) / 243);
}

static void test_tq1_0_layout(void **state)
{
    (void)state;
    enum { NB = 4 };
    static float want[NB * QK_K], got[NB * QK_K];
    block_tq1_0 b[NB];
    for (int i = 0; i < NB; i++) {
        const float d = 0.25f * (float)(i + 1);
        int t[QK_K];
        for (int j = 0; j < QK_K; j++) {
            t[j] = (int)(rng_next() % 3);
            want[i * QK_K + j] = d * (float)(t[j] - 1);
        }
        int dg[5];
        /* qs[0..32): element 32k + m is digit k of byte m */
        for (int m = 0; m < 32; m++) {
            for (int k = 0; k < 5; k++)
                dg[k] = t[32 * k + m];
            b[i].qs[m] = tq1_pack(dg, 5);
        }
        /* qs[32..48): element 160 + 16k + m */
        for (int m = 0; m < 16; m++) {
            for (int k = 0; k < 5; k++)
                dg[k] = t[160 + 16 * k + m];
            b[i].qs[32 + m] = tq1_pack(dg, 5);
        }
        /* qh[0..4): element 240 + 4k + m, 4 digits */
        for (int m = 0; m < 4; m++) {
            for (int k = 0; k < 4; k++)
                dg[k] = t[240 + 4 * k + m];
            b[i].qh[m] = tq1_pack(dg, 4);
        }
        b[i].d = quant_fp32_to_fp16(d);
    }
    quant_to_float_tq1_0_ref(b, got, NB * QK_K);
    for (int i = 0; i < NB * QK_K; i++)
        if (got[i] != want[i])
            fail_msg("TQ1_0 element %d: decoded %g, encoded %g", i, got[i], want[i]);
}

/* ---- activation quantizers ---- */

static void test_quantize_q8_0(void **state)
{
    (void)state;
    enum { N = 256 };
    float x[N], y[N];
    block_q8_0 q[N / QK8_0];
    for (int i = 0; i < N; i++)
        x[i] = rng_float() * (i < 32 ? 0.0f : 3.0f); /* first block all zero */
    quant_from_float_q8_0_ref(x, q, N);
    quant_to_float_q8_0_ref(q, y, N);
    for (int b = 0; b < N / QK8_0; b++) {
        float d = quant_fp16_to_fp32(q[b].d);
        for (int j = 0; j < QK8_0; j++) {
            int i = b * QK8_0 + j;
            /* d is rounded to fp16, so the error bound is half a step plus that rounding */
            assert_true(fabsf(y[i] - x[i]) <= 0.5f * d + 128.0f * d * ldexpf(1.0f, -11) + 1e-30f);
        }
    }
    assert_int_equal(quant_fp16_to_fp32(q[0].d) == 0.0f, 1);
}

static void test_quantize_q8_k(void **state)
{
    (void)state;
    enum { N = 3 * QK_K };
    float x[N], y[N];
    block_q8_K q[N / QK_K];
    for (int i = 0; i < N; i++)
        x[i] = i < QK_K ? rng_float() : i < 2 * QK_K ? 0.0f : 100.0f * rng_float();
    x[17] = 2.5f; /* positive extreme in block 0 */
    x[2 * QK_K + 5] = -150.0f; /* negative extreme in block 2 */
    quant_from_float_q8_k_ref(x, q, N);
    quant_to_float_q8_k_ref(q, y, N);
    assert_int_equal(q[0].qs[17], -127); /* extreme maps to -127, d < 0 */
    assert_true(q[0].d < 0);
    assert_int_equal(q[2].qs[5], -127);
    assert_true(q[1].d == 0.0f);
    for (int b = 0; b < N / QK_K; b++) {
        for (int s = 0; s < QK_K / 16; s++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) {
                int v = q[b].qs[16 * s + l];
                assert_true(v >= -127 && v <= 127);
                sum += v;
            }
            assert_int_equal(sum, q[b].bsums[s]);
        }
        for (int j = 0; j < QK_K; j++) {
            int i = b * QK_K + j;
            assert_true(fabsf(y[i] - x[i]) <= 0.5001f * fabsf(q[b].d) + 1e-30f);
        }
    }
}

/* ---- dots ---- */

/* Fills one row of n elements of type t with random bytes, then makes every
 * scale field a finite value of moderate size so the row is meaningful. */
static void synth_row(int t, void *dst, int64_t n)
{
    const struct quant_traits *tr = quant_traits(t);
    const size_t size = quant_row_size(t, n);
    uint8_t *p = dst;
    for (size_t i = 0; i < size; i++)
        p[i] = (uint8_t)rng_next();
    if (t == QT_F32) {
        for (int64_t i = 0; i < n; i++)
            ((float *)dst)[i] = rng_float();
        return;
    }
    if (t == QT_F16 || t == QT_BF16) {
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)dst)[i] = t == QT_F16 ? quant_fp32_to_fp16(rng_float()) : quant_fp32_to_bf16(rng_float());
        return;
    }
    /* offsets of the fp16 scale fields (second one: min) */
    size_t off1 = SIZE_MAX, off2 = SIZE_MAX;
    switch (t) {
    case QT_Q4_0: off1 = offsetof(block_q4_0, d); break;
    case QT_Q4_1: off1 = offsetof(block_q4_1, d); off2 = offsetof(block_q4_1, m); break;
    case QT_Q5_0: off1 = offsetof(block_q5_0, d); break;
    case QT_Q5_1: off1 = offsetof(block_q5_1, d); off2 = offsetof(block_q5_1, m); break;
    case QT_Q8_0: off1 = offsetof(block_q8_0, d); break;
    case QT_Q2_K: off1 = offsetof(block_q2_K, d); off2 = offsetof(block_q2_K, dmin); break;
    case QT_Q3_K: off1 = offsetof(block_q3_K, d); break;
    case QT_Q4_K: off1 = offsetof(block_q4_K, d); off2 = offsetof(block_q4_K, dmin); break;
    case QT_Q5_K: off1 = offsetof(block_q5_K, d); off2 = offsetof(block_q5_K, dmin); break;
    case QT_Q6_K: off1 = offsetof(block_q6_K, d); break;
    case QT_IQ4_NL: off1 = offsetof(block_iq4_nl, d); break;
    case QT_IQ4_XS: off1 = offsetof(block_iq4_xs, d); break;
    case QT_IQ3_S: off1 = offsetof(block_iq3_s, d); break;
    case QT_TQ2_0: off1 = offsetof(block_tq2_0, d); break;
    case QT_IQ2_XXS: off1 = offsetof(block_iq2_xxs, d); break;
    case QT_IQ2_XS: off1 = offsetof(block_iq2_xs, d); break;
    case QT_IQ2_S: off1 = offsetof(block_iq2_s, d); break;
    case QT_IQ3_XXS: off1 = offsetof(block_iq3_xxs, d); break;
    case QT_IQ1_S: off1 = offsetof(block_iq1_s, d); break;
    case QT_TQ1_0: off1 = offsetof(block_tq1_0, d); break;
    case QT_IQ1_M: break;
    case QT_MXFP4: break;
    default: fail_msg("synth_row: no recipe for %s", tr->name);
    }
    for (int64_t b = 0; b < n / tr->blck_size; b++) {
        uint8_t *blk = p + (size_t)b * tr->type_size;
        if (t == QT_MXFP4) {
            blk[offsetof(block_mxfp4, e)] = (uint8_t)(118 + rng_next() % 12);
            continue;
        }
        if (t == QT_IQ1_M) {
            /* the fp16 scale is the top nibble of each 16-bit word of scales */
            block_iq1_m *m = (block_iq1_m *)blk;
            const qhalf h = quant_fp32_to_fp16(rng_float() * 0.05f);
            for (int k = 0; k < 4; k++) {
                uint16_t w16;
                memcpy(&w16, m->scales + 2 * k, sizeof(w16));
                w16 = (uint16_t)((w16 & 0x0fff) | (((h >> (4 * k)) & 0xf) << 12));
                memcpy(m->scales + 2 * k, &w16, sizeof(w16));
            }
            assert_int_equal(quant_iq1m_scale(m), h);
            continue;
        }
        qhalf h = quant_fp32_to_fp16(rng_float() * 0.05f);
        memcpy(blk + off1, &h, sizeof(h));
        if (off2 != SIZE_MAX) {
            h = quant_fp32_to_fp16(rng_float() * 0.05f);
            memcpy(blk + off2, &h, sizeof(h));
        }
    }
}

/* checks vec_dot of the currently selected ISA (and vec_dot_ref) on random
 * rows of every format against the float64 dot of the dequantized operands */
static void check_dots(const char *isa, double tol)
{
    enum { N_MAX = 1024, ROWS = 24 };
    /* 416 = 13 blocks of 32: the SIMD kernels' 8-block, 2-block and 1-block
     * tails; 928 = 29 blocks: a 16-block step before all of them */
    static const int64_t lengths[] = { 256, 512, 1024, 416, 928 };
    static uint8_t wbuf[N_MAX * 4], abuf[N_MAX * 4];
    static float x[N_MAX], wf[N_MAX], af[N_MAX];
    for (int fi = 0; fi < N_FORMATS; fi++) {
        const int t = test_formats[fi];
        const struct quant_traits *tr = quant_traits(t);
        const struct quant_traits *at = quant_traits(tr->vec_dot_type);
        assert_non_null(tr->vec_dot);
        assert_non_null(tr->vec_dot_ref);
        assert_non_null(at->from_float);
        assert_non_null(at->to_float);
        for (size_t li = 0; li < sizeof(lengths) / sizeof(lengths[0]); li++) {
            const int64_t n = lengths[li];
            if (n % tr->blck_size != 0)
                continue;
            for (int r = 0; r < ROWS; r++) {
                synth_row(t, wbuf, n);
                /* activations: mostly N(0,1)-ish, one row with outliers, one
                 * with an all-zero stretch (zero Q8 blocks) */
                for (int64_t i = 0; i < n; i++)
                    x[i] = rng_float() + rng_float();
                if (r == 1)
                    for (int64_t i = 0; i < n; i += 37)
                        x[i] *= 50.0f;
                if (r == 2)
                    for (int i = 0; i < QK_K; i++)
                        x[i] = 0.0f;
                at->from_float(x, abuf, n);
                tr->to_float(wbuf, wf, n);
                at->to_float(abuf, af, n);
                double e = 0, l1 = 0;
                for (int64_t i = 0; i < n; i++) {
                    double p = (double)wf[i] * (double)af[i];
                    e += p;
                    l1 += fabs(p);
                }
                float s_ref = NAN, s = NAN;
                tr->vec_dot_ref(n, &s_ref, wbuf, abuf);
                tr->vec_dot(n, &s, wbuf, abuf);
                if (!(fabs(s_ref - e) <= DOT_TOL_REF * l1 + 1e-30))
                    fail_msg("%s: vec_dot_ref %s n=%lld row %d: %.9g, float64 %.9g (L1 %.6g, tol %.1e)", isa, tr->name,
                             (long long)n, r, s_ref, e, l1, DOT_TOL_REF);
                if (!(fabs(s - e) <= tol * l1 + 1e-30))
                    fail_msg("%s: vec_dot %s n=%lld row %d: %.9g, float64 %.9g (L1 %.6g, tol %.1e)", isa, tr->name,
                             (long long)n, r, s, e, l1, tol);
            }
        }
    }
}

/* an installed from_float_simd must write exactly the reference's bytes */
static void check_simd_quantizers(const char *isa)
{
    enum { N = 4 * QK_K };
    static const int act_types[] = { QT_Q8_0, QT_Q8_K };
    static float x[N];
    static uint8_t want[N * 2], got[N * 2];
    for (size_t k = 0; k < sizeof(act_types) / sizeof(act_types[0]); k++) {
        const struct quant_traits *at = quant_traits(act_types[k]);
        if (!at->from_float_simd)
            continue;
        const size_t size = quant_row_size(act_types[k], N);
        for (int rep = 0; rep < 50; rep++) {
            for (int i = 0; i < N; i++)
                x[i] = (rng_float() + rng_float()) * (rep % 5 == 0 ? 1e3f : 1.0f);
            if (rep == 1)
                for (int i = 0; i < QK_K; i++)
                    x[i] = 0.0f;
            if (rep == 2) /* ties of round-half */
                for (int i = 0; i < N; i++)
                    x[i] = (float)((int)(rng_next() % 255) - 127) * 0.5f;
            at->from_float(x, want, N);
            at->from_float_simd(x, got, N);
            if (memcmp(want, got, size) != 0)
                fail_msg("%s: from_float_simd %s differs from the reference (rep %d)", isa, at->name, rep);
        }
    }
}

/* vec_dot_multi == vec_dot per activation row, bitwise, for odd and even
 * row counts around the kernels' group size, padded activation strides and
 * strided outputs */
static void check_multi(const char *isa)
{
    enum { N_MAX = 1024, MAX_ACT = 19, PAD = 68 };
    static const int n_acts[] = { 1, 2, 3, 4, 5, 7, 8, 9, 16, 19 };
    static const int64_t lengths[] = { 256, 1024, 416, 928 };
    static uint8_t wbuf[N_MAX * 4], abuf[MAX_ACT * (N_MAX * 2 + PAD)];
    static float x[N_MAX], got[MAX_ACT * 3];
    for (int fi = 0; fi < N_FORMATS; fi++) {
        const int t = test_formats[fi];
        const struct quant_traits *tr = quant_traits(t);
        if (!tr->vec_dot_multi)
            continue;
        const struct quant_traits *at = quant_traits(tr->vec_dot_type);
        for (size_t li = 0; li < sizeof(lengths) / sizeof(lengths[0]); li++) {
            const int64_t n = lengths[li];
            if (n % tr->blck_size != 0)
                continue;
            for (size_t ki = 0; ki < sizeof(n_acts) / sizeof(n_acts[0]); ki++) {
                const int n_act = n_acts[ki];
                /* odd counts get padded rows (the stride is not the row size) */
                const size_t a_stride = quant_row_size(tr->vec_dot_type, n) + (n_act % 2 ? PAD : 0);
                const size_t s_stride = n_act % 2 ? 3 : 1;
                synth_row(t, wbuf, n);
                for (int k = 0; k < n_act; k++) {
                    /* every other row small, like the residual pass of 16-bit activations */
                    const float mag = k % 2 ? 1e-3f : 1.0f;
                    for (int64_t i = 0; i < n; i++)
                        x[i] = (rng_float() + rng_float()) * mag;
                    if (k == 3)
                        for (int64_t i = 0; i < n; i += 37)
                            x[i] *= 50.0f;
                    at->from_float(x, abuf + (size_t)k * a_stride, n);
                }
                memset(got, 0xff, sizeof(got)); /* NaN poison */
                tr->vec_dot_multi(n, got, s_stride, wbuf, abuf, a_stride, n_act);
                for (int k = 0; k < n_act; k++) {
                    float want = NAN;
                    tr->vec_dot(n, &want, wbuf, abuf + (size_t)k * a_stride);
                    if (memcmp(&want, &got[(size_t)k * s_stride], sizeof(float)) != 0)
                        fail_msg("%s: vec_dot_multi %s n=%lld n_act=%d row %d: %.9g, vec_dot %.9g", isa, tr->name,
                                 (long long)n, n_act, k, got[(size_t)k * s_stride], want);
                }
                /* outputs between the strided ones stay untouched */
                for (size_t i = 0; i < (size_t)n_act * s_stride; i++)
                    if (i % s_stride != 0 && !isnan(got[i]))
                        fail_msg("%s: vec_dot_multi %s n_act=%d wrote s[%zu] (s_stride %zu)", isa, tr->name, n_act,
                                 i, s_stride);
            }
        }
    }
}

static void run_isa(const char *isa, double tol)
{
    int rc = quant_select_isa(isa);
    if (rc == -ENOTSUP) {
        print_message("skipped: this CPU lacks the %s instruction set (quant_select_isa: -ENOTSUP)\n", isa);
        skip();
    }
    assert_int_equal(rc, 0);
    assert_string_equal(quant_isa_name(), isa);
    /* the references are never replaced */
    assert_ptr_equal(quant_traits(QT_Q4_K)->vec_dot_ref, quant_dot_q4_k_ref);
    assert_ptr_equal(quant_traits(QT_Q4_K)->to_float, quant_to_float_q4_k_ref);
    assert_ptr_equal(quant_traits(QT_Q8_K)->from_float, quant_from_float_q8_k_ref);
    check_dots(isa, tol);
    check_simd_quantizers(isa);
    check_multi(isa);
    quant_select_isa("ref");
}

static void test_dot_ref(void **state)
{
    (void)state;
    run_isa("ref", DOT_TOL_REF);
    for (int fi = 0; fi < N_FORMATS; fi++)
        assert_ptr_equal(quant_traits(test_formats[fi])->vec_dot, quant_traits(test_formats[fi])->vec_dot_ref);
}

/* the formats of the target models have a multi-row kernel in the ISA */
static void check_multi_present(const char *isa, const int *types, size_t n_types)
{
    if (quant_select_isa(isa) != 0)
        return;
    for (size_t i = 0; i < n_types; i++)
        if (!quant_traits(types[i])->vec_dot_multi)
            fail_msg("%s: %s has no vec_dot_multi", isa, quant_traits(types[i])->name);
    quant_select_isa("ref");
}

/* the formats of the target models' published GGUFs have their own kernel
 * in the ISA (not the reference): the IQ 1-3 bit family, MXFP4, the
 * 32-element formats, TQ1_0, TQ2_0 */
static const int own_kernel_types[] = {
    QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_IQ4_NL, QT_MXFP4, QT_IQ2_XXS, QT_IQ2_XS, QT_IQ2_S,
    QT_IQ3_XXS, QT_IQ3_S, QT_IQ1_S, QT_IQ1_M, QT_TQ1_0, QT_TQ2_0,
};

static void check_own_kernels(const char *isa)
{
    if (quant_select_isa(isa) != 0)
        return;
    for (size_t i = 0; i < sizeof(own_kernel_types) / sizeof(own_kernel_types[0]); i++) {
        const struct quant_traits *tr = quant_traits(own_kernel_types[i]);
        if (tr->vec_dot == tr->vec_dot_ref)
            fail_msg("%s: %s has no kernel of its own (uses the reference)", isa, tr->name);
    }
    quant_select_isa("ref");
}

static void test_dot_avx2(void **state)
{
    (void)state;
    run_isa("avx2", DOT_TOL_SIMD);
    static const int types[] = { QT_Q8_0, QT_Q4_K, QT_Q6_K, QT_IQ2_XXS, QT_IQ2_XS, QT_IQ2_S,
                                 QT_IQ3_XXS, QT_IQ3_S, QT_IQ1_S, QT_IQ1_M, QT_TQ1_0, QT_TQ2_0 };
    check_multi_present("avx2", types, sizeof(types) / sizeof(types[0]));
    check_own_kernels("avx2");
}

static void test_dot_avx512(void **state)
{
    (void)state;
    run_isa("avx512", DOT_TOL_SIMD);
    static const int types[] = { QT_Q8_0, QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_IQ4_XS,
                                 QT_Q4_0, QT_Q5_0, QT_IQ4_NL, QT_MXFP4, QT_IQ2_XXS, QT_IQ2_XS, QT_IQ2_S,
                                 QT_IQ3_XXS, QT_IQ3_S, QT_IQ1_S, QT_IQ1_M, QT_TQ1_0, QT_TQ2_0 };
    check_multi_present("avx512", types, sizeof(types) / sizeof(types[0]));
    check_own_kernels("avx512");
}

/* fvec (the attention loops): the AVX-512 dot and axpy against the portable
 * loops, every length from 0 to 300 (tails of the 16- and 32-wide steps) */
static void test_fvec(void **state)
{
    (void)state;
    if (quant_select_isa("avx512") != 0) {
        quant_init();
        skip();
    }
    float x[300], y[300], y0[300], y1[300];
    for (int n = 0; n <= 300; n++) {
        for (int i = 0; i < n; i++) {
            x[i] = rng_float();
            y[i] = y0[i] = y1[i] = rng_float();
        }
        fvec_select(false);
        double exact = 0, mag = 0;
        for (int i = 0; i < n; i++)
            exact += (double)x[i] * y[i], mag += fabs((double)x[i] * y[i]);
        const float a = rng_float();
        fvec_axpy(n, y0, a, x);
        fvec_select(true);
        const float d = fvec_dot(n, x, y);
        fvec_axpy(n, y1, a, x);
        if (fabs(d - exact) > 1e-6 * (mag + 1e-30) + 1e-30)
            fail_msg("fvec_dot avx512 n %d: %g, exact %g", n, d, exact);
        for (int i = 0; i < n; i++)
            if (fabsf(y1[i] - y0[i]) > 1e-6f * (fabsf(y0[i]) + fabsf(a * x[i])))
                fail_msg("fvec_axpy avx512 n %d element %d: %g, portable %g", n, i, y1[i], y0[i]);
    }
    quant_init();
}

/* fvec_dot_rows / fvec_axpy_rows (attention over a block of keys/values):
 * each row's dot near exact and the same bits whatever the block size (a
 * query's scores must not depend on how its keys are blocked), and the
 * block axpy bit-identical to one fvec_axpy per row, on both ISAs */
static void test_fvec_rows(void **state)
{
    (void)state;
    enum { N = 200, R = 16 };
    static float x[N], k[R][N], y0[N], y1[N], w[R];
    const float *rows[R];
    for (int isa = 0; isa < 2; isa++) {
        fvec_select(isa == 1 && quant_select_isa("avx512") == 0);
        for (int n = 1; n <= N; n += 37) {
            for (int i = 0; i < n; i++)
                x[i] = rng_float();
            for (int r = 0; r < R; r++) {
                rows[r] = k[r];
                w[r] = rng_float();
                for (int i = 0; i < n; i++)
                    k[r][i] = rng_float();
            }
            float all[R], one[1];
            fvec_dot_rows(n, x, rows, R, all);
            for (int r = 0; r < R; r++) {
                double exact = 0, mag = 0;
                for (int i = 0; i < n; i++)
                    exact += (double)x[i] * k[r][i], mag += fabs((double)x[i] * k[r][i]);
                if (fabs(all[r] - exact) > 1e-6 * mag + 1e-30)
                    fail_msg("fvec_dot_rows n %d row %d: %g, exact %g", n, r, all[r], exact);
                fvec_dot_rows(n, x, rows + r, 1, one);
                if (memcmp(one, all + r, sizeof(float)) != 0)
                    fail_msg("fvec_dot_rows n %d row %d: %g alone, %g in a block of 16", n, r, one[0], all[r]);
            }
            for (int i = 0; i < n; i++)
                y0[i] = y1[i] = rng_float();
            for (int r = 0; r < R; r++)
                fvec_axpy(n, y0, w[r], rows[r]);
            fvec_axpy_rows(n, y1, w, rows, R);
            if (memcmp(y0, y1, sizeof(float) * (size_t)n) != 0)
                fail_msg("fvec_axpy_rows n %d differs from %d fvec_axpy calls", n, R);
            /* five heads (one group of four, one single) over the same rows */
            enum { G = 5 };
            static float yh0[G][N], yh1[G][N], wh[G][R];
            for (int g = 0; g < G; g++)
                for (int i = 0; i < n; i++) {
                    yh0[g][i] = yh1[g][i] = rng_float();
                    if (i < R)
                        wh[g][i] = rng_float();
                }
            for (int g = 0; g < G; g++)
                fvec_axpy_rows(n, yh0[g], wh[g], rows, R);
            fvec_axpy_rows_heads(n, G, yh1[0], N, wh[0], R, rows, R);
            if (memcmp(yh0, yh1, sizeof(yh0)) != 0)
                fail_msg("fvec_axpy_rows_heads n %d differs from fvec_axpy_rows per head", n);
            /* softmax pieces: near expf, and an element's value independent of n */
            static float sx[N], sy[N];
            for (int i = 0; i < n; i++)
                sx[i] = 40.0f * rng_float();
            memcpy(sy, sx, sizeof(float) * (size_t)n);
            float mx = fvec_scale_max(n, sx, 0.5f);
            double sum = fvec_exp_sum(n, sx, mx), exact = 0;
            float last = sy[n - 1]; /* the last element alone: same bits as in the row */
            fvec_scale_max(1, &last, 0.5f);
            fvec_exp_sum(1, &last, mx);
            if (memcmp(&last, &sx[n - 1], sizeof(float)) != 0)
                fail_msg("fvec_exp_sum n %d: the last element alone %g, in the row %g", n, last, sx[n - 1]);
            for (int i = 0; i < n; i++) {
                double e = exp((double)(sy[i] * 0.5f - mx)); /* the float argument */
                exact += e;
                if (fabs(sx[i] - e) > 1e-6 * e + 1e-37)
                    fail_msg("fvec_exp_sum n %d element %d: %g, exact %g", n, i, sx[i], e);
            }
            if (fabs(sum - exact) > 1e-5 * exact)
                fail_msg("fvec_exp_sum n %d: sum %g, exact %g", n, sum, exact);
            fvec_normalize(n, sx, sum);
            for (int i = 0; i < n; i++)
                if (fabs(sx[i] - exp((double)(sy[i] * 0.5f - mx)) / exact) > 1e-5)
                    fail_msg("fvec_normalize n %d element %d", n, i);
        }
    }
    quant_init();
}

/* F16 rows (an F16 KV cache): fvec_to_f16 gives the same bits on both ISAs
 * (vcvtps2ph vs quant_fp32_to_fp16, ties to even, subnormals, overflow);
 * on each ISA the F16 row kernels equal the float ones run on the widened
 * rows bit for bit (the widening is exact, the arithmetic the same), so
 * they inherit their nr-independence, which is checked again here; and the
 * AVX-512 results stay within float rounding of the portable ones */
static void test_fvec_f16(void **state)
{
    (void)state;
    enum { N = 200, R = 16, V = 70, G = 5 };
    static float x[N], kf[V][N], y0[G][N], y1[G][N], y2[G][N], wh[G][V];
    static uint16_t kh[V][N];
    static float dot_isa[2][R], axpy_isa[2][G][N];
    const float *rows[V];
    const uint16_t *rows16[V];
    bool have512 = quant_select_isa("avx512") == 0;
    quant_init();

    /* conversion: special values, then random magnitudes from 2^-30 to 2^17 */
    static const float special[] = { 0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, 65519.99f, 65520.0f, -1e9f,
                                     INFINITY, -INFINITY, 5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f,
                                     6.1035156e-5f, 6.0975552e-5f, 1.00048828125f, 1.00146484375f,
                                     1e-30f, 3.0e-5f };
    static float cv[600];
    static uint16_t h0[600], h1[600];
    int nc = 0;
    for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
        cv[nc++] = special[i];
    while (nc < 600)
        cv[nc++] = ldexpf(rng_float(), (int)(rng_next() % 48) - 30);
    for (int n = 0; n <= 600; n += n < 40 ? 1 : 97) {
        fvec_select(false);
        fvec_to_f16(n, h0, cv);
        for (int i = 0; i < n; i++)
            if (h0[i] != quant_fp32_to_fp16(cv[i]))
                fail_msg("fvec_to_f16 portable n %d element %d: %04x, reference %04x", n, i, h0[i],
                         quant_fp32_to_fp16(cv[i]));
        if (!have512)
            continue;
        fvec_select(true);
        memset(h1, 0xAB, sizeof(h1));
        fvec_to_f16(n, h1, cv);
        for (int i = 0; i < n; i++)
            if (h1[i] != h0[i])
                fail_msg("fvec_to_f16 avx512 n %d element %d (%a): %04x, portable %04x", n, i, cv[i], h1[i], h0[i]);
        if (n < 600 && h1[n] != 0xABAB)
            fail_msg("fvec_to_f16 avx512 n %d wrote past the end", n);
    }

    for (int n = 1; n <= N; n += 37) {
        for (int i = 0; i < n; i++)
            x[i] = rng_float();
        for (int r = 0; r < V; r++) {
            for (int i = 0; i < n; i++) {
                kh[r][i] = quant_fp32_to_fp16(4.0f * rng_float());
                kf[r][i] = quant_fp16_to_fp32(kh[r][i]);
            }
            rows[r] = kf[r];
            rows16[r] = kh[r];
        }
        for (int g = 0; g < G; g++)
            for (int r = 0; r < V; r++)
                wh[g][r] = rng_float();
        for (int g = 0; g < G; g++)
            for (int i = 0; i < n; i++)
                y0[g][i] = rng_float();
        for (int isa = 0; isa < 1 + have512; isa++) {
            fvec_select(isa == 1);
            const char *nm = isa ? "avx512" : "portable";
            /* scores: the float kernel on the widened rows, bit for bit; one row alone the same */
            float want[R], one[1];
            fvec_dot_rows(n, x, rows, R, want);
            fvec_dot_rows_f16(n, x, rows16, R, dot_isa[isa]);
            if (memcmp(want, dot_isa[isa], sizeof(want)) != 0)
                fail_msg("fvec_dot_rows_f16 %s n %d differs from fvec_dot_rows on the widened rows", nm, n);
            for (int r = 0; r < R; r += 5) {
                fvec_dot_rows_f16(n, x, rows16 + r, 1, one);
                if (memcmp(one, dot_isa[isa] + r, sizeof(float)) != 0)
                    fail_msg("fvec_dot_rows_f16 %s n %d row %d: %g alone, %g in a block of 16", nm, n, r, one[0],
                             dot_isa[isa][r]);
            }
            /* values: five heads (one group of four and one single), V rows */
            memcpy(y1, y0, sizeof(y0));
            memcpy(y2, y0, sizeof(y0));
            fvec_axpy_rows_heads(n, G, y1[0], N, wh[0], V, rows, V);
            fvec_axpy_rows_heads_f16(n, G, y2[0], N, wh[0], V, rows16, V);
            if (memcmp(y1, y2, sizeof(y1)) != 0)
                fail_msg("fvec_axpy_rows_heads_f16 %s n %d differs from fvec_axpy_rows_heads on the widened rows",
                         nm, n);
            memcpy(axpy_isa[isa], y2, sizeof(y2));
            /* the same rows in blocks of 23 (and a tail): the same bits */
            memcpy(y1, y0, sizeof(y0));
            for (int r0 = 0; r0 < V; r0 += 23)
                fvec_axpy_rows_heads_f16(n, G, y1[0], N, wh[0] + r0, V, rows16 + r0, V - r0 < 23 ? V - r0 : 23);
            if (memcmp(y1, y2, sizeof(y1)) != 0)
                fail_msg("fvec_axpy_rows_heads_f16 %s n %d: blocks of 23 rows differ from one block of %d", nm, n, V);
        }
        if (!have512)
            continue;
        for (int r = 0; r < R; r++) {
            double mag = 0;
            for (int i = 0; i < n; i++)
                mag += fabs((double)x[i] * kf[r][i]);
            if (fabs(dot_isa[1][r] - dot_isa[0][r]) > 2e-6 * mag + 1e-30)
                fail_msg("fvec_dot_rows_f16 n %d row %d: avx512 %g, portable %g", n, r, dot_isa[1][r],
                         dot_isa[0][r]);
        }
        for (int g = 0; g < G; g++)
            for (int i = 0; i < n; i++) {
                double mag = fabs(y0[g][i]);
                for (int r = 0; r < V; r++)
                    mag += fabs((double)wh[g][r] * kf[r][i]);
                if (fabs(axpy_isa[1][g][i] - axpy_isa[0][g][i]) > 2e-6 * mag)
                    fail_msg("fvec_axpy_rows_heads_f16 n %d head %d element %d: avx512 %g, portable %g", n, g, i,
                             axpy_isa[1][g][i], axpy_isa[0][g][i]);
            }
    }
    if (!have512)
        print_message("fvec_test_f16: no AVX-512 here: the portable kernels only\n");
    quant_init();
}

static void test_traits(void **state)
{
    (void)state;
    assert_int_equal(quant_select_isa("nonsense"), -EINVAL);
    assert_false(quant_type_known(4));
    assert_false(quant_type_known(-1));
    assert_false(quant_type_known(QT_COUNT));
    assert_int_equal(quant_row_size(QT_Q4_K, 512), 2 * 144);
    assert_int_equal(quant_row_size(QT_Q4_K, 500), 0);
    for (int fi = 0; fi < N_FORMATS; fi++) {
        const struct quant_traits *tr = quant_traits(test_formats[fi]);
        int want = tr->blck_size == 32 ? QT_Q8_0 : tr->blck_size == QK_K ? QT_Q8_K : QT_F32;
        assert_int_equal(tr->vec_dot_type, want);
    }
    /* the live table works before quant_init() too: it starts as "ref" */
    assert_non_null(quant_traits(QT_Q8_0)->from_float);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traits),
        cmocka_unit_test(test_fvec),
        cmocka_unit_test(test_fvec_rows),
        cmocka_unit_test(test_fvec_f16),
        cmocka_unit_test(test_fp16_conversions),
        cmocka_unit_test(test_bf16_conversions),
        cmocka_unit_test(test_dequant_fixtures),
        cmocka_unit_test(test_dequant_fixtures_iq),
        cmocka_unit_test(test_tq1_0_layout),
        cmocka_unit_test(test_quantize_q8_0),
        cmocka_unit_test(test_quantize_q8_k),
        cmocka_unit_test(test_dot_ref),
        cmocka_unit_test(test_dot_avx2),
        cmocka_unit_test(test_dot_avx512),
    };
    return cmocka_run_group_tests_name("quant", tests, group_setup, group_teardown);
}
