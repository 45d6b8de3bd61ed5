/*
 * server_sched.c - the one thread of `moestream serve` that owns the engine.
 * Requests wait in a bounded FIFO; up to --parallel of them hold a sequence
 * slot. Every step carries one decode row per generating slot plus prompt
 * rows of the slots still prefilling (as `moestream batch` does), so the
 * requests share each expert read. A slot keeps the tokens its state holds:
 * a request whose prompt extends them (the next turn of a conversation)
 * evaluates only the new suffix, and the free slot with the longest common
 * prefix is chosen. Client cancellation is checked before every step.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "provider.h"
#include "model.h"
#include "seq.h"
#include "server.h"
#include "tokenizer.h"

struct slot {
    struct seq *q;
    int32_t *cache;            /* tokens whose state q holds: [0, q->n_past) */
    struct srv_req *r;         /* NULL: free */
    int fed;                   /* prompt tokens in the state */
    bool decoding;
    int32_t pending;           /* decode: the token to evaluate next */
    struct sampler *smp;
    struct tok_stream ts;
    struct chatparse *cp;
    char *gen;                 /* generated text */
    size_t gen_len, gen_cap, sent;
    int32_t *ids;              /* generated ids */
    int n_gen;
    struct srv_timings t;
    double t0, t_first;
    uint64_t lru;
};

struct sched {
    pthread_t th;
    bool started;
    struct slot *slots;
    int n_slots, n_batch;
    int32_t *rt, *rp;
    struct seq **rs;
    uint8_t *ro;
    int *row_slot;
    float *logits;             /* one row per slot */
    char *piece;
    size_t piece_cap;
    uint64_t lru_clock;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* --- per-slot generation (server.mu held) ------------------------------ */

static int gen_append(struct slot *sl, const char *p, int n)
{
    if (n <= 0)
        return 0;
    if (sl->gen_len + (size_t)n + 1 > sl->gen_cap) {
        size_t cap = (sl->gen_len + (size_t)n + 1) * 2 + 64;
        char *g = realloc(sl->gen, cap);
        if (!g)
            return -ENOMEM;
        sl->gen = g;
        sl->gen_cap = cap;
    }
    memcpy(sl->gen + sl->gen_len, p, (size_t)n);
    sl->gen_len += (size_t)n;
    sl->gen[sl->gen_len] = 0;
    return 0;
}

/* Sends final text [sent, upto) on its way: to the client when streaming,
 * through the output parser for chat. */
static int slot_emit(struct slot *sl, size_t upto, bool finish)
{
    struct srv_req *r = sl->r;
    const char *p = sl->gen + sl->sent;
    size_t n = upto - sl->sent;
    sl->sent = upto;
    if (r->kind == SRV_COMPLETION)
        return r->stream && n ? sse_text(r, p, n, NULL, NULL) : 0;
    return sse_chat_feed(r, sl->cp, p, n, finish);
}

/* Bytes at the end of the generation that may still become a stop string. */
static size_t stop_hold(const struct slot *sl)
{
    size_t hold = 0;
    for (int i = 0; i < sl->r->n_stop; i++) {
        const char *st = sl->r->stop[i];
        size_t sl_len = strlen(st);
        for (size_t k = sl_len - 1; k > hold; k--)
            if (k <= sl->gen_len - sl->sent && !memcmp(sl->gen + sl->gen_len - k, st, k)) {
                hold = k;
                break;
            }
    }
    return hold;
}

/* First stop string match at or after `from`; gen_len when none. */
static size_t stop_find(const struct slot *sl, size_t from)
{
    size_t best = sl->gen_len;
    for (int i = 0; i < sl->r->n_stop; i++) {
        const char *hit = memmem(sl->gen + from, sl->gen_len - from, sl->r->stop[i], strlen(sl->r->stop[i]));
        if (hit && (size_t)(hit - sl->gen) < best)
            best = (size_t)(hit - sl->gen);
    }
    return best;
}

static void slot_release(struct server *s, struct slot *sl)
{
    struct srv_req *r = sl->r;
    r->state = SRV_DONE;
    pthread_cond_broadcast(&r->cv);
    server_req_put_locked(r);
    sl->r = NULL;
    sampler_free(sl->smp);
    sl->smp = NULL;
    chatparse_free(sl->cp);
    sl->cp = NULL;
    s->met.active--;
}

static void slot_finish(struct server *s, struct sched *sc, struct slot *sl, const char *reason)
{
    struct srv_req *r = sl->r;
    double now = now_s();
    int fl = tok_stream_flush(&sl->ts, sc->piece, sc->piece_cap);
    gen_append(sl, sc->piece, fl);
    size_t cut = stop_find(sl, sl->sent);
    if (cut < sl->gen_len) {
        sl->gen_len = cut;
        reason = "stop";
    }
    sl->t.predicted_ms = sl->t_first > 0 ? 1000 * (now - sl->t_first) : 0;
    if (sl->t_first == 0)
        sl->t.prompt_ms = 1000 * (now - sl->t0);
    int rc = slot_emit(sl, sl->gen_len, true);
    if (r->kind == SRV_CHAT && chatparse_result(sl->cp)->n_calls && !strcmp(reason, "stop"))
        reason = "tool_calls";
    if (r->stream) {
        if (!rc)
            rc = r->kind == SRV_CHAT ? sse_chat_delta(r, json_object(), reason, &sl->t)
                                     : sse_text(r, "", 0, reason, &sl->t);
        if (!rc)
            rc = sse_end(r, &sl->t);
    } else {
        r->body = r->kind == SRV_CHAT
                      ? sse_chat_body(r, chatparse_result(sl->cp), reason, &sl->t)
                      : sse_text_body(r, sl->gen, sl->gen_len, reason, &sl->t, r->return_tokens ? sl->ids : NULL,
                                      sl->n_gen);
        r->status = r->body ? 200 : 500;
        rc = r->body ? 0 : -ENOMEM;
    }
    if (rc)
        s->met.requests_error++;
    else
        s->met.requests_ok++;
    s->met.prompt_s += sl->t.prompt_ms / 1000;
    s->met.gen_s += sl->t.predicted_ms / 1000;
    slot_release(s, sl);
}

static void slot_fail(struct server *s, struct slot *sl, const char *msg)
{
    struct srv_req *r = sl->r;
    if (r->stream)
        sse_error(r, msg);
    else {
        free(r->body);
        r->body = server_error_body(500, NULL, "%s", msg);
        r->status = 500;
    }
    s->met.requests_error++;
    slot_release(s, sl);
}

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb)
{
    int k = 0;
    while (k < na && k < nb && a[k] == b[k])
        k++;
    return k;
}

