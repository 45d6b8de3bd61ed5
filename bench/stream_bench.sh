#!/bin/sh
# stream_bench.sh - the out-of-core streaming benchmark: decode speed of a
# split model whose experts do not fit in RAM, per reader backend, next to the
# disk's own random-read bandwidth measured with fio in the same run.
#
#   sh bench/stream_bench.sh [options] DIR
#
# For each repeat, in this order (A/B interleaved, so drift hits every backend
# alike): fio randread over DIR's experts files (O_DIRECT, request size = the
# model's blob size(s), queue depth QD); then per backend (uring, pread,
# buffered) a prefill-only run (-n 0) and the full run (-n N), each started
# cold (page cache dropped) inside a memory cgroup limited to LIMIT, with
# --ram-budget BUDGET so that the runtime, not the OOM killer, keeps it under
# the limit; then the compute-only reference: the same run with a budget that
# holds every expert (WARM_BUDGET, no cgroup limit, --preload if available).
#
# Decode figures are the full run minus the prefill-only run (same prompt,
# greedy, so the same prefill reads): bytes and reads per generated token,
# the decode hit rate, I/O wait in decode, and compute per token = decode time
# minus decode I/O wait. The target of the "Streaming engine" issue:
#     decode time per token <= 1.15 * max(decode bytes per token / disk bandwidth,
#                                         compute time per token with everything cached)
# Printed as a markdown table (medians over repeats); every run's JSON line,
# the fio output and a JSON summary go to OUT (default bench/out/stream-DATE).
# Needs root: the cgroup, and dropping the page cache (DROP_CACHES=0 skips it,
# with a warning: a warm page cache flatters the buffered backend).
set -eu

BENCH_NAME=stream_bench
. "$(dirname "$0")/lib.sh"

usage() {
    cat >&2 <<'EOF'
usage: sh bench/stream_bench.sh [options] DIR

DIR: a split model (moestream-split). Options (defaults in brackets):
  --limit SIZE        memory cgroup limit for the streaming runs [8G]
  --budget SIZE       moestream --ram-budget [LIMIT - 512M]
  -n N                tokens to generate [64]
  -p TEXT             prompt ["The history of the Roman Empire"]
  --backends LIST     comma list of uring, pread, buffered [uring,pread,buffered]
  --repeat N          repeats, interleaved; the tables show medians [1]
  --qd N              queue depth of moestream (--queue-depth) and fio [16]
  --fio-seconds S     fio run time per repeat [20]
  --warm-budget SIZE  budget of the compute-only run; "off" skips it [22G]
  --no-prefill-run    skip the -n 0 runs (decode figures then include the prefill)
  --out DIR           where the logs and summary.json go [bench/out/stream-DATE]
  --run-flags FLAGS   extra moestream run flags, e.g. "-t 2 -c 1024" [""]
Environment: MOESTREAM_BIN (default build/bin), DROP_CACHES=0, FIO_ENGINE,
WAIT_MEM_SECONDS (how long a run waits for LIMIT of free memory; 600).
EOF
    exit 2
}

LIMIT=8G
BUDGET=
N_PREDICT=64
PROMPT="The history of the Roman Empire"
BACKENDS=uring,pread,buffered
REPEAT=1
QD=16
FIO_SECONDS=20
WARM_BUDGET=22G
PREFILL_RUN=1
OUT=
RUN_FLAGS=
need() { [ $# -ge 2 ] || { echo "stream_bench: $1 needs a value" >&2; usage; }; }
while [ $# -gt 0 ]; do
    case "$1" in
    --limit) need "$@"; LIMIT=$2; shift ;;
    --budget) need "$@"; BUDGET=$2; shift ;;
    -n) need "$@"; N_PREDICT=$2; shift ;;
    -p) need "$@"; PROMPT=$2; shift ;;
    --backends) need "$@"; BACKENDS=$2; shift ;;
    --repeat) need "$@"; REPEAT=$2; shift ;;
    --qd) need "$@"; QD=$2; shift ;;
    --fio-seconds) need "$@"; FIO_SECONDS=$2; shift ;;
    --warm-budget) need "$@"; WARM_BUDGET=$2; shift ;;
    --no-prefill-run) PREFILL_RUN=0 ;;
    --out) need "$@"; OUT=$2; shift ;;
    --run-flags) need "$@"; RUN_FLAGS=$2; shift ;;
    -h|--help) usage ;;
    -*) echo "stream_bench: unknown option $1" >&2; usage ;;
    *) [ -z "${DIR:-}" ] || usage; DIR=$1 ;;
    esac
    shift
