#!/bin/sh
# Installs the Debian packages the build and tests need, when any is missing.
# Runs apt-get as root, or through sudo; prints what it installs.
set -e
PKGS="gcc make pkg-config liburing-dev libnuma-dev libzstd-dev libcmocka-dev libxxhash-dev libpcre2-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing Debian packages:$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq $missing