/* Puts r into the free slot sharing the longest prompt prefix. */
static int slot_start(struct server *s, struct sched *sc, struct srv_req *r)
{
    int best = -1, best_k = -1;
    for (int i = 0; i < sc->n_slots; i++) {
        struct slot *sl = &sc->slots[i];
        if (sl->r)
            continue;
        int k = common_prefix(sl->cache, sl->q->n_past, r->prompt, r->n_prompt);
        if (k > best_k || (k == best_k && sl->lru < sc->slots[best].lru)) {
            best = i;
            best_k = k;
        }
    }
    struct slot *sl = &sc->slots[best];
    int keep = best_k < r->n_prompt ? best_k : r->n_prompt - 1; /* the last prompt token gives the logits */
    /* a positional state (KV or latent cache) is cut back to the shared
     * prefix and positions from keep on are overwritten by the new rows; a
     * recurrent or ring state cannot be cut back and starts over */
    if (seq_rewind(sl->q, keep) < 0) {
        seq_reset(sl->q);
        keep = 0;
    }
    sl->smp = sampler_init(&r->samp, s->n_vocab);
    if (r->kind == SRV_CHAT && chatparse_init(&sl->cp, &r->po))
        sl->cp = NULL;
    if (!sl->smp || (r->kind == SRV_CHAT && !sl->cp)) {
        sampler_free(sl->smp);
        sl->smp = NULL;
        return -ENOMEM;
    }
    for (int i = 0; i < r->n_prompt; i++)
        sampler_accept(sl->smp, r->prompt[i]);
    tok_stream_init(&sl->ts, s->tok, false);
    sl->r = r;
    sl->fed = keep;
    sl->decoding = false;
    sl->gen_len = sl->sent = 0;
    sl->n_gen = 0;
    memset(&sl->t, 0, sizeof(sl->t));
    sl->t.cache_n = keep;
    sl->t.prompt_n = r->n_prompt - keep;
    sl->t0 = now_s();
    sl->t_first = 0;
    sl->lru = ++sc->lru_clock;
    r->state = SRV_ACTIVE;
    s->met.active++;
    s->met.prompt_tokens += (uint64_t)(r->n_prompt - keep);
    s->met.prompt_reused += (uint64_t)keep;
    if (r->stream && r->kind == SRV_CHAT)
        sse_chat_delta(r, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL, NULL);
    return 0;
}

