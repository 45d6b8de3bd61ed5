/*
 * qformat.c - the format-facts table, expanded from QFORMAT_LIST.
 */
#include "qformat.h"

#define QFORMAT_ENTRY(id, nm, blck, sz, q) [id] = { nm, blck, sz, q },
static const struct qformat table[QT_COUNT] = { QFORMAT_LIST(QFORMAT_ENTRY) };
static const struct qformat unknown = { "unknown", 0, 0, false };

const struct qformat *qformat_get(int t)
{
    if (t < 0 || t >= QT_COUNT || table[t].blck_size == 0)
        return &unknown;
    return &table[t];
}

bool qformat_known(int t)
{
    return qformat_get(t)->blck_size != 0;
}

const char *qformat_name(int t)
{
    return qformat_get(t)->name;
}

size_t qformat_row_size(int t, int64_t n)
{
    const struct qformat *f = qformat_get(t);
    if (f->blck_size == 0 || n < 0 || n % f->blck_size != 0)
        return 0;
    return (size_t)(n / f->blck_size) * f->type_size;
}
