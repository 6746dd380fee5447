#!/bin/bash
# Pipeline figures on DynamoDB Local and the search double (not a test):
#   - PutItem-to-searchable latency at a steady write rate (p50/p99),
#   - catch-up throughput on a backlog of N records, and ddb2es's peak RSS,
#   - GetRecords calls per idle shard in one idle minute (extrapolated to an hour).
# Usage: bench/pipeline.sh [BACKLOG] (default 100000).  Prints a summary.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
N=${1:-100000}
make -s all tools "$BUILD/bench/ddbload" BUILD="$BUILD" >/dev/null
work=$(mktemp -d "${TMPDIR:-/tmp}/ddb2es-bench.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench

ddb=$(tests/ddblocal.sh "$work/ddb.pid" "$work/ddb.log"); pids+=("$(cat "$work/ddb.pid")")
"$BUILD/tools/searchd" --discard --port-file "$work/port" 2>/dev/null & pids+=($!)
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
search=http://127.0.0.1:$(cat "$work/port")
# The search double refuses what the engines refuse: each index is created
# as README "Documents" recommends (deploy/index-mappings.json), or its
# 38-digit numbers would be dead-lettered and the run measure that.
mkindex() { curl -sf -X PUT -H 'Content-Type: application/json' \
    --data-binary @deploy/index-mappings.json "$search/$1" >/dev/null; }
for i in lat lat2 backlog idle; do mkindex $i; done
load="$BUILD/bench/ddbload $ddb"

conf() { # table index state [extra daemon lines]
    cat >"$work/$1.conf" <<CONF
[daemon]
state_dir = $work/$3
log_level = ${LOGLEVEL:-info}
${4:-metrics_listen =}
[aws]
region = us-east-1
endpoint = $ddb
[sink]
url = $search
auth = none
[table $1]
index = $2
CONF
    echo "$work/$1.conf"
}

echo "== latency: PutItem to searchable, 20 items/s for 30 s (defaults: flush_interval 1s)"
$load lat create
"$BUILD/ddb2es" run -c "$(conf lat lat s1)" 2>"$work/lat.log" & d=$!; pids+=($d)
sleep 2
$load lat steady 20 30 "$search" lat
kill -TERM $d; wait $d

echo "== latency with flush_interval = 100ms"
$load lat2 create
sed 's/^auth = none/auth = none\nflush_interval = 100ms/' "$(conf lat2 lat2 s2)" >"$work/lat2b.conf"
"$BUILD/ddb2es" run -c "$work/lat2b.conf" 2>"$work/lat2.log" & d=$!; pids+=($d)
sleep 2
$load lat2 steady 20 30 "$search" lat2
kill -TERM $d; wait $d

echo "== catch-up: a backlog of $N records"
$load backlog create
$load backlog backlog "$N"
start=$(date +%s.%N)
"$BUILD/ddb2es" run -c "$(conf backlog backlog s3)" 2>"$work/backlog.log" & d=$!; pids+=($d)
while :; do
    c=$(curl -s "$search/backlog/_count" | sed -n 's/.*"count":\([0-9]*\).*/\1/p')
    [ "${c:-0}" -ge "$N" ] && break
    sleep 0.2
done
end=$(date +%s.%N)
cpu=$(awk '{print ($14+$15)/100}' /proc/$d/stat)
rss=$(awk '/VmHWM/{print $2}' /proc/$d/status)
kill -TERM $d; wait $d
awk -v n="$N" -v s="$start" -v e="$end" -v cpu="$cpu" -v rss="$rss" 'BEGIN {
    printf "caught up %d records in %.1f s: %.0f records/s; %.1f CPU-s (%.0f records per CPU-second); peak RSS %.1f MB\n",
        n, e - s, n / (e - s), cpu, n / cpu, rss / 1024 }'

echo "== idle: GetRecords calls on one idle shard for 60 s (defaults), then one write"
$load idle create
port=$((20000 + RANDOM % 12000))
"$BUILD/ddb2es" run -c "$(conf idle idle s4 "metrics_listen = 127.0.0.1:$port")" 2>"$work/idle.log" & d=$!; pids+=($d)
calls() { curl -s "http://127.0.0.1:$port/metrics" | awk '/^ddb2es_getrecords_calls_total/ {print $2}'; }
sleep 10
before=$(calls)
sleep 60
after=$(calls)
echo "$((after - before)) GetRecords calls in 60 s = $(( (after - before) * 60 )) per idle shard-hour"
$load idle steady 1 1 "$search" idle
kill -TERM $d; wait $d
