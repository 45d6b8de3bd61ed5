#!/bin/sh
# peers.sh - moestream against ik_llama.cpp and llama.cpp on one model held
# in RAM: decode and prompt tok/s, the ratios moestream / peer (medians over
# rounds), and the memory-bandwidth limit of decode.
#
# Owns: the alternation of engines (moestream, then each peer, round after
# round, so that load from other processes hits every engine alike), the
# parsing of their reports and the table. The peers are the static builds of
# ../shared/peers (see its README), unpacked to --peers DIR when missing.
# The decode limit is (bytes of weights one token reads, from
# `moestream-kbench --decode-bytes`) / (read bandwidth on the same threads,
# from `moestream-kbench --types none`), measured in every round.
#
# The GGUF and its split must describe the same model; the peers read the
# GGUF through the page cache (it is read once before each peer run, not
# timed), moestream preloads the split's experts (--preload).
#
# Usage: bench/peers.sh -g MODEL.gguf -m SPLIT_DIR [options]   (--help)
set -eu

BENCH_NAME=peers.sh
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"

usage() {
    cat <<'EOF'
usage: bench/peers.sh -g MODEL.gguf -m SPLIT_DIR [options]

Runs moestream and the peers alternately (moestream, ik_llama.cpp, ik_llama.cpp -rtr 1,
llama.cpp; then again, --rounds times) on one model in RAM and prints decode and prompt
tok/s per engine (medians over rounds, with min-max) and the ratio moestream / peer, plus
the decode limit set by memory bandwidth.

  -g FILE           the GGUF the peers run
  -m DIR            its moestream split (moestream-split FILE -o DIR)
  -r, --rounds N    rounds (default 3)
  -t, --threads N   threads for every engine (default 2)
  -n N              decode tokens per measurement (default 32)
  --prompts "A B"   prompt lengths in tokens (default "64 512")
  --budget SIZE     moestream --ram-budget (default 20G)
  --ms-args "ARGS"  extra moestream bench flags (e.g. "--act-bits 8")
  --engines "LIST"  subset of: ms ik ik-rtr lcpp (default all four)
  --peers DIR       unpacked peers (default /tmp/peers; unpacked from
                    ../shared/peers when missing)
  --bin DIR         moestream binaries (default build/bin)
  --base-bin DIR    also run the moestream of DIR (engine "ms0", e.g. a build of the previous
                    commit) in the alternation: the ms / ms0 ratio is the speed-up
  --out FILE        keep every raw measurement as lines "round engine metric value"
  --lock FILE       hold an exclusive flock(1) on FILE for each round, so that other jobs
                    taking the same lock (bench/act_speed.py, bench/ab_runs.py, flock FILE CMD)
                    run between rounds, never during one (default /work/bench.lock when it
                    exists; --lock none: no lock)

Every run first waits (up to $MEM_WAIT seconds, default 600) until MemAvailable covers the
GGUF plus 1 GiB, and a failed run (e.g. OOM-killed on a shared machine) is retried once.

Peers run as llama-bench -t T -p P1,P2 -n N -r 1 -o json (llama-bench sizes the context to
the test; the CLI tools would need -c, they default to a 40960-token context). ik_llama.cpp
runs with its defaults (fused MoE, flash attention) and again with -rtr 1 -mmp 0 (its
run-time repacking). moestream runs `moestream bench --preload --ram-budget SIZE
--prompt-tokens P` once per prompt length (decode from the first).
EOF
}

GGUF= SPLIT= ROUNDS=3 THREADS=2 NGEN=32 PROMPTS="64 512" BUDGET=20G MS_ARGS= ENGINES="ms ik ik-rtr lcpp"
PEERS=/tmp/peers BIN= OUT= BASE_BIN= LOCK=
[ -e /work/bench.lock ] && LOCK=/work/bench.lock
while [ $# -gt 0 ]; do
    case $1 in
    -h | --help) usage; exit 0 ;;
    -g) GGUF=$2; shift 2 ;;
    -m) SPLIT=$2; shift 2 ;;
    -r | --rounds) ROUNDS=$2; shift 2 ;;
    -t | --threads) THREADS=$2; shift 2 ;;
    -n) NGEN=$2; shift 2 ;;
    --prompts) PROMPTS=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --ms-args) MS_ARGS=$2; shift 2 ;;
    --engines) ENGINES=$2; shift 2 ;;
    --peers) PEERS=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --base-bin) BASE_BIN=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --lock) LOCK=$2; shift 2 ;;
    *) bench_die "unknown option '$1' (see --help)" ;;
    esac
