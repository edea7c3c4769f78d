"""Matrix, user-code and disk rows: every way the user's code ends, and a model or output
directory that cannot be written, through the real ``train``.

test_user_code_failures.py pins the wording of each reason; here each case also goes through
``run_checked`` (conftest), which checks the invariants of docs/reliability.md: exit code and
outcome files agree, the time is bounded, nothing is written outside the job, no credential is
printed and no process is left behind. The disk cases mount a small tmpfs or a read-only bind in
a private mount namespace (``unshare --mount``), so nothing outside the test's own process sees
the mounts and nothing needs unmounting.
"""

import json
import os
import subprocess
import sys

import pytest
from conftest import train_command
from test_outcome import CAUGHT_THEN

KILLED_BY_SIGKILL = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"
SEGFAULT = """
import ctypes, resource
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
ctypes.string_at(0)
"""
LEAVES_CHILDREN = """
import subprocess, sys
subprocess.Popen(["sleep", "1000"])
subprocess.Popen([sys.executable, "-c", "import os, time; os.setsid(); time.sleep(1000)"])
if os.fork() == 0:
    os.setsid()
    import time
    time.sleep(1000)
"""

SNEAKY = """
class Sneaky(Exception):
    def __str__(self):
        raise SystemExit(0)
"""

CASES = {
    # name: (source, exit code, how the failure's first line starts)
    "script raises": ("raise ValueError('lr must be positive')\n", 1, "ValueError: lr must be positive"),
    "legacy module raises on import": (
        "raise ImportError('no CUDA here')\ndef train():\n    pass\n",
        1,
        "ImportError: no CUDA here",
    ),
    "legacy train() raises": (
        "def train():\n    raise RuntimeError('loss is nan')\n",
        1,
        "RuntimeError: loss is nan",
    ),
    "legacy train() returns None": ("def train():\n    return None\n", 0, ""),
    "legacy train() returns an unsupported object": (
        "def train():\n    return object()\n",
        1,
        "TypeError: cannot save a builtins.object",
    ),
    "sys.exit(3)": ("import sys\nsys.exit(3)\n", 3, "train.py exited with code 3."),
    "os._exit(7)": ("os._exit(7)\n", 7, "train.py exited with code 7."),
    "segfault (ctypes)": (SEGFAULT, 139, "train.py was killed by SIGSEGV (exit code 139)"),
    "legacy train() segfaults": (
        "def train():\n" + "".join(f"    {line}\n" for line in SEGFAULT.strip().splitlines()),
        139,
        "train.py was killed by SIGSEGV (exit code 139)",
    ),
    "killed by SIGKILL": (
        KILLED_BY_SIGKILL,
        137,
        "train.py was killed by SIGKILL (exit code 137); it may have run out of memory",
    ),
    "leaves processes behind and succeeds": (LEAVES_CHILDREN, 0, ""),
    # Before: the SystemExit(0) escaped from the error record and the failed job exited 0.
    "legacy train() raises an exception whose __str__ raises SystemExit(0)": (
        SNEAKY + "def train():\n    raise Sneaky()\n",
        1,
        "Sneaky: <Sneaky whose message could not be rendered>",
    ),
    "script raises an exception whose __str__ raises SystemExit(0)": (
        SNEAKY + "if __name__ == '__main__':\n    raise Sneaky()\n",
        1,
        "Sneaky: <exception str() failed>",
    ),
    # Before: the reason started with the KeyError the program had caught and logged.
    "logs a caught exception, then dies of another": (
        CAUGHT_THEN.format("raise RuntimeError('loss is nan')"),
        1,
        "RuntimeError: loss is nan",
    ),
    "logs a caught exception, then exits 3": (CAUGHT_THEN.format("sys.exit(3)"), 3, "train.py exited with code 3."),
    "message with undecodable bytes": (
        "def train():\n    raise ValueError(b'caf\\xe9'.decode('utf-8', 'surrogateescape'))\n",
        1,
        "ValueError: caf\\udce9",
    ),
}


@pytest.mark.parametrize("source, exit_code, reason", CASES.values(), ids=CASES.keys())
def test_every_way_the_users_code_ends(code_job, run_checked, source, exit_code, reason):
    job = code_job(source)

    finished = run_checked(job, within=60)

    assert finished.exit_code == exit_code, finished.stderr[-3000:]
    assert finished.reason.startswith(reason), finished.failure
    if "SIGSEGV" in reason:
        assert "memory" not in finished.reason


# Disk: a model/ or output/ that cannot be written, and a model/ that fills up.


def _namespaces_work() -> str:
    """Why mount namespaces cannot be used here, or "" where they can."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    try:
        probe = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True, timeout=30
        )
    except FileNotFoundError:
        return "unshare (util-linux) is not installed"
    return "" if probe.returncode == 0 else f"unshare --mount failed: {probe.stderr.strip()}"


NO_NAMESPACES = _namespaces_work()
needs_mounts = pytest.mark.skipif(bool(NO_NAMESPACES), reason=NO_NAMESPACES)

MOUNT_THEN_TRAIN = """
import json, os, subprocess, sys
for argv in json.loads(sys.argv[1]):
    subprocess.run(argv, check=True)
