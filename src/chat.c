/*
 * chat.c - prompt formatting with a model's chat template: the conversation
 * JSON becomes the template's variables (with HF's defaults), the template
 * is rendered by the Jinja engine. See chat.h.
 */
#include "chat.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "gguf.h"
#include "jinja.h"

struct chat_tmpl {
    struct jinja_tpl *tpl;
    char *bos, *eos;
};

const char chat_chatml_template[] =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' + (message.content if message.content is string else '') "
    "+ '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

int chat_tmpl_init(struct chat_tmpl **out, const char *src, size_t len, const char *bos, const char *eos,
                   const char *now, char *err, size_t errlen)
{
    *out = NULL;
    struct chat_tmpl *t = calloc(1, sizeof(*t));
    if (!t)
        return errmsg_set(err, errlen, -ENOMEM, "out of memory");
    t->bos = strdup(bos ? bos : "");
    t->eos = strdup(eos ? eos : "");
    if (!t->bos || !t->eos) {
        chat_tmpl_free(t);
        return errmsg_set(err, errlen, -ENOMEM, "out of memory");
    }
    struct jinja_opts o;
    jinja_opts_default(&o);
    o.now = now; /* copied by jinja_parse; the string must outlive the template */
    if (!src) {
        src = chat_chatml_template;
        len = strlen(src);
    }
    int rc = jinja_parse(&t->tpl, src, len, &o, err, errlen);
    if (rc) {
        chat_tmpl_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* The text of token id key's value, or NULL. */
static const char *token_text(const struct gguf_ctx *g, const char *key)
{
    const struct gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv)
        return NULL;
    uint64_t id;
    if (kv->val.type == GGUF_VT_INT8 || kv->val.type == GGUF_VT_INT16 || kv->val.type == GGUF_VT_INT32 ||
        kv->val.type == GGUF_VT_INT64) {
        if (kv->val.i64 < 0)
            return NULL;
        id = (uint64_t)kv->val.i64;
    } else if (kv->val.type == GGUF_VT_UINT8 || kv->val.type == GGUF_VT_UINT16 || kv->val.type == GGUF_VT_UINT32 ||
               kv->val.type == GGUF_VT_UINT64) {
        id = kv->val.u64;
    } else {
        return NULL;
    }
    enum gguf_vtype vt;
    uint64_t n;
    const void *data;
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", &vt, &n, &data) != 0 || vt != GGUF_VT_STRING || id >= n)
        return NULL;
    return ((const struct gguf_str *)data)[id].ptr;
}

int chat_tmpl_from_gguf(struct chat_tmpl **out, const struct gguf_ctx *g, const char *now, bool *fallback, char *err,
                        size_t errlen)
{
    const char *src = NULL;
    gguf_get_str(g, "tokenizer.chat_template", &src);
    if (fallback)
        *fallback = src == NULL;
    int rc = chat_tmpl_init(out, src, src ? strlen(src) : 0, token_text(g, "tokenizer.ggml.bos_token_id"),
                            token_text(g, "tokenizer.ggml.eos_token_id"), now, err, errlen);
    if (rc && src) {
        /* say which template failed; keep the parser's line number */
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "%s", err ? err : "");
        errmsg_set(err, errlen, rc, "tokenizer.chat_template: %s", tmp);
    }
    return rc;
}

void chat_tmpl_free(struct chat_tmpl *t)
{
    if (!t)
        return;
    jinja_free(t->tpl);
    free(t->bos);
    free(t->eos);
    free(t);
}

const char *chat_tmpl_bos(const struct chat_tmpl *t) { return t->bos; }
const char *chat_tmpl_eos(const struct chat_tmpl *t) { return t->eos; }

/* tool_calls[].function.arguments given as a JSON string -> object */
static int normalize_tool_args(json_t *messages, char *err, size_t errlen)
{
    size_t i, k;
    json_t *m, *tc;
    json_array_foreach(messages, i, m) {
        json_t *calls = json_object_get(m, "tool_calls");
        if (!json_is_array(calls))
            continue;
        json_array_foreach(calls, k, tc) {
            json_t *fn = json_object_get(tc, "function");
            json_t *args = json_object_get(fn ? fn : tc, "arguments");
            if (!json_is_string(args))
                continue;
            json_error_t je;
            json_t *obj = json_loadb(json_string_value(args), json_string_length(args), JSON_DECODE_ANY, &je);
            if (!obj)
                return errmsg_set(err, errlen, -EINVAL,
                                  "messages[%zu].tool_calls[%zu]: arguments are not valid JSON: %s", i, k, je.text);
            json_object_set_new(fn ? fn : tc, "arguments", obj);
        }
    }
    return 0;
}

int chat_render(const struct chat_tmpl *t, const json_t *conv, char **out, size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    if (!json_is_object(conv))
        return errmsg_set(err, errlen, -EINVAL, "conversation: expected a JSON object");
    json_t *messages = json_object_get(conv, "messages");
    if (!json_is_array(messages))
        return errmsg_set(err, errlen, -EINVAL, "conversation: 'messages' must be an array");
    json_t *vars = json_deep_copy(conv);
    if (!vars)
        return errmsg_set(err, errlen, -ENOMEM, "out of memory");
    int rc = normalize_tool_args(json_object_get(vars, "messages"), err, errlen);
    if (rc)
        goto out;
    if (!json_object_get(vars, "add_generation_prompt"))
        json_object_set_new(vars, "add_generation_prompt", json_true());
    if (!json_object_get(vars, "bos_token"))
        json_object_set_new(vars, "bos_token", json_string(t->bos));
    if (!json_object_get(vars, "eos_token"))
        json_object_set_new(vars, "eos_token", json_string(t->eos));
    rc = jinja_render(t->tpl, vars, out, len, err, errlen);
out:
    json_decref(vars);
    return rc;
}
