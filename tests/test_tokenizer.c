/*
 * test_tokenizer.c - src/tokenizer.c against llama.cpp's own test vectors:
 * every string of fixtures/vocab/<name>.gguf.inp must give the ids of the
 * matching .gguf.out line (no BOS), the q3moe models' prompt.txt its
 * tokens.i32, and tinymoe's 550 KB val-a-512k.txt all 212,996 ids of its
 * tokens.i32. Also: decoding round-trips the bytes, the streaming
 * detokenizer never emits a partial UTF-8 sequence, special tokens are only
 * parsed on request, the snprintf-style size contract, and the error text for
 * a GGUF without a vocabulary. Suites needing fixtures skip when absent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_writer.h"
#include "tokenizer.h"

#define SEP "\n__ggml_vocab_test__\n"

static const char *fixtures(void)
{
    static char path[1024];
    const char *f = getenv("MOESTREAM_FIXTURES");
    struct stat st;

    snprintf(path, sizeof(path), "%s", f && *f ? f : "../shared/fixtures");
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? path : NULL;
}

/* Whole file into memory (NUL-terminated); NULL if unreadable. */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!fp)
        return NULL;
    if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        if (buf) {
            buf[n] = 0;
            *len = (size_t)n;
        }
    }
    fclose(fp);
    return buf;
}

static struct tokenizer *load(const char *rel, struct gguf_ctx **gout)
{
    char path[1200], err[512] = "";
    struct gguf_ctx *g = NULL;
    struct tokenizer *t = NULL;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", fixtures(), rel);
    rc = gguf_open(&g, path, err, sizeof(err));
    if (rc != 0)
        fail_msg("gguf_open %s: %d %s", path, rc, err);
    rc = tok_init(&t, g, err, sizeof(err));
    if (rc != 0)
        fail_msg("tok_init %s: %d %s", path, rc, err);
    if (gout)
        *gout = g;
    else
        gguf_close(g);
    return t;
}

/* Encodes text (any length) into a malloc'd array; *n gets the count. */
static int32_t *encode(const struct tokenizer *t, const char *s, size_t len, bool bos, bool special, int *n)
{
    int need = tok_encode(t, s, len, bos, special, NULL, 0);
    int32_t *ids;

    assert_true(need >= 0);
    ids = malloc(((size_t)need + 1) * sizeof(int32_t));
    assert_non_null(ids);
    assert_int_equal(tok_encode(t, s, len, bos, special, ids, need), need);
    *n = need;
    return ids;
}

/* Concatenated pieces of ids (special tokens rendered); malloc'd. */
static char *decode(const struct tokenizer *t, const int32_t *ids, int n, size_t *len)
{
    size_t cap = 64, o = 0;
    char *buf = malloc(cap);

    assert_non_null(buf);
    for (int i = 0; i < n; i++) {
        int l = tok_decode_piece(t, ids[i], NULL, 0, true);
        assert_true(l >= 0);
        while (o + (size_t)l + 1 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        assert_int_equal(tok_decode_piece(t, ids[i], buf + o, (size_t)l, true), l);
        o += (size_t)l;
    }
    buf[o] = 0;
    *len = o;
    return buf;
}

static bool valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t need = c < 0x80 ? 1 : c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
        if (!need || i + need > n)
            return false;
        for (size_t k = 1; k < need; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
        if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F) || (c == 0xF0 && s[i + 1] < 0x90) ||
            (c == 0xF4 && s[i + 1] > 0x8F))
            return false;
        i += need;
    }
    return true;
}

/* Streams ids through tok_stream: every chunk must be complete UTF-8; when
 * the whole decoded text is valid UTF-8 the chunks must reproduce it. */
static void check_stream(const struct tokenizer *t, const int32_t *ids, int n)
{
    size_t want_len, cap = 3 * tok_max_piece(t) + 16, o = 0;
    char *want = decode(t, ids, n, &want_len);
    char *chunk = malloc(cap), *got = malloc(3 * want_len + 16);
    struct tok_stream ts;

    assert_non_null(chunk);
    assert_non_null(got);
    tok_stream_init(&ts, t, true);
    for (int i = 0; i < n; i++) {
        int l = tok_stream_push(&ts, ids[i], chunk, cap);
        assert_true(l >= 0);
        assert_true(valid_utf8((unsigned char *)chunk, (size_t)l));
        memcpy(got + o, chunk, (size_t)l);
        o += (size_t)l;
    }
    int l = tok_stream_flush(&ts, chunk, cap);
    assert_true(l >= 0);
    memcpy(got + o, chunk, (size_t)l);
    o += (size_t)l;
    assert_true(valid_utf8((unsigned char *)got, o));
    if (valid_utf8((unsigned char *)want, want_len)) {
        assert_int_equal(o, want_len);
        assert_memory_equal(got, want, want_len);
    }
    free(want);
    free(chunk);
    free(got);
}

