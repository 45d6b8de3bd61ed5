/*
 * budget.h - RAM budget arithmetic on plain byte counts: how much memory the
 * process may use (MemAvailable capped by a cgroup v1/v2 limit), parsing of
 * sizes such as "8G", and the split of one budget into fixed bytes (pinned
 * weights, every sequence's state, scratch, slack) and the expert cache.
 *
 * Owns: the rule that decides the expert cache size and the request cap.
 * Knows nothing about transformers: callers pass byte counts. Never prints.
 */
#ifndef MOESTREAM_BUDGET_H
#define MOESTREAM_BUDGET_H

#include <stdint.h>

/* Bytes held outside slots, pinned weights, state and scratch: allocator and
 * stack slack, I/O bookkeeping, the tokenizer. Counted in every budget. */
#define BUDGET_SLACK_BYTES (96ull << 20)

struct budget_in {
    uint64_t requested;       /* --ram-budget; 0 = 80% of available memory */
    uint64_t fixed;           /* pinned + states + scratch (slack is added here) */
    uint64_t experts_total;   /* bytes of every expert slot of the model */
    uint64_t slot_bytes;      /* largest blob: one cache slot */
    int min_slots;            /* slots a layer needs at once (n_expert_used) */
    int max_request;          /* most experts one layer can request (n_expert) */
    uint64_t cache_override;  /* nonzero: the expert cache size, budget follows */
};

struct budget_out {
    uint64_t ram_budget;      /* resolved budget */
    uint64_t cache_bytes;     /* the expert cache's share, <= experts_total */
    uint64_t need_min;        /* smallest budget that would work */
    int request_cap;          /* experts one provider request may carry */
};

/* MemAvailable, capped by the memory cgroup's limit (v1 or v2). */
uint64_t budget_available_memory(void);

/* Parses "8G", "512M", "1.5GiB", "123456" into bytes. 0, or -EINVAL for a
 * malformed size, -ERANGE for one that does not fit in 64 bits. */
int budget_parse_size(const char *s, uint64_t *out);

/* Resolves the budget. 0, or -ENOMEM when it cannot hold the fixed part plus
 * min_slots slots (out->need_min says how much would). */
int budget_resolve(const struct budget_in *in, struct budget_out *out);

#endif
