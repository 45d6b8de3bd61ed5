/*
 * arch_qwen35moe.c - Qwen3.5/3.6-MoE (Qwen3.5-35B-A3B, -122B-A10B,
 * -397B-A17B, Qwen3.6-35B-A3B): a hybrid of gated delta-net linear attention
 * (src/deltanet.h) and, every full_attn_interval-th layer, gated full
 * attention with QK-norm and partial NEOX rotary (src/attn.h options); every
 * layer has routed experts (softmax top-k, renormalised) and a shared expert
 * with a sigmoid gate (src/moe.h).
 *
 * Per layer, for the rows of one step:
 *   x += mixer(rmsnorm(x) * attn_norm)       delta-net or gated attention
 *   xb = rmsnorm(x) * post_attention_norm
 *   x += moe(xb) + sigmoid(gate_inp_shexp . xb) * shared(xb)
 * then logits = W_out (rmsnorm(x) * output_norm).
 *
 * Text positions: the model's multi-section rope (rope.dimension_sections)
 * uses one position for every section on text, which is the plain NEOX
 * rotation of the first rope.dimension_count dims.
 *
 * Sequence state: a KV cache for the attention layers and, for the delta-net
 * layers, the conv inputs and recurrent matrices (zeroed at position 0).
 * NextN/MTP blocks after the trunk (nextn_predict_layers) are not run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "attn.h"
#include "blocks.h"
#include "deltanet.h"
#include "fwd.h"
#include "gguf.h"
#include "moe.h"
#include "quant.h"
#include "seq.h"

struct q35_layer {
    bool is_attn;
    int slot;              /* index among the layers of its kind */
    struct mtensor attn_norm, post_norm;
    /* attention */
    struct mtensor wq, wk, wv, wo, q_norm, k_norm;
    struct attn_weights attn;
    /* delta-net */
    struct mtensor wqkv, wgate, beta, alpha, dt_bias, a, conv, ssm_norm, ssm_out;
    struct deltanet_weights dn;
    /* experts */
    struct mtensor router, sh_gate_inp, sh_gate, sh_up, sh_down;
    struct moe_weights moe;
    struct moe_shared_weights sh;
};

struct q35 {
    struct mtensor tok_embd, output_norm, output;
    struct q35_layer *layers;
    int n_attn, n_dn;
    struct attn_hparams ahp;
    struct deltanet_hparams dhp;
    struct moe_hparams mhp;
};

struct q35_state {
    struct attn_kv kv;
    struct deltanet_state dn;
};

struct q35_scratch {
    float *x, *xb, *tmp;
    struct attn_scratch attn;
    struct deltanet_scratch dn;
    struct moe_scratch moe;
    struct moe_shared_scratch sh;
};

static bool is_attn_layer(const struct model_hparams *hp, int il)
{
    return (il + 1) % hp->full_attn_interval == 0;
}

static void layer_counts(const struct model_hparams *hp, int *n_attn, int *n_dn)
{
    *n_attn = 0;
    for (int il = 0; il < hp->n_layer; il++)
        *n_attn += is_attn_layer(hp, il);
    *n_dn = hp->n_layer - *n_attn;
}

static void hparams_split(const struct model_hparams *hp, struct attn_hparams *a, struct deltanet_hparams *d,
                          struct moe_hparams *mo)
{
    *a = (struct attn_hparams){ .n_embd = hp->n_embd, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv,
                                .head_dim = hp->head_dim, .rms_eps = hp->rms_eps, .rope_base = hp->rope_base,
                                .qk_norm = true, .rope_neox = true, .n_rot = hp->n_rot, .q_gate = true };
    *d = (struct deltanet_hparams){ .n_embd = hp->n_embd, .d_conv = hp->ssm_d_conv, .head_dim = hp->ssm_d_state,
                                    .n_k_heads = hp->ssm_n_group, .n_v_heads = hp->ssm_dt_rank, .eps = hp->rms_eps };
    *mo = (struct moe_hparams){ .n_embd = hp->n_embd, .n_expert = hp->n_expert, .n_expert_used = hp->n_expert_used,
                                .n_ff_exp = hp->n_ff_exp, .norm_topk = hp->norm_topk };
}

