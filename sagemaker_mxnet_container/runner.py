"""Starts the job's processes and supervises them, as a container init would.

Each child runs in its own process group. Signals sent to ``train`` are forwarded to those groups
at once; a child that ignores SIGTERM is killed after a grace period, so the job still ends before
the platform's SIGKILL. ``train`` may be PID 1, so it reaps every zombie, and as a child
subreaper it also ends what the user's code left running when its main process exits: all of it,
within a bound, however fast it forks (``leftovers``: each child that runs the submitter's code
in a cgroup of its own where one can be made, else stopped and killed by walking the process
tree).

Foreground children (the user's processes, pip, the download) are waited for; background
children (the parameter server's processes) run beside them until the job ends them. Another
thread may ``abort`` the foreground children, for instance when another host of the job is lost.
"""

import collections
import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Protocol, Sequence

from sagemaker_mxnet_container import leftovers
from sagemaker_mxnet_container.errors import Aborted, StartError, Stopped

logger = logging.getLogger(__name__)

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_CHILD_SUBREAPER = 36
_LEFTOVER_GRACE_SECONDS = 3.0
# An abort ends processes that did nothing wrong; they get less time than a platform stop.
ABORT_GRACE_SECONDS = 10.0
TAIL_LINES = 100
_TAIL_LINE_BYTES = 2000


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int
    """The child's exit status, or 128 + N where signal N killed it."""
    signal: Optional[int]
    stderr_tail: List[str]
    stopped_by_kill: bool = False
    """The supervisor sent SIGKILL because the child outlived the stop grace period."""
    ended_at: float = 0.0
    """``time.monotonic()`` when the child was reaped, to tell which of several failed first."""


class ObserverStream(Protocol):
    def feed(self, chunk: bytes) -> None: ...

    def close(self) -> None: ...


class Observer(Protocol):
    """Sees what a child writes to stdout and stderr (``metrics.Collector`` is one)."""

    def stream(self) -> ObserverStream: ...


@dataclass(frozen=True)
class Command:
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Optional[str] = None
    name: str = ""
    observer: Optional[Observer] = None
    """Given one, the child's stdout is copied through ``train`` too, and both streams are shown to it."""
    confined: bool = True
    """The child runs code the job's submitter controls (theirs, pip building their packages), and
    so gets a cgroup of its own where one can be made. The toolkit's own short children (the
    download, the drawing) fork nothing and are spared the moves a cgroup costs."""