/* ------------------------------------------------------------ vocab tests */

static int run_vocab(const char *name)
{
    char rel[256], path[1200];
    size_t inp_len, out_len;
    struct tokenizer *t;
    char *inp, *outs, *p, *q;
    int n_ok = 0, n_all = 0, n_rt_bad = 0;

    snprintf(rel, sizeof(rel), "vocab/ggml-vocab-%s.gguf", name);
    t = load(rel, NULL);
    snprintf(path, sizeof(path), "%s/%s.inp", fixtures(), rel);
    inp = slurp(path, &inp_len);
    snprintf(path, sizeof(path), "%s/%s.out", fixtures(), rel);
    outs = slurp(path, &out_len);
    assert_non_null(inp);
    assert_non_null(outs);

    /* each string is followed by "\n__ggml_vocab_test__\n"; one .out line
     * of space-separated ids per string */
    p = inp;
    q = outs;
    while (p < inp + inp_len) {
        char *end = strstr(p, SEP), *nl;
        int32_t want[4096];
        int n_want = 0, n;
        int32_t *ids;

        if (!end)
            break;
        nl = strchr(q, '\n');
        assert_non_null(nl);
        *nl = 0;
        for (char *s = q, *e; *s; s = e) {
            long v = strtol(s, &e, 10);
            if (e == s)
                break;
            assert_true(n_want < 4096);
            want[n_want++] = (int32_t)v;
        }
        ids = encode(t, p, (size_t)(end - p), false, false, &n);
        n_all++;
        if (n == n_want && memcmp(ids, want, (size_t)n * sizeof(int32_t)) == 0) {
            n_ok++;
        } else {
            print_message("  %s: string %d \"%.*s\" mismatch\n    want:", name, n_all - 1,
                          (int)(end - p > 60 ? 60 : end - p), p);
            for (int i = 0; i < n_want && i < 24; i++)
                print_message(" %d", want[i]);
            print_message("\n    got: ");
            for (int i = 0; i < n && i < 24; i++)
                print_message(" %d", ids[i]);
            print_message("\n");
        }

        /* bytes round-trip (SPM: minus the space prefix) */
        size_t dl;
        char *dec = decode(t, ids, n, &dl);
        const char *d = dec;
        if (tok_model(t) == TOK_MODEL_SPM && dl > 0 && d[0] == ' ') {
            d++;
            dl--;
        }
        if (valid_utf8((unsigned char *)p, (size_t)(end - p)) &&
            (dl != (size_t)(end - p) || memcmp(d, p, dl) != 0))
            n_rt_bad++;
        check_stream(t, ids, n);
        free(dec);
        free(ids);
        p = end + strlen(SEP);
        q = nl + 1;
    }
    print_message("  %-16s %d/%d strings match llama.cpp, %d round-trip failures\n", name, n_ok, n_all, n_rt_bad);
    free(inp);
    free(outs);
    tok_free(t);
    return (n_all > 0 && n_ok == n_all && n_rt_bad == 0) ? 0 : 1;
}

static void test_vocab(void **state)
{
    static const char *const names[] = {"qwen2", "qwen35", "gpt-2", "llama-spm", "phi-3",
                                        "deepseek-llm", "deepseek-coder", "starcoder"};
    int bad = 0;

    (void)state;
    if (!fixtures()) {
        print_message("skipped: fixtures not found (set MOESTREAM_FIXTURES or put ../shared/fixtures)\n");
        skip();
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        bad += run_vocab(names[i]);
    assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------ model files */

/* The reference ids of the text files come from llama.cpp's command-line
 * tools, which by default (--escape) rewrite backslash escapes in a prompt
 * read with -f before tokenizing: \n \r \t \' \" \\ and \xHH become the byte,
 * any other backslash stays. val-a-512k.txt holds Python source with
 * literal "\t" etc., so the same rewrite is applied here before encoding. */
static size_t cli_unescape(char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) {
            s[o++] = s[i];
            continue;
        }
        char c = s[++i];
        switch (c) {
        case 'n': s[o++] = '\n'; break;
        case 'r': s[o++] = '\r'; break;
        case 't': s[o++] = '\t'; break;
        case '\'': case '"': case '\\': s[o++] = c; break;
        case 'x':
            if (i + 2 < n && isxdigit((unsigned char)s[i + 1]) && isxdigit((unsigned char)s[i + 2])) {
                char hex[3] = {s[i + 1], s[i + 2], 0};
                s[o++] = (char)strtol(hex, NULL, 16);
                i += 2;
                break;
            }
            /* fall through */
        default:
            s[o++] = '\\';
            s[o++] = c;
            break;
        }
    }
    return o;
}

