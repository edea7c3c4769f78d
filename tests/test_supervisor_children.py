"""The supervisor with several children: side-by-side runs that fail fast, background children
(the parameter server's processes) that outlive the foreground ones until ended, and an abort
from another thread (the link between hosts)."""

import os
import signal
import sys
import threading
import time

import psutil
import pytest
from conftest import alive

from sagemaker_mxnet_container.errors import Aborted
from sagemaker_mxnet_container.runner import Command, Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
DEADLINE = 20.0


def python(source: str, name: str = "") -> Command:
    return Command([sys.executable, "-c", source], dict(os.environ), name=name)


@pytest.fixture
def supervisor():
    supervisor = Supervisor()
    yield supervisor
    supervisor.end_background()


def test_side_by_side_children_all_run_to_the_end(supervisor):
    results = supervisor.run_all([python("import sys; sys.exit(0)"), python("import time, sys; time.sleep(0.5)")])

    assert [result.exit_code for result in results] == [0, 0]


def test_the_first_child_to_fail_ends_the_others(supervisor):
    started = time.monotonic()

    results = supervisor.run_all([python("import time; time.sleep(60)"), python("import sys; sys.exit(3)")])

    assert time.monotonic() - started < DEADLINE
    assert [result.exit_code for result in results] == [128 + signal.SIGTERM, 3]
    assert results[1].ended_at < results[0].ended_at
    assert supervisor.abort_reason is None


def test_an_abort_from_another_thread_ends_the_child_and_the_next_step(supervisor):
    threading.Timer(0.5, supervisor.abort, args=("host algo-2 was lost",)).start()

    result = supervisor.run(SLEEPER, env=os.environ)

    assert result.exit_code == 128 + signal.SIGTERM
    assert supervisor.abort_reason == "host algo-2 was lost"
    with pytest.raises(Aborted, match="host algo-2 was lost"):
        supervisor.run([sys.executable, "-c", "pass"], env=os.environ)


def test_a_child_that_ignores_the_abort_is_killed_after_the_grace(supervisor, monkeypatch):
    monkeypatch.setattr("sagemaker_mxnet_container.runner.ABORT_GRACE_SECONDS", 1.0)
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    threading.Timer(0.5, supervisor.abort, args=("stop",)).start()

    result = supervisor.run([sys.executable, "-c", stubborn], env=os.environ)

    assert result.exit_code == 128 + signal.SIGKILL


def test_a_background_child_that_exits_is_reported_with_its_output(supervisor):
    exits = []
    supervisor.on_background_exit = lambda name, result: exits.append((name, result.exit_code, result.stderr_tail))
    supervisor.start_background(python("import sys; sys.exit('scheduler: bind failed')", "ps-lite scheduler"))

    deadline = time.monotonic() + DEADLINE
    while not exits and time.monotonic() < deadline:
        supervisor.poll()
        time.sleep(0.05)

    assert exits == [("ps-lite scheduler", 1, ["scheduler: bind failed"])]


def test_background_children_outlive_the_foreground_ones_until_ended(supervisor, tmp_path):
    marker = []
    supervisor.on_background_exit = lambda name, result: marker.append(name)
    supervisor.start_background(
        python("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)", "server")
    )
    server = next(iter(psutil.Process().children()))

    # The foreground child leaves a grandchild behind in its group: that one is ended, the server is not.
    pid_file = tmp_path / "grandchild"
    leaver = (
        "import subprocess, sys; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))"
    )
    result = supervisor.run([sys.executable, "-c", leaver], env=os.environ)

    assert result.exit_code == 0
    assert not alive(int(pid_file.read_text()))
    assert alive(server.pid)
    started = time.monotonic()
    supervisor.end_background()
    assert not alive(server.pid)
    assert marker == ["server"]
    # It ignored SIGTERM, so it took SIGKILL after a short grace: still well under the deadline.
    assert time.monotonic() - started < DEADLINE
