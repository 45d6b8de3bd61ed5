/*
 * arch_deepseek2.c - DeepSeek-V2/V3/R1 and Kimi-K2 (GGUF architecture
 * "deepseek2").
 *
 * Per layer, for the rows of one step:
 *   xb = rmsnorm(x) * attn_norm
 *   x += mla(xb)                  multi-head latent attention (src/mla.h),
 *                                 YaRN rope, latent cache per sequence
 *   xb = rmsnorm(x) * ffn_norm
 *   layers < leading_dense_block_count:
 *     x += down(silu(gate xb) * up xb)            dense FFN (pinned)
 *   the others:
 *     x += moe(xb)                routed experts (streamed): sigmoid scores,
 *                                 exp_probs_b for selection only, best
 *                                 expert_group_used_count of expert_group_count
 *                                 groups, top-k, renormalised, times
 *                                 expert_weights_scale
 *        + shared(xb)             shared experts, one pinned SwiGLU FFN
 * then logits = W_out (rmsnorm(x) * output_norm).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "blocks.h"
#include "fwd.h"
#include "gguf.h"
#include "mla.h"
#include "moe.h"
#include "quant.h"
#include "rope_yarn.h"
#include "seq.h"

struct ds2_layer {
    struct mtensor attn_norm, wq, wq_a, q_a_norm, wq_b, wkv_a, kv_a_norm, wk_b, wv_b, wkv_b, wo;
    struct mtensor ffn_norm;
    struct mtensor gate, up, down;            /* dense layers: the FFN; MoE layers: the shared experts */
    struct mtensor router, probs_b;
    bool dense;
    struct mla_weights mla;
    struct moe_weights moe;
};

struct ds2 {
    struct mtensor tok_embd, output_norm, output;
    struct ds2_layer *layers;
    struct mla_hparams ahp;
    struct moe_hparams mhp;
};

struct ds2_scratch {
    float *x, *xb, *tmp;   /* [B][n_embd] */
    float *hg, *hu;        /* [B][n_ff] dense / shared FFN hidden */
    struct mla_scratch mla;
    struct moe_scratch moe;
};

static void hparams_split(const struct model_hparams *hp, struct mla_hparams *a, struct moe_hparams *mo)
{
    *a = (struct mla_hparams){ .n_embd = hp->n_embd,
                               .n_head = hp->n_head,
                               .q_lora_rank = hp->q_lora_rank,
                               .kv_lora_rank = hp->kv_lora_rank,
                               .dk_nope = hp->head_dim_k_mla - hp->n_rot,
                               .n_rot = hp->n_rot,
                               .dv = hp->head_dim_v_mla,
                               .rms_eps = hp->rms_eps,
                               .kv_b_whole = hp->mla_kv_b_whole };
    rope_yarn_init(&a->rope, hp->n_rot, hp->rope_base, (enum rope_scaling)hp->rope_scaling, hp->rope_scale_factor,
                   hp->rope_n_ctx_orig, hp->rope_yarn_beta_fast, hp->rope_yarn_beta_slow, hp->rope_yarn_log_mul);
    a->kq_scale = rope_yarn_kq_scale(&a->rope, hp->head_dim_k_mla);
    *mo = (struct moe_hparams){ .n_embd = hp->n_embd, .n_expert = hp->n_expert, .n_expert_used = hp->n_expert_used,
                                .n_ff_exp = hp->n_ff_exp, .norm_topk = hp->norm_topk, .gating = hp->expert_gating,
                                .n_group = hp->n_expert_groups, .n_group_used = hp->n_expert_groups_used,
                                .w_scale = hp->expert_weights_scale };
}

static int n_ff_max(const struct model_hparams *hp)
{
    int shared = hp->n_ff_exp * hp->n_expert_shared;
    return hp->n_ff_dense > shared ? hp->n_ff_dense : shared;
}

/* ---------------------------------------------------------- hparams */

