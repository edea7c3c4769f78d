"""The supervisor: exit codes, the stderr tee under floods, and what the user's code leaves behind
(processes in its group, processes that left it, zombies)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest
from conftest import alive, contained, train_command, train_environ

from sagemaker_mxnet_container.leftovers import own_cgroup_directory
from sagemaker_mxnet_container.runner import exit_code_of

# Generous: these only prove that nothing hangs.
DEADLINE = 20.0


def wait_until(condition, what: str, timeout: float = DEADLINE):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)


@pytest.fixture
def kill_afterwards():
    """Pids a test expects to be gone; any that are not are killed so no test leaks processes."""
    pids = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def start_train(job, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen(train_command(), env=train_environ(job), stdout=stdout, stderr=stderr)


def finish(process: subprocess.Popen) -> int:
    try:
        return process.wait(DEADLINE)
    except subprocess.TimeoutExpired:
        # The user's program runs in a session of its own: killing train alone would leave it.
        for descendant in psutil.Process(process.pid).children(recursive=True):
            descendant.kill()
        process.kill()
        process.wait()
        pytest.fail(f"train did not exit within {DEADLINE} s")


# Exit codes


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import sys; sys.exit(5)", 5),
        ("import sys; sys.exit(0)", 0),
        ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", 143),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 137),
        (
            "import os, resource, signal; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); "
            "os.kill(os.getpid(), signal.SIGSEGV)",
            139,
        ),
    ],
    ids=["exit-5", "exit-0", "sigterm", "sigkill", "sigsegv"],
)
def test_exit_code_of_a_real_wait_status(source, expected):
    child = subprocess.Popen([sys.executable, "-c", source])
    _pid, status = os.waitpid(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    assert exit_code_of(status) == expected


# Supervisor.run in a process of its own: it reaps every child and ends every descendant of the
# process it runs in, which must not be pytest's.

SUPERVISE = """
import json, sys
from sagemaker_mxnet_container.runner import Supervisor