static void check_ids_file(const char *model, const char *text_rel, const char *ids_rel)
{
    char path[1200];
    size_t tlen, blen;
    struct tokenizer *t = load(model, NULL);
    char *text, *bin;
    int32_t *ids;
    int n, first_bad = -1;

    snprintf(path, sizeof(path), "%s/%s", fixtures(), text_rel);
    text = slurp(path, &tlen);
    snprintf(path, sizeof(path), "%s/%s", fixtures(), ids_rel);
    bin = slurp(path, &blen);
    assert_non_null(text);
    assert_non_null(bin);
    tlen = cli_unescape(text, tlen);
    ids = encode(t, text, tlen, false, false, &n);
    for (int i = 0; i < n && (size_t)i < blen / 4; i++) {
        int32_t want;
        memcpy(&want, bin + 4 * (size_t)i, 4);
        if (ids[i] != want) {
            first_bad = i;
            print_message("  %s: id %d: want %d got %d\n", ids_rel, i, want, ids[i]);
            break;
        }
    }
    print_message("  %s: %d ids (reference %zu)%s\n", ids_rel, n, blen / 4, first_bad < 0 ? "" : " MISMATCH");
    assert_int_equal(first_bad, -1);
    assert_int_equal((size_t)n, blen / 4);

    size_t dl;
    char *dec = decode(t, ids, n, &dl);
    assert_int_equal(dl, tlen);
    assert_memory_equal(dec, text, tlen);
    check_stream(t, ids, n);
    free(dec);
    free(ids);
    free(text);
    free(bin);
    tok_free(t);
}

static void test_models_prompt(void **state)
{
    static const char *const q[] = {"Q8_0", "Q4_K_M", "Q2_K"};
    (void)state;
    if (!fixtures()) {
        print_message("skipped: fixtures not found (set MOESTREAM_FIXTURES or put ../shared/fixtures)\n");
        skip();
    }
    for (int i = 0; i < 3; i++) {
        char m[128], ids[128];
        snprintf(m, sizeof(m), "models/q3moe-a-%s.gguf", q[i]);
        snprintf(ids, sizeof(ids), "models/q3moe-a-%s.tokens.i32", q[i]);
        check_ids_file(m, "models/prompt.txt", ids);
    }
    /* Qwen3.5/3.6-MoE: the qwen35 pre-tokenizer on the prompt */
    check_ids_file("arch/qwen35moe-Q8_0.gguf", "models/prompt.txt", "arch/qwen35moe-Q8_0.tok.i32");
    /* gpt-oss: o200k byte-level BPE (pre-tokenizer "gpt-4o"), no BOS */
    check_ids_file("arch/gpt-oss-Q8_0.gguf", "models/prompt.txt", "arch/gpt-oss-Q8_0.tok.i32");
}

/* arch/deepseek2: the deepseek-v3 pre-tokenizer with BOS, as llama.cpp. */
static void test_deepseek_v3_prompt(void **state)
{
    (void)state;
    if (!fixtures()) {
        print_message("skipped: fixtures not found (set MOESTREAM_FIXTURES or put ../shared/fixtures)\n");
        skip();
    }
    char path[1200];
    size_t tlen, blen;
    snprintf(path, sizeof(path), "%s/models/prompt.txt", fixtures());
    char *text = slurp(path, &tlen);
    snprintf(path, sizeof(path), "%s/arch/deepseek2-Q8_0.tok.i32", fixtures());
    char *bin = slurp(path, &blen);
    assert_non_null(text);
    assert_non_null(bin);
    struct tokenizer *t = load("arch/deepseek2-Q8_0.gguf", NULL);
    int n, bad = 0;
    int32_t *ids = encode(t, text, tlen, true, false, &n);
    for (int i = 0; i < n && (size_t)i < blen / 4; i++) {
        int32_t want;
        memcpy(&want, bin + 4 * (size_t)i, 4);
        bad += ids[i] != want;
    }
    print_message("  deepseek-v3 pre-tokenizer: %d ids with BOS (reference %zu), %d differ\n", n, blen / 4, bad);
    assert_int_equal((size_t)n, blen / 4);
    assert_int_equal(bad, 0);
    /* digits go in threes and kana runs apart from Latin letters: a piece
     * boundary falls at byte 3 of each string */
    static const char *const split3[] = { "12345", "abc\xe3\x82\xab\xe3\x82\xbf" };
    for (int k = 0; k < 2; k++) {
        int m;
        int32_t *a = encode(t, split3[k], strlen(split3[k]), false, false, &m);
        char buf[64];
        int at = 0;
        bool boundary = false;
        for (int i = 0; i < m; i++) {
            int len = tok_decode_piece(t, a[i], buf, sizeof(buf), false);
            assert_true(len > 0);
            at += len;
            boundary |= at == 3;
        }
        assert_int_equal(at, (int)strlen(split3[k]));
        assert_true(boundary);
        free(a);
    }
    free(ids);
    free(text);
    free(bin);
    tok_free(t);
}

