# lib.sh - helpers shared by the bench/ scripts (POSIX sh; sourced, not run).
# Owns: size parsing, page-cache dropping, JSON field extraction, and the
# memory cgroup (v1) the streaming benchmark runs its processes in. Callers:
# bench/stream_bench.sh, bench/run.sh. Nothing here prints unless asked to.

bench_die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
bench_warn() { echo "$BENCH_NAME: warning: $*" >&2; }
bench_now() { date +%s.%N; }

# bench_size SIZE -> bytes on stdout. SIZE: an integer with an optional
# binary suffix K, M, G, T (as moestream --ram-budget reads it: 1G = 2^30).
bench_size() {
    awk -v s="$1" 'BEGIN {
        if (s !~ /^[0-9]+(\.[0-9]+)?[KkMmGgTt]?$/) exit 1
        m = 1; u = toupper(substr(s, length(s)))
        if (u == "K") m = 2^10; else if (u == "M") m = 2^20; else if (u == "G") m = 2^30; else if (u == "T") m = 2^40
        if (m > 1) s = substr(s, 1, length(s) - 1)
        printf "%.0f\n", s * m
    }'
}

# bench_human BYTES -> "N.N MiB" or "N.NN GiB", for messages.
bench_human() {
    awk -v b="$1" 'BEGIN { if (b >= 2^30) printf "%.2f GiB\n", b / 2^30; else printf "%.1f MiB\n", b / 2^20 }'
}

# bench_drop_caches: sync and drop the page cache (needs root or passwordless
# sudo). Sets BENCH_DROPPED=no when it could not (or DROP_CACHES=0), so the
# caller can say the runs were not cold.
BENCH_DROPPED=yes
bench_drop_caches() {
    sync
    if [ "${DROP_CACHES:-1}" = 0 ]; then
        BENCH_DROPPED=no
    elif [ -w /proc/sys/vm/drop_caches ]; then
        echo 3 > /proc/sys/vm/drop_caches
    elif sudo -n true 2>/dev/null; then
        sudo -n sh -c 'echo 3 > /proc/sys/vm/drop_caches'
    else
        BENCH_DROPPED=no
    fi
}

# bench_json_num KEY < LINE: the value of "KEY": in a flat one-line JSON
# object (numbers or strings, no nesting), quotes stripped; empty if absent.
bench_json_num() {
    awk -v k="\"$1\":" '{
        i = index($0, k); if (!i) exit
        v = substr($0, i + length(k)); sub(/[,}].*/, "", v); gsub(/"/, "", v); print v; exit
    }'
}

# Memory cgroup v1. bench_cg_create NAME-PID makes /sys/fs/cgroup/memory/NAME-PID
# (BENCH_CG); bench_cg_limit BYTES|-1 sets its limit and resets its peak;
# bench_cg_run CMD... runs CMD inside it (only that process and its children
# join; the calling shell stays where it is); bench_cg_peak prints
# memory.max_usage_in_bytes; bench_cg_oom_kills prints the oom_kill count;
# bench_cg_destroy moves any leftover task back to the caller's own memory
# cgroup and removes the directory.
BENCH_CG_ROOT=/sys/fs/cgroup/memory
BENCH_CG=
bench_cg_create() {
    [ -d "$BENCH_CG_ROOT" ] && [ -w "$BENCH_CG_ROOT" ] ||
        bench_die "$BENCH_CG_ROOT is missing or not writable: the memory cgroup (v1) needs root"
    BENCH_CG_HOME=$BENCH_CG_ROOT$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)
    [ -d "$BENCH_CG_HOME" ] || BENCH_CG_HOME=$BENCH_CG_ROOT
    # A run killed with SIGKILL leaves its group behind: remove empty groups
    # of ours (NAME ends in -PID) whose PID is gone.
    for d in "$BENCH_CG_ROOT/${1%-*}"-*; do
        [ -d "$d" ] && [ ! -s "$d/tasks" ] && ! kill -0 "${d##*-}" 2>/dev/null && rmdir "$d" 2>/dev/null || true
    done
    BENCH_CG=$BENCH_CG_ROOT/$1
    mkdir "$BENCH_CG" || bench_die "cannot create the cgroup $BENCH_CG"
}
bench_cg_limit() {
    # Lowering the limit below the current usage fails; the group is empty
    # between runs, so usage is only stale page cache, which force_empty frees.
    echo 0 > "$BENCH_CG/memory.force_empty" 2>/dev/null || true
    echo "$1" > "$BENCH_CG/memory.limit_in_bytes" || bench_die "cannot set $BENCH_CG/memory.limit_in_bytes to $1"
    echo 0 > "$BENCH_CG/memory.max_usage_in_bytes"
}
bench_cg_exec() {
    exec sh -c 'echo $$ > "$0/tasks" && exec "$@"' "$BENCH_CG" "$@"
}
bench_cg_peak() { cat "$BENCH_CG/memory.max_usage_in_bytes"; }
bench_cg_oom_kills() { awk '$1 == "oom_kill" { print $2; f = 1 } END { if (!f) print 0 }' "$BENCH_CG/memory.oom_control"; }
bench_cg_destroy() {
    [ -n "$BENCH_CG" ] && [ -d "$BENCH_CG" ] || return 0
    for t in $(cat "$BENCH_CG/tasks"); do
        echo "$t" > "$BENCH_CG_HOME/tasks" 2>/dev/null || true
    done
    rmdir "$BENCH_CG" 2>/dev/null || bench_warn "could not remove the cgroup $BENCH_CG (tasks: $(tr '\n' ' ' < "$BENCH_CG/tasks"))"
    BENCH_CG=
}
