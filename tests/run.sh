#!/bin/bash
# Runs every unit and integration test against real local servers:
# DynamoDB Local (one instance for the run, on a free loopback port, stopped
# at the end whatever happens) and the search double (started by each test
# that needs it).  As root, the run happens in a private network namespace
# that has only a loopback interface, so no test can reach another host.
# Extra arguments go to the criterion binary (e.g. --filter 'config/*').
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${BUILD:-build}

if [ -z "${DDB2ES_NETNS:-}" ] && [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
    exec unshare -n env DDB2ES_NETNS=1 bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ddb2es-test.XXXXXX")
ddbpid=
cleanup() {
    if [ -n "$ddbpid" ]; then
        kill "$ddbpid" 2>/dev/null || true
        wait "$ddbpid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

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
export TMPDIR=$work
# Tests set their own credentials; nothing from the caller's environment leaks in.
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION \
      AWS_DEFAULT_REGION AWS_ENDPOINT_URL AWS_ENDPOINT_URL_DYNAMODB \
      AWS_ENDPOINT_URL_DYNAMODB_STREAMS http_proxy https_proxy HTTP_PROXY HTTPS_PROXY || true

echo "run.sh: DynamoDB Local at $endpoint ($BUILD)"
"$BUILD/tests/ddb2es-tests" "$@"
