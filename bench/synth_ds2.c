/*
 * synth_ds2.c - the deepseek2 layout of the synthetic-model generator
 * (DeepSeek-V3/R1, Kimi-K2): the tensors of a block as llama.cpp loads them
 * after convert_hf_to_gguf.py's MLA split (attn_kv_b into attn_k_b and
 * attn_v_b), their types in each scheme, and the deepseek2.* metadata.
 */
#include <errno.h>
#include <stdio.h>

#include "gguf.h"
#include "gguf_writer.h"
#include "quant.h"
#include "synth_impl.h"

int synth_ds2_layer(struct plan *p, int L, char *err, size_t errlen)
{
    const struct synth_shape *s = &p->sh;
    int64_t e = s->n_embd, dk = (int64_t)s->dk_nope + s->n_rot, r = s->kv_lora_rank;
    int64_t ne = s->n_expert, ff = s->n_ff_exp, sh = (int64_t)s->n_ff_exp * s->n_expert_shared;
    int rc = synth_plan_add(p, TK_ATTN_NORM, L, "attn_norm", 1, e, 1, 1, err, errlen);
    if (s->q_lora_rank > 0) {
        rc = rc ? rc : synth_plan_add(p, TK_Q_A_NORM, L, "attn_q_a_norm", 1, s->q_lora_rank, 1, 1, err, errlen);
    }
    rc = rc ? rc : synth_plan_add(p, TK_KV_A_NORM, L, "attn_kv_a_norm", 1, r, 1, 1, err, errlen);
    if (s->q_lora_rank > 0) {
        rc = rc ? rc : synth_plan_add(p, TK_Q_A, L, "attn_q_a", 2, e, s->q_lora_rank, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_Q_B, L, "attn_q_b", 2, s->q_lora_rank, s->n_head * dk, 1, err, errlen);
    } else {
        rc = rc ? rc : synth_plan_add(p, TK_Q, L, "attn_q", 2, e, s->n_head * dk, 1, err, errlen);
    }
    rc = rc ? rc : synth_plan_add(p, TK_KV_A, L, "attn_kv_a_mqa", 2, e, r + s->n_rot, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_K_B, L, "attn_k_b", 3, s->dk_nope, r, s->n_head, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_V_B, L, "attn_v_b", 3, r, s->dv, s->n_head, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_O, L, "attn_output", 2, (int64_t)s->n_head * s->dv, e, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_FFN_NORM, L, "ffn_norm", 1, e, 1, 1, err, errlen);
    if (L < s->n_dense_lead) {
        rc = rc ? rc : synth_plan_add(p, TK_GATE, L, "ffn_gate", 2, e, s->n_ff, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_UP, L, "ffn_up", 2, e, s->n_ff, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_DOWN, L, "ffn_down", 2, s->n_ff, e, 1, err, errlen);
        return rc;
    }
    rc = rc ? rc : synth_plan_add(p, TK_ROUTER, L, "ffn_gate_inp", 2, e, ne, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_PROBS_B, L, "exp_probs_b.bias", 1, ne, 1, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_GATE_EXPS, L, "ffn_gate_exps", 3, e, ff, ne, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_UP_EXPS, L, "ffn_up_exps", 3, e, ff, ne, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_DOWN_EXPS, L, "ffn_down_exps", 3, ff, e, ne, err, errlen);
    if (sh > 0) {
        rc = rc ? rc : synth_plan_add(p, TK_GATE_SHEXP, L, "ffn_gate_shexp", 2, e, sh, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_UP_SHEXP, L, "ffn_up_shexp", 2, e, sh, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_DOWN_SHEXP, L, "ffn_down_shexp", 2, sh, e, 1, err, errlen);
    }
    return rc;
}

/* Types per kind. q2_k_xl: routed gate/up Q2_K and down Q3_K (most of the
 * bytes), the pinned rest at 4-6 bits; the other schemes their default type
 * with llama.cpp's usual exceptions (output Q6_K, routed down one step up
 * in q2_k). attn_k_b rows (dk_nope = 128) are too short for K-quants: Q8_0
 * (Q4_0 in the q4_0 scheme), and attn_v_b goes with them. */
