#!/bin/sh
# demo.sh [BUILD] - `make demo`: streams a real trained Mixture-of-Experts model
# that ships with the repository (models/tinymoe-Q4_K_M.gguf: 41M parameters,
# 6 layers x 32 experts, 4 used per token, trained on Python source; see
# models/README.md) under a RAM budget whose expert cache holds well under half
# of its experts, so experts are evicted and read again from disk while it
# writes Python. Needs nothing outside the repository.
# DEMO_TOKENS sets the tokens generated (default 120); DEMO_CACHE the expert
# cache on top of the minimum budget (default 2M; measured: 85% hit rate, 51 MiB
# read for 120 tokens, 4M gives 90%).
set -eu
BUILD=${1:-build}
BIN=$BUILD/bin
GGUF=models/tinymoe-Q4_K_M.gguf
SPLIT=$BUILD/demo/tinymoe-Q4_K_M
NTOK=${DEMO_TOKENS:-120}
CACHE=${DEMO_CACHE:-2M}
PROMPT='def is_prime(n):\n    """Return True if n is a prime number."""\n'

if [ ! -f "$GGUF" ]; then
    echo "demo: $GGUF is missing (it ships with the repository; is this a full clone?)" >&2
    exit 1
fi
echo "moestream demo: tinymoe, a small Mixture-of-Experts model trained on Python code,"
echo "run with less RAM than its experts take, so the experts it routes to stream from disk."
echo
if [ -f "$SPLIT/manifest.gguf" ] && [ "$SPLIT/manifest.gguf" -nt "$GGUF" ]; then
    echo "== [1/3] split: $SPLIT exists, reusing it"
else
    echo "== [1/3] split: $GGUF -> $SPLIT (pinned weights + one file of expert blobs per layer)"
    mkdir -p "$BUILD/demo"
    "$BIN/moestream-split" -q --force "$GGUF" -o "$SPLIT"
fi
experts=$(cat "$SPLIT"/experts-*.bin | wc -c)
# The smallest budget that runs (pinned weights, KV cache, scratch, one layer's
# active experts) depends on the thread count: ask moestream, then add CACHE.
need=$("$BIN/moestream" run -m "$SPLIT" -p x -n 1 -c 512 --ram-budget 1M 2>&1 |
       sed -n 's/.*need at least --ram-budget \([0-9.]*\)G.*/\1/p')
if [ -z "$need" ]; then
    echo "demo: could not find the minimum RAM budget of $SPLIT" >&2
    exit 1
fi
cache_mib=$(echo "$CACHE" | sed 's/[Mm]$//')
budget_mib=$(awk -v g="$need" -v c="$cache_mib" 'BEGIN { printf "%d", g * 1024 + c + 0.999 }')
echo "== [2/3] budget: the experts take $((experts / 1048576)) MiB on disk; --ram-budget ${budget_mib}M is the"
echo "   minimum that runs (weights, KV cache, scratch, one layer's experts; ${need} GiB) plus $CACHE, so the"
echo "   expert cache holds a fraction of them (the stats line shows its size)"
echo "== [3/3] run: $BIN/moestream run -m $SPLIT -p '...' -n $NTOK --temp 0.6 -s 1 -c 512 --ram-budget ${budget_mib}M --stats"
echo
"$BIN/moestream" run -m "$SPLIT" -p "$PROMPT" -n "$NTOK" --temp 0.6 -s 1 -c 512 \
    --ram-budget "${budget_mib}M" --stats --log-disable 2>"$BUILD/demo/stats.txt"
echo
grep -v '^moestream: sampling with seed' "$BUILD/demo/stats.txt" || true
hit=$(sed -n 's/.*cache hit rate \([0-9.]*\)%.*/\1/p' "$BUILD/demo/stats.txt")
echo
echo "== done: the expert cache served ${hit}% of the routed experts; the rest were read from disk"
echo "   ('read' above). Try --ram-budget 1G (every expert stays in RAM once read), --io pread,"
echo "   or llama.cpp's habits on the GGUF itself (no split): $BIN/moestream -m $GGUF -p 'import os' -n 64."
echo "   make demo-random streams a larger synthetic model (random weights) for I/O."
