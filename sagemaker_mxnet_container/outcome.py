"""The job's outcome on disk: ``output/success``, or ``output/failure`` with the cause first.

The platform shows the first 1024 characters of ``failure`` as the job's FailureReason, so each
reason starts with what went wrong (the user's exception, the missing file, the bad archive
member), then the context. Every reason passes through the log redaction first.
"""

import os
import re
import signal
from typing import List, Optional

from sagemaker_mxnet_container import logs
from sagemaker_mxnet_container.environment import Paths
from sagemaker_mxnet_container.errors import ToolkitError
from sagemaker_mxnet_container.runner import ProcessResult

REASON_SHOWN = 1024
_MAX_FAILURE_BYTES = 64 * 1024
_TAIL_IN_REASON = 20
_SYNTAX_ERROR = re.compile(r"(SyntaxError|IndentationError|TabError): ")


def clear(paths: Paths) -> None:
    """Removes a previous run's outcome, so an outcome file always describes this run."""
    for name in ("success", "failure"):
        path = os.path.join(paths.output_dir, name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as error:
            # A read-only output/ fails unlink even where the file is absent; left unhandled it
            # was an "Internal error" with a traceback, hiding what to fix.
            raise ToolkitError(
                f"cannot clear {path}: {error.strerror}; {paths.output_dir} must be writable for the job "
                "to record its outcome"
            ) from None


def user_failure(paths: Paths) -> Optional[str]:
    """A failure file the user's code wrote itself: it knows its own failure best."""
    try:
        with open(os.path.join(paths.output_dir, "failure"), encoding="utf-8", errors="replace") as stream:
            text = stream.read(_MAX_FAILURE_BYTES)
    except OSError:
        return None
    return text if text.strip() else None


def record_success(paths: Paths) -> None:
    os.makedirs(paths.output_dir, exist_ok=True)
    with open(os.path.join(paths.output_dir, "success"), "w"):
        pass


def record_failure(paths: Paths, reason: str) -> None:
    text = logs.redact(reason).strip()[: _MAX_FAILURE_BYTES // 2] + "\n"
    existing = user_failure(paths)
    if existing is not None:
        # The user's text comes first but is cut so that ours still fits in the file.
        room = _MAX_FAILURE_BYTES - len(text) - 2
        text = logs.redact(existing).rstrip("\n")[:room] + "\n\n" + text
    os.makedirs(paths.output_dir, exist_ok=True)
    # A reason can carry undecodable bytes as surrogates (a file name from os.listdir in the
    # user's exception): they are written escaped, never allowed to lose the whole reason.
    with open(os.path.join(paths.output_dir, "failure"), "w", encoding="utf-8", errors="backslashreplace") as stream:
        stream.write(text)


def exception_lines(stderr_tail: List[str]) -> List[str]:
    """The exception a Python traceback ends with (type, message and any further message lines)."""
    starts = [i for i, line in enumerate(stderr_tail) if line.startswith("Traceback (most recent call last):")]
    if not starts:
        # A syntax error in the program itself is reported without a "Traceback" header: only
        # the File line, the source, the caret and the error.
        starts = [
            i
            for i, line in enumerate(stderr_tail)
            if line.startswith('  File "') and any(_SYNTAX_ERROR.match(later) for later in stderr_tail[i + 1 : i + 6])
        ]
        if not starts:
            return []
        starts[-1] -= 1
    lines = stderr_tail[starts[-1] + 1 :]
    for index, line in enumerate(lines):
        if line and not line[0].isspace():
            return [entry for entry in lines[index:] if entry.strip()][:10]
    return []


def exit_description(name: str, result: ProcessResult) -> str:
    if result.signal is None:
        text = f"{name} exited with code {result.exit_code}"
        if result.exit_code == 128 + signal.SIGKILL:
            # A shell or launcher reports a child that SIGKILL ended as 137.
            text += " (a process it ran was killed by SIGKILL; it may have run out of memory)"
        return text
    signal_name = signal.Signals(result.signal).name
    text = f"{name} was killed by {signal_name} (exit code {result.exit_code})"
    if result.stopped_by_kill:
        text += " after it outlived the stop grace period (sagemaker_stop_grace_seconds)"
    elif result.signal == signal.SIGKILL:
        text += "; it may have run out of memory"
    return text


def _tail(result: ProcessResult) -> str:
    lines = [line for line in result.stderr_tail if line.strip()][-_TAIL_IN_REASON:]
    return "Last lines of its stderr:\n" + "\n".join(lines) if lines else "It wrote nothing to stderr."


def script_failure(name: str, result: ProcessResult) -> str:
    cause = exception_lines(result.stderr_tail)
    head = "\n".join(cause) + "\n" if cause else ""
    return f"{head}{exit_description(name, result)}. {_tail(result)}"


def legacy_failure(name: str, result: ProcessResult, record: Optional[dict]) -> str:
    if record is None:
        return script_failure(name, result)
    traceback_lines = [line for line in record.get("traceback", "").splitlines() if line.strip()]
    return (
        f"{record['type']}: {record['message']}\n"
        f"Raised while {record['where']}; {exit_description(name, result)}.\n"
        + "\n".join(traceback_lines[-_TAIL_IN_REASON:])
    )
