"""Shared fixtures: a job's /opt/ml tree, the real ``train`` run as a subprocess, and a real S3
endpoint (moto's server over HTTP on 127.0.0.1)."""

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Union

import pytest

REPO = Path(__file__).resolve().parent.parent
MNIST_SUBSET = REPO / "examples" / "mnist" / "data"
EXAMPLES = REPO / "examples" / "mnist"
# The full set, where the workplace provides it (CI does; a fresh clone does not).
MNIST_FULL = REPO.parent / "shared" / "data" / "mnist"

# Credentials for the local S3 only; tests check that they never reach a log or failure file.
FAKE_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
FAKE_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
FAKE_SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKENdGhpcyBpcyBub3QgYSByZWFsIHRva2Vu"


def encode_hyperparameters(values: Dict[str, object]) -> Dict[str, str]:
    """As the platform writes them: every value JSON-encoded into a string."""
    return {key: json.dumps(value) for key, value in values.items()}


@dataclass
class Job:
    """One training job's base directory (what /opt/ml is on the platform)."""

    base: Path

    @property
    def config_dir(self) -> Path:
        return self.base / "input" / "config"

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def code_dir(self) -> Path:
        return self.base / "code"

    def channel(self, name: str) -> Path:
        return self.base / "input" / "data" / name

    @property
    def log(self) -> Path:
        """Where a test that starts ``train`` in the background puts its output (outside the job)."""
        return self.base.parent.parent / "train.log"

    def write_config(self, name: str, content: Union[str, dict, list]) -> None:
        text = content if isinstance(content, str) else json.dumps(content)
        (self.config_dir / name).write_text(text)

    @property
    def failure(self) -> Optional[str]:
        path = self.output_dir / "failure"
        return path.read_text() if path.exists() else None

    @property
    def succeeded(self) -> bool:
        return (self.output_dir / "success").exists()


@pytest.fixture
def make_job(tmp_path):
    """Lays out a job; hyperparameters are encoded as the platform encodes them unless raw=True."""

    def make(
        hyperparameters: Optional[Dict[str, object]] = None,
        *,
        channels: Optional[Dict[str, Path]] = None,
        hosts=("algo-1",),
        current_host: str = "algo-1",
        raw: bool = False,
        name: str = "job",
    ) -> Job:
        job = Job(tmp_path / name / "opt" / "ml")
        job.config_dir.mkdir(parents=True)
        (job.base / "input" / "data").mkdir()
        values = hyperparameters or {}
        job.write_config("hyperparameters.json", values if raw else encode_hyperparameters(values))
        job.write_config(
            "resourceconfig.json",
            {"current_host": current_host, "hosts": list(hosts), "network_interface_name": "eth0"},
        )
        data_config = {}
        for name, source in (channels or {}).items():
            shutil.copytree(source, job.channel(name))
            data_config[name] = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}
        job.write_config("inputdataconfig.json", data_config)
        return job

    return make


@pytest.fixture
def code_job(make_job, tmp_path):
    """A job whose code directory already holds ``train.py`` (no download), written from source
    after a prelude that imports os and sets MARKERS, a scratch directory outside the job."""
    markers = tmp_path / "markers"
    markers.mkdir()

    def make(source: str, hyperparameters=None, requirements: Optional[str] = None, **kwargs) -> Job:
        job = make_job({"sagemaker_program": "train.py", **(hyperparameters or {})}, **kwargs)
        job.code_dir.mkdir()
        prelude = f"import os\nMARKERS = {str(markers)!r}\n"
        (job.code_dir / "train.py").write_text(prelude + textwrap.dedent(source))
        if requirements is not None:
            (job.code_dir / "requirements.txt").write_text(requirements)
        return job

    make.markers = markers
    return make


@pytest.fixture
def mnist_job(make_job):
    """A job with the embedded MNIST subset as its train and test channels."""

    def make(hyperparameters: Dict[str, object], **kwargs) -> Job:
        channels = {"train": MNIST_SUBSET / "train", "test": MNIST_SUBSET / "test"}
        return make_job(hyperparameters, channels=channels, **kwargs)

    return make


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def failing_rank_script(rank: int) -> str:
    """A Horovod program in which rank ``rank`` raises after a few allreduces, while the others
    would wait for it in the next one forever."""
    return textwrap.dedent(
        f"""\
        import time
        import horovod.mxnet as hvd
        import mxnet as mx

        hvd.init()
        x = mx.nd.ones((16,))
        for step in range(100000):
            hvd.allreduce(x, name="x").wait_to_read()
            if hvd.rank() == {rank} and step == 5:
                raise RuntimeError("rank {rank} cannot go on: disk full")
            time.sleep(0.01)
        """
    )


