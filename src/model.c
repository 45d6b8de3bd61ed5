/*
 * model.c - loads a split model for inference: reads hyper-parameters from the
 * manifest (never hard-coded), binds pinned tensor views by name, resolves the
 * RAM budget and opens the expert provider with what is left for the cache.
 */
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"
#include "session.h"

static int get_u32(const struct gguf_ctx *g, const char *arch, const char *key, int *out,
                   bool required, char *err, size_t errlen)
{
    char k[128];
    uint32_t v;
    snprintf(k, sizeof(k), "%s.%s", arch, key);
    int rc = gguf_get_u32(g, k, &v);
    if (rc == -ENOENT && !required)
        return 0;
    if (rc < 0 || v > (1u << 30)) {
        snprintf(err, errlen, "model: manifest key %s is %s (expected an unsigned integer)", k,
                 rc == -ENOENT ? "missing" : "invalid");
        return -EINVAL;
    }
    *out = (int)v;
    return 0;
}

static int get_f32(const struct gguf_ctx *g, const char *arch, const char *key, float *out,
                   char *err, size_t errlen)
{
    char k[128];
    snprintf(k, sizeof(k), "%s.%s", arch, key);
    int rc = gguf_get_f32(g, k, out);
    if (rc == -ENOENT)
        return 0; /* keep the default */
    if (rc < 0 || !isfinite(*out)) {
        snprintf(err, errlen, "model: manifest key %s is not a finite float", k);
        return -EINVAL;
    }
    return 0;
}

int model_read_hparams(const struct split_model *s, struct model_hparams *hp, char *err, size_t errlen)
{
    const struct gguf_ctx *g = s->manifest;
    const char *arch = NULL;
    memset(hp, 0, sizeof(*hp));
    if (gguf_get_str(g, "general.architecture", &arch) < 0) {
        snprintf(err, errlen, "model: %s: manifest has no general.architecture", s->dir);
        return -EINVAL;
    }
    snprintf(hp->arch_name, sizeof(hp->arch_name), "%s", arch);
    if (strcmp(arch, "qwen3moe") == 0) {
        hp->arch = ARCH_QWEN3MOE;
        hp->qk_norm = true;
        hp->rope_neox = true;
        hp->norm_topk = true;
    } else if (strcmp(arch, "llama") == 0) {
        hp->arch = ARCH_MIXTRAL;
        hp->qk_norm = false;
        hp->rope_neox = false;
        hp->norm_topk = true; /* softmax over the selected logits == renormalised top-k */
    } else {
        snprintf(err, errlen,
                 "model: %s: architecture '%s' is not supported yet (supported: qwen3moe, llama/Mixtral)",
                 s->dir, arch);
        return -ENOTSUP;
    }
    hp->rope_base = 10000.0f;
    hp->rms_eps = 1e-6f;
    int rc = 0;
    rc |= get_u32(g, arch, "block_count", &hp->n_layer, true, err, errlen);
    rc |= get_u32(g, arch, "embedding_length", &hp->n_embd, true, err, errlen);
    rc |= get_u32(g, arch, "attention.head_count", &hp->n_head, true, err, errlen);
    rc |= get_u32(g, arch, "attention.head_count_kv", &hp->n_head_kv, true, err, errlen);
    rc |= get_u32(g, arch, "expert_count", &hp->n_expert, true, err, errlen);
    rc |= get_u32(g, arch, "expert_used_count", &hp->n_expert_used, true, err, errlen);
    rc |= get_u32(g, arch, "context_length", &hp->n_ctx_train, false, err, errlen);
    if (rc)
        return -EINVAL;
    hp->head_dim = hp->n_head ? hp->n_embd / hp->n_head : 0;
    if (get_u32(g, arch, "attention.key_length", &hp->head_dim, false, err, errlen) < 0)
        return -EINVAL;
    if (get_u32(g, arch, "expert_feed_forward_length", &hp->n_ff_exp, false, err, errlen) < 0)
        return -EINVAL;
    if (hp->n_ff_exp == 0 && get_u32(g, arch, "feed_forward_length", &hp->n_ff_exp, true, err, errlen) < 0)
        return -EINVAL;
    if (get_f32(g, arch, "rope.freq_base", &hp->rope_base, err, errlen) < 0 ||
        get_f32(g, arch, "attention.layer_norm_rms_epsilon", &hp->rms_eps, err, errlen) < 0)
        return -EINVAL;
    if (hp->n_layer <= 0 || hp->n_embd <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 ||
        hp->n_head % hp->n_head_kv != 0 || hp->head_dim <= 0 || hp->head_dim % 2 != 0 ||
        hp->n_expert <= 0 || hp->n_expert_used <= 0 || hp->n_expert_used > hp->n_expert ||
        hp->n_ff_exp <= 0) {
        snprintf(err, errlen,
                 "model: %s: inconsistent hyper-parameters (layers %d, embd %d, heads %d/%d, head_dim %d, experts %d used %d)",
                 s->dir, hp->n_layer, hp->n_embd, hp->n_head, hp->n_head_kv, hp->head_dim,
                 hp->n_expert, hp->n_expert_used);
        return -EINVAL;
    }
    if (s->n_layer != hp->n_layer) {
        snprintf(err, errlen, "model: %s: manifest has %d layers, %s.block_count says %d", s->dir,
                 s->n_layer, arch, hp->n_layer);
        return -EINVAL;
    }
    const char *tokens_key = "tokenizer.ggml.tokens";
    enum gguf_vtype vt;
    uint64_t n_tok = 0;
    const void *data;
    if (gguf_get_arr(g, tokens_key, &vt, &n_tok, &data) < 0 || n_tok == 0) {
        snprintf(err, errlen, "model: %s: manifest has no tokenizer vocabulary (%s)", s->dir, tokens_key);
        return -EINVAL;
    }
    hp->n_vocab = (int)n_tok;
    return 0;
}

