#!/usr/bin/env bash
# Usage: scripts/apt-install.sh [--with-recommends] PACKAGE...
#
# Installs the named Debian packages with apt-get when this runs as root on a machine with
# apt-get (without their recommended packages unless asked); otherwise prints the command that
# would and exits 1. The one place the scripts install system packages.
set -euo pipefail

options=(--no-install-recommends)
if [ "${1:-}" = --with-recommends ]; then
  options=()
  shift
fi
[ $# -gt 0 ] || exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing $*" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${options[@]}" "$@" >/dev/null
else
  echo "Install these first: sudo apt-get install $*" >&2
  exit 1
fi