static void test_tinymoe_val(void **state)
{
    (void)state;
    if (!fixtures()) {
        print_message("skipped: fixtures not found (set MOESTREAM_FIXTURES or put ../shared/fixtures)\n");
        skip();
    }
    check_ids_file("tinymoe/tinymoe-Q8_0.gguf", "tinymoe/val-a-512k.txt", "tinymoe/val-a-512k.tokens.i32");
}

/* ------------------------------------------------------------ API contract */

static void test_special_and_sizes(void **state)
{
    struct tokenizer *t;
    const char *chat = "<|im_start|>user\nhi<|im_end|>\n";
    int32_t ids[64], im_start, im_end;
    int n;

    (void)state;
    if (!fixtures()) {
        print_message("skipped: fixtures not found (set MOESTREAM_FIXTURES or put ../shared/fixtures)\n");
        skip();
    }
    t = load("tinymoe/tinymoe-Q8_0.gguf", NULL);
    assert_int_equal(tok_n_vocab(t), 4096);
    assert_int_equal(tok_model(t), TOK_MODEL_BPE);
    assert_string_equal(tok_pre_name(t), "qwen2");
    im_start = tok_find(t, "<|im_start|>");
    im_end = tok_find(t, "<|im_end|>");
    assert_int_equal(im_start, 4094);
    assert_int_equal(im_end, 4095);
    assert_int_equal(tok_find(t, "no such token"), -1);
    assert_int_equal(tok_eos(t), 4093);
    assert_int_equal(tok_eot(t), 4095);
    assert_true(tok_is_eog(t, 4093));
    assert_true(tok_is_eog(t, 4095));
    assert_false(tok_is_eog(t, 4094));
    assert_false(tok_is_eog(t, 10));
    assert_true(tok_is_control(t, 4094));
    assert_false(tok_wants_bos(t));

    /* parse_special: the markers become single tokens */
    n = tok_encode(t, chat, strlen(chat), false, true, ids, 64);
    assert_true(n > 3 && n <= 64);
    assert_int_equal(ids[0], im_start);
    bool saw_end = false;
    for (int i = 0; i < n; i++)
        saw_end |= ids[i] == im_end;
    assert_true(saw_end);
    /* control tokens render only when asked */
    char piece[64];
    assert_int_equal(tok_decode_piece(t, im_start, piece, sizeof(piece), false), 0);
    assert_int_equal(tok_decode_piece(t, im_start, piece, sizeof(piece), true), 12);
    assert_memory_equal(piece, "<|im_start|>", 12);
    assert_int_equal(tok_decode_piece(t, 4096, piece, sizeof(piece), true), -EINVAL);

    /* without parse_special the same text is plain text */
    n = tok_encode(t, chat, strlen(chat), false, false, ids, 64);
    assert_true(n > 3 && n <= 64);
    for (int i = 0; i < n; i++) {
        assert_int_not_equal(ids[i], im_start);
        assert_int_not_equal(ids[i], im_end);
    }

    /* snprintf-style sizes: the full count comes back, only max_ids written */
    int full = n;
    memset(ids, 0x7f, sizeof(ids));
    assert_int_equal(tok_encode(t, chat, strlen(chat), false, false, ids, 2), full);
    assert_int_equal(ids[2], 0x7f7f7f7f);
    assert_int_equal(tok_encode(t, chat, strlen(chat), false, false, NULL, 0), full);
    assert_int_equal(tok_encode(t, "", 0, false, false, ids, 64), 0);
    assert_int_equal(tok_encode(t, "x", 1, false, false, NULL, 4), -EINVAL);
    /* add_bos prepends the BOS id whatever the model default */
    assert_int_equal(tok_encode(t, "x", 1, true, false, ids, 64), 2);
    assert_int_equal(ids[0], tok_bos(t));

    /* invalid UTF-8 is tokenized (as U+FFFD, like llama.cpp), not rejected */
    n = tok_encode(t, "a\xff\xfe b", 5, false, false, ids, 64);
    assert_true(n > 0 && n <= 64);

    /* the stream holds back a split character and needs room */
    struct tok_stream ts;
    char out[256];
    int32_t e_acute[8];
    int ne = tok_encode(t, "\xc3\xa9", 2, false, false, e_acute, 8);
    assert_true(ne >= 1);
    tok_stream_init(&ts, t, false);
    assert_int_equal(tok_stream_push(&ts, e_acute[0], out, 1), -ENOSPC);
    tok_free(t);
}

