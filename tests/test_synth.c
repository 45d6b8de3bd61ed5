/*
 * test_synth.c - the synthetic-model generator (bench/synth.c).
 *
 * Writes the tiny preset in several quant mixes and reads it back with the
 * GGUF reader: metadata, tensor names/shapes/types as llama.cpp's mix would
 * choose them, every dequantized value finite with the intended scale, a valid
 * BPE vocabulary, determinism by seed; and checks the published presets'
 * tensor plans (type counts, sizes) without writing them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch.h"
#include "gguf.h"
#include "quant.h"
#include "synth.h"

struct fixture {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_synth-XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/m.gguf", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static struct synth_options tiny_opts(void)
{
    struct synth_options o = {
        .shape = "tiny", .quant = SYNTH_Q4_K_M, .routing_skew = SYNTH_DEFAULT_SKEW,
        .seed = SYNTH_DEFAULT_SEED,
    };
    return o;
}

static struct gguf_ctx *write_and_open(struct fixture *f, const struct synth_options *o)
{
    char err[512] = "";
    unlink(f->path);
    int rc = synth_write_gguf(o, f->path, NULL, err, sizeof(err));
    if (rc)
        print_error("synth_write_gguf: %s\n", err);
    assert_int_equal(rc, 0);
    struct gguf_ctx *g = NULL;
    rc = gguf_open(&g, f->path, err, sizeof(err));
    if (rc)
        print_error("gguf_open: %s\n", err);
    assert_int_equal(rc, 0);
    return g;
}

static void expect_tensor(struct gguf_ctx *g, const char *name, int type, int64_t ne0, int64_t ne1,
                          int64_t ne2)
{
    const struct gguf_tensor *t = gguf_find_tensor(g, name);
    if (!t)
        print_error("missing tensor %s\n", name);
    assert_non_null(t);
    if (t->type != type)
        print_error("%s: type %s, expected %s\n", name, quant_traits(t->type)->name,
                    quant_traits(type)->name);
    assert_int_equal(t->type, type);
    assert_int_equal(t->ne[0], ne0);
    assert_int_equal(t->ne[1], ne1);
    assert_int_equal(t->ne[2], ne2);
}

/* Dequantizes every tensor: all values finite; quantized matrices have std
 * within 25% of 1/sqrt(ne[0]) and |mean| below 0.1 std; norms in [0.9, 1.1]. */
static void check_values(struct gguf_ctx *g)
{
    char err[256];
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        const struct quant_traits *tr = quant_traits(t->type);
        if (!tr->to_float) {
            print_message("skip value check of %s: no to_float for %s\n", t->name, tr->name);
            continue;
        }
        int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        void *raw = malloc(t->size);
        float *x = malloc((size_t)n * sizeof(float));
        assert_non_null(raw);
        assert_non_null(x);
        assert_int_equal(gguf_read_tensor(g, t, 0, raw, t->size, err, sizeof(err)), 0);
        tr->to_float(raw, x, n);
        double s = 0, s2 = 0;
        for (int64_t j = 0; j < n; j++) {
            if (!isfinite(x[j]))
                print_error("%s[%lld] = %g\n", t->name, (long long)j, (double)x[j]);
            assert_true(isfinite(x[j]));
            s += x[j];
            s2 += (double)x[j] * x[j];
        }
        double mean = s / (double)n, sd = sqrt(s2 / (double)n - mean * mean);
        if (strstr(t->name, "exp_probs_b")) {
            assert_true(fabs(mean) < 0.05 && sd < 0.05); /* selection bias: small offsets */
        } else if (strstr(t->name, "norm")) {
            assert_true(mean > 0.95 && mean < 1.05);
            assert_true(sd < 0.1);
        } else if (strstr(t->name, "ffn_gate_inp")) {
            double want = 2.0 / sqrt((double)t->ne[0]);
            assert_true(sd > 0.5 * want && sd < 2.0 * want);
        } else {
            double want = 1.0 / sqrt((double)t->ne[0]);
            if (fabs(sd / want - 1.0) > 0.25 || fabs(mean) > 0.1 * want)
                print_error("%s (%s): std %g mean %g, wanted std %g\n", t->name, tr->name, sd,
                            mean, want);
            assert_true(fabs(sd / want - 1.0) <= 0.25);
            assert_true(fabs(mean) <= 0.1 * want);
        }
        free(raw);
        free(x);
    }
}

