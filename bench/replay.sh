#!/bin/bash
# Replay figures (not a test):
#   - `ddb2es replay --scan` of N items from DynamoDB Local into the search
#     double (--discard): items/s, in one process and split over two
#     (--only-segments);
#   - `ddb2es replay --format stream` of a file of M stream records (~1.9 KB
#     each, bench/replay-corpus.py) into the search double: records/s and
#     records per CPU-second of ddb2es.
# Usage: bench/replay.sh [N] [M] (defaults 100000 and 1000000).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
N=${1:-100000}
M=${2:-1000000}
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
mkindex posts
cat >"$work/replay.conf" <<CONF
[daemon]
state_dir = $work/state
log_level = warn
metrics_listen =
[aws]
region = us-east-1
endpoint = $ddb
[sink]
url = $search
auth = none
[table posts]
index = posts
CONF

# Wall time and ddb2es's CPU time (user + sys of the child) of one command.
measure() { # label count cmd...
    local label=$1 n=$2 t0 t1 c0 c1
    shift 2
    c0=$(awk '{print $16+$17}' /proc/$$/stat)
    t0=$(date +%s.%N)
    "$@"
    t1=$(date +%s.%N)
    c1=$(awk '{print $16+$17}' /proc/$$/stat)
    awk -v l="$label" -v n="$n" -v a="$t0" -v b="$t1" -v c="$(( c1 - c0 ))" \
        -v hz="$(getconf CLK_TCK)" 'BEGIN {
        printf "%s: %d in %.1f s = %.0f/s; %.1f CPU-s = %.0f per CPU-second\n",
            l, n, b - a, n / (b - a), c / hz, n / (c / hz) }'
}

echo "== scan: $N items from DynamoDB Local (4 segments, no rate cap)"
"$BUILD/bench/ddbload" "$ddb" posts create
"$BUILD/bench/ddbload" "$ddb" posts backlog "$N"
measure "scan items" "$N" "$BUILD/ddb2es" replay -c "$work/replay.conf" --table posts --scan --segments 4

echo "== the same Scan split over two processes (--only-segments 0-1 and 2-3 of 4), into another index"
mkindex posts_split
split_scan() {
    local a b
    "$BUILD/ddb2es" replay -c "$work/replay.conf" --table posts --index posts_split --scan \
        --segments 4 --only-segments 0-1 & a=$!
    "$BUILD/ddb2es" replay -c "$work/replay.conf" --table posts --index posts_split --scan \
        --segments 4 --only-segments 2-3 & b=$!
    wait "$a"
    wait "$b"
}
measure "scan items, 2 processes" "$N" split_scan

echo "== stream file: $M records"
python3 bench/replay-corpus.py "$M" "$work/corpus.ndjson"
ls -l "$work/corpus.ndjson" | awk '{printf "corpus: %.0f MB\n", $5 / 1e6}'
cat "$work/corpus.ndjson" >/dev/null # in the page cache, as for a repeated run
measure "stream records" "$M" "$BUILD/ddb2es" replay -c "$work/replay.conf" --table posts \
    --file "$work/corpus.ndjson" --format stream --key author,ts