static int q35_read_hparams(const struct gguf_ctx *g, struct model_hparams *hp, char *err, size_t errlen)
{
    hp->rope_base = 10000000.0f;
    hp->rms_eps = 1e-6f;
    hp->qk_norm = true;
    hp->rope_neox = true;
    hp->norm_topk = true;
    hp->full_attn_interval = 4;
    int rc = arch_read_common(g, "qwen35moe", hp, err, errlen);
    if (rc < 0)
        return rc;
    if ((rc = arch_key_u32(g, "qwen35moe", "expert_shared_feed_forward_length", &hp->n_ff_shexp, false, err, errlen)) ||
        (rc = arch_key_u32(g, "qwen35moe", "ssm.conv_kernel", &hp->ssm_d_conv, true, err, errlen)) ||
        (rc = arch_key_u32(g, "qwen35moe", "ssm.state_size", &hp->ssm_d_state, true, err, errlen)) ||
        (rc = arch_key_u32(g, "qwen35moe", "ssm.group_count", &hp->ssm_n_group, true, err, errlen)) ||
        (rc = arch_key_u32(g, "qwen35moe", "ssm.time_step_rank", &hp->ssm_dt_rank, true, err, errlen)) ||
        (rc = arch_key_u32(g, "qwen35moe", "ssm.inner_size", &hp->ssm_d_inner, true, err, errlen)) ||
        (rc = arch_key_u32(g, "qwen35moe", "full_attention_interval", &hp->full_attn_interval, false, err, errlen)) ||
        (rc = arch_key_u32(g, "qwen35moe", "rope.dimension_count", &hp->n_rot, false, err, errlen)) ||
        (rc = arch_key_u32(g, "qwen35moe", "nextn_predict_layers", &hp->n_layer_nextn, false, err, errlen)))
        return rc;
    if (hp->n_ff_shexp == 0)
        hp->n_ff_shexp = hp->n_ff_exp;
    /* block_count includes the NextN blocks; the trunk is what runs */
    hp->n_layer -= hp->n_layer_nextn;
    if (hp->n_layer <= 0 || hp->full_attn_interval <= 0 || hp->ssm_d_conv <= 0 || hp->ssm_d_state <= 0 ||
        hp->ssm_d_state % 8 != 0 || hp->ssm_n_group <= 0 || hp->ssm_dt_rank <= 0 ||
        hp->ssm_dt_rank % hp->ssm_n_group != 0 ||
        hp->ssm_d_inner != hp->ssm_dt_rank * hp->ssm_d_state || hp->n_rot < 0 || hp->n_rot > hp->head_dim ||
        hp->n_rot % 2 != 0) {
        snprintf(err, errlen,
                 "model: inconsistent qwen35moe hyper-parameters (trunk layers %d, nextn %d, attention interval %d, "
                 "ssm conv %d, state %d (a multiple of 8), groups %d, time-step rank %d, inner %d (expected rank * state = %lld), "
                 "rope dims %d of head %d)",
                 hp->n_layer, hp->n_layer_nextn, hp->full_attn_interval, hp->ssm_d_conv, hp->ssm_d_state,
                 hp->ssm_n_group, hp->ssm_dt_rank, hp->ssm_d_inner, (long long)hp->ssm_dt_rank * hp->ssm_d_state,
                 hp->n_rot, hp->head_dim);
        return -EINVAL;
    }
    return 0;
}

static void q35_unbind(void *layers)
{
    struct q35 *d = layers;
    if (!d)
        return;
    free(d->layers);
    free(d);
}

/* Small vectors the forward reads as floats. */
static int need_f32(struct arch_binder *bd, const struct mtensor *t, const char *name)
{
    if (t->type != QT_F32)
        return arch_bind_fail(bd, "tensor %s has type %s, expected F32", name, quant_traits(t->type)->name);
    return 0;
}

