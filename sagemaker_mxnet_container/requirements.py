"""Installs what the user's code needs before it runs: ``requirements.txt``, and the code itself
when it is a package with ``setup.py`` (script mode then runs it with ``python -m``).

pip runs under ``python -m sagemaker_mxnet_container.requirements``, which copies pip's output
line by line through the log redaction: pip masks the password of an index URL but prints a
direct requirement's URL (``pkg @ https://user:token@host/pkg.tar.gz``) as written.
"""

import logging
import os
import subprocess
import sys
import threading
from typing import Mapping

from sagemaker_mxnet_container import logs
from sagemaker_mxnet_container.errors import RequirementsError
from sagemaker_mxnet_container.runner import Supervisor

logger = logging.getLogger(__name__)

_PIP = [
    sys.executable, "-m", "sagemaker_mxnet_container.requirements",
    "install", "--no-input", "--disable-pip-version-check",
]  # fmt: skip
# A line longer than this is copied in pieces: the copy's memory stays bounded.
_LINE_BYTES = 65536
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


def _copy_redacted(source, target) -> None:
    while True:
        line = source.readline(_LINE_BYTES)
        if not line:
            break
        target.write(logs.redact(line.decode("utf-8", "replace")).encode("utf-8"))
        target.flush()


def main(argv=None) -> int:
    """Runs pip with ``argv`` and copies its stdout and stderr through the redaction."""
    argv = sys.argv[1:] if argv is None else argv
    # The child stays in this process group, so a stop the supervisor forwards reaches pip too.
    pip = subprocess.Popen(
        [sys.executable, "-m", "pip", *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    copies = [
        threading.Thread(target=_copy_redacted, args=(pip.stdout, sys.stdout.buffer), daemon=True),
        threading.Thread(target=_copy_redacted, args=(pip.stderr, sys.stderr.buffer), daemon=True),
    ]
    for copy in copies:
        copy.start()
    code = pip.wait()
    for copy in copies:
        copy.join()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