/* After a step: sample for a slot whose row produced logits. */
static void slot_token(struct server *s, struct sched *sc, struct slot *sl, float *lg)
{
    struct srv_req *r = sl->r;
    if (!sl->decoding) {
        sl->decoding = true;
        sl->t_first = now_s();
        sl->t.prompt_ms = 1000 * (sl->t_first - sl->t0);
    }
    if (r->max_tokens >= 0 && sl->n_gen >= r->max_tokens)
        return slot_finish(s, sc, sl, "length");
    if (sl->q->n_past >= s->n_ctx)
        return slot_finish(s, sc, sl, "length");
    int32_t id = sampler_sample(sl->smp, lg);
    if (tok_is_eog(s->tok, id))
        return slot_finish(s, sc, sl, "stop");
    sampler_accept(sl->smp, id);
    sl->ids[sl->n_gen++] = id;
    s->met.gen_tokens++;
    sl->t.predicted_n = sl->n_gen;
    sl->pending = id;
    int pl = tok_stream_push(&sl->ts, id, sc->piece, sc->piece_cap);
    if (gen_append(sl, sc->piece, pl))
        return slot_fail(s, sl, "out of memory");
    /* a match starts after the emitted text: partial matches are held back */
    if (r->n_stop && stop_find(sl, sl->sent) < sl->gen_len)
        return slot_finish(s, sc, sl, "stop");
    if (slot_emit(sl, sl->gen_len - stop_hold(sl), false))
        return slot_fail(s, sl, "out of memory");
    if (r->max_tokens >= 0 && sl->n_gen >= r->max_tokens)
        return slot_finish(s, sc, sl, "length");
}