os.execv(sys.argv[2], sys.argv[2:])
"""


def in_mount_namespace(*mounts):
    """``train`` run after ``mounts`` (argv lists for mount), in a mount namespace of its own."""
    return [
        "unshare", "--mount", "--propagation", "private",
        sys.executable, "-c", MOUNT_THEN_TRAIN, json.dumps([list(m) for m in mounts]), *train_command(),
    ]  # fmt: skip


def read_only(path):
    return (["mount", "--bind", str(path), str(path)], ["mount", "-o", "remount,bind,ro", str(path)])


def small_tmpfs(path, size="64k"):
    return (["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],)


WRITES_MODEL = """
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.bin"), "wb") as stream:
    stream.write(b"w" * 1024 * 1024)
"""

RETURNS_A_4_MB_MODEL = """
def train():
    import mxnet as mx
    net = mx.gluon.nn.Dense(1000, in_units=1000)
    net.initialize()
    net.hybridize()
    net(mx.nd.ones((1, 1000)))
    return net
"""


@needs_mounts
def test_a_read_only_model_directory_fails_with_the_programs_error(code_job, run_checked):
    job = code_job(WRITES_MODEL)
    job.model_dir.mkdir()

    finished = run_checked(job, command=in_mount_namespace(*read_only(job.model_dir)))

    assert finished.exit_code == 1
    assert finished.reason.startswith("OSError: [Errno 30] Read-only file system:"), finished.failure


@needs_mounts
def test_a_read_only_output_directory_fails_saying_it_must_be_writable(code_job, run_checked):
    job = code_job("open(os.path.join(MARKERS, 'ran'), 'w').close()\n")
    for directory in ("data", "intermediate"):
        (job.output_dir / directory).mkdir(parents=True)

    finished = run_checked(job, command=in_mount_namespace(*read_only(job.output_dir)), outcome_written=False)

    assert finished.exit_code == 1
    assert f"Training failed: cannot clear {job.output_dir}/success: Read-only file system; " in finished.stderr
    assert "must be writable for the job to record its outcome" in finished.stderr
    assert f"Could not write {job.output_dir}/failure" in finished.stderr
    assert "Traceback" not in finished.stderr
    assert not (code_job.markers / "ran").exists()


@needs_mounts
def test_a_full_disk_while_the_program_saves_its_model(code_job, run_checked):
    job = code_job(WRITES_MODEL)
    job.model_dir.mkdir()

    finished = run_checked(job, command=in_mount_namespace(*small_tmpfs(job.model_dir)))

    assert finished.exit_code == 1
    assert finished.reason.startswith("OSError: [Errno 28] No space left on device"), finished.failure


@needs_mounts
def test_a_full_disk_while_legacy_mode_saves_the_model(code_job, run_checked):
    job = code_job(RETURNS_A_4_MB_MODEL)
    job.model_dir.mkdir()

    finished = run_checked(job, command=in_mount_namespace(*small_tmpfs(job.model_dir, "1m")), within=120)

    assert finished.exit_code == 1
    # MXNet itself says only "FileStream.Write incomplete", under a C++ traceback.
    assert finished.reason.startswith(
        f"OSError: [Errno 28] No space left on device while saving the model in {job.model_dir}"
    ), finished.failure
    assert "increase the training volume size" in finished.reason
    assert "Raised while saving the model" in finished.failure
    assert "FileStream.Write incomplete" in finished.failure


MXNET_STYLE_ERROR = """
from sagemaker_mxnet_container import error_record

class MXNetError(Exception):
    pass

try:
    raise MXNetError("Traceback (most recent call last):\\n  File \\"io.cc\\", line 38\\n"
                     "MXNetError: Check failed: shape mismatch\\n")
except MXNetError as error:
    error_record.write(error, "running train() in train.py")
"""


def test_an_error_that_starts_with_a_cxx_traceback_is_recorded_with_its_check_first(tmp_path):
    from sagemaker_mxnet_container import error_record

    path = tmp_path / "record.json"
    subprocess.run(
        [sys.executable, "-c", MXNET_STYLE_ERROR],
        env={**os.environ, error_record.FILE_VARIABLE: str(path)},
        check=True,
        timeout=30,
    )

    message = error_record.read(str(path))["message"]
    assert message.splitlines()[0] == "Check failed: shape mismatch"
    assert message.splitlines()[1] == "Traceback (most recent call last):"


@pytest.mark.parametrize(
    "ending, exit_code",
    [
        ("sys.exit(Sneaky())", 1),
        ("raise Sneaky()", 1),
        ("sys.exit(4)", 4),
        ("sys.exit(None)", 0),
    ],
)
def test_the_ps_lite_worker_wrapper_exits_as_the_program_did_even_when_its_exception_lies(
    tmp_path, ending, exit_code
):
    # ps_worker runs script-mode programs across hosts; its own handling of sys.exit(obj) printed
    # obj, and a SystemExit(0) raised from obj.__str__ ended the failed program with 0.
    program = tmp_path / "train.py"
    sneaky = SNEAKY if ending.startswith("raise") else SNEAKY.replace("(Exception)", "")
    program.write_text("import sys\n" + sneaky + ending + "\n")

    run = subprocess.run(
        [sys.executable, "-m", "sagemaker_mxnet_container.cluster.ps_worker", str(program)],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert run.returncode == exit_code, run.stderr