done
[ -n "$GGUF" ] && [ -n "$SPLIT" ] || bench_die "need -g MODEL.gguf and -m SPLIT_DIR (see --help)"
[ -f "$GGUF" ] || bench_die "$GGUF: no such GGUF file"
[ -f "$SPLIT/manifest.gguf" ] || bench_die "$SPLIT: not a moestream split (no manifest.gguf)"
REPO=$(cd "$HERE/.." && pwd)
BIN=${BIN:-$REPO/build/bin}
for b in moestream moestream-kbench; do
    [ -x "$BIN/$b" ] || bench_die "$BIN/$b: missing (run make)"
done
if [ -n "$BASE_BIN" ]; then
    [ -x "$BASE_BIN/moestream" ] || bench_die "$BASE_BIN/moestream: missing"
    ENGINES="ms ms0 ${ENGINES#ms }"
fi
PROMPT_CSV=$(echo $PROMPTS | tr ' ' ',')
P1=${PROMPTS%% *}

# --- peers --------------------------------------------------------------------
need_peers=no
for e in $ENGINES; do
    case $e in
    ms | ms0) ;;
    ik | ik-rtr | lcpp) need_peers=yes ;;
    *) bench_die "unknown engine '$e' (ms ms0 ik ik-rtr lcpp)" ;;
    esac
done
SHARED=${PEERS_ARCHIVES:-$REPO/../shared/peers}
# ensure_peer DIR NAME: PEERS/DIR/llama-bench, unpacked from SHARED/NAME-*.tar.xz when
# missing; checked before every run (another session may clean /tmp meanwhile).
ensure_peer() {
    [ -x "$PEERS/$1/llama-bench" ] && return 0
    tarball=$(ls "$SHARED/$2"-*.tar.xz 2>/dev/null | head -n 1)
    [ -n "$tarball" ] || bench_die "$PEERS/$1/llama-bench missing and no $SHARED/$2-*.tar.xz to unpack"
    mkdir -p "$PEERS" && tar xJf "$tarball" -C "$PEERS" || bench_die "cannot unpack $tarball into $PEERS"
}
if [ $need_peers = yes ]; then
    ensure_peer ik ik_llama.cpp
    ensure_peer lcpp llama.cpp
fi

TMP=$(mktemp -d /tmp/peers-sh.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM
RAW=$TMP/raw
: > "$RAW"

# Every engine holds the whole model: on a shared machine, wait (up to
# MEM_WAIT seconds, default 600) until MemAvailable covers it plus 1 GiB,
# rather than measure an engine thrashing or being OOM-killed.
NEED_KB=$(( $(stat -c %s "$GGUF") / 1024 + 1048576 ))
wait_for_memory() {
    waited=0
    while [ "$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)" -lt "$NEED_KB" ]; do
        if [ "$waited" -ge "${MEM_WAIT:-600}" ]; then
            bench_warn "only $(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo) MiB available, need $((NEED_KB / 1024)) MiB: running anyway"
            return 0
        fi
        [ "$waited" -gt 0 ] || bench_warn "waiting for $((NEED_KB / 1024)) MiB of available memory (other processes hold it)"
        sleep 10
        waited=$((waited + 10))
    done
}
record() { echo "$1 $2 $3 $4" >> "$RAW"; }

# llama-bench -o json: one object per test, "n_prompt", "n_gen", "avg_ts" on
# their own lines; prints "pp<P> <ts>" / "tg<N> <ts>".
parse_llama_bench() {
    awk '
        /"n_prompt":/ { gsub(/[^0-9]/, "", $2); np = $2 }
        /"n_gen":/ { gsub(/[^0-9]/, "", $2); ng = $2 }
        /"avg_ts":/ { v = $2; gsub(/[,]/, "", v); if (ng > 0) print "tg" ng, v; else print "pp" np, v }
    ' "$1"
}

run_peer() { # round engine binary extra-args...
    r=$1 e=$2 bin=$3
    shift 3
    ok=no
    for attempt in 1 2; do
        wait_for_memory
        cat "$GGUF" > /dev/null # page cache warm, not timed
        if "$bin" -m "$GGUF" -t "$THREADS" -p "$PROMPT_CSV" -n "$NGEN" -r 1 -o json "$@" > "$TMP/lb.json" 2> "$TMP/lb.err"; then
            ok=yes
            break
        fi
        bench_warn "round $r: $e failed (attempt $attempt): $(tail -n 2 "$TMP/lb.err" | tr '\n' ' ')"
    done
    [ $ok = yes ] || return 0
    parse_llama_bench "$TMP/lb.json" | while read -r test ts; do
        case $test in
        tg*) record "$r" "$e" decode "$ts" ;;
        pp*) record "$r" "$e" "prompt${test#pp}" "$ts" ;;
        esac
    done
}