result = Supervisor().run(sys.argv[1:], env={"PATH": "/usr/bin:/bin"})
print(json.dumps({"exit_code": result.exit_code, "signal": result.signal, "stderr_tail": result.stderr_tail}))
"""


def supervise(child_source: str) -> dict:
    run = subprocess.run(
        [sys.executable, "-c", SUPERVISE, sys.executable, "-c", textwrap.dedent(child_source)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        timeout=DEADLINE,
    )
    assert run.returncode == 0
    return json.loads(run.stdout)


def test_run_reports_the_exit_code_and_the_last_stderr_lines():
    result = supervise(
        """
        import sys
        print("loading data", file=sys.stderr)
        print("loss is nan", file=sys.stderr)
        sys.exit(3)
        """
    )
    assert result == {"exit_code": 3, "signal": None, "stderr_tail": ["loading data", "loss is nan"]}


def test_run_reports_the_signal_that_killed_the_child():
    result = supervise("import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert (result["exit_code"], result["signal"]) == (143, signal.SIGTERM)


def test_the_stderr_tail_keeps_100_lines_cut_to_2000_bytes_and_an_unfinished_last_line():
    result = supervise(
        """
        import sys
        for number in range(150):
            print(f"line {number}", file=sys.stderr)
        print("y" * 5000, file=sys.stderr)
        sys.stderr.write("last words, no newline")
        """
    )
    tail = result["stderr_tail"]
    assert len(tail) == 100 + 1
    assert tail[0] == "line 51"
    assert tail[-2] == "y" * 2000
    assert tail[-1] == "last words, no newline"


# Floods through the real train


FLOOD_LINE = b"e" * 99 + b"\n"
FLOOD_LINES = 500_000  # 50 MB


def test_a_50_mb_flood_on_stderr_and_stdout_neither_blocks_nor_grows_train(code_job, tmp_path):
    job = code_job(
        f"""
        import os, sys
        open(os.path.join(MARKERS, "started"), "w").close()
        line = {FLOOD_LINE!r}
        for _ in range({FLOOD_LINES} // 1000):
            sys.stdout.buffer.write(line.replace(b"e", b"o") * 1000)
            sys.stderr.buffer.write(line * 1000)
        sys.stderr.buffer.write(b"flood done\\n")
        """
    )
    stderr_path = tmp_path / "train.stderr"
    with open(stderr_path, "wb") as stderr:
        train = start_train(job, stderr=stderr)
    supervisor = psutil.Process(train.pid)
    wait_until(lambda: (code_job.markers / "started").exists() or train.poll() is not None, "the flood's start")
    baseline = peak = supervisor.memory_info().rss
    deadline = time.monotonic() + DEADLINE
    while train.poll() is None and time.monotonic() < deadline:
        try:
            peak = max(peak, supervisor.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.01)
    assert finish(train) == 0
    assert job.succeeded
    assert peak - baseline < 100 * 1024 * 1024
    # Every byte the program wrote to stderr went through train's tee to train's stderr.
    copied = stderr_path.read_bytes()
    assert copied.count(FLOOD_LINE) == FLOOD_LINES
    assert b"\nflood done\n" in copied


def test_a_huge_stderr_line_leaves_a_bounded_failure(code_job):
    job = code_job(
        """
        import sys
        sys.stderr.write("x" * 20_000_000)
        sys.exit(3)
        """
    )
    assert finish(start_train(job)) == 3
    assert "train.py exited with code 3" in job.failure
    assert len(job.failure) <= 64 * 1024


# What the user's code leaves behind


def test_processes_left_running_in_and_outside_the_group_are_ended(code_job, kill_afterwards):
    job = code_job(
        """
        import json, os, subprocess, sys, time

        def wait_for(name):
            while not os.path.exists(os.path.join(MARKERS, name)):
                time.sleep(0.02)

        in_group = subprocess.Popen(["sleep", "1000"])
        # A child that starts a session of its own, and a daemon that double-forks into one.
        escaped = subprocess.Popen([sys.executable, "-c", f'''
        import os, time
        os.setsid()
        open(os.path.join({MARKERS!r}, "escaped"), "w").close()
        time.sleep(1000)
        '''])
        daemon_parent = subprocess.Popen([sys.executable, "-c", f'''
        import os, time
        if os.fork() == 0:
            os.setsid()
            with open(os.path.join({MARKERS!r}, "daemon.tmp"), "w") as stream:
                stream.write(str(os.getpid()))
            os.rename(os.path.join({MARKERS!r}, "daemon.tmp"), os.path.join({MARKERS!r}, "daemon"))
            time.sleep(1000)
        '''])
        daemon_parent.wait()
        wait_for("escaped")
        wait_for("daemon")
        with open(os.path.join(MARKERS, "daemon")) as stream:
            daemon = int(stream.read())
        with open(os.path.join(MARKERS, "pids.tmp"), "w") as stream:
            json.dump({"in_group": in_group.pid, "escaped": escaped.pid, "daemon": daemon}, stream)
        os.replace(os.path.join(MARKERS, "pids.tmp"), os.path.join(MARKERS, "pids.json"))
        """
    )
    train = start_train(job)
    wait_until(lambda: (code_job.markers / "pids.json").exists() or train.poll() is not None, "the program's start")
    pids = json.loads((code_job.markers / "pids.json").read_text())
    leftovers = [pids["in_group"], pids["escaped"], pids["daemon"]]
    kill_afterwards.extend(leftovers)
    assert finish(train) == 0
    assert job.succeeded
    assert [pid for pid in leftovers if alive(pid)] == []


def test_orphans_are_adopted_and_reaped_while_the_program_runs(code_job):
    # The program double-forks; the grandchild outlives its parent, so it is re-parented to
    # train (a child subreaper) and must be reaped by it, not left a zombie.
    job = code_job(
        """
        import os, time

        def write(name, text):
            path = os.path.join(MARKERS, name)
            with open(path + ".tmp", "w") as stream:
                stream.write(text)
            os.rename(path + ".tmp", path)

        middle = os.fork()
        if middle == 0:
            parent = os.getpid()
            if os.fork() == 0:
                while os.getppid() == parent:
                    time.sleep(0.01)
                write("grandchild", f"{os.getpid()} {os.getppid()}")
                os._exit(0)
            os._exit(0)
        os.waitpid(middle, 0)
        while not os.path.exists(os.path.join(MARKERS, "go")):
            time.sleep(0.02)
        """
    )
    train = start_train(job)
    try:
        path = code_job.markers / "grandchild"
        wait_until(lambda: path.exists() or train.poll() is not None, "the grandchild's report")
        grandchild, adopted_by = map(int, path.read_text().split())
        assert adopted_by == train.pid
        wait_until(lambda: not psutil.pid_exists(grandchild), "reaping the exited grandchild")
        zombies = [c.pid for c in psutil.Process(train.pid).children() if c.status() == psutil.STATUS_ZOMBIE]
        assert zombies == []
    finally:
        (code_job.markers / "go").touch()
    assert finish(train) == 0
    assert job.succeeded


# A process that escapes (issue 16, item 7): it ignores SIGTERM and re-forks into a new session
# every millisecond, so any list of processes is out of date before it is signalled.

REFORKS = """
import signal, sys, time

def escape():
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
    open(os.path.join(MARKERS, "escaping"), "w").close()
    while True:
        if os.fork() == 0:
            os.setsid()
            time.sleep(0.001)
            continue
        os._exit(0)

if os.fork() == 0:
    escape()
while not os.path.exists(os.path.join(MARKERS, "escaping")):
    time.sleep(0.01)
time.sleep(0.5)
"""


def cgroups_can_be_made_here() -> bool:
    """Whether this machine lets train make the cgroups (root, a writable cgroup v2 with cgroup.kill)."""
    from sagemaker_mxnet_container import leftovers

    cgroups = leftovers.Cgroups.make()
    if cgroups is None:
        return False
    try:
        probe = cgroups.new()
        if probe is None:
            return False
        probe.enter()
        moved_back = probe.leave()
        probe.remove()
        return moved_back
    except OSError:
        return False
    finally:
        cgroups.close()


@pytest.mark.parametrize("cgroup", ["auto", "off"])
def test_a_process_that_re_forks_into_new_sessions_is_ended_completely_and_in_bounded_time(
    code_job, run_checked, cgroup
):
    job = code_job(REFORKS)

    finished = run_checked(
        job,
        {"SAGEMAKER_MXNET_CGROUP": cgroup},
        within=30,
        command=contained(train_command(), seconds=30),
        allowed_outside=[code_job.markers],
    )

    # Before: train waited 11 s or more, and the process outlived it.
    assert "contained: no process left" in finished.stderr
    assert finished.exit_code == 0, finished.failure
    assert (code_job.markers / "escaping").exists()
    assert "Ending processes the user's code left running" in finished.stderr
    # The cgroups train made for the job are gone with it.
    own = own_cgroup_directory()
    if own is not None and os.path.isdir(own):
        assert [name for name in os.listdir(own) if name.startswith("sagemaker-train-")] == []


REPORTS_ITS_CGROUP = """
with open(os.path.join(MARKERS, "cgroup"), "w") as stream:
    stream.write(open("/proc/self/cgroup").read())
"""


def test_each_child_runs_in_a_cgroup_of_its_own_where_one_can_be_made(code_job, run_checked):
    job = code_job(REPORTS_ITS_CGROUP)
    available = cgroups_can_be_made_here()

    finished = run_checked(job, allowed_outside=[code_job.markers])

    assert finished.exit_code == 0, finished.failure
    unified = next(line for line in (code_job.markers / "cgroup").read_text().splitlines() if line.startswith("0::"))
    if available:
        assert "/sagemaker-train-" in unified and unified.rstrip().split("/")[-1].startswith("child-"), unified
    else:
        assert "/sagemaker-train-" not in unified


# A supervisor that confines its children, in a process of its own (it installs signal handlers
# and may move itself between cgroups); prints each child's cgroup line as JSON.
CGROUP_OF_EACH_CHILD = """
import json, os, sys
from sagemaker_mxnet_container import leftovers
from sagemaker_mxnet_container.runner import Supervisor

if sys.argv[1] == "refused":
    # The kernel refusing the move (a read-only cgroup file system, no delegation) cannot be set up
    # for one test as root; the refusal is raised where the move is made.
    def refuse(self):
        raise PermissionError(13, "Permission denied")
    leftovers.Cgroup.enter = refuse
supervisor = Supervisor()
supervisor.install()
supervisor.confine()
lines = {}
# As in a job: the download (the toolkit's own), then pip and the user's code, then the drawing.
for name, confined in (("download", False), ("user code", True), ("more user code", True), ("plot", False)):
    out = os.path.join(os.environ["OUT"], name)
    copy = f"import shutil; shutil.copy('/proc/self/cgroup', {out!r})"
    result = supervisor.run([sys.executable, "-c", copy], env=dict(os.environ), confined=confined)
    assert result.exit_code == 0, result
    lines[name] = open(out).read().strip().splitlines()[-1]
supervisor.end_all()
print(json.dumps(lines))
"""


@pytest.mark.parametrize("moves", ["allowed", "refused"])
def test_children_that_run_the_users_code_get_cgroups_and_a_refused_move_costs_only_the_cgroups(tmp_path, moves):
    available = cgroups_can_be_made_here()

    run = subprocess.run(
        [sys.executable, "-c", CGROUP_OF_EACH_CHILD, moves],
        env={**os.environ, "OUT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert run.returncode == 0, run.stderr
    lines = json.loads(run.stdout)
    assert "/sagemaker-train-" not in lines["download"] and "/sagemaker-train-" not in lines["plot"]
    if available and moves == "allowed":
        # The first was entered while the download ran, off the user's code's way.
        assert lines["user code"].endswith("/child-1") and lines["more user code"].endswith("/child-2"), lines
    else:
        assert not any("/sagemaker-train-" in line for line in lines.values()), lines
    own = own_cgroup_directory()
    if own is not None and os.path.isdir(own):
        assert [name for name in os.listdir(own) if name.startswith("sagemaker-train-")] == []
