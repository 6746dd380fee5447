#!/bin/bash
# The record path measured against in-memory stand-ins (not a test): no
# DynamoDB Local, so the figures are ddb2es's own.  Deterministic inputs
# (bench/corpus, fixed seed); every figure is the median of RUNS runs with
# the min-max.  See bench/RESULTS.md for what each step means.
#
# Usage: bench/records.sh STEP...   (default: all)
#   floor         the RSS of a process that only loads and initialises the
#                 libraries ddb2es links (bench/floor), and of an idle ddb2es
#   ceilings      jansson and one-pass ceilings (bench/ceiling) on the 100k corpus; the
#                 sink's (searchd --discard) and the Streams stand-in's
#                 (bench/streamsd) own ceilings, measured with bench/httpload
#   replay        ddb2es replay --file of the 100k and 1M corpora into the sink
#   run:SHARDS    ddb2es run against the stand-in with SHARDS shards (100k
#                 records): catch-up, CPU, peak RSS, then the added latency of
#                 records released on idle shards (stand-in -> sink)
#   idle          64 idle shards for 60 s: GetRecords per idle shard-hour, then
#                 records written after an idle minute: release -> sink
#   stall         1,024 shards, 100k records, the sink stalled for 60 s: peak RSS
# Every replay, run and idle run ends with the check that the sink's index
# equals the input's last images (bench/lastimages: ids, versions, the
# SHA-256 of each document, tombstones); a failed check stops the script.
# Environment: BUILD (build), DDB2ES (BUILD/ddb2es: the binary measured,
# e.g. an older build's, to compare two trees with the same tools), RUNS (5), DATA (BUILD/bench-data: corpora),
# REPLAY_SIZES ("100000 1000000": the corpora replay reads), RUN_RECORDS
# (100000: the records of run:SHARDS and stall), SINK_ARGS (more options of
# the sink, e.g. --no-external-versions to see the check fail), RUN_CONF
# (lines added to the [sink] section of run:SHARDS's configuration, e.g.
# "bulk_max_actions = 250" to see what smaller bulk requests cost and save),
# CURL (own; system: the tools and bench/floor with Debian's shared libcurl,
# in a BUILD folder of their own, e.g. CURL=system BUILD=build-sys).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
RUNS=${RUNS:-5}
RUN_RECORDS=${RUN_RECORDS:-100000}
DATA=${DATA:-$BUILD/bench-data}
B=$BUILD/bench
DDB2ES=${DDB2ES:-$BUILD/ddb2es}
make -s ${CURL:+CURL="$CURL"} all tools "$B/corpus" "$B/ceiling" "$B/streamsd" "$B/httpload" "$B/floor" "$B/lastimages" \
    BUILD="$BUILD" >/dev/null
