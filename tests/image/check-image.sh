#!/bin/bash
# `make check-image`: builds the Dockerfile with buildah (no container
# daemon, no registry) and runs the image as a sidecar configured by the
# environment alone against DynamoDB Local and the search double
# (tests/test_image.c, through tests/run.sh).  Root only: buildah's chroot
# isolation needs it.
#
#   1. scripts/setup-image.sh installs buildah and debootstrap (and runs
#      scripts/setup.sh); the suite, the search double and the tools are
#      built on this machine (make tests).
#   2. tests/image/base-image.sh makes debian:bookworm-slim from Debian's
#      archive, once per mirror state (a cached run reuses it).
#   3. buildah bud --layers --pull-never -t ddb2es . (unchanged steps come
#      from the layer cache); the image's configuration is checked (user,
#      entrypoint, command, volume, port, environment), and `ddb2es
#      --version` run in it.
#   4. The image suite: a workload on a stream-enabled table, the index
#      compared to the table document by document, SIGTERM, exit 0, the
#      checkpoint on the state volume (0600, owned by uid 10001).
#   5. The image's size and what takes the room.
#
# buildah keeps its own store under .cache/image/ (DDB2ES_IMAGE_CACHE), with
# the overlay driver (DDB2ES_IMAGE_STORAGE=vfs where overlay mounts are
# refused; vfs copies every layer whole, several GB here).  Remove that
# folder to start again from nothing.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
cache=${DDB2ES_IMAGE_CACHE:-$top/.cache/image}
driver=${DDB2ES_IMAGE_STORAGE:-overlay}
image=localhost/ddb2es:latest
t0=$(date +%s)

# What takes the room in the image's tree $1, the base's being $2: the bytes
# of each package's files (as dpkg lists them, hard links once), the
# packages the base has apart from those the Dockerfile adds, and the rest.
room() {
    local mnt=$1 base=$2 list pkg where
    for list in "$mnt"/var/lib/dpkg/info/*.list; do
        pkg=$(basename "$list" .list)
        where=added
        [ -f "$base/var/lib/dpkg/info/${list##*/}" ] && where=base
        printf '%s %s ' "$where" "${pkg%%:*}"
        # (find fails on the paths dpkg was told to leave out)
        sed "s|^|$mnt|" "$list" |
            { xargs -d '\n' sh -c 'find "$@" -maxdepth 0 -type f -printf "%i %s\n" 2>/dev/null' sh || true; } |
            sort -u | awk '{ s += $2 } END { print s + 0 }'
    done | sort -k3,3nr >"$cache/room.txt"
    awk -v total="$(du -sb "$mnt" | cut -f1)" -v bin="$(stat -c %s "$mnt/usr/local/bin/ddb2es")" '
        function mib(b) { return sprintf("%.1f", b / 1048576) }
        { sum[$1] += $3; n[$1]++
          if (top[$1] < 6) { big[$1] = big[$1] (top[$1]++ ? ", " : "") $2 " " mib($3) } }
        END {
            printf "  files: %s MiB\n", mib(total)
            printf "  the base'"'"'s %d packages: %s MiB (largest: %s)\n", n["base"], mib(sum["base"]), big["base"]
            printf "  the %d packages the Dockerfile adds: %s MiB (largest: %s)\n", n["added"], mib(sum["added"]), big["added"]
            printf "  ddb2es: %s MiB; the rest (dpkg and debconf state, certificates bundle, ...): %s MiB\n",
                mib(bin), mib(total - sum["base"] - sum["added"] - bin)
        }' "$cache/room.txt"
    echo "  image: $(buildah images --format '{{.Size}}' "$image" | head -n 1), its base: $(buildah \
        images --format '{{.Size}}' localhost/debian:bookworm-slim | head -n 1) (per package: $cache/room.txt)"
}

say() { printf 'check-image: [%3ds] %s\n' "$(($(date +%s) - t0))" "$*"; }
fail() { echo "check-image: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root: buildah's chroot isolation needs it"
sh scripts/setup-image.sh
make -s -j2 BUILD="$BUILD" tests

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
cat >"$cache/storage.conf" <<EOF
[storage]
driver = "$driver"
graphroot = "$cache/storage-$driver"
runroot = "$cache/run-$driver"
EOF
export CONTAINERS_STORAGE_CONF=$cache/storage.conf BUILDAH_ISOLATION=chroot

say "base image"
tests/image/base-image.sh "$cache/debs"

say "building the Dockerfile (log: $cache/build.log)"
if ! nice -n 5 buildah bud --layers --pull-never -t "$image" . >"$cache/build.log" 2>&1; then
    tail -n 40 "$cache/build.log" >&2
    fail "buildah bud failed"
fi

ctr=''
base_ctr=''
cleanup() {
    for c in $ctr $base_ctr; do
        buildah rm "$c" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT
ctr=$(buildah from --pull-never --name "ddb2es-check-$$" "$image")

say "the image's configuration"
config=$(buildah inspect --type image "$image" | jq -c .OCIv1.config)
want() {
    local got
    got=$(jq -c "$1" <<<"$config")
    [ "$got" = "$2" ] || fail "image config $1: $got, expected $2"
}
want '.User' '"10001:10001"'
want '.Entrypoint' '["/usr/local/bin/ddb2es"]'
want '.Cmd' '["run"]'
want '.Volumes | keys' '["/var/lib/ddb2es"]'
want '.ExposedPorts | keys' '["9108/tcp"]'
want '[.Env[] | select(startswith("DDB2ES_"))] | sort' \
    '["DDB2ES_DAEMON_LOG_FORMAT=json","DDB2ES_DAEMON_METRICS_LISTEN=0.0.0.0:9108","DDB2ES_DAEMON_STATE_DIR=/var/lib/ddb2es"]'
version=$(buildah run "$ctr" -- /usr/local/bin/ddb2es --version)
uid=$(buildah run "$ctr" -- id -u)
echo "  $version, as uid $uid"
[ "$version" = "ddb2es $(sed -n 's/^#define DDB2ES_VERSION "\(.*\)"/\1/p' base/version.h)" ] ||
    fail "--version in the image: $version"
[ "$uid" = 10001 ] || fail "the image runs as uid $uid"
buildah run "$ctr" -- test -s /etc/ssl/certs/ca-certificates.crt || fail "no CA certificates"

say "the sidecar against DynamoDB Local and the search double"
DDB2ES_IMAGE_CONTAINER=$ctr DDB2ES_IMAGE_BUILDAH=$(command -v buildah) BUILD=$BUILD \
    tests/run.sh --filter 'image/*' -j1 >"$cache/test.log" 2>&1 || rc=$?
grep -aE '^\[(====|FAIL|----)\]|Synthesis' "$cache/test.log" | grep -av 'Criterion v' || true
if [ "${rc:-0}" != 0 ] || ! grep -q 'Tested: 1 | Passing: 1 ' "$cache/test.log"; then
    cat "$cache/test.log" >&2
    fail "the image suite failed or did not run"
fi

say "size"
base_ctr=$(buildah from --pull-never --name "ddb2es-check-base-$$" localhost/debian:bookworm-slim)
room "$(buildah mount "$ctr")" "$(buildah mount "$base_ctr")"
say "passed"
