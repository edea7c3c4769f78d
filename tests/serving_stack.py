"""The official SageMaker MXNet serving stack, in a venv of its own, and its model server started
the way the serving container starts it.

The venv is kept under ~/.cache (keyed by its requirements and this Python), so clean clones
reuse it as they reuse the Horovod wheel. The model server is multi-model-server (Java) started
by the serving toolkit's own entry, ``serving.main()``, which the container's entry point runs
for ``serve``. Its model directory follows ``SAGEMAKER_BASE_DIR``, but three things reach past
a test's directory: it writes its configuration to ``/etc/sagemaker-mms.properties``, it finds
the server by scanning every process on the machine, and the server binds 0.0.0.0. So the
server runs in mount and PID namespaces of its own (``unshare``, as root): ``/etc`` is an
overlay whose writes land in the test's directory, the scan sees only this server, and ending
the namespace's first process ends every process in it. It binds 127.0.0.1 through
multi-model-server's own ``MMS_*`` variables.
"""

import ctypes
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import psutil
from conftest import REPO

sys.path.insert(0, str(REPO))  # benchmarks/ is not installed; plain `pytest` would not find it
from benchmarks import side_venv  # noqa: E402

PROBE = Path(__file__).resolve().parent / "serving_probe.py"

REQUIREMENTS = (
    "sagemaker-mxnet-inference==1.5.5",
    # The release current when 1.5.5 came out (May 2022). From 1.7.0 on, sagemaker-inference
    # hands MMS's context to a model_fn that has a second parameter, and 1.5.5's default_model_fn
    # takes it for its batch size: every default load fails (TypeError ... 'Context').
    "sagemaker-inference==1.6.1",
    "multi-model-server==1.1.11",
    "mxnet==1.9.1",
    "numpy<1.24",
    # sagemaker-inference 1.6.1 finds the server by every process's cmdline(), among them its own
    # exited launcher, a zombie: psutil 5.9.6 and later raise ZombieProcess there, so the start
    # retries until its startup timeout and fails.
    "psutil==5.9.5",
)
ENTRY = "from sagemaker_mxnet_serving_container import serving; serving.main()"
MODEL_NAME = "model"  # the name sagemaker-inference registers the model under


def venv_directory() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = hashlib.sha256(json.dumps([REQUIREMENTS, sys.base_prefix, sys.version]).encode()).hexdigest()[:12]
    return os.path.join(cache, "sagemaker-mxnet-container", "venvs", f"serving-{key}")


_IMPORTS = "import mms, sagemaker_inference, sagemaker_mxnet_serving_container, mxnet"


def ensure_venv(log=print) -> str:
    """The serving venv's Python, installing the stack on first use (about a minute)."""
    directory = venv_directory()
    python = side_venv.ensure(directory, REQUIREMENTS, log=log, what="the MXNet serving toolkit")
    check = subprocess.run(
        [python, "-c", _IMPORTS], capture_output=True, text=True, env=side_venv.isolated_environ(), cwd="/"
    )
    if check.returncode != 0:
        raise side_venv.SideVenvError(f"the serving stack in {directory} does not import:\n{check.stderr[-2000:]}")
    return python


def lay_out_model(model_tar_gz: Path, model_dir: Path, entry_point: Path) -> Path:
    """``model_dir`` as the serving image gets it from the SDK's MXNetModel: ``model.tar.gz``
    unpacked, with the entry point in ``code/``."""
    model_dir.mkdir(parents=True)
    shutil.unpack_archive(str(model_tar_gz), str(model_dir), filter="data")
    (model_dir / "code").mkdir()
    shutil.copy(entry_point, model_dir / "code" / entry_point.name)
    return model_dir


