#!/bin/sh
# qd_bench.sh - queue depths against each other on a throttled store, cold,
# alternating (4 11 16 0 4 11 16 0 ...), each run inside a cgroup-v1 blkio
# group that limits reads of the store's device.
#
#   BPS=157286400 IOPS=1000 sh bench/qd_bench.sh SPLIT "4 11 16 0" [CGROUP]
#
# A depth of 0 runs without --queue-depth: the probe at open picks it (the
# pick is printed from the bench JSON's config.io_note). Env: BPS, IOPS (the
# limits written to the group for DEV before the runs; 0 = none), DEV (the
# store's major:minor, default 254:0), BUDGET (--ram-budget, default 1G), N
# (tokens generated, default 64), PT (prompt tokens, default 4), REPEAT
# (rounds, default 3), BIN (default build/bin), LOCK (a file: every run takes
# `flock LOCK nice -n -20`; default none). Needs root (cold runs drop the
# page cache). Prints one line per run and the medians per depth; the setup
# and figures are in bench/README.md ("Queue depth on a throttled store").
set -eu
S=$1
QDS=$2
CG=${3:-/sys/fs/cgroup/blkio/qd}
DEV=${DEV:-254:0}
BPS=${BPS:-0}
IOPS=${IOPS:-0}
BUDGET=${BUDGET:-1G}
N=${N:-64}
PT=${PT:-4}
REPEAT=${REPEAT:-3}
BIN=${BIN:-build/bin}
LOCK=${LOCK:-}
[ -d "$CG" ] || { echo "qd_bench: $CG is not a blkio cgroup directory" >&2; exit 2; }
echo "$DEV $BPS" > "$CG/blkio.throttle.read_bps_device"
echo "$DEV $IOPS" > "$CG/blkio.throttle.read_iops_device"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"; echo "$DEV 0" > "$CG/blkio.throttle.read_bps_device"; echo "$DEV 0" > "$CG/blkio.throttle.read_iops_device"' EXIT

run() { # name qd
    qf=""
    [ "$2" -gt 0 ] && qf="--queue-depth $2"
    pre=""
    [ -n "$LOCK" ] && pre="flock $LOCK nice -n -20"
    # shellcheck disable=SC2086
    $pre sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches; echo $$ > "$1/tasks"; shift; exec "$@"' sh "$CG" \
        "$BIN/moestream" bench -m "$S" --prompt-tokens "$PT" -n "$N" --ram-budget "$BUDGET" --json $qf \
        > "$OUT/$1.json" 2> "$OUT/$1.err" || { cat "$OUT/$1.err" >&2; exit 1; }
    python3 - "$OUT/$1.json" "$1" "$2" "$BPS" <<'EOF'
import json, re, sys
j = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
bps = float(sys.argv[4])
mbs = j["decode_bytes_read_per_token"] * j["decode_tok_s"]
m = re.match(r"queue depth (\d+)", j["config"].get("io_note", ""))
print("%-8s qd %-2s decode %7.3f tok/s  %5.1f MB/token  decode read %6.1f MB/s  share %5.3f  busy %5.3f  hit %.3f  prefill %.2f tok/s" % (
    sys.argv[2], m.group(1) if m else "?", j["decode_tok_s"], j["decode_bytes_read_per_token"] / 1e6, mbs / 1e6,
    mbs / bps if bps > 0 else 0, j["io_busy_frac"], j["decode_cache_hit_rate"], j["prefill_tok_s"]))
if sys.argv[3] == "0":
    print("         " + j["config"].get("io_note", ""))
EOF
}

i=1
while [ "$i" -le "$REPEAT" ]; do
    for q in $QDS; do
        run "q$q-$i" "$q" | tee -a "$OUT/q$q.txt"
    done
    i=$((i + 1))
done
for q in $QDS; do
    python3 - "$OUT/q$q.txt" "$q" <<'EOF'
import statistics, sys
rows = [r for r in (l.split() for l in open(sys.argv[1])) if len(r) > 15 and r[1] == "qd"]
med = lambda k: statistics.median(float(r[k]) for r in rows)
tok = [float(r[4]) for r in rows]
print("median qd %-2s (%s) decode %.3f tok/s (%.3f-%.3f), %.1f MB/token, decode read %.1f MB/s, share %.3f, busy %.3f" % (
    sys.argv[2] if sys.argv[2] != "0" else "probe", ",".join(sorted(set(r[2] for r in rows))), med(4), min(tok), max(tok),
    med(6), med(10), med(13), med(15)))
EOF
done
