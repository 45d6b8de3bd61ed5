#!/bin/sh
# soak.sh - a long generation at an out-of-core RAM budget, with the process's
# RSS sampled every second: the runtime must hold its budget over thousands of
# tokens and several context shifts, not only over a short benchmark.
#
# usage: bench/soak.sh MODEL BUDGET [TOKENS] [RUNS] [CTX] [SLACK]
#   MODEL   split directory or GGUF
#   BUDGET  --ram-budget (e.g. 8G, 260M)
#   TOKENS  generated tokens over all runs (default 10000)
#   RUNS    runs the tokens are spread over, each its own process and seed
#           (default 4)
#   CTX     context size (-c, default 512): a run of TOKENS/RUNS tokens shifts
#           its context (--context-shift) about TOKENS/RUNS/(CTX/2) times
#   SLACK   allowed RSS above the budget (default 64M: code, libc, the
#           tokenizer's tables, stdio); the budget covers everything else
# Environment: MOESTREAM (binary, default build/bin/moestream), SOAK_CSV
# (where the samples go, default soak-rss.csv: run,second,rss_kib),
# SOAK_ARGS (extra moestream arguments, e.g. "--io pread").
# Prints one line per run (tokens, decode tok/s, hit rate, max RSS) and a
# closing line with the curve's maximum; exits 1 if a run failed or the
# maximum went above BUDGET + SLACK.
set -u
BENCH_NAME=soak
. "$(dirname "$0")/lib.sh"

[ $# -ge 2 ] || { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
MODEL=$1; BUDGET=$2; TOKENS=${3:-10000}; RUNS=${4:-4}; CTX=${5:-512}; SLACK=${6:-64M}
BIN=${MOESTREAM:-build/bin/moestream}
CSV=${SOAK_CSV:-soak-rss.csv}
[ -x "$BIN" ] || bench_die "$BIN: not built (run make)"
[ -e "$MODEL" ] || bench_die "$MODEL: no such model"
budget_b=$(bench_size "$BUDGET") || bench_die "BUDGET '$BUDGET': expected e.g. 8G or 260M"
slack_b=$(bench_size "$SLACK") || bench_die "SLACK '$SLACK': expected e.g. 64M"
case "$TOKENS$RUNS$CTX" in *[!0-9]*) bench_die "TOKENS, RUNS and CTX must be integers";; esac
[ "$RUNS" -ge 1 ] && [ "$TOKENS" -ge "$RUNS" ] || bench_die "need TOKENS >= RUNS >= 1"
per_run=$((TOKENS / RUNS))
limit_kib=$(( (budget_b + slack_b) / 1024 ))

tmp=$(mktemp -d) || bench_die "mktemp failed"
trap 'rm -rf "$tmp"' EXIT INT TERM
echo "run,second,rss_kib" > "$CSV" || bench_die "$CSV: cannot write"
prompt='def parse_config(path):
    """Read a configuration file and return a dict."""
'
j() { printf '%s\n' "$run_json" | bench_json_num "$1"; }
max_all=0; failed=0; total=0
echo "soak: $MODEL, budget $BUDGET (+ $SLACK slack), $RUNS run(s) of $per_run tokens, -c $CTX --context-shift"
r=1
while [ "$r" -le "$RUNS" ]; do
    bench_drop_caches
    # shellcheck disable=SC2086
    "$BIN" run -m "$MODEL" -p "$prompt" -n "$per_run" -c "$CTX" --context-shift \
        --ram-budget "$BUDGET" --temp 0.8 --seed "$r" --ignore-eos --stats-json ${SOAK_ARGS:-} \
        > "$tmp/out" 2> "$tmp/err" &
    pid=$!
    sec=0; max_run=0
    while kill -0 "$pid" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
        if [ -n "$rss" ]; then
            echo "$r,$sec,$rss" >> "$CSV"
            [ "$rss" -gt "$max_run" ] && max_run=$rss
        fi
        sleep 1; sec=$((sec + 1))
    done
    wait "$pid"; rc=$?
    run_json=$(grep '"type":"run"' "$tmp/err" | tail -1)
    toks=$(j "gen_tokens")
    tps=$(j "decode_tok_s")
    hit=$(j "cache_hit_rate")
    hwm=$(j "peak_rss_bytes")
    [ -n "$hwm" ] && [ $((hwm / 1024)) -gt "$max_run" ] && max_run=$((hwm / 1024))
    if [ "$rc" != 0 ] || [ -z "$run_json" ]; then
        echo "run $r: FAILED (exit $rc): $(grep -v '"type"' "$tmp/err" | tail -1)"
        failed=1
    else
        total=$((total + ${toks:-0}))
        printf 'run %d: %s tokens, decode %s tok/s, hit rate %s, shifts %s, max RSS %s (peak %s)\n' "$r" \
            "${toks:-?}" "${tps:-?}" "${hit:-?}" "$(grep -c "context full" "$tmp/err")" \
            "$(bench_human $((max_run * 1024)))" "$(bench_human "${hwm:-0}")"
    fi
    [ "$max_run" -gt "$max_all" ] && max_all=$max_run
    r=$((r + 1))
done
verdict=ok
[ "$max_all" -gt "$limit_kib" ] && verdict="OVER the budget + slack" && failed=1
echo "soak: $total tokens; max RSS $(bench_human $((max_all * 1024))) for a budget of $(bench_human "$budget_b") (+ $(bench_human "$slack_b") slack): $verdict; samples in $CSV"
exit "$failed"
