"""The build scripts' own contracts, without building anything: how they are called, and what
scripts/prerequisites.sh says where it may not install. (That it finds and installs what is
missing is proven in a throwaway Debian root by tests/test_containers.py.)"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import REPO

SCRIPTS = REPO / "scripts"


@pytest.mark.parametrize("script", ["native-wheels.sh", "horovod-wheel.sh"])
def test_the_wheel_scripts_say_how_to_call_them(script):
    run = subprocess.run(["bash", str(SCRIPTS / script)], capture_output=True, text=True, timeout=30)

    assert run.returncode == 2 and "usage:" in run.stderr and "DEST_DIR" in run.stderr


def test_prerequisites_says_what_it_checks_for():
    run = subprocess.run([str(SCRIPTS / "prerequisites.sh"), "everything"], capture_output=True, text=True, timeout=30)

    assert run.returncode == 2 and "runtime|build" in run.stderr


@pytest.fixture
def unprivileged():
    """A command prefix that runs as nobody, and a directory nobody can read (pytest's tmp_path is
    root's only)."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run a command as another user")
    directory = Path(tempfile.mkdtemp(prefix="prerequisites-"))
    directory.chmod(0o755)
    yield [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"], directory
    shutil.rmtree(directory)


def test_without_root_a_missing_mpi_header_is_named_with_the_package_to_install(unprivileged):
    # mpicc as on a machine with openmpi-bin and without libopenmpi-dev: the wrapper is there,
    # the header is not.
    as_nobody, directory = unprivileged
    stub = directory / "mpicc"
    stub.write_text("#!/bin/sh\necho 'fatal error: mpi.h: No such file or directory' >&2\nexit 1\n")
    stub.chmod(0o755)
    python = shutil.which("python3.11", path="/usr/bin:/usr/local/bin")
    if python is None:
        pytest.skip("needs a system-wide python3.11 that nobody may run")
    path = f"{directory}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    environ = {"PATH": path, "PYTHON": python, "HOME": str(directory)}

    run = subprocess.run(
        [*as_nobody, "bash", str(SCRIPTS / "prerequisites.sh"), "build"],
        env=environ, cwd=directory, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert run.returncode == 1, run.stderr
    assert "Open MPI's mpi.h" in run.stderr
    install = [line for line in run.stderr.splitlines() if line.startswith("Install these first: sudo apt-get install")]
    assert install and "libopenmpi-dev" in install[0].split(), run.stderr
