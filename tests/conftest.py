"""Shared fixtures: a job's /opt/ml tree, the real ``train`` run as a subprocess, and a real S3
endpoint (moto's server over HTTP on 127.0.0.1)."""

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import textwrap
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