done
[ -n "${DIR:-}" ] || usage
[ -f "$DIR/manifest.gguf" ] || bench_die "$DIR: not a split model (no manifest.gguf; make one with moestream-split)"
BIN=${MOESTREAM_BIN:-build/bin}
[ -x "$BIN/moestream" ] && [ -x "$BIN/moestream-split" ] ||
    bench_die "$BIN/moestream or moestream-split not found (run make, or set MOESTREAM_BIN)"
command -v fio >/dev/null || bench_die "fio not found (apt-get install fio)"
case "$REPEAT$N_PREDICT$QD$FIO_SECONDS" in *[!0-9]*) bench_die "--repeat, -n, --qd and --fio-seconds take positive integers" ;; esac
for b in $(echo "$BACKENDS" | tr ',' ' '); do
    case "$b" in uring|pread|buffered) ;; *) bench_die "--backends: $b is not uring, pread or buffered" ;; esac
done
[ "$(id -u)" = 0 ] || bench_die "needs root: the memory cgroup and dropping the page cache (run with sudo)"

LIMIT_B=$(bench_size "$LIMIT") || bench_die "--limit $LIMIT: expected a size such as 8G or 400M"
if [ -n "$BUDGET" ]; then
    BUDGET_B=$(bench_size "$BUDGET") || bench_die "--budget $BUDGET: expected a size such as 7.5G"
else
    BUDGET_B=$((LIMIT_B - 512 * 1048576))
    # Small limits (tests on the demo model): keep 1/8 of the limit as headroom.
    [ "$BUDGET_B" -ge $((LIMIT_B * 7 / 8)) ] || BUDGET_B=$((LIMIT_B * 7 / 8))
fi
[ "$BUDGET_B" -lt "$LIMIT_B" ] || bench_die "--budget $(bench_human "$BUDGET_B") is not below --limit $(bench_human "$LIMIT_B"): the cgroup would OOM-kill before the runtime evicts"
BUDGET_M=$((BUDGET_B / 1048576))M

TOTAL_B=$(awk '$1 == "MemTotal:" { printf "%.0f\n", $2 * 1024 }' /proc/meminfo)
[ "$LIMIT_B" -lt "$TOTAL_B" ] || bench_die "--limit $(bench_human "$LIMIT_B") is not below the RAM ($(bench_human "$TOTAL_B"))"

# --- the model: layers, experts used, blob sizes, files (moestream-split info)
INFO=$("$BIN/moestream-split" info "$DIR") || bench_die "moestream-split info $DIR failed"
N_LAYER=$(echo "$INFO" | awk '/^layer [0-9]+:/ { n++ } END { print n + 0 }')
N_USED=$(echo "$INFO" | awk '$1 ~ /expert_used_count$/ { print $NF; exit }')
PINNED_B=$(echo "$INFO" | awk '$1 == "moestream.pinned.file_size" { print $NF; exit }')
EXPERTS_B=$(echo "$INFO" | awk '/^layer [0-9]+:/ { s += $3 * $6 } END { printf "%.0f\n", s }')
FILES=$(echo "$INFO" | awk '/^layer [0-9]+:/ { print $NF }')
[ "$N_LAYER" -gt 0 ] && [ -n "$N_USED" ] && [ -n "$PINNED_B" ] ||
    bench_die "$DIR: could not read layers / expert_used_count / pinned size from moestream-split info"
