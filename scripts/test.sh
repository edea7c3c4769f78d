#!/usr/bin/env bash
# Sets up .venv with the test tools, lints, and runs the test suite (arguments go to pytest).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
EXTRAS=test scripts/setup.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
