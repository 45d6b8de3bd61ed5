/*
 * chatparse.h - parsing a model's generated text back into an OpenAI-shaped
 * assistant message: reasoning (`<think>...</think>`, gpt-oss's `analysis`
 * channel) into its own field, tool calls into {name, arguments-JSON}, the
 * rest into content.
 *
 * Tool-call formats of the model families moestream runs:
 *   QWEN_XML  Qwen3.5 / Qwen3-Coder  <tool_call><function=N><parameter=P>v</parameter></function></tool_call>
 *   HERMES    Qwen3                  <tool_call>{"name": N, "arguments": {...}}</tool_call>
 *   HARMONY   gpt-oss                <|channel|>commentary to=functions.N ...<|message|>{...}<|call|>
 *   DEEPSEEK  DeepSeek-V3.1          <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>N<｜tool▁sep｜>{...}<｜tool▁call▁end｜>...
 *   KIMI      Kimi-K2                <|tool_calls_section_begin|><|tool_call_begin|>functions.N:0
 *                                    <|tool_call_argument_begin|>{...}<|tool_call_end|>...
 *   MISTRAL   Mistral                [TOOL_CALLS][{"name": N, "arguments": {...}}, ...]
 * A malformed or truncated call comes back as plain content, never as a
 * call and never as an error.
 *
 * Streaming: chatparse_feed takes text as it is generated and hands back
 * only what is final: content and reasoning never include a partial marker
 * (a `<tool_c` that may become `<tool_call>` is held back until it is
 * decided), and the concatenation of the deltas equals the one-shot parse
 * of the whole text, however the text is cut.
 *
 * Must not: print or exit. A parser object is used by one thread.
 */
#ifndef MOESTREAM_CHATPARSE_H
#define MOESTREAM_CHATPARSE_H

#include <stdbool.h>
#include <stddef.h>

enum chatparse_format {
    CHATPARSE_NONE, /* no tool calls; reasoning tags only */
    CHATPARSE_QWEN_XML,
    CHATPARSE_HERMES,
    CHATPARSE_HARMONY,
    CHATPARSE_DEEPSEEK,
    CHATPARSE_KIMI,
    CHATPARSE_MISTRAL,
};

struct chatparse_opts {
    enum chatparse_format format;
    bool think;      /* the template uses <think>...</think> */
    bool think_open; /* the prompt ends inside <think>: output starts as reasoning */
};

/* Format and think flags from a chat template's text and, when known, the
 * rendered prompt (think_open when it ends with "<think>" plus newlines). */
void chatparse_opts_detect(struct chatparse_opts *o, const char *template_src, const char *prompt);
const char *chatparse_format_name(enum chatparse_format f);

struct chatparse_call {
    char *name;
    char *arguments; /* compact JSON object text */
};

struct chatparse_msg {
    char *content;   /* never NULL after a parse */
    char *reasoning; /* never NULL after a parse; "" when none */
    struct chatparse_call *calls;
    int n_calls;
};

/* One-shot parse of a complete generation. 0 or -ENOMEM. */
int chatparse_parse(const struct chatparse_opts *o, const char *text, size_t n, struct chatparse_msg *out);
void chatparse_msg_free(struct chatparse_msg *m);

struct chatparse;
/* What became final with one feed: the new content and reasoning bytes
 * (pointers valid until the next call) and calls [first_call, first_call +
 * n_calls) of chatparse_msg(). */
struct chatparse_delta {
    const char *content;
    size_t content_len;
    const char *reasoning;
    size_t reasoning_len;
    int first_call, n_calls;
};

int chatparse_init(struct chatparse **out, const struct chatparse_opts *o);
int chatparse_feed(struct chatparse *p, const char *s, size_t n, struct chatparse_delta *d);
/* End of generation: anything held back is decided (an unfinished call
 * becomes content). */
int chatparse_finish(struct chatparse *p, struct chatparse_delta *d);
/* The message so far (after finish: the final message). */
const struct chatparse_msg *chatparse_result(const struct chatparse *p);
void chatparse_free(struct chatparse *p);

#endif
