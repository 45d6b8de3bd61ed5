#!/bin/sh
# bench/readme_table.sh - the figures of the README's results table, in one
# session: cold and warm decode at two RAM budgets (moestream bench), the I/O
# ceiling of the cold run's routing (moestream iobench --trace, no compute),
# and the disk's random-read bandwidth at the expert blob size
# (moestream iobench --device on the source GGUF, a large file on the same disk).
#
# usage: sh bench/readme_table.sh SPLIT_DIR BIG_FILE [BUDGET_A] [BUDGET_B]
# cold = page cache dropped and an empty expert cache; warm = --preload (the
# expert cache filled as far as the budget allows) before the prompt.
# Needs root for --cold. Output: bench/out/readme-table/ and a markdown table.
set -eu
BIN=${MOESTREAM_BIN:-build/bin}
M=$1
BIG=$2
BA=${3:-8G}
BB=${4:-3G}
N=${N:-32}
PT=${PT:-16}
OUT=${OUT:-bench/out/readme-table}
mkdir -p "$OUT"
CTX="-c 1024 -t 2"

field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d$2)" "$1"; }

echo "readme_table: $M, -n $N, prompt $PT synthetic tokens, budgets $BA and $BB" >&2
for B in $BA $BB; do
    "$BIN/moestream" bench -m "$M" --prompt-tokens "$PT" -n "$N" --ram-budget "$B" $CTX --cold --json \
        --trace-out "$OUT/trace-$B.jsonl" > "$OUT/cold-$B.json" 2> "$OUT/cold-$B.err"
    "$BIN/moestream" bench -m "$M" --prompt-tokens "$PT" -n "$N" --ram-budget "$B" $CTX --preload --json \
        > "$OUT/warm-$B.json" 2> "$OUT/warm-$B.err"
    "$BIN/moestream" iobench -m "$M" --trace "$OUT/trace-$B.jsonl" --json > "$OUT/iobench-$B.json" 2> "$OUT/iobench-$B.err"
done
SIZE=$("$BIN/moestream-split" info "$M" 2>/dev/null | awk '/\.blob_size / {print $NF}' | sort -n | tail -1)
"$BIN/moestream" iobench --device "$BIG" ${SIZE:+--size $SIZE} --qd 1,4,8,16,32 --seconds 3 --json > "$OUT/device.json" \
    2> "$OUT/device.err"

echo
echo "| RAM budget | cold decode tok/s | warm decode tok/s | cold hit rate | warm hit rate | MiB read/token (cold) | I/O-only ceiling tok/s (iobench) | peak RSS GiB (cold) |"
echo "|---|---|---|---|---|---|---|---|"
for B in $BA $BB; do
    c=$OUT/cold-$B.json; w=$OUT/warm-$B.json; i=$OUT/iobench-$B.json
    printf '| %s | %.2f | %.2f | %.1f%% | %.1f%% | %.1f | %s | %.2f |\n' "$B" \
        "$(field "$c" "['decode_tok_s']")" "$(field "$w" "['decode_tok_s']")" \
        "$(field "$c" "['cache_hit_rate']*100")" "$(field "$w" "['cache_hit_rate']*100")" \
        "$(field "$c" "['bytes_read_per_token']/1048576")" \
        "$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('%.1f' % d.get('decode_tok_s', d.get('decode_ceiling_tok_s', float('nan'))))" "$i")" \
        "$(field "$c" "['peak_rss_bytes']/2**30")"
done
echo
echo "disk random reads ($BIG, O_DIRECT):"
python3 -c "
import json,sys
d=json.load(open(sys.argv[1]))
rows=d.get('results', d.get('qd', []))
for r in rows:
    print('  qd %-3s %8.0f MB/s' % (r.get('qd'), r.get('mb_s', r.get('bytes_s', 0)/1e6)))
" "$OUT/device.json" || cat "$OUT/device.json"
