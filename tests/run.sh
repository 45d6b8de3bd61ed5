#!/bin/sh
# Runs every cmocka suite given; prints each suite's output and one closing
# line "N passed, N failed" counting suites. Exit status 1 if any failed.
BUILD=$1; shift
export MOESTREAM_BIN="$PWD/$BUILD/bin"
[ -n "$MOESTREAM_FIXTURES" ] || export MOESTREAM_FIXTURES="$PWD/../shared/fixtures"
pass=0; fail=0; failed=""
for t in "$@"; do
    echo "== $t"
    if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $t"; fi
done
[ -n "$failed" ] && echo "failed suites:$failed"
echo "suites: $pass passed, $fail failed"
[ "$fail" = 0 ]
