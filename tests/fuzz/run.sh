#!/bin/bash
# Runs the fuzz targets built by `make fuzz-build`.
#   run.sh check SECONDS BIN...  replay tests/fuzz/regressions/<target>/, then
#                                fuzz each target SECONDS from its seed corpus
#   run.sh long SECONDS BIN...   fuzz each target SECONDS, keeping what it
#                                learns in build-fuzz/corpus/<target>/, and
#                                print the exec count for tests/fuzz/README.md
# A crash leaves its input in build-fuzz/crashes/<target>/: copy it to
# tests/fuzz/regressions/<target>/ with the fix.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
mode=$1 secs=$2
shift 2
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for bin in "$@"; do
    name=${bin##*/fuzz_}
    seeds=tests/fuzz/corpus/$name
    regress=tests/fuzz/regressions/$name
    crashes=build-fuzz/crashes/$name
    log=build-fuzz/$name.log
    mkdir -p "$crashes"
    if [ "$mode" = check ] && [ -d "$regress" ] && [ -n "$(ls -A "$regress")" ]; then
        if ! "$bin" -runs=1 "$regress"/* >"$log" 2>&1; then
            echo "fuzz $name: a regression input fails again (see $log)"
            status=1
            continue
        fi
    fi
    if [ "$mode" = check ]; then
        # Read-only seeds: a short run must not change the repository.
        work=$(mktemp -d "${TMPDIR:-/tmp}/ddb2es-fuzz-corpus.XXXXXX")
        set +e
        "$bin" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=1024 \
            -artifact_prefix="$crashes/" -print_final_stats=1 "$work" "$seeds" >"$log" 2>&1
        rc=$?
        set -e
        rm -rf "$work"
    else
        work=build-fuzz/corpus/$name
        mkdir -p "$work"
        set +e
        "$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
            -artifact_prefix="$crashes/" -print_final_stats=1 "$work" "$seeds" >"$log" 2>&1
        rc=$?
        set -e
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    if [ $rc -ne 0 ]; then
        echo "fuzz $name: FAILED after ${execs:-?} runs; input in $crashes/ (see $log)"
        status=1
    else
        echo "fuzz $name: ${execs:-?} runs in ${secs}s, ${cov:-cov: ?}, nothing found"
    fi
done
exit $status