def probe(python: str, model_dir: Path, data_dir: Path) -> dict:
    """Serves ``data_dir``'s images through the handler service (see serving_probe.py)."""
    environ = {**side_venv.isolated_environ(), "SAGEMAKER_PROGRAM": _entry_point(model_dir)}
    result = subprocess.run(
        [python, str(PROBE), str(model_dir), str(data_dir)],
        capture_output=True,
        text=True,
        env=environ,
        cwd=model_dir.parent,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _entry_point(model_dir: Path) -> str:
    [entry_point] = [path.name for path in (model_dir / "code").glob("*.py")]
    return entry_point


def _free_port() -> int:
    """A port free now, below 32768: multi-model-server 1.1.11 reads ports as a Java short and
    refuses the rest ("Invalid port number"), which is all of Linux's ephemeral range."""
    for _ in range(200):
        port = random.randint(20000, 32767)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32767")


def _namespace_command(workdir: Path, command) -> list:
    """``command`` run as the first process of new mount and PID namespaces, over an /etc whose
    changes land in ``workdir``; it dies (and the namespace with it) when unshare dies."""
    upper, work = workdir / "etc-changes", workdir / "etc-work"
    upper.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    script = 'mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1,workdir=$2" /etc && shift 2 && exec "$@"'
    return [
        "unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc",
        "sh", "-c", script, "sh", str(upper), str(work), *command,
    ]  # fmt: skip


def unavailable_reason(workdir: Path) -> Optional[str]:
    """Why the model server cannot be started here, or None."""
    if os.geteuid() != 0:
        return "the model server runs in mount and PID namespaces of its own, which need root"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is missing"
    trial = subprocess.run(_namespace_command(workdir, ["true"]), capture_output=True, text=True, timeout=30)
    if trial.returncode != 0:
        return f"cannot overlay /etc in a namespace of its own: {trial.stderr.strip()}"
    return None


_PR_SET_PDEATHSIG = 1


def _die_with_the_test() -> None:
    # Should pytest itself be killed, unshare gets SIGKILL, and --kill-child ends the namespace.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ModelServer:
    """multi-model-server serving ``base_dir``/model, started by the serving toolkit's entry."""

    def __init__(self, python: str, base_dir: Path, workdir: Path, environ: dict):
        self.python = python
        self.base_dir = base_dir
        self.workdir = workdir
        self.port = _free_port()
        self.management_port = _free_port()
        self.log = workdir / "model-server.log"
        scratch = workdir / "tmp"
        logs = workdir / "logs"
        scratch.mkdir(parents=True, exist_ok=True)
        logs.mkdir(exist_ok=True)
        self.environ = {
            **side_venv.isolated_environ(),
            **environ,
            # multi-model-server and model-archiver are the venv's commands; java is the system's.
            "PATH": f"{Path(python).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "SAGEMAKER_BASE_DIR": str(base_dir),
            "SAGEMAKER_PROGRAM": _entry_point(base_dir / "model"),
            "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "MMS_INFERENCE_ADDRESS": f"http://127.0.0.1:{self.port}",
            "MMS_MANAGEMENT_ADDRESS": f"http://127.0.0.1:{self.management_port}",
            "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
            "SAGEMAKER_STARTUP_TIMEOUT": "60",
            # No JVM performance file in the machine's /tmp (sagemaker-inference 1.6.1 fixes vmargs).
            "JAVA_TOOL_OPTIONS": "-XX:-UsePerfData",
            "TEMP": str(scratch),
            "TMPDIR": str(scratch),
            "LOG_LOCATION": str(logs),
            "METRICS_LOCATION": str(logs),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> None:
        """Starts the server and waits (bounded) until a worker has loaded the model."""
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                _namespace_command(self.workdir, [self.python, "-c", ENTRY]),
                env=self.environ,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_the_test,
            )
        deadline = time.monotonic() + timeout
        while not self._worker_ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"the model server exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no worker loaded the model within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.5)

    def _worker_ready(self) -> bool:
        url = f"http://127.0.0.1:{self.management_port}/models/{MODEL_NAME}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                description = json.loads(response.read())
        except (OSError, ValueError):
            return False
        if isinstance(description, list):  # later servers answer with a list of versions
            description = description[0] if description else {}
        return any(worker.get("status") == "READY" for worker in description.get("workers", []))

    def request(self, method: str, path: str, body: Optional[bytes] = None, headers=None):
        """(status, headers, body) of one request to the inference address (headers read
        case-insensitively)."""
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def stop(self, grace: float = 30) -> Optional[int]:
        """SIGTERM to the serving entry (it forwards it to the server, as on ``docker stop``),
        then, past ``grace``, SIGKILL to unshare, which takes the whole namespace with it."""
        if self.process is None:
            return None
        try:
            for child in psutil.Process(self.process.pid).children():
                child.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
        try:
            return self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=30)

    def log_tail(self, size: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""
