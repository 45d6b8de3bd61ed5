#!/bin/sh
# deps.sh [EXTRA_PACKAGE...] - installs the Debian packages the build and the
# tests need (plus any named on the command line, e.g. clang for `make fuzz`)
# when any is missing. Runs apt-get as root, or through sudo; says what it
# installs. Called by `make deps`, `make demo`, `make test` and `make fuzz`.
# Does nothing when everything is installed, so it never needs root then.
# MOESTREAM_NO_DEPS=1 skips it (other distributions: install the equivalents
# of the packages below yourself).
set -e
PKGS="gcc make pkg-config liburing-dev libnuma-dev libzstd-dev libcmocka-dev libxxhash-dev libpcre2-dev libjansson-dev libmicrohttpd-dev $*"
[ -n "$MOESTREAM_NO_DEPS" ] && exit 0
if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "deps: no dpkg/apt-get here; install the equivalents of these Debian packages yourself," >&2
    echo "deps: then run make with MOESTREAM_NO_DEPS=1: $PKGS" >&2
    exit 1
fi
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing Debian packages:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "deps: need root to install:$missing - run as root: apt-get install$missing" >&2
        exit 1
    fi
    SUDO="sudo"
fi
# env, not export: sudo drops the caller's environment.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
