#!/usr/bin/env bash
# Usage: scripts/prerequisites.sh runtime|build
#
# Makes sure this machine has what the next step needs, and installs what it lacks (as root, with
# apt-get; otherwise it names the Debian packages to install and exits 1):
#   runtime  a virtual environment with MXNet 1.9.1: the venv module of $PYTHON (a Python 3.11,
#            see python311.sh) and the libraries MXNet's wheel links against;
#   build    that, plus what the native wheels (Horovod, mpi4py, gluonnlp's tokenizer) are built
#            with: C and C++ compilers, make, CMake, Open MPI (its compiler wrappers, headers and
#            library, and mpirun) and the headers of $PYTHON.
#
# Each need is checked by using it (a compile, a link, a file), never by a command that stands in
# for it: Debian's openmpi-bin alone provides mpicxx but not mpi.h, and a build that trusted
# `command -v mpicxx` failed later in CMake's FindMPI.
set -euo pipefail

case "${1:-}" in
  runtime | build) WHAT=$1 ;;
  *) echo "usage: $0 runtime|build" >&2; exit 2 ;;
esac
SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/python311.sh
source "$SCRIPTS/python311.sh"

probe=$(mktemp -d "${TMPDIR:-/tmp}/prerequisites.XXXXXX")
trap 'rm -rf "$probe"' EXIT
python_version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

compiles() {  # compiles LANGUAGE COMPILER SOURCE: the source compiles and links with that compiler
  printf '%b' "$3" | "$2" -x "$1" - -o "$probe/a.out"
}
has_library() {
  # Not `| grep -q`: grep stopping early would fail ldconfig with SIGPIPE under pipefail.
  "$(command -v ldconfig || echo /sbin/ldconfig)" -p | grep -c "$1" >/dev/null
}
# Each check: "NAME|DEBIAN PACKAGES|TEST". The packages are what Debian and Ubuntu put it in.
checks=(
  "the venv module of $PYTHON|python${python_version}-venv|$PYTHON -c 'import ensurepip, venv'"
  "libgomp.so.1 (MXNet links against it)|libgomp1|has_library libgomp.so.1"
  "libquadmath.so.0 (MXNet links against it)|libquadmath0|has_library libquadmath.so.0"
)
if [ "$WHAT" = build ]; then
  mpi_program='#include <mpi.h>\nint main(int argc, char **argv) { MPI_Init(&argc, &argv); return MPI_Finalize(); }\n'
  checks+=(
    "a C compiler|gcc libc6-dev|compiles c cc 'int main(void) { return 0; }\n'"
    "a C++ compiler|g++|compiles c++ c++ 'int main() { return 0; }\n'"
    "make|make|command -v make"
    "CMake|cmake|command -v cmake"
    "Open MPI's mpi.h and library, through mpicc and mpicxx|libopenmpi-dev openmpi-bin|compiles c mpicc '$mpi_program' && compiles c++ mpicxx '$mpi_program'"
    "Open MPI's mpirun|openmpi-bin|mpirun --version"
    "Python.h of $PYTHON|python${python_version}-dev|test -f \"\$($PYTHON -c 'import sysconfig; print(sysconfig.get_path(\"include\"))')/Python.h\""
  )
fi

failing() {  # prints "name|packages" for every check that fails; its output goes to $probe/log
  local check name packages test output
  : >"$probe/log"
  for check in "${checks[@]}"; do
    IFS='|' read -r name packages test <<<"$check"
    if ! output=$(eval "$test" 2>&1); then
      printf '%s|%s\n' "$name" "$packages"
      printf '%s:\n%s\n' "$name" "$(tail -n 5 <<<"$output")" >>"$probe/log"
    fi
  done
}

missing=$(failing)
[ -n "$missing" ] || exit 0
packages=$(cut -d'|' -f2 <<<"$missing" | tr ' ' '\n' | sort -u | paste -sd' ')
echo "Missing: $(cut -d'|' -f1 <<<"$missing" | paste -sd';' | sed 's/;/; /g')" >&2
# shellcheck disable=SC2086
"$SCRIPTS/apt-install.sh" $packages

still=$(failing)
if [ -n "$still" ]; then
  cat "$probe/log" >&2
  echo "Still missing after installing $packages: $(cut -d'|' -f1 <<<"$still" | paste -sd';' | sed 's/;/; /g') (output above)" >&2
  exit 1
fi