static int q35_bind(struct arch_binder *bd, void **out)
{
    const struct model_hparams *hp = arch_binder_hparams(bd);
    struct q35 *d = calloc(1, sizeof(*d));
    if (d)
        d->layers = calloc((size_t)hp->n_layer, sizeof(*d->layers));
    if (!d || !d->layers) {
        q35_unbind(d);
        arch_bind_fail(bd, "out of memory");
        return -ENOMEM;
    }
    hparams_split(hp, &d->ahp, &d->dhp, &d->mhp);
    int64_t ne = hp->n_embd, hd = hp->head_dim, n_q = (int64_t)hp->n_head * hd, n_kv = (int64_t)hp->n_head_kv * hd;
    int64_t S = hp->ssm_d_state, conv_dim = deltanet_conv_dim(&d->dhp), nv = hp->ssm_d_inner, H = hp->ssm_dt_rank;
    char nm[96];
    int rc;
    if ((rc = arch_bind_tensor(bd, &d->tok_embd, "token_embd.weight", ne, hp->n_vocab, true)) ||
        (rc = arch_bind_tensor(bd, &d->output_norm, "output_norm.weight", ne, 0, true)) ||
        (rc = arch_bind_tensor(bd, &d->output, "output.weight", ne, hp->n_vocab, false)))
        goto fail;
    if (d->output.ne[0] == 0) /* tied: no output.weight */
        d->output = d->tok_embd;
    for (int il = 0; il < hp->n_layer; il++) {
        struct q35_layer *L = &d->layers[il];
        L->is_attn = is_attn_layer(hp, il);
        L->slot = L->is_attn ? d->n_attn++ : d->n_dn++;
#define B(field, suffix, a, b, req)                                                              \
    do {                                                                                         \
        snprintf(nm, sizeof(nm), "blk.%d." suffix, il);                                          \
        if ((rc = arch_bind_tensor(bd, &L->field, nm, a, b, req)))                               \
            goto fail;                                                                           \
    } while (0)
#define F32(field, suffix)                                                                       \
    do {                                                                                         \
        snprintf(nm, sizeof(nm), "blk.%d." suffix, il);                                          \
        if ((rc = need_f32(bd, &L->field, nm)))                                                  \
            goto fail;                                                                           \
    } while (0)
        B(attn_norm, "attn_norm.weight", ne, 0, true);
        B(post_norm, "post_attention_norm.weight", ne, 0, true);
        F32(attn_norm, "attn_norm.weight");
        F32(post_norm, "post_attention_norm.weight");
        if (L->is_attn) {
            B(wq, "attn_q.weight", ne, 2 * n_q, true);
            B(wk, "attn_k.weight", ne, n_kv, true);
            B(wv, "attn_v.weight", ne, n_kv, true);
            B(wo, "attn_output.weight", n_q, ne, true);
            B(q_norm, "attn_q_norm.weight", hd, 0, true);
            B(k_norm, "attn_k_norm.weight", hd, 0, true);
            F32(q_norm, "attn_q_norm.weight");
            F32(k_norm, "attn_k_norm.weight");
            L->attn = (struct attn_weights){ .wq = &L->wq, .wk = &L->wk, .wv = &L->wv, .wo = &L->wo,
                                             .q_norm = &L->q_norm, .k_norm = &L->k_norm };
        } else {
            B(wqkv, "attn_qkv.weight", ne, conv_dim, true);
            B(wgate, "attn_gate.weight", ne, nv, true);
            B(beta, "ssm_beta.weight", ne, H, true);
            B(alpha, "ssm_alpha.weight", ne, H, true);
            B(dt_bias, "ssm_dt.bias", H, 0, true);
            B(a, "ssm_a", H, 0, true);
            B(conv, "ssm_conv1d.weight", hp->ssm_d_conv, conv_dim, true);
            B(ssm_norm, "ssm_norm.weight", S, 0, true);
            B(ssm_out, "ssm_out.weight", nv, ne, true);
            F32(dt_bias, "ssm_dt.bias");
            F32(a, "ssm_a");
            F32(conv, "ssm_conv1d.weight");
            F32(ssm_norm, "ssm_norm.weight");
            L->dn = (struct deltanet_weights){ &L->wqkv, &L->wgate, &L->beta, &L->alpha, &L->dt_bias,
                                               &L->a,    &L->conv,  &L->ssm_norm, &L->ssm_out };
        }
        B(router, "ffn_gate_inp.weight", ne, hp->n_expert, true);
        B(sh_gate_inp, "ffn_gate_inp_shexp.weight", ne, 0, false);
        B(sh_gate, "ffn_gate_shexp.weight", ne, hp->n_ff_shexp, true);
        B(sh_up, "ffn_up_shexp.weight", ne, hp->n_ff_shexp, true);
        B(sh_down, "ffn_down_shexp.weight", hp->n_ff_shexp, ne, true);
#undef B
#undef F32
        if (arch_layer_experts(bd, il) != hp->n_expert) {
            rc = arch_bind_fail(bd, "layer %d has %d routed experts, expected %d", il, arch_layer_experts(bd, il),
                                hp->n_expert);
            goto fail;
        }
        L->moe.router = &L->router;
        L->moe.ffn_norm = &L->post_norm;
        L->sh = (struct moe_shared_weights){ L->sh_gate_inp.ne[0] ? &L->sh_gate_inp : NULL, &L->sh_gate, &L->sh_up,
                                             &L->sh_down };
        if ((rc = arch_bind_part(bd, il, &L->moe.gate, "ffn_gate_exps.weight", ne, hp->n_ff_exp)) ||
            (rc = arch_bind_part(bd, il, &L->moe.up, "ffn_up_exps.weight", ne, hp->n_ff_exp)) ||
            (rc = arch_bind_part(bd, il, &L->moe.down, "ffn_down_exps.weight", hp->n_ff_exp, ne)))
            goto fail;
    }
    *out = d;
    return 0;
fail:
    q35_unbind(d);
    return rc;
}

