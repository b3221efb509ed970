#!/bin/sh
# Installs what netns-router's demo and tests need on Debian 12: the packages listed in
# scripts/debian-packages.txt that are not installed yet (after an apt-get update, so a fresh image with no
# package lists works). The README's set-up command and .ci/run both run this script, so the two install the
# same. Node.js >= 20 is not a Debian 12 package (bookworm ships 18): it must be there already; checked here.
set -eu
here=$(dirname "$0")
if [ "$(id -u)" != 0 ]; then
  echo "setup-debian: run as root (it installs packages; the demo and tests need root too)" >&2
  exit 1
fi
pkgs=$(sed -e 's/#.*//' "$here/debian-packages.txt")
missing=
for p in $pkgs; do
  [ "$(dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup-debian: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086 # one word per package
  apt-get install -y -qq --no-install-recommends $missing
fi
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 20 ]; then
  echo "setup-debian: Node.js >= 20 is needed (found: $(node --version 2>/dev/null || echo none)); Debian 12 ships 18:" >&2
  echo "  install Node 20 or newer, e.g. from https://nodejs.org or NodeSource's nodejs package" >&2
  exit 1
fi
