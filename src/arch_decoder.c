/*
 * arch_decoder.c - the plain MoE decoder (see arch_decoder.h).
 *
 * Per layer, for the rows of one step:
 *   xb = rmsnorm(x) * attn_norm
 *   x += attention(xb)            q/k/v, QK-norm (Qwen3), rope, causal GQA, o
 *   xb = rmsnorm(x) * ffn_norm
 *   x += moe(xb)                  router, top-k, sum_k w_k down_k(silu(gate_k xb) * up_k xb)
 * then logits = W_out (rmsnorm(x) * output_norm) for the rows asked for.
 */
#include "arch_decoder.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn.h"
#include "blocks.h"
#include "fwd.h"
#include "moe.h"
#include "quant.h"
#include "seq.h"

struct decoder_layer {
    struct mtensor attn_norm, wq, wk, wv, wo, q_norm, k_norm;
    struct mtensor ffn_norm, router;
    struct attn_weights attn;
    struct moe_weights moe;
};

struct decoder {
    struct mtensor tok_embd, output_norm, output;
    struct decoder_layer *layers;
    struct attn_hparams ahp;
    struct moe_hparams mhp;
};

struct decoder_scratch {
    float *x, *xb, *tmp;   /* [B][n_embd] residual, normed input, block output */
    struct attn_scratch attn;
    struct moe_scratch moe;
};

static void hparams_split(const struct model_hparams *hp, struct attn_hparams *a, struct moe_hparams *mo)
{
    *a = (struct attn_hparams){ .n_embd = hp->n_embd, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv,
                                .head_dim = hp->head_dim, .rms_eps = hp->rms_eps, .rope_base = hp->rope_base,
                                .qk_norm = hp->qk_norm, .rope_neox = hp->rope_neox };
    *mo = (struct moe_hparams){ .n_embd = hp->n_embd, .n_expert = hp->n_expert, .n_expert_used = hp->n_expert_used,
                                .n_ff_exp = hp->n_ff_exp, .norm_topk = hp->norm_topk };
}

