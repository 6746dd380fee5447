#!/bin/sh
# Builds the libcurl that ddb2es links by default (make CURL=own), and prints
# the folder it is in.
#
# The source is Debian's curl source package, the newest version apt knows
# (`apt-get source curl`: the upstream release with every patch Debian applies,
# its security fixes included), so it moves when Debian's libcurl moves: each
# `make` runs this script, which rebuilds only when apt has a newer version.
# It is configured with what ddb2es uses and nothing else: HTTP/1.1 and HTTPS
# through OpenSSL, proxies, the threaded resolver, IPv6, Debian's CA bundle and
# path.  Every other protocol (FTP, LDAP, RTMP, SCP/SFTP, SMB, SMTP, IMAP,
# TELNET, ...), HTTP/2, Kerberos/NTLM logins, cookies, netrc, alt-svc, HSTS
# and DNS over HTTPS are left out, and with them the libraries Debian's
# libcurl loads for them (GnuTLS through librtmp, Kerberos, LDAP and SASL,
# libssh2, libidn2 and libunistring, nghttp2, brotli, zstd, libpsl): 4 MB
# of a 1-shard run's peak RSS (bench/RESULTS.md, "Debian's curl source,
# built for ddb2es"), 11 MB of the container image, and code that a process
# holding AWS credentials has no reason to carry.
#
# The result is a static library in .cache/curl/VERSION/ (lib/libcurl.a,
# include/, COPYING: curl's licence, which goes with any copy of the binary),
# and .cache/curl/current points at it.  Needs apt's deb-src lists and
# dpkg-dev (scripts/setup.sh sets up both).  `make CURL=system` links
# Debian's shared libcurl instead (debian/rules does, so that the package
# follows Debian's libcurl updates).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${DDB2ES_CACHE:-$top/.cache}
dir=$cache/curl
mkdir -p "$dir"

# The version `apt-get source curl` would take: the newest in apt's lists.
uris=$(apt-get source --print-uris curl 2>/dev/null) || uris=""
ver=$(printf '%s\n' "$uris" | sed -n "s/^'[^']*' curl_\([^ ]*\)\.dsc .*/\1/p" | head -n 1)
if [ -z "$ver" ]; then
    if [ -f "$dir/current/lib/libcurl.a" ]; then
        echo "curl.sh: apt knows no source of curl (no deb-src lists), so the libcurl in" \
             "$dir/current ($(cat "$dir/current/debian-version")) is used unchecked;" \
             "scripts/setup.sh as root enables deb-src" >&2
        echo "$dir/current"
        exit 0
    fi
    echo "curl.sh: apt knows no source of curl: ddb2es builds its libcurl from Debian's" \
         "curl source. Run scripts/setup.sh as root (it enables deb-src and installs" \
         "dpkg-dev), or build with Debian's shared libcurl: make CURL=system" >&2
    exit 1
fi

out=$dir/$ver
if [ ! -f "$out/lib/libcurl.a" ]; then
    exec 9>"$dir/.lock"
    flock 9
fi
if [ ! -f "$out/lib/libcurl.a" ]; then
    for t in dpkg-source dpkg-buildflags; do
        command -v $t >/dev/null 2>&1 || {
            echo "curl.sh: $t is missing (Debian's dpkg-dev; scripts/setup.sh installs it)" >&2
            exit 1
        }
    done
    echo "curl.sh: building libcurl from Debian's curl $ver (HTTP and HTTPS only) into $out" >&2
    tmp=$(mktemp -d "$dir/.build.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    log=$tmp/build.log
    fail() {
        echo "curl.sh: $1 failed; the last lines of its log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    }
    # apt has checked the Sources index's signature and the files' hashes.
    (cd "$tmp" && apt-get source --download-only "curl=$ver") >"$log" 2>&1 ||
        fail "apt-get source curl=$ver"
    dpkg-source -x "$tmp/curl_$ver.dsc" "$tmp/src" >>"$log" 2>&1 || fail "dpkg-source -x"
    # Debian's hardening flags, as its own libcurl has them.
    cflags="$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CPPFLAGS)"
    cflags="$cflags $(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CFLAGS)"
    (cd "$tmp/src" && ./configure CFLAGS="$cflags" --prefix="$tmp/inst" \
        --disable-shared --enable-static --disable-dependency-tracking \
        --with-openssl --with-ca-bundle=/etc/ssl/certs/ca-certificates.crt \
        --with-ca-path=/etc/ssl/certs --without-ca-fallback \
        --enable-threaded-resolver --enable-ipv6 --enable-proxy --enable-http-auth \
        --disable-ftp --disable-file --disable-ldap --disable-ldaps --disable-rtsp \
        --disable-dict --disable-telnet --disable-tftp --disable-pop3 --disable-imap \
        --disable-smb --disable-smtp --disable-gopher --disable-mqtt --disable-websockets \
        --disable-ntlm --disable-ntlm-wb --disable-cookies --disable-netrc --disable-alt-svc \
        --disable-hsts --disable-doh --disable-mime --disable-manual --disable-libcurl-option \
        --disable-unix-sockets --without-gssapi --without-libssh2 --without-libssh \
        --without-librtmp --without-libidn2 --without-libpsl --without-nghttp2 \
        --without-brotli --without-zstd --without-zlib --without-libgsasl) \
        >>"$log" 2>&1 || fail "curl's configure"
    make -C "$tmp/src/lib" -j"$(nproc)" >>"$log" 2>&1 || fail "curl's make"
    { make -C "$tmp/src/lib" install && make -C "$tmp/src/include" install; } >>"$log" 2>&1 ||
        fail "curl's make install"
    rm -rf "$out.new"
    mkdir -p "$out.new"
    mv "$tmp/inst/lib" "$tmp/inst/include" "$out.new/"
    cp "$tmp/src/COPYING" "$out.new/COPYING"
    echo "$ver" >"$out.new/debian-version"
    # For `ddb2es --version`, which names the curl it carries.
    printf '#define DDB2ES_CURL_SOURCE "%s"\n' "$ver" >"$out.new/include/ddb2es-curl.h"
    mv "$out.new" "$out"
fi
if [ "$(readlink "$dir/current" 2>/dev/null)" != "$ver" ]; then
    ln -sfn "$ver" "$dir/current"
fi
echo "$out"
