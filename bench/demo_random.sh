#!/bin/sh
# demo_random.sh [BUILD] - `make demo-random`: makes a synthetic demo model (about 250 MB,
# qwen3moe layout, 8 layers x 64 experts, 8 used, Q4_K_M mix) under models/
# if it is not there yet, splits it, and streams it with a RAM budget (192M)
# below its size: after the pinned weights, KV cache (-c 512) and scratch, the
# expert cache holds only 20-30% of the 245 MB of experts, so it must evict and
# re-read experts from disk (measured here: 73-83% hit rate, 170-280 MiB read
# for 32 tokens). The weights are random, so the text is noise; the --stats lines
# are the point.
# DEMO_RAM_BUDGET overrides the budget; DEMO_TOKENS the tokens generated.
set -eu
BUILD=${1:-build}
BIN=$BUILD/bin
MODELS=models
GGUF=$MODELS/demo.gguf
SPLIT=$MODELS/demo-split
BUDGET=${DEMO_RAM_BUDGET:-192M}
NTOK=${DEMO_TOKENS:-32}
PROMPT="The expert cache streams weights from disk"

echo "moestream demo: a synthetic Mixture-of-Experts model (random weights, so the"
echo "generated text is noise) run with a RAM budget smaller than the model, so the"
echo "routed experts are read from disk while it generates."
echo
mkdir -p "$MODELS"
if [ -f "$GGUF" ]; then
    echo "== [1/3] model: $GGUF exists, reusing it"
else
    echo "== [1/3] model: generating $GGUF with moestream-synth --shape demo"
    "$BIN/moestream-synth" --shape demo --quant q4_k_m -o "$GGUF"
fi
if [ -f "$SPLIT/manifest.gguf" ]; then
    echo "== [2/3] split: $SPLIT exists, reusing it"
else
    echo "== [2/3] split: $GGUF -> $SPLIT (pinned.bin + one experts file per layer)"
    rm -rf "$SPLIT"
    "$BIN/moestream-split" "$GGUF" -o "$SPLIT"
fi
size=$(du -sm "$SPLIT" | cut -f1)
echo "== [3/3] run: $SPLIT is $size MiB on disk; RAM budget $BUDGET, so experts stream"
echo "   $BIN/moestream run -m $SPLIT -p \"$PROMPT\" -n $NTOK -c 512 --ram-budget $BUDGET --stats"
echo
"$BIN/moestream" run -m "$SPLIT" -p "$PROMPT" -n "$NTOK" -c 512 --ram-budget "$BUDGET" --stats
echo
echo "== done. The model is in $SPLIT (source GGUF: $GGUF; make clean keeps both)."
echo "   stats: 'read' is what came from disk, 'cache hit rate' the share of routed"
echo "   experts already in RAM; try --ram-budget 1G (every expert stays in RAM once read) or --io pread."
