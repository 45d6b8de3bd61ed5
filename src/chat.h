/*
 * chat.h - formatting a conversation into a model's prompt with the model's
 * own chat template (Jinja, rendered by jinja.h as HF transformers'
 * apply_chat_template does). Shared by `moestream chat`, `moestream
 * template` and the HTTP server.
 *
 * A conversation is a JSON object with the keys of an OpenAI-style request
 * as HF templates read them: `messages` (role, content, tool_calls,
 * tool_call_id, reasoning_content ...), optionally `tools`,
 * `add_generation_prompt` (default true), `enable_thinking`, `bos_token`,
 * `eos_token`; every other key is passed to the template as a variable too.
 * Tool-call `arguments` given as a JSON string (as the OpenAI API sends them)
 * are parsed into objects first, as HF templates expect.
 *
 * Must not: print or exit. Thread-safety: a chat_tmpl is read-only after
 * init; chat_render may run concurrently on one template.
 */
#ifndef MOESTREAM_CHAT_H
#define MOESTREAM_CHAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct gguf_ctx;
struct chat_tmpl;

/* The ChatML template used when a model has none. */
extern const char chat_chatml_template[];

/* Parses a template. src NULL means ChatML. bos/eos are the texts of the
 * model's BOS/EOS tokens (NULL = ""); now fixes strftime_now's clock
 * ("YYYY-MM-DD HH:MM:SS", NULL = local time). 0 or -errno with err filled
 * (a syntax error names the line). */
int chat_tmpl_init(struct chat_tmpl **out, const char *src, size_t len, const char *bos, const char *eos,
                   const char *now, char *err, size_t errlen);

/* The template of a GGUF (or split manifest): tokenizer.chat_template and
 * the texts of tokenizer.ggml.bos_token_id / eos_token_id. *fallback is set
 * when the file has no template and ChatML is used; now as for
 * chat_tmpl_init. */
int chat_tmpl_from_gguf(struct chat_tmpl **out, const struct gguf_ctx *g, const char *now, bool *fallback,
                        char *err, size_t errlen);

void chat_tmpl_free(struct chat_tmpl *t);

/* BOS/EOS texts the template was given ("" when none). */
const char *chat_tmpl_bos(const struct chat_tmpl *t);
const char *chat_tmpl_eos(const struct chat_tmpl *t);

/* Renders conv (see above) into *out (malloc'd, NUL-terminated, length in
 * *len). Returns 0; -EINVAL with the template's own message in err when the
 * template refuses the conversation (raise_exception) or fails; -E2BIG when
 * a render limit was hit. */
int chat_render(const struct chat_tmpl *t, const json_t *conv, char **out, size_t *len, char *err, size_t errlen);

#endif
