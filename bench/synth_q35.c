/*
 * synth_q35.c - the qwen35moe (Qwen3.5/3.6-MoE) part of moestream-synth:
 * the tensors of one block as convert_hf_to_gguf.py names and shapes them
 * (three gated delta-net layers, then a gated full-attention layer; routed
 * experts and a shared expert with its gate in every layer), and the
 * architecture's metadata keys.
 */
#include <errno.h>
#include <stdio.h>

#include "gguf.h"
#include "gguf_writer.h"
#include "quant.h"
#include "synth_impl.h"

int synth_q35_layer(struct plan *p, int L, int *n_attn_seen, char *err, size_t errlen)
{
    const struct synth_shape *s = &p->sh;
    int64_t e = s->n_embd, nq = (int64_t)s->n_head * s->head_dim, nkv = (int64_t)s->n_head_kv * s->head_dim;
    int64_t S = s->ssm_d_state, nv = (int64_t)s->ssm_dt_rank * S, conv = 2 * (int64_t)s->ssm_n_group * S + nv;
    int64_t ff = s->n_ff_exp, ne = s->n_expert, fs = s->n_ff_shexp;
    bool attn = (L + 1) % s->full_attn_interval == 0;
    int rc = synth_plan_add(p, TK_ATTN_NORM, L, "attn_norm", 1, e, 1, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_FFN_NORM, L, "post_attention_norm", 1, e, 1, 1, err, errlen);
    if (attn) {
        /* the q projection carries a per-head output gate beside q */
        rc = rc ? rc : synth_plan_add(p, TK_Q, L, "attn_q", 2, e, 2 * nq, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_K, L, "attn_k", 2, e, nkv, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_V, L, "attn_v", 2, e, nkv, 1, err, errlen);
        /* attn_v's use_more_bits() counts the attention layers only */
        int n_attn = s->n_layer / s->full_attn_interval, ia = (*n_attn_seen)++;
        struct stensor *v = &p->t[p->n_tensor - 1];
        if (rc == 0 && p->opt->quant == SYNTH_Q4_K_M) {
            p->data_bytes -= v->size;
            v->type = synth_use_more_bits(ia, n_attn) ? QT_Q6_K : QT_Q4_K;
            v->size = quant_row_size(v->type, v->ne[0]) * (uint64_t)v->ne[1];
            p->data_bytes += v->size;
        }
        rc = rc ? rc : synth_plan_add(p, TK_Q_NORM, L, "attn_q_norm", 1, s->head_dim, 1, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_K_NORM, L, "attn_k_norm", 1, s->head_dim, 1, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_O, L, "attn_output", 2, nq, e, 1, err, errlen);
    } else {
        rc = rc ? rc : synth_plan_add(p, TK_QKV, L, "attn_qkv", 2, e, conv, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_ZGATE, L, "attn_gate", 2, e, nv, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_SSM_CONV, L, "ssm_conv1d", 2, s->ssm_d_conv, conv, 1, err, errlen);
        rc = rc ? rc : synth_plan_add_named(p, TK_SSM_DT, L, "ssm_dt.bias", 1, s->ssm_dt_rank, 1, 1, err, errlen);
        rc = rc ? rc : synth_plan_add_named(p, TK_SSM_A, L, "ssm_a", 1, s->ssm_dt_rank, 1, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_SSM_BETA, L, "ssm_beta", 2, e, s->ssm_dt_rank, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_SSM_ALPHA, L, "ssm_alpha", 2, e, s->ssm_dt_rank, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_SSM_NORM, L, "ssm_norm", 1, S, 1, 1, err, errlen);
        rc = rc ? rc : synth_plan_add(p, TK_SSM_OUT, L, "ssm_out", 2, nv, e, 1, err, errlen);
    }
    rc = rc ? rc : synth_plan_add(p, TK_ROUTER, L, "ffn_gate_inp", 2, e, ne, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_GATE_EXPS, L, "ffn_gate_exps", 3, e, ff, ne, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_UP_EXPS, L, "ffn_up_exps", 3, e, ff, ne, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_DOWN_EXPS, L, "ffn_down_exps", 3, ff, e, ne, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_SH_GATE_INP, L, "ffn_gate_inp_shexp", 1, e, 1, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_SH_GATE, L, "ffn_gate_shexp", 2, e, fs, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_SH_UP, L, "ffn_up_shexp", 2, e, fs, 1, err, errlen);
    rc = rc ? rc : synth_plan_add(p, TK_SH_DOWN, L, "ffn_down_shexp", 2, fs, e, 1, err, errlen);
    return rc;
}

int synth_q35_keys(struct gguf_writer *w, const struct synth_shape *s)
{
    char k[96];
    int rc = 0;
#define KEY(suffix) (snprintf(k, sizeof(k), "qwen35moe.%s", suffix), k)
    /* mrope sections of the rotary pairs: [11, 11, 10] for 32 pairs */
    int32_t third = (s->n_rot / 2 + 2) / 3, sections[4] = { third, third, s->n_rot / 2 - 2 * third, 0 };
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("expert_shared_feed_forward_length"), (uint32_t)s->n_ff_shexp);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)s->n_rot);
    rc = rc ? rc : gguf_writer_set_arr(w, KEY("rope.dimension_sections"), GGUF_VT_INT32, sections, 4);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("full_attention_interval"), (uint32_t)s->full_attn_interval);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("ssm.conv_kernel"), (uint32_t)s->ssm_d_conv);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("ssm.state_size"), (uint32_t)s->ssm_d_state);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("ssm.group_count"), (uint32_t)s->ssm_n_group);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("ssm.time_step_rank"), (uint32_t)s->ssm_dt_rank);
    rc = rc ? rc : gguf_writer_set_u32(w, KEY("ssm.inner_size"), (uint32_t)(s->ssm_dt_rank * s->ssm_d_state));
#undef KEY
    return rc;
}
