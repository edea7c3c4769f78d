"""Starts the job's processes and supervises them, as a container init would.

Each child runs in its own process group. Signals sent to ``train`` are forwarded to that group at
once; a child that ignores SIGTERM is killed after a grace period, so the job still ends before
the platform's SIGKILL. ``train`` may be PID 1, so it reaps every zombie, and as a child
subreaper it also ends what the user's code left running when its main process exits.
"""

import collections
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence

from sagemaker_mxnet_container.errors import StartError, Stopped

logger = logging.getLogger(__name__)

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_CHILD_SUBREAPER = 36
_LEFTOVER_GRACE_SECONDS = 3.0
_TAIL_LINES = 100
_TAIL_LINE_BYTES = 2000


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int
    """The child's exit status, or 128 + N where signal N killed it."""
    signal: Optional[int]
    stderr_tail: List[str]
    stopped_by_kill: bool = False
    """The supervisor sent SIGKILL because the child outlived the stop grace period."""


def exit_code_of(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class _StderrTee:
    """Copies a child's stderr to ours as it comes and keeps the last lines for the failure file.

    Reading never stops while the child runs, so a child that floods stderr neither blocks on a
    full pipe nor grows this process's memory.
    """

    def __init__(self, fd: int):
        self._fd = fd
        self._lines = collections.deque(maxlen=_TAIL_LINES)
        self._partial = b""
        self._thread = threading.Thread(target=self._pump, name="stderr-tee", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            _write_all(2, chunk)
            self._keep(chunk)
        os.close(self._fd)

    def _keep(self, chunk: bytes) -> None:
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()[:_TAIL_LINE_BYTES]
        self._lines.extend(line[:_TAIL_LINE_BYTES] for line in lines)

    def tail(self, timeout: float) -> List[str]:
        self._thread.join(timeout)
        lines = list(self._lines) + ([self._partial] if self._partial else [])
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines]


class Supervisor:
    """Runs the job's children one stage at a time and owns the process's signal handling."""

    def __init__(self, stop_grace_seconds: float = 100.0):
        self.stop_grace_seconds = stop_grace_seconds
        self.stop_signal: Optional[int] = None
        self._child: Optional[subprocess.Popen] = None
        self._in_run = False
        self._pending: List[int] = []
        self._kill_armed = False
        self._killed = False
        self._closed = False

    def install(self) -> None:
        for signum in FORWARDED_SIGNALS:
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGALRM, self._on_alarm)
        if os.getpid() != 1:
            _become_subreaper()

    def _on_signal(self, signum: int, _frame) -> None:
        if signum in STOP_SIGNALS and self.stop_signal is None:
            self.stop_signal = signum
        if self._child is not None:
            self._forward(signum)
        elif self._in_run:
            # Inside run() but with no child to forward to: it is starting, or it has ended and its
            # leftovers are being ended. Raising here would orphan the one or abandon the other;
            # the stop is noted, and the caller (or the next run()) acts on it.
            self._pending.append(signum)
        elif signum in STOP_SIGNALS and not self._closed:
            raise Stopped(_stopped_message(signum, "before the user's code started"), signum)

    def close(self) -> None:
        """After the last stage: stop signals are only noted, never raised."""
        self._closed = True

    def _forward(self, signum: int) -> None:
        try:
            os.killpg(self._child.pid, signum)
        except (ProcessLookupError, PermissionError):
            return
        if signum in STOP_SIGNALS and not self._kill_armed:
            self._kill_armed = True
            if self.stop_grace_seconds > 0:
                signal.setitimer(signal.ITIMER_REAL, self.stop_grace_seconds)
            else:
                # No grace: setitimer(0) would disarm the timer and never kill a child that
                # ignores the signal.
                self._kill_group()

    def _on_alarm(self, _signum: int, _frame) -> None:
        if self._child is not None:
            logger.warning(
                "The process did not exit within %.0f s of %s; killing it",
                self.stop_grace_seconds,
                signal.Signals(self.stop_signal or signal.SIGTERM).name,
            )
            self._kill_group()

    def _kill_group(self) -> None:
        self._killed = True
        try:
            os.killpg(self._child.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def run(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Optional[str] = None) -> ProcessResult:
        """Runs one child to completion, then ends anything it left behind."""
        if self.stop_signal is not None:
            raise Stopped(_stopped_message(self.stop_signal, "before the next step started"), self.stop_signal)
        self._in_run = True
        self._killed = False
        self._pending.clear()
        try:
            try:
                child = subprocess.Popen(
                    list(argv),
                    env=dict(env),
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
            except OSError as error:
                raise StartError(
                    f"cannot start {argv[0]}: {error.strerror or error} (check that it exists, is executable, "
                    "and that its #! line names an interpreter present in the image)"
                ) from None
            # The pipe's reader is ours from here on; Popen must not close it.
            tee = _StderrTee(os.dup(child.stderr.fileno()))
            child.stderr.close()
            child.stderr = None
            self._child = child
            for signum in self._pending:
                self._forward(signum)
            self._pending.clear()
            try:
                status = self._wait_for(child.pid)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                self._kill_armed = False
                self._child = None
            child.returncode = os.waitstatus_to_exitcode(status)
            _end_leftovers(child.pid)
        finally:
            self._in_run = False
            self._pending.clear()
        killed_by = -child.returncode if child.returncode < 0 else None
        return ProcessResult(
            exit_code_of(status), killed_by, tee.tail(timeout=5.0), self._killed and killed_by == signal.SIGKILL
        )

    @staticmethod
    def _wait_for(pid: int) -> int:
        """Reaps children until ``pid`` exits: orphans re-parented to us become zombies otherwise."""
        while True:
            reaped, status = os.waitpid(-1, 0)
            if reaped == pid:
                return status


def _write_all(fd: int, data: bytes) -> None:
    """A write to a pipe that a signal interrupts returns early; the rest must not be lost."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except OSError:
            return
        view = view[written:]


def _stopped_message(signum: int, when: str) -> str:
    return f"Training job stopped: {signal.Signals(signum).name} received {when}."


def _become_subreaper() -> None:
    """Orphaned descendants are re-parented to us, not to PID 1, so none escapes the cleanup."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        logger.debug("Could not become a child subreaper; leftover processes are ended by group only")


def _reap_all() -> bool:
    """Reaps exited children; True while some child is still running."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def _signal_leftovers(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass
    if not _reap_all():
        return
    # Descendants that left the group (setsid, daemons) are still our children as subreaper.
    import psutil

    for process in psutil.Process().children(recursive=True):
        try:
            process.send_signal(signum)
        except psutil.Error:
            pass


def _end_leftovers(pgid: int) -> None:
    """Ends what the main process left running: SIGTERM, a short grace, then SIGKILL."""
    if not _group_alive(pgid) and not _reap_all():
        return
    logger.info("Ending processes the user's code left running")
    for signum, grace in ((signal.SIGTERM, _LEFTOVER_GRACE_SECONDS), (signal.SIGKILL, _LEFTOVER_GRACE_SECONDS)):
        _signal_leftovers(pgid, signum)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _reap_all() and not _group_alive(pgid):
                return
            time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