static void test_tiny_q4_k_m(void **state)
{
    struct fixture *f = *state;
    struct synth_options o = tiny_opts();
    struct gguf_ctx *g = write_and_open(f, &o);
    const char *s;
    uint32_t u;
    float v;
    assert_int_equal(gguf_get_str(g, "general.architecture", &s), 0);
    assert_string_equal(s, "qwen3moe");
    assert_int_equal(gguf_get_u32(g, "qwen3moe.block_count", &u), 0);
    assert_int_equal(u, 3);
    assert_int_equal(gguf_get_u32(g, "qwen3moe.expert_count", &u), 0);
    assert_int_equal(u, 16);
    assert_int_equal(gguf_get_u32(g, "qwen3moe.expert_used_count", &u), 0);
    assert_int_equal(u, 4);
    assert_int_equal(gguf_get_u32(g, "qwen3moe.expert_feed_forward_length", &u), 0);
    assert_int_equal(u, 256);
    assert_int_equal(gguf_get_u32(g, "qwen3moe.attention.key_length", &u), 0);
    assert_int_equal(u, 64);
    assert_int_equal(gguf_get_f32(g, "qwen3moe.rope.freq_base", &v), 0);
    assert_true(v == 1e6f);
    assert_int_equal(gguf_get_u32(g, "general.file_type", &u), 0);
    assert_int_equal(u, 15);
    assert_int_equal(gguf_get_str(g, "tokenizer.ggml.pre", &s), 0);
    assert_string_equal(s, "qwen2");

    assert_int_equal(gguf_n_tensors(g), 3 * 12 + 3);
    expect_tensor(g, "token_embd.weight", QT_Q4_K, 256, 512, 1);
    expect_tensor(g, "output.weight", QT_Q6_K, 256, 512, 1);
    expect_tensor(g, "output_norm.weight", QT_F32, 256, 1, 1);
    for (int L = 0; L < 3; L++) {
        char n[64];
        int more = L == 2 ? QT_Q6_K : QT_Q4_K; /* use_more_bits(L, 3) holds for L = 2 only */
#define T(x) (snprintf(n, sizeof(n), "blk.%d.%s.weight", L, x), n)
        expect_tensor(g, T("attn_norm"), QT_F32, 256, 1, 1);
        expect_tensor(g, T("attn_q"), QT_Q4_K, 256, 256, 1);
        expect_tensor(g, T("attn_k"), QT_Q4_K, 256, 128, 1);
        expect_tensor(g, T("attn_v"), more, 256, 128, 1);
        expect_tensor(g, T("attn_q_norm"), QT_F32, 64, 1, 1);
        expect_tensor(g, T("attn_k_norm"), QT_F32, 64, 1, 1);
        expect_tensor(g, T("attn_output"), QT_Q4_K, 256, 256, 1);
        expect_tensor(g, T("ffn_norm"), QT_F32, 256, 1, 1);
        expect_tensor(g, T("ffn_gate_inp"), QT_F32, 256, 16, 1);
        expect_tensor(g, T("ffn_gate_exps"), QT_Q4_K, 256, 256, 16);
        expect_tensor(g, T("ffn_up_exps"), QT_Q4_K, 256, 256, 16);
        expect_tensor(g, T("ffn_down_exps"), more, 256, 256, 16);
#undef T
    }
    check_values(g);
    gguf_close(g);
}

