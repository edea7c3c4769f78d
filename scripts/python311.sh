# Sourced by the scripts that build against MXNet 1.9.1: sets PYTHON to a Python 3.11
# (python3.11 or python3 on PATH, unless PYTHON is set), or exits. MXNet 1.9.1 needs
# numpy < 1.24, which has no wheels for newer Pythons.
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$candidate
      break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  echo "Python 3.11 is required (python3.11 or python3 on PATH, or set PYTHON): MXNet 1.9.1 needs numpy < 1.24." >&2
  exit 1
fi
