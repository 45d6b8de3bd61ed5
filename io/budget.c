/*
 * budget.c - available memory, size parsing and the budget rule.
 */
#include "budget.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t budget_available_memory(void)
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

int budget_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0) || errno == ERANGE)
        return end == s || !(v >= 0) ? -EINVAL : -ERANGE;
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
    double bytes = v * mul;
    /* 2^64 is exactly representable; anything at or above it overflows */
    if (!isfinite(bytes) || bytes >= 18446744073709551616.0)
        return -ERANGE;
    *out = (uint64_t)bytes;
    return 0;
}

int budget_resolve(const struct budget_in *in, struct budget_out *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t fixed = in->fixed + BUDGET_SLACK_BYTES;
    uint64_t active = (uint64_t)in->min_slots * in->slot_bytes;
    out->need_min = fixed + active;
    uint64_t budget = in->requested;
    if (budget == 0) {
        budget = budget_available_memory() / 10 * 8;
        if (budget > fixed + in->experts_total)
            budget = fixed + in->experts_total;
    }
    if (in->cache_override) {
        if (in->cache_override < active)
            return -ENOMEM;
        out->cache_bytes = in->cache_override;
        budget = fixed + in->cache_override;
    } else {
        if (budget < out->need_min) {
            out->ram_budget = budget;
            return -ENOMEM;
        }
        out->cache_bytes = budget - fixed;
    }
    out->ram_budget = budget;
    if (out->cache_bytes > in->experts_total)
        out->cache_bytes = in->experts_total;
    /* Half the cache's slots, at least min_slots, at most max_request: a
     * layer's union of experts in prompt processing streams through a small
     * cache in waves. Trace replay uses the same cap. */
    uint64_t cap = in->slot_bytes ? out->cache_bytes / in->slot_bytes / 2 : 0;
    if (cap > (uint64_t)in->max_request)
        cap = (uint64_t)in->max_request;
    out->request_cap = cap < (uint64_t)in->min_slots ? in->min_slots : (int)cap;
    return 0;
}
