/*
 * synth_oss.c - the gpt-oss part of moestream-synth: the tensors of one
 * block as convert_hf_to_gguf.py names and shapes them (attention with
 * q/k/v/o biases and per-head sinks, a biased router, routed experts with
 * per-expert biases), and the architecture's metadata keys (sliding window,
 * YaRN).
 */
#include <errno.h>
#include <stdio.h>

#include "gguf.h"
#include "gguf_writer.h"
#include "synth_impl.h"

int synth_oss_layer(struct plan *p, int L, char *err, size_t errlen)
{
    const struct synth_shape *s = &p->sh;
    int64_t e = s->n_embd, nq = (int64_t)s->n_head * s->head_dim, nkv = (int64_t)s->n_head_kv * s->head_dim;
    int64_t ff = s->n_ff_exp, ne = s->n_expert;
    int rc = synth_plan_add(p, TK_ATTN_NORM, L, "attn_norm", 1, e, 1, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_Q, L, "attn_q", 2, e, nq, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_K, L, "attn_k", 2, e, nkv, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_V, L, "attn_v", 2, e, nkv, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_O, L, "attn_output", 2, nq, e, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_BIAS, L, "attn_q.bias", 1, nq, 1, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_BIAS, L, "attn_k.bias", 1, nkv, 1, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_BIAS, L, "attn_v.bias", 1, nkv, 1, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_BIAS, L, "attn_output.bias", 1, e, 1, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_SINKS, L, "attn_sinks", 1, s->n_head, 1, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_FFN_NORM, L, "post_attention_norm", 1, e, 1, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_ROUTER, L, "ffn_gate_inp", 2, e, ne, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_GATE_EXPS, L, "ffn_gate_exps", 3, e, ff, ne, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_UP_EXPS, L, "ffn_up_exps", 3, e, ff, ne, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_DOWN_EXPS, L, "ffn_down_exps", 3, ff, e, ne, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_BIAS, L, "ffn_gate_inp.bias", 1, ne, 1, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_EXPS_BIAS, L, "ffn_gate_exps.bias", 2, ff, ne, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_EXPS_BIAS, L, "ffn_up_exps.bias", 2, ff, ne, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_EXPS_BIAS, L, "ffn_down_exps.bias", 2, e, ne, 1, err, errlen);
    return rc;
}

int synth_oss_keys(struct gguf_writer *w, const struct synth_shape *s)
{
    int rc = 0;
    rc = rc ? rc : gguf_writer_set_u32(w, "gpt-oss.attention.sliding_window", (uint32_t)s->n_swa);
    rc = rc ? rc : gguf_writer_set_str(w, "gpt-oss.rope.scaling.type", "yarn");
    rc = rc ? rc : gguf_writer_set_f32(w, "gpt-oss.rope.scaling.factor", s->yarn_factor);
    rc = rc ? rc : gguf_writer_set_u32(w, "gpt-oss.rope.scaling.original_context_length", (uint32_t)s->yarn_orig_ctx);
    return rc;
}