run_ms() { # round engine binary-dir
    r=$1 e=$2 bindir=$3
    for p in $PROMPTS; do
        n=$NGEN
        [ "$p" = "$P1" ] || n=1
        ok=no
        for attempt in 1 2; do
            wait_for_memory
            # shellcheck disable=SC2086 # MS_ARGS is a list of flags
            if "$bindir/moestream" bench -m "$SPLIT" -t "$THREADS" --preload --ram-budget "$BUDGET" --prompt-tokens "$p" \
                -n "$n" --json $MS_ARGS > "$TMP/ms.json" 2> "$TMP/ms.err"; then
                ok=yes
                break
            fi
            bench_warn "round $r: $e (prompt $p) failed (attempt $attempt): $(tail -n 2 "$TMP/ms.err" | tr '\n' ' ')"
        done
        [ $ok = yes ] || continue
        line=$(head -n 1 "$TMP/ms.json")
        record "$r" "$e" "prompt$p" "$(echo "$line" | bench_json_num prefill_tok_s)"
        if [ "$p" = "$P1" ]; then
            record "$r" "$e" decode "$(echo "$line" | bench_json_num decode_tok_s)"
        fi
    done
}

DECODE_BYTES=$("$BIN/moestream-kbench" --decode-bytes "$GGUF" | awk '/^decode_weight_bytes/ { print $2 }')
[ -n "$DECODE_BYTES" ] || bench_die "moestream-kbench --decode-bytes $GGUF failed"

echo "peers.sh: $GGUF / $SPLIT, $THREADS threads, $ROUNDS rounds, prompts $PROMPTS, decode $NGEN tokens" >&2
echo "peers.sh: decode reads $(bench_human "$DECODE_BYTES") of weights per token" >&2
[ "$LOCK" = none ] && LOCK=
if [ -n "$LOCK" ]; then
    exec 9>> "$LOCK" || bench_die "--lock $LOCK: cannot open it"
fi
for r in $(seq 1 "$ROUNDS"); do
    if [ -n "$LOCK" ]; then
        echo "peers.sh: round $r/$ROUNDS: waiting for $LOCK" >&2
        flock 9
    fi
    bw=$("$BIN/moestream-kbench" --types none --tokens 0 --threads "$THREADS" --mb 512 --json |
        awk -F'"read_gbs_all": ' 'NF > 1 { v = $2; sub(/[,}].*/, "", v); print v }')
    record "$r" mem read_gbs "$bw"
    record "$r" mem limit_tok_s "$(awk -v b="$DECODE_BYTES" -v g="$bw" 'BEGIN { printf "%.3f", g * 1e9 / b }')"
    for e in $ENGINES; do
        echo "peers.sh: round $r/$ROUNDS: $e ($(date +%H:%M:%S))" >&2
        case $e in
        ms) run_ms "$r" ms "$BIN" ;;
        ms0) run_ms "$r" ms0 "$BASE_BIN" ;;
        ik) ensure_peer ik ik_llama.cpp && run_peer "$r" ik "$PEERS/ik/llama-bench" ;;
        ik-rtr) ensure_peer ik ik_llama.cpp && run_peer "$r" ik-rtr "$PEERS/ik/llama-bench" -rtr 1 -mmp 0 ;;
        lcpp) ensure_peer lcpp llama.cpp && run_peer "$r" lcpp "$PEERS/lcpp/llama-bench" ;;
        esac
    done
    [ -z "$LOCK" ] || flock -u 9
