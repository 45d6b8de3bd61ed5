/*
 * belady.c - Belady's MIN over an access sequence (see belady.h).
 */
#include "belady.h"

#include <errno.h>
#include <stdlib.h>

int belady_hits(const int32_t *keys, const uint8_t *count, size_t n, size_t n_slots, uint64_t *hits)
{
    *hits = 0;
    if (n_slots == 0)
        return -EINVAL;
    int32_t max_key = -1;
    for (size_t i = 0; i < n; i++) {
        if (keys[i] < 0)
            return -EINVAL;
        if (keys[i] > max_key)
            max_key = keys[i];
    }
    if (n == 0)
        return 0;
    size_t nk = (size_t)max_key + 1;
    size_t *next = malloc(n * sizeof(*next));      /* next access of the same key; n = never */
    size_t *last = malloc(nk * sizeof(*last));     /* scratch: following access per key */
    size_t *nextuse = malloc(nk * sizeof(*nextuse)); /* resident key -> its next access */
    int32_t *res = malloc(n_slots * sizeof(*res)); /* resident keys */
    unsigned char *in = calloc(nk, 1);
    if (!next || !last || !nextuse || !res || !in) {
        free(next), free(last), free(nextuse), free(res), free(in);
        return -ENOMEM;
    }
    for (size_t k = 0; k < nk; k++)
        last[k] = n;
    for (size_t i = n; i-- > 0;) {
        next[i] = last[keys[i]];
        last[keys[i]] = i;
    }
    size_t n_res = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t k = keys[i];
        if (in[k]) {
            if (!count || count[i])
                (*hits)++;
        } else if (n_res < n_slots) {
            res[n_res++] = k;
            in[k] = 1;
        } else {
            size_t v = 0;
            for (size_t j = 1; j < n_res; j++)
                if (nextuse[res[j]] > nextuse[res[v]])
                    v = j;
            in[res[v]] = 0;
            res[v] = k;
            in[k] = 1;
        }
        nextuse[k] = next[i];
    }
    free(next), free(last), free(nextuse), free(res), free(in);
    return 0;
}
