/*
 * tokenizer.h - text <-> token ids for the vocabularies GGUF models carry.
 *
 * Owns: the vocabulary (token texts, types, scores, BPE merge ranks) copied
 * out of a GGUF's tokenizer.ggml.* metadata, encoding text to ids the way
 * llama.cpp does, and decoding ids back to raw bytes (one piece at a time, or
 * through a streaming detokenizer that only releases complete UTF-8).
 *
 * Supported (tokenizer.ggml.model / .pre):
 *   "gpt2"  byte-level BPE, pre-tokenizers qwen2, qwen35, gpt-2, llama3,
 *           deepseek-llm, deepseek-coder, starcoder and the llama.cpp default.
 *           Splitting uses PCRE2 (UTF + UCP, JIT when available).
 *   "llama" SentencePiece BPE: merges by token score, "<0xXX>" byte fallback,
 *           U+2581 for spaces and a leading space before the first text
 *           fragment (tokenizer.ggml.add_space_prefix, default true).
 * Special tokens (control, user-defined, unknown types) are cut out of the
 * text before pre-tokenization, longest text first. Control and unknown tokens
 * are only recognised when parse_special is set; user-defined ones always are
 * (as in llama.cpp and HF tokenizers).
 *
 * Must not: print, exit, or keep pointers into the gguf_ctx (it may be closed
 * right after tok_init). Called by the runtime (src/), the server and tests.
 * A tokenizer is immutable after tok_init: every function below may be called
 * from several threads at once on the same tokenizer.
 */
#ifndef MOESTREAM_TOKENIZER_H
#define MOESTREAM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gguf_ctx;
struct tokenizer;

/* Token types, values as in GGUF tokenizer.ggml.token_type. */
enum tok_type {
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4,
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6,
};

enum tok_model {
    TOK_MODEL_BPE = 1, /* "gpt2": byte-level BPE */
    TOK_MODEL_SPM = 2, /* "llama": SentencePiece BPE with byte fallback */
};

/* Builds a tokenizer from g's tokenizer.ggml.* keys (g is not referenced
 * afterwards). Returns 0 and *out, -EINVAL for missing/malformed metadata,
 * -ENOTSUP for an unknown model or pre-tokenizer, -ENOMEM; err says which key
 * and what was expected. */
int tok_init(struct tokenizer **out, const struct gguf_ctx *g, char *err, size_t errlen);
void tok_free(struct tokenizer *t);

enum tok_model tok_model(const struct tokenizer *t);
const char *tok_pre_name(const struct tokenizer *t); /* e.g. "qwen2"; "default" for SPM */
int tok_n_vocab(const struct tokenizer *t);

/* Special ids; -1 when the model has none. tok_eot falls back to a token
 * named like an end-of-turn marker (<|im_end|>, <|eot_id|>, <|end|>, ...). */
int32_t tok_bos(const struct tokenizer *t);
int32_t tok_eos(const struct tokenizer *t);
int32_t tok_eot(const struct tokenizer *t);
/* What the model asks for at the start of a prompt (tokenizer.ggml.add_bos_token;
 * default true for SPM, false for BPE). Pass it as tok_encode's add_bos. */
bool tok_wants_bos(const struct tokenizer *t);
/* True for EOS, EOT and other end-of-generation control tokens. */
bool tok_is_eog(const struct tokenizer *t, int32_t id);
/* Token type; 0 for an id out of range. */
enum tok_type tok_get_type(const struct tokenizer *t, int32_t id);
bool tok_is_control(const struct tokenizer *t, int32_t id);

/* Id of the token whose stored text is exactly text (e.g. "<|im_start|>"),
 * or -1. Stored texts are in the vocabulary's own form (byte-level chars for
 * BPE, U+2581 for spaces in SPM). */
int32_t tok_find(const struct tokenizer *t, const char *text);
/* Stored text of id (owned by t, NUL-terminated) and its length; NULL if out
 * of range. */
const char *tok_text(const struct tokenizer *t, int32_t id, size_t *len);

/* Encodes len bytes of text (need not be NUL-terminated nor valid UTF-8).
 * add_bos prepends tok_bos(t). Writes at most max_ids ids and returns how many
 * the text needs (snprintf style: a return > max_ids means ids was too small
 * and holds only the first max_ids). Negative -errno on failure (-EINVAL for
 * a bad argument, -ENOMEM, -EIO for a regex engine error). */
int tok_encode(const struct tokenizer *t, const char *text, size_t len, bool add_bos,
               bool parse_special, int32_t *ids, int max_ids);

/* Raw bytes of one token: byte-level BPE chars mapped back to bytes, SPM
 * U+2581 -> ' ' and <0xXX> -> the byte. Control tokens produce their text when
 * special is set and nothing otherwise; unused tokens produce nothing. Writes
 * at most n bytes (no NUL) and returns the piece length (snprintf style), or
 * -EINVAL for an id out of range. No leading space is stripped. */
int tok_decode_piece(const struct tokenizer *t, int32_t id, char *buf, size_t n, bool special);
/* Longest piece tok_decode_piece can return, in bytes. */
size_t tok_max_piece(const struct tokenizer *t);

/*
 * Streaming detokenizer: feed generated ids one by one, get text that is
 * always complete UTF-8. Bytes of a character split across tokens are held
 * back until it completes; bytes that can never form a valid character are
 * replaced by U+FFFD. Plain struct so the decode loop needs no allocation.
 */
struct tok_stream {
    const struct tokenizer *tok;
    bool special;              /* render control tokens as text */
    unsigned char pend[4];     /* held-back start of a UTF-8 sequence */
    int n_pend;                /* bytes in pend, 0..3 */
};

void tok_stream_init(struct tok_stream *ts, const struct tokenizer *t, bool special);
/* Appends id's piece; writes the newly complete text to out (no NUL) and
 * returns its length. out is also the working buffer (each held or invalid
 * byte may grow to 3): give it 3 * tok_max_piece(t) + 16 bytes. -ENOSPC
 * (nothing consumed) when it is too small, -EINVAL for a bad id. */
int tok_stream_push(struct tok_stream *ts, int32_t id, char *out, size_t n);
/* Emits what is still held back (as U+FFFD per byte) and resets; out needs
 * 16 bytes. Returns the length written. */
int tok_stream_flush(struct tok_stream *ts, char *out, size_t n);

#endif
