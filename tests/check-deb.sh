#!/bin/sh
# `make check-deb`: the package `make deb` built ($DEB, of version $VERSION)
# installed on this machine with apt, what it installed checked, removed,
# then purged: nothing of it may be left.  Needs root; refuses to run where
# a ddb2es is installed already.  A failure purges the package before it
# exits.
set -eu

deb=$(realpath "${DEB:?}")
version=${VERSION:?}
unit=/lib/systemd/system/ddb2es.service
wants=/etc/systemd/system/multi-user.target.wants/ddb2es.service
work=$(mktemp -d "${TMPDIR:-/tmp}/check-deb.XXXXXX")
apt="apt-get -y -qq -o DPkg::Lock::Timeout=600"
export DEBIAN_FRONTEND=noninteractive
failed=0

step() { echo "check-deb: $*"; }
fail() { echo "check-deb: FAIL: $*" >&2; failed=1; }
# What the package may touch outside its own files, as it was before.
snapshot() {
    for d in /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled \
             /var/lib/systemd/deb-systemd-helper-masked /etc/ddb2es /var/lib/ddb2es \
             /var/lib/private/ddb2es; do
        [ -e "$d" ] && find "$d" -print 2>/dev/null
    done | sort
}
installed() { dpkg-query -W -f='${Status}' ddb2es 2>/dev/null | grep -qv 'not-installed'; }
cleanup() {
    if installed; then
        echo "check-deb: purging ddb2es after a failure" >&2
        $apt purge ddb2es >/dev/null 2>&1 || dpkg --purge ddb2es >/dev/null 2>&1 || true
    fi
    if [ -n "${made_private:-}" ]; then rmdir /var/lib/private 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "check-deb: run as root (it installs the package)" >&2; exit 1; }
if installed || [ -e /usr/bin/ddb2es ] || [ -e /etc/ddb2es ] || [ -e /var/lib/ddb2es ]; then
    echo "check-deb: ddb2es is installed here already (or /usr/bin/ddb2es, /etc/ddb2es or" \
         "/var/lib/ddb2es exists): refusing to touch it" >&2
    trap - EXIT
    rm -rf "$work"
    exit 1
fi
snapshot >"$work/before"

step "installing $deb"
$apt install --no-install-recommends "$deb" >"$work/apt.log" 2>&1 ||
    { cat "$work/apt.log" >&2; fail "apt-get install"; exit 1; }
dpkg-query -W -f='${Status} ${Version}\n' ddb2es | grep -qx "install ok installed $version" ||
    fail "dpkg says: $(dpkg-query -W -f='${Status} ${Version}' ddb2es)"
dpkg -L ddb2es | sort >"$work/files"

step "the binary"
[ "$(command -v ddb2es)" = /usr/bin/ddb2es ] || fail "ddb2es is not /usr/bin/ddb2es"
out=$(env -i PATH=/usr/bin:/bin ddb2es --version) || fail "ddb2es --version exited $?"
[ "$(printf '%s\n' "$out" | head -n 1)" = "ddb2es $version" ] || fail "ddb2es --version says \"$out\""
# The package links Debian's shared libcurl (debian/rules: CURL=system).
printf '%s\n' "$out" | grep -q '^libcurl .*, shared library; protocols: ' ||
    fail "ddb2es --version does not name Debian's shared libcurl: $out"

step "ddb2es check --offline on the installed example configuration"
if env -i PATH=/usr/bin:/bin ddb2es check --offline -c /etc/ddb2es/ddb2es.conf.example \
       >"$work/check.out" 2>"$work/check.err"; then
    grep -q '^\[table posts\]' "$work/check.out" || fail "check printed no [table posts]"
else
    fail "check --offline exited $?: $(cat "$work/check.err")"
fi
dpkg-query -W -f='${Conffiles}\n' ddb2es | grep -q '^ /etc/ddb2es/ddb2es.conf.example ' ||
    fail "/etc/ddb2es/ddb2es.conf.example is not a conffile"

step "the man pages"
[ "$(man -w ddb2es)" = /usr/share/man/man8/ddb2es.8.gz ] || fail "man -w ddb2es: $(man -w ddb2es)"
[ "$(man -w ddb2es.conf)" = /usr/share/man/man5/ddb2es.conf.5.gz ] ||
    fail "man -w ddb2es.conf: $(man -w ddb2es.conf)"