static uint64_t q35_state_bytes(const struct model_hparams *hp, int n_ctx)
{
    struct attn_hparams a;
    struct deltanet_hparams dh;
    struct moe_hparams mo;
    int n_attn, n_dn;
    hparams_split(hp, &a, &dh, &mo);
    layer_counts(hp, &n_attn, &n_dn);
    return attn_kv_bytes(n_attn, n_ctx, hp->n_head_kv * hp->head_dim, hp->kv_f16 ? ATTN_KV_F16 : ATTN_KV_F32) +
           deltanet_state_bytes(&dh, n_dn);
}

static void q35_state_free(void *state)
{
    struct q35_state *st = state;
    if (!st)
        return;
    attn_kv_free(&st->kv);
    deltanet_state_free(&st->dn);
    free(st);
}

static int q35_state_init(const struct model *m, int n_ctx, void **state)
{
    const struct model_hparams *hp = model_hparams(m);
    const struct q35 *d = model_layers(m);
    struct q35_state *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    if (attn_kv_init(&st->kv, d->n_attn, n_ctx, hp->n_head_kv * hp->head_dim,
                     hp->kv_f16 ? ATTN_KV_F16 : ATTN_KV_F32) < 0 ||
        deltanet_state_init(&st->dn, &d->dhp, d->n_dn) < 0) {
        q35_state_free(st);
        return -ENOMEM;
    }
    *state = st;
    return 0;
}

static void q35_state_reset(const struct model *m, void *state)
{
    (void)m;
    struct q35_state *st = state;
    deltanet_state_reset(&st->dn);
}

static uint64_t q35_scratch_bytes(const struct model_hparams *hp, int n_batch, int n_ctx, int n_threads)
{
    struct attn_hparams a;
    struct deltanet_hparams dh;
    struct moe_hparams mo;
    hparams_split(hp, &a, &dh, &mo);
    uint64_t logits_rows = (uint64_t)n_batch * hp->n_vocab * sizeof(float);
    return 3ull * n_batch * hp->n_embd * sizeof(float) + blocks_engine_bytes(hp, n_batch) +
           attn_scratch_bytes(&a, n_batch, n_ctx, n_threads) + deltanet_scratch_bytes(&dh, n_batch) +
           moe_scratch_bytes(&mo, n_batch) + moe_shared_scratch_bytes(hp->n_embd, hp->n_ff_shexp, n_batch) +
           logits_rows;
}

static void q35_scratch_free(void *scratch)
{
    struct q35_scratch *s = scratch;
    if (!s)
        return;
    free(s->x);
    free(s->xb);
    free(s->tmp);
    attn_scratch_free(&s->attn);
    deltanet_scratch_free(&s->dn);
    moe_scratch_free(&s->moe);
    moe_shared_scratch_free(&s->sh);
    free(s);
}

