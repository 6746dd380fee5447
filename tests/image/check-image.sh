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
#      --version` run in it.  The image has no shell nor any other program:
#      its tree is checked from here, mounted (the CA bundle, the state
#      directory's owner and mode, the user in /etc/passwd).
#   4. TLS in the image: `ddb2es check` against an https server on this
#      machine's loopback whose certificate no CA of the bundle signed is
#      refused for that certificate (so the bundle was found and read); with
#      the bundle hidden, the same run reports the missing file instead.
#   5. The image suite: a workload on a stream-enabled table, the index
#      compared to the table document by document, the process's uid and
#      gid, SIGTERM, exit 0, the checkpoint on the state volume (0600, owned
#      by uid 10001).
#   6. The image's size and what takes the room: ddb2es, each shared
#      object, the CA bundle, the rest.
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

# What takes the room in the image's tree $1: ddb2es, the shared objects
# (each, largest first), the CA bundle and the rest; every file with its size
# in room.txt.
room() {
    local mnt=$1
    (cd "$mnt" && find . -xdev -type f -printf '%s %P\n') | sort -k1,1nr >"$cache/room.txt"
    awk '
        # 4.5M, 217K, 44 bytes
        function size(b) {
            if (b >= 1048576)
                return sprintf("%.1fM", b / 1048576)
            return b >= 1024 ? sprintf("%.0fK", b / 1024) : sprintf("%d bytes", b)
        }
        { total += $1; n++ }
        $2 == "usr/local/bin/ddb2es" { bin = $1; next }
        $2 ~ /^usr\/lib(64)?\// && $2 ~ /\.so(\.|$)/ {
            name = $2; sub(/.*\//, "", name)
            so += $1; nso++; each = each (nso > 1 ? ", " : "") name " " size($1); next }
        $2 == "etc/ssl/certs/ca-certificates.crt" { ca = $1; next }
        $2 ~ /^usr\/share\/doc\// { doc += $1; next }
        $2 ~ /^var\/lib\/dpkg\/status\.d\// { status += $1; next }
        { other += $1 }
        END {
            printf "  files: %s in %d files\n", size(total), n
            printf "  ddb2es: %s\n", size(bin)
            printf "  %d shared objects: %s (%s)\n", nso, size(so), each
            printf "  the CA bundle: %s\n", size(ca)
            printf "  the rest: %s (copyright files and packages.txt %s, dpkg status entries %s, /etc %s)\n",
                size(doc + status + other), size(doc), size(status), size(other)
        }' "$cache/room.txt" | fold -s -w 100 | sed '2,$s/^\([^ ]\)/      \1/'
    echo "  image: $(buildah images --format '{{.Size}}' "$image" | head -n 1) (every file: $cache/room.txt)"
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
size_ctr=''
tls=''
server=''
cleanup() {
    [ -z "$server" ] || kill "$server" 2>/dev/null || true
    [ -z "$tls" ] || rm -rf "$tls"
    for c in $ctr $size_ctr; do
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
[ "$(printf '%s\n' "$version" | head -n 1)" = \
  "ddb2es $(sed -n 's/^#define DDB2ES_VERSION "\(.*\)"/\1/p' base/version.h)" ] ||
    fail "--version in the image: $version"
# The libcurl inside is the one built from Debian's curl source, HTTP and HTTPS only.
printf '%s\n' "$version" | grep -q "^libcurl .*, built for ddb2es from Debian's curl .*; protocols: http https$" ||
    fail "--version in the image does not name the built-in libcurl: $version"
version=$(printf '%s\n' "$version" | head -n 1)

say "the image's tree"
mnt=$(buildah mount "$ctr")
bundle=$mnt/etc/ssl/certs/ca-certificates.crt
certs=$(grep -c -- '-----BEGIN CERTIFICATE-----' "$bundle" 2>/dev/null || true)
[ "${certs:-0}" -gt 0 ] || fail "no CA certificates in /etc/ssl/certs/ca-certificates.crt"
state=$(stat -c '%u:%g %a' "$mnt/var/lib/ddb2es")
[ "$state" = "10001:10001 700" ] || fail "/var/lib/ddb2es: owner and mode $state, expected 10001:10001 700"
user=$(awk -F: '$3 == 10001 && $4 == 10001 { print $1 }' "$mnt/etc/passwd")
[ -n "$user" ] || fail "/etc/passwd names no user 10001:10001"
for sh in bin/sh usr/bin/sh bin/bash; do
    [ ! -e "$mnt/$sh" ] || fail "/$sh: a shell in the image"
done
echo "  $version; $certs CA certificates; /var/lib/ddb2es $state; uid 10001 is $user; no shell"

say "TLS in the image"
# A server on this machine's loopback (buildah run's chroot isolation shares
# this network namespace) with a certificate of its own.  The error texts
# are libcurl's (lib/vtls/openssl.c): "SSL certificate problem: <OpenSSL's
# reason>" once the bundle is loaded and the chain fails, "error setting
# certificate file: <path>" when the bundle cannot be read.
tls=$(mktemp -d "${TMPDIR:-/tmp}/ddb2es-tls.XXXXXX")
mkdir "$tls/empty"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$tls/key.pem" -out "$tls/cert.pem" 2>/dev/null
for _ in 1 2 3 4 5 6 7 8; do
    port=$((20000 + RANDOM % 20000))
    openssl s_server -quiet -www -accept "127.0.0.1:$port" -cert "$tls/cert.pem" \
        -key "$tls/key.pem" </dev/null >/dev/null 2>&1 &
    server=$!
    for _ in $(seq 50); do
        sleep 0.1
        # (alive after the connection too: not another program's port)
        kill -0 "$server" 2>/dev/null || break
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && sleep 0.2 &&
            kill -0 "$server" 2>/dev/null && break 2
    done
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=''
done
[ -n "$server" ] || fail "openssl s_server did not start"
# ddb2es check, its endpoints both on that server: its first request fails.
tls_check() {
    buildah run "$@" --env AWS_ACCESS_KEY_ID=test --env AWS_SECRET_ACCESS_KEY=test \
        --env DDB2ES_AWS_REGION=us-east-1 --env "DDB2ES_AWS_ENDPOINT=https://127.0.0.1:$port" \
        --env DDB2ES_TABLES=tls --env "DDB2ES_SINK_URL=https://127.0.0.1:$port" \
        --env DDB2ES_SINK_AUTH=none "$ctr" -- /usr/local/bin/ddb2es check 2>&1 || true
}
out=$(tls_check)
grep -q 'SSL certificate problem: self-signed certificate' <<<"$out" ||
    { echo "$out" >&2; fail "the self-signed certificate was not refused for itself"; }
echo "  the bundle's CAs: $(grep -o 'SSL certificate problem: self-signed certificate' <<<"$out" | head -n 1)"
out=$(tls_check --volume "$tls/empty:/etc/ssl/certs:ro")
grep -q 'error setting certificate file: /etc/ssl/certs/ca-certificates.crt' <<<"$out" ||
    { echo "$out" >&2; fail "with the bundle hidden: no error about it"; }
echo "  the bundle hidden: $(grep -o 'error setting certificate file: [^ ",]*' <<<"$out" | head -n 1)"
kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
server=''

say "the sidecar against DynamoDB Local and the search double"
DDB2ES_IMAGE_CONTAINER=$ctr DDB2ES_IMAGE_BUILDAH=$(command -v buildah) BUILD=$BUILD \
    tests/run.sh --filter 'image/*' -j1 >"$cache/test.log" 2>&1 || rc=$?
grep -aE '^\[(====|FAIL|----)\]|Synthesis' "$cache/test.log" | grep -av 'Criterion v' || true
if [ "${rc:-0}" != 0 ] || ! grep -q 'Tested: 1 | Passing: 1 ' "$cache/test.log"; then
    cat "$cache/test.log" >&2
    fail "the image suite failed or did not run"
fi

say "size"
# (a container of its own: buildah run adds /etc/hosts and others to $ctr)
size_ctr=$(buildah from --pull-never --name "ddb2es-check-size-$$" "$image")
room "$(buildah mount "$size_ctr")"
say "passed"
