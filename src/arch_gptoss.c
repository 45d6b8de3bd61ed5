/*
 * arch_gptoss.c - OpenAI gpt-oss (GGUF architecture "gpt-oss": gpt-oss-20b,
 * gpt-oss-120b), as llama.cpp runs it.
 *
 * Per layer, for the rows of one step:
 *   xb = rmsnorm(x) * attn_norm
 *   x += attention(xb)        q/k/v with biases, NEOX rope with YaRN scaling,
 *                             causal GQA whose softmax also holds a learned
 *                             per-head sink logit; even layers (with the
 *                             default period 2) see a sliding window of
 *                             n_swa positions, odd layers everything;
 *                             output projection with bias
 *   xb = rmsnorm(x) * post_attention_norm
 *   x += moe(xb)              router with bias, top-k of the logits, softmax
 *                             over the k selected; per expert (gate, up and
 *                             down with biases) the clamped SwiGLU
 *                             min(g, 7) * sigmoid(1.702 min(g, 7)) * (clamp(u, -7, 7) + 1)
 * then logits = W_out (rmsnorm(x) * output_norm).
 *
 * Sequence state: a full KV cache for the full-attention layers and a ring
 * of attn_swa_ring(n_swa, n_ctx) positions for the sliding layers.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "attn.h"
#include "blocks.h"
#include "fwd.h"
#include "gguf.h"
#include "moe.h"
#include "quant.h"
#include "seq.h"
#include "splitfmt.h"

#define GPTOSS_SWIGLU_ALPHA 1.702f
#define GPTOSS_SWIGLU_LIMIT 7.0f

struct gptoss_layer {
    struct mtensor attn_norm, wq, wk, wv, wo, bq, bk, bv, bo, sinks;
    struct mtensor post_norm, router, router_b;
    struct attn_weights attn;
    struct moe_weights moe;
    bool swa;              /* sliding-window layer */
    int kv_index;          /* its layer in the full cache or in the ring */
};

struct gptoss {
    struct mtensor tok_embd, output_norm, output;
    struct gptoss_layer *layers;
    int n_full, n_swa_layers;
    struct attn_hparams ahp;
    struct moe_hparams mhp;
};

struct gptoss_state {
    struct attn_kv full;   /* [n_full][n_ctx] */
    struct attn_kv ring;   /* [n_swa_layers][attn_swa_ring(n_swa, n_ctx)] */
};

struct gptoss_scratch {
    float *x, *xb, *tmp;   /* [B][n_embd] residual, normed input, block output */
    struct attn_scratch attn;
    struct moe_scratch moe;
};

static bool is_swa_layer(const struct model_hparams *hp, int il)
{
    return hp->n_swa > 0 && hp->swa_period > 0 && il % hp->swa_period < hp->swa_period - 1;
}

static int count_swa_layers(const struct model_hparams *hp)
{
    int n = 0;
    for (int il = 0; il < hp->n_layer; il++)
        n += is_swa_layer(hp, il);
    return n;
}

static void hparams_split(const struct model_hparams *hp, struct attn_hparams *a, struct moe_hparams *mo)
{
    *a = (struct attn_hparams){ .n_embd = hp->n_embd, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv,
                                .head_dim = hp->head_dim, .rms_eps = hp->rms_eps, .rope_base = hp->rope_base,
                                .qk_norm = false, .rope_neox = true };
    if (hp->rope_freq_scale > 0.0f) {
        a->rope_yarn = true;
        a->yarn = (struct blocks_yarn){ .freq_scale = hp->rope_freq_scale,
                                        .ext_factor = 1.0f,
                                        .attn_factor = 1.0f,
                                        .beta_fast = hp->yarn_beta_fast,
                                        .beta_slow = hp->yarn_beta_slow,
                                        .n_ctx_orig = hp->rope_n_ctx_orig };
    }
    *mo = (struct moe_hparams){ .n_embd = hp->n_embd, .n_expert = hp->n_expert, .n_expert_used = hp->n_expert_used,
                                .n_ff_exp = hp->n_ff_exp, .norm_topk = false,
                                .gating = MOE_GATING_SOFTMAX_SELECTED, .act = MOE_ACT_SWIGLU_OAI,
                                .act_alpha = GPTOSS_SWIGLU_ALPHA, .act_limit = GPTOSS_SWIGLU_LIMIT };
}

/* ---------------------------------------------------------- hyper-parameters */

