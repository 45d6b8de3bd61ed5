#!/bin/sh
# levers.sh - the lossy speed levers (--moe-topk, --cache-bias) against
# quality and speed at a budget that holds a given share of the experts.
#
# usage: bench/levers.sh PPL_MODEL SPEED_MODEL TEXT [FRACTION] [CHUNKS]
#   PPL_MODEL    split (or GGUF) scored with perplexity on TEXT (-c 512,
#                CHUNKS chunks, default 20, one token per step), KL against the same model
#                without levers (streaming does not change the numbers, so
#                that is the exact run)
#   SPEED_MODEL  split whose decode tok/s, MiB read per token and hit rate
#                are measured (moestream bench, 3 runs each, medians, cold
#                expert cache; e.g. tinymoe widened with --widen-experts so
#                blobs have a realistic size)
#   FRACTION     share of each model's experts the cache holds (default 0.25)
# The cache (--cache-size) holding FRACTION is found per model from a probe
# run without a budget (its cache holds every expert). Environment: MOESTREAM (binary), LEVERS ("K=4 K=3 ..." and
# "B=0.5 ..." items; default: the model's K, K-1, K-2, K/2 and biases 0.5, 1, 2).
set -u
BENCH_NAME=levers
. "$(dirname "$0")/lib.sh"

[ $# -ge 3 ] || { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
PM=$1; SM=$2; TEXT=$3; FRAC=${4:-0.25}; CHUNKS=${5:-20}
BIN=${MOESTREAM:-build/bin/moestream}
[ -x "$BIN" ] || bench_die "$BIN: not built (run make)"
for f in "$PM" "$SM" "$TEXT"; do [ -e "$f" ] || bench_die "$f: not found"; done
tmp=$(mktemp -d) || bench_die "mktemp failed"
trap 'rm -rf "$tmp"' EXIT INT TERM
j() { bench_json_num "$1" < "$2"; }

# the cache of an unbounded run (every expert) from a probe's JSON -> the
# --cache-size (KiB) that holds FRAC of the experts
cache_of() {
    c=$(j cache_bytes "$1")
    [ -n "$c" ] || return 1
    awk -v c="$c" -v f="$FRAC" 'BEGIN { printf "%.0fK\n", f * c / 1024 + 1 }'
}

# -b 1: tokens one at a time, so the cache sees what it sees in decode (a
# 256-token prefill step reads every expert of a layer: nothing for the
# bias to act on)
ppl_cmd() { "$BIN" perplexity -m "$PM" -f "$TEXT" -c 512 -b 1 --chunks "$CHUNKS" "$@"; }

"$BIN" perplexity -m "$PM" -f "$TEXT" -c 512 --chunks 1 --stats-json 2>&1 >/dev/null |
    grep '"type":"run"' > "$tmp/p.json"
pb=$(cache_of "$tmp/p.json") || bench_die "perplexity probe on $PM failed"
"$BIN" bench -m "$SM" --prompt-tokens 16 -n 4 --json > "$tmp/s.json" 2>/dev/null
sb=$(cache_of "$tmp/s.json") || bench_die "bench probe on $SM failed"
K=${LEVER_K:-4}
items=${LEVERS:-"K=$K K=$((K - 1)) K=$((K - 2)) K=$((K / 2)) B=0.5 B=1 B=2"}
echo "levers: $PM (perplexity, --cache-size $pb) and $SM (decode, --cache-size $sb), $FRAC of the experts cached"
ppl_cmd --cache-size "$pb" --kl-base "$tmp/base.kl" > "$tmp/base.out" 2>&1 || bench_die "base perplexity failed"
ppl_of() { awk '/^perplexity:/ { print $2 }' "$1"; }
base_ppl=$(ppl_of "$tmp/base.out")
printf '| lever | PPL | PPL vs base | KL vs base | top-1 agreement | decode tok/s | ratio | MiB read/token | hit rate |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
speed() {
    "$BIN" bench -m "$SM" --cache-size "$sb" --prompt-tokens 16 -n 64 --repeat 3 --json "$@" > "$tmp/b.json" 2>/dev/null ||
        bench_die "bench $* failed"
    printf '%s %s %s\n' "$(j decode_tok_s "$tmp/b.json")" "$(j bytes_read_per_token "$tmp/b.json")" \
        "$(j cache_hit_rate "$tmp/b.json")"
}
set -- $(speed) || exit 1
[ $# = 3 ] || bench_die "bench on $SM failed"
base_tps=$1
printf '| none | %s | 1.000 | 0 | 1.000 | %s | 1.00 | %.2f | %s |\n' "$base_ppl" "$1" "$(echo "$2" | awk '{ print $1 / 1048576 }')" "$3"
for it in $items; do
    case "$it" in
    K=*) flag="--moe-topk ${it#K=}";;
    B=*) flag="--cache-bias ${it#B=}";;
    *) bench_die "LEVERS item '$it': expected K=N or B=X";;
    esac
    # shellcheck disable=SC2086
    ppl_cmd --cache-size "$pb" --kl-base "$tmp/base.kl" $flag > "$tmp/l.out" 2>&1 || bench_die "perplexity $flag failed"
    ppl=$(ppl_of "$tmp/l.out")
    kl=$(awk '/^kl-divergence:/ { sub(",", "", $3); print $3 }' "$tmp/l.out")
    top=$(awk '/^kl-divergence:/ { print $NF }' "$tmp/l.out")
    # shellcheck disable=SC2086
    set -- $(speed $flag)
    [ $# = 3 ] || bench_die "bench $flag on $SM failed"
    printf '| %s | %s | %.3f | %s | %s | %s | %.2f | %.2f | %s |\n' "$flag" "$ppl" \
        "$(awk -v a="$ppl" -v b="$base_ppl" 'BEGIN { print a / b }')" "${kl:-?}" "${top:-?}" "$1" \
        "$(awk -v a="$1" -v b="$base_tps" 'BEGIN { print a / b }')" "$(echo "$2" | awk '{ print $1 / 1048576 }')" "$3"
done
