#!/usr/bin/env bash
# Usage: scripts/horovod-wheel.sh DEST_DIR
#
# Builds (or takes from the cache) a Horovod wheel for the MXNet 1.9.1 images and copies it into
# DEST_DIR; the wheel's path is the last line printed. Horovod has no binary wheels: its build
# compiles against the installed MXNet (its headers ship in the mxnet wheel), so it runs in a
# private virtual environment holding that MXNet, without build isolation.
#
# Environment:
#   PYTHON             Python 3.11 interpreter to build with (default python3.11, else python3)
#   MXNET_REQUIREMENT  the MXNet to build against (default mxnet==1.9.1; mxnet-cu117==1.9.1 for GPUs)
#   HOROVOD_GPU_OPERATIONS  NCCL for the GPU image, on a machine with CUDA and NCCL (default unset)
#   HOROVOD_WHEEL_CACHE     where built wheels are kept (default ~/.cache/sagemaker-mxnet-container/wheels)
#
# What the build needs (compilers, CMake, Open MPI's headers and library) is checked, and installed
# where missing, by scripts/prerequisites.sh.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 DEST_DIR" >&2
  exit 2
fi
DEST_DIR=$1

HOROVOD_VERSION=0.28.1
MXNET_REQUIREMENT=${MXNET_REQUIREMENT:-mxnet==1.9.1}

# Horovod's default adds -mf16c -mavx -mfma; they are stated here so that the choice is ours.
# Every x86 instance type SageMaker trains on (ml.m4/c4/p2/p3, Haswell and Broadwell, and every
# later Intel and AMD generation: m5, c5, g4dn, m6i, c6i, m6a, g5, c7i, ...) has AVX, FMA and F16C.
# Horovod's CPU code uses them to convert and sum float16 tensors (without F16C it falls back to
# scalar bit manipulation) and needs nothing newer; -march=x86-64-v3 or -v4 would only let the
# compiler use AVX2/AVX-512 elsewhere, at the price of the older machines people run the image on
# locally.
export HOROVOD_BUILD_ARCH_FLAGS=${HOROVOD_BUILD_ARCH_FLAGS:-"-mf16c -mavx -mfma"}

export HOROVOD_WITH_MXNET=1
export HOROVOD_WITHOUT_TENSORFLOW=1
export HOROVOD_WITHOUT_PYTORCH=1
export HOROVOD_WITH_GLOO=1
export HOROVOD_WITH_MPI=1
export HOROVOD_GPU_OPERATIONS=${HOROVOD_GPU_OPERATIONS:-}
[ -n "$HOROVOD_GPU_OPERATIONS" ] || unset HOROVOD_GPU_OPERATIONS
# Horovod's setup.py runs make -j8 unless MAKEFLAGS is set; match the machine instead.
export MAKEFLAGS=${MAKEFLAGS:--j$(nproc)}

SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/python311.sh
source "$SCRIPTS/python311.sh"
export PYTHON

# The cache key names everything that changes the binary, so CI's clean clones reuse one build.
python_tag=$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
flags="mxnet=${MXNET_REQUIREMENT};arch=${HOROVOD_BUILD_ARCH_FLAGS};gpu=${HOROVOD_GPU_OPERATIONS:-none};gloo;mpi"
key="horovod-${HOROVOD_VERSION}-${python_tag}-$(uname -m)-$(printf '%s' "$flags" | sha256sum | cut -c1-12)"
CACHE_DIR=${HOROVOD_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sagemaker-mxnet-container/wheels}/$key

cached_wheel() {
  [ -d "$CACHE_DIR" ] || return 0
  find "$CACHE_DIR" -maxdepth 1 -name "horovod-${HOROVOD_VERSION}-*.whl" | head -n 1
}

wheel=$(cached_wheel)
if [ -z "$wheel" ]; then
  "$SCRIPTS/prerequisites.sh" build

  work=$(mktemp -d "${TMPDIR:-/tmp}/horovod-wheel.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "Building Horovod ${HOROVOD_VERSION} against ${MXNET_REQUIREMENT} (${HOROVOD_BUILD_ARCH_FLAGS}) in $work" >&2
  "$PYTHON" -m venv "$work/venv"
  pip=("$work/venv/bin/python" -m pip --disable-pip-version-check -q)
  "${pip[@]}" install "$MXNET_REQUIREMENT" 'numpy<1.24' 'setuptools<70' wheel packaging
  # --no-deps: only Horovod is built here; its pure-Python dependencies install from the index.
  PATH="$work/venv/bin:$PATH" "${pip[@]}" wheel --no-cache-dir --no-build-isolation --no-deps --no-binary horovod \
    -w "$work/wheel" "horovod==${HOROVOD_VERSION}" >&2
  built=$(find "$work/wheel" -maxdepth 1 -name "horovod-${HOROVOD_VERSION}-*.whl" | head -n 1)
  if [ -z "$built" ]; then
    echo "pip wheel produced no Horovod wheel in $work/wheel" >&2
    exit 1
  fi
  # Checks the build, not just the packaging: the MXNet extension and both controllers are in.
  "${pip[@]}" install "$built"
  "$work/venv/bin/python" -c '
import sys
import horovod.mxnet as hvd
missing = [name for name, built in (("gloo", hvd.gloo_built()), ("mpi", hvd.mpi_built())) if not built]
sys.exit("Horovod was built without " + ", ".join(missing) if missing else 0)
' >&2
  mkdir -p "$CACHE_DIR"
  # Renamed into place, so a concurrent reader never sees half a wheel.
  partial=$(mktemp "$CACHE_DIR/.partial.XXXXXX")
  cp "$built" "$partial"
  chmod 0644 "$partial"
  mv "$partial" "$CACHE_DIR/$(basename "$built")"
  wheel=$(cached_wheel)
else
  echo "Using the cached $wheel" >&2
fi

mkdir -p "$DEST_DIR"
cp "$wheel" "$DEST_DIR/"
echo "$DEST_DIR/$(basename "$wheel")"
