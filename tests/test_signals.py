"""Signals sent to ``train`` while the user's code runs (StopTrainingJob sends SIGTERM, then SIGKILL
some time later): they reach the user's program, a program that ignores them is killed after the
grace period, and the job ends as stopped, never as a success."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from conftest import train_command, train_environ

from sagemaker_mxnet_container.errors import Stopped
from sagemaker_mxnet_container.runner import Supervisor

# Generous: these only prove that nothing hangs.
DEADLINE = 20.0


class RunningTrain:
    """The real ``train``, started in the background with its output in files."""

    def __init__(self, job, tmp_path):
        self.job = job
        self._stderr_path = tmp_path / "train.stderr"
        with open(tmp_path / "train.stdout", "wb") as stdout, open(self._stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                train_command(), env=train_environ(job), cwd=tmp_path, stdout=stdout, stderr=stderr
            )

    @property
    def stderr(self) -> str:
        return self._stderr_path.read_text(errors="replace")

    def wait_for_file(self, path, timeout: float = DEADLINE) -> str:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.process.poll() is not None:
                pytest.fail(f"train exited with {self.process.returncode} before {path.name} appeared:\n{self.stderr}")
            if time.monotonic() > deadline:
                pytest.fail(f"{path.name} did not appear within {timeout} s:\n{self.stderr}")
            time.sleep(0.02)
        return path.read_text()

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = DEADLINE) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"train did not exit within {timeout} s:\n{self.stderr}")


@pytest.fixture
def start_train(code_job, tmp_path):
    """Starts ``train`` on a ``train.py`` written from source (see code_job). Whatever is left
    running at the end is killed."""
    started = []

    def start(source: str, hyperparameters=None, requirements=None) -> RunningTrain:
        running = RunningTrain(code_job(source, hyperparameters, requirements), tmp_path)
        started.append(running)
        return running

    start.markers = code_job.markers
    yield start
    for running in started:
        if running.process.poll() is None:
            # The user's program runs in a session of its own: killing train alone would leave it.
            for process in psutil.Process(running.process.pid).children(recursive=True):
                process.kill()
            running.process.kill()
            running.process.wait()


def pids_alive(pids):
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.fixture
def kill_afterwards():
    """Pids a test expects to be gone; any that are not are killed so no test leaks processes."""
    pids = []
    yield pids
    for pid in pids_alive(pids):
        os.kill(pid, signal.SIGKILL)


HANDLES_SIGTERM = """
import os, signal, sys, time

def on_term(signum, frame):
    with open(os.path.join(MARKERS, "received"), "w") as stream:
        stream.write(signal.Signals(signum).name)
    sys.exit(EXIT_CODE)

signal.signal(signal.SIGTERM, on_term)
open(os.path.join(MARKERS, "ready"), "w").close()
time.sleep(1000)
"""


@pytest.mark.parametrize("program_exit_code", [0, 1])
def test_sigterm_reaches_the_program_and_the_job_ends_stopped(start_train, program_exit_code):
    train = start_train(f"EXIT_CODE = {program_exit_code}\n" + HANDLES_SIGTERM)
    train.wait_for_file(start_train.markers / "ready")
    train.send(signal.SIGTERM)
    assert train.wait() == 143
    assert (start_train.markers / "received").read_text() == "SIGTERM"
    assert train.job.failure.startswith("Training job stopped: SIGTERM received while the user's code ran")
    assert f"train.py exited with code {program_exit_code}" in train.job.failure
    assert not train.job.succeeded


def test_a_program_with_default_sigterm_handling_is_reported_killed_by_it(start_train):
    train = start_train(
        """
        import os, time
        open(os.path.join(MARKERS, "ready"), "w").close()
        time.sleep(1000)
        """
    )
    train.wait_for_file(start_train.markers / "ready")
    train.send(signal.SIGTERM)
    assert train.wait() == 143
    assert "train.py was killed by SIGTERM (exit code 143)" in train.job.failure
    assert not train.job.succeeded


IGNORES_SIGTERM = """
import os, signal, time

def on_term(signum, frame):
    open(os.path.join(MARKERS, "received"), "w").close()

signal.signal(signal.SIGTERM, on_term)
open(os.path.join(MARKERS, "ready"), "w").close()
while True:
    time.sleep(1)