mkdir -p "$DATA"
work=$(mktemp -d "${TMPDIR:-/tmp}/ddb2es-records.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1

corpus() { # N -> path ("-e": the time as the service writes it, 1.73227E9)
    local f="$DATA/corpus-$1-e.jsonl"
    [ -s "$f" ] || "$B/corpus" "$1" >"$f"
    echo "$f"
}

# "median (min-max)" of the numbers on stdin.
stat3() { sort -g | awk '{v[NR]=$1} END {m = NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2;
                                        printf "%.6g (%.6g-%.6g)", m, v[1], v[NR]}'; }

wait_port() { for _ in $(seq 600); do [ -s "$1" ] && { cat "$1"; return; }; sleep 0.05; done; exit 1; }

# The search double refuses what the engines refuse: each index is created
# as README "Documents" recommends (deploy/index-mappings.json), or its
# 38-digit numbers would be dead-lettered and the run measure that.
mkindex() { curl -sf -X PUT -H 'Content-Type: application/json' \
    --data-binary @deploy/index-mappings.json "$search/$1" >/dev/null; }

start_searchd() { # -> url; pid in $searchd_pid
    rm -f "$work/search.port"
    # shellcheck disable=SC2086 # SINK_ARGS: options, split on blanks
    "$BUILD/tools/searchd" --discard ${SINK_ARGS:-} --port-file "$work/search.port" 2>/dev/null &
    searchd_pid=$!; pids+=("$searchd_pid")
    search=http://127.0.0.1:$(wait_port "$work/search.port")
    mkindex posts
}

start_streamsd() { # RECORDS SHARDS; sets streams
    rm -f "$work/streams.port"
    "$B/streamsd" --corpus "$(corpus "$RUN_RECORDS")" --limit "$1" --shards "$2" \
        --port-file "$work/streams.port" 2>/dev/null &
    streamsd_pid=$!; pids+=("$streamsd_pid")
    streams=http://127.0.0.1:$(wait_port "$work/streams.port")
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# Below the kernel's ephemeral range (32768-60999 on Linux): a port an
# outgoing connection holds cannot be seen by connecting to it.
free_port() { while :; do p=$((20000 + RANDOM % 12000)); (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo $p; return; }; done; }

conf() { # name [extra [sink] lines]: writes $work/name.conf, sets metrics_port; defaults otherwise
    rm -rf "${work:?}/${1:?}"
    mkdir -p "$work/$1"
    metrics_port=$(free_port)
    cat >"$work/$1.conf" <<CONF
[daemon]
state_dir = $work/$1
log_level = warn
metrics_listen = 127.0.0.1:$metrics_port
[aws]
region = us-east-1
endpoint = ${streams:-http://127.0.0.1:9}
[sink]
url = $search
auth = none
${2:-}
[table posts]
index = posts
CONF
}

metric() { curl -s "http://127.0.0.1:$metrics_port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
jfield() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
sd_stat() { curl -s "$streams/_streamsd/stats" | jfield "$1"; }
indexed() { curl -s "$search/_double/stats" | sed -n 's/.*"index":\([0-9]*\).*/\1/p'; }
now_ms() { date +%s%3N; }
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
hwm_mb() { awk '/VmHWM/ {printf "%.1f\n", $2 / 1024}' "/proc/$1/status"; }

# The end of a run: the sink's index (GET /_double/digests) against the
# last images of the input (EXPECTED, from lastimages expect).  Prints
# "index = last images: ok (N docs, M deleted)", or what differs and fails.
check_index() { # EXPECTED
    local rc=0
    curl -sf -o "$work/index.ndjson" "$search/_double/digests?index=posts"
    "$B/lastimages" compare "$1" "$work/index.ndjson" >"$work/check.txt" || rc=$?
    grep -v ': checking ' "$work/check.txt"
    [ "$rc" = 0 ] || echo "== the sink's index is not the input's last images: stopped" >&2
    return "$rc"
}

# The same for a run on the Streams stand-in: its records, each with its
# shard, are the input.
check_run() { # CONF
    curl -sf -o /dev/null -X POST -d "{\"file\":\"$work/served.jsonl\"}" "$streams/_streamsd/dump"
    "$B/lastimages" expect -c "$1" --table posts --key author,ts "$work/served.jsonl" \
        >"$work/expected.ndjson" 2>"$work/expect.log" || { cat "$work/expect.log"; return 1; }
    check_index "$work/expected.ndjson"
}

# The sink's own CPU per document, in microseconds.
sink_us() { # DOCS
    awk -v c="$(cpu_s "$searchd_pid")" -v n="$1" 'BEGIN {printf "%.1f", c * 1e6 / n}'
}

# Releases K probe records and prints (sink arrival - last probe handed out)
# in ms, then (sink arrival - release) in ms.
probe() { # K
    local base t0 t1 last
    base=$(indexed)
    t0=$(now_ms)
    curl -s -o /dev/null -X POST -d "{\"count\":$1}" "$streams/_streamsd/release"
    while [ "$(indexed)" -lt $((base + $1)) ]; do sleep 0.01; done
    t1=$(now_ms)
    last=$(sd_stat last_probe_served_ms)
    echo "$((t1 - last)) $((t1 - t0))"
}

# One run of each ceiling on corpus $1, appended as "records cpu_s" to $2
# (jansson's: a tree per record) and $2.op (the one-pass reader's, which
# ddb2es's record path is now); run beside each measured run, in rotated
# order, so all see the same machine (the ratio is the figure to compare,
# not either alone).
ceiling_once() {
    "$B/ceiling" "$1" | awk '{print $2, $6}' >>"$2"
    "$B/ceiling" --one-pass "$1" | awk '{print $2, $6}' >>"$2.op"
}

# "ratio of medians" of records/CPU-s: measured file (records in $1, CPU in
# column $3) over ceiling file.
ratio() { # MEASURED CPUCOL CEILFILE
    local m c
    m=$(awk -v k="$2" '{print $1 / $k}' "$1" | stat3 | cut -d' ' -f1)
    c=$(awk '{print $1 / $2}' "$3" | stat3 | cut -d' ' -f1)
    awk -v m="$m" -v c="$c" 'BEGIN {printf "%.0f %%", 100 * m / c}'
}

step_ceilings() {
    local c100k r
    c100k=$(corpus 100000)
    echo "== jansson ceiling (bench/ceiling) on the 100k corpus ($(du -m "$c100k" | cut -f1) MB)"
    for _ in $(seq "$RUNS"); do "$B/ceiling" "$c100k"; done | tee "$work/ceil"
    echo "records/CPU-s: $(awk '{print $10}' "$work/ceil" | stat3)  records/s: $(awk '{print $8}' "$work/ceil" | stat3)"
    echo "== one-pass ceiling (bench/ceiling --one-pass) on the 100k corpus"
    for _ in $(seq "$RUNS"); do "$B/ceiling" --one-pass "$c100k"; done | tee "$work/ceil"
    echo "records/CPU-s: $(awk '{print $10}' "$work/ceil" | stat3)  records/s: $(awk '{print $8}' "$work/ceil" | stat3)"

    echo "== sink ceiling: searchd --discard, 1000-action bodies from the corpus, 2 connections, 5 s"
    "$B/ceiling" "$c100k" "$work/bulk.ndjson" 1000 >/dev/null
    for _ in $(seq "$RUNS"); do
        start_searchd
        "$B/httpload" "$search/_bulk?filter_path=errors,items.*.status,items.*.error" \
            "$work/bulk.ndjson" 2 5 "Content-Type: application/x-ndjson"
        stop "$searchd_pid"
    done | tee "$work/sinkc"
    echo "actions/s: $(awk '{print $6 * 1000}' "$work/sinkc" | stat3)"

    echo "== Streams stand-in ceiling: GetRecords pages (1000 records or 1 MB), 2 connections, 5 s"
    echo '{"ShardIterator":"0/0","Limit":1000}' >"$work/gr.json"
    start_streamsd 100000 1
    per_page=$(curl -s -H "X-Amz-Target: DynamoDBStreams_20120810.GetRecords" \
        --data-binary @"$work/gr.json" "$streams/" | grep -o '"eventID"' | wc -l)
    echo "records per page: $per_page"
    for _ in $(seq "$RUNS"); do
        "$B/httpload" "$streams/" "$work/gr.json" 2 5 \
            "X-Amz-Target: DynamoDBStreams_20120810.GetRecords" \
            "Content-Type: application/x-amz-json-1.0"
    done | tee "$work/stc"
    stop "$streamsd_pid"
    echo "records/s: $(awk -v k="$per_page" '{print $6 * k}' "$work/stc" | stat3)"
}

step_floor() {
    echo "== floor: a process that only loads and initialises what ddb2es links (bench/floor)"
    "$B/floor"
    echo "== ddb2es run, 1 idle shard, after 10 s: peak RSS"
    start_searchd
    start_streamsd 0 1
    local d
    conf floor; "$DDB2ES" run -c "$work/floor.conf" 2>"$work/floor.log" & d=$!; pids+=("$d")
    sleep 10
    echo "peak RSS: $(hwm_mb $d) MB"
    stop $d; stop "$streamsd_pid"; stop "$searchd_pid"
}

step_replay() {
    if ! "$DDB2ES" replay --help >/dev/null 2>&1; then
        echo "== replay: this ddb2es has no replay command yet; skipped"
        return
    fi
    for n in ${REPLAY_SIZES:-100000 1000000}; do
        local f
        f=$(corpus "$n")
        echo "== replay --file of $n records into searchd --discard"
        : >"$work/replay.txt"; : >"$work/replay-ceil.txt"; : >"$work/replay-ceil.txt.op"
        for r in $(seq "$RUNS"); do
            [ $((r % 2)) = 1 ] && ceiling_once "$f" "$work/replay-ceil.txt"
            start_searchd
            streams=
            conf replay
            /usr/bin/time -f "%e %U %S %M" -o "$work/t" \
                "$DDB2ES" replay -c "$work/replay.conf" --table posts --file "$f" --format stream --key author,ts \
                >/dev/null 2>"$work/replay.log" || { tail -3 "$work/replay.log"; return 1; }
            read -r wall user sys rss <"$work/t"
            echo "$n $wall $(echo "$user + $sys" | bc) $rss $(sink_us "$n")" | tee -a "$work/replay.txt"
            [ -s "$work/expected-$n.ndjson" ] ||
                "$B/lastimages" expect -c "$work/replay.conf" --table posts --key author,ts "$f" \
                    >"$work/expected-$n.ndjson" 2>"$work/expect.log" || { cat "$work/expect.log"; return 1; }
            check_index "$work/expected-$n.ndjson" || return 1
            stop "$searchd_pid"
            [ $((r % 2)) = 0 ] && ceiling_once "$f" "$work/replay-ceil.txt"
        done
        echo "records/s: $(awk '{print $1 / $2}' "$work/replay.txt" | stat3)" \
             " records/CPU-s: $(awk '{print $1 / $3}' "$work/replay.txt" | stat3)" \
             " peak RSS MB: $(awk '{print $4 / 1024}' "$work/replay.txt" | stat3)" \
             " sink CPU us/record: $(awk '{print $5}' "$work/replay.txt" | stat3)"
        echo "ceiling records/CPU-s, same runs: $(awk '{print $1 / $2}' "$work/replay-ceil.txt" | stat3)" \
             " replay --file / ceiling: $(ratio "$work/replay.txt" 3 "$work/replay-ceil.txt")"
        echo "one-pass ceiling records/CPU-s, same runs: $(awk '{print $1 / $2}' "$work/replay-ceil.txt.op" | stat3)" \
             " replay --file / one-pass ceiling: $(ratio "$work/replay.txt" 3 "$work/replay-ceil.txt.op")"
    done
}

step_run() { # SHARDS
    local shards=$1 n=$RUN_RECORDS
    echo "== run: $n records in $shards shards, defaults (flush_interval 1s, concurrency 2)${RUN_CONF:+ but: $RUN_CONF}"
    : >"$work/run.txt"; : >"$work/lat.txt"; : >"$work/run-ceil.txt"; : >"$work/run-ceil.txt.op"
    for r in $(seq "$RUNS"); do
        [ $((r % 2)) = 1 ] && ceiling_once "$(corpus "$n")" "$work/run-ceil.txt"
        start_searchd
        start_streamsd "$n" "$shards"
        local t0 t1 d
        t0=$(now_ms)
        conf run "${RUN_CONF:-}"; "$DDB2ES" run -c "$work/run.conf" 2>"$work/run.log" & d=$!; pids+=("$d")
        while [ "$(sd_stat served)" != "$n" ] || [ "$(metric ddb2es_sink_queued_docs)" != 0 ]; do
            kill -0 $d || { tail -3 "$work/run.log"; return 1; }
            sleep 0.05
        done
        t1=$(now_ms)
        echo "$n $(( t1 - t0 )) $(cpu_s $d) $(hwm_mb $d) $(sink_us "$n")" | tee -a "$work/run.txt"
        # Added latency: a record on every shard (at most 64 at a time),
        # released once the shards are idle.
        sleep 5
        for _ in 1 2 3; do
            probe $(( shards < 64 ? shards : 64 )) | tee -a "$work/lat.txt"
            sleep 3
        done
        echo "peak RSS after the probes: $(hwm_mb $d) MB"
        check_run "$work/run.conf" || return 1
        stop $d; stop "$streamsd_pid"; stop "$searchd_pid"
        [ $((r % 2)) = 0 ] && ceiling_once "$(corpus "$n")" "$work/run-ceil.txt"
    done
    echo "ceiling records/CPU-s, same runs: $(awk '{print $1 / $2}' "$work/run-ceil.txt" | stat3)" \
         " run / ceiling: $(ratio "$work/run.txt" 3 "$work/run-ceil.txt")"
    echo "one-pass ceiling records/CPU-s, same runs: $(awk '{print $1 / $2}' "$work/run-ceil.txt.op" | stat3)" \
         " run / one-pass ceiling: $(ratio "$work/run.txt" 3 "$work/run-ceil.txt.op")"
    echo "records/s: $(awk '{print $1 * 1000 / $2}' "$work/run.txt" | stat3)" \
         " records/CPU-s: $(awk '{print $1 / $3}' "$work/run.txt" | stat3)" \
         " peak RSS MB (catch-up): $(awk '{print $4}' "$work/run.txt" | stat3)" \
         " sink CPU us/record: $(awk '{print $5}' "$work/run.txt" | stat3)"
    echo "added latency ms (last probe handed out -> all in the sink): $(awk '{print $1}' "$work/lat.txt" | stat3)" \
         " release -> sink ms: $(awk '{print $2}' "$work/lat.txt" | stat3)"
}

step_idle() {
    local shards=64 d c0 c1
    echo "== idle: $shards idle shards for 60 s (defaults: idle_poll_interval 2s), then writes after idle minutes"
    start_searchd
    start_streamsd 0 "$shards"
    conf idle; "$DDB2ES" run -c "$work/idle.conf" 2>"$work/idle.log" & d=$!; pids+=("$d")
    sleep 10
    c0=$(sd_stat getrecords)
    sleep 60
    c1=$(sd_stat getrecords)
    echo "$((c1 - c0)) GetRecords in 60 s on $shards shards = $(( (c1 - c0) * 60 / shards )) per idle shard-hour"
    : >"$work/idle.txt"
    for _ in $(seq "$RUNS"); do
        probe 1 | tee -a "$work/idle.txt"
        sleep 60
    done
    echo "write after an idle minute -> sink ms: $(awk '{print $2}' "$work/idle.txt" | stat3)"
    echo "peak RSS: $(hwm_mb $d) MB"
    check_run "$work/idle.conf" || return 1
    stop $d; stop "$streamsd_pid"; stop "$searchd_pid"
}

# Not checked: the sink never answers, so the index is meant to stay behind.
step_stall() {
    local shards=1024 n=$RUN_RECORDS d
    echo "== stall: $n records in $shards shards, every bulk request held for 60 s"
    : >"$work/stall.txt"
    for _ in $(seq "$RUNS"); do
        start_searchd
        curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
            -d '{"match":"bulk","count":-1,"delay_ms":60000}' "$search/_double/faults"
        start_streamsd "$n" "$shards"
        conf stall; "$DDB2ES" run -c "$work/stall.conf" 2>"$work/stall.log" & d=$!; pids+=("$d")
        sleep 60
        echo "queued $(metric ddb2es_sink_queued_bytes) bytes, $(metric ddb2es_sink_inflight_bytes) in flight; peak RSS $(hwm_mb $d) MB"
        hwm_mb $d >>"$work/stall.txt"
        stop $d; stop "$streamsd_pid"; stop "$searchd_pid"
    done
    echo "peak RSS MB with the sink stalled: $(stat3 <"$work/stall.txt")"
}

echo "== $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg), RUNS=$RUNS"
[ $# -gt 0 ] || set -- floor ceilings replay run:1 run:64 run:1024 idle stall
for s in "$@"; do
    case $s in
    ceilings) step_ceilings ;;
    replay)   step_replay ;;
    run:*)    step_run "${s#run:}" ;;
    floor)    step_floor ;;
    idle)     step_idle ;;
    stall)    step_stall ;;
    *)        echo "unknown step $s" >&2; exit 64 ;;
    esac
done
