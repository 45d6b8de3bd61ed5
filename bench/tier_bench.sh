#!/bin/sh
# tier_bench.sh - one cold run on a slow store: the page cache dropped, the
# run started inside a cgroup-v1 memory group (8 GiB) and a blkio group that
# throttles the store's device. Prints one JSON line: the run's own figures
# plus what the cgroup read from each device.
#
#   sh bench/tier_bench.sh LABEL moestream SPLIT "EXTRA FLAGS"
#   sh bench/tier_bench.sh LABEL llama     MODEL.gguf
#
# Env: BPS (read bytes/s limit of DEV, 0 = none), IOPS (0 = none), DEV (the
# store's major:minor, default 254:0), MEMCG (default
# /sys/fs/cgroup/memory/tier8g), BLKCG (default /sys/fs/cgroup/blkio/tier),
# PROMPT (a text file), N (tokens generated, default 16), BUDGET (default
# 7680M), BIN (default build/bin), LCPP (default /tmp/peers/lcpp), TIMEOUT
# (seconds, default 280). Needs root. Setup and figures: bench/README.md,
# "SSD tier and slow drives".
set -eu
LABEL=$1
WHAT=$2
MODEL=$3
EXTRA=${4:-}
BPS=${BPS:-0}
IOPS=${IOPS:-0}
DEV=${DEV:-254:0}
MEMCG=${MEMCG:-/sys/fs/cgroup/memory/tier8g}
BLKCG=${BLKCG:-/sys/fs/cgroup/blkio/tier}
N=${N:-16}
BUDGET=${BUDGET:-7680M}
BIN=${BIN:-build/bin}
LCPP=${LCPP:-/tmp/peers/lcpp}
TIMEOUT=${TIMEOUT:-280}
PROMPT=${PROMPT:?PROMPT=file with the prompt text}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

echo "$DEV $BPS" > "$BLKCG/blkio.throttle.read_bps_device"
echo "$DEV $IOPS" > "$BLKCG/blkio.throttle.read_iops_device"
sync
echo 3 > /proc/sys/vm/drop_caches
echo 0 > "$MEMCG/memory.max_usage_in_bytes" 2>/dev/null || true
# bytes the group read per device, before and after
cat "$BLKCG/blkio.throttle.io_service_bytes" > "$OUT/b0"
t0=$(date +%s.%N)
rc=0
if [ "$WHAT" = moestream ]; then
    # shellcheck disable=SC2086
    timeout "$TIMEOUT" sh -c 'echo $$ > "$1/tasks"; echo $$ > "$2/tasks"; shift 2; exec "$@"' sh "$MEMCG" "$BLKCG" \
        "$BIN/moestream" bench -m "$MODEL" -f "$PROMPT" -n "$N" --ram-budget "$BUDGET" -t 2 -c 512 --json $EXTRA \
        > "$OUT/out" 2> "$OUT/err" || rc=$?
else
    timeout "$TIMEOUT" sh -c 'echo $$ > "$1/tasks"; echo $$ > "$2/tasks"; shift 2; exec "$@"' sh "$MEMCG" "$BLKCG" \
        "$LCPP/llama-completion" -m "$MODEL" -f "$PROMPT" -n "$N" --temp 0 -t 2 -c 512 --no-repack -no-cnv \
        > "$OUT/out" 2> "$OUT/err" < /dev/null || rc=$?
fi
t1=$(date +%s.%N)
cat "$BLKCG/blkio.throttle.io_service_bytes" > "$OUT/b1"
peak=$(cat "$MEMCG/memory.max_usage_in_bytes")
echo "$DEV 0" > "$BLKCG/blkio.throttle.read_bps_device"
echo "$DEV 0" > "$BLKCG/blkio.throttle.read_iops_device"
python3 - "$OUT" "$LABEL" "$WHAT" "$rc" "$t0" "$t1" "$peak" "$BPS" "$IOPS" <<'EOF'
import json, re, sys
out, label, what, rc, t0, t1, peak, bps, iops = sys.argv[1:]
def reads(p):
    d = {}
    for l in open(p):
        f = l.split()
        if len(f) == 3 and f[1] == "Read":
            d[f[0]] = d.get(f[0], 0) + int(f[2])
    return d
b0, b1 = reads(out + "/b0"), reads(out + "/b1")
r = {"label": label, "what": what, "rc": int(rc), "wall_s": round(float(t1) - float(t0), 2),
     "memcg_peak_bytes": int(peak), "bps": int(bps), "iops": int(iops),
     "cgroup_read_bytes": {k: b1[k] - b0.get(k, 0) for k in b1 if b1[k] - b0.get(k, 0) > 0}}
text = open(out + "/out").read()
err = open(out + "/err").read()
if what == "moestream":
    lines = [l for l in text.splitlines() if l.startswith("{")]
    if lines:
        j = json.loads(lines[-1])
        for k in ("decode_tok_s", "prefill_tok_s", "decode_bytes_read_per_token", "decode_store_bytes_read_per_token",
                  "decode_tier_bytes_read_per_token", "bytes_read", "tier_bytes_read", "io_busy_frac",
                  "decode_cache_hit_rate", "read_bw_busy_bytes_s", "load_s", "ttft_s"):
            r[k] = j[k]
        r["prompt_tokens"] = j["config"]["prompt_tokens"]
        r["gen_tokens"] = j["config"]["gen_tokens"]
    r["notices"] = [l for l in err.splitlines() if "tier" in l or "probe" in l][:3]
else:
    m = re.search(r"eval time =\s*([\d.]+) ms /\s*(\d+) runs.*?([\d.]+) tokens per second", err)
    p = re.search(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens", err)
    if m:
        r["decode_tok_s"] = float(m.group(3))
        r["gen_tokens"] = int(m.group(2))
    if p:
        r["prompt_tokens"] = int(p.group(2))
        r["prompt_s"] = float(p.group(1)) / 1e3
    if not m:
        r["tail"] = err.strip().splitlines()[-3:]
print(json.dumps(r))
EOF