MANWIDTH=80 man 5 ddb2es.conf 2>&1 | grep -q 'shutdown_timeout = duration' ||
    fail "man 5 ddb2es.conf does not render its keys"

step "the unit"
[ -f "$unit" ] || fail "$unit is missing"
grep -qx 'ExecStart=/usr/bin/ddb2es run -c %d/ddb2es.conf' "$unit" || fail "ExecStart in $unit"
grep -qx 'Documentation=man:ddb2es(8) man:ddb2es.conf(5)' "$unit" || fail "Documentation= in $unit"
grep -qx 'ConditionPathExists=/etc/ddb2es/ddb2es.conf' "$unit" || fail "the condition in $unit"
# verify also runs `man` on each Documentation= page: the installed ones.
systemd-analyze verify "$unit" >"$work/verify" 2>&1 || fail "systemd-analyze verify: $(cat "$work/verify")"
if [ -s "$work/verify" ]; then fail "systemd-analyze verify is not silent: $(cat "$work/verify")"; fi
systemd-analyze security --offline=yes --threshold=11 "$unit" >"$work/security" 2>&1 ||
    fail "exposure above 1.1: $(tail -n 3 "$work/security")"
# Enabled: it starts at boot once the configuration exists (the condition).
[ "$(readlink "$wants")" = "$unit" ] || fail "$wants does not point at $unit"
if [ -d /run/systemd/system ]; then
    # Started by the postinst, skipped for want of a configuration.
    [ "$(systemctl show -P ConditionResult ddb2es)" = no ] ||
        fail "the unit started without /etc/ddb2es/ddb2es.conf"
fi

step "the documentation"
for f in iam/*.json; do
    cmp -s "$f" "/usr/share/doc/ddb2es/$f" || fail "/usr/share/doc/ddb2es/$f differs or is missing"
done
for f in deploy/index-mappings.json deploy/index-template.json; do
    cmp -s "$f" "/usr/share/doc/ddb2es/examples/${f#deploy/}" || fail "examples/${f#deploy/}"
done
[ -f /usr/share/doc/ddb2es/copyright ] || fail "no copyright file"

# The state the service would have made (DynamicUser= keeps it under
# /var/lib/private): remove keeps it, purge removes it.
[ -d /var/lib/private ] || made_private=1
mkdir -p -m 0700 /var/lib/private
mkdir /var/lib/private/ddb2es
echo '{}' >/var/lib/private/ddb2es/checkpoints.json
ln -s private/ddb2es /var/lib/ddb2es

step "remove"
$apt remove ddb2es >>"$work/apt.log" 2>&1 || fail "apt-get remove"
if [ -e /usr/bin/ddb2es ]; then fail "/usr/bin/ddb2es is left after remove"; fi
[ -f /etc/ddb2es/ddb2es.conf.example ] || fail "remove took the conffile"
[ -f /var/lib/ddb2es/checkpoints.json ] || fail "remove took the state"

step "purge"
$apt purge ddb2es >>"$work/apt.log" 2>&1 || fail "apt-get purge"
if installed; then fail "dpkg still knows ddb2es: $(dpkg-query -W -f='${Status}' ddb2es)"; fi
# Every path of the package names it, but the shared directories (/usr/bin,
# /usr/share/man/man8...), which stay.
while read -r f; do
    case $f in
    *ddb2es*) if [ -e "$f" ] || [ -L "$f" ]; then fail "left behind: $f"; fi ;;
    *) if [ ! -d "$f" ]; then fail "a shared directory is gone: $f"; fi ;;
    esac
done <"$work/files"
if [ -n "${made_private:-}" ]; then rmdir /var/lib/private; fi
snapshot >"$work/after"
diff "$work/before" "$work/after" >"$work/diff" ||
    fail "outside the package's files, left behind (>) or gone (<):" \
         "$(grep '^[<>]' "$work/diff" | tr '\n' ' ')"

if [ "$failed" != 0 ]; then
    exit 1
fi
echo "check-deb: ok ($(wc -l <"$work/files") paths installed, checked and purged)"