int synth_ds2_type(const struct synth_shape *sh, enum synth_quant q, enum tkind k, int layer)
{
    (void)sh;
    (void)layer;
    if (q == SYNTH_IQ1_S) {
        if (k == TK_GATE_EXPS || k == TK_UP_EXPS)
            return QT_IQ1_S;
        if (k == TK_DOWN_EXPS)
            return QT_IQ2_XXS;
        q = SYNTH_Q2_K_XL; /* the rest as the 2-bit mix */
    }
    int def = q == SYNTH_Q4_K_M ? QT_Q4_K : q == SYNTH_Q8_0 ? QT_Q8_0 : q == SYNTH_Q2_K ? QT_Q2_K
            : q == SYNTH_Q2_K_XL ? QT_Q4_K : QT_Q4_0;
    switch (k) {
    case TK_OUTPUT_NORM: case TK_ATTN_NORM: case TK_FFN_NORM: case TK_Q_A_NORM: case TK_KV_A_NORM:
    case TK_ROUTER: case TK_PROBS_B: case TK_Q_NORM: case TK_K_NORM:
        return QT_F32;
    case TK_OUTPUT:
        return def == QT_Q8_0 || def == QT_Q4_0 ? def : QT_Q6_K;
    case TK_K_B: case TK_V_B:
        return def == QT_Q4_0 ? QT_Q4_0 : QT_Q8_0;
    case TK_GATE_EXPS: case TK_UP_EXPS:
        return q == SYNTH_Q2_K_XL ? QT_Q2_K : def;
    case TK_DOWN_EXPS:
        return q == SYNTH_Q2_K_XL || q == SYNTH_Q2_K ? QT_Q3_K : def;
    case TK_DOWN: case TK_DOWN_SHEXP:
        return q == SYNTH_Q2_K_XL ? QT_Q6_K : def;
    case TK_O:
        return q == SYNTH_Q2_K ? QT_Q3_K : def;
    default:
        return def;
    }
}

int synth_ds2_keys(struct gguf_writer *w, const struct synth_shape *s)
{
    int rc = 0;
#define U32(key, v) (rc = rc ? rc : gguf_writer_set_u32(w, "deepseek2." key, (uint32_t)(v)))
#define F32(key, v) (rc = rc ? rc : gguf_writer_set_f32(w, "deepseek2." key, (float)(v)))
    U32("attention.key_length", s->kv_lora_rank + s->n_rot);
    U32("attention.value_length", s->kv_lora_rank);
    U32("attention.key_length_mla", s->dk_nope + s->n_rot);
    U32("attention.value_length_mla", s->dv);
    U32("attention.q_lora_rank", s->q_lora_rank);
    U32("attention.kv_lora_rank", s->kv_lora_rank);
    U32("rope.dimension_count", s->n_rot);
    U32("vocab_size", s->n_vocab);
    U32("leading_dense_block_count", s->n_dense_lead);
    U32("expert_shared_count", s->n_expert_shared);
    U32("expert_group_count", s->n_group);
    U32("expert_group_used_count", s->n_group_used);
    U32("expert_gating_func", 2); /* sigmoid */
    F32("expert_weights_scale", s->w_scale);
    rc = rc ? rc : gguf_writer_set_bool(w, "deepseek2.expert_weights_norm", true);
    if (s->yarn_factor > 1.0f) {
        rc = rc ? rc : gguf_writer_set_str(w, "deepseek2.rope.scaling.type", "yarn");
        F32("rope.scaling.factor", s->yarn_factor);
        U32("rope.scaling.original_context_length", s->yarn_orig_ctx);
        F32("rope.scaling.yarn_log_multiplier", 0.1f); /* mscale_all_dim 1.0, times the converter's 0.1 */
    }
#undef U32
#undef F32
    return rc;
}