for f in $FILES; do [ -f "$f" ] || bench_die "$f: listed by moestream-split info but missing"; done
# fio request size: every distinct blob size, weighted by how many experts
# have it (bssplit percentages sum to 100; a size under 1% is dropped).
FIO_BS=$(echo "$INFO" | awk '/^layer [0-9]+:/ { w[$6] += $3; t += $3 }
    END { n = 0; for (b in w) { p = int(100 * w[b] / t + 0.5); if (p > 0) { s[++n] = b; q[n] = p; sum += p } }
          q[n] += 100 - sum
          if (n == 1) { print "--bs=" s[1]; exit }
          o = "--bssplit="; for (i = 1; i <= n; i++) o = o (i > 1 ? ":" : "") s[i] "/" q[i]; print o }')
FIO_FILES=$(echo "$FILES" | tr '\n' ':' | sed 's/:$//')
if [ -z "${FIO_ENGINE:-}" ]; then
    FIO_ENGINE=libaio
    fio --enghelp=io_uring >/dev/null 2>&1 && FIO_ENGINE=io_uring
fi

# The compute-only run needs every expert resident: pinned + experts + KV and
# scratch (about 1 GiB of slack) within WARM_BUDGET, and that much free RAM.
WARM=0
if [ "$WARM_BUDGET" != off ]; then
    WARM_B=$(bench_size "$WARM_BUDGET") || bench_die "--warm-budget $WARM_BUDGET: expected a size or off"
    AVAIL_B=$(awk '$1 == "MemAvailable:" { printf "%.0f\n", $2 * 1024 }' /proc/meminfo)
    NEED_B=$((PINNED_B + EXPERTS_B + 1073741824))
    if [ "$NEED_B" -gt "$WARM_B" ]; then
        bench_warn "no compute-only run: the model needs about $(bench_human "$NEED_B") resident, --warm-budget is $(bench_human "$WARM_B")"
    elif [ "$WARM_B" -gt "$AVAIL_B" ] && [ "$NEED_B" -gt "$AVAIL_B" ]; then
        bench_warn "no compute-only run: the model needs about $(bench_human "$NEED_B") resident, $(bench_human "$AVAIL_B") is available"
    else
        WARM=1
        [ "$WARM_B" -le "$AVAIL_B" ] || WARM_B=$NEED_B
        WARM_M=$((WARM_B / 1048576))M
    fi
fi
# With --preload (if this moestream has it) the warm run reads every expert
# before the prompt, so its decode never waits; without it, the first touch
# of each expert is a read and the reference is decode time minus I/O wait.
WARM_FLAGS=
"$BIN/moestream" run --help 2>&1 | grep -q -- --preload && WARM_FLAGS=--preload

OUT=${OUT:-bench/out/stream-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RUNS=$OUT/runs.tsv
FIOS=$OUT/fio.tsv
: > "$RUNS"
: > "$FIOS"

CHILD=
cleanup() {
    if [ -n "$CHILD" ]; then
        kill "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    bench_cg_destroy
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bench_cg_create "moestream-stream-bench-$$"

echo "stream_bench: $DIR: $N_LAYER layers, $N_USED experts used per token, experts $(bench_human "$EXPERTS_B"), pinned $(bench_human "$PINNED_B")"
echo "stream_bench: cgroup limit $(bench_human "$LIMIT_B"), --ram-budget $BUDGET_M, -n $N_PREDICT, qd $QD, backends $BACKENDS, repeat $REPEAT, out $OUT"
[ "$EXPERTS_B" -gt "$BUDGET_B" ] || bench_warn "every expert fits in the budget: this measures cold loading, not streaming"

# run_fio R: the disk's random-read bandwidth over the experts files.
run_fio() {
    log=$OUT/fio-r$1.json
    fio --name=experts --filename="$FIO_FILES" --readonly --rw=randread "$FIO_BS" --direct=1 \
        --ioengine="$FIO_ENGINE" --iodepth="$QD" --runtime="$FIO_SECONDS" --time_based \
        --file_service_type=random --group_reporting --output-format=json > "$log" ||
        bench_die "fio failed (see $log)"
    bw=$(awk '/"read" *:/ { r = 1 } r && /"bw_bytes"/ { gsub(/[^0-9]/, "", $NF); print $NF; exit }' "$log")
    iops=$(awk '/"read" *:/ { r = 1 } r && /"iops" *:/ { gsub(/[^0-9.]/, "", $NF); print $NF; exit }' "$log")
    [ -n "$bw" ] && [ "$bw" -gt 0 ] || bench_die "no read bandwidth in the fio output ($log)"
    printf '%s\t%s\t%s\n' "$1" "$bw" "$iops" >> "$FIOS"
    echo "  r$1 fio $FIO_ENGINE randread $FIO_BS qd $QD ${FIO_SECONDS}s: $(awk -v b="$bw" -v i="$iops" 'BEGIN { printf "%.0f MB/s, %.0f IOPS", b / 1e6, i }')"
}

# wait_for_memory BYTES: on a shared machine, do not start a run whose limit
# exceeds the memory available (the kernel's OOM killer would decide, not
# the cgroup); wait up to WAIT_MEM_SECONDS (600) for it, then give up.
wait_for_memory() {
    waited=0
    while :; do
        avail=$(awk '$1 == "MemAvailable:" { printf "%.0f\n", $2 * 1024 }' /proc/meminfo)
        [ "$avail" -lt "$1" ] || return 0
        [ "$waited" -lt "${WAIT_MEM_SECONDS:-600}" ] ||
            bench_die "only $(bench_human "$avail") available after ${waited}s, the run needs $(bench_human "$1")"
        [ "$waited" -gt 0 ] || echo "  waiting for $(bench_human "$1") of free memory ($(bench_human "$avail") available)"
        sleep 5
        waited=$((waited + 5))
    done
}

# run_one R LABEL PHASE IO BUDGET LIMIT_BYTES N: one cold moestream run in the
# cgroup; appends a line to runs.tsv (NA fields if it failed).
JSON_KEYS="prompt_tokens prompt_s gen_tokens gen_s decode_tok_s bytes_read reads bytes_read_per_token cache_hit_rate io_wait_s compute_s io_wait_frac read_bw_bytes_s peak_rss_bytes cache_bytes ram_budget_bytes"
run_one() {
    r=$1 label=$2 phase=$3 io=$4 budget=$5 limit=$6 n=$7 flags=${8:-}
    base=$OUT/r$r-$label-$phase
    bench_drop_caches
    wait_for_memory "$([ "$limit" = -1 ] && echo "$NEED_B" || echo "$limit")"
    bench_cg_limit "$limit"
    oom0=$(bench_cg_oom_kills)
    t0=$(bench_now)
    # shellcheck disable=SC2086 # RUN_FLAGS, flags: lists of flags
    bench_cg_exec "$BIN/moestream" run -m "$DIR" -p "$PROMPT" -n "$n" --temp 0 --seed 1 \
        --ram-budget "$budget" --io "$io" --queue-depth "$QD" --stats-json $RUN_FLAGS $flags \
        > "$base.out" 2> "$base.err" &
    CHILD=$!
    rc=0
    wait "$CHILD" || rc=$?
    CHILD=
    t1=$(bench_now)
    peak=$(bench_cg_peak)
    oom=$(($(bench_cg_oom_kills) - oom0))
    json=$(grep '^{' "$base.err" | tail -n 1 || true)
    line="$r	$label	$phase	$io	$budget	$limit	$rc	$oom	$peak"
    for k in $JSON_KEYS; do
        v=$(echo "$json" | bench_json_num "$k")
        line="$line	${v:-NA}"
    done
    printf '%s\n' "$line" >> "$RUNS"
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    if [ "$rc" != 0 ] || [ -z "$json" ]; then
        why="exit $rc"
        [ "$oom" -gt 0 ] && why="$why, OOM-killed by the cgroup ($oom)"
        bench_warn "r$r $label $phase failed ($why) after ${wall}s: see $base.err"
        tail -n 3 "$base.err" >&2
    else
        echo "  r$r $label $phase ($io, budget $budget): $(echo "$json" | bench_json_num decode_tok_s) tok/s decode, $(echo "$json" | bench_json_num gen_tokens) tokens, cgroup peak $(bench_human "$peak"), ${wall}s"
    fi
}

r=1
while [ "$r" -le "$REPEAT" ]; do
    run_fio "$r"
    for b in $(echo "$BACKENDS" | tr ',' ' '); do
        [ "$PREFILL_RUN" = 0 ] || run_one "$r" "$b" prefill "$b" "$BUDGET_M" "$LIMIT_B" 0
        run_one "$r" "$b" full "$b" "$BUDGET_M" "$LIMIT_B" "$N_PREDICT"
    done
    if [ "$WARM" = 1 ]; then
        [ "$PREFILL_RUN" = 0 ] || run_one "$r" warm prefill uring "$WARM_M" -1 0 "$WARM_FLAGS"
        run_one "$r" warm full uring "$WARM_M" -1 "$N_PREDICT" "$WARM_FLAGS"
    fi
    r=$((r + 1))
done
[ "$BENCH_DROPPED" = yes ] || bench_warn "the page cache was not dropped (DROP_CACHES=0 or no permission): runs were not cold"

# --- analysis: medians over repeats, markdown tables, summary.json
awk -F'\t' -v nl="$N_LAYER" -v nu="$N_USED" -v limit="$LIMIT_B" -v budget="$BUDGET_B" \
    -v model="$DIR" -v prompt="$PROMPT" -v npred="$N_PREDICT" -v qd="$QD" -v rep="$REPEAT" \
    -v engine="$FIO_ENGINE" -v fbs="$FIO_BS" -v fsec="$FIO_SECONDS" -v dropped="$BENCH_DROPPED" \
    -v backends="$BACKENDS" -v experts="$EXPERTS_B" -v pinned="$PINNED_B" -v json="$OUT/summary.json" \
    -v keys="$JSON_KEYS" '
function med(list,   a, n, i, j, t) {
    n = split(list, a, " "); if (n == 0) return "NA"
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function add(lab, k, v) { if (v != "NA" && v != "") L[lab, k] = L[lab, k] (L[lab, k] == "" ? "" : " ") v }
function m(lab, k) { return med(L[lab, k]) }
function f(fmt, v) { return v == "NA" ? "n/a" : sprintf(fmt, v) }
function jstr(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
function jnum(v) { return v == "NA" || v == "" ? "null" : v }
FILENAME ~ /fio.tsv$/ { fio[$1] = $2; fiol = fiol (fiol == "" ? "" : " ") $2; next }
{
    nk = split(keys, K, " ")
    key = $1 SUBSEP $2 SUBSEP $3
    R[key] = 1; rc[key] = $7; oom[key] = $8; cgpeak[key] = $9
    for (i = 1; i <= nk; i++) V[key, K[i]] = $(9 + i)
    if ($3 == "full") { reps[$1] = 1; labs[$2] = 1 }
}
END {
    # per repeat and label: decode figures (full minus prefill)
    for (key in R) {
        split(key, p, SUBSEP); r = p[1]; lab = p[2]
        if (p[3] != "full") continue
        if (rc[key] != 0 || V[key, "gen_tokens"] == "NA") { fails[lab]++; if (oom[key] > 0) ooms[lab] += oom[key]; continue }
        pk = r SUBSEP lab SUBSEP "prefill"
        havep = (pk in R) && rc[pk] == 0 && V[pk, "bytes_read"] != "NA"
        g = V[key, "gen_tokens"]; if (g <= 0) continue
        b = V[key, "bytes_read"] - (havep ? V[pk, "bytes_read"] : 0)
        rd = V[key, "reads"] - (havep ? V[pk, "reads"] : 0)
        io = V[key, "io_wait_s"] - (havep ? V[pk, "io_wait_s"] : 0)
        if (io < 0) io = 0
        gs = V[key, "gen_s"]
        D[r, lab, "ms_tok"] = 1000 * gs / g
        D[r, lab, "bpt"] = b / g
        D[r, lab, "hit"] = havep ? 1 - rd / (g * nl * nu) : V[key, "cache_hit_rate"]
        D[r, lab, "io_frac"] = gs > 0 ? io / gs : 0
        D[r, lab, "bw"] = gs > 0 ? b / gs : 0
        D[r, lab, "comp_ms"] = 1000 * (gs - io) / g
        if (r in fio) D[r, lab, "disk_ratio"] = D[r, lab, "bw"] / fio[r]
        for (i = 1; i <= nk; i++) add(lab, K[i], V[key, K[i]])
        add(lab, "cg_peak", cgpeak[key])
        if (havep) add(lab, "cg_peak_prefill", cgpeak[pk])
        ok[lab]++
    }
    # target per repeat: compute from the warm run of that repeat (else the
    # run itself), I/O from the fio of that repeat
    for (r in reps) for (lab in labs) {
        if (!((r, lab, "ms_tok") in D)) continue
        comp = ((r, "warm", "comp_ms") in D) ? D[r, "warm", "comp_ms"] : D[r, lab, "comp_ms"]
        tio = (r in fio) ? 1000 * D[r, lab, "bpt"] / fio[r] : 0
        D[r, lab, "target_ms"] = comp > tio ? comp : tio
        D[r, lab, "target_io_ms"] = tio
        D[r, lab, "ratio"] = D[r, lab, "ms_tok"] / D[r, lab, "target_ms"]
    }
    split("ms_tok bpt hit io_frac bw comp_ms disk_ratio target_ms target_io_ms ratio", DKL, " ")
    for (key in D) { split(key, p, SUBSEP); add(p[2], "d_" p[3], D[key]) }
    fbw = med(fiol)
    warmc = m("warm", "d_comp_ms")
    nb = split(backends, B, ","); if ("warm" in labs) B[++nb] = "warm"

    printf "\n### moestream streaming benchmark: %s\n\n", model
    printf "cgroup limit %.2f GiB, --ram-budget %.2f GiB, experts %.2f GiB + pinned %.2f GiB, prompt \"%s\", -n %d, --temp 0, qd %d, %d repeat(s) (medians), page cache dropped before every run: %s\n\n", limit / 2^30, budget / 2^30, experts / 2^30, pinned / 2^30, prompt, npred, qd, rep, dropped
    printf "disk (fio %s randread O_DIRECT %s qd %d, %ds): **%.0f MB/s** (%s)\n\n", engine, fbs, qd, fsec, fbw / 1e6, fiol
    printf "Decode (full run minus the prefill-only run):\n\n"
    printf "| backend | decode tok/s | ms/token | MiB read/token | hit rate | read MB/s | /disk | I/O wait | compute ms/token | target ms/token | ms/token / target | peak RSS GiB | cgroup peak GiB |\n"
    printf "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    for (i = 1; i <= nb; i++) {
        lab = B[i]
        if (!ok[lab]) { printf "| %s | failed (%d run(s)%s) |||||||||||\n", lab, fails[lab], ooms[lab] ? ", OOM-killed" : ""; continue }
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", lab (lab == "warm" ? " (all cached, uring)" : ""),
            f("%.2f", m(lab, "decode_tok_s")), f("%.0f", m(lab, "d_ms_tok")), f("%.1f", m(lab, "d_bpt") / 2^20),
            f("%.1f%%", 100 * m(lab, "d_hit")), f("%.0f", m(lab, "d_bw") / 1e6), f("%.2f", m(lab, "d_disk_ratio")),
            f("%.0f%%", 100 * m(lab, "d_io_frac")), f("%.0f", m(lab, "d_comp_ms")),
            lab == "warm" ? "-" : f("%.0f", m(lab, "d_target_ms")), lab == "warm" ? "-" : f("%.2f", m(lab, "d_ratio")) (m(lab, "d_ratio") <= 1.15 ? " ok" : " **over**"),
            f("%.2f", m(lab, "peak_rss_bytes") / 2^30), f("%.2f", m(lab, "cg_peak") / 2^30)
    }
    printf "\nAs reported by --stats-json (whole run, prompt + decode):\n\n"
    printf "| backend | prompt tok | gen tok | decode tok/s | bytes_read_per_token | cache_hit_rate | read_bw_bytes_s | io_wait_frac | peak_rss_bytes | cache_bytes |\n"
    printf "|---|---|---|---|---|---|---|---|---|---|\n"
    for (i = 1; i <= nb; i++) {
        lab = B[i]; if (!ok[lab]) continue
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", lab, m(lab, "prompt_tokens"), m(lab, "gen_tokens"),
            f("%.3f", m(lab, "decode_tok_s")), f("%.0f", m(lab, "bytes_read_per_token")), f("%.4f", m(lab, "cache_hit_rate")),
            f("%.0f", m(lab, "read_bw_bytes_s")), f("%.4f", m(lab, "io_wait_frac")), f("%.0f", m(lab, "peak_rss_bytes")), f("%.0f", m(lab, "cache_bytes"))
    }
    printf "\ntarget: decode ms/token <= 1.15 x max(MiB read/token / disk bandwidth, compute ms/token with everything cached)"
    printf "; compute reference: %s\n", warmc != "NA" ? sprintf("%.0f ms/token (warm run)", warmc) : "the decode time of each run minus its I/O wait (no warm run)"

    # summary.json
    printf "{\n  \"model\": %s,\n  \"prompt\": %s,\n  \"n_predict\": %d,\n  \"repeat\": %d,\n  \"queue_depth\": %d,\n", jstr(model), jstr(prompt), npred, rep, qd > json
    printf "  \"cgroup_limit_bytes\": %.0f,\n  \"ram_budget_bytes\": %.0f,\n  \"experts_bytes\": %.0f,\n  \"pinned_bytes\": %.0f,\n  \"n_layer\": %d,\n  \"n_expert_used\": %d,\n  \"page_cache_dropped\": %s,\n", limit, budget, experts, pinned, nl, nu, dropped == "yes" ? "true" : "false" > json
    printf "  \"fio\": {\"engine\": %s, \"request\": %s, \"iodepth\": %d, \"seconds\": %d, \"bw_bytes_s_median\": %s, \"bw_bytes_s\": [%s]},\n", jstr(engine), jstr(fbs), qd, fsec, jnum(fbw), fiol == "" ? "" : gensub_commas(fiol) > json
    printf "  \"compute_ms_per_token_warm\": %s,\n", jnum(warmc) > json
    printf "  \"target\": \"decode ms/token <= 1.15 * max(decode bytes/token / fio bw, compute ms/token warm)\",\n  \"backends\": {" > json
    sep = ""
    for (i = 1; i <= nb; i++) {
        lab = B[i]
        printf "%s\n    %s: {\"ok_runs\": %d, \"failed_runs\": %d, \"oom_kills\": %d, \"median\": {", sep, jstr(lab), ok[lab], fails[lab], ooms[lab] > json
        s2 = ""
        for (j = 1; j <= nk; j++) { printf "%s\"%s\": %s", s2, K[j], jnum(m(lab, K[j])) > json; s2 = ", " }
        printf ", \"cgroup_peak_bytes\": %s", jnum(m(lab, "cg_peak")) > json
        for (j = 1; j <= 10; j++) printf ", \"decode_%s\": %s", DKL[j], jnum(m(lab, "d_" DKL[j])) > json
        printf "}}" > json
        sep = ","
    }
    printf "\n  }\n}\n" > json
}
function gensub_commas(s) { gsub(/ /, ", ", s); return s }
' "$FIOS" "$RUNS"
echo
echo "stream_bench: logs and summary.json in $OUT"