/* Q2_K mix (Q2_K, Q3_K, Q4_K, Q6_K) and, with 8 experts, llama.cpp's
 * 8-expert rules (attn_k/attn_v Q8_0, attn_output Q5_K). */
static void test_tiny_other_mixes(void **state)
{
    struct fixture *f = *state;
    struct synth_options o = tiny_opts();
    o.quant = SYNTH_Q2_K;
    struct gguf_ctx *g = write_and_open(f, &o);
    expect_tensor(g, "token_embd.weight", QT_Q2_K, 256, 512, 1);
    expect_tensor(g, "blk.0.attn_v.weight", QT_Q3_K, 256, 128, 1); /* n_gqa 2 < 4 */
    expect_tensor(g, "blk.0.attn_output.weight", QT_Q3_K, 256, 256, 1);
    expect_tensor(g, "blk.1.ffn_down_exps.weight", QT_Q3_K, 256, 256, 16);
    expect_tensor(g, "blk.1.ffn_up_exps.weight", QT_Q2_K, 256, 256, 16);
    expect_tensor(g, "output.weight", QT_Q6_K, 256, 512, 1);
    check_values(g);
    gguf_close(g);

    o.quant = SYNTH_Q4_K_M;
    o.n_expert = 8;
    o.n_layer = 2;
    g = write_and_open(f, &o);
    assert_int_equal(gguf_n_tensors(g), 2 * 12 + 3);
    expect_tensor(g, "blk.0.attn_k.weight", QT_Q8_0, 256, 128, 1);
    expect_tensor(g, "blk.0.attn_v.weight", QT_Q8_0, 256, 128, 1);
    expect_tensor(g, "blk.0.attn_output.weight", QT_Q5_K, 256, 256, 1);
    expect_tensor(g, "blk.1.ffn_gate_exps.weight", QT_Q4_K, 256, 256, 8);
    check_values(g);
    gguf_close(g);

    o.quant = SYNTH_Q4_0;
    o.n_expert = 0;
    g = write_and_open(f, &o);
    expect_tensor(g, "blk.0.ffn_down_exps.weight", QT_Q4_0, 256, 256, 16);
    expect_tensor(g, "output.weight", QT_Q6_K, 256, 512, 1);
    check_values(g);
    gguf_close(g);

    o.quant = SYNTH_Q8_0;
    g = write_and_open(f, &o);
    expect_tensor(g, "output.weight", QT_Q8_0, 256, 512, 1);
    expect_tensor(g, "blk.1.attn_v.weight", QT_Q8_0, 256, 128, 1);
    check_values(g);
    gguf_close(g);
}

static int find_tok(const struct gguf_str *toks, uint64_t n, const char *s, size_t len)
{
    for (uint64_t i = 0; i < n; i++)
        if (toks[i].len == len && memcmp(toks[i].ptr, s, len) == 0)
            return (int)i;
    return -1;
}

/* Tokens unique; every merge "a b" joins two tokens into a token; specials last. */
static void test_vocab(void **state)
{
    struct fixture *f = *state;
    struct synth_options o = tiny_opts();
    struct gguf_ctx *g = write_and_open(f, &o);
    enum gguf_vtype t;
    uint64_t n, nm;
    const void *d, *dm;
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.tokens", &t, &n, &d), 0);
    assert_int_equal(t, GGUF_VT_STRING);
    assert_int_equal(n, 512);
    const struct gguf_str *tok = d;
    for (uint64_t i = 0; i < n; i++)
        for (uint64_t j = i + 1; j < n; j++)
            assert_false(tok[i].len == tok[j].len && !memcmp(tok[i].ptr, tok[j].ptr, tok[i].len));
    assert_string_equal(tok[509].ptr, "<|endoftext|>");
    assert_string_equal(tok[510].ptr, "<|im_start|>");
    assert_string_equal(tok[511].ptr, "<|im_end|>");
    assert_string_equal(tok[0].ptr, "!");
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.merges", &t, &nm, &dm), 0);
    assert_int_equal(nm, 509 - 256);
    const struct gguf_str *m = dm;
    for (uint64_t i = 0; i < nm; i++) {
        const char *sp = strchr(m[i].ptr, ' ');
        assert_non_null(sp);
        size_t la = (size_t)(sp - m[i].ptr), lb = m[i].len - la - 1;
        char joined[128];
        assert_true(la + lb < sizeof(joined));
        memcpy(joined, m[i].ptr, la);
        memcpy(joined + la, sp + 1, lb);
        assert_true(find_tok(tok, n, m[i].ptr, la) >= 0);
        assert_true(find_tok(tok, n, sp + 1, lb) >= 0);
        assert_true(find_tok(tok, n, joined, la + lb) >= 0);
    }
    uint32_t eos;
    assert_int_equal(gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &eos), 0);
    assert_int_equal(eos, 511);
    gguf_close(g);
}

