"""Installs what the user's code needs before it runs: ``requirements.txt``, and the code itself
when it is a package with ``setup.py`` (script mode then runs it with ``python -m``), in one
install, and for the entry points the sagemaker-training toolkit installs them for: a shell
script (``.sh``), or a file neither ``.py`` nor in a package, gets neither.

The install runs in a child process (``installer``), which imports pip and, for CodeArtifact,
botocore; the supervisor only checks the settings that decide it and turns the child's error
record into the failure reason.
"""

import logging
import os
import sys
import tempfile
from typing import Mapping

from sagemaker_mxnet_container import codeartifact, error_record
from sagemaker_mxnet_container.errors import RequirementsError
from sagemaker_mxnet_container.runner import Supervisor

logger = logging.getLogger(__name__)

REQUIREMENTS = "requirements.txt"
_TAIL_LINES = 15


def describe(package: bool, requirements: bool) -> str:
    parts = (["the code's package (setup.py)"] if package else []) + ([REQUIREMENTS] if requirements else [])
    return " and ".join(parts)


def install(
    code_dir: str,
    supervisor: Supervisor,
    entry_point: str,
    installer: str = "uv",
    environ: Mapping[str, str] = os.environ,
) -> None:
    """``installer`` is ``SAGEMAKER_MXNET_INSTALLER`` (``settings``): ``uv`` wherever uv can do
    what pip would, pip elsewhere; ``pip`` for pip only."""
    requirements = os.path.isfile(os.path.join(code_dir, REQUIREMENTS))
    package = os.path.isfile(os.path.join(code_dir, "setup.py"))
    if entry_point.endswith(".sh") or not (package or entry_point.endswith(".py")):
        if requirements or package:
            logger.info(
                "Not installing %s: %s is run as a command, for which the sagemaker-training toolkit installs "
                "nothing",
                describe(package, requirements),
                os.path.basename(entry_point),
            )
        return
    if not (requirements or package):
        return
    arn = environ.get(codeartifact.ARN_VARIABLE, "").strip()
    if arn:
        codeartifact.parse_arn(arn)
    what = describe(package, requirements)
    with tempfile.TemporaryDirectory(prefix="mxnet-install-") as scratch:
        record_path = os.path.join(scratch, "error.json")
        command = [sys.executable, "-m", "sagemaker_mxnet_container.installer", "--installer", installer]
        command += (["--package"] if package else []) + (["--requirements"] if requirements else [])
        result = supervisor.run(command, env={**environ, error_record.FILE_VARIABLE: record_path}, cwd=code_dir)
        if result.exit_code == 0:
            return
        record = error_record.read(record_path)
    if record is not None:
        raise RequirementsError(record["message"])
    tail = [line for line in result.stderr_tail if line.strip()][-_TAIL_LINES:]
    raise RequirementsError(
        f"could not install {what}: the installer exited with code {result.exit_code}\n" + "\n".join(tail)
    )