static int ds2_read_hparams(const struct gguf_ctx *g, struct model_hparams *hp, char *err, size_t errlen)
{
    hp->rope_base = 10000.0f;
    hp->rms_eps = 1e-6f;
    hp->qk_norm = false;
    hp->rope_neox = false;
    hp->norm_topk = false;
    hp->expert_gating = MOE_GATING_SOFTMAX;
    hp->n_expert_groups = 1;
    hp->rope_scale_factor = 1.0f;
    hp->rope_yarn_beta_fast = 32.0f;
    hp->rope_yarn_beta_slow = 1.0f;
    int rc = arch_read_common(g, "deepseek2", hp, err, errlen);
    if (rc < 0)
        return rc;
    int gating = 0;
    hp->rope_n_ctx_orig = hp->n_ctx_train;
    if (arch_key_u32(g, "deepseek2", "leading_dense_block_count", &hp->n_layer_dense_lead, false, err, errlen) ||
        arch_key_u32(g, "deepseek2", "expert_shared_count", &hp->n_expert_shared, false, err, errlen) ||
        arch_key_u32(g, "deepseek2", "attention.q_lora_rank", &hp->q_lora_rank, false, err, errlen) ||
        arch_key_u32(g, "deepseek2", "attention.kv_lora_rank", &hp->kv_lora_rank, true, err, errlen) ||
        arch_key_u32(g, "deepseek2", "rope.dimension_count", &hp->n_rot, true, err, errlen) ||
        arch_key_u32(g, "deepseek2", "expert_gating_func", &gating, false, err, errlen) ||
        arch_key_u32(g, "deepseek2", "expert_group_count", &hp->n_expert_groups, false, err, errlen) ||
        arch_key_u32(g, "deepseek2", "expert_group_used_count", &hp->n_expert_groups_used, false, err, errlen) ||
        arch_key_u32(g, "deepseek2", "rope.scaling.original_context_length", &hp->rope_n_ctx_orig, false, err, errlen) ||
        arch_key_f32(g, "deepseek2", "expert_weights_scale", &hp->expert_weights_scale, err, errlen) ||
        arch_key_f32(g, "deepseek2", "rope.scaling.factor", &hp->rope_scale_factor, err, errlen) ||
        arch_key_f32(g, "deepseek2", "rope.scaling.yarn_log_multiplier", &hp->rope_yarn_log_mul, err, errlen) ||
        arch_key_f32(g, "deepseek2", "rope.scaling.yarn_beta_fast", &hp->rope_yarn_beta_fast, err, errlen) ||
        arch_key_f32(g, "deepseek2", "rope.scaling.yarn_beta_slow", &hp->rope_yarn_beta_slow, err, errlen))
        return -EINVAL;
    if (hp->n_layer_dense_lead > 0 && arch_key_u32(g, "deepseek2", "feed_forward_length", &hp->n_ff_dense, true, err, errlen))
        return -EINVAL;
    /* older conversions keep attn_kv_b whole and lack the *_mla sizes */
    if (arch_key_u32(g, "deepseek2", "attention.key_length_mla", &hp->head_dim_k_mla, false, err, errlen) ||
        arch_key_u32(g, "deepseek2", "attention.value_length_mla", &hp->head_dim_v_mla, false, err, errlen))
        return -EINVAL;
    if (hp->head_dim_k_mla == 0 || hp->head_dim_v_mla == 0) {
        /* converted before the MLA split: attn_kv_b whole, per-head sizes in
         * key_length / value_length, as many KV heads as heads */
        int vl = 0;
        if (arch_key_u32(g, "deepseek2", "attention.value_length", &vl, true, err, errlen))
            return -EINVAL;
        hp->mla_kv_b_whole = true;
        hp->head_dim_k_mla = hp->head_dim;
        hp->head_dim_v_mla = vl;
    }
    bool b = false;
    if (gguf_get_bool(g, "deepseek2.expert_weights_norm", &b) == 0)
        hp->norm_topk = b;
    const char *st = NULL;
    hp->rope_scaling = ROPE_SCALING_NONE;
    if (gguf_get_str(g, "deepseek2.rope.scaling.type", &st) == 0) {
        if (strcmp(st, "yarn") == 0)
            hp->rope_scaling = ROPE_SCALING_YARN;
        else if (strcmp(st, "linear") == 0)
            hp->rope_scaling = ROPE_SCALING_LINEAR;
        else if (strcmp(st, "none") != 0) {
            snprintf(err, errlen, "model: deepseek2.rope.scaling.type '%s' is not supported (none, linear, yarn)", st);
            return -ENOTSUP;
        }
    }
    /* llama.cpp: 0 (unset) and 1 are softmax, 2 sigmoid */
    if (gating > 2) {
        snprintf(err, errlen, "model: deepseek2.expert_gating_func %d is not supported (1 softmax, 2 sigmoid)", gating);
        return -ENOTSUP;
    }
    hp->expert_gating = gating == 2 ? MOE_GATING_SIGMOID : MOE_GATING_SOFTMAX;
    if (hp->n_expert_groups <= 0)
        hp->n_expert_groups = 1;
    if (hp->n_expert_groups_used <= 0)
        hp->n_expert_groups_used = hp->n_expert_groups;
    int per = hp->n_expert / hp->n_expert_groups;
    bool heads_ok = hp->mla_kv_b_whole ? hp->n_head_kv == hp->n_head
                                       : hp->n_head_kv == 1 && hp->head_dim == hp->kv_lora_rank + hp->n_rot;
    if (!heads_ok || hp->kv_lora_rank <= 0 || hp->n_rot <= 0 || hp->n_rot % 2 != 0 || hp->head_dim_v_mla <= 0 ||
        hp->head_dim_k_mla <= hp->n_rot ||
        hp->n_layer_dense_lead > hp->n_layer || (hp->n_layer_dense_lead > 0 && hp->n_ff_dense <= 0) ||
        hp->n_expert_groups > MOE_MAX_GROUPS || hp->n_expert % hp->n_expert_groups != 0 ||
        hp->n_expert_groups_used > hp->n_expert_groups || hp->n_expert_groups_used * per < hp->n_expert_used) {
        snprintf(err, errlen,
                 "model: inconsistent deepseek2 hyper-parameters (kv heads %d (expected %s), key_length %d (expected "
                 "kv_lora_rank %d + rope dims %d with the MLA split), key_length_mla %d, dense layers %d of %d, ff %d, "
                 "expert groups %d used %d of %d experts, %d per token)",
                 hp->n_head_kv, hp->mla_kv_b_whole ? "the head count" : "1", hp->head_dim, hp->kv_lora_rank,
                 hp->n_rot, hp->head_dim_k_mla, hp->n_layer_dense_lead,
                 hp->n_layer, hp->n_ff_dense, hp->n_expert_groups, hp->n_expert_groups_used, hp->n_expert,
                 hp->n_expert_used);
        return -EINVAL;
    }
    return 0;
}

