#!/usr/bin/env bash
# Usage: docker/build.sh cpu|gpu
#
# Builds the SageMaker MXNet 1.9.1 training image from a clean build context: the Dockerfile and
# the Python wheels, prepared here (this package built from the checkout, MXNet, our dependencies
# and Horovod, all for the image's Python 3.11 on x86-64 Linux), so that the build itself needs
# no network beyond the base distribution's package mirror. Runs from any working directory;
# prints the image name (last line).
#
# Environment:
#   CONTAINER_ENGINE  docker or podman (default: docker if its daemon answers, else podman)
#   BASE_IMAGE        the base image (default: debian:bookworm-slim for cpu,
#                     nvidia/cuda:11.7.1-cudnn8-runtime-ubuntu22.04 for gpu); a path to a root
#                     file system tarball is imported into the engine first
#   IMAGE             the tag (default sagemaker-mxnet-training:1.9.1-cpu-py3 or ...-gpu-py3)
#   PYTHON            the Python whose pip prepares the wheels (default python3)
#   WITH_HOROVOD      1 (default) to include Horovod, 0 to leave it out
#   HOROVOD_WHEEL     a Horovod wheel to include; default: scripts/horovod-wheel.sh builds one
#                     (for gpu against mxnet-cu117 with NCCL, which needs CUDA on this machine)
#   BUILD_NETWORK     the network the build's steps use (the engine's --network), e.g. host
#
# Besides MXNet, Horovod and this package, the image carries docker/1.9.1/py3/requirements.txt;
# scripts/native-wheels.sh builds the wheels of those that publish none for Python 3.11.
#
# pip runs with this machine's configuration (an index or proxy it names is used); the platform
# options below keep only wheels that fit the image.
set -euo pipefail

usage() {
  echo "usage: $0 cpu|gpu" >&2
  exit 2
}
[ $# -eq 1 ] || usage
FLAVOR=$1
case "$FLAVOR" in
  cpu) default_base=debian:bookworm-slim ;;
  gpu) default_base=nvidia/cuda:11.7.1-cudnn8-runtime-ubuntu22.04 ;;
  *) usage ;;
esac

DOCKER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$DOCKER_DIR")
DOCKERFILE="$DOCKER_DIR/1.9.1/py3/Dockerfile.$FLAVOR"
BASE_IMAGE=${BASE_IMAGE:-$default_base}
IMAGE=${IMAGE:-sagemaker-mxnet-training:1.9.1-$FLAVOR-py3}
PYTHON=${PYTHON:-python3}
WITH_HOROVOD=${WITH_HOROVOD:-1}
case "$WITH_HOROVOD" in
  0 | 1) ;;
  *) echo "WITH_HOROVOD must be 1 or 0, not $WITH_HOROVOD" >&2; exit 2 ;;
esac

