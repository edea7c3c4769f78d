"""``python -m sagemaker_mxnet_container.installer``: installs the user's requirements, in a child
process of the supervisor's (it imports pip, and botocore for CodeArtifact).

It installs with uv wherever uv can do exactly what pip would (``pip_settings`` says where not),
into this interpreter's environment, and with pip otherwise, or when asked to
(``--installer pip``), or when uv fails: pip then tries the same install, so a requirements file
pip accepts never fails the job for uv's sake, and a real error ends it with pip's words. The
installer's output is copied line by line through the log redaction (pip masks an index's
password but prints a direct requirement's URL as written). On failure it leaves an error record
whose message is the failure reason: the installer's error lines first.
"""

import argparse
import base64
import collections
import logging
import os
import subprocess
import sys
import threading
from typing import List, Optional, Sequence, Tuple

from sagemaker_mxnet_container import codeartifact, error_record, logs, pip_settings
from sagemaker_mxnet_container.errors import RequirementsError, ToolkitError
from sagemaker_mxnet_container.requirements import REQUIREMENTS, describe

logger = logging.getLogger("sagemaker_mxnet_container.installer")

# A line longer than this is copied in pieces: the copy's memory stays bounded.
_LINE_BYTES = 65536
_TAIL_LINES = 200
_REASON_LINES = 15
_DRAIN_SECONDS = 10.0
# uv's own settings in the environment would make it differ from pip, which reads none of them.
# Its cache's place changes nothing installed.
_KEPT_UV_VARIABLES = frozenset({"UV_CACHE_DIR"})


def _copy(source, target, redact, tail: Optional[collections.deque]) -> None:
    while True:
        line = source.readline(_LINE_BYTES)
        if not line:
            break
        text = redact(line.decode("utf-8", "replace"))
        target.write(text.encode("utf-8"))
        target.flush()
        if tail is not None:
            tail.append(text.rstrip("\r\n"))


