#!/bin/sh
# Runs the whole suite against real local servers (placeholder: extended below).
set -eu
BUILD=${BUILD:-build}
exec "$BUILD/tests/ddb2es-tests" "$@"