if [ -z "${CONTAINER_ENGINE:-}" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    CONTAINER_ENGINE=docker
  elif command -v podman >/dev/null; then
    CONTAINER_ENGINE=podman
  else
    echo "Neither a docker daemon nor podman is available; scripts/podman-setup.sh installs podman." >&2
    exit 1
  fi
fi
ENGINE=$CONTAINER_ENGINE
"$PYTHON" -m pip --version >/dev/null 2>&1 || {
  echo "$PYTHON has no pip; set PYTHON to a Python 3 with pip to prepare the wheels." >&2
  exit 1
}

context=$(mktemp -d "${TMPDIR:-/tmp}/sagemaker-mxnet-build.XXXXXX")
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/wheels/app" "$context/wheels/deps"
cp "$DOCKERFILE" "$context/Dockerfile"

# This package, built from the files the checkout tracks or would track (no stale build/ output,
# no virtual environment).
"$PYTHON" - "$REPO" "$context/src" <<'PY'
import os
import shutil
import subprocess
import sys

repo, dest = sys.argv[1:]
try:
    listing = subprocess.run(
        ["git", "-C", repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout.decode()
    names = [name for name in listing.split("\0") if name]
except (OSError, subprocess.CalledProcessError):
    skip = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache"}
    names = []
    for root, dirs, files in os.walk(repo):
        dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
        names += [os.path.relpath(os.path.join(root, f), repo) for f in files]
for name in names:
    source = os.path.join(repo, name)
    if os.path.isfile(source) and "__pycache__" not in name.split(os.sep):
        target = os.path.join(dest, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(source, target)
PY
"$PYTHON" -m pip wheel -q --no-deps --wheel-dir "$context/wheels/app" "$context/src"
app_wheel=$(find "$context/wheels/app" -name 'sagemaker_mxnet_container-*.whl')
rm -rf "$context/src"

horovod=()
if [ "$WITH_HOROVOD" = 1 ]; then
  if [ -n "${HOROVOD_WHEEL:-}" ]; then
    cp "$HOROVOD_WHEEL" "$context/wheels/deps/"
  elif [ "$FLAVOR" = gpu ]; then
    MXNET_REQUIREMENT=mxnet-cu117==1.9.1 HOROVOD_GPU_OPERATIONS=${HOROVOD_GPU_OPERATIONS:-NCCL} \
      "$REPO/scripts/horovod-wheel.sh" "$context/wheels/deps" >&2
  else
    "$REPO/scripts/horovod-wheel.sh" "$context/wheels/deps" >&2
  fi
  horovod=("$(find "$context/wheels/deps" -name 'horovod-*.whl' | head -n 1)")
  [ -n "${horovod[0]}" ] || { echo "no Horovod wheel was prepared" >&2; exit 1; }
fi

"$REPO/scripts/native-wheels.sh" "$context/wheels/deps" >/dev/null

# Wheels for the image, not for this machine: CPython 3.11 on x86-64 with glibc up to 2.35
# (Ubuntu 22.04's, under the CUDA base; Debian 12 has 2.36). linux_x86_64 admits Horovod's own
# build and those of native-wheels.sh, which are not manylinux wheels; --find-links offers those.
platforms=(--platform linux_x86_64 --platform manylinux1_x86_64 --platform manylinux2010_x86_64 --platform manylinux2014_x86_64)
for minor in $(seq 5 35); do
  platforms+=(--platform "manylinux_2_${minor}_x86_64")
done
"$PYTHON" -m pip download -q --only-binary=:all: --python-version 3.11 --implementation cp \
  --abi cp311 --abi abi3 --abi none "${platforms[@]}" --dest "$context/wheels/deps" \
  --find-links "$context/wheels/deps" -r "$DOCKER_DIR/1.9.1/py3/requirements.txt" "${app_wheel}[$FLAVOR]" "${horovod[@]}"
# The download saved this package's wheel too; it belongs to the app layer only.
find "$context/wheels/deps" -name 'sagemaker_mxnet_container-*.whl' -delete

build=("$ENGINE" build -t "$IMAGE" -f "$context/Dockerfile")
[ -z "${BUILD_NETWORK:-}" ] || build+=(--network "$BUILD_NETWORK")
if [ -f "$BASE_IMAGE" ]; then
  tag="localhost/sagemaker-mxnet-base:imported-$(sha256sum "$BASE_IMAGE" | cut -c1-16)"
  if ! "$ENGINE" image inspect "$tag" >/dev/null 2>&1; then
    "$ENGINE" import "$BASE_IMAGE" "$tag" >&2
  fi
  BASE_IMAGE=$tag
fi
if [ "$ENGINE" = podman ]; then
  # Docker's image format, not OCI's: OCI has no SHELL, and podman would run the Dockerfile's RUN
  # steps with /bin/sh instead of bash -o pipefail.
  build+=(--format docker)
  # A local base (from docker/debian-base.sh, say) must not be looked up in a registry.
  ! podman image exists "$BASE_IMAGE" || build+=(--pull=never)
fi
echo "Building $IMAGE from $BASE_IMAGE with $ENGINE" >&2
"${build[@]}" --build-arg "BASE_IMAGE=$BASE_IMAGE" "$context" >&2
echo "$IMAGE"