static void test_spm_special(void **state)
{
    struct tokenizer *t;
    int32_t ids[64];
    int n;

    (void)state;
    if (!fixtures()) {
        print_message("skipped: fixtures not found (set MOESTREAM_FIXTURES or put ../shared/fixtures)\n");
        skip();
    }
    t = load("vocab/ggml-vocab-llama-spm.gguf", NULL);
    assert_int_equal(tok_model(t), TOK_MODEL_SPM);
    assert_true(tok_wants_bos(t));
    assert_int_equal(tok_bos(t), 1);
    assert_int_equal(tok_eos(t), 2);
    /* "<s>" is a control token: literal text unless parse_special */
    n = tok_encode(t, "<s>Hi", 5, true, true, ids, 64);
    assert_int_equal(n, 3); /* BOS, <s>, "▁Hi" */
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 1);
    n = tok_encode(t, "<s>Hi", 5, false, false, ids, 64);
    assert_true(n > 2);
    for (int i = 0; i < n; i++)
        assert_int_not_equal(ids[i], 1);
    /* byte fallback: a character missing from the vocabulary decodes back */
    const char *rare = "\xf0\x9f\xa6\x99"; /* U+1F999 */
    n = tok_encode(t, rare, 4, false, false, ids, 64);
    size_t dl;
    char *dec = decode(t, ids, n, &dl);
    assert_int_equal(dl, 5);
    assert_memory_equal(dec, " \xf0\x9f\xa6\x99", 5);
    free(dec);
    tok_free(t);
}

static void test_reject(void **state)
{
    char path[1200], err[512] = "";
    struct gguf_ctx *g = NULL;
    struct tokenizer *t = NULL;

    (void)state;
    if (!fixtures()) {
        print_message("skipped: fixtures not found (set MOESTREAM_FIXTURES or put ../shared/fixtures)\n");
        skip();
    }
    snprintf(path, sizeof(path), "%s/quant/Q8_0.gguf", fixtures());
    assert_int_equal(gguf_open(&g, path, err, sizeof(err)), 0);
    assert_int_equal(tok_init(&t, g, err, sizeof(err)), -EINVAL);
    assert_null(t);
    assert_non_null(strstr(err, "tokenizer.ggml.model"));
    gguf_close(g);
}

/* ------------------------------------------------------------ synthetic */

/* Writes a vocabulary-only GGUF to a temp file and opens a tokenizer on it:
 * these tests need no fixtures. */
static struct tokenizer *synth_tok(const char *model, const char *pre, const char *const *toks, const int32_t *types,
                                   const float *scores, int n, const char *const *merges, int n_merges)
{
    char path[256], err[512] = "";
    const char *tmp = getenv("TMPDIR");
    struct gguf_writer *w = gguf_writer_init(0);
    struct gguf_ctx *g = NULL;
    struct tokenizer *t = NULL;

    assert_non_null(w);
    snprintf(path, sizeof(path), "%s/test_tokenizer_%d.gguf", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.model", model), 0);
    if (pre)
        assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.pre", pre), 0);
    assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)n), 0);
    assert_int_equal(gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, (uint64_t)n), 0);
    if (scores)
        assert_int_equal(gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_VT_FLOAT32, scores, (uint64_t)n), 0);
    if (merges)
        assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, (uint64_t)n_merges), 0);
    assert_int_equal(gguf_writer_begin(w, path, err, sizeof(err)), 0);
    assert_int_equal(gguf_writer_finish(w, err, sizeof(err)), 0);
    gguf_writer_free(w);
    assert_int_equal(gguf_open(&g, path, err, sizeof(err)), 0);
    int rc = tok_init(&t, g, err, sizeof(err));
    if (rc != 0)
        fail_msg("tok_init: %d %s", rc, err);
    gguf_close(g);
    unlink(path);
    return t;
}

/* The 256 byte tokens of a byte-level BPE vocabulary (GPT-2's alphabet:
 * printable Latin-1 as itself, the other bytes from U+0100 in order) as
 * toks[0..255], spelled in chars, all of type normal. */
