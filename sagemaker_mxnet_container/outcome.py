"""The job's outcome on disk: ``output/success``, or ``output/failure`` with the cause first.

The platform shows the first 1024 characters of ``failure`` as the job's FailureReason, so each
reason starts with what went wrong (the user's exception, the missing file, the bad archive
member), then the context. Every reason passes through the log redaction first.
"""

import contextlib
import os
import re
import shutil
import signal
import stat
import tempfile
from dataclasses import dataclass
from typing import List, Optional

from sagemaker_mxnet_container import logs
from sagemaker_mxnet_container.environment import Paths
from sagemaker_mxnet_container.errors import ToolkitError
from sagemaker_mxnet_container.runner import TAIL_LINES, ProcessResult

REASON_SHOWN = 1024
_MAX_FAILURE_BYTES = 64 * 1024
_TAIL_IN_REASON = 20
_SYNTAX_ERROR = re.compile(r"(SyntaxError|IndentationError|TabError): ")
_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def clear(paths: Paths) -> None:
    """Removes a previous run's outcome, so an outcome file always describes this run."""
    for name in ("success", "failure"):
        path = os.path.join(paths.output_dir, name)
        try:
            _remove(path)
        except OSError as error:
            # A read-only output/ fails unlink even where the file is absent; left unhandled it
            # was an "Internal error" with a traceback, hiding what to fix.
            raise ToolkitError(
                f"cannot clear {path}: {error.strerror}; {paths.output_dir} must be writable for the job "
                "to record its outcome"
            ) from None


@dataclass(frozen=True)
class LeftFailure:
    """What the user's code left at ``output/failure``."""

    text: str
    """Its text, where it is a file with something in it; else ""."""
    problem: str
    """Where it is no such file: "is blank", "is a directory", ..."""


def left_failure(paths: Paths) -> Optional[LeftFailure]:
    """What the user's code left at ``output/failure``, if anything: whatever it is, it counts as
    a failure (the user's code knows its own failure best).

    Read without following a link (its target may be a secret, or outside the job) and without
    blocking (a FIFO would wait for a writer for ever).
    """
    path = os.path.join(paths.output_dir, "failure")
    try:
        kind = stat.S_IFMT(os.lstat(path).st_mode)
        if kind == stat.S_IFLNK:
            return LeftFailure("", "is a symbolic link (not followed)")
        if kind != stat.S_IFREG:
            return LeftFailure("", f"is {_KINDS.get(kind, 'not a regular file')}")
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        return LeftFailure("", f"cannot be read ({error.strerror})")
    try:
        # Replaced since it was looked at: still read only if it is a file.
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return LeftFailure("", "is not a regular file")
        text = os.read(fd, _MAX_FAILURE_BYTES).decode("utf-8", "replace")
    except OSError as error:
        return LeftFailure("", f"cannot be read ({error.strerror})")
    finally:
        os.close(fd)
    return LeftFailure(text, "") if text.strip() else LeftFailure("", "is blank")


def record_success(paths: Paths) -> None:
    """Writes ``success``; raises ToolkitError where a failure is there after all."""
    left = left_failure(paths)
    if left is not None:
        raise ToolkitError(f"{paths.output_dir}/failure appeared after the user's code ended: it {left.problem}")
    _write(paths.output_dir, "success", "")


def record_failure(paths: Paths, reason: str) -> None:
    """Writes ``failure`` (the user's own text first) and removes any ``success``, whatever the
    user's code left at either path."""
    text = logs.redact(reason).strip()[: _MAX_FAILURE_BYTES // 2] + "\n"
    left = left_failure(paths)
    if left is not None and left.text:
        # The user's text comes first but is cut so that ours still fits in the file.
        room = _MAX_FAILURE_BYTES - len(text) - 2
        text = logs.redact(left.text).rstrip("\n")[:room] + "\n\n" + text
    _write(paths.output_dir, "failure", text)
    _remove(os.path.join(paths.output_dir, "success"))


def left_failure_reason(paths: Paths, name: str, left: LeftFailure) -> str:
    """Why a program that exited 0 failed: what it left at ``output/failure``."""
    if left.text:
        # record_failure puts the user's text first.
        return f"{name} exited with code 0 but wrote {paths.output_dir}/failure"
    return f"{name} exited with code 0 but {paths.output_dir}/failure {left.problem}, so the job counts as failed"


def _remove(path: str) -> None:
    """Removes what is at ``path``, whatever it is (a directory the user's code made too)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _write(directory: str, name: str, text: str) -> None:
    """Puts a file with ``text`` at ``directory/name`` in one step, replacing whatever is there
    (a link is replaced, never written through)."""
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{name}-", dir=directory)
    try:
        # A reason can carry undecodable bytes as surrogates (a file name from os.listdir in the
        # user's exception): they are written escaped, never allowed to lose the whole reason.
        with open(fd, "w", encoding="utf-8", errors="backslashreplace") as stream:
            stream.write(text)
            os.fchmod(fd, 0o644)
        target = os.path.join(directory, name)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


_HEADER = "Traceback (most recent call last):"


def _as_shown(stderr_tail: List[str]) -> List[str]:
    """The lines as a terminal shows them: a progress bar redraws its line after each ``\\r``,
    and only what follows the last one is left."""
    return [line.rsplit("\r", 1)[-1] for line in stderr_tail]


def exception_lines(stderr_tail: List[str]) -> List[str]:
    """The exception the last Python traceback ends with (type, message and further message lines).

    The last one, not the first: a program may catch and log an exception and die of another
    later. Its header may sit mid-line, after output that did not end its line.
    """
    lines = _as_shown(stderr_tail)
    starts = [i for i, line in enumerate(lines) if _HEADER in line]
    if not starts:
        # A syntax error in the program itself is reported without a "Traceback" header: only
        # the File line, the source, the caret and the error. And a traceback longer than the tail
        # has lost its header but not its frames.
        frames = [i for i, line in enumerate(lines) if line.startswith('  File "')]
        syntax = [i for i in frames if any(_SYNTAX_ERROR.match(later) for later in lines[i + 1 : i + 6])]
        if syntax:
            starts = [syntax[-1] - 1]
        elif frames and len(stderr_tail) >= TAIL_LINES:
            starts = [frames[-1]]
        else:
            return []
    following = lines[starts[-1] + 1 :]
    for index, line in enumerate(following):
        if line and not line[0].isspace():
            return [entry for entry in following[index:] if entry.strip()][:10]
    return []


# Signals that end a process from outside (the supervisor's fail-fast and aborts, a stop): a
# process that had printed its traceback and was ended while it shut down (Horovod waits for the
# other ranks at exit) failed of that exception.
_SENT_TO_END = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def ended_by_exception(result: ProcessResult) -> bool:
    """Whether the program's last traceback is what ended it. Python exits 1 after an uncaught
    exception; another code (``sys.exit(3)``), a crash (SIGSEGV, SIGABRT) or SIGKILL (most often
    memory) ended it otherwise, whatever it logged before."""
    if result.signal is None:
        return result.exit_code == 1
    return result.signal in _SENT_TO_END


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
    lines = [line for line in _as_shown(result.stderr_tail) if line.strip()][-_TAIL_IN_REASON:]
    return "Last lines of its stderr:\n" + "\n".join(lines) if lines else "It wrote nothing to stderr."


def script_failure(name: str, result: ProcessResult) -> str:
    cause = exception_lines(result.stderr_tail) if ended_by_exception(result) else []
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
