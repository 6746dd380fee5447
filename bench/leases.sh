#!/bin/bash
# What coordinated mode ([leases]) costs, measured (not a test): SHARDS
# idle shards of the Streams stand-in (bench/streamsd: DynamoDB Local gives
# a table one shard) shared by W workers (`ddb2es run` with [leases],
# lease_duration 10 s, every other setting the default), the lease table on
# DynamoDB Local behind a counting proxy (bench/leaseproxy).  The table
# "posts" exists in DynamoDB Local only for its DescribeTable; its stream is
# the stand-in's (AWS_ENDPOINT_URL_DYNAMODB_STREAMS).
#
# For each SHARDS in $SHARD_COUNTS and W in $WORKERS: start W workers, wait
# until every lease is held and the counts are within one, then count for
# $WINDOW seconds the GetRecords calls (the workers' metrics) and the calls
# to the DynamoDB endpoint (the proxy: the lease table's, plus a reader's
# DescribeTable every stream_check_interval), per shard-hour.
#
# Usage: bench/leases.sh   Environment: BUILD (build), SHARD_COUNTS ("64
# 1024"), WORKERS ("1 2 4"), WINDOW (60).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
SHARD_COUNTS=${SHARD_COUNTS:-64 1024}
WORKERS=${WORKERS:-1 2 4}
WINDOW=${WINDOW:-60}
B=$BUILD/bench
make -s all tools "$B/corpus" "$B/streamsd" "$B/leaseproxy" BUILD="$BUILD" >/dev/null
work=$(mktemp -d "${TMPDIR:-/tmp}/ddb2es-leases.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1

wait_port() { for _ in $(seq 600); do [ -s "$1" ] && { cat "$1"; return; }; sleep 0.05; done; exit 1; }
free_port() { while :; do p=$((20000 + RANDOM % 12000)); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo $p; return; }; done; }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

ddb=$(tests/ddblocal.sh "$work/ddb.pid" "$work/ddb.log"); pids+=("$(cat "$work/ddb.pid")")
"$BUILD/tools/ddbctl" "$ddb" CreateTable '{"TableName":"posts","AttributeDefinitions":[{"AttributeName":"author","AttributeType":"S"},{"AttributeName":"ts","AttributeType":"N"}],"KeySchema":[{"AttributeName":"author","KeyType":"HASH"},{"AttributeName":"ts","KeyType":"RANGE"}],"BillingMode":"PAY_PER_REQUEST","StreamSpecification":{"StreamEnabled":true,"StreamViewType":"NEW_AND_OLD_IMAGES"}}' >/dev/null
"$BUILD/tools/searchd" --discard --port-file "$work/search.port" 2>/dev/null & pids+=($!)
search=http://127.0.0.1:$(wait_port "$work/search.port")
curl -sf -X PUT -H 'Content-Type: application/json' --data-binary @deploy/index-mappings.json \
    "$search/posts" >/dev/null
"$B/leaseproxy" "$ddb" "$work/proxy.port" "$work/proxy.count" & pids+=($!)
proxy=http://127.0.0.1:$(wait_port "$work/proxy.port")
"$B/corpus" 10 >"$work/corpus.jsonl"
calls() { cat "$work/proxy.count"; }

# sum of a metric over the workers' endpoints
sum_metric() { # name
    local s=0 v
    for port in "${ports[@]}"; do
        v=$({ curl -s "http://127.0.0.1:$port/metrics" || true; } | awk -v m="$1" '$1 ~ "^"m"({|$)" {s += $2} END {print s + 0}')
        s=$((s + ${v%.*}))
    done
    echo $s
}
held_list() {
    for port in "${ports[@]}"; do
        { curl -s "http://127.0.0.1:$port/metrics" || true; } | awk '$1 ~ /^ddb2es_leases_held[{]/ {s += $2} END {printf "%d ", s}'
    done
}

echo "| shards | workers | leases held per worker | to settle (s) | GetRecords per shard-hour | DynamoDB-endpoint calls per shard-hour | the same per worker-hour | leases lost in the window |"
echo "|---|---|---|---|---|---|---|---|"
for n in $SHARD_COUNTS; do
    for w in $WORKERS; do
        rm -f "$work/streams.port"
        "$B/streamsd" --corpus "$work/corpus.jsonl" --limit 0 --shards "$n" \
            --port-file "$work/streams.port" 2>/dev/null &
        sd=$!; pids+=("$sd")
        streams=http://127.0.0.1:$(wait_port "$work/streams.port")
        ports=(); wpids=()
        for k in $(seq "$w"); do
            port=$(free_port); ports+=("$port")
            mkdir -p "$work/s-$n-$w-$k"
            cat >"$work/w-$n-$w-$k.conf" <<CONF
[daemon]
state_dir = $work/s-$n-$w-$k
log_level = warn
metrics_listen = 127.0.0.1:$port
[aws]
region = us-east-1
[sink]
url = $search
auth = none
[leases]
table = leases-$n-$w
worker_id = w$k
lease_duration = 10s
[table posts]
index = posts
CONF
            AWS_ENDPOINT_URL_DYNAMODB=$proxy AWS_ENDPOINT_URL_DYNAMODB_STREAMS=$streams \
                "$BUILD/ddb2es" run -c "$work/w-$n-$w-$k.conf" 2>"$work/w-$n-$w-$k.log" &
            wpids+=($!); pids+=($!)
        done
        t0=$(date +%s)
        settled=
        for _ in $(seq 600); do
            list=$(held_list)
            read -r -a h <<<"$list"
            tot=0; lo=999999; hi=0
            for x in "${h[@]}"; do tot=$((tot + x)); [ "$x" -lt "$lo" ] && lo=$x; [ "$x" -gt "$hi" ] && hi=$x; done
            if [ "${#h[@]}" -eq "$w" ] && [ "$tot" -eq "$n" ] && [ $((hi - lo)) -le 1 ]; then
                settled=$(( $(date +%s) - t0 )); break
            fi
            sleep 1
        done
        [ -n "$settled" ] || { echo "| $n | $w | $(held_list)| did not settle in 600 s | | | | |"; for p in "${wpids[@]}"; do stop "$p"; done; stop "$sd"; continue; }
        sleep 5 # past the take-over writes
        g0=$(sum_metric ddb2es_getrecords_calls_total); c0=$(calls)
        l0=$(sum_metric 'ddb2es_lease_events_total{event="lost"}')
        sleep "$WINDOW"
        g1=$(sum_metric ddb2es_getrecords_calls_total); c1=$(calls)
        l1=$(sum_metric 'ddb2es_lease_events_total{event="lost"}')
        list=$(held_list)
        awk -v n="$n" -v w="$w" -v g=$((g1 - g0)) -v c=$((c1 - c0)) -v t="$WINDOW" -v held="$list" -v s="$settled" -v lost=$((l1 - l0)) \
            'BEGIN {printf "| %d | %d | %s| %d | %.0f | %.0f | %.0f | %d |\n", n, w, held, s, g * 3600 / t / n, c * 3600 / t / n, c * 3600 / t / w, lost}'
        for p in "${wpids[@]}"; do stop "$p"; done
        stop "$sd"
    done
done
