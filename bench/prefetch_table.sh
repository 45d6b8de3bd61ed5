#!/bin/sh
# prefetch_table.sh - the cache-policy x prefetch table of issue 14 on a model
# whose routing is real (tinymoe widened with moestream-synth --widen-experts).
#
#   sh bench/prefetch_table.sh BUILD MODEL_DIR OUT_DIR [REPS] [N_PREDICT]
#
# For budgets whose expert cache holds 12.5/25/37.5/50% of the model's
# experts, runs `moestream bench` cold (page cache dropped) for every cache
# policy (lru, slru, lru + --pin-profile) and prefetch policy (off,
# lookahead, coact, both), all configurations of one budget interleaved
# within each repetition (so slow phases of the shared machine hit them
# alike), REPS repetitions (default 3). Co-activation runs start from
# statistics learned on a different text (a run over another slice of
# val-a, saved with --coact and copied fresh before each run); the pinned
# profile is the routing trace of that same training run. Belady's hit
# rate comes from `moestream iobench --trace` on the routing of the run.
# Writes OUT_DIR/runs.jsonl (one line per run) and prints the table: medians
# of hit rate, MiB/token, decode tok/s, io_busy_frac, and the median over
# repetitions of each run's ratio to LRU-no-prefetch of the same repetition.
set -eu
BUILD=$1 MODEL=$2 OUT=$3 REPS=${4:-3} NPRED=${5:-48}
BIN=$BUILD/bin/moestream
FIX=${MOESTREAM_FIXTURES:-../shared/fixtures}
TXT=$FIX/tinymoe/val-a-512k.txt
mkdir -p "$OUT"
# prompt and coact-training texts: two disjoint slices of the held-out text
python3 - "$TXT" "$OUT" <<'PY'
import sys
t = open(sys.argv[1], encoding="utf-8", errors="replace").read()
open(sys.argv[2] + "/prompt.txt", "w").write(t[200000:200300])
open(sys.argv[2] + "/train.txt", "w").write(t[300000:300600])
PY
# slot size and how much of the budget is not expert cache
NE=$(ls "$MODEL"/experts-*.bin | wc -l)
FILE0=$(ls "$MODEL"/experts-*.bin | head -1)
NEXP=${N_EXPERT:-32}
SLOT=$(( $(stat -c %s "$FILE0") / NEXP ))
PROBE=$($BIN bench -m "$MODEL" --ram-budget 300M -c 512 -n 1 --prompt-tokens 2 2>/dev/null | sed -n 's/.*expert cache \([0-9.]*\) MiB.*/\1/p')
OVER=$(awk -v p="$PROBE" 'BEGIN { printf "%.0f", 300 * 1048576 - p * 1048576 }')
TOTAL=$((NE * NEXP))
echo "model $MODEL: $TOTAL experts of $SLOT bytes; $OVER bytes of the budget are not expert cache" >&2
budget_for() { # slots -> --ram-budget in bytes (a little slack for rounding)
    echo $((OVER + $1 * SLOT + SLOT / 2))
}
# co-activation statistics from another text, at the 25% budget
B25=$(budget_for $((TOTAL / 4)))
rm -f "$OUT/base.coact"
$BIN run -m "$MODEL" -f "$OUT/train.txt" -n 128 --temp 0 -c 512 --ram-budget "$B25" --prefetch coact \
    --coact "$OUT/base.coact" --trace-out "$OUT/train.trace" >/dev/null 2>&1
# one trace of the routing (the same in every configuration: greedy decode)
$BIN bench -m "$MODEL" -f "$OUT/prompt.txt" -n "$NPRED" -c 512 --ram-budget "$B25" \
    --trace-out "$OUT/route.trace" --json >/dev/null 2>&1
: > "$OUT/runs.jsonl"
CONFIGS="lru:off lru:lookahead lru:coact lru:both slru:off slru:lookahead slru:coact slru:both pin:off pin:both"
for rep in $(seq 1 "$REPS"); do
    for pct in 125 250 375 500; do
        slots=$((TOTAL * pct / 1000))
        B=$(budget_for $slots)
        if [ "$rep" = 1 ]; then
            bel=$($BIN iobench -m "$MODEL" --trace "$OUT/route.trace" --ram-budget "$B" --json 2>/dev/null |
                  sed -n 's/.*"belady_decode_hit_rate":\([0-9.]*\).*/\1/p')
            echo "{\"pct\":$pct,\"slots\":$slots,\"belady\":$bel}" >> "$OUT/runs.jsonl"
        fi
        for c in $CONFIGS; do
            pol=${c%%:*} pf=${c#*:}
            extra=""
            case $pol in pin) extra="--cache-policy lru --pin-profile $OUT/train.trace" ;; *) extra="--cache-policy $pol" ;; esac
            case $pf in coact|both) cp "$OUT/base.coact" "$OUT/run.coact"; extra="$extra --coact $OUT/run.coact" ;; esac
            line=$($BIN bench -m "$MODEL" -f "$OUT/prompt.txt" -n "$NPRED" -c 512 --ram-budget "$B" --cold --json \
                   --prefetch "$pf" $extra 2>/dev/null) || { echo "run failed: $c at $pct" >&2; continue; }
            echo "{\"rep\":$rep,\"pct\":$pct,\"slots\":$slots,\"policy\":\"$pol\",\"prefetch\":\"$pf\",\"r\":$line}" >> "$OUT/runs.jsonl"
            echo "rep $rep budget $pct/1000 $c done" >&2
        done
    done
done
python3 "$(dirname "$0")/prefetch_table.py" "$OUT/runs.jsonl"