/* Binds a pinned tensor view; checks type known and the expected shape. */
static int bind(const struct model *m, struct mtensor *t, const char *name, int64_t ne0, int64_t ne1,
                bool required, char *err, size_t errlen)
{
    const struct split_tensor *st = split_find_tensor(m->split, name);
    if (!st) {
        if (!required)
            return 0;
        snprintf(err, errlen, "model: %s: tensor %s is missing from the split", m->split->dir, name);
        return -EINVAL;
    }
    if (st->ne[0] != ne0 || (ne1 > 0 && st->ne[1] != ne1)) {
        snprintf(err, errlen, "model: %s: tensor %s has shape [%lld, %lld], expected [%lld, %lld]",
                 m->split->dir, name, (long long)st->ne[0], (long long)st->ne[1], (long long)ne0,
                 (long long)(ne1 > 0 ? ne1 : st->ne[1]));
        return -EINVAL;
    }
    if (!quant_traits(st->type)->to_float) {
        snprintf(err, errlen, "model: %s: tensor %s has type %s, which has no kernel yet", m->split->dir,
                 name, quant_traits(st->type)->name);
        return -ENOTSUP;
    }
    t->data = m->pinned.base + st->offset;
    t->type = st->type;
    memcpy(t->ne, st->ne, sizeof(t->ne));
    return 0;
}

static int bind_part(const struct model *m, int il, const struct split_part **out, const char *name,
                     int64_t ne0, int64_t ne1, char *err, size_t errlen)
{
    const struct split_layer *l = &m->split->layers[il];
    const struct split_part *p = split_find_part(l, name);
    if (!p || p->ne[0] != ne0 || p->ne[1] != ne1 || !quant_traits(p->type)->vec_dot) {
        snprintf(err, errlen, "model: %s: layer %d expert part %s is %s (expected [%lld, %lld] of a supported type)",
                 m->split->dir, il, name, !p ? "missing" : "of the wrong shape or type", (long long)ne0,
                 (long long)ne1);
        return -EINVAL;
    }
    *out = p;
    return 0;
}