/* ---------------------------------------------------------- binding */

static void ds2_unbind(void *layers)
{
    struct ds2 *d = layers;
    if (!d)
        return;
    free(d->layers);
    free(d);
}

/* Norms and biases are read as float arrays: they must be F32. */
static int need_f32(struct arch_binder *bd, const struct mtensor *t, const char *name)
{
    if (t->ne[0] && t->type != QT_F32)
        return arch_bind_fail(bd, "tensor %s has type %s, expected F32", name, quant_traits(t->type)->name);
    return 0;
}

static int ds2_bind(struct arch_binder *bd, void **out)
{
    const struct model_hparams *hp = arch_binder_hparams(bd);
    int dk = hp->head_dim_k_mla, dk_nope = dk - hp->n_rot, dv = hp->head_dim_v_mla, r = hp->kv_lora_rank;
    int64_t n_q = (int64_t)hp->n_head * dk, n_sh = (int64_t)hp->n_ff_exp * hp->n_expert_shared;
    struct ds2 *d = calloc(1, sizeof(*d));
    if (d)
        d->layers = calloc((size_t)hp->n_layer, sizeof(*d->layers));
    if (!d || !d->layers) {
        ds2_unbind(d);
        arch_bind_fail(bd, "out of memory");
        return -ENOMEM;
    }
    hparams_split(hp, &d->ahp, &d->mhp);
    char nm[96];
    int rc;
    if ((rc = arch_bind_tensor(bd, &d->tok_embd, "token_embd.weight", hp->n_embd, hp->n_vocab, true)) ||
        (rc = arch_bind_tensor(bd, &d->output_norm, "output_norm.weight", hp->n_embd, 0, true)) ||
        (rc = need_f32(bd, &d->output_norm, "output_norm.weight")) ||
        (rc = arch_bind_tensor(bd, &d->output, "output.weight", hp->n_embd, hp->n_vocab, false)))
        goto fail;
    if (!d->output.data && !d->output.ne[0])
        d->output = d->tok_embd;
    for (int il = 0; il < hp->n_layer; il++) {
        struct ds2_layer *L = &d->layers[il];
        L->dense = il < hp->n_layer_dense_lead;
#define B(field, suffix, a, b, req)                                                              \
    do {                                                                                         \
        snprintf(nm, sizeof(nm), "blk.%d." suffix, il);                                          \
        if ((rc = arch_bind_tensor(bd, &L->field, nm, a, b, req)))                               \
            goto fail;                                                                           \
    } while (0)
#define F32(field, suffix, a, req)                                                               \
    do {                                                                                         \
        B(field, suffix, a, 0, req);                                                             \
        if ((rc = need_f32(bd, &L->field, nm)))                                                  \
            goto fail;                                                                           \
    } while (0)
        F32(attn_norm, "attn_norm.weight", hp->n_embd, true);
        if (hp->q_lora_rank > 0) {
            B(wq_a, "attn_q_a.weight", hp->n_embd, hp->q_lora_rank, true);
            F32(q_a_norm, "attn_q_a_norm.weight", hp->q_lora_rank, true);
            B(wq_b, "attn_q_b.weight", hp->q_lora_rank, n_q, true);
        } else {
            B(wq, "attn_q.weight", hp->n_embd, n_q, true);
        }
        B(wkv_a, "attn_kv_a_mqa.weight", hp->n_embd, r + hp->n_rot, true);
        F32(kv_a_norm, "attn_kv_a_norm.weight", r, true);
        B(wo, "attn_output.weight", (int64_t)hp->n_head * dv, hp->n_embd, true);
        if (hp->mla_kv_b_whole) {
            B(wkv_b, "attn_kv_b.weight", r, (int64_t)hp->n_head * (dk_nope + dv), true);
        } else {
            B(wk_b, "attn_k_b.weight", dk_nope, r, true);
            B(wv_b, "attn_v_b.weight", r, dv, true);
        }
        if (!hp->mla_kv_b_whole && (L->wk_b.ne[2] != hp->n_head || L->wv_b.ne[2] != hp->n_head)) {
            rc = arch_bind_fail(bd, "tensors blk.%d.attn_k_b/attn_v_b have %lld/%lld heads, expected %d", il,
                                (long long)L->wk_b.ne[2], (long long)L->wv_b.ne[2], hp->n_head);
            goto fail;
        }
        F32(ffn_norm, "ffn_norm.weight", hp->n_embd, true);
        int n_exp = arch_layer_experts(bd, il);
        if (L->dense) {
            B(gate, "ffn_gate.weight", hp->n_embd, hp->n_ff_dense, true);
            B(up, "ffn_up.weight", hp->n_embd, hp->n_ff_dense, true);
            B(down, "ffn_down.weight", hp->n_ff_dense, hp->n_embd, true);
            if (n_exp != 0) {
                rc = arch_bind_fail(bd, "layer %d is a dense layer (leading_dense_block_count %d) but has %d experts",
                                    il, hp->n_layer_dense_lead, n_exp);
                goto fail;
            }
            continue;
        }
        B(router, "ffn_gate_inp.weight", hp->n_embd, hp->n_expert, true);
        F32(probs_b, "exp_probs_b.bias", hp->n_expert, false);
        if (n_sh > 0) {
            B(gate, "ffn_gate_shexp.weight", hp->n_embd, n_sh, true);
            B(up, "ffn_up_shexp.weight", hp->n_embd, n_sh, true);
            B(down, "ffn_down_shexp.weight", n_sh, hp->n_embd, true);
        }
#undef F32
#undef B
        if (n_exp != hp->n_expert) {
            rc = arch_bind_fail(bd, "layer %d has %d routed experts, expected %d", il, n_exp, hp->n_expert);
            goto fail;
        }
        L->moe.router = &L->router;
        L->moe.ffn_norm = &L->ffn_norm;
        L->moe.probs_b = L->probs_b.ne[0] ? &L->probs_b : NULL;
        if ((rc = arch_bind_part(bd, il, &L->moe.gate, "ffn_gate_exps.weight", hp->n_embd, hp->n_ff_exp)) ||
            (rc = arch_bind_part(bd, il, &L->moe.up, "ffn_up_exps.weight", hp->n_embd, hp->n_ff_exp)) ||
            (rc = arch_bind_part(bd, il, &L->moe.down, "ffn_down_exps.weight", hp->n_ff_exp, hp->n_embd)))
            goto fail;
    }
    for (int il = 0; il < hp->n_layer; il++) {
        struct ds2_layer *L = &d->layers[il];
        L->mla = (struct mla_weights){ .wq = &L->wq, .wq_a = &L->wq_a, .q_a_norm = &L->q_a_norm, .wq_b = &L->wq_b,
                                       .wkv_a = &L->wkv_a, .kv_a_norm = &L->kv_a_norm, .wk_b = &L->wk_b,
                                       .wv_b = &L->wv_b, .wkv_b = &L->wkv_b, .wo = &L->wo };
    }
    *out = d;
    return 0;
fail:
    ds2_unbind(d);
    return rc;
}

