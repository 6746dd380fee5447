#!/bin/sh
# Installs what building and testing ddb2es needs on a Debian 12 machine, and
# does nothing (quietly) when everything is already there:
#   - the compiler and the -dev packages of the libraries ddb2es links,
#   - Java 17 for DynamoDB Local,
#   - DynamoDB Local itself, taken from the npm package
#     amplify-dynamodb-simulator@2.9.30 (checked against a pinned sha256; only
#     its emulator/ folder is kept, in .cache/dynamodb-local/, git-ignored),
#   - promtool, which checks deploy/prometheus-rules.yaml in the tests: only
#     the binary, taken from Debian's prometheus package (apt-get download,
#     so the archive's signature is checked) into .cache/promtool/; the
#     package is not installed, as it would start a Prometheus server.
#   - apt's deb-src lists (a copy of each enabled deb entry as deb-src, in
#     /etc/apt/sources.list.d/ddb2es-src.*) and dpkg-dev, for the libcurl that
#     `make` builds from Debian's curl source (scripts/curl.sh).
# Run as root to install; as another user it only reports what is missing.
#
# `setup.sh deb` installs instead what `make deb` and `make check-deb` need:
# the compiler and the -dev packages (the package's build dependencies),
# Debian's packaging tools (debhelper, dpkg-dev, fakeroot), lintian, mandoc
# (the man pages' lint), man-db (`man -w`) and systemd (`systemd-analyze
# verify` of the installed unit); not DynamoDB Local nor the test tools.
# `setup.sh image` installs what `make check-image` needs besides the rest
# (scripts/setup-image.sh runs both): buildah, debootstrap and the archive
# keyring, jq.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${DDB2ES_CACHE:-$top/.cache}
ddblocal=$cache/dynamodb-local
pkg=amplify-dynamodb-simulator@2.9.30
pkg_sha256=3503ffac19f183407909fecdacf4db51ab1fdad1da7b2f177016670b2d80e4b9

build="build-essential pkg-config libuv1-dev libcurl4-openssl-dev libjansson-dev libinih-dev \
zlib1g-dev libssl-dev"
case "${1:-}" in
deb) debs="$build debhelper dpkg-dev fakeroot lintian mandoc man-db systemd git" ;;
image) debs="buildah debootstrap debian-archive-keyring jq" ;;
"") debs="$build dpkg-dev libcriterion-dev libyaml-dev openjdk-17-jre-headless ca-certificates curl libfaketime \
clang libclang-rt-14-dev llvm valgrind procps systemd iproute2 util-linux git" ;;
*) echo "usage: setup.sh [deb|image]" >&2; exit 64 ;;
esac

missing=""
for d in $debs; do
    dpkg-query -W -f='${Status}\n' "$d" 2>/dev/null | grep -q '^install ok installed$' ||
        missing="$missing $d"
done
[ -n "${1:-}" ] || command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing Debian packages:$missing (run this script as root to install them)" >&2
        exit 1
    fi
    echo "setup: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
[ -n "${1:-}" ] && exit 0

# `make` builds libcurl from Debian's curl source (scripts/curl.sh), so apt
# needs the source lists of the archives it already uses for packages.
if ! apt-get source --print-uris curl >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: apt has no deb-src lists (run this script as root to add them)" >&2
        exit 1
    fi
    echo "setup: adding deb-src entries for apt's archives (/etc/apt/sources.list.d/ddb2es-src.*)" >&2
    new=$(mktemp -d)
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # deb822: each stanza again, as deb-src (Signed-By and the rest kept).
        awk 'BEGIN { RS = ""; ORS = "\n\n" }
             /(^|\n)Types:[^\n]*(^|[ \t])deb([ \t]|\n|$)/ {
                 sub(/(^|\n)Types:[^\n]*/, "\nTypes: deb-src"); sub(/^\n/, ""); print }' "$f"
    done >"$new/ddb2es-src.sources"
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f"
    done >"$new/ddb2es-src.list"
    for f in "$new"/*; do
        if [ -s "$f" ]; then mv "$f" /etc/apt/sources.list.d/; fi
    done
    rm -rf "$new"
    apt-get update -qq >&2
    apt-get source --print-uris curl >/dev/null 2>&1 || {
        echo "setup: apt still knows no source of curl; add deb-src lines by hand, or build with" \
             "Debian's shared libcurl: make CURL=system" >&2
        exit 1
    }
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$ddblocal/DynamoDBLocal.jar" ]; then
    echo "setup: fetching DynamoDB Local ($pkg)" >&2
    (cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
    tgz=$(ls "$tmp"/*.tgz)
    got=$(sha256sum "$tgz" | cut -d' ' -f1)
    if [ "$got" != "$pkg_sha256" ]; then
        echo "setup: $pkg: sha256 $got, expected $pkg_sha256; refusing to use it" >&2
        exit 1
    fi
    tar -xzf "$tgz" -C "$tmp" package/emulator
    mkdir -p "$cache"
    rm -rf "$ddblocal"
    mv "$tmp/package/emulator" "$ddblocal"
    echo "setup: DynamoDB Local is in $ddblocal" >&2
fi

promtool=$cache/promtool/promtool
if [ ! -x "$promtool" ]; then
    echo "setup: fetching promtool (from the Debian package prometheus)" >&2
    mkdir -p "$tmp/prom"
    if ! (cd "$tmp/prom" && apt-get download -qq prometheus >/dev/null 2>&1); then
        if [ "$(id -u)" != 0 ]; then
            echo "setup: apt-get download prometheus failed (run this script as root)" >&2
            exit 1
        fi
        apt-get update -qq >&2
        (cd "$tmp/prom" && apt-get download -qq prometheus >/dev/null)
    fi
    dpkg-deb -x "$tmp"/prom/prometheus_*.deb "$tmp/prom/x"
    "$tmp/prom/x/usr/bin/promtool" --version >/dev/null
    mkdir -p "$cache/promtool"
    mv "$tmp/prom/x/usr/bin/promtool" "$promtool"
    echo "setup: promtool is in $cache/promtool" >&2
fi
exit 0
