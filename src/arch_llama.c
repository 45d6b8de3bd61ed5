/*
 * arch_llama.c - llama-architecture MoE files (Mixtral 8x7B / 8x22B): the
 * plain MoE decoder without QK-norm, with interleaved rotary pairs, and
 * softmax routing over the selected top-k logits (the same as renormalising
 * the top-k of a softmax over all experts). SentencePiece vocabulary with BOS
 * (src/tokenizer_spm.c).
 */
#include <string.h>

#include "arch_decoder.h"

static int llama_read_hparams(const struct gguf_ctx *g, struct model_hparams *hp, char *err, size_t errlen)
{
    hp->rope_base = 10000.0f;
    hp->rms_eps = 1e-6f;
    hp->qk_norm = false;
    hp->rope_neox = false;
    hp->norm_topk = true;
    return arch_read_common(g, "llama", hp, err, errlen);
}

const struct arch_ops arch_llama = {
    .name = "llama",
    .family = "Mixtral",
    .rewindable = true,
    .read_hparams = llama_read_hparams,
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
