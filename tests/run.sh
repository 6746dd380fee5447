#!/bin/bash
# Runs every unit and integration test against real local servers:
# DynamoDB Local (one instance for the run, on a free loopback port, stopped
# at the end whatever happens) and the search double (started by each test
# that needs it).  As root, the run happens in a private network namespace
# that has only a loopback interface, so no test can reach another host.
# Extra arguments go to the criterion binary (e.g. --filter 'config/*').
#
# DDB2ES_TIMETRAVEL=1 starts a second DynamoDB Local, under libfaketime, for
# the timetravel suite (tests/test_timetravel.c, tests/support/ddbtime.h):
# its endpoint goes to DDB2ES_TEST_FAKETIME_ENDPOINT, its clock's control
# file to DDB2ES_TEST_FAKETIME, and the time of its first request (when its
# shard rollover job first runs) to DDB2ES_TEST_FAKETIME_T0.  It is started
# first, so its 7.5-minute rollover cadence runs while the rest starts.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${BUILD:-build}

if [ -z "${DDB2ES_NETNS:-}" ] && [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
    exec unshare -n env DDB2ES_NETNS=1 bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ddb2es-test.XXXXXX")
ddbpid=
ftpid=
cleanup() {
    for pid in $ddbpid $ftpid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

if [ -n "${DDB2ES_TIMETRAVEL:-}" ]; then
    mkdir "$work/faketime"
    if endpoint=$(DDB2ES_FAKETIME=$work/faketime/offset tests/ddblocal.sh "$work/faketime/ddb.pid" \
                  "$BUILD/ddblocal-faketime.log"); then
        ftpid=$(cat "$work/faketime/ddb.pid")
    else
        echo "run.sh: DynamoDB Local under libfaketime could not be started" >&2
        exit 1
    fi
    # The rollover job first runs at the instance's first request, then every
    # 7.5 minutes (measured: README "Tests").
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test "$BUILD/tools/ddbctl" "$endpoint" ListTables \
        >/dev/null
    export DDB2ES_TEST_FAKETIME_T0=$(date +%s.%N)
    export DDB2ES_TEST_FAKETIME_ENDPOINT=$endpoint
    export DDB2ES_TEST_FAKETIME=$work/faketime/offset
    echo "run.sh: DynamoDB Local under libfaketime at $endpoint"
fi

if endpoint=$(tests/ddblocal.sh "$work/ddb.pid" "$BUILD/ddblocal.log"); then
    ddbpid=$(cat "$work/ddb.pid")
    export DDB2ES_TEST_DDB_ENDPOINT=$endpoint
else
    echo "run.sh: DynamoDB Local could not be started" >&2
    exit 1
fi

export BUILD
export DDB2ES_BIN=${DDB2ES_BIN:-$top/$BUILD/ddb2es} # another build of the daemon may be tested
export DDB2ES_SEARCHD=$top/$BUILD/tools/searchd
export DDB2ES_TOOLS=$top/$BUILD/tools
# promtool checks deploy/prometheus-rules.yaml (fetched by scripts/setup.sh).
export DDB2ES_PROMTOOL=${DDB2ES_PROMTOOL:-${DDB2ES_CACHE:-$top/.cache}/promtool/promtool}
export TMPDIR=$work
# Tests set their own credentials; nothing from the caller's environment leaks in.
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION \
      AWS_DEFAULT_REGION AWS_ENDPOINT_URL AWS_ENDPOINT_URL_DYNAMODB \
      AWS_ENDPOINT_URL_DYNAMODB_STREAMS http_proxy https_proxy HTTP_PROXY HTTPS_PROXY || true

echo "run.sh: DynamoDB Local at $endpoint ($BUILD)"
# The failures are named again at the end, where a log's tail shows them.
set +e
"$BUILD/tests/ddb2es-tests" "$@" 2>&1 | tee "$work/tests.log"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" != 0 ]; then
    echo "run.sh: $BUILD/tests/ddb2es-tests exited with $rc; what failed:"
    grep -aE '^\[(----|FAIL)\]|Timed out' "$work/tests.log" | grep -av '^\[----\] Criterion' \
        | tail -n 40 || true
fi
exit "$rc"