done
if [ -n "$OUT" ]; then cp "$RAW" "$OUT"; fi

# --- table ----------------------------------------------------------------------
# medians over rounds per (engine, metric); ratios ms / peer per round, then
# their median (a ratio of the same round shares that round's load).
awk -v engines="$ENGINES" -v prompts="$PROMPTS" -v ngen="$NGEN" -v dbytes="$DECODE_BYTES" '
    function median(list,   n, a, i, j, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
        if (n == 0) return ""
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function span(list,   n, a, i, lo, hi) {
        n = split(list, a, " "); lo = hi = a[1]
        for (i = 2; i <= n; i++) { if (a[i] + 0 < lo + 0) lo = a[i]; if (a[i] + 0 > hi + 0) hi = a[i] }
        return sprintf("%.2f-%.2f", lo, hi)
    }
    { v[$1, $2, $3] = $4; vals[$2, $3] = vals[$2, $3] " " $4; if ($1 > nr) nr = $1 }
    END {
        ne = split(engines, E, " "); np = split(prompts, P, " ")
        nm = 0; M[++nm] = "decode"; for (i = 1; i <= np; i++) M[++nm] = "prompt" P[i]
        printf "\n%-8s", "engine"
        for (m = 1; m <= nm; m++) printf "  %-22s", (M[m] == "decode" ? "decode (" ngen ") tok/s" : "prompt " substr(M[m], 7) " tok/s")
        printf "\n"
        for (e = 1; e <= ne; e++) {
            printf "%-8s", E[e]
            for (m = 1; m <= nm; m++) {
                l = vals[E[e], M[m]]
                if (l == "") printf "  %-22s", "-"
                else printf "  %-22s", sprintf("%.2f [%s]", median(l), span(l))
            }
            printf "\n"
        }
        printf "\nratio moestream / peer (median of per-round ratios [min-max]):\n"
        for (e = 1; e <= ne; e++) {
            if (E[e] == "ms") continue
            printf "%-8s", E[e]
            for (m = 1; m <= nm; m++) {
                l = ""
                for (r = 1; r <= nr; r++)
                    if (((r, "ms", M[m]) in v) && ((r, E[e], M[m]) in v) && v[r, E[e], M[m]] > 0)
                        l = l " " v[r, "ms", M[m]] / v[r, E[e], M[m]]
                if (l == "") printf "  %-22s", "-"
                else printf "  %-22s", sprintf("%.3f [%s]", median(l), span(l))
            }
            printf "\n"
        }
        bw = vals["mem", "read_gbs"]; lim = vals["mem", "limit_tok_s"]
        printf "\nmemory read bandwidth %.1f GB/s [%s GB/s], %.3f GB of weights per decode token:\n", median(bw), span(bw), dbytes / 1e9
        printf "decode limit %.2f tok/s [%s]; decode as a share of the limit (median of per-round shares):\n", median(lim), span(lim)
        for (e = 1; e <= ne; e++) {
            l = ""
            for (r = 1; r <= nr; r++)
                if (((r, E[e], "decode") in v) && v[r, "mem", "limit_tok_s"] > 0)
                    l = l " " 100 * v[r, E[e], "decode"] / v[r, "mem", "limit_tok_s"]
            if (l != "") printf "  %-8s %.1f%% [%s%%]\n", E[e], median(l), span(l)
        }
    }
' "$RAW"
