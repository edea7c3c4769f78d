"""This checkout installed as a wheel into a virtual environment of its own, as an image has it.

The development venv installs the package in editable mode, whose import hook costs every Python
started there (``train``, the download child, the user's script) several milliseconds that no
image pays. The venv holds no MXNet (an extra): the start-up jobs do not need it.
"""

import os
import shutil
import subprocess
import sys
import tempfile

DEFAULT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".ours-venv")
_BUILD_INPUTS = ("setup.py", "pyproject.toml", "README.md", "sagemaker_mxnet_container")
# Builds this checkout without build isolation (no fresh setuptools download on every run).
_BUILD_REQUIREMENTS = ("wheel",)


def _pip(directory: str, *arguments: str) -> None:
    python = os.path.join(directory, "bin", "python")
    result = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *arguments],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(arguments)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")


def install(source: str, directory: str = DEFAULT_DIR, log=print, cut_s3_model: bool = True) -> str:
    """(Re)installs the package at ``source``; returns the path of its ``train``.

    ``cut_s3_model``: cut botocore's S3 model for the download child, as the image's build does.
    """
    python = os.path.join(directory, "bin", "python")
    if not os.path.exists(python):
        log(f"Creating {directory} for this toolkit, installed as a wheel")
        subprocess.run([sys.executable, "-m", "venv", "--clear", directory], check=True)
        _pip(directory, *_BUILD_REQUIREMENTS)
    # Every run, from a fresh copy: the benchmark measures the source as it is now, and an
    # in-tree build could reuse stale files from an earlier build/ directory.
    with tempfile.TemporaryDirectory(prefix="benchmark-ours-") as copy:
        for name in _BUILD_INPUTS:
            path = os.path.join(source, name)
            if os.path.isdir(path):
                shutil.copytree(path, os.path.join(copy, name), ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(path, copy)
        # Its dependencies as setup.py names them now (a no-op once they are there), then the
        # package itself, reinstalled whatever its version says.
        _pip(directory, "--no-build-isolation", copy)
        _pip(directory, "--no-deps", "--no-build-isolation", "--force-reinstall", copy)
    # A reinstall keeps files the wheel does not list: an earlier run's cut model among them.
    cut = "import shutil, sagemaker_mxnet_container.s3_model as m; shutil.rmtree(m.DATA_DIR, ignore_errors=True)"
    if cut_s3_model:
        cut += "; m.write()"
    # Not from the checkout: python -c would import the package from the working directory first.
    subprocess.run([python, "-c", cut], check=True, capture_output=True, cwd=directory)
    return os.path.join(directory, "bin", "train")