static void byte_level_symbols(char chars[256][4], const char **toks, int32_t *types)
{
    int next = 256;
    for (int b = 0; b < 256; b++) {
        int cp = ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) ? b : next++;
        if (cp < 0x80) {
            chars[b][0] = (char)cp;
            chars[b][1] = 0;
        } else {
            chars[b][0] = (char)(0xC0 | (cp >> 6));
            chars[b][1] = (char)(0x80 | (cp & 0x3F));
            chars[b][2] = 0;
        }
        toks[b] = chars[b];
        types[b] = TOK_TYPE_NORMAL;
    }
}

static void expect_ids(const struct tokenizer *t, const char *text, const int32_t *want, int n_want)
{
    int32_t got[64];
    int n = tok_encode(t, text, strlen(text), false, false, got, 64);
    if (n != n_want || memcmp(got, want, (size_t)n * sizeof(int32_t)) != 0) {
        print_message("  \"%s\": got", text);
        for (int i = 0; i < n && i < 64; i++)
            print_message(" %d", got[i]);
        print_message("\n");
        fail_msg("\"%s\": %d ids, want %d", text, n, n_want);
    }
}

/* Byte-level BPE: tokens 0..255 are the byte-level characters of bytes
 * 0..255, so a byte's own token id is the byte. */
static void test_synth_bpe(void **state)
{
    static const char *const extra[] = {"he", "ll", "hell", "hello", "\xc4\xa0w", "or", "\xc4\xa0wor", "ld",
                                        "<|endoftext|>"};
    static const char *const merges[] = {"h e", "l l", "he ll", "hell o", "\xc4\xa0 w", "o r", "\xc4\xa0w or", "l d",
                                         "x y" /* never applies: "xy" is not a token */};
    const char *toks[256 + 9];
    char chars[256][4];
    int32_t types[256 + 9];
    struct tokenizer *t;

    (void)state;
    byte_level_symbols(chars, toks, types);
    for (int i = 0; i < 9; i++) {
        toks[256 + i] = extra[i];
        types[256 + i] = i == 8 ? TOK_TYPE_CONTROL : TOK_TYPE_NORMAL;
    }
    t = synth_tok("gpt2", "qwen2", toks, types, NULL, 256 + 9, merges, 9);
    assert_int_equal(tok_n_vocab(t), 265);
    assert_int_equal(tok_eot(t), 264); /* found by its text */
    assert_true(tok_is_eog(t, 264));

    expect_ids(t, "hello world", (const int32_t[]){259, 262, 263}, 3);
    /* rank order, ties to the left: "l l" before anything else */
    expect_ids(t, "lll", (const int32_t[]){257, 'l'}, 2);
    /* qwen2 splits digits one by one and keeps newlines apart */
    expect_ids(t, "12\n", (const int32_t[]){'1', '2', '\n' /* id of byte 10 (U+010A) */}, 3);
    /* the control token is literal text unless parse_special */
    int32_t ids[32];
    assert_int_equal(tok_encode(t, "<|endoftext|>", 13, false, true, ids, 32), 1);
    assert_int_equal(ids[0], 264);
    assert_true(tok_encode(t, "<|endoftext|>", 13, false, false, ids, 32) > 1);
    /* decoding maps the byte-level characters back */
    char piece[16];
    assert_int_equal(tok_decode_piece(t, 262, piece, sizeof(piece), false), 4);
    assert_memory_equal(piece, " wor", 4);
    assert_int_equal(tok_decode_piece(t, 10, piece, sizeof(piece), false), 1);
    assert_int_equal(piece[0], '\n');
    /* a 4-byte character arrives byte by byte: nothing until it completes */
    struct tok_stream ts;
    char out[256];
    const unsigned char emoji[4] = {0xF0, 0x9F, 0x98, 0x80};
    tok_stream_init(&ts, t, false);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tok_stream_push(&ts, emoji[i], out, sizeof(out)), 0);
    assert_int_equal(tok_stream_push(&ts, emoji[3], out, sizeof(out)), 4);
    assert_memory_equal(out, emoji, 4);
    /* a broken sequence becomes U+FFFD, the next character survives */
    assert_int_equal(tok_stream_push(&ts, 0xE2, out, sizeof(out)), 0);
    assert_int_equal(tok_stream_push(&ts, 'a', out, sizeof(out)), 4);
    assert_memory_equal(out, "\xef\xbf\xbd" "a", 4);
    assert_int_equal(tok_stream_push(&ts, 0xC3, out, sizeof(out)), 0);
    assert_int_equal(tok_stream_flush(&ts, out, sizeof(out)), 3);
    assert_memory_equal(out, "\xef\xbf\xbd", 3);
    tok_free(t);
}

