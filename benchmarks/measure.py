"""Runs one process the way the platform runs ``train`` and measures it from just before the spawn."""

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import psutil

from benchmarks import jobs

SAMPLE_SECONDS = 0.01


@dataclass
class Run:
    returncode: int
    spawn: float
    exit: float
    first_line: Optional[float] = None
    last_line: Optional[float] = None
    output: str = ""
    tree_pss: Optional[int] = None
    """Peak PSS (bytes) of the toolkit's processes, the user's excluded, while the user's code ran."""
    toolkit_pss: Optional[int] = None
    """Peak PSS (bytes) of the toolkit's own process while the user's code ran."""
    user_pss: Optional[int] = None
    samples: int = 0
    lines: List[str] = field(default_factory=list)

    @property
    def whole(self) -> float:
        return self.exit - self.spawn

    @property
    def to_first_line(self) -> Optional[float]:
        return None if self.first_line is None else self.first_line - self.spawn

    @property
    def after_last_line(self) -> Optional[float]:
        return None if self.last_line is None else self.exit - self.last_line


def _pss(process: psutil.Process) -> int:
    try:
        return process.memory_full_info().pss
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return 0


def _is_user(process: psutil.Process, user_marker: str) -> bool:
    try:
        return any(user_marker in part for part in process.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False


class _Sampler:
    """Peak PSS of the toolkit's tree, split from the user's processes, while those run."""

    def __init__(self, pid: int, user_marker: str):
        self.root = psutil.Process(pid)  # before the child is reaped: its pid is still ours
        self.user_marker = user_marker
        self.tree = self.toolkit = self.user = 0
        self.samples = 0

    def sample(self) -> None:
        try:
            descendants = self.root.children(recursive=True)
        except psutil.NoSuchProcess:
            return
        users = [p for p in descendants if _is_user(p, self.user_marker)]
        if not users:
            return
        user_pids = set()
        for user in users:
            user_pids.add(user.pid)
            try:
                user_pids.update(child.pid for child in user.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        toolkit = _pss(self.root)
        tree = toolkit + sum(_pss(p) for p in descendants if p.pid not in user_pids)
        user = sum(_pss(p) for p in descendants if p.pid in user_pids)
        if toolkit == 0 or user == 0:
            return  # one of them ended mid-sample
        self.samples += 1
        self.tree = max(self.tree, tree)
        self.toolkit = max(self.toolkit, toolkit)
        self.user = max(self.user, user)


def run(
    argv: Sequence[str],
    *,
    env: dict,
    cwd: str,
    marker: Optional[str] = None,
    sample_memory: bool = False,
    timeout: float = 600,
    preexec=None,
) -> Run:
    """Runs ``argv`` to its end; ``marker`` is the user script's timestamp file, if it has one."""
    if marker is not None:
        env = {**env, jobs.MARKER_VARIABLE: marker}
        if os.path.exists(marker):
            os.unlink(marker)
    with open(os.path.join(cwd, "benchmark-output.log"), "w+b") as log:
        spawn = time.time()
        process = subprocess.Popen(
            list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=preexec
        )
        if sample_memory:
            exit_time, returncode, sampler = _wait_sampling(process, jobs.PROGRAM, timeout)
        else:
            # wait() with a timeout polls with sleeps of up to 50 ms; a blocking waitpid times the
            # exit exactly, and a timer kills a run that hangs.
            fired = threading.Event()

            def kill():
                fired.set()
                process.kill()

            watchdog = threading.Timer(timeout, kill)
            watchdog.start()
            try:
                returncode = process.wait()
            finally:
                exit_time = time.time()
                watchdog.cancel()
            if fired.is_set():
                raise subprocess.TimeoutExpired(process.args, timeout)
            sampler = None
        log.seek(0)
        output = log.read().decode("utf-8", "replace")
    result = Run(returncode, spawn, exit_time, output=output)
    if marker is not None:
        times = jobs.read_marker(marker)
        if times is not None:
            result.first_line, result.last_line, _ = times
    if sampler is not None:
        result.tree_pss, result.toolkit_pss, result.user_pss = sampler.tree, sampler.toolkit, sampler.user
        result.samples = sampler.samples
    return result


def _wait_sampling(process: subprocess.Popen, user_marker: str, timeout: float):
    """Samples in this thread while another waits, so that the exit is timed to the waitpid."""
    done = threading.Event()
    ended = {}

    def wait():
        ended["code"] = process.wait()
        ended["time"] = time.time()
        done.set()

    previous = sys.getswitchinterval()
    # The waiter must get the interpreter at once when waitpid returns, not after 5 ms.
    sys.setswitchinterval(0.0005)
    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    sampler = _Sampler(process.pid, user_marker)
    deadline = time.monotonic() + timeout
    try:
        while not done.wait(SAMPLE_SECONDS):
            sampler.sample()
            if time.monotonic() > deadline:
                process.kill()
                done.wait()
                raise subprocess.TimeoutExpired(process.args, timeout)
    finally:
        sys.setswitchinterval(previous)
    return ended["time"], ended["code"], sampler
