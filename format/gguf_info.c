/*
 * gguf_info.c - the human-readable summary of a GGUF file
 * (`moestream-split info`), through the reader's public accessors only.
 */
#include "gguf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "qformat.h"

static bool vt_signed(enum gguf_vtype t)
{
    return t == GGUF_VT_INT8 || t == GGUF_VT_INT16 || t == GGUF_VT_INT32 || t == GGUF_VT_INT64;
}


static void print_str(FILE *out, const struct gguf_str *s, size_t max)
{
    fputc('"', out);
    for (uint64_t i = 0; i < s->len && i < max; i++) {
        unsigned char c = (unsigned char)s->ptr[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
    if (s->len > max)
        fprintf(out, "...(%" PRIu64 " bytes)", s->len);
}

static void print_value(FILE *out, const struct gguf_value *v, int depth)
{
    switch (v->type) {
    case GGUF_VT_STRING:
        print_str(out, &v->str, 64);
        break;
    case GGUF_VT_BOOL:
        fputs(v->u64 ? "true" : "false", out);
        break;
    case GGUF_VT_FLOAT32: case GGUF_VT_FLOAT64:
        fprintf(out, "%.9g", v->f64);
        break;
    case GGUF_VT_ARRAY: {
        uint64_t show = depth ? 3 : 6;
        fprintf(out, "[%s; %" PRIu64 "]", gguf_vtype_name(v->arr.type), v->arr.n);
        if (v->arr.n == 0)
            break;
        fputs(" [", out);
        for (uint64_t i = 0; i < v->arr.n && i < show; i++) {
            if (i)
                fputs(", ", out);
            struct gguf_value e;
            if (v->arr.type == GGUF_VT_STRING) {
                e.type = GGUF_VT_STRING;
                e.str = ((const struct gguf_str *)v->arr.data)[i];
            } else if (v->arr.type == GGUF_VT_ARRAY) {
                e = ((const struct gguf_value *)v->arr.data)[i];
            } else {
                e.type = v->arr.type;
                if (e.type == GGUF_VT_FLOAT32 || e.type == GGUF_VT_FLOAT64)
                    e.f64 = gguf_arr_f64(e.type, v->arr.data, i);
                else if (vt_signed(e.type))
                    e.i64 = gguf_arr_i64(e.type, v->arr.data, i);
                else
                    e.u64 = gguf_arr_u64(e.type, v->arr.data, i);
            }
            print_value(out, &e, depth + 1);
        }
        fputs(v->arr.n > show ? ", ...]" : "]", out);
        break;
    }
    default:
        if (vt_signed(v->type))
            fprintf(out, "%" PRId64, v->i64);
        else
            fprintf(out, "%" PRIu64, v->u64);
        break;
    }
}

int gguf_print_info(const struct gguf_ctx *g, FILE *out)
{
    int n_parts = gguf_n_parts(g);
    fprintf(out, "GGUF v%" PRIu32 ", alignment %" PRIu64 ", %d part%s, %" PRId64 " kvs, %" PRId64
            " tensors\n", gguf_version(g), gguf_alignment(g), n_parts, n_parts == 1 ? "" : "s",
            gguf_n_kv(g), gguf_n_tensors(g));
    for (int k = 0; k < n_parts; k++)
        fprintf(out, "part %d: %s (%" PRIu64 " bytes, data at %" PRIu64 ")\n", k + 1, gguf_part_path(g, k),
                gguf_part_size(g, k), gguf_part_data_offset(g, k));
    fputs("metadata:\n", out);
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const struct gguf_kv *kv = gguf_kv_at(g, i);
        fprintf(out, "  %-40s %-4s = ", kv->key.ptr, gguf_vtype_name(kv->val.type));
        print_value(out, &kv->val, 0);
        fputc('\n', out);
    }
    fputs("tensors:\n", out);
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(g, i);
        char shape[128];
        int n = snprintf(shape, sizeof(shape), "[");
        for (uint32_t d = 0; d < t->n_dims; d++)
            n += snprintf(shape + n, sizeof(shape) - (size_t)n, "%s%" PRId64, d ? ", " : "", t->ne[d]);
        snprintf(shape + n, sizeof(shape) - (size_t)n, "]");
        fprintf(out, "  %-40s %-7s %-24s offset %12" PRIu64 " size %11" PRIu64, t->name,
                qformat_name(t->type), shape, t->offset, t->size);
        if (n_parts > 1)
            fprintf(out, " part %d", t->part + 1);
        fputc('\n', out);
    }
    return ferror(out) ? -EIO : 0;
}
