/*
 * arch_qwen3moe.c - Qwen3-MoE (Qwen3-30B-A3B, Qwen3-235B-A22B, Qwen3-Coder):
 * the plain MoE decoder with per-head QK RMSNorm, NEOX rope and softmax
 * routing with the top-k weights renormalised.
 */
#include <string.h>

#include "arch_decoder.h"

static int qwen3moe_read_hparams(const struct gguf_ctx *g, struct model_hparams *hp, char *err, size_t errlen)
{
    hp->rope_base = 10000.0f;
    hp->rms_eps = 1e-6f;
    hp->qk_norm = true;
    hp->rope_neox = true;
    hp->norm_topk = true;
    return arch_read_common(g, "qwen3moe", hp, err, errlen);
}

const struct arch_ops arch_qwen3moe = {
    .name = "qwen3moe",
    .family = "Qwen3-MoE",
    .rewindable = true,
    .read_hparams = qwen3moe_read_hparams,
    .bind = decoder_bind,
    .unbind = decoder_unbind,
    .state_bytes = decoder_state_bytes,
    .state_init = decoder_state_init,
    .state_reset = decoder_state_reset,
    .state_free = decoder_state_free,
    .scratch_bytes = decoder_scratch_bytes,
    .scratch_init = decoder_scratch_init,
    .scratch_free = decoder_scratch_free,
    .forward = decoder_forward,
};
