"""Installs what the user's code needs before it runs: ``requirements.txt``, and the code itself
when it is a package with ``setup.py`` (script mode then runs it with ``python -m``)."""

import logging
import os
import sys
from typing import Mapping

from sagemaker_mxnet_container.errors import RequirementsError
from sagemaker_mxnet_container.runner import Supervisor

logger = logging.getLogger(__name__)

_PIP = [sys.executable, "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]
_REASON_LINES = 15


def _pip_error_lines(tail):
    """pip's last lines, with the error lines first: they name the package that failed."""
    lines = [line for line in tail if line.strip()]
    errors = [line for line in lines if line.lstrip().startswith(("ERROR", "error"))]
    rest = [line for line in lines[-_REASON_LINES:] if line not in errors]
    return errors[-_REASON_LINES:] + rest


def install(code_dir: str, supervisor: Supervisor, environ: Mapping[str, str] = os.environ) -> None:
    requirements = os.path.join(code_dir, "requirements.txt")
    if os.path.isfile(requirements):
        logger.info("Installing %s", requirements)
        _run(supervisor, [*_PIP, "-r", requirements], code_dir, environ, "requirements.txt")
    if os.path.isfile(os.path.join(code_dir, "setup.py")):
        logger.info("Installing the package in %s", code_dir)
        _run(supervisor, [*_PIP, "."], code_dir, environ, "the package's setup.py")


def _run(supervisor: Supervisor, command, code_dir: str, environ: Mapping[str, str], what: str) -> None:
    result = supervisor.run(command, env=environ, cwd=code_dir)
    if result.exit_code != 0:
        detail = "\n".join(_pip_error_lines(result.stderr_tail))
        raise RequirementsError(
            f"pip could not install {what} (exit code {result.exit_code}):\n{detail}"
        )