def exit_code_of(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class _Tee:
    """Copies one of a child's output streams to ours as it comes.

    Reading never stops while the child runs, so a child that floods its output neither blocks on
    a full pipe nor grows this process's memory. For stderr it keeps the last lines, for the
    failure file; an observer's stream (the job's metrics) sees every chunk as it passes.
    """

    def __init__(self, fd: int, target: int, keep_tail: bool, observer: Optional["ObserverStream"] = None):
        self._fd = fd
        self._target = target
        self._keep_tail = keep_tail
        self._observer = observer
        self._lines = collections.deque(maxlen=TAIL_LINES)
        self._partial = b""
        self._thread = threading.Thread(target=self._pump, name=f"tee-{target}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            _write_all(self._target, chunk)
            if self._keep_tail:
                self._keep(chunk)
            if self._observer is not None:
                self._observer.feed(chunk)
        os.close(self._fd)
        if self._observer is not None:
            self._observer.close()

    def _keep(self, chunk: bytes) -> None:
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()[:_TAIL_LINE_BYTES]
        self._lines.extend(line[:_TAIL_LINE_BYTES] for line in lines)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def tail(self, timeout: float) -> List[str]:
        self.join(timeout)
        lines = list(self._lines) + ([self._partial] if self._partial else [])
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines]


class _Child:
    def __init__(
        self,
        command: Command,
        popen: subprocess.Popen,
        tee: _Tee,
        stdout_tee: Optional[_Tee],
        background: bool,
        cgroup: Optional[leftovers.Cgroup],
    ):
        self.name = command.name or os.path.basename(command.argv[0])
        self.pid = popen.pid
        self.popen = popen
        self.tee = tee
        self.stdout_tee = stdout_tee
        self.background = background
        self.cgroup = cgroup
        self.status: Optional[int] = None
        self.ended_at = 0.0
        self.killed = False

    def result(self) -> ProcessResult:
        killed_by = -os.waitstatus_to_exitcode(self.status) if os.WIFSIGNALED(self.status) else None
        if self.stdout_tee is not None:
            # Its observer must have seen the last lines before the caller reads what it found.
            self.stdout_tee.join(timeout=5.0)
        return ProcessResult(
            exit_code_of(self.status),
            killed_by,
            self.tee.tail(timeout=5.0),
            self.killed and killed_by == signal.SIGKILL,
            self.ended_at,
        )


class Supervisor:
    """Runs the job's children and owns the process's signal handling."""

    def __init__(self, stop_grace_seconds: float = 100.0):
        self.stop_grace_seconds = stop_grace_seconds
        self.stop_signal: Optional[int] = None
        self.abort_reason: Optional[str] = None
        self.on_background_exit: Optional[Callable[[str, ProcessResult], None]] = None
        self._lock = threading.RLock()
        self._live: Dict[int, _Child] = {}
        self._in_run = False
        self._pending: List[int] = []
        self._kill_armed = False
        self._abort_timer: Optional[threading.Timer] = None
        self._closed = False
        self._cgroups: Optional[leftovers.Cgroups] = None
        self._cgroups_refused = False
        # A cgroup this process moved into ahead of the child that will need it (see _start).
        self._prepared: Optional[leftovers.Cgroup] = None
        self._confined_started = False

    def install(self) -> None:
        for signum in FORWARDED_SIGNALS:
            signal.signal(signum, self._on_signal)
        signal.signal(signal.SIGALRM, self._on_alarm)
        if os.getpid() != 1:
            _become_subreaper()

    def _on_signal(self, signum: int, _frame) -> None:
        if signum in STOP_SIGNALS and self.stop_signal is None:
            self.stop_signal = signum
        if self._foreground():
            self._forward(signum)
        elif self._in_run:
            # Inside a run but with no child to forward to: it is starting, or it has ended and
            # its leftovers are being ended. Raising here would orphan the one or abandon the
            # other; the stop is noted, and the caller (or the next run) acts on it.
            self._pending.append(signum)
        elif signum in STOP_SIGNALS and not self._closed:
            self._signal_background(signum)
            raise Stopped(_stopped_message(signum, "before the user's code started"), signum)

    def close(self) -> None:
        """After the last stage: stop signals are only noted, never raised."""
        self._closed = True

    def confine(self) -> None:
        """Starts each confined child from now on in a cgroup of its own, where one can be made."""
        if self._cgroups is None:
            self._cgroups = leftovers.Cgroups.make()
            if self._cgroups is not None:
                logger.debug("Each confined child of the job runs in a cgroup of its own under %s", self._cgroups.path)

    def end_all(self) -> None:
        """At the very end: nothing ``train`` started, or that descends from it, outlives it."""
        deadline = time.monotonic() + leftovers.KILL_SECONDS
        for child in list(self._live.values()):
            if child.cgroup is not None:
                child.cgroup.kill(self.poll, deadline)
        leftovers.stop_and_kill((), self.poll, deadline)
        if self._prepared is not None and self._prepared.leave():
            self._prepared.remove()
        if self._cgroups is not None:
            self._cgroups.close()

    def _foreground(self) -> List[_Child]:
        with self._lock:
            return [child for child in self._live.values() if not child.background]

    def _background(self) -> List[_Child]:
        with self._lock:
            return [child for child in self._live.values() if child.background]

    def _forward(self, signum: int) -> None:
        for child in self._foreground():
            _signal_group(child.pid, signum)
        if signum in STOP_SIGNALS:
            # The parameter server's processes are no use once the user's processes stop.
            self._signal_background(signum)
            if not self._kill_armed:
                self._kill_armed = True
                if self.stop_grace_seconds > 0:
                    signal.setitimer(signal.ITIMER_REAL, self.stop_grace_seconds)
                else:
                    # No grace: setitimer(0) would disarm the timer and never kill a child that
                    # ignores the signal.
                    self._kill_foreground()

    def _signal_background(self, signum: int) -> None:
        for child in self._background():
            _signal_group(child.pid, signum)

    def _on_alarm(self, _signum: int, _frame) -> None:
        if self._foreground():
            logger.warning(
                "The process did not exit within %.0f s of %s; killing it",
                self.stop_grace_seconds,
                signal.Signals(self.stop_signal or signal.SIGTERM).name,
            )
            self._kill_foreground()

    def _kill_foreground(self) -> None:
        for child in self._foreground():
            child.killed = True
            _signal_group(child.pid, signal.SIGKILL)

    def abort(self, reason: str) -> None:
        """Ends the foreground children because of ``reason``; safe to call from any thread.

        The first reason is kept, and makes the next ``run_all`` or ``start_background`` raise
        ``Aborted``.
        """
        with self._lock:
            if self.abort_reason is None:
                self.abort_reason = reason
        self._end_foreground()

    def _end_foreground(self) -> None:
        """SIGTERM to the foreground children, SIGKILL after ABORT_GRACE_SECONDS."""
        with self._lock:
            targets = self._foreground()
            if targets and self._abort_timer is None:
                self._abort_timer = threading.Timer(ABORT_GRACE_SECONDS, self._kill_foreground)
                self._abort_timer.daemon = True
                self._abort_timer.start()
        for child in targets:
            _signal_group(child.pid, signal.SIGTERM)

    def _check_can_start(self) -> None:
        if self.stop_signal is not None:
            raise Stopped(_stopped_message(self.stop_signal, "before the next step started"), self.stop_signal)
        if self.abort_reason is not None:
            raise Aborted(self.abort_reason)

    def _cgroups_usable(self) -> bool:
        return self._cgroups is not None and not self._cgroups_refused

    def _move_into_new_cgroup(self) -> Optional[leftovers.Cgroup]:
        """A new child cgroup with this process in it; None where there is none. The first move
        refused ends the use of cgroups for the job."""
        cgroup = self._cgroups.new()
        if cgroup is None:
            return None
        try:
            cgroup.enter()
        except OSError as error:
            logger.debug("Cannot move processes between cgroups (%s); leftovers are found by walking the tree", error)
            cgroup.remove()
            self._cgroups_refused = True
            return None
        return cgroup

    def _enter_cgroup(self, command: Command) -> Optional[leftovers.Cgroup]:
        """The cgroup for the child about to start, with this process in it; None where the child
        gets none."""
        if not command.confined or not self._cgroups_usable():
            return None
        self._confined_started = True
        if self._prepared is not None:
            cgroup, self._prepared = self._prepared, None
            return cgroup
        return self._move_into_new_cgroup()

    def _prepare_cgroup(self) -> None:
        """Moves this process into the cgroup of the next child that needs one, now.

        A move costs milliseconds (the kernel waits for every CPU to pass a grace period). Made
        while a child of the toolkit's own runs before the user's code (the download), it is off
        the user's code's way: that child goes on meanwhile, and this process only waits for it.
        """
        if self._prepared is None and not self._confined_started and self._cgroups_usable():
            self._prepared = self._move_into_new_cgroup()

    def _start(self, command: Command, background: bool) -> _Child:
        cgroup = self._enter_cgroup(command)
        try:
            popen = subprocess.Popen(
                list(command.argv),
                env=dict(command.env),
                cwd=command.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if command.observer is not None else None,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as error:
            if cgroup is not None and cgroup.leave():
                cgroup.remove()
            raise StartError(
                f"cannot start {command.argv[0]}: {error.strerror or error} (check that it exists, is executable, "
                "and that its #! line names an interpreter present in the image)"
            ) from None
        if cgroup is not None and not cgroup.leave():
            # Every later child would leave train in its cgroup too.
            self._cgroups_refused = True
        if not command.confined:
            self._prepare_cgroup()
        # The pipes' readers are ours from here on; Popen must not close them.
        observer = command.observer
        tee = _Tee(os.dup(popen.stderr.fileno()), 2, True, observer.stream() if observer else None)
        popen.stderr.close()
        popen.stderr = None
        stdout_tee = None
        if observer is not None:
            stdout_tee = _Tee(os.dup(popen.stdout.fileno()), 1, False, observer.stream())
            popen.stdout.close()
            popen.stdout = None
        child = _Child(command, popen, tee, stdout_tee, background, cgroup)
        with self._lock:
            self._live[child.pid] = child
        return child

    def start_background(self, command: Command) -> None:
        """Starts a child that runs beside the foreground ones until ``end_background``.

        When it exits, ``on_background_exit`` is called with its name and result, from whichever
        of ``run_all``, ``poll`` or ``end_background`` reaped it.
        """
        self._check_can_start()
        self._start(command, background=True)

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Optional[str] = None,
        observer: Optional[Observer] = None,
        confined: bool = True,
    ) -> ProcessResult:
        """Runs one child to completion, then ends anything it left behind."""
        return self.run_all([Command(argv, env, cwd, observer=observer, confined=confined)])[0]

    def run_all(self, commands: Sequence[Command]) -> List[ProcessResult]:
        """Runs the commands side by side until all have exited, then ends what they left behind.

        The first to fail (exit non-zero) ends the others: one failed rank must not leave the
        rest blocked, waiting for it forever.
        """
        self._check_can_start()
        self._in_run = True
        self._pending.clear()
        children: List[_Child] = []
        try:
            try:
                for command in commands:
                    children.append(self._start(command, background=False))
            except StartError:
                self._terminate(children)
                self._wait_until_ended(children)
                raise
            for signum in self._pending:
                self._forward(signum)
            self._pending.clear()
            if self.abort_reason is not None:
                self._end_foreground()
            try:
                self._wait_until_ended(children, fail_fast=len(children) > 1)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                with self._lock:
                    self._kill_armed = False
                    if self._abort_timer is not None:
                        self._abort_timer.cancel()
                        self._abort_timer = None
            self._end_leftovers(children)
        finally:
            self._in_run = False
            self._pending.clear()
        return [child.result() for child in children]

    def _terminate(self, children: Sequence[_Child]) -> None:
        for child in children:
            if child.status is None:
                _signal_group(child.pid, signal.SIGTERM)

    def _wait_until_ended(self, children: Sequence[_Child], fail_fast: bool = False) -> None:
        """Reaps every child (orphans re-parented to us would stay zombies) until ``children`` end."""
        failed = False
        while any(child.status is None for child in children):
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return
            child = self._reaped(pid, status)
            if fail_fast and not failed and child in children and os.waitstatus_to_exitcode(status) != 0:
                failed = True
                logger.error("%s (pid %d) failed; ending the other processes", child.name, child.pid)
                self._end_foreground()

    def _reaped(self, pid: int, status: int) -> Optional[_Child]:
        with self._lock:
            child = self._live.pop(pid, None)
        if child is None:
            return None
        child.status = status
        child.ended_at = time.monotonic()
        if child.background and self.on_background_exit is not None:
            self.on_background_exit(child.name, child.result())
        return child

    def poll(self) -> bool:
        """Reaps children that have exited; True while some child of ours is still running."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            self._reaped(pid, status)

    def end_background(self, wait_seconds: float = 0.0) -> None:
        """Gives the background children ``wait_seconds`` to exit by themselves, then ends them."""
        deadline = time.monotonic() + wait_seconds
        while self._background() and time.monotonic() < deadline:
            self.poll()
            time.sleep(0.05)
        for signum in (signal.SIGTERM, signal.SIGKILL):
            if not self._background():
                return
            self._signal_background(signum)
            deadline = time.monotonic() + _LEFTOVER_GRACE_SECONDS
            while self._background() and time.monotonic() < deadline:
                self.poll()
                time.sleep(0.05)

    def _end_leftovers(self, children: Sequence[_Child]) -> None:
        """Ends what the foreground children left running: SIGTERM, a short grace, then all of it
        killed (their cgroups, then whatever the walk of the process tree still finds)."""
        try:
            if not self._has_leftovers(children):
                return
            logger.info("Ending processes the user's code left running")
            self._signal_leftovers(children, signal.SIGTERM)
            deadline = time.monotonic() + _LEFTOVER_GRACE_SECONDS
            while time.monotonic() < deadline:
                if not self._has_leftovers(children):
                    return
                time.sleep(0.05)
            deadline = time.monotonic() + leftovers.KILL_SECONDS
            for child in children:
                if child.cgroup is not None:
                    child.cgroup.kill(self.poll, deadline)
                _signal_group(child.pid, signal.SIGKILL)
            if not leftovers.stop_and_kill(self._background_pids(), self.poll, deadline):
                logger.error(
                    "Processes the user's code left running were still there %.0f s after being killed: %s",
                    leftovers.KILL_SECONDS,
                    ", ".join(map(str, self._strays())),
                )
        finally:
            for child in children:
                if child.cgroup is not None:
                    child.cgroup.remove()

    def _signal_leftovers(self, children: Sequence[_Child], signum: int) -> None:
        for child in children:
            if child.cgroup is not None:
                child.cgroup.signal(signum)
            _signal_group(child.pid, signum)
        for pid in self._strays():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)

    def _has_leftovers(self, children: Sequence[_Child]) -> bool:
        running = self.poll()
        if any(child.cgroup is not None and child.cgroup.pids() for child in children):
            return True
        if any(_group_alive(child.pid) for child in children):
            return True
        if not running:
            return False
        return not self._background() or bool(self._strays())

    def _strays(self) -> List[int]:
        """Our running descendants outside the background children's trees.

        Descendants that left their group (setsid, daemons) are still our children as subreaper.
        """
        if not self.poll():
            return []
        return leftovers.descendants(self._background_pids())

    def _background_pids(self) -> set:
        return {child.pid for child in self._background()}


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


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


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
