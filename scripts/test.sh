#!/usr/bin/env bash
# Sets up .venv with the test tools, lints, and runs the test suite (arguments go to pytest; -m
# "not containers" leaves out the image builds). -v names each test as it starts, and long steps
# (image and wheel builds) print their progress; --durations lists the slowest at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
EXTRAS=test scripts/setup.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -v --durations=20 "$@"
