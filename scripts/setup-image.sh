#!/bin/sh
# Installs what `make check-image` needs: what scripts/setup.sh installs for
# the tests, then buildah, to build and run the Dockerfile without a daemon
# (chroot isolation), debootstrap and the Debian archive keyring, to make
# the base image, and jq, to read the image's configuration.  Does nothing
# (quietly) when everything is already there.  Run as root: buildah's chroot
# isolation needs it too.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
sh "$top/scripts/setup.sh"
sh "$top/scripts/setup.sh" image
