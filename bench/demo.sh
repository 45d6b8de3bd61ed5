#!/bin/sh
# demo.sh BUILD - `make demo`: makes a synthetic demo model (about 250 MB,
# 8 layers x 64 experts, Q4_K_M mix) under models/ if it is not there yet,
# splits it, and streams it with a RAM budget (192M) below its size: after the
# pinned weights, KV cache (-c 512) and scratch, the expert cache holds about
# 30% of the 245 MB of experts, so it must evict and re-read experts from
# disk (measured here: ~80% hit rate, ~190 MB read for 32 tokens). The weights
# are random, so the text is noise; the --stats lines are the point.
set -eu
BUILD=${1:-build}
BIN=$BUILD/bin
MODELS=models
GGUF=$MODELS/demo.gguf
SPLIT=$MODELS/demo-split
BUDGET=${DEMO_RAM_BUDGET:-192M}

mkdir -p "$MODELS"
if [ ! -f "$GGUF" ]; then
    echo "== generating $GGUF"
    "$BIN/moestream-synth" --shape demo --quant q4_k_m -o "$GGUF"
fi
if [ ! -f "$SPLIT/manifest.gguf" ]; then
    echo "== splitting into $SPLIT"
    rm -rf "$SPLIT"
    "$BIN/moestream-split" "$GGUF" -o "$SPLIT"
fi
size=$(du -sh "$SPLIT" | cut -f1)
echo "== streaming $SPLIT ($size on disk) with --ram-budget $BUDGET"
"$BIN/moestream" run -m "$SPLIT" -p "The expert cache streams weights from disk" -n 32 \
    -c 512 --ram-budget "$BUDGET" --stats
