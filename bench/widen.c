/*
 * widen.c - zero-padding the routed experts of a GGUF (see widen.h).
 */
#include "widen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_writer.h"
#include "qformat.h"

enum widen_kind { WIDEN_NONE = 0, WIDEN_ROWS, WIDEN_COLS };

static enum widen_kind tensor_kind(const char *name)
{
    const char *d = strrchr(name, '.');
    if (!d || strncmp(name, "blk.", 4))
        return WIDEN_NONE;
    /* the part before ".weight": ffn_gate_exps, ffn_up_exps, ffn_down_exps */
    size_t n = (size_t)(d - name);
    static const struct { const char *suffix; enum widen_kind k; } tab[] = {
        { "ffn_gate_exps", WIDEN_ROWS }, { "ffn_up_exps", WIDEN_ROWS }, { "ffn_down_exps", WIDEN_COLS },
    };
    if (strcmp(d, ".weight"))
        return WIDEN_NONE;
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
        size_t ls = strlen(tab[i].suffix);
        if (n > ls && name[n - ls - 1] == '.' && !strncmp(name + n - ls, tab[i].suffix, ls))
            return tab[i].k;
    }
    return WIDEN_NONE;
}

/* Shape of t once widened; 0 or -EINVAL. */
static int widened_shape(const struct gguf_tensor *t, enum widen_kind k, int64_t n_ff, int64_t ne[GGUF_MAX_DIMS],
                         char *err, size_t errlen)
{
    memcpy(ne, t->ne, sizeof(t->ne));
    int dim = k == WIDEN_ROWS ? 1 : 0;
    if (t->n_dims != 3) {
        snprintf(err, errlen, "tensor %s: expected 3 dimensions (stacked experts), got %u", t->name, t->n_dims);
        return -EINVAL;
    }
    if (n_ff < t->ne[dim]) {
        snprintf(err, errlen, "tensor %s: --widen-experts %lld is smaller than its n_ff_exp %lld", t->name,
                 (long long)n_ff, (long long)t->ne[dim]);
        return -EINVAL;
    }
    ne[dim] = n_ff;
    if (k == WIDEN_COLS && qformat_row_size(t->type, n_ff) == 0) {
        snprintf(err, errlen, "tensor %s: n_ff %lld is not a multiple of the %s block size %lld", t->name,
                 (long long)n_ff, qformat_name(t->type), (long long)qformat_get(t->type)->blck_size);
        return -EINVAL;
    }
    return 0;
}

int widen_experts(const char *src, const char *dst, int n_ff, uint64_t *bytes_out, char *err, size_t errlen)
{
    struct gguf_ctx *g = NULL;
    struct gguf_writer *w = NULL;
    uint8_t *in = NULL, *out = NULL;
    char tmp[4096] = "";
    int rc = gguf_open(&g, src, err, errlen);
    if (rc)
        return rc;
    const char *arch = NULL;
    char key[256];
    if (gguf_get_str(g, "general.architecture", &arch)) {
        snprintf(err, errlen, "%s: no general.architecture key", src);
        rc = -EINVAL;
        goto done;
    }
    snprintf(key, sizeof(key), "%s.expert_feed_forward_length", arch);
    w = gguf_writer_init(gguf_alignment(g));
    if (!w) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const struct gguf_kv *kv = gguf_kv_at(g, i);
        if (!strcmp(kv->key.ptr, key))
            rc = gguf_writer_set_u32(w, key, (uint32_t)n_ff);
        else if (!strcmp(kv->key.ptr, "general.alignment"))
            continue;
        else
            rc = gguf_writer_copy_kv(w, kv);
        if (rc) {
            snprintf(err, errlen, "%s: cannot copy key %s", dst, kv->key.ptr);
            goto done;
        }
    }
    if (!gguf_find_kv(g, key) && gguf_writer_set_u32(w, key, (uint32_t)n_ff)) {
        rc = -EINVAL;
        snprintf(err, errlen, "%s: cannot set %s", dst, key);
        goto done;
    }
    int n_widened = 0;
    size_t max_in = 0, max_out = 0;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        int64_t ne[GGUF_MAX_DIMS];
        enum widen_kind k = tensor_kind(t->name);
        if (k == WIDEN_NONE) {
            memcpy(ne, t->ne, sizeof(ne));
        } else {
            if ((rc = widened_shape(t, k, n_ff, ne, err, errlen)))
                goto done;
            n_widened++;
            size_t slice_out = qformat_row_size(t->type, ne[0]) * (size_t)ne[1];
            if (slice_out > max_out)
                max_out = slice_out;
        }
        size_t slice_in = k == WIDEN_NONE ? (size_t)t->size : (size_t)(t->size / (uint64_t)t->ne[2]);
        if (slice_in > max_in)
            max_in = slice_in;
        if (gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, ne) < 0) {
            rc = -EINVAL;
            snprintf(err, errlen, "%s: cannot add tensor %s", dst, t->name);
            goto done;
        }
    }
    if (!n_widened) {
        rc = -EINVAL;
        snprintf(err, errlen, "%s: no ffn_{gate,up,down}_exps tensors to widen", src);
        goto done;
    }
    in = malloc(max_in ? max_in : 1);
    out = malloc(max_out ? max_out : 1);
    if (!in || !out) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory (%zu + %zu bytes)", max_in, max_out);
        goto done;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", dst, (long)getpid());
    if ((rc = gguf_writer_begin(w, tmp, err, errlen)))
        goto done;
    uint64_t written = 0;
    for (int64_t i = 0; i < gguf_n_tensors(g) && !rc; i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        enum widen_kind k = tensor_kind(t->name);
        if (k == WIDEN_NONE) {
            /* non-expert tensors are small in the models this is for */
            if (!(rc = gguf_read_tensor(g, t, 0, in, t->size, err, errlen)))
                rc = gguf_writer_write(w, in, t->size, err, errlen);
            written += t->size;
            continue;
        }
        size_t in_row = qformat_row_size(t->type, t->ne[0]);
        size_t slice_in = in_row * (size_t)t->ne[1];
        for (int64_t e = 0; e < t->ne[2] && !rc; e++) {
            if ((rc = gguf_read_tensor(g, t, (uint64_t)e * slice_in, in, slice_in, err, errlen)))
                break;
            size_t n_out;
            if (k == WIDEN_ROWS) {
                /* rows of n_embd stay; n_ff - ne[1] zero rows follow */
                n_out = in_row * (size_t)n_ff;
                memcpy(out, in, slice_in);
                memset(out + slice_in, 0, n_out - slice_in);
            } else {
                size_t out_row = qformat_row_size(t->type, n_ff);
                n_out = out_row * (size_t)t->ne[1];
                for (int64_t r = 0; r < t->ne[1]; r++) {
                    memcpy(out + (size_t)r * out_row, in + (size_t)r * in_row, in_row);
                    memset(out + (size_t)r * out_row + in_row, 0, out_row - in_row);
                }
            }
            rc = gguf_writer_write(w, out, n_out, err, errlen);
            written += n_out;
        }
    }
    if (rc)
        goto done;
    if ((rc = gguf_writer_finish(w, err, errlen)))
        goto done;
    if (rename(tmp, dst)) {
        rc = -errno;
        snprintf(err, errlen, "%s: cannot rename from %s: %s", dst, tmp, strerror(errno));
        goto done;
    }
    tmp[0] = 0;
    if (bytes_out)
        *bytes_out = written;
done:
    if (tmp[0])
        unlink(tmp);
    gguf_writer_free(w);
    gguf_close(g);
    free(in);
    free(out);
    return rc;
}
