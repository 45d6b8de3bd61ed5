/*
 * arch.c - the registry and the shared hyper-parameter reader.
 */
#include "arch.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gguf.h"

static const struct arch_ops *const registry[] = { &arch_qwen3moe, &arch_llama, &arch_deepseek2, &arch_qwen35moe,
                                                  &arch_gptoss };

const struct arch_ops *arch_find(const char *name)
{
    for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

const char *arch_names(void)
{
    return "qwen3moe (Qwen3-MoE), llama (Mixtral), deepseek2 (DeepSeek-V3/R1, Kimi-K2), qwen35moe (Qwen3.5/3.6-MoE), "
           "gpt-oss";
}

int arch_key_u32(const struct gguf_ctx *g, const char *arch, const char *key, int *out, bool required, char *err,
                 size_t errlen)
{
    char k[128];
    uint32_t v;
    snprintf(k, sizeof(k), "%s.%s", arch, key);
    int rc = gguf_get_u32(g, k, &v);
    if (rc == -ENOENT && !required)
        return 0;
    if (rc < 0 || v > (1u << 30)) {
        snprintf(err, errlen, "model: manifest key %s is %s (expected an unsigned integer)", k,
                 rc == -ENOENT ? "missing" : "invalid");
        return -EINVAL;
    }
    *out = (int)v;
    return 0;
}

int arch_key_f32(const struct gguf_ctx *g, const char *arch, const char *key, float *out, char *err,
                 size_t errlen)
{
    char k[128];
    snprintf(k, sizeof(k), "%s.%s", arch, key);
    int rc = gguf_get_f32(g, k, out);
    if (rc == -ENOENT)
        return 0; /* keep the default */
    if (rc < 0 || !isfinite(*out)) {
        snprintf(err, errlen, "model: manifest key %s is not a finite float", k);
        return -EINVAL;
    }
    return 0;
}

int arch_read_common(const struct gguf_ctx *g, const char *arch, struct model_hparams *hp, char *err,
                     size_t errlen)
{
    int rc = 0;
    rc |= arch_key_u32(g, arch, "block_count", &hp->n_layer, true, err, errlen);
    rc |= arch_key_u32(g, arch, "embedding_length", &hp->n_embd, true, err, errlen);
    rc |= arch_key_u32(g, arch, "attention.head_count", &hp->n_head, true, err, errlen);
    rc |= arch_key_u32(g, arch, "attention.head_count_kv", &hp->n_head_kv, true, err, errlen);
    rc |= arch_key_u32(g, arch, "expert_count", &hp->n_expert, true, err, errlen);
    rc |= arch_key_u32(g, arch, "expert_used_count", &hp->n_expert_used, true, err, errlen);
    rc |= arch_key_u32(g, arch, "context_length", &hp->n_ctx_train, false, err, errlen);
    if (rc)
        return -EINVAL;
    hp->head_dim = hp->n_head ? hp->n_embd / hp->n_head : 0;
    if (arch_key_u32(g, arch, "attention.key_length", &hp->head_dim, false, err, errlen) < 0)
        return -EINVAL;
    if (arch_key_u32(g, arch, "expert_feed_forward_length", &hp->n_ff_exp, false, err, errlen) < 0)
        return -EINVAL;
    if (hp->n_ff_exp == 0 && arch_key_u32(g, arch, "feed_forward_length", &hp->n_ff_exp, true, err, errlen) < 0)
        return -EINVAL;
    if (arch_key_f32(g, arch, "rope.freq_base", &hp->rope_base, err, errlen) < 0 ||
        arch_key_f32(g, arch, "attention.layer_norm_rms_epsilon", &hp->rms_eps, err, errlen) < 0)
        return -EINVAL;
    if (hp->n_layer <= 0 || hp->n_embd <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 ||
        hp->n_head % hp->n_head_kv != 0 || hp->head_dim <= 0 || hp->head_dim % 2 != 0 || hp->n_expert <= 0 ||
        hp->n_expert_used <= 0 || hp->n_expert_used > hp->n_expert || hp->n_ff_exp <= 0) {
        snprintf(err, errlen,
                 "model: inconsistent hyper-parameters (layers %d, embd %d, heads %d/%d, head_dim %d, experts %d "
                 "used %d)",
                 hp->n_layer, hp->n_embd, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_expert,
                 hp->n_expert_used);
        return -EINVAL;
    }
    enum gguf_vtype vt;
    uint64_t n_tok = 0;
    const void *data;
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", &vt, &n_tok, &data) < 0 || n_tok == 0 || n_tok > INT32_MAX) {
        snprintf(err, errlen, "model: manifest has no tokenizer vocabulary (tokenizer.ggml.tokens)");
        return -EINVAL;
    }
    hp->n_vocab = (int)n_tok;
    return 0;
}
