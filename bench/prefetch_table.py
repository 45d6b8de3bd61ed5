#!/usr/bin/env python3
# prefetch_table.py - prints the table of bench/prefetch_table.sh from its
# runs.jsonl: medians over repetitions, ratios to LRU-no-prefetch of the same
# repetition and budget (median of the per-repetition ratios), the spread
# (max/min) of decode tok/s as the noise figure, and Belady's hit rate.
import json, statistics, sys
from collections import defaultdict

runs, belady = [], {}
for ln in open(sys.argv[1]):
    d = json.loads(ln)
    if "belady" in d:
        belady[d["pct"]] = (d["slots"], d["belady"])
    else:
        runs.append(d)
by = defaultdict(list)
for d in runs:
    by[(d["pct"], d["policy"], d["prefetch"])].append(d)
base = {(d["pct"], d["rep"]): d["r"]["decode_tok_s"] for d in runs if d["policy"] == "lru" and d["prefetch"] == "off"}
med = statistics.median
print("| budget (slots) | policy | prefetch | hit rate | MiB/token | decode tok/s (min-max) | vs LRU-off | io_busy_frac | MB/s busy | pf issued/used/wasted | Belady |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (pct, pol, pf), ds in sorted(by.items(), key=lambda kv: (kv[0][0], ["lru", "slru", "pin"].index(kv[0][1]), ["off", "lookahead", "coact", "both"].index(kv[0][2]))):
    r = [d["r"] for d in ds]
    tok = [x["decode_tok_s"] for x in r]
    ratios = [d["r"]["decode_tok_s"] / base[(pct, d["rep"])] for d in ds if (pct, d["rep"]) in base]
    slots, bel = belady.get(pct, (0, 0))
    print("| %.1f%% (%d) | %s | %s | %.3f | %.2f | %.1f (%.1f-%.1f) | %.2f | %.2f | %.0f | %d/%d/%d | %.3f |" % (
        pct / 10, slots, pol, pf, med(x["decode_cache_hit_rate"] for x in r),
        med(x["decode_bytes_read_per_token"] for x in r) / 1048576, med(tok), min(tok), max(tok),
        med(ratios) if ratios else float("nan"), med(x["io_busy_frac"] for x in r),
        med(x["read_bw_busy_bytes_s"] for x in r) / 1e6, med(x["prefetch_issued"] for x in r),
        med(x["prefetch_used"] for x in r), med(x["prefetch_wasted"] for x in r), bel))
