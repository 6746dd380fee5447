#!/bin/sh
# Installs what `make check-image` needs besides scripts/setup.sh (which it
# runs first): buildah, to build and run the Dockerfile without a daemon
# (chroot isolation), debootstrap and the Debian archive keyring, to make
# the base image, and jq, to read the image's configuration.  Does nothing
# (quietly) when everything is already there.  Run as root: buildah's chroot
# isolation needs it too.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
sh "$top/scripts/setup.sh"

debs="buildah debootstrap debian-archive-keyring jq"

missing=""
for d in $debs; do
    dpkg-query -W -f='${Status}\n' "$d" 2>/dev/null | grep -q '^install ok installed$' ||
        missing="$missing $d"
done

if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup-image: missing Debian packages:$missing (run this script as root to install them)" >&2
        exit 1
    fi
    echo "setup-image: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
exit 0