def run(argv: Sequence[str], environ, redact) -> Tuple[int, List[str]]:
    """Runs the installer with its output redacted; (exit code, last lines of its stderr)."""
    # The installer stays in this process group, so a stop the supervisor forwards reaches it too.
    process = subprocess.Popen(
        list(argv), env=dict(environ), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    tail = collections.deque(maxlen=_TAIL_LINES)
    copies = [
        threading.Thread(target=_copy, args=(process.stdout, sys.stdout.buffer, redact, None), daemon=True),
        threading.Thread(target=_copy, args=(process.stderr, sys.stderr.buffer, redact, tail), daemon=True),
    ]
    for copy in copies:
        copy.start()
    code = process.wait()
    for copy in copies:
        # A process the build left running may hold the pipe open for ever; its output is not
        # worth waiting for once the installer has exited.
        copy.join(_DRAIN_SECONDS)
    return (code if code >= 0 else 128 - code), list(tail)


def pip_error_lines(tail: Sequence[str]) -> List[str]:
    """pip's last lines, with the error lines first: they name the package that failed."""
    lines = [line for line in tail if line.strip()]
    errors = [line for line in lines if line.lstrip().startswith(("ERROR", "error"))]
    rest = [line for line in lines[-_REASON_LINES:] if line not in errors]
    return errors[-_REASON_LINES:] + rest


def uv_error_lines(tail: Sequence[str]) -> List[str]:
    """uv's error block: from its first ``error:`` or ``×`` line on (the causes and hints follow it)."""
    lines = [line for line in tail if line.strip()]
    for index, line in enumerate(lines):
        if line.startswith("error:") or line.lstrip().startswith("×"):
            return lines[index : index + _REASON_LINES]
    return lines[-_REASON_LINES:]


def uv_binary() -> Optional[str]:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return None


def pip_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pip") is not None


def uv_environ(environ, settings: pip_settings.UvInstall) -> dict:
    kept = {
        name: value for name, value in environ.items() if not name.startswith("UV_") or name in _KEPT_UV_VARIABLES
    }
    return {**kept, **settings.environ}


def uv_command(uv: str, targets: Sequence[str], settings: pip_settings.UvInstall) -> List[str]:
    return [
        uv, "pip", "install",
        "--python", sys.executable,
        # pip reads neither uv.toml nor a project's [tool.uv] table.
        "--no-config", "--no-sources",
        # pip picks the best version across every index; uv by default stops at the first index
        # that has the package.
        "--index-strategy", "unsafe-best-match",
        "--no-python-downloads", "--no-progress", "--color", "never",
        *settings.arguments,
        *targets,
    ]  # fmt: skip


def pip_command(targets: Sequence[str]) -> List[str]:
    return [sys.executable, "-m", "pip", "install", "--no-input", "--disable-pip-version-check", *targets]


def _secret_masker(token: str):
    """The log redaction, with the token and its Basic authorization form among the secrets."""
    basic = base64.b64encode(f"aws:{token}".encode()).decode()
    # Names that the redaction counts as secret, whatever their values.
    return logs.Redactor.from_sources({**os.environ, "CODEARTIFACT_TOKEN": token, "CODEARTIFACT_BASIC_TOKEN": basic})


def _uv_plan(requirements: bool, index_url: Optional[str]) -> Tuple[str, pip_settings.UvInstall]:
    """uv's binary and settings; CannotUseUv with the reason to install with pip instead."""
    uv = uv_binary()
    if uv is None:
        raise pip_settings.CannotUseUv("uv is not installed in this environment")
    if not pip_available():
        logger.warning("pip is not installed in this environment: installing with uv, without pip's configuration")
        settings = pip_settings.UvInstall()
        if index_url is not None:
            settings.environ["UV_INDEX_URL"] = index_url
        return uv, settings
    try:
        return uv, pip_settings.plan([REQUIREMENTS] if requirements else [], index_url)
    except pip_settings.CannotUseUv:
        raise
    except Exception as error:
        # pip's internals are not a stable API: a pip that changed them gets the install itself.
        raise pip_settings.CannotUseUv(
            f"pip's configuration could not be read through pip's own API ({type(error).__name__}: {error})"
        ) from error


def _codeartifact_index():
    """(CA_REPOSITORY_ARN's index URL with its token, the redaction that masks the token), or (None, the log's)."""
    arn = os.environ.get(codeartifact.ARN_VARIABLE, "").strip()
    if not arn:
        return None, logs.redact
    repository = codeartifact.parse_arn(arn)
    logger.info(
        "Installing from the CodeArtifact repository %s in domain %s (owner %s, region %s)",
        repository.name,
        repository.domain,
        repository.account,
        repository.region,
    )
    index_url, token = codeartifact.index_url(repository)
    return index_url, _secret_masker(token)


def _with_uv(what: str, targets: List[str], requirements: bool, index_url: Optional[str], redact) -> Optional[str]:
    """Installs with uv where it can: None when done, else the failure pip must be told of ("" if uv never ran)."""
    try:
        uv, settings = _uv_plan(requirements, index_url)
    except pip_settings.CannotUseUv as reason:
        logger.info("Installing %s with pip: %s", what, reason)
        return ""
    taken = f" (from pip's configuration: {', '.join(settings.notes)})" if settings.notes else ""
    logger.info("Installing %s with uv%s", what, taken)
    try:
        code, tail = run(uv_command(uv, targets, settings), uv_environ(os.environ, settings), redact)
    except OSError as error:
        code, tail = 127, [f"error: uv could not be started: {error}"]
    if code == 0:
        return None
    failure = f"uv could not install {what} (exit code {code}):\n" + "\n".join(uv_error_lines(tail))
    if not pip_available():
        raise RequirementsError(failure)
    logger.warning("%s; installing with pip instead", failure.replace(":\n", ": ", 1).splitlines()[0])
    return failure


def install(installer: str, package: bool, requirements: bool) -> None:
    what = describe(package, requirements)
    targets = (["."] if package else []) + (["-r", REQUIREMENTS] if requirements else [])
    # As in the sagemaker-training toolkit, the repository is the index of installs that take a
    # requirements.txt; a package alone installs from the configured index.
    index_url, redact = _codeartifact_index() if requirements else (None, logs.redact)
    if installer == "uv":
        uv_failure = _with_uv(what, targets, requirements, index_url, redact)
        if uv_failure is None:
            return
    else:
        uv_failure = ""
        logger.info("Installing %s with pip (SAGEMAKER_MXNET_INSTALLER=pip)", what)
    pip_environ = dict(os.environ)
    if index_url is not None:
        # As pip's -i: it beats the configured index, and a requirements file's --index-url beats
        # it. The environment keeps the token out of the process list.
        pip_environ["PIP_INDEX_URL"] = index_url
    code, tail = run(pip_command(targets), pip_environ, redact)
    if code != 0:
        detail = "\n".join(pip_error_lines(tail))
        # pip's words first, as the job would show them with pip alone; uv's can name a cause pip
        # keeps to its debug output (a certificate it rejected, say).
        also = f"\nuv, tried first: {uv_failure}" if uv_failure else ""
        raise RequirementsError(f"pip could not install {what} (exit code {code}):\n{detail}{also}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sagemaker_mxnet_container.installer")
    parser.add_argument("--installer", choices=("uv", "pip"), default="uv")
    parser.add_argument("--package", action="store_true", help="install the code directory's package (setup.py)")
    parser.add_argument("--requirements", action="store_true", help=f"install {REQUIREMENTS}")
    args = parser.parse_args(argv)
    logs.configure()
    try:
        install(args.installer, args.package, args.requirements)
    except ToolkitError as error:
        error_record.write(error, "installing the requirements")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
