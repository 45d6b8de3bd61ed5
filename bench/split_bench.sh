#!/bin/sh
# split_bench.sh - throughput of moestream-split next to plain cp of the same
# GGUF on the same disk, in one run, with the page cache dropped before each
# step (cold source, as on a first split).
#
#   sh bench/split_bench.sh MODEL.gguf [WORKDIR]
#
# MODEL.gguf: a multi-GB MoE model (e.g. from moestream-synth), or the first
# part of a multi-part model. WORKDIR (default: the model's directory) gets
# the copy and the split; both are removed at the end unless KEEP=1.
# MOESTREAM_BIN: where moestream-split is (default build/bin).
# Dropping caches needs root (or passwordless sudo); without it (or with
# DROP_CACHES=0) the numbers are printed with a warning, since a warm source
# inflates them.
set -eu

usage() { echo "usage: sh bench/split_bench.sh MODEL.gguf [WORKDIR]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
case "$1" in -h|--help) usage ;; esac
MODEL=$1
[ -f "$MODEL" ] || { echo "split_bench: $MODEL: no such file" >&2; exit 1; }
WORK=${2:-$(dirname "$MODEL")}
BIN=${MOESTREAM_BIN:-build/bin}
SPLIT="$BIN/moestream-split"
[ -x "$SPLIT" ] || { echo "split_bench: $SPLIT not found (run make, or set MOESTREAM_BIN)" >&2; exit 1; }
mkdir -p "$WORK"

# Every part of a multi-part model (name-00001-of-0000N.gguf) counts.
case "$MODEL" in
*-00001-of-[0-9][0-9][0-9][0-9][0-9].gguf)
    PARTS=$(ls "${MODEL%-00001-of-*}"-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].gguf) ;;
*) PARTS=$MODEL ;;
esac
BYTES=0
for p in $PARTS; do BYTES=$((BYTES + $(stat -c %s "$p"))); done

AVAIL=$(df -P -B1 "$WORK" | awk 'NR == 2 { print $4 }')
if [ "$AVAIL" -lt $((BYTES * 21 / 10)) ]; then
    echo "split_bench: $WORK has $((AVAIL >> 20)) MiB free, needs about $((BYTES * 21 / 10 >> 20)) MiB (a copy and a split)" >&2
    exit 1
fi

COPY="$WORK/split_bench.copy.$$"
OUT="$WORK/split_bench.split.$$"
cleanup() {
    [ "${KEEP:-0}" = 1 ] && return
    rm -rf "$COPY" "$OUT" "$OUT".tmp-*
}
trap cleanup EXIT INT TERM

DROPPED=yes
drop_caches() {
    sync
    if [ "${DROP_CACHES:-1}" = 0 ]; then
        DROPPED=no
    elif [ -w /proc/sys/vm/drop_caches ]; then
        echo 3 > /proc/sys/vm/drop_caches
    elif sudo -n true 2>/dev/null; then
        sudo -n sh -c 'echo 3 > /proc/sys/vm/drop_caches'
    else
        DROPPED=no
    fi
}

now() { date +%s.%N; }
rate() { awk -v b="$BYTES" -v t="$1" 'BEGIN { printf "%8.1f MB/s  (%.2f s)", b / t / 1e6, t }'; }

echo "split_bench: $MODEL ($(awk -v b="$BYTES" 'BEGIN { printf "%.2f GB", b / 1e9 }')) on $(df -P "$WORK" | awk 'NR == 2 { print $1 }'), workdir $WORK"

# cp: copy every part, then sync so the data is on disk as the split's is
# (moestream-split fsyncs every file before it returns).
drop_caches
mkdir -p "$COPY"
t0=$(now)
for p in $PARTS; do cp "$p" "$COPY/"; done
sync
t1=$(now)
CP_T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
rm -rf "$COPY"

drop_caches
t0=$(now)
"$SPLIT" "$MODEL" -o "$OUT" -q
t1=$(now)
SPLIT_T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')

drop_caches
t0=$(now)
"$SPLIT" verify "$OUT" -q
t1=$(now)
VERIFY_T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')

echo "  cp + sync              $(rate "$CP_T")"
echo "  moestream-split        $(rate "$SPLIT_T")  ($(awk -v s="$SPLIT_T" -v c="$CP_T" 'BEGIN { printf "%.2fx the time of cp", s / c }'))"
echo "  moestream-split verify $(rate "$VERIFY_T")"
[ "$DROPPED" = yes ] || echo "  warning: could not drop the page cache (needs root); the source may have been read from RAM"
