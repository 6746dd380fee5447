#!/bin/bash
# Starts DynamoDB Local on a free loopback port and prints its endpoint URL on
# stdout once it answers.  Its process id goes to $1 (a file).  Used by
# tests/run.sh and scripts/demo.sh; stop it with kill "$(cat "$1")".
set -euo pipefail
pidfile=$1
log=${2:-/dev/null}
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${DDB2ES_CACHE:-$top/.cache}/dynamodb-local
[ -f "$dir/DynamoDBLocal.jar" ] || { echo "DynamoDB Local missing in $dir: run scripts/setup.sh" >&2; exit 1; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for attempt in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 12000))
    port_free "$port" || continue
    # Low priority and a small heap: it shares two cores with the tests.  It
    # runs in the pid file's directory, where it drops its metadata file.
    (cd "$(dirname "$pidfile")" && exec nice -n 5 java -Xms64m -Xmx768m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
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