int decoder_bind(struct arch_binder *bd, void **out)
{
    const struct model_hparams *hp = arch_binder_hparams(bd);
    int64_t n_q = (int64_t)hp->n_head * hp->head_dim, n_kv = (int64_t)hp->n_head_kv * hp->head_dim;
    struct decoder *d = calloc(1, sizeof(*d));
    if (d)
        d->layers = calloc((size_t)hp->n_layer, sizeof(*d->layers));
    if (!d || !d->layers) {
        decoder_unbind(d);
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
    /* An untied model has output.weight; a tied one reuses the embeddings. */
    if (!d->output.data)
        d->output = d->tok_embd;
    for (int il = 0; il < hp->n_layer; il++) {
        struct decoder_layer *L = &d->layers[il];
#define B(field, suffix, a, b, req)                                                              \
    do {                                                                                         \
        snprintf(nm, sizeof(nm), "blk.%d." suffix, il);                                          \
        if ((rc = arch_bind_tensor(bd, &L->field, nm, a, b, req)))                  \
            goto fail;                                                                           \
    } while (0)
        B(attn_norm, "attn_norm.weight", hp->n_embd, 0, true);
        B(wq, "attn_q.weight", hp->n_embd, n_q, true);
        B(wk, "attn_k.weight", hp->n_embd, n_kv, true);
        B(wv, "attn_v.weight", hp->n_embd, n_kv, true);
        B(wo, "attn_output.weight", n_q, hp->n_embd, true);
        B(q_norm, "attn_q_norm.weight", hp->head_dim, 0, hp->qk_norm);
        B(k_norm, "attn_k_norm.weight", hp->head_dim, 0, hp->qk_norm);
        B(ffn_norm, "ffn_norm.weight", hp->n_embd, 0, true);
        B(router, "ffn_gate_inp.weight", hp->n_embd, hp->n_expert, true);
#undef B
        if (arch_layer_experts(bd, il) != hp->n_expert) {
            rc = arch_bind_fail(bd, "layer %d has %d routed experts, expected %d", il, arch_layer_experts(bd, il),
                                hp->n_expert);
            goto fail;
        }
        L->attn = (struct attn_weights){ .wq = &L->wq, .wk = &L->wk, .wv = &L->wv, .wo = &L->wo,
                                         .q_norm = &L->q_norm, .k_norm = &L->k_norm };
        L->moe.router = &L->router;
        L->moe.ffn_norm = &L->ffn_norm;
        if ((rc = arch_bind_part(bd, il, &L->moe.gate, "ffn_gate_exps.weight", hp->n_embd, hp->n_ff_exp)) ||
            (rc = arch_bind_part(bd, il, &L->moe.up, "ffn_up_exps.weight", hp->n_embd, hp->n_ff_exp)) ||
            (rc = arch_bind_part(bd, il, &L->moe.down, "ffn_down_exps.weight", hp->n_ff_exp, hp->n_embd)))
            goto fail;
    }
    *out = d;
    return 0;
fail:
    decoder_unbind(d);
    return rc;
}

void decoder_unbind(void *layers)
{
    struct decoder *d = layers;
    if (!d)
        return;
    free(d->layers);
    free(d);
}

uint64_t decoder_state_bytes(const struct model_hparams *hp, int n_ctx)
{
    return attn_kv_bytes(hp->n_layer, n_ctx, hp->n_head_kv * hp->head_dim, hp->kv_f16 ? ATTN_KV_F16 : ATTN_KV_F32);
}

int decoder_state_init(const struct model *m, int n_ctx, void **state)
{
    const struct model_hparams *hp = model_hparams(m);
    struct attn_kv *kv = calloc(1, sizeof(*kv));
    if (!kv || attn_kv_init(kv, hp->n_layer, n_ctx, hp->n_head_kv * hp->head_dim,
                            hp->kv_f16 ? ATTN_KV_F16 : ATTN_KV_F32) < 0) {
        free(kv);
        return -ENOMEM;
    }
    *state = kv;
    return 0;
}

void decoder_state_reset(const struct model *m, void *state)
{
    /* positions past n_past are never read: nothing to clear */
    (void)m;
    (void)state;
}

void decoder_state_free(void *state)
{
    if (!state)
        return;
    attn_kv_free(state);
    free(state);
}

uint64_t decoder_scratch_bytes(const struct model_hparams *hp, int n_batch, int n_ctx, int n_threads)
{
    struct attn_hparams a;
    struct moe_hparams mo;
    hparams_split(hp, &a, &mo);
    uint64_t logits_rows = (uint64_t)n_batch * hp->n_vocab * sizeof(float); /* caller-held, counted here */
    return 3ull * n_batch * hp->n_embd * sizeof(float) + blocks_engine_bytes(hp, n_batch) + attn_scratch_bytes(&a, n_batch, n_ctx, n_threads) +
           moe_scratch_bytes(&mo, n_batch) + logits_rows;
}

int decoder_scratch_init(const struct model *m, int n_batch, int n_ctx, int n_threads, void **out)
{
    const struct model_hparams *hp = model_hparams(m);
    struct attn_hparams a;
    struct moe_hparams mo;
    hparams_split(hp, &a, &mo);
    struct decoder_scratch *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    size_t rows = (size_t)n_batch * hp->n_embd;
    s->x = calloc(rows, sizeof(float));
    s->xb = calloc(rows, sizeof(float));
    s->tmp = calloc(rows, sizeof(float));
    int rc = attn_scratch_init(&s->attn, &a, n_batch, n_ctx, n_threads);
    rc |= moe_scratch_init(&s->moe, &mo, n_batch);
    if (rc || !s->x || !s->xb || !s->tmp) {
        decoder_scratch_free(s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

void decoder_scratch_free(void *scratch)
{
    struct decoder_scratch *s = scratch;
    if (!s)
        return;
    free(s->x);
    free(s->xb);
    free(s->tmp);
    attn_scratch_free(&s->attn);
    moe_scratch_free(&s->moe);
    free(s);
}

int decoder_forward(struct fwd *f, const struct engine_batch *b, float *logits)
{
    const struct model_hparams *hp = model_hparams(f->m);
    const struct decoder *d = model_layers(f->m);
    struct decoder_scratch *s = f->scratch;
    int n = b->n, ne = hp->n_embd;

    blocks_embed(&d->tok_embd, b, s->x, ne);
    for (int t = 0; t < n; t++) {
        s->attn.kv[t] = b->seq[t]->state;
    }
    attn_prepare(&s->attn, &d->ahp, b);

    for (int il = 0; il < hp->n_layer; il++) {
        const struct decoder_layer *L = &d->layers[il];
        double t0 = blocks_now();
        blocks_norm_rows(f, s->xb, s->x, &L->attn_norm, n, ne, hp->rms_eps);
        attn_forward(f, &s->attn, &d->ahp, &L->attn, il, b, s->xb, s->tmp);
        for (size_t i = 0; i < (size_t)n * ne; i++)
            s->x[i] += s->tmp[i];
        f->times.attn_s += blocks_now() - t0;

        blocks_norm_rows(f, s->xb, s->x, &L->ffn_norm, n, ne, hp->rms_eps);
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