static int bind_all(struct model *m, char *err, size_t errlen)
{
    const struct model_hparams *hp = &m->hp;
    int64_t n_q = (int64_t)hp->n_head * hp->head_dim, n_kv = (int64_t)hp->n_head_kv * hp->head_dim;
    char nm[96];
    int rc;
    if ((rc = bind(m, &m->tok_embd, "token_embd.weight", hp->n_embd, hp->n_vocab, true, err, errlen)) ||
        (rc = bind(m, &m->output_norm, "output_norm.weight", hp->n_embd, 0, true, err, errlen)))
        return rc;
    /* An untied model has output.weight; a tied one reuses the embeddings. */
    if ((rc = bind(m, &m->output, "output.weight", hp->n_embd, hp->n_vocab, false, err, errlen)))
        return rc;
    if (!m->output.data)
        m->output = m->tok_embd;
    for (int il = 0; il < hp->n_layer; il++) {
        struct model_layer *L = &m->layers[il];
#define B(field, suffix, a, b, req)                                                          \
    do {                                                                                     \
        snprintf(nm, sizeof(nm), "blk.%d." suffix, il);                                      \
        if ((rc = bind(m, &L->field, nm, a, b, req, err, errlen)))                           \
            return rc;                                                                       \
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
        const struct split_layer *sl = &m->split->layers[il];
        if (sl->n_expert != hp->n_expert) {
            snprintf(err, errlen, "model: %s: layer %d has %d experts in the split, expected %d", m->split->dir,
                     il, sl->n_expert, hp->n_expert);
            return -EINVAL;
        }
        if ((rc = bind_part(m, il, &L->gate, "ffn_gate_exps.weight", hp->n_embd, hp->n_ff_exp, err, errlen)) ||
            (rc = bind_part(m, il, &L->up, "ffn_up_exps.weight", hp->n_embd, hp->n_ff_exp, err, errlen)) ||
            (rc = bind_part(m, il, &L->down, "ffn_down_exps.weight", hp->n_ff_exp, hp->n_embd, err, errlen)))
            return rc;
    }
    return 0;
}

/* Memory this process may use: MemAvailable, capped by a cgroup limit. */
static uint64_t available_memory(void)
{
    uint64_t avail = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
                avail = (uint64_t)kb * 1024;
        fclose(f);
    }
    /* cgroup v1 memory controller of this process, then cgroup v2 */
    f = fopen("/proc/self/cgroup", "r");
    if (f) {
        char line[1024], path[1200];
        while (fgets(line, sizeof(line), f)) {
            char *p = NULL;
            if (strstr(line, ":memory:"))
                p = strstr(line, ":memory:") + 8, snprintf(path, sizeof(path), "/sys/fs/cgroup/memory%s", p);
            else if (strncmp(line, "0::", 3) == 0)
                p = line + 3, snprintf(path, sizeof(path), "/sys/fs/cgroup%s", p);
            if (!p)
                continue;
            path[strcspn(path, "\n")] = 0;
            const char *files[] = { "memory.limit_in_bytes", "memory.max" };
            for (int i = 0; i < 2; i++) {
                char fp[1300];
                snprintf(fp, sizeof(fp), "%s/%s", path, files[i]);
                FILE *lf = fopen(fp, "r");
                unsigned long long lim;
                if (lf && fscanf(lf, "%llu", &lim) == 1 && lim < avail)
                    avail = lim;
                if (lf)
                    fclose(lf);
            }
        }
        fclose(f);
    }
    return avail;
}

int model_parse_size(const char *s, uint64_t *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return -EINVAL;
    double mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1024.0; end++; break;
    case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
    case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'B' || *end == 'b')
        end++;
    if (*end == 'B')
        end++;
    if (*end != 0)
        return -EINVAL;
    *out = (uint64_t)(v * mul);
    return 0;
}

/* Bytes held outside slots and pinned weights: allocator and stack slack,
 * I/O bookkeeping, the tokenizer. Counted in the budget. */
#define MODEL_SLACK_BYTES (96ull << 20)

/* Half the cache's slots, at least n_expert_used, at most n_expert. */
static int request_cap(const struct model *m)
{
    uint64_t slot = 0;
    for (int i = 0; i < m->split->n_layer; i++)
        if (m->split->layers[i].blob_size > slot)
            slot = m->split->layers[i].blob_size;
    uint64_t cap = slot ? m->cache_bytes / slot / 2 : 0;
    if (cap > (uint64_t)m->hp.n_expert)
        cap = (uint64_t)m->hp.n_expert;
    return cap < (uint64_t)m->hp.n_expert_used ? m->hp.n_expert_used : (int)cap;
}

