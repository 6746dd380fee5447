#!/bin/bash
# Makes the base image the Dockerfile starts from, debian:bookworm-slim, on a
# machine that reaches Debian's archive but no container registry: a
# debootstrap --variant=minbase tree, slimmed the way Debian's official slim
# images are (no documentation but the copyright files, no man or info
# pages, no translations, no apt lists; dpkg told to keep it so), committed
# with buildah as localhost/debian:bookworm-slim.
#
# The image is kept in buildah's store (CONTAINERS_STORAGE_CONF, set by
# tests/image/check-image.sh) and also tagged ddb2es-base:bookworm-DATE-HASH,
# DATE being the Date of the mirror's bookworm Release file and HASH that of
# this script: the same mirror state is bootstrapped once; a point release or
# a change here makes a new one (from the packages kept in DEBS_DIR where
# they did not change), and the images built on the old one leave the store.
# Apt inside it uses this machine's mirror and its Acquire settings (a
# snapshot mirror serves Release files past their Valid-Until).
#
#   tests/image/base-image.sh DEBS_DIR
set -euo pipefail
debs=$(realpath -m "$1")
suite=bookworm
name=localhost/debian:$suite-slim

# The tags of the bases made before.
bases() {
    buildah images --format '{{.Name}} {{.Tag}}' | awk '$1 == "localhost/ddb2es-base" { print $2 }'
}

mirror_of() {
    # shellcheck disable=SC2016 # apt's own $(FIELD) syntax
    apt-get indextargets --format '$(RELEASE) $(REPO_URI)' | awk -v r="$1" '$1 == r { print $2; exit }'
}
mirror=$(mirror_of "$suite")
security=$(mirror_of "$suite-security")
[ -n "$mirror" ] || { echo "base-image: no $suite mirror in this machine's apt sources" >&2; exit 1; }
mirror=${mirror%/}
security=${security%/}

released=$(curl -sf --max-time 30 "$mirror/dists/$suite/Release" | sed -n 's/^Date: //p' || true)
# This script's own text is part of the key: a change to it makes a new base.
recipe=$(sha256sum "$0" | cut -c1-8)
if [ -n "$released" ]; then
    key=$suite-$(date -u -d "$released" +%Y%m%d)-$recipe
else
    # The mirror does not answer: the newest base already made will do.
    key=$(bases | sort | tail -n 1)
    [ -n "$key" ] || { echo "base-image: $mirror/dists/$suite/Release: no answer" >&2; exit 1; }
fi

if buildah inspect --type image "localhost/ddb2es-base:$key" >/dev/null 2>&1; then
    buildah tag "localhost/ddb2es-base:$key" "$name"
    echo "base-image: $name is ddb2es-base:$key (made before)" >&2
    exit 0
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/ddb2es-rootfs.XXXXXX")
ctr=
cleanup() {
    [ -z "$ctr" ] || buildah rm "$ctr" >/dev/null 2>&1 || true
    rm -rf "$root"
}
trap cleanup EXIT

echo "base-image: debootstrap --variant=minbase $suite from $mirror" >&2
# The packages it fetched are kept beside the store for the next bootstrap.
mkdir -p "$debs"
nice -n 5 debootstrap --variant=minbase --cache-dir="$debs" "$suite" "$root" "$mirror" \
    >"$root.log" 2>&1 ||
    { tail -n 20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"

# Slim: what a container never reads, and dpkg told to leave it out of every
# package installed later (copyright files are kept).
cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/{man,info,groff,lintian,linda,locale}/*
# No package caches, no lists (`apt-get update` first, as with the official
# image), no logs of the bootstrap.
cat >"$root/etc/apt/apt.conf.d/slim" <<'EOF'
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Acquire::GzipIndexes "true";
Acquire::Languages "none";
APT::Install-Recommends "false";
EOF
apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy) ' \
    >"$root/etc/apt/apt.conf.d/mirror" || rm -f "$root/etc/apt/apt.conf.d/mirror"
rm -f "$root/etc/apt/sources.list"
{
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' "$mirror" "$suite" "$suite"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    if [ -n "$security" ]; then
        printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$security" "$suite"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
    fi
} >"$root/etc/apt/sources.list.d/debian.sources"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
rm -rf "$root"/var/log/* "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
rm -rf "$root"/tmp/* "$root"/var/tmp/*
: >"$root/etc/machine-id"
echo localhost >"$root/etc/hostname"
# The runtime mounts its own over these; the build machine's stay out.
: >"$root/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

# What the store holds was built on an older base: of no use now.
buildah rmi --all --force >/dev/null 2>&1 || true
ctr=$(buildah from scratch)
mnt=$(buildah mount "$ctr")
tar -C "$root" --numeric-owner -cf - . | tar -C "$mnt" --numeric-owner -xpf -
buildah umount "$ctr" >/dev/null
buildah config --cmd bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --created-by "debootstrap --variant=minbase $suite $mirror, slimmed" "$ctr"
buildah commit --rm -q "$ctr" "localhost/ddb2es-base:$key" >/dev/null
ctr=
buildah tag "localhost/ddb2es-base:$key" "$name"
echo "base-image: $name is ddb2es-base:$key (made now)" >&2
