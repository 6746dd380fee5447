#!/bin/bash
# Starts DynamoDB Local on a free loopback port and prints its endpoint URL on
# stdout once it answers.  Its process id goes to $1 (a file).  Used by
# tests/run.sh and scripts/demo.sh; stop it with kill "$(cat "$1")".
#
# DDB2ES_FAKETIME=FILE runs it under libfaketime (Debian package libfaketime)
# with FILE as the control file: its wall clock is the real one plus the
# offset FILE holds ("+0" is written when FILE is missing; write "+14460" to
# move it 4 h 1 min on).  DDBLOCAL.md "Time travel" has the recipe.  Two
# settings differ from it, both measured on this machine (README "Tests"):
# FAKETIME_FORCE_MONOTONIC_FIX=0 (libfaketime turns that fix on by itself
# for this glibc; with it every timed wait of the JVM returns at once, and
# the idle JVM burnt 1.2 cores and took 17 s to start instead of 2.5 s), and
# FAKETIME_NO_CACHE=1 (the file is read at every clock call, so a jump is
# seen at once).  The monotonic clock is left alone (DONT_FAKE_MONOTONIC),
# so Thread.sleep, and with it the rollover job's 7.5 min, stays real.
set -euo pipefail
pidfile=$1
log=${2:-/dev/null}
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${DDB2ES_CACHE:-$top/.cache}/dynamodb-local
[ -f "$dir/DynamoDBLocal.jar" ] || { echo "DynamoDB Local missing in $dir: run scripts/setup.sh" >&2; exit 1; }
faketime=()
if [ -n "${DDB2ES_FAKETIME:-}" ]; then
    lib=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
    [ -f "$lib" ] || { echo "$lib missing: apt-get install libfaketime" >&2; exit 1; }
    [ -f "$DDB2ES_FAKETIME" ] || echo "+0" >"$DDB2ES_FAKETIME"
    faketime=(env "LD_PRELOAD=$lib" "FAKETIME_TIMESTAMP_FILE=$DDB2ES_FAKETIME" FAKETIME_NO_CACHE=1
              FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_FORCE_MONOTONIC_FIX=0)
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 12000))
    port_free "$port" || continue
    # Low priority and a small heap: it shares two cores with the tests.  It
    # runs in the pid file's directory, where it drops its metadata file.
    (cd "$(dirname "$pidfile")" && exec "${faketime[@]}" nice -n 5 java -Xms64m -Xmx768m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Djava.library.path="$dir/DynamoDBLocal_lib" -jar "$dir/DynamoDBLocal.jar" \
        -inMemory -sharedDb -disableTelemetry -port "$port") >"$log" 2>&1 &
    pid=$!
    echo "$pid" >"$pidfile"
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            break
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "http://127.0.0.1:$port"
            exit 0
        fi
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    echo "DynamoDB Local did not start on port $port (attempt $attempt), see $log" >&2
done
exit 1