/* o200k ("gpt-4o"): the pieces decide which merges may apply. Byte-level
 * ASCII tokens are their own bytes; the extra tokens are "oW", "45", "n'". */
static void test_synth_o200k(void **state)
{
    static const char *const extra[] = {"oW", "45", "n'", "!/"};
    static const char *const merges[] = {"o W", "4 5", "n '", "! /"};
    const char *toks[256 + 4];
    char chars[256][4];
    int32_t types[256 + 4];

    (void)state;
    byte_level_symbols(chars, toks, types);
    for (int i = 0; i < 4; i++) {
        toks[256 + i] = extra[i];
        types[256 + i] = TOK_TYPE_NORMAL;
    }
    struct tokenizer *t = synth_tok("gpt2", "gpt-4o", toks, types, NULL, 256 + 4, merges, 4);
    assert_string_equal(tok_pre_name(t), "gpt-4o");
    /* a lower-case run ends where an upper-case letter starts: "fo|Wl" */
    expect_ids(t, "foWl", (const int32_t[]){'f', 'o', 'W', 'l'}, 4);
    /* upper-case then lower-case stays one piece: "WooWx" is "Woo|Wx" */
    expect_ids(t, "WooWx", (const int32_t[]){'W', 'o', 'o', 'W', 'x'}, 5);
    /* digits in threes: "123|45" lets "45" merge, "1234" is "123|4" */
    expect_ids(t, "12345", (const int32_t[]){'1', '2', '3', 257}, 4);
    expect_ids(t, "1234", (const int32_t[]){'1', '2', '3', '4'}, 4);
    /* a contraction belongs to its word: "don't" is one piece */
    expect_ids(t, "don't", (const int32_t[]){'d', 'o', 258, 't'}, 4);
    /* punctuation runs keep a trailing '/' */
    expect_ids(t, "a!/", (const int32_t[]){'a', 259}, 2);
    tok_free(t);
}

/* Kimi-K2 ("kimi-k2"): Han runs are pieces of their own. The vocabulary
 * has the byte-level spelling of U+4E2D as one token (merged from its three
 * bytes) and the merges "<U+4E2D> a", "a <U+4E2D>" and "<U+4E2D> <U+4E2D>":
 * only the last may apply, since a Han run never joins a letter. */
static void test_synth_kimi(void **state)
{
    const char *toks[256 + 5];
    char chars[256][4], han[16], ha[24], ah[24], hh[32], m[5][40];
    const char *merges[5];
    int32_t types[256 + 5];

    (void)state;
    byte_level_symbols(chars, toks, types);
    /* U+4E2D is E4 B8 AD in UTF-8 */
    snprintf(han, sizeof(han), "%s%s%s", chars[0xE4], chars[0xB8], chars[0xAD]);
    snprintf(ha, sizeof(ha), "%sa", han);
    snprintf(ah, sizeof(ah), "a%s", han);
    snprintf(hh, sizeof(hh), "%s%s", han, han);
    char e4b8[12];
    snprintf(e4b8, sizeof(e4b8), "%s%s", chars[0xE4], chars[0xB8]);
    const char *extra[5] = {e4b8, han, ha, ah, hh};
    snprintf(m[0], sizeof(m[0]), "%s %s", chars[0xE4], chars[0xB8]);
    snprintf(m[1], sizeof(m[1]), "%s %s", e4b8, chars[0xAD]);
    snprintf(m[2], sizeof(m[2]), "%s a", han);
    snprintf(m[3], sizeof(m[3]), "a %s", han);
    snprintf(m[4], sizeof(m[4]), "%s %s", han, han);
    for (int i = 0; i < 5; i++) {
        toks[256 + i] = extra[i];
        types[256 + i] = TOK_TYPE_NORMAL;
        merges[i] = m[i];
    }
    struct tokenizer *t = synth_tok("gpt2", "kimi-k2", toks, types, NULL, 256 + 5, merges, 5);
    assert_string_equal(tok_pre_name(t), "kimi-k2");
    expect_ids(t, "\xe4\xb8\xad" "a", (const int32_t[]){257, 'a'}, 2);
    expect_ids(t, "a\xe4\xb8\xad", (const int32_t[]){'a', 257}, 2);
    expect_ids(t, "\xe4\xb8\xad\xe4\xb8\xad", (const int32_t[]){260}, 1);
    /* as o200k otherwise: case runs, digits in threes */
    expect_ids(t, "foWl", (const int32_t[]){'f', 'o', 'W', 'l'}, 4);
    tok_free(t);
    /* the same vocabulary with the o200k split joins them */
    t = synth_tok("gpt2", "gpt-4o", toks, types, NULL, 256 + 5, merges, 5);
    expect_ids(t, "\xe4\xb8\xad" "a", (const int32_t[]){258}, 1);
    tok_free(t);
}

