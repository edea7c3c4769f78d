"""Ending what the user's code leaves running: completely, and within a bound.

A process that forks into a new session every millisecond outruns any list of processes taken
and then signalled. Two ways keep up with it, the first where it can be had:

- **cgroup**: each child of the supervisor that runs the submitter's code starts in a cgroup (v2)
  of its own, under one made for ``train`` inside its own cgroup. Whatever the child leaves, in
  whatever session, is in that cgroup, and ``cgroup.kill`` kills all of it at once, forks in
  flight included. A container whose cgroup file system is read-only (the usual case) cannot
  have this.
- **process tree**: ``train`` is a child subreaper, so every orphaned descendant is re-parented
  to it. The leftovers are found by walking its descendants through the kernel's per-thread
  child lists (fast enough to catch a process that lives a millisecond) and stopped with SIGSTOP
  as they are found (a stopped process cannot fork), again and again until every one found is
  stopped; then all are killed, and the walk repeats until none is left or the bound has passed.

The supervisor uses both: the cgroup first where there is one, then the walk, which also finds
anything outside every cgroup.
"""

import contextlib
import logging
import os
import signal
import time
from typing import Callable, Collection, List, Optional

logger = logging.getLogger(__name__)

_CGROUP2 = "cgroup2"
# How long a kill may take to empty a cgroup, or the walk to find nothing more to stop and kill.
KILL_SECONDS = 10.0
_POLL_SECONDS = 0.01


def own_cgroup_directory() -> Optional[str]:
    """This process's cgroup v2 directory, where the unified hierarchy is mounted."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as stream:
            relative = next((line[3:].strip() for line in stream if line.startswith("0::")), None)
        with open("/proc/self/mountinfo", encoding="utf-8") as stream:
            mounts = [line.split() for line in stream]
    except OSError:
        return None
    if relative is None:
        return None
    for fields in mounts:
        # mount id, parent, device, root, mount point, options, optional fields..., "-", type, ...
        separator = fields.index("-") if "-" in fields else -1
        if separator > 0 and fields[separator + 1] == _CGROUP2 and fields[3] == "/":
            return os.path.join(fields[4], relative.lstrip("/"))
    return None


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


class Cgroup:
    """One child's cgroup."""

    def __init__(self, path: str, origin: str):
        self.path = path
        self._origin = origin
        self.holds_supervisor = False

    def enter(self) -> None:
        """Moves this process into the cgroup, so that the child it starts next is born there:
        moving the child afterwards would miss what it forked meanwhile. Raises OSError where the
        move is refused (a read-only cgroup file system, no delegation)."""
        _write(os.path.join(self.path, "cgroup.procs"), str(os.getpid()))

    def leave(self) -> bool:
        """Moves this process back; False where it cannot, and then the cgroup, which holds
        ``train`` itself, is never killed."""
        try:
            _write(os.path.join(self._origin, "cgroup.procs"), str(os.getpid()))
        except OSError as error:
            self.holds_supervisor = True
            logger.warning("Could not leave cgroup %s (%s); processes are ended one by one", self.path, error)
            return False
        return True

    def pids(self) -> List[int]:
        try:
            with open(os.path.join(self.path, "cgroup.procs"), encoding="ascii") as stream:
                return [int(line) for line in stream if line.strip()]
        except (OSError, ValueError):
            return []

    def signal(self, signum: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)

    def kill(self, reap: Callable[[], object], deadline: float) -> bool:
        """Kills everything in the cgroup; True once it is empty (by ``deadline``)."""
        if self.holds_supervisor:
            return not self.pids()
        with contextlib.suppress(OSError):
            _write(os.path.join(self.path, "cgroup.kill"), "1")
        while self.pids():
            reap()
            if time.monotonic() > deadline:
                return False
            time.sleep(_POLL_SECONDS)
        return True

    def remove(self) -> None:
        if not self.holds_supervisor:
            with contextlib.suppress(OSError):
                os.rmdir(self.path)


class Cgroups:
    """The cgroup made for ``train``'s children, inside its own; one child cgroup per child."""

    def __init__(self, path: str, origin: str):
        self.path = path
        self._origin = origin
        self._count = 0

    @classmethod
    def make(cls) -> Optional["Cgroups"]:
        """The cgroups, or None where they cannot be made (no cgroup v2, no cgroup.kill, a
        read-only cgroup file system, or this process cannot move between them)."""
        origin = own_cgroup_directory()
        if origin is None:
            logger.debug("No cgroup v2 here; leftover processes are found by walking the tree")
            return None
        path = os.path.join(origin, f"sagemaker-train-{os.getpid()}")
        try:
            os.mkdir(path)
        except OSError as error:
            logger.debug("Cannot make a cgroup in %s (%s); leftovers are found by walking the tree", origin, error)
            return None
        cgroups = cls(path, origin)
        if not os.path.exists(os.path.join(path, "cgroup.kill")):
            # Before Linux 5.14: a cgroup could not be killed as a whole.
            logger.debug("No cgroup.kill in %s; leftover processes are found by walking the tree", path)
            cgroups.close()
            return None
        # Whether this process may move between them is learnt from the first child's start: a
        # trial move here would cost two more of those moves (milliseconds each) before any child.
        return cgroups

    def new(self) -> Optional[Cgroup]:
        self._count += 1
        path = os.path.join(self.path, f"child-{self._count}")
        try:
            os.mkdir(path)
        except OSError as error:
            logger.warning("Cannot make cgroup %s (%s); this child's leftovers are found by walking the tree",
                           path, error)  # fmt: skip
            return None
        return Cgroup(path, self._origin)

    def close(self) -> None:
        """Removes the (empty) cgroups; what is still in one stays, and keeps it."""
        with contextlib.suppress(OSError):
            for name in os.listdir(self.path):
                if name.startswith("child-"):
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(self.path, name))
            os.rmdir(self.path)


def _children(pid: int) -> List[int]:
    """Direct children of ``pid``, from the kernel's per-thread lists: microseconds, where scanning
    every process takes milliseconds, longer than a process that re-forks lives."""
    children: List[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return children
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as stream:
                children.extend(int(item) for item in stream.read().split())
        except (OSError, ValueError):
            pass
    return children


def _state(pid: int) -> str:
    """The process's state letter (R, S, D, T, t, Z, X...), or "" once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def descendants(spare: Collection[int] = ()) -> List[int]:
    """This process's descendants that have not exited, parents before children, leaving out the
    processes in ``spare`` and everything below them."""
    found: List[int] = []
    pending = [os.getpid()]
    while pending:
        for child in _children(pending.pop()):
            if child in spare:
                continue
            pending.append(child)
            if _state(child) not in ("", "Z", "X"):
                found.append(child)
    return found


def stop_and_kill(spare: Collection[int], reap: Callable[[], object], deadline: float) -> bool:
    """Kills every descendant of this process but ``spare`` (and theirs), including what they fork
    meanwhile: each is stopped as soon as it is found, and the walk repeats until every process it
    finds is stopped, so that none can fork any more; then all are killed. True once none is left
    (by ``deadline``)."""
    while True:
        reap()
        found = descendants(spare)
        if not found:
            return True
        if time.monotonic() > deadline:
            return False
        running = [pid for pid in found if _state(pid) not in ("T", "t", "")]
        for pid in running or found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGSTOP if running else signal.SIGKILL)
        if not running:
            time.sleep(_POLL_SECONDS)