"""


def test_a_program_ignoring_sigterm_is_killed_after_the_grace_period(start_train):
    train = start_train(IGNORES_SIGTERM, {"sagemaker_stop_grace_seconds": 2})
    train.wait_for_file(start_train.markers / "ready")
    sent = time.monotonic()
    train.send(signal.SIGTERM)
    assert train.wait(timeout=10) == 143
    elapsed = time.monotonic() - sent
    # The SIGKILL cannot come before the grace period has passed.
    assert elapsed >= 1.9
    assert (start_train.markers / "received").exists()
    assert "train.py was killed by SIGKILL" in train.job.failure
    assert "stop grace period" in train.job.failure
    assert "out of memory" not in train.job.failure


def test_a_grace_period_of_0_kills_at_once(start_train):
    train = start_train(IGNORES_SIGTERM, {"sagemaker_stop_grace_seconds": 0})
    train.wait_for_file(start_train.markers / "ready")
    train.send(signal.SIGTERM)
    assert train.wait(timeout=10) == 143
    assert "train.py was killed by SIGKILL" in train.job.failure


def test_sigint_reaches_the_program_and_the_job_ends_stopped(start_train):
    train = start_train(
        """
        import os, time
        open(os.path.join(MARKERS, "ready"), "w").close()
        try:
            time.sleep(1000)
        except KeyboardInterrupt:
            open(os.path.join(MARKERS, "received"), "w").close()
            raise
        """
    )
    train.wait_for_file(start_train.markers / "ready")
    train.send(signal.SIGINT)
    assert train.wait() == 130
    assert (start_train.markers / "received").exists()
    assert train.job.failure.startswith("Training job stopped: SIGINT received while the user's code ran")
    assert not train.job.succeeded


def test_other_signals_are_forwarded_without_stopping_the_job(start_train):
    train = start_train(
        """
        import os, signal, time
        received = []
        signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))
        open(os.path.join(MARKERS, "ready"), "w").close()
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert received, "SIGUSR1 never arrived"
        """
    )
    train.wait_for_file(start_train.markers / "ready")
    train.send(signal.SIGUSR1)
    assert train.wait() == 0, train.stderr
    assert train.job.succeeded


def test_sigterm_while_leftovers_are_ended_still_ends_them(start_train, kill_afterwards):
    # The program exits at once, leaving a process that ignores SIGTERM; while train waits out
    # that process's grace, the job is stopped. The cleanup must go on to SIGKILL it.
    train = start_train(
        f"""
        import os, subprocess, sys, time
        source = "MARKERS = " + repr(MARKERS) + "\\n" + {IGNORES_SIGTERM!r}
        leftover = subprocess.Popen([sys.executable, "-c", source])
        while not os.path.exists(os.path.join(MARKERS, "ready")):
            time.sleep(0.02)
        with open(os.path.join(MARKERS, "pid.tmp"), "w") as stream:
            stream.write(str(leftover.pid))
        os.replace(os.path.join(MARKERS, "pid.tmp"), os.path.join(MARKERS, "pid"))
        """
    )
    train.wait_for_file(start_train.markers / "received")
    leftover_pid = int(train.wait_for_file(start_train.markers / "pid"))
    kill_afterwards.append(leftover_pid)
    train.send(signal.SIGTERM)
    assert train.wait() == 143
    assert pids_alive([leftover_pid]) == []
    assert train.job.failure.startswith("Training job stopped: SIGTERM received while the user's code ran")
    assert "train.py exited with code 0" in train.job.failure


# The supervisor on its own: a stop before any child starts.


def test_run_raises_stopped_and_starts_nothing_once_a_stop_signal_was_received(tmp_path):
    supervisor = Supervisor()
    supervisor.stop_signal = signal.SIGTERM
    marker = tmp_path / "started"
    with pytest.raises(Stopped) as raised:
        supervisor.run([sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"], env=os.environ)
    assert raised.value.exit_code == 143
    assert "SIGTERM received before the next step started" in str(raised.value)
    assert not marker.exists()


SUPERVISOR_SCRIPT = """
import json, os, signal, sys
from sagemaker_mxnet_container.errors import Stopped
from sagemaker_mxnet_container.runner import Supervisor

supervisor = Supervisor()
supervisor.install()
report = {}
try:
    os.kill(os.getpid(), signal.SIGTERM)
    report["raised"] = None
except Stopped as error:
    report["raised"] = [str(error), error.exit_code]
closed = Supervisor()
closed.install()
closed.close()
os.kill(os.getpid(), signal.SIGTERM)
report["noted_after_close"] = closed.stop_signal
print(json.dumps(report))
"""


def test_a_stop_signal_before_any_child_raises_stopped_and_after_close_is_only_noted():
    run = subprocess.run([sys.executable, "-c", SUPERVISOR_SCRIPT], capture_output=True, text=True, timeout=DEADLINE)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["raised"] == ["Training job stopped: SIGTERM received before the user's code started.", 143]
    assert report["noted_after_close"] == signal.SIGTERM


def test_sigterm_during_the_requirements_install_ends_the_job_as_stopped(start_train, tmp_path):
    # pip blocks reading a FIFO named by requirements.txt: a stand-in for a slow install that
    # needs no network. The stop must end pip and the job, never run the program.
    fifo = tmp_path / "more-requirements.txt"
    os.mkfifo(fifo)
    running = start_train(
        """
        open(os.path.join(MARKERS, "program-ran"), "w").close()
        """,
        requirements=f"-r {fifo}\n",
    )
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            # Opening the write end succeeds only once pip has opened the FIFO for reading.
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            break
        except OSError:
            assert running.process.poll() is None, running.stderr
            assert time.monotonic() < deadline, "pip never opened the requirements FIFO"
            time.sleep(0.05)

    running.send(signal.SIGTERM)

    assert running.wait() == 143
    assert running.job.failure.startswith("Training job stopped: SIGTERM received.")
    assert "requirements.txt" in running.job.failure
    assert not running.job.succeeded
    assert not (start_train.markers / "program-ran").exists()
