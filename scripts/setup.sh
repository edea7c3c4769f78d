#!/usr/bin/env bash
# Prepares .venv for this checkout: the OS libraries MXNet's wheel links against, Python 3.11's
# venv module, then this package with the CPU build of MXNet (and any extras named in $EXTRAS).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/python311.sh
source scripts/python311.sh

missing=()
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
for pair in libgomp.so.1:libgomp1 libquadmath.so.0:libquadmath0; do
  /sbin/ldconfig -p | grep -q "${pair%%:*}" || missing+=("${pair##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "Install these first: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[cpu${EXTRAS:+,$EXTRAS}]"