static int gptoss_read_hparams(const struct gguf_ctx *g, struct model_hparams *hp, char *err, size_t errlen)
{
    hp->rope_base = 150000.0f;
    hp->rms_eps = 1e-5f;
    hp->qk_norm = false;
    hp->rope_neox = true;
    hp->norm_topk = false;
    int rc = arch_read_common(g, "gpt-oss", hp, err, errlen);
    if (rc < 0)
        return rc;
    hp->swa_period = 2;
    if (arch_key_u32(g, "gpt-oss", "attention.sliding_window", &hp->n_swa, true, err, errlen) < 0 ||
        arch_key_u32(g, "gpt-oss", "attention.sliding_window_pattern", &hp->swa_period, false, err, errlen) < 0)
        return -EINVAL;
    if (hp->n_swa <= 0 || hp->swa_period <= 0) {
        snprintf(err, errlen, "model: gpt-oss sliding window %d / period %d must be positive", hp->n_swa,
                 hp->swa_period);
        return -EINVAL;
    }
    const char *type = "none";
    rc = gguf_get_str(g, "gpt-oss.rope.scaling.type", &type);
    if (rc < 0 && rc != -ENOENT) {
        snprintf(err, errlen, "model: manifest key gpt-oss.rope.scaling.type is not a string");
        return -EINVAL;
    }
    if (strcmp(type, "yarn") == 0) {
        float factor = 1.0f;
        hp->rope_n_ctx_orig = hp->n_ctx_train;
        hp->yarn_beta_fast = 32.0f;
        hp->yarn_beta_slow = 1.0f;
        if (arch_key_f32(g, "gpt-oss", "rope.scaling.factor", &factor, err, errlen) < 0 ||
            arch_key_u32(g, "gpt-oss", "rope.scaling.original_context_length", &hp->rope_n_ctx_orig, false, err, errlen) < 0 ||
            arch_key_f32(g, "gpt-oss", "rope.scaling.yarn_beta_fast", &hp->yarn_beta_fast, err, errlen) < 0 ||
            arch_key_f32(g, "gpt-oss", "rope.scaling.yarn_beta_slow", &hp->yarn_beta_slow, err, errlen) < 0)
            return -EINVAL;
        if (!(factor >= 1.0f) || hp->rope_n_ctx_orig <= 0) {
            snprintf(err, errlen, "model: gpt-oss YaRN factor %g / original context %d out of range", factor,
                     hp->rope_n_ctx_orig);
            return -EINVAL;
        }
        hp->rope_freq_scale = 1.0f / factor;
    } else if (strcmp(type, "none") != 0) {
        snprintf(err, errlen, "model: gpt-oss rope scaling \"%s\" is not supported (expected yarn or none)", type);
        return -ENOTSUP;
    }
    return 0;
}

/* ------------------------------------------------------------------- binding */

static void gptoss_unbind(void *layers)
{
    struct gptoss *d = layers;
    if (!d)
        return;
    free(d->layers);
    free(d);
}

/* Biases and sinks are added as floats: they must be F32. */
static int need_f32(struct arch_binder *bd, const char *name, int type)
{
    if (type == QT_F32)
        return 0;
    return arch_bind_fail(bd, "tensor %s has type %s, expected F32", name, quant_traits(type)->name);
}