static int q35_scratch_init(const struct model *m, int n_batch, int n_ctx, int n_threads, void **out)
{
    const struct model_hparams *hp = model_hparams(m);
    struct attn_hparams a;
    struct deltanet_hparams dh;
    struct moe_hparams mo;
    hparams_split(hp, &a, &dh, &mo);
    struct q35_scratch *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    size_t rows = (size_t)n_batch * hp->n_embd;
    s->x = calloc(rows, sizeof(float));
    s->xb = calloc(rows, sizeof(float));
    s->tmp = calloc(rows, sizeof(float));
    int rc = attn_scratch_init(&s->attn, &a, n_batch, n_ctx, n_threads);
    rc |= deltanet_scratch_init(&s->dn, &dh, n_batch);
    rc |= moe_scratch_init(&s->moe, &mo, n_batch);
    rc |= moe_shared_scratch_init(&s->sh, hp->n_embd, hp->n_ff_shexp, n_batch);
    if (rc || !s->x || !s->xb || !s->tmp) {
        q35_scratch_free(s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

/* The shared expert of one layer, run by moe_forward while the routed
 * experts' reads are in flight. */
struct q35_shared_job {
    struct fwd *f;
    struct moe_shared_scratch *s;
    const struct moe_shared_weights *w;
    int n_embd, n_ff, n;
    const float *xb;
};

static void q35_shared_compute(void *ctx)
{
    const struct q35_shared_job *j = ctx;
    moe_shared_compute(j->f, j->s, j->w, j->n_embd, j->n_ff, j->n, j->xb);
}

static int q35_forward(struct fwd *f, const struct engine_batch *b, float *logits)
{
    const struct model_hparams *hp = model_hparams(f->m);
    const struct q35 *d = model_layers(f->m);
    struct q35_scratch *s = f->scratch;
    int n = b->n, ne = hp->n_embd;

    blocks_embed(&d->tok_embd, b, s->x, ne);
    for (int t = 0; t < n; t++) {
        struct q35_state *st = b->seq[t]->state;
        /* a sequence (re)starting at position 0 starts from a zero state */
        if (b->pos[t] == 0)
            deltanet_state_reset(&st->dn);
        s->attn.kv[t] = &st->kv;
        s->dn.st[t] = &st->dn;
    }
    attn_prepare(&s->attn, &d->ahp, b);

    for (int il = 0; il < hp->n_layer; il++) {
        const struct q35_layer *L = &d->layers[il];
        double t0 = blocks_now();
        blocks_norm_rows(f, s->xb, s->x, &L->attn_norm, n, ne, hp->rms_eps);
        if (L->is_attn)
            attn_forward(f, &s->attn, &d->ahp, &L->attn, L->slot, b, s->xb, s->tmp);
        else
            deltanet_forward(f, &s->dn, &d->dhp, &L->dn, L->slot, b, s->xb, s->tmp);
        for (size_t i = 0; i < (size_t)n * ne; i++)
            s->x[i] += s->tmp[i];
        f->times.attn_s += blocks_now() - t0;

        blocks_norm_rows(f, s->xb, s->x, &L->post_norm, n, ne, hp->rms_eps);
        const struct moe_weights *next = il + 1 < hp->n_layer ? &d->layers[il + 1].moe : NULL;
        /* the shared expert computes while the routed experts' reads are
         * in flight, and is added after them as before */
        struct q35_shared_job job = { f, &s->sh, &L->sh, ne, hp->n_ff_shexp, n, s->xb };
        struct moe_overlap ov = { q35_shared_compute, &job };
        int rc = moe_forward(f, &s->moe, &d->mhp, &L->moe, next, hp->rms_eps, il, b, s->xb, s->x, &ov);
        if (rc < 0)
            return rc;
        moe_shared_apply(&s->sh, &L->sh, ne, n, s->x);
        if ((rc = blocks_check_finite(f, s->x, (size_t)n * ne, il)) < 0)
            return rc;
    }

    blocks_output(f, b, s->x, s->xb, &d->output_norm, &d->output, hp->n_vocab, ne, hp->rms_eps, logits);
    return 0;
}

const struct arch_ops arch_qwen35moe = {
    .name = "qwen35moe",
    .family = "Qwen3.5/3.6-MoE",
    .rewindable = false,
    .read_hparams = q35_read_hparams,
    .bind = q35_bind,
    .unbind = q35_unbind,
    .state_bytes = q35_state_bytes,
    .state_init = q35_state_init,
    .state_reset = q35_state_reset,
    .state_free = q35_state_free,
    .scratch_bytes = q35_scratch_bytes,
    .scratch_init = q35_scratch_init,
    .scratch_free = q35_scratch_free,
    .forward = q35_forward,
};