int model_open(struct model **out, const char *dir, const struct model_opts *o, char *err, size_t errlen)
{
    int rc;
    struct model *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "model: out of memory");
        return -ENOMEM;
    }
    if ((rc = split_open(&m->split, dir, err, errlen)))
        goto fail;
    if ((rc = model_read_hparams(m->split, &m->hp, err, errlen)))
        goto fail;
    m->layers = calloc((size_t)m->hp.n_layer, sizeof(*m->layers));
    if (!m->layers) {
        rc = -ENOMEM;
        snprintf(err, errlen, "model: out of memory");
        goto fail;
    }

    uint64_t experts_total = 0, max_blob = 0;
    for (int il = 0; il < m->split->n_layer; il++) {
        const struct split_layer *l = &m->split->layers[il];
        experts_total += (uint64_t)l->n_expert * l->blob_size;
        if (l->blob_size > max_blob)
            max_blob = l->blob_size;
    }
    const struct model_hparams *hp = &m->hp;
    m->n_ctx = o->n_ctx > 0 ? o->n_ctx : hp->n_ctx_train > 0 && hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    m->n_batch = o->n_batch > 0 ? o->n_batch : 256;
    if (m->n_batch > m->n_ctx)
        m->n_batch = m->n_ctx;
    uint64_t kv = session_kv_bytes(hp, m->n_ctx),
             scratch = session_scratch_bytes(hp, m->n_ctx, m->n_batch, o->n_threads > 0 ? o->n_threads : 1);
    uint64_t fixed = m->split->pinned_file_size + kv + scratch + MODEL_SLACK_BYTES;
    uint64_t need_min = fixed + (uint64_t)m->hp.n_expert_used * max_blob;
    uint64_t budget = o->ram_budget;
    if (budget == 0) {
        uint64_t avail = available_memory();
        budget = avail / 10 * 8;
        if (budget > fixed + experts_total)
            budget = fixed + experts_total;
    }
    if (budget < need_min) {
        snprintf(err, errlen,
                 "model: %s: RAM budget %.2f GiB cannot hold the pinned weights (%.2f GiB), KV cache and scratch (%.2f GiB) and one layer's active experts (%.2f GiB): need at least --ram-budget %.2fG",
                 dir, budget / 1073741824.0, m->split->pinned_file_size / 1073741824.0,
                 (kv + scratch + MODEL_SLACK_BYTES) / 1073741824.0,
                 (double)m->hp.n_expert_used * max_blob / 1073741824.0, need_min / 1073741824.0 + 0.01);
        rc = -ENOMEM;
        goto fail;
    }
    m->ram_budget = budget;
    m->cache_bytes = budget - fixed;
    if (o->cache_bytes) {
        if (o->cache_bytes < (uint64_t)m->hp.n_expert_used * max_blob) {
            snprintf(err, errlen, "model: %s: an expert cache of %llu bytes cannot hold one layer's %d active experts (%llu bytes)",
                     dir, (unsigned long long)o->cache_bytes, m->hp.n_expert_used,
                     (unsigned long long)(m->hp.n_expert_used * max_blob));
            rc = -ENOMEM;
            goto fail;
        }
        m->cache_bytes = o->cache_bytes;
        m->ram_budget = fixed + o->cache_bytes;
    }
    if (m->cache_bytes > experts_total)
        m->cache_bytes = experts_total;

    m->request_cap = request_cap(m);
    if ((rc = pinned_load(&m->pinned, m->split, o->io.mlock, o->verify_pinned, err, errlen)))
        goto fail;
    if ((rc = bind_all(m, err, errlen)))
        goto fail;
    struct provider_opts po = o->io;
    po.cache_bytes = m->cache_bytes;
    po.max_active = m->hp.n_expert_used;
    if ((rc = provider_open(&m->prov, m->split, &po, err, errlen)))
        goto fail;
    *out = m;
    return 0;
fail:
    model_close(m);
    return rc;
}

int model_request_cap(const struct model *m)
{
    return m->request_cap;
}

int model_preload(struct model *m, void (*progress)(uint64_t done, uint64_t total), char *err, size_t errlen)
{
    uint64_t total = 0, done = 0;
    for (int il = 0; il < m->split->n_layer; il++)
        total += (uint64_t)m->split->layers[il].n_expert;
    for (int il = 0; il < m->split->n_layer; il++) {
        const struct split_layer *l = &m->split->layers[il];
        if (l->blob_size == 0)
            continue;
        /* stop when the cache is full: later requests would only evict */
        if ((done + (uint64_t)l->n_expert) * l->blob_size > m->cache_bytes)
            break;
        int ids[64];
        for (int e0 = 0; e0 < l->n_expert; e0 += 64) {
            int n = l->n_expert - e0 < 64 ? l->n_expert - e0 : 64;
            for (int i = 0; i < n; i++)
                ids[i] = e0 + i;
            int rc = provider_request(m->prov, il, ids, n);
            int e;
            const uint8_t *blob;
            while (rc >= 0 && (rc = provider_next(m->prov, &e, &blob)) > 0)
                provider_release(m->prov, il, e);
            if (rc < 0) {
                snprintf(err, errlen, "%s", provider_error(m->prov));
                return rc;
            }
            done += (uint64_t)n;
            if (progress)
                progress(done, total);
        }
    }
    return 0;
}

void model_close(struct model *m)
{
    if (!m)
        return;
    if (m->prov)
        provider_close(m->prov);
    if (m->pinned.base)
        pinned_free(&m->pinned);
    free(m->layers);
    if (m->split)
        split_close(m->split);
    free(m);
}