static int gptoss_bind(struct arch_binder *bd, void **out)
{
    const struct model_hparams *hp = arch_binder_hparams(bd);
    int64_t n_q = (int64_t)hp->n_head * hp->head_dim, n_kv = (int64_t)hp->n_head_kv * hp->head_dim;
    struct gptoss *d = calloc(1, sizeof(*d));
    if (d)
        d->layers = calloc((size_t)hp->n_layer, sizeof(*d->layers));
    if (!d || !d->layers) {
        gptoss_unbind(d);
        arch_bind_fail(bd, "out of memory");
        return -ENOMEM;
    }
    hparams_split(hp, &d->ahp, &d->mhp);
    char nm[96];
    int rc;
    if ((rc = arch_bind_tensor(bd, &d->tok_embd, "token_embd.weight", hp->n_embd, hp->n_vocab, true)) ||
        (rc = arch_bind_tensor(bd, &d->output_norm, "output_norm.weight", hp->n_embd, 0, true)) ||
        (rc = arch_bind_tensor(bd, &d->output, "output.weight", hp->n_embd, hp->n_vocab, false)))
        goto fail;
    if (!d->output.data && !d->output.ne[0])
        d->output = d->tok_embd;
    for (int il = 0; il < hp->n_layer; il++) {
        struct gptoss_layer *L = &d->layers[il];
#define B(field, suffix, a, b, f32)                                                   \
    do {                                                                              \
        snprintf(nm, sizeof(nm), "blk.%d." suffix, il);                               \
        if ((rc = arch_bind_tensor(bd, &L->field, nm, a, b, true)))                   \
            goto fail;                                                                \
        if ((f32) && (rc = need_f32(bd, nm, L->field.type)))                          \
            goto fail;                                                                \
    } while (0)
        B(attn_norm, "attn_norm.weight", hp->n_embd, 0, true);
        B(wq, "attn_q.weight", hp->n_embd, n_q, false);
        B(bq, "attn_q.bias", n_q, 0, true);
        B(wk, "attn_k.weight", hp->n_embd, n_kv, false);
        B(bk, "attn_k.bias", n_kv, 0, true);
        B(wv, "attn_v.weight", hp->n_embd, n_kv, false);
        B(bv, "attn_v.bias", n_kv, 0, true);
        B(wo, "attn_output.weight", n_q, hp->n_embd, false);
        B(bo, "attn_output.bias", hp->n_embd, 0, true);
        B(sinks, "attn_sinks.weight", hp->n_head, 0, true);
        B(post_norm, "post_attention_norm.weight", hp->n_embd, 0, true);
        B(router, "ffn_gate_inp.weight", hp->n_embd, hp->n_expert, false);
        B(router_b, "ffn_gate_inp.bias", hp->n_expert, 0, true);
#undef B
        if (arch_layer_experts(bd, il) != hp->n_expert) {
            rc = arch_bind_fail(bd, "layer %d has %d routed experts, expected %d", il, arch_layer_experts(bd, il),
                                hp->n_expert);
            goto fail;
        }
        struct moe_weights *M = &L->moe;
        if ((rc = arch_bind_part(bd, il, &M->gate, "ffn_gate_exps.weight", hp->n_embd, hp->n_ff_exp)) ||
            (rc = arch_bind_part(bd, il, &M->up, "ffn_up_exps.weight", hp->n_embd, hp->n_ff_exp)) ||
            (rc = arch_bind_part(bd, il, &M->down, "ffn_down_exps.weight", hp->n_ff_exp, hp->n_embd)) ||
            (rc = arch_bind_part(bd, il, &M->gate_b, "ffn_gate_exps.bias", hp->n_ff_exp, 1)) ||
            (rc = arch_bind_part(bd, il, &M->up_b, "ffn_up_exps.bias", hp->n_ff_exp, 1)) ||
            (rc = arch_bind_part(bd, il, &M->down_b, "ffn_down_exps.bias", hp->n_embd, 1)))
            goto fail;
        const struct split_part *bp[3] = { M->gate_b, M->up_b, M->down_b };
        for (int i = 0; i < 3; i++)
            if ((rc = need_f32(bd, bp[i]->name, bp[i]->type)))
                goto fail;
        M->router = &L->router;
        M->router_b = &L->router_b;
        M->ffn_norm = &L->post_norm;
        L->swa = is_swa_layer(hp, il);
        L->kv_index = L->swa ? d->n_swa_layers++ : d->n_full++;
        L->attn = (struct attn_weights){ .wq = &L->wq, .wk = &L->wk, .wv = &L->wv, .wo = &L->wo,
                                         .bq = &L->bq, .bk = &L->bk, .bv = &L->bv, .bo = &L->bo,
                                         .sinks = &L->sinks, .n_swa = L->swa ? hp->n_swa : 0 };
    }
    *out = d;
    return 0;
fail:
    gptoss_unbind(d);
    return rc;
}

/* --------------------------------------------------------------------- state */

static uint64_t gptoss_state_bytes(const struct model_hparams *hp, int n_ctx)
{
    int n_swa_l = count_swa_layers(hp), n_kv = hp->n_head_kv * hp->head_dim;
    enum attn_kv_type t = hp->kv_f16 ? ATTN_KV_F16 : ATTN_KV_F32;
    return attn_kv_bytes(hp->n_layer - n_swa_l, n_ctx, n_kv, t) +
           attn_kv_bytes(n_swa_l, attn_swa_ring(hp->n_swa, n_ctx), n_kv, t);
}

static void gptoss_state_free(void *state)
{
    struct gptoss_state *st = state;
    if (!st)
        return;
    attn_kv_free(&st->full);
    attn_kv_free(&st->ring);
    free(st);
}

static int gptoss_state_init(const struct model *m, int n_ctx, void **state)
{
    const struct model_hparams *hp = model_hparams(m);
    int n_swa_l = count_swa_layers(hp), n_kv = hp->n_head_kv * hp->head_dim;
    struct gptoss_state *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    enum attn_kv_type t = hp->kv_f16 ? ATTN_KV_F16 : ATTN_KV_F32;
    if (attn_kv_init(&st->full, hp->n_layer - n_swa_l, n_ctx, n_kv, t) < 0 ||
        attn_kv_init(&st->ring, n_swa_l, attn_swa_ring(hp->n_swa, n_ctx), n_kv, t) < 0) {
        gptoss_state_free(st);
        return -ENOMEM;
    }
    *state = st;
    return 0;
}