def install_fake_nvidia_smi(tmp_path, monkeypatch, *, stdout: str = "", exit_code: int = 0):
    """A stand-in nvidia-smi (no driver exists here) that prints ``stdout`` and exits ``exit_code``."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    (bin_dir / "listing.txt").write_text(stdout + "\n" if stdout else "")
    script = bin_dir / "nvidia-smi"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            [ "$1" = "--list-gpus" ] || exit 3
            cat '{bin_dir / "listing.txt"}'
            exit {exit_code}
            """
        )
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")


def train_environ(job: Job, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    environ = dict(os.environ)
    environ["SAGEMAKER_BASE_DIR"] = str(job.base)
    environ["PYTHONUNBUFFERED"] = "1"
    environ.update(extra or {})
    return environ


def train_command():
    return [sys.executable, "-m", "sagemaker_mxnet_container"]


@pytest.fixture
def run_train():
    """Runs the real ``train`` for a job, as a subprocess, and returns the CompletedProcess."""

    def run(job: Job, env: Optional[Dict[str, str]] = None, timeout: float = 300, cwd=None):
        return subprocess.run(
            train_command(),
            env=train_environ(job, env),
            cwd=cwd or job.base.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def make_tarball(files: Dict[str, Union[str, bytes]]) -> bytes:
    """A .tar.gz of regular files, from {archive name: content}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tarball_of_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(directory.rglob("*")):
            if "__pycache__" not in path.parts:
                archive.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    return buffer.getvalue()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class S3:
    endpoint: str
    client: object

    def put(self, bucket: str, key: str, body: bytes) -> str:
        try:
            self.client.create_bucket(Bucket=bucket)
        except self.client.exceptions.BucketAlreadyOwnedByYou:
            pass
        self.client.put_object(Bucket=bucket, Key=key, Body=body)
        return f"s3://{bucket}/{key}"


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 in server mode, over real HTTP on 127.0.0.1, for the whole test session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The local S3, with this process and every ``train`` it starts pointed at it."""
    import boto3

    for name, value in {
        "AWS_ENDPOINT_URL_S3": s3_server,
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_ACCESS_KEY,
        "AWS_SESSION_TOKEN": FAKE_SESSION_TOKEN,
        "AWS_DEFAULT_REGION": "us-west-2",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=s3_server)
    return S3(s3_server, client)


# =============================================================================================
# Hardening matrix (issue 7; docs/reliability.md): one run of the real ``train`` and the
# invariants every finished job must keep, whatever went wrong. Owned by the hardening work;
# shared fixtures above this line belong to the rest of the suite.
# =============================================================================================

# Every process a matrix run starts inherits this variable, so whatever is still running once
# ``train`` has exited is found by it, wherever it was re-parented to.
RUN_MARKER = "SAGEMAKER_MXNET_TEST_RUN"
FAKE_SECRETS = (FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, FAKE_SESSION_TOKEN)


@dataclass
class FinishedJob:
    """What a finished ``train`` left: its exit code, output, duration and files."""

    job: Job
    exit_code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def failure(self) -> Optional[str]:
        return self.job.failure

    @property
    def reason(self) -> str:
        """The first line of output/failure: what the platform shows first as FailureReason."""
        return (self.failure or "").splitlines()[0] if (self.failure or "").strip() else ""


def _files_outside(root: Path, excluded) -> set:
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [name for name in dirnames if not any((here / name) == path for path in excluded)]
        for name in dirnames + filenames:
            path = here / name
            try:
                stat = path.lstat()
            except FileNotFoundError:
                continue
            found.add((str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    return found


def processes_of_run(marker: str) -> list:
    """Live (not zombie) processes that inherited ``marker`` from a matrix run."""
    import psutil

    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(RUN_MARKER) == marker and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            pass
    return found


def outcome_files(job: Job) -> set:
    """The outcome files present, each a regular file (a directory or link there counts as wrong)."""
    present = set()
    for name in ("success", "failure"):
        path = job.output_dir / name
        if os.path.lexists(path):
            assert path.is_file() and not path.is_symlink(), f"output/{name} is not a regular file"
            present.add(name)
    return present


def check_finished_job(
    finished: FinishedJob, *, within: float, secrets=(), outcome_written: bool = True
) -> None:
    """The invariants of every matrix case.

    - a job that failed exits non-zero and leaves exactly ``failure`` (a regular file whose first
      line names a cause); a job that succeeded exits 0 and leaves exactly ``success``;
    - it ended within ``within`` seconds;
    - no secret (the fake AWS credentials every run has, plus ``secrets``) is in stdout, stderr or
      the failure file.
    (Nothing written outside the job and no process left behind are checked by ``run_checked``.)
    """
    job = finished.job
    if not outcome_written:
        assert finished.exit_code != 0
        assert not job.succeeded
    elif finished.exit_code == 0:
        assert outcome_files(job) == {"success"}, finished.stderr[-3000:]
    else:
        assert outcome_files(job) == {"failure"}, finished.stderr[-3000:]
        assert finished.reason.strip(), job.failure
    if job.output_dir.is_dir():
        assert [name for name in os.listdir(job.output_dir) if name.startswith((".success-", ".failure-"))] == []
    assert finished.seconds < within, f"took {finished.seconds:.1f} s, bound {within} s"
    for secret in (*FAKE_SECRETS, *secrets):
        assert secret not in finished.stdout
        assert secret not in finished.stderr
        assert secret not in (job.failure or "")


# Runs a command as a child subreaper, in a cgroup of its own where one can be made, and reports
# on stderr whether any process it started outlived it. A process that re-forks every
# millisecond slips through any scan of /proc (processes_of_run), never through this: every
# orphan comes to the subreaper, which has no child left only once all are gone. Whatever is
# left, or still runs when the time is up, is killed (the whole cgroup where there is one).
CONTAINED = """
import ctypes, os, signal, subprocess, sys, time

def own_cgroup():
    try:
        relative = next(line[3:].strip() for line in open("/proc/self/cgroup") if line.startswith("0::"))
        mount = next(line.split()[4] for line in open("/proc/self/mountinfo")
                     if " - cgroup2 " in line and line.split()[3] == "/")
        path = os.path.join(mount, relative.lstrip("/"), f"test-contained-{os.getpid()}")
        os.mkdir(path)
        with open(os.path.join(path, "cgroup.procs"), "w") as stream:
            stream.write(str(os.getpid()))
        return path
    except (OSError, StopIteration):
        return None

def children():
    found = []
    for task in os.listdir("/proc/self/task"):
        found += [int(pid) for pid in open(f"/proc/self/task/{task}/children").read().split()]
    return found

ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)
cgroup = own_cgroup()
command = subprocess.Popen(sys.argv[2:])
try:
    code = command.wait(float(sys.argv[1]))
except subprocess.TimeoutExpired:
    command.kill()
    code = command.wait()
deadline = time.monotonic() + 3
left = True
while time.monotonic() < deadline:
    try:
        if os.waitpid(-1, os.WNOHANG)[0] == 0:
            time.sleep(0.01)
    except ChildProcessError:
        left = False
        break
print(f"contained: {'processes were left' if left else 'no process left'}", file=sys.stderr, flush=True)
deadline = time.monotonic() + 30
while left and time.monotonic() < deadline:
    if cgroup is not None:
        open(os.path.join(cgroup, "cgroup.kill"), "w").write("1")
    for pid in children():
        os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
if cgroup is not None:
    with open(os.path.join(os.path.dirname(cgroup), "cgroup.procs"), "w") as stream:
        stream.write(str(os.getpid()))
    for attempt in range(100):
        try:
            os.rmdir(cgroup)
            break
        except OSError:
            time.sleep(0.05)
sys.exit(code)
"""


def contained(command, seconds: float):
    """``command`` run by CONTAINED, which gives it ``seconds``."""
    return [sys.executable, "-c", CONTAINED, str(seconds), *command]


@pytest.fixture
def run_checked(tmp_path):
    """Runs the real ``train`` for a job and checks the matrix invariants on what it left.

    ``command`` replaces ``train`` (for wrappers that set up mounts and then exec it);
    ``allowed_outside`` lists paths outside the job the test itself lets the user's code write.
    """

    def run(
        job: Job,
        env: Optional[Dict[str, str]] = None,
        *,
        within: float = 60.0,
        secrets=(),
        outcome_written: bool = True,
        command=None,
        allowed_outside=(),
    ) -> FinishedJob:
        import time
        import uuid

        scratch = tmp_path / "run-tmpdir"
        scratch.mkdir(exist_ok=True)
        excluded = [job.base, scratch, *map(Path, allowed_outside)]
        before = _files_outside(tmp_path, excluded)
        marker = uuid.uuid4().hex
        extra = {
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_ACCESS_KEY,
            "AWS_SESSION_TOKEN": FAKE_SESSION_TOKEN,
            # Scratch files of train and its children land here; all must be gone at the end.
            "TMPDIR": str(scratch),
            RUN_MARKER: marker,
            **(env or {}),
        }
        started = time.monotonic()
        completed = subprocess.run(
            command or train_command(),
            env=train_environ(job, extra),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=within + 60,
        )
        seconds = time.monotonic() - started
        finished = FinishedJob(job, completed.returncode, completed.stdout, completed.stderr, seconds)

        deadline = time.monotonic() + 3
        left = processes_of_run(marker)
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = processes_of_run(marker)
        for process in left:
            process.kill()
        assert left == [], f"processes left behind: {left}"
        assert _files_outside(tmp_path, excluded) == before, "the job wrote outside its own tree"
        assert list(scratch.iterdir()) == [], "scratch files were left in TMPDIR"
        check_finished_job(finished, within=within, secrets=secrets, outcome_written=outcome_written)
        return finished

    return run


# ---------------------------------------------------------------------------------------------
# Horovod (issue 8): Horovod's wheel from scripts/horovod-wheel.sh, Open MPI and sshd from apt.
# ---------------------------------------------------------------------------------------------


import importlib  # noqa: E402  (kept with the section that needs it)


def apt_install_missing(commands_to_packages: Dict[str, str]) -> None:
    """Installs the Debian packages whose commands are missing; skips the test where that is
    impossible (not root, no apt-get), saying why."""
    missing = sorted({package for command, package in commands_to_packages.items() if not shutil.which(command)})
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"needs {', '.join(missing)}: install with apt-get as root (this run is not root)")
    environ = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=environ, capture_output=True, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        env=environ,
        capture_output=True,
        timeout=900,
    )


def run_showing_progress(config, argv, *, label: str, progress: str, timeout: float, **kwargs):
    """Runs a long step (a build) and shows its stderr lines that match the regular expression
    ``progress`` on the terminal as they come, so that minutes of work are not minutes of silence.
    Returns the CompletedProcess, with all of stderr in it; past ``timeout`` seconds the step's
    whole process group is killed (a build's pip or engine would otherwise hold the pipes open)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    pattern = re.compile(progress)
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs
    )
    stdout = []
    reader = threading.Thread(target=lambda: stdout.append(process.stdout.read()), daemon=True)
    reader.start()
    timed_out = []

    def kill():
        timed_out.append(True)
        os.killpg(process.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    stderr = []
    try:
        for line in process.stderr:
            stderr.append(line)
            if reporter is not None and pattern.search(line):
                # Past pytest's capture of the test's output, and flushed: CI's stdout is a pipe.
                with capture.global_and_fixture_disabled():
                    reporter.write_line(f"    [{label}] {line.rstrip()[:160]}")
                    reporter.flush()
        process.wait()
        reader.join()
    finally:
        timer.cancel()
    if timed_out:
        stderr.append(f"\n(killed after {timeout} s)\n")
    return subprocess.CompletedProcess(argv, process.returncode, "".join(stdout), "".join(stderr))


@pytest.fixture(scope="session")
def horovod_wheel(tmp_path_factory, pytestconfig) -> Path:
    """Horovod 0.28.1 built against MXNet 1.9.1 by scripts/horovod-wheel.sh (about 5 min the
    first time on a machine; cached under ~/.cache after that, so clean clones reuse it). The
    script installs what the build needs wherever it is missing, so the result does not depend on
    what ran before (an earlier test may have installed openmpi-bin alone)."""
    destination = tmp_path_factory.mktemp("horovod-wheel")
    build = run_showing_progress(
        pytestconfig,
        ["bash", str(REPO / "scripts" / "horovod-wheel.sh"), str(destination)],
        label="horovod wheel",
        progress=r"^(Missing|Installing|Building|Using the cached)",
        timeout=1800,
    )
    assert build.returncode == 0, f"scripts/horovod-wheel.sh failed:\n{build.stderr[-5000:]}"
    wheel = Path(build.stdout.strip().splitlines()[-1])
    assert wheel.is_file() and wheel.name.startswith("horovod-0.28.1-"), build.stdout
    return wheel


def _horovod_mxnet_works() -> bool:
    check = "import horovod.mxnet as hvd, sys; sys.exit(not (hvd.gloo_built() and hvd.mpi_built()))"
    return subprocess.run([sys.executable, "-c", check], capture_output=True, timeout=300).returncode == 0


@pytest.fixture(scope="session")
def horovod(request) -> None:
    """Horovod with its MXNet extension importable by this interpreter, and Open MPI's mpirun:
    the wheel is built and installed into the test environment where it is missing."""
    apt_install_missing({"mpirun": "openmpi-bin"})
    if not _horovod_mxnet_works():
        wheel = request.getfixturevalue("horovod_wheel")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
            check=True,
            timeout=600,
        )
        assert _horovod_mxnet_works(), "Horovod was installed but horovod.mxnet does not import"
        # This process looked at site-packages before the install.
        importlib.invalidate_caches()


# --- Multi-host jobs: hosts in network namespaces of their own, and on loopback -----------------


@dataclass
class Cluster:
    """A job's hosts in network namespaces, with an S3 endpoint they all reach."""

    network: object  # netns.Network
    s3: S3

    @property
    def hosts(self):
        return self.network.hosts

    def environ(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        environ = dict(os.environ)
        environ.update(
            {
                "AWS_ENDPOINT_URL_S3": self.s3.endpoint,
                "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
                "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_ACCESS_KEY,
                "AWS_DEFAULT_REGION": "us-west-2",
                "PYTHONUNBUFFERED": "1",
            }
        )
        environ.pop("AWS_PROFILE", None)
        environ.update(extra or {})
        return environ

    def start(self, jobs: Dict[str, "Job"], extra: Optional[Dict[str, str]] = None) -> Dict[str, subprocess.Popen]:
        """Starts the real ``train`` on each host for its job; each host's output goes to job/../train.log."""
        import netns

        return {
            host: self.network.start(
                host, netns.train_argv(), {**self.environ(extra), "SAGEMAKER_BASE_DIR": str(job.base)}, job.log
            )
            for host, job in jobs.items()
        }


@pytest.fixture
def cluster():
    """Makes clusters of N hosts (algo-1 … algo-N), each host a network namespace; tears them down."""
    import netns
    from moto.server import ThreadedMotoServer

    reason = netns.unavailable_reason()
    if reason is not None:
        pytest.skip(f"multi-host tests need network namespaces: {reason}")
    made = []

    def make(count: int) -> Cluster:
        network = netns.Network(count)
        made.append(network)
        port = _free_port()
        server = ThreadedMotoServer(ip_address=network.bridge_address, port=port, verbose=False)
        server.start()
        made.append(server)
        import boto3

        endpoint = f"http://{network.bridge_address}:{port}"
        client = boto3.client(
            "s3",
            region_name="us-east-1",
            endpoint_url=endpoint,
            aws_access_key_id=FAKE_ACCESS_KEY_ID,
            aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
        )
        return Cluster(network, S3(endpoint, client))

    yield make
    for thing in reversed(made):
        thing.stop() if hasattr(thing, "stop") else thing.down()


def host_jobs(make_job, hosts, hyperparameters, channels=None) -> Dict[str, "Job"]:
    """One /opt/ml tree per host, each naming itself as current_host."""
    return {
        host: make_job(hyperparameters, channels=channels, hosts=tuple(hosts), current_host=host, name=host)
        for host in hosts
    }


# ---------------------------------------------------------------------------------------------
# The official toolkit (issue 12; docs/compatibility.md): sagemaker-training 5.1.4 with
# sagemaker-mxnet-training 4.3.0 in a venv of its own, installed once by benchmarks/peer.py.
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def official_toolkit():
    """The peer venv (``benchmarks.peer.Peer``): about 15 s the first time, then reused."""
    sys.path.insert(0, str(REPO))
    from benchmarks import peer

    return peer.ensure(log=lambda message: None)


@pytest.fixture(scope="session")
def official_mapping(official_toolkit):
    """sagemaker-training's own ``mapping`` module (``to_cmd_args``, ``to_env_vars``), loaded from the
    peer venv's file under a name of its own: it needs only the standard library and ``six``."""
    import glob
    import importlib.util

    (path,) = glob.glob(f"{official_toolkit.directory}/lib/python3*/site-packages/sagemaker_training/mapping.py")
    spec = importlib.util.spec_from_file_location("official_sagemaker_training_mapping", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
