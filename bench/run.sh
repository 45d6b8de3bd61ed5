#!/bin/sh
# run.sh - `make bench`: a quick benchmark set (a few minutes, the demo model),
# and the big runs when asked for by name. See bench/README.md for what every
# figure means and how to reproduce it.
#
#   sh bench/run.sh [BUILD] [SET...]        or   BENCH="SET..." make bench
#
# SETs (default: quick):
#   quick     kernels (moestream-kbench, 64 MiB per format) and the streaming
#             benchmark on the demo model (models/demo-split, made if missing)
#             in a 224 MiB cgroup, -n 256 -c 512 (the KV cache of the default
#             context would leave the expert cache one token's worth of slots);
#             needs root, skipped with the reason if not
#   stream    bench/stream_bench.sh on $STREAM_MODEL (default
#             models/qwen3-30b-a3b-q4km-split) with --limit $STREAM_LIMIT (8G),
#             $STREAM_ARGS appended (e.g. "--repeat 3"); 5-15 minutes
#   split     bench/split_bench.sh on $SPLIT_MODEL (default
#             models/qwen3-30b-a3b-q4km.gguf): split vs cp, cold; needs 2x the
#             model free
#   kernels-full  moestream-kbench with its defaults (512 MiB, every format)
set -eu
BENCH_NAME=bench
. "$(dirname "$0")/lib.sh"

BUILD=build
if [ $# -gt 0 ] && [ -d "$1" ]; then BUILD=$1; shift; fi
BIN=$BUILD/bin
export MOESTREAM_BIN=$BIN
SETS=${*:-${BENCH:-quick}}
[ -x "$BIN/moestream" ] || bench_die "$BIN/moestream not found (run make)"

demo_split() {
    if [ ! -f models/demo-split/manifest.gguf ]; then
        mkdir -p models
        [ -f models/demo.gguf ] || "$BIN/moestream-synth" --shape demo --quant q4_k_m -o models/demo.gguf
        "$BIN/moestream-split" models/demo.gguf -o models/demo-split -q
    fi
}

for set in $SETS; do
    case "$set" in
    quick)
        echo "== kernels: moestream-kbench --mb 64 --seconds 0.2 --types Q4_K,Q6_K,Q8_0"
        "$BIN/moestream-kbench" --mb 64 --seconds 0.2 --types Q4_K,Q6_K,Q8_0
        echo
        demo_split
        echo "== streaming: demo model, 224 MiB cgroup, -n 256 -c 512, cold, every backend"
        if [ "$(id -u)" = 0 ]; then
            sh bench/stream_bench.sh --limit 224M -n 256 --run-flags "-c 512" --fio-seconds 5 --out "bench/out/stream-demo-$(date +%Y%m%d-%H%M%S)" models/demo-split
        else
            echo "skipped: stream_bench.sh needs root (memory cgroup, dropping the page cache); run: sudo sh bench/run.sh $BUILD quick"
        fi
        ;;
    stream)
        # shellcheck disable=SC2086 # STREAM_ARGS is a list of options
        sh bench/stream_bench.sh --limit "${STREAM_LIMIT:-8G}" ${STREAM_ARGS:-} \
            "${STREAM_MODEL:-models/qwen3-30b-a3b-q4km-split}"
        ;;
    split)
        sh bench/split_bench.sh "${SPLIT_MODEL:-models/qwen3-30b-a3b-q4km.gguf}"
        ;;
    kernels-full)
        "$BIN/moestream-kbench"
        ;;
    *)
        bench_die "unknown set $set (quick, stream, split, kernels-full)"
        ;;
    esac
done