static void gptoss_state_reset(const struct model *m, void *state)
{
    /* slots are written before they are read at every position */
    (void)m;
    (void)state;
}

/* ------------------------------------------------------------------- scratch */

static uint64_t gptoss_scratch_bytes(const struct model_hparams *hp, int n_batch, int n_ctx, int n_threads)
{
    struct attn_hparams a;
    struct moe_hparams mo;
    hparams_split(hp, &a, &mo);
    uint64_t logits_rows = (uint64_t)n_batch * hp->n_vocab * sizeof(float); /* caller-held, counted here */
    return 3ull * n_batch * hp->n_embd * sizeof(float) + blocks_engine_bytes(hp, n_batch) +
           attn_scratch_bytes(&a, n_batch, n_ctx, n_threads) + moe_scratch_bytes(&mo, n_batch) + logits_rows;
}

static void gptoss_scratch_free(void *scratch)
{
    struct gptoss_scratch *s = scratch;
    if (!s)
        return;
    free(s->x);
    free(s->xb);
    free(s->tmp);
    attn_scratch_free(&s->attn);
    moe_scratch_free(&s->moe);
    free(s);
}

static int gptoss_scratch_init(const struct model *m, int n_batch, int n_ctx, int n_threads, void **out)
{
    const struct model_hparams *hp = model_hparams(m);
    struct attn_hparams a;
    struct moe_hparams mo;
    hparams_split(hp, &a, &mo);
    struct gptoss_scratch *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    size_t rows = (size_t)n_batch * hp->n_embd;
    s->x = calloc(rows, sizeof(float));
    s->xb = calloc(rows, sizeof(float));
    s->tmp = calloc(rows, sizeof(float));
    int rc = attn_scratch_init(&s->attn, &a, n_batch, n_ctx, n_threads);
    rc |= moe_scratch_init(&s->moe, &mo, n_batch);
    if (rc || !s->x || !s->xb || !s->tmp) {
        gptoss_scratch_free(s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

/* ------------------------------------------------------------------- forward */

static int gptoss_forward(struct fwd *f, const struct engine_batch *b, float *logits)
{
    const struct model_hparams *hp = model_hparams(f->m);
    const struct gptoss *d = model_layers(f->m);
    struct gptoss_scratch *s = f->scratch;
    int n = b->n, ne = hp->n_embd;

    blocks_embed(&d->tok_embd, b, s->x, ne);
    attn_prepare(&s->attn, &d->ahp, b);

    for (int il = 0; il < hp->n_layer; il++) {
        const struct gptoss_layer *L = &d->layers[il];
        double t0 = blocks_now();
        for (int t = 0; t < n; t++) {
            struct gptoss_state *st = b->seq[t]->state;
            s->attn.kv[t] = L->swa ? &st->ring : &st->full;
        }
        blocks_norm_rows(f, s->xb, s->x, &L->attn_norm, n, ne, hp->rms_eps);
        attn_forward(f, &s->attn, &d->ahp, &L->attn, L->kv_index, b, s->xb, s->tmp);
        for (size_t i = 0; i < (size_t)n * ne; i++)
            s->x[i] += s->tmp[i];
        f->times.attn_s += blocks_now() - t0;

        blocks_norm_rows(f, s->xb, s->x, &L->post_norm, n, ne, hp->rms_eps);
        const struct moe_weights *next = il + 1 < hp->n_layer ? &d->layers[il + 1].moe : NULL;
        int rc = moe_forward(f, &s->moe, &d->mhp, &L->moe, next, hp->rms_eps, il, b, s->xb, s->x, NULL);
        if (rc == 0)
            rc = blocks_check_finite(f, s->x, (size_t)n * ne, il);
        if (rc < 0)
            return rc;
    }

    blocks_output(f, b, s->x, s->xb, &d->output_norm, &d->output, hp->n_vocab, ne, hp->rms_eps, logits);
    return 0;
}

const struct arch_ops arch_gptoss = {
    .name = "gpt-oss",
    .family = "gpt-oss",
    .rewindable = false, /* the sliding layers keep a ring */
    .read_hparams = gptoss_read_hparams,
    .bind = gptoss_bind,
    .unbind = gptoss_unbind,
    .state_bytes = gptoss_state_bytes,
    .state_init = gptoss_state_init,
    .state_reset = gptoss_state_reset,
    .state_free = gptoss_state_free,
    .scratch_bytes = gptoss_scratch_bytes,
    .scratch_init = gptoss_scratch_init,
    .scratch_free = gptoss_scratch_free,
    .forward = gptoss_forward,
};