static void *sched_main(void *arg)
{
    struct server *s = arg;
    struct sched *sc = s->sched;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        /* cancelled requests leave their slot; queued ones enter free slots */
        for (int i = 0; i < sc->n_slots; i++)
            if (sc->slots[i].r && atomic_load(&sc->slots[i].r->cancel)) {
                s->met.cancelled++;
                slot_release(s, &sc->slots[i]);
            }
        struct srv_req *r;
        while (s->met.active < sc->n_slots && (r = server_queue_pop(s))) {
            if (atomic_load(&r->cancel) || slot_start(s, sc, r)) {
                if (atomic_load(&r->cancel))
                    s->met.cancelled++;
                else {
                    r->status = 500;
                    r->body = server_error_body(500, NULL, "out of memory");
                    s->met.requests_error++;
                }
                r->state = SRV_DONE;
                pthread_cond_broadcast(&r->cv);
                server_req_put_locked(r);
            }
        }
        if (s->met.active == 0) {
            if (s->stopping)
                break;
            pthread_cond_wait(&s->work, &s->mu);
            continue;
        }
        /* one step: a decode row per generating slot, then prompt rows */
        int n = 0;
        for (int i = 0; i < sc->n_slots && n < sc->n_batch; i++) {
            struct slot *sl = &sc->slots[i];
            if (sl->r && sl->decoding) {
                sc->rt[n] = sl->pending;
                sc->rp[n] = sl->q->n_past;
                sc->rs[n] = sl->q;
                sc->ro[n] = 1;
                sc->row_slot[n++] = i;
            }
        }
        for (int i = 0; i < sc->n_slots && n < sc->n_batch; i++) {
            struct slot *sl = &sc->slots[i];
            if (!sl->r || sl->decoding)
                continue;
            int pos = sl->fed;
            while (sl->fed < sl->r->n_prompt && n < sc->n_batch) {
                sc->rt[n] = sl->r->prompt[sl->fed];
                sc->rp[n] = pos++;
                sc->rs[n] = sl->q;
                sc->ro[n] = sl->fed == sl->r->n_prompt - 1;
                sc->row_slot[n++] = i;
                sl->fed++;
            }
        }
        pthread_mutex_unlock(&s->mu);
        struct provider_stats p0, p1;
        struct engine_times e0, e1;
        provider_get_stats(engine_provider(s->e), &p0);
        engine_get_times(s->e, &e0);
        double t0 = now_s();
        int rc = engine_step(s->e, &(struct engine_batch){ n, sc->rt, sc->rp, sc->rs, sc->ro }, sc->logits);
        double dt = now_s() - t0;
        provider_get_stats(engine_provider(s->e), &p1);
        engine_get_times(s->e, &e1);
        pthread_mutex_lock(&s->mu);
        s->met.steps++;
        s->met.busy_s += dt;
        s->met.bytes_read += p1.bytes_read - p0.bytes_read;
        s->met.hits += p1.hits - p0.hits;
        s->met.misses += p1.misses - p0.misses;
        s->met.io_wait_s += e1.io_wait_s - e0.io_wait_s;
        for (int i = 0; i < sc->n_slots; i++) {
            struct slot *sl = &sc->slots[i];
            bool in = false;
            for (int t = 0; t < n && !in; t++)
                in = sc->row_slot[t] == i;
            if (!in || !sl->r)
                continue;
            sl->t.bytes_read += p1.bytes_read - p0.bytes_read;
            sl->t.hits += p1.hits - p0.hits;
            sl->t.misses += p1.misses - p0.misses;
            sl->t.io_wait_ms += 1000 * (e1.io_wait_s - e0.io_wait_s);
            sl->t.step_ms += 1000 * dt;
        }
        if (rc < 0) {
            char msg[600];
            snprintf(msg, sizeof(msg), "engine: %s", engine_error(s->e));
            for (int t = 0; t < n; t++) {
                struct slot *sl = &sc->slots[sc->row_slot[t]];
                seq_reset(sl->q);
                if (sl->r)
                    slot_fail(s, sl, msg);
            }
            continue;
        }
        for (int t = 0; t < n; t++)
            sc->slots[sc->row_slot[t]].cache[sc->rp[t]] = sc->rt[t];
        int li = 0;
        for (int t = 0; t < n; t++) {
            if (!sc->ro[t])
                continue;
            struct slot *sl = &sc->slots[sc->row_slot[t]];
            float *lg = sc->logits + (size_t)li++ * s->n_vocab;
            if (sl->r)
                slot_token(s, sc, sl, lg);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void sched_free(struct sched *sc)
{
    if (!sc)
        return;
    for (int i = 0; sc->slots && i < sc->n_slots; i++) {
        seq_free(sc->slots[i].q);
        free(sc->slots[i].cache);
        free(sc->slots[i].gen);
        free(sc->slots[i].ids);
        sampler_free(sc->slots[i].smp);
        chatparse_free(sc->slots[i].cp);
    }
    free(sc->slots);
    free(sc->rt);
    free(sc->rp);
    free(sc->rs);
    free(sc->ro);
    free(sc->row_slot);
    free(sc->logits);
    free(sc->piece);
    free(sc);
}

int server_sched_start(struct server *s, char *err, size_t errlen)
{
    struct sched *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return snprintf(err, errlen, "out of memory"), -ENOMEM;
    sc->n_slots = s->o.parallel;
    sc->n_batch = engine_n_batch(s->e);
    sc->piece_cap = 3 * tok_max_piece(s->tok) + 16;
    sc->slots = calloc((size_t)sc->n_slots, sizeof(*sc->slots));
    sc->rt = malloc(sizeof(int32_t) * (size_t)sc->n_batch);
    sc->rp = malloc(sizeof(int32_t) * (size_t)sc->n_batch);
    sc->rs = malloc(sizeof(*sc->rs) * (size_t)sc->n_batch);
    sc->ro = malloc((size_t)sc->n_batch);
    sc->row_slot = malloc(sizeof(int) * (size_t)sc->n_batch);
    sc->logits = malloc(sizeof(float) * (size_t)sc->n_slots * (size_t)s->n_vocab);
    sc->piece = malloc(sc->piece_cap);
    if (!sc->slots || !sc->rt || !sc->rp || !sc->rs || !sc->ro || !sc->row_slot || !sc->logits ||
        !sc->piece) {
        sched_free(sc);
        return snprintf(err, errlen, "out of memory for the scheduler"), -ENOMEM;
    }
    for (int i = 0; i < sc->n_slots; i++) {
        struct slot *sl = &sc->slots[i];
        int rc = seq_init(&sl->q, s->m, s->n_ctx, err, errlen);
        if (rc) {
            sched_free(sc);
            return rc;
        }
        sl->cache = malloc(sizeof(int32_t) * (size_t)s->n_ctx);
        sl->ids = malloc(sizeof(int32_t) * (size_t)s->n_ctx);
        if (!sl->cache || !sl->ids) {
            sched_free(sc);
            return snprintf(err, errlen, "out of memory for the slots"), -ENOMEM;
        }
    }
    s->sched = sc;
    s->stopping = false;
    if (pthread_create(&sc->th, NULL, sched_main, s)) {
        s->sched = NULL;
        sched_free(sc);
        return snprintf(err, errlen, "cannot start the scheduler thread"), -EAGAIN;
    }
    sc->started = true;
    pthread_mutex_lock(&s->mu);
    s->accepting = true;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void server_sched_stop(struct server *s, double timeout_s)
{
    struct sched *sc = s->sched;
    if (!sc)
        return;
    double end = now_s() + timeout_s;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool idle = s->q_len == 0 && s->met.active == 0;
        if (idle || now_s() > end) {
            for (int i = 0; i < s->q_len; i++)
                atomic_store(&s->queue[(s->q_head + i) % s->q_cap]->cancel, 1);
            for (int i = 0; i < sc->n_slots; i++)
                if (sc->slots[i].r)
                    atomic_store(&sc->slots[i].r->cancel, 1);
            s->stopping = true;
            s->accepting = false;
            pthread_cond_signal(&s->work);
            pthread_mutex_unlock(&s->mu);
            break;
        }
        pthread_mutex_unlock(&s->mu);
        usleep(20000);
    }
    pthread_join(sc->th, NULL);
    s->sched = NULL;
    sched_free(sc);
}
