#!/bin/bash
# The README's first command: ddb2es end to end on this machine.
# Starts DynamoDB Local and the search double on free loopback ports, creates
# a social app's "posts" table (hash key author, range key ts) with a stream,
# runs `ddb2es run` against them, writes, updates and deletes items, and
# prints the index after each step.  Everything stops at the end.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
sh scripts/setup.sh
make -s all tools BUILD="$BUILD"
ddbctl=$BUILD/tools/ddbctl
work=$(mktemp -d "${TMPDIR:-/tmp}/ddb2es-demo.XXXXXX")
ddbpid= searchpid= daemonpid=

cleanup() {
    for p in $daemonpid $searchpid $ddbpid; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1

say "starting DynamoDB Local and the search double (loopback only)"
ddb=$(tests/ddblocal.sh "$work/ddb.pid" "$work/ddblocal.log")
ddbpid=$(cat "$work/ddb.pid")
"$BUILD/tools/searchd" --listen 127.0.0.1:0 --port-file "$work/search.port" 2>"$work/searchd.log" &
searchpid=$!
for _ in $(seq 100); do [ -s "$work/search.port" ] && break; sleep 0.05; done
search=http://127.0.0.1:$(cat "$work/search.port")
echo "DynamoDB Local: $ddb    search double: $search"

say "creating table posts (author + ts) with a NEW_AND_OLD_IMAGES stream"
"$ddbctl" "$ddb" CreateTable '{"TableName":"posts",
  "AttributeDefinitions":[{"AttributeName":"author","AttributeType":"S"},
                          {"AttributeName":"ts","AttributeType":"N"}],
  "KeySchema":[{"AttributeName":"author","KeyType":"HASH"},{"AttributeName":"ts","KeyType":"RANGE"}],
  "BillingMode":"PAY_PER_REQUEST",
  "StreamSpecification":{"StreamEnabled":true,"StreamViewType":"NEW_AND_OLD_IMAGES"}}' >/dev/null

metrics_port=$((20000 + RANDOM % 12000))
cat >"$work/ddb2es.conf" <<CONF
[daemon]
state_dir = $work/state
log_level = info
checkpoint_interval = 1s
metrics_listen = 127.0.0.1:$metrics_port

[aws]
region = us-east-1
endpoint = $ddb

[sink]
url = $search
auth = none
flush_interval = 200ms

[table posts]
index = posts
CONF
say "configuration ($work/ddb2es.conf)"
cat "$work/ddb2es.conf"

say "creating index posts: DynamoDB numbers map as double (deploy/index-mappings.json)"
# A 38-digit number does not fit the engine's default "long" mapping; with
# numbers mapped as double every DynamoDB number is accepted, and _source
# keeps its exact digits.
curl -sf -X PUT -H 'Content-Type: application/json' --data-binary @deploy/index-mappings.json \
    "$search/posts"; echo

say "starting: ddb2es run -c ddb2es.conf"
./ddb2es run -c "$work/ddb2es.conf" 2>"$work/ddb2es.log" &
daemonpid=$!

show() {
    # Wait until the index holds $1 documents (ddb2es polls an idle shard at
    # most every 2 s), then print them.
    local want=$1 got=-1
    for _ in $(seq 100); do
        got=$(curl -s "$search/posts/_count" | sed -n 's/.*"count":\([0-9]*\).*/\1/p')
        [ "$got" = "$want" ] && break
        sleep 0.1
    done
    curl -s "$search/_double/dump" | sed 's/},"/},\n  "/g'
    echo
    [ "$got" = "$want" ] || { echo "expected $want documents, the index has $got" >&2; exit 1; }
}

put() { "$ddbctl" "$ddb" PutItem "{\"TableName\":\"posts\",\"Item\":$1}" >/dev/null; }

say "writing three posts"
put '{"author":{"S":"ana"},"ts":{"N":"1700000000"},"text":{"S":"hello, world"},"likes":{"N":"3"},"tags":{"SS":["intro","hello"]}}'
put '{"author":{"S":"ana"},"ts":{"N":"1700000100"},"text":{"S":"ddb2es keeps up"},"likes":{"N":"12345678901234567890123456789012345678"},"draft":{"BOOL":false}}'
put '{"author":{"S":"bo"},"ts":{"N":"1700000200"},"text":{"S":"naïve café ☕"},"meta":{"M":{"client":{"S":"ios"},"v":{"N":"2.50"}}},"pic":{"B":"iVBORw0KGgo="}}'
show 3

say "updating one (SET likes = likes + 1 on ana/1700000000)"
"$ddbctl" "$ddb" UpdateItem '{"TableName":"posts","Key":{"author":{"S":"ana"},"ts":{"N":"1700000000"}},
  "UpdateExpression":"SET likes = likes + :one","ExpressionAttributeValues":{":one":{"N":"1"}}}' >/dev/null
for _ in $(seq 100); do
    curl -s "$search/posts/_doc/ana%7C1700000000" | grep -q '"likes":4' && break; sleep 0.1
done
curl -s "$search/posts/_doc/ana%7C1700000000"; echo

say "deleting one (bo/1700000200)"
"$ddbctl" "$ddb" DeleteItem '{"TableName":"posts","Key":{"author":{"S":"bo"},"ts":{"N":"1700000200"}}}' >/dev/null
show 2

say "a few of its metrics (http://127.0.0.1:$metrics_port/metrics)"
curl -s "http://127.0.0.1:$metrics_port/metrics" |
    grep -E '^ddb2es_(records_read_total|docs_indexed_total|docs_deleted_total|dlq_total|shards)' || true

say "stopping ddb2es with SIGTERM"
kill -TERM "$daemonpid"
rc=0; wait "$daemonpid" || rc=$?
daemonpid=
echo "exit code $rc; its log:"
sed 's/^<[0-9]>/  /' "$work/ddb2es.log"
echo "checkpoint file:"
cat "$work/state/checkpoints.json"; echo
[ "$rc" = 0 ] || exit 1
say "demo finished: the index followed every write"