static void *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    void *p = malloc(*n);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, *n, fp), *n);
    fclose(fp);
    return p;
}

static void test_deterministic(void **state)
{
    struct fixture *f = *state;
    struct synth_options o = tiny_opts();
    char err[256];
    gguf_close(write_and_open(f, &o));
    size_t n1, n2, n3;
    void *a = slurp(f->path, &n1);
    gguf_close(write_and_open(f, &o));
    void *b = slurp(f->path, &n2);
    o.seed = 99;
    gguf_close(write_and_open(f, &o));
    void *c = slurp(f->path, &n3);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    assert_int_equal(n1, n3);
    assert_memory_not_equal(a, c, n1);
    /* an existing output is refused, not overwritten */
    assert_int_equal(synth_write_gguf(&o, f->path, NULL, err, sizeof(err)), -EEXIST);
    assert_non_null(strstr(err, "already exists"));
    free(a);
    free(b);
    free(c);
}

static void test_bad_options(void **state)
{
    (void)state;
    struct synth_options o = tiny_opts();
    char err[256];
    o.shape = "qwen9";
    assert_int_equal(synth_plan(&o, NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "unknown shape 'qwen9'"));
    o = tiny_opts();
    o.n_expert = 2; /* fewer than the 4 used */
    assert_int_equal(synth_plan(&o, NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "--experts 2"));
    o = tiny_opts();
    o.n_layer = 4;
    assert_int_equal(synth_plan(&o, NULL, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "--layers 4"));
}