/* ---------------------------------------------------------- state and scratch */

static uint64_t ds2_state_bytes(const struct model_hparams *hp, int n_ctx)
{
    struct mla_hparams a;
    struct moe_hparams mo;
    hparams_split(hp, &a, &mo);
    return mla_cache_bytes(&a, hp->n_layer, n_ctx);
}

static int ds2_state_init(const struct model *m, int n_ctx, void **state)
{
    const struct model_hparams *hp = model_hparams(m);
    const struct ds2 *d = model_layers(m);
    struct mla_cache *c = calloc(1, sizeof(*c));
    if (!c || mla_cache_init(c, &d->ahp, hp->n_layer, n_ctx) < 0) {
        free(c);
        return -ENOMEM;
    }
    *state = c;
    return 0;
}

static void ds2_state_reset(const struct model *m, void *state)
{
    /* positions past n_past are never read */
    (void)m;
    (void)state;
}

static void ds2_state_free(void *state)
{
    if (!state)
        return;
    mla_cache_free(state);
    free(state);
}

static uint64_t ds2_scratch_bytes(const struct model_hparams *hp, int n_batch, int n_ctx, int n_threads)
{
    struct mla_hparams a;
    struct moe_hparams mo;
    hparams_split(hp, &a, &mo);
    uint64_t B = (uint64_t)n_batch;
    uint64_t logits_rows = B * hp->n_vocab * sizeof(float); /* caller-held, counted here */
    return (3 * B * hp->n_embd + 2 * B * n_ff_max(hp)) * sizeof(float) + blocks_engine_bytes(hp, n_batch) +
           mla_scratch_bytes(&a, n_batch, n_ctx, n_threads) + moe_scratch_bytes(&mo, n_batch) + logits_rows;
}

