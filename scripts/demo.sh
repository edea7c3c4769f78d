#!/usr/bin/env bash
# Sets up .venv and runs a real MNIST training job through `train` (arguments go to demo.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
exec .venv/bin/python examples/mnist/demo.py "$@"