/* The published presets' plans: llama.cpp's Q4_K_M mix and sizes. */
static void test_real_plans(void **state)
{
    (void)state;
    struct synth_options o = tiny_opts();
    struct synth_stats st;
    char err[256];
    o.shape = "qwen3-30b-a3b";
    assert_int_equal(synth_plan(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(st.n_tensor, 48 * 12 + 3);
    /* use_more_bits(i, 48) holds for 24 layers: ffn_down_exps and attn_v, plus output */
    assert_int_equal(st.type_count[QT_Q6_K], 24 + 24 + 1);
    assert_int_equal(st.type_count[QT_Q4_K], 48 * 5 + 24 * 2 + 1);
    assert_int_equal(st.type_count[QT_F32], 48 * 5 + 1);
    /* Qwen's published Qwen3-30B-A3B-Q4_K_M.gguf is 18.6 GB */
    assert_true(st.data_bytes > 18.0e9 && st.data_bytes < 19.0e9);

    o.shape = "mixtral-8x7b";
    assert_int_equal(synth_plan(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(st.n_tensor, 32 * 10 + 3);
    assert_int_equal(st.type_count[QT_Q8_0], 64);  /* attn_k, attn_v */
    assert_int_equal(st.type_count[QT_Q5_K], 32);  /* attn_output */
    /* current llama.cpp rules (16 of 32 ffn_down_exps Q6_K); TheBloke's
     * Dec-2023 Mixtral-8x7B Q4_K_M, made with older rules, is 26.4 GB */
    assert_true(st.data_bytes > 28.0e9 && st.data_bytes < 29.0e9);

    o.shape = "qwen3-235b-a22b";
    assert_int_equal(synth_plan(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(st.n_tensor, 94 * 12 + 3);
    o.shape = "qwen3-coder-480b-a35b";
    assert_int_equal(synth_plan(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(st.n_tensor, 62 * 12 + 3);

    /* Qwen3.5/3.6-MoE: 3 delta-net layers (19 tensors: 2 norms, qkv, gate,
     * conv, dt, a, beta, alpha, ssm_norm, ssm_out, router, 3 experts, shared
     * gate + 3) then one attention layer (16) */
    o.shape = "qwen3.6-35b-a3b";
    assert_int_equal(synth_plan(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(st.n_tensor, 30 * 19 + 10 * 16 + 3);
    assert_int_equal(st.type_count[QT_F32], 30 * 8 + 10 * 6 + 1);
    assert_int_equal(st.type_count[QT_Q5_K], 30); /* attn_qkv */
    /* use_more_bits(i, 40): 20 layers' ffn_down_exps and ffn_down_shexp;
     * attn_v by attention-layer index, use_more_bits(i, 10): 5; output */
    assert_int_equal(st.type_count[QT_Q6_K], 40 + 5 + 1);
    /* the published Q4_K_M files are about 21 GB */
    assert_true(st.data_bytes > 20.5e9 && st.data_bytes < 22.0e9);
    o.shape = "qwen3.5-35b-a3b";
    assert_int_equal(synth_plan(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(st.n_tensor, 30 * 19 + 10 * 16 + 3);
    o.shape = "qwen3.5-122b-a10b";
    assert_int_equal(synth_plan(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(st.n_tensor, 36 * 19 + 12 * 16 + 3);
    o.shape = "qwen3.5-397b-a17b";
    assert_int_equal(synth_plan(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(st.n_tensor, 45 * 19 + 15 * 16 + 3);
    assert_true(st.data_bytes > 230e9 && st.data_bytes < 250e9);
    /* gpt-oss in the published MXFP4_MOE mix (ggml-org's GGUFs: 20b has 459
     * tensors, 289 F32, 98 Q8_0, 72 MXFP4, 12.1 GB; 120b 59.0 GiB) */
    o.quant = SYNTH_MXFP4_MOE;
    o.shape = "gpt-oss-20b";
    assert_int_equal(synth_plan(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(st.n_tensor, 459);
    assert_int_equal(st.type_count[QT_F32], 289);
    assert_int_equal(st.type_count[QT_Q8_0], 98);
    assert_int_equal(st.type_count[QT_MXFP4], 72);
    assert_true(st.data_bytes > 12.0e9 && st.data_bytes < 12.2e9);
    o.shape = "gpt-oss-120b";
    assert_int_equal(synth_plan(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(st.n_tensor, 36 * 19 + 3);
    assert_int_equal(st.type_count[QT_MXFP4], 108);
    assert_true(st.data_bytes > 63.0e9 && st.data_bytes < 63.7e9);
}

/* tiny-ds2 written at q2_k_xl: the deepseek2 keys and MLA tensors as the
 * runtime binds them, values at their scales. */
static void test_tiny_ds2(void **state)
{
    struct fixture *f = *state;
    struct synth_options o = tiny_opts();
    o.shape = "tiny-ds2";
    o.quant = SYNTH_Q2_K_XL;
    struct gguf_ctx *g = write_and_open(f, &o);
    const char *s;
    uint32_t u;
    assert_int_equal(gguf_get_str(g, "general.architecture", &s), 0);
    assert_string_equal(s, "deepseek2");
    assert_int_equal(gguf_get_str(g, "tokenizer.ggml.pre", &s), 0);
    assert_string_equal(s, "deepseek-v3");
    assert_int_equal(gguf_get_u32(g, "deepseek2.attention.kv_lora_rank", &u), 0);
    assert_int_equal(u, 64);
    assert_int_equal(gguf_get_u32(g, "deepseek2.attention.key_length", &u), 0);
    assert_int_equal(u, 80);
    assert_int_equal(gguf_get_u32(g, "deepseek2.leading_dense_block_count", &u), 0);
    assert_int_equal(u, 1);
    expect_tensor(g, "blk.0.ffn_down.weight", QT_Q6_K, 512, 256, 1);
    expect_tensor(g, "blk.1.attn_q_b.weight", QT_Q4_K, 256, 4 * 48, 1);
    expect_tensor(g, "blk.1.attn_k_b.weight", QT_Q8_0, 32, 64, 4);
    expect_tensor(g, "blk.2.attn_v_b.weight", QT_Q8_0, 64, 64, 4);
    expect_tensor(g, "blk.2.exp_probs_b.bias", QT_F32, 16, 1, 1);
    expect_tensor(g, "blk.2.ffn_gate_exps.weight", QT_Q2_K, 256, 256, 16);
    expect_tensor(g, "blk.2.ffn_down_exps.weight", QT_Q3_K, 256, 256, 16);
    expect_tensor(g, "blk.2.ffn_up_shexp.weight", QT_Q4_K, 256, 256, 1);
    assert_null(gguf_find_tensor(g, "blk.0.ffn_gate_inp.weight"));
    check_values(g);
    gguf_close(g);
}

/* tiny-ds2 at iq1_s: routed gate/up IQ1_S and down IQ2_XXS (random grid
 * blocks scaled to the wanted standard deviation), the rest as q2_k_xl; and
 * the size of the DeepSeek-V3 plan at that mix. */
static void test_tiny_ds2_iq1_s(void **state)
{
    struct fixture *f = *state;
    struct synth_options o = tiny_opts();
    o.shape = "tiny-ds2";
    assert_int_equal(synth_parse_quant("iq1_s", &o.quant), 0);
    struct gguf_ctx *g = write_and_open(f, &o);
    expect_tensor(g, "blk.2.ffn_gate_exps.weight", QT_IQ1_S, 256, 256, 16);
    expect_tensor(g, "blk.2.ffn_up_exps.weight", QT_IQ1_S, 256, 256, 16);
    expect_tensor(g, "blk.2.ffn_down_exps.weight", QT_IQ2_XXS, 256, 256, 16);
    expect_tensor(g, "blk.1.attn_q_b.weight", QT_Q4_K, 256, 4 * 48, 1);
    check_values(g);
    gguf_close(g);
    char err[256];
    struct synth_stats st;
    struct synth_options big = {
        .shape = "deepseek-v3-671b", .quant = SYNTH_IQ1_S, .routing_skew = SYNTH_DEFAULT_SKEW,
        .seed = SYNTH_DEFAULT_SEED,
    };
    assert_int_equal(synth_plan(&big, &st, err, sizeof(err)), 0);
    assert_int_equal(st.type_count[QT_IQ1_S], 58 * 2);
    assert_int_equal(st.type_count[QT_IQ2_XXS], 58);
    print_message("  deepseek-v3-671b at iq1_s: %.1f GB\n", st.data_bytes / 1e9);
    /* unsloth's DeepSeek-R1 UD-IQ1_S is 131 GB (its dynamic mix keeps a few
     * more tensors small); the routed experts alone are about 141 GB here */
    assert_true(st.data_bytes > 130e9 && st.data_bytes < 175e9);
}

/* deepseek2 presets: the tensor table of DeepSeek-V3 and Kimi-K2 (3 and 1
 * dense lead layers; MLA tensors; router, exp_probs_b, routed and shared
 * experts in the others) and the sizes of the Q2_K_XL-like mix. */
static void test_plan_deepseek2(void **state)
{
    (void)state;
    char err[256];
    struct synth_stats st;
    struct synth_options o = {
        .shape = "deepseek-v3-671b", .quant = SYNTH_Q2_K_XL, .routing_skew = SYNTH_DEFAULT_SKEW,
        .seed = SYNTH_DEFAULT_SEED,
    };
    assert_int_equal(synth_plan(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(st.n_tensor, 3 + 3 * 13 + 58 * 18);
    assert_int_equal(st.type_count[QT_Q2_K], 58 * 2);     /* routed gate, up */
    assert_int_equal(st.type_count[QT_Q3_K], 58);         /* routed down */
    assert_int_equal(st.type_count[QT_Q8_0], 61 * 2);     /* attn_k_b, attn_v_b */
    assert_int_equal(st.type_count[QT_F32], 1 + 61 * 4 + 58 * 2);
    /* unsloth's DeepSeek-V3 UD-Q2_K_XL is 212 GB with IQ types; Q2_K 244 GB */
    assert_true(st.data_bytes > 240e9 && st.data_bytes < 255e9);
    o.shape = "kimi-k2";
    assert_int_equal(synth_plan(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(st.n_tensor, 3 + 1 * 13 + 60 * 18);
    /* unsloth's Kimi-K2 UD-Q2_K_XL is 381 GB */
    assert_true(st.data_bytes > 360e9 && st.data_bytes < 390e9);
    /* fewer layers keep one MoE layer after the dense ones */
    o.shape = "deepseek-v3-671b";
    o.n_layer = 3;
    assert_int_equal(synth_plan(&o, &st, err, sizeof(err)), 0);
    assert_int_equal(st.n_tensor, 3 + 2 * 13 + 18);
    assert_int_equal(synth_parse_quant("q2_k_xl", &o.quant), 0);
    assert_int_equal(o.quant, SYNTH_Q2_K_XL);
}

/* The tiny gpt-oss preset: biases, sinks and per-expert biases under their
 * GGUF names, MXFP4 experts, the keys the architecture reads, and a file the
 * runtime accepts (arch_check_gguf binds every tensor). */
static void test_tiny_gptoss(void **state)
{
    struct fixture *f = *state;
    struct synth_options o = tiny_opts();
    o.shape = "tiny-gpt-oss";
    o.quant = SYNTH_MXFP4_MOE;
    struct gguf_ctx *g = write_and_open(f, &o);
    expect_tensor(g, "blk.0.attn_q.weight", QT_Q8_0, 256, 512, 1);
    expect_tensor(g, "blk.0.attn_q.bias", QT_F32, 512, 1, 1);
    expect_tensor(g, "blk.1.attn_sinks.weight", QT_F32, 8, 1, 1);
    expect_tensor(g, "blk.1.post_attention_norm.weight", QT_F32, 256, 1, 1);
    expect_tensor(g, "blk.1.ffn_gate_inp.bias", QT_F32, 8, 1, 1);
    expect_tensor(g, "blk.0.ffn_up_exps.weight", QT_MXFP4, 256, 256, 8);
    expect_tensor(g, "blk.0.ffn_down_exps.bias", QT_F32, 256, 8, 1);
    uint32_t v;
    assert_int_equal(gguf_get_u32(g, "gpt-oss.attention.sliding_window", &v), 0);
    assert_int_equal(v, 32);
    const char *pre;
    assert_int_equal(gguf_get_str(g, "tokenizer.ggml.pre", &pre), 0);
    assert_string_equal(pre, "gpt-4o");
    char err[512] = "";
    int rc = arch_check_gguf(g, f->path, err, sizeof(err));
    if (rc)
        print_error("arch_check_gguf: %s\n", err);
    assert_int_equal(rc, 0);
    gguf_close(g);
}

int main(void)
{
    quant_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tiny_q4_k_m, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tiny_other_mixes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vocab, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deterministic, setup, teardown),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_real_plans),
        cmocka_unit_test(test_plan_deepseek2),
        cmocka_unit_test_setup_teardown(test_tiny_ds2_iq1_s, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tiny_ds2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tiny_gptoss, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