static void ds2_scratch_free(void *scratch)
{
    struct ds2_scratch *s = scratch;
    if (!s)
        return;
    free(s->x);
    free(s->xb);
    free(s->tmp);
    free(s->hg);
    free(s->hu);
    mla_scratch_free(&s->mla);
    moe_scratch_free(&s->moe);
    free(s);
}

static int ds2_scratch_init(const struct model *m, int n_batch, int n_ctx, int n_threads, void **out)
{
    const struct model_hparams *hp = model_hparams(m);
    const struct ds2 *d = model_layers(m);
    struct ds2_scratch *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    size_t rows = (size_t)n_batch * hp->n_embd, ff = (size_t)n_batch * (n_ff_max(hp) ? n_ff_max(hp) : 1);
    s->x = calloc(rows, sizeof(float));
    s->xb = calloc(rows, sizeof(float));
    s->tmp = calloc(rows, sizeof(float));
    s->hg = calloc(ff, sizeof(float));
    s->hu = calloc(ff, sizeof(float));
    int rc = mla_scratch_init(&s->mla, &d->ahp, n_batch, n_ctx, n_threads);
    rc |= moe_scratch_init(&s->moe, &d->mhp, n_batch);
    if (rc || !s->x || !s->xb || !s->tmp || !s->hg || !s->hu) {
        ds2_scratch_free(s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

/* ---------------------------------------------------------- forward */

/* x[n] += down(silu(gate xb) * up xb), an FFN of width gate->ne[1]. */
/* The dense or shared-expert FFN of xb into s->tmp (x untouched). */
static void ffn_compute(struct fwd *f, struct ds2_scratch *s, const struct ds2_layer *L, int n_embd, int n)
{
    int64_t ff = L->gate.ne[1];
    struct blocks_mm_part gu[2] = {
        { s->hg, L->gate.data, L->gate.type, ff },
        { s->hu, L->up.data, L->up.type, ff },
    };
    blocks_mm_fused(f, ENGINE_SITE_SHARED, gu, 2, n_embd, s->xb, n);
    for (size_t i = 0; i < (size_t)n * ff; i++) {
        float g = s->hg[i];
        s->hg[i] = g / (1.0f + expf(-g)) * s->hu[i];
    }
    blocks_act_dirty(f);
    blocks_mm(f, ENGINE_SITE_SHARED, s->tmp, L->down.data, L->down.type, n_embd, ff, s->hg, n);
}

static void ffn_add(struct fwd *f, struct ds2_scratch *s, const struct ds2_layer *L, int n_embd, int n)
{
    ffn_compute(f, s, L, n_embd, n);
    for (size_t i = 0; i < (size_t)n * n_embd; i++)
        s->x[i] += s->tmp[i];
}

/* The shared expert, run by moe_forward while the routed experts' reads are
 * in flight; added to x after them. */
struct ds2_shared_job {
    struct fwd *f;
    struct ds2_scratch *s;
    const struct ds2_layer *L;
    int n_embd, n;
};

static void ds2_shared_compute(void *ctx)
{
    const struct ds2_shared_job *j = ctx;
    double t0 = blocks_now();
    blocks_act_dirty(j->f);
    ffn_compute(j->f, j->s, j->L, j->n_embd, j->n);
    blocks_act_dirty(j->f);
    j->f->times.experts_s += blocks_now() - t0;
}

static int ds2_forward(struct fwd *f, const struct engine_batch *b, float *logits)
{
    const struct model_hparams *hp = model_hparams(f->m);
    const struct ds2 *d = model_layers(f->m);
    struct ds2_scratch *s = f->scratch;
    int n = b->n, ne = hp->n_embd;

    blocks_embed(&d->tok_embd, b, s->x, ne);
    for (int t = 0; t < n; t++) {
        s->mla.cache[t] = b->seq[t]->state;
    }
    mla_prepare(&s->mla, &d->ahp, b);

    for (int il = 0; il < hp->n_layer; il++) {
        const struct ds2_layer *L = &d->layers[il];
        double t0 = blocks_now();
        blocks_norm_rows(f, s->xb, s->x, &L->attn_norm, n, ne, hp->rms_eps);
        mla_forward(f, &s->mla, &d->ahp, &L->mla, il, b, s->xb, s->tmp);
        for (size_t i = 0; i < (size_t)n * ne; i++)
            s->x[i] += s->tmp[i];
        f->times.attn_s += blocks_now() - t0;

        blocks_norm_rows(f, s->xb, s->x, &L->ffn_norm, n, ne, hp->rms_eps);
        if (L->dense) {
            double t1 = blocks_now();
            ffn_add(f, s, L, ne, n);
            f->times.experts_s += blocks_now() - t1;
            continue;
        }
        const struct moe_weights *next =
            il + 1 < hp->n_layer && !d->layers[il + 1].dense ? &d->layers[il + 1].moe : NULL;
        struct ds2_shared_job job = { f, s, L, ne, n };
        struct moe_overlap ov = { ds2_shared_compute, &job };
        int rc = moe_forward(f, &s->moe, &d->mhp, &L->moe, next, hp->rms_eps, il, b, s->xb, s->x,
                             L->gate.ne[0] ? &ov : NULL);
        if (rc < 0)
            return rc;
        if (L->gate.ne[0])
            for (size_t i = 0; i < (size_t)n * ne; i++)
                s->x[i] += s->tmp[i];
        if ((rc = blocks_check_finite(f, s->x, (size_t)n * ne, il)) < 0)
            return rc;
    }

    blocks_output(f, b, s->x, s->xb, &d->output_norm, &d->output, hp->n_vocab, ne, hp->rms_eps, logits);
    return 0;
}

const struct arch_ops arch_deepseek2 = {
    .name = "deepseek2",
    .family = "DeepSeek-V3/R1, Kimi-K2",
    .rewindable = true,
    .read_hparams = ds2_read_hparams,
    .bind = ds2_bind,
    .unbind = ds2_unbind,
    .state_bytes = ds2_state_bytes,
    .state_init = ds2_state_init,
    .state_reset = ds2_state_reset,
    .state_free = ds2_state_free,
    .scratch_bytes = ds2_scratch_bytes,
    .scratch_init = ds2_scratch_init,
    .scratch_free = ds2_scratch_free,
    .forward = ds2_forward,
};
