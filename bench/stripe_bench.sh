#!/bin/sh
# stripe_bench.sh - one drive against a split striped over several, cold,
# alternating (A B A B ...), in a blkio cgroup that throttles the drives.
#
#   sh bench/stripe_bench.sh ONE-DRIVE-SPLIT STRIPED-SPLIT [CGROUP]
#
# CGROUP: a cgroup-v1 blkio group (default /sys/fs/cgroup/blkio/stripe) whose
# blkio.throttle.read_bps_device already limits every drive; each run is
# started inside it. Env: BUDGET (--ram-budget, default 1G), N (tokens
# generated, default 32), PT (prompt tokens, default 16), REPEAT (pairs,
# default 3), BIN (default build/bin). Needs root (cold runs drop the page
# cache). Prints one line per run (with the queue depth the run used) and the
# medians; the setup used for the
# figures in bench/README.md ("Striping") is described there.
set -eu
U=$1
S=$2
CG=${3:-/sys/fs/cgroup/blkio/stripe}
BUDGET=${BUDGET:-1G}
N=${N:-32}
PT=${PT:-16}
REPEAT=${REPEAT:-3}
BIN=${BIN:-build/bin}
[ -d "$CG" ] || { echo "stripe_bench: $CG is not a blkio cgroup directory" >&2; exit 2; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

run() { # name dir
    sync
    echo 3 > /proc/sys/vm/drop_caches
    sh -c 'echo $$ > "$1/tasks"; shift; exec "$@"' sh "$CG" \
        "$BIN/moestream" bench -m "$2" --prompt-tokens "$PT" -n "$N" --ram-budget "$BUDGET" --json \
        > "$OUT/$1.json" 2> "$OUT/$1.err" || { cat "$OUT/$1.err" >&2; exit 1; }
    python3 - "$OUT/$1.json" "$1" <<'EOF'
import json, re, sys
j = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
m = re.match(r"queue depth (\d+)", j["config"].get("io_note", ""))
print("%-10s decode %.3f tok/s  decode read %.1f MB/s  %.1f MB/token  busy %.1f MB/s  hit %.3f  qd %s" % (
    sys.argv[2], j["decode_tok_s"], j["decode_bytes_read_per_token"] * j["decode_tok_s"] / 1e6,
    j["decode_bytes_read_per_token"] / 1e6, j["read_bw_busy_bytes_s"] / 1e6, j["decode_cache_hit_rate"],
    m.group(1) if m else "?"))
EOF
}

i=1
while [ "$i" -le "$REPEAT" ]; do
    run "one-$i" "$U" | tee -a "$OUT/one.txt"
    run "striped-$i" "$S" | tee -a "$OUT/striped.txt"
    i=$((i + 1))
done
for k in one striped; do
    python3 - "$OUT/$k.txt" "$k" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
tok = statistics.median(float(r[2]) for r in rows)
mbs = statistics.median(float(r[6]) for r in rows)
busy = statistics.median(float(r[11]) for r in rows)
print("median %-8s decode %.3f tok/s, decode read %.1f MB/s, %.1f MB/s while reads are in flight" % (sys.argv[2], tok, mbs, busy))
EOF
done
