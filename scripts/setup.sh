#!/usr/bin/env bash
# Prepares .venv for this checkout: the OS libraries MXNet's wheel links against and Python 3.11's
# venv module (scripts/prerequisites.sh), then this package with the CPU build of MXNet (and any
# extras named in $EXTRAS).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/python311.sh
source scripts/python311.sh

export PYTHON
scripts/prerequisites.sh runtime

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[cpu${EXTRAS:+,$EXTRAS}]"
