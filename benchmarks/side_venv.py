"""A virtual environment of its own for another stack (the peer toolkit, the serving toolkit),
installed from PyPI on first use and kept for later runs.

Those stacks import names this checkout also has, or pin versions ours does not use, so they
never share an interpreter path with it. Two test sessions may want the same one at once: a
lock beside the directory lets one install while the other waits, and a stamp written last
marks an install that finished.
"""

import fcntl
import json
import os
import subprocess
import sys
from typing import Sequence

_STAMP = "side-venv-requirements.json"


class SideVenvError(RuntimeError):
    pass


def installed(directory: str, requirements: Sequence[str]) -> bool:
    try:
        with open(os.path.join(directory, _STAMP)) as stream:
            return json.load(stream) == list(requirements)
    except (OSError, ValueError):
        return False


def ensure(directory: str, requirements: Sequence[str], log=print, what: str = "") -> str:
    """Makes ``directory`` a venv holding ``requirements`` unless it already does; returns its
    Python. ``what`` names the stack in the log line."""
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    with open(os.path.abspath(directory) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed(directory, requirements):
            log(f"Installing {what or 'a side venv'} ({', '.join(requirements)}) into {directory}")
            # A venv made from inside a venv is based on the base interpreter, not on this venv.
            subprocess.run([sys.executable, "-m", "venv", "--clear", directory], check=True)
            python = os.path.join(directory, "bin", "python")
            pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            result = subprocess.run([*pip, *requirements], capture_output=True, text=True)
            if result.returncode != 0:
                raise SideVenvError(
                    f"pip could not install {', '.join(requirements)} into {directory}:\n"
                    f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
                )
            with open(os.path.join(directory, _STAMP), "w") as stream:
                json.dump(list(requirements), stream)
    return os.path.join(directory, "bin", "python")


def isolated_environ() -> dict:
    """This process's environment without what would point another venv's Python at this one."""
    return {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
