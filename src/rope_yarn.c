/*
 * rope_yarn.c - scaled rotary embeddings (see rope_yarn.h).
 */
#include "rope_yarn.h"

#include <math.h>

/* The dimension whose wavelength fits n_ctx_orig / n_turns times. */
static float corr_dim(int n_rot, int n_ctx_orig, float n_turns, float base)
{
    return n_rot * logf(n_ctx_orig / (n_turns * 2.0f * (float)M_PI)) / (2.0f * logf(base));
}

/* HF transformers' yarn_get_mscale. */
static float yarn_mscale(float factor, float m)
{
    return factor <= 1.0f ? 1.0f : 0.1f * m * logf(factor) + 1.0f;
}

void rope_yarn_init(struct rope_yarn *r, int n_rot, float base, enum rope_scaling type, float factor, int n_ctx_orig,
                    float beta_fast, float beta_slow, float log_mul_gguf)
{
    *r = (struct rope_yarn){ .n_rot = n_rot, .base = base, .freq_scale = 1.0f, .attn_factor = 1.0f };
    /* the converter stores mscale_all_dim * 0.1; llama.cpp divides it back */
    r->log_mul = log_mul_gguf / 0.1f;
    if (type == ROPE_SCALING_NONE || factor <= 0.0f)
        return;
    r->freq_scale = 1.0f / factor;
    if (type != ROPE_SCALING_YARN)
        return;
    r->ext_factor = 1.0f;
    float f = 1.0f / r->freq_scale;
    if (r->log_mul != 0.0f) {
        /* DeepSeek: mscale == mscale_all_dim, so the ratio is 1 */
        float m = r->log_mul != 1.0f ? r->log_mul : 1.0f;
        r->attn_factor = yarn_mscale(f, m) / yarn_mscale(f, r->log_mul);
    } else {
        r->attn_factor = yarn_mscale(f, 1.0f);
    }
    /* the rope op multiplies by (1 + 0.1 ln f) again; cancel it here */
    r->attn_factor *= 1.0f / (1.0f + 0.1f * logf(f));
    float lo = floorf(corr_dim(n_rot, n_ctx_orig, beta_fast, base));
    float hi = ceilf(corr_dim(n_rot, n_ctx_orig, beta_slow, base));
    r->corr[0] = lo > 0 ? lo : 0;
    r->corr[1] = hi < n_rot - 1 ? hi : (float)(n_rot - 1);
}

void rope_yarn_table(const struct rope_yarn *r, float *cs, float *sn, int pos)
{
    int half = r->n_rot / 2;
    float theta_scale = powf(r->base, -2.0f / r->n_rot);
    float theta_ex = (float)pos;
    float mscale = r->attn_factor;
    if (r->ext_factor != 0.0f)
        mscale *= 1.0f + 0.1f * logf(1.0f / r->freq_scale);
    for (int i = 0; i < half; i++) {
        float theta_in = r->freq_scale * theta_ex, theta = theta_in;
        if (r->ext_factor != 0.0f) {
            float d = r->corr[1] - r->corr[0];
            float y = (i - r->corr[0]) / (d > 0.001f ? d : 0.001f);
            float ramp = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * r->ext_factor;
            theta = theta_in * (1.0f - ramp) + theta_ex * ramp;
        }
        cs[i] = cosf(theta) * mscale;
        sn[i] = sinf(theta) * mscale;
        theta_ex *= theta_scale;
    }
}

float rope_yarn_kq_scale(const struct rope_yarn *r, int dk)
{
    float ln_f = logf(1.0f / r->freq_scale);
    /* undo the cancellation above: the attention factor before it */
    float attn_org = r->attn_factor * (1.0f + 0.1f * ln_f);
    float mscale = attn_org * (1.0f + 0.1f * r->log_mul * ln_f);
    return mscale * mscale / sqrtf((float)dk);
}