/* SentencePiece: highest score merges first, U+2581 for spaces with a
 * leading one, <0xXX> byte fallback for what is not in the vocabulary. */
static void test_synth_spm(void **state)
{
    const char *toks[259 + 6];
    char bytes[256][8];
    int32_t types[259 + 6];
    float scores[259 + 6] = {0};
    static const char *const extra[] = {"\xe2\x96\x81", "a", "b", "\xe2\x96\x81" "a", "ab", "\xe2\x96\x81" "ab"};
    static const float extra_score[] = {-3, -4, -4, -1, -2, -0.5f};
    struct tokenizer *t;

    (void)state;
    toks[0] = "<unk>";
    types[0] = TOK_TYPE_UNKNOWN;
    toks[1] = "<s>";
    types[1] = TOK_TYPE_CONTROL;
    toks[2] = "</s>";
    types[2] = TOK_TYPE_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof(bytes[b]), "<0x%02X>", b);
        toks[3 + b] = bytes[b];
        types[3 + b] = TOK_TYPE_BYTE;
    }
    for (int i = 0; i < 6; i++) {
        toks[259 + i] = extra[i];
        types[259 + i] = TOK_TYPE_NORMAL;
        scores[259 + i] = extra_score[i];
    }
    t = synth_tok("llama", NULL, toks, types, scores, 265, NULL, 0);
    assert_int_equal(tok_model(t), TOK_MODEL_SPM);
    assert_int_equal(tok_bos(t), 1);
    assert_int_equal(tok_eos(t), 2);
    assert_true(tok_wants_bos(t));
    /* "▁ab▁b": ▁a (-1) first, then ▁a+b = ▁ab (-0.5); "b" alone */
    expect_ids(t, "ab b", (const int32_t[]){264, 259, 261}, 3);
    /* é is not a token: its UTF-8 bytes as byte tokens */
    expect_ids(t, "\xc3\xa9", (const int32_t[]){259, 3 + 0xC3, 3 + 0xA9}, 3);
    char piece[8];
    assert_int_equal(tok_decode_piece(t, 3 + 0xC3, piece, sizeof(piece), false), 1);
    assert_int_equal((unsigned char)piece[0], 0xC3);
    assert_int_equal(tok_decode_piece(t, 264, piece, sizeof(piece), false), 3);
    assert_memory_equal(piece, " ab", 3);
    assert_int_equal(tok_decode_piece(t, 1, piece, sizeof(piece), false), 0);
    tok_free(t);
}

static void test_synth_reject(void **state)
{
    static const char *const toks[] = {"a", "b"};
    static const int32_t types[] = {1, 1};
    char path[256], err[512] = "";
    const char *tmp = getenv("TMPDIR");
    struct gguf_writer *w = gguf_writer_init(0);
    struct gguf_ctx *g = NULL;
    struct tokenizer *t = NULL;

    (void)state;
    snprintf(path, sizeof(path), "%s/test_tokenizer_rej_%d.gguf", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"), 0);
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.pre", "no-such-pre"), 0);
    assert_int_equal(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 2), 0);
    assert_int_equal(gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, types, 2), 0);
    assert_int_equal(gguf_writer_begin(w, path, err, sizeof(err)), 0);
    assert_int_equal(gguf_writer_finish(w, err, sizeof(err)), 0);
    gguf_writer_free(w);
    assert_int_equal(gguf_open(&g, path, err, sizeof(err)), 0);
    assert_int_equal(tok_init(&t, g, err, sizeof(err)), -ENOTSUP);
    assert_null(t);
    assert_non_null(strstr(err, "no-such-pre"));
    gguf_close(g);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocab),
        cmocka_unit_test(test_models_prompt),
        cmocka_unit_test(test_tinymoe_val),
        cmocka_unit_test(test_deepseek_v3_prompt),
        cmocka_unit_test(test_special_and_sizes),
        cmocka_unit_test(test_spm_special),
        cmocka_unit_test(test_reject),
        cmocka_unit_test(test_synth_bpe),
        cmocka_unit_test(test_synth_o200k),
        cmocka_unit_test(test_synth_kimi),
        cmocka_unit_test(test_synth_spm),
        cmocka_unit_test(test_synth_reject),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
