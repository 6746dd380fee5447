#!/bin/sh
# Lays out the whole tree of the container image's final stage (Dockerfile,
# FROM scratch), in its build stage: ddb2es and what it reads at run time,
# taken from the build stage's own Debian packages.
#
#   scripts/image-rootfs.sh BINARY ROOT [CURL_DIR]
#
#   /usr/local/bin/ddb2es   BINARY
#   libcurl's licence       when BINARY carries the libcurl scripts/curl.sh
#                           built (in CURL_DIR), its COPYING as
#                           /usr/share/doc/ddb2es/curl-copyright, and its
#                           Debian source version in packages.txt: no dpkg
#                           entry names it, as no package of curl is installed
#   shared objects          every one ldd lists, the dynamic loader among them,
#                           at the path ldd shows (the file, not the symlink);
#                           /lib and /lib64 are symlinks into /usr as on Debian
#                           bookworm (merged /usr).  With no /etc/ld.so.cache
#                           the loader searches its default directories,
#                           /lib/<triplet> then /usr/lib/<triplet> (`ld.so
#                           --help`), where they are.  Also libgcc_s.so.1,
#                           which glibc loads with dlopen to unwind a thread
#                           (pthread_exit, pthread_cancel) and ldd cannot see.
#   CA certificates         Debian's bundle, where libcurl looks by default
#                           (`curl-config --ca`).
#   /etc                    passwd and group naming uid and gid 10001 (the
#                           Dockerfile's USER) for getpwuid; nsswitch.conf
#                           (glibc has its files and dns modules built in);
#                           os-release and debian_version.
#   what they come from     /usr/share/doc/ddb2es/packages.txt: the Debian
#                           packages, with their versions, whose files are
#                           here; each one's copyright file; its dpkg status
#                           entry in /var/lib/dpkg/status.d/ (one file per
#                           package, the layout of distroless images, which
#                           image scanners read).
#
# ROOT is then checked: BINARY --version runs chrooted in it.
set -eu

bin=$1
root=$2
curl_dir=${3:-}
uid=10001

fail() { echo "image-rootfs: $*" >&2; exit 1; }

# place FILE: FILE's content at the same path under ROOT, its top folder kept
# a symlink when it is one here (/lib -> usr/lib).
place() {
    top=$(printf '%s\n' "$1" | cut -d/ -f2)
    if [ -L "/$top" ] && [ ! -L "$root/$top" ]; then
        mkdir -p "$root/$(readlink "/$top")"
        ln -s "$(readlink "/$top")" "$root/$top"
    fi
    mkdir -p "$root$(dirname "$1")"
    cp -L "$1" "$root$1"
}

# The package that ships FILE (as named, else the file it resolves to:
# bookworm's dpkg database has most libraries under /usr/lib).
owner() {
    for f in "$1" "$(realpath "$1")"; do
        p=$(dpkg-query -S "$f" 2>/dev/null | grep -v '^diversion ' | head -n 1 | sed 's/[:,].*//')
        [ -z "$p" ] || { echo "$p"; return 0; }
    done
    return 1
}

# The copyright file of package $1.  A package whose documentation folder is
# a symlink to that of another package built from the same source, which it
# depends on (Debian policy 12.5), has it there: the slim base drops such
# symlinks (libgcc-s1 -> gcc-12-base).
copyright() {
    [ ! -f "/usr/share/doc/$1/copyright" ] || { echo "/usr/share/doc/$1/copyright"; return 0; }
    src=$(dpkg-query -W -f='${source:Package}' "$1")
    for d in $(dpkg-query -W -f='${Depends}' "$1" | sed 's/[,|]/\n/g' | awk '{ sub(/:.*/, "", $1); print $1 }'); do
        if [ "$(dpkg-query -W -f='${source:Package}' "$d" 2>/dev/null)" = "$src" ] &&
            [ -f "/usr/share/doc/$d/copyright" ]; then
            echo "/usr/share/doc/$d/copyright"
            return 0
        fi
    done
    return 1
}

[ -x "$bin" ] || fail "$bin: no such program"
rm -rf "$root"
mkdir -p "$root/usr/local/bin"
cp "$bin" "$root/usr/local/bin/ddb2es"

ldd "$bin" >"$root.ldd"
! grep -q 'not found' "$root.ldd" || fail "$(grep 'not found' "$root.ldd")"
libs=$(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' "$root.ldd")
rm -f "$root.ldd"
libc=$(printf '%s\n' "$libs" | grep '/libc\.so\.6$') || fail "ldd lists no libc.so.6"
gcc_s=${libc%/*}/libgcc_s.so.1
[ -f "$gcc_s" ] || fail "$gcc_s: missing"
ca=$(curl-config --ca)
[ -s "$ca" ] || fail "$ca: no CA bundle (ca-certificates)"

: >"$root.files"
for f in $libs "$gcc_s" /etc/os-release /etc/debian_version; do
    place "$f"
    p=$(owner "$f") || fail "$f: no package ships it"
    echo "$f $p" >>"$root.files"
done
place "$ca"
# Made by update-ca-certificates from ca-certificates' files: no package owns it.
echo "$ca ca-certificates" >>"$root.files"

printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nddb2es:x:%d:%d:ddb2es:/var/lib/ddb2es:/usr/sbin/nologin\n' \
    "$uid" "$uid" >"$root/etc/passwd"
printf 'root:x:0:\nddb2es:x:%d:\n' "$uid" >"$root/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
# The state volume's mount point is added by the Dockerfile, with its owner.
mkdir -p "$root/var/lib"

doc=$root/usr/share/doc
mkdir -p "$doc/ddb2es" "$root/var/lib/dpkg/status.d"
curl_source=""
if "$bin" --version | grep -q "built for ddb2es from Debian's curl"; then
    [ -n "$curl_dir" ] && [ -f "$curl_dir/COPYING" ] ||
        fail "$bin carries its own libcurl: give its folder (.cache/curl/current) as CURL_DIR"
    curl_source=$(cat "$curl_dir/debian-version")
    cp "$curl_dir/COPYING" "$doc/ddb2es/curl-copyright"
fi
pkgs=$(awk '{ print $NF }' "$root.files" | sort -u)
{
    echo "# The Debian packages whose files are in this image, with their versions"
    echo "# ($(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release), dpkg-query in the build stage):"
    for p in $pkgs; do
        dpkg-query -W -f='${Package} ${Version} ${Architecture}\n' "$p"
    done
    if [ -n "$curl_source" ]; then
        echo
        echo "# Built into /usr/local/bin/ddb2es (statically, from Debian's source package,"
        echo "# its patches applied; licence: /usr/share/doc/ddb2es/curl-copyright):"
        echo "curl (source) $curl_source"
    fi
    echo
    echo "# Each file and its package:"
    cat "$root.files"
} >"$doc/ddb2es/packages.txt"
rm -f "$root.files"
for p in $pkgs; do
    c=$(copyright "$p") || fail "$p: no copyright file"
    mkdir -p "$doc/$p"
    cp -L "$c" "$doc/$p/copyright"
    dpkg-query -s "$p" >"$root/var/lib/dpkg/status.d/$p"
done

env -i "$(command -v chroot)" "$root" /usr/local/bin/ddb2es --version >/dev/null ||
    fail "ddb2es --version does not run in $root"
