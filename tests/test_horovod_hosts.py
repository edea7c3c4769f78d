"""Horovod across hosts: two hosts x two ranks, each host a network namespace of its own running
the real ``train`` on its own /opt/ml tree, over Gloo and over mpirun with sshd."""

import json
import os
import sys
import time

import pytest
from conftest import EXAMPLES, MNIST_SUBSET, REPO, apt_install_missing, failing_rank_script, host_jobs

sys.path.insert(0, str(EXAMPLES))
import evaluate  # noqa: E402

EXAMPLE = {"sagemaker_program": "mnist.py", "sagemaker_submit_directory": str(REPO / "examples" / "horovod")}
MNIST = {"train": MNIST_SUBSET / "train", "test": MNIST_SUBSET / "test"}

FAILING_RANK = failing_rank_script(3)


def horovod_hyperparameters(launcher, **more):
    return {
        "sagemaker_mpi_enabled": True,
        "sagemaker_mpi_num_of_processes_per_host": 2,
        "sagemaker_mpi_launcher": launcher,
        **more,
    }


def run_hosts(network, jobs, timeout, ssh_dir):
    """Runs ``train`` on every host; returns {host: (exit code, output, seconds)} once all ended,
    after checking that nothing of the job is left running on any host."""
    import netns

    started = time.monotonic()
    processes = {}
    for host, job in jobs.items():
        # Each host its own name too, as on the platform: Open MPI tells nodes apart by it, and
        # Horovod 0.28.1 binds its per-process-set Gloo devices to the address of that name,
        # whatever HOROVOD_GLOO_IFACE says.
        argv = ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', host, *netns.train_argv()]
        environ = {"SAGEMAKER_BASE_DIR": str(job.base), "PYTHONUNBUFFERED": "1", "SAGEMAKER_MXNET_SSH_DIR": ssh_dir}
        processes[host] = network.start(host, argv, {**os.environ, **environ}, job.log)
    codes = netns.wait_all(processes, timeout)
    seconds = time.monotonic() - started
    for process in processes.values():
        if process.poll() is None:
            process.kill()
    assert None not in codes.values(), f"hosts still running after {timeout} s: {codes}"
    deadline = time.monotonic() + 5
    while any(network.pids(host) for host in jobs):
        assert time.monotonic() < deadline, {host: network.pids(host) for host in jobs}
        time.sleep(0.1)
    return {host: (codes[host], job.log.read_text(errors="replace"), seconds) for host, job in jobs.items()}


@pytest.mark.parametrize("launcher", ["gloo", "mpirun"])
def test_two_hosts_with_two_ranks_each_train_one_model(horovod, cluster, make_job, tmp_path, launcher):
    if launcher == "mpirun":
        apt_install_missing({"sshd": "openssh-server", "ssh": "openssh-client"})
    network = cluster(2).network
    jobs = host_jobs(make_job, network.hosts, horovod_hyperparameters(launcher, epochs=10, **EXAMPLE), MNIST)

    results = run_hosts(network, jobs, timeout=300, ssh_dir=str(tmp_path / "ssh"))

    for host, (code, output, _) in results.items():
        assert code == 0, f"{host}:\n{output[-4000:]}"
    records = sorted(
        (json.loads(p.read_text()) for job in jobs.values() for p in (job.output_dir / "data").glob("rank-*.json")),
        key=lambda record: record["rank"],
    )
    assert [(r["rank"], r["host"], r["local_rank"], r["cross_rank"]) for r in records] == [
        (0, "algo-1", 0, 0),
        (1, "algo-1", 1, 0),
        (2, "algo-2", 0, 1),
        (3, "algo-2", 1, 1),
    ]
    assert len({r["weights_sha256"] for r in records}) == 1
    assert list(jobs["algo-2"].model_dir.iterdir()) == []
    assert evaluate.accuracy(str(jobs["algo-1"].model_dir), str(MNIST_SUBSET / "test")) >= 0.9


@pytest.mark.parametrize("launcher", ["gloo", "mpirun"])
def test_a_failing_rank_on_one_host_ends_the_job_on_both_within_30_seconds(
    horovod, cluster, make_job, tmp_path, launcher
):
    if launcher == "mpirun":
        apt_install_missing({"sshd": "openssh-server", "ssh": "openssh-client"})
    network = cluster(2).network
    jobs = host_jobs(make_job, network.hosts, horovod_hyperparameters(launcher, sagemaker_program="train.py"))
    for job in jobs.values():
        job.code_dir.mkdir()
        (job.code_dir / "train.py").write_text(FAILING_RANK)

    results = run_hosts(network, jobs, timeout=120, ssh_dir=str(tmp_path / "ssh"))

    for host, (code, output, seconds) in results.items():
        assert code != 0, f"{host} succeeded:\n{output[-3000:]}"
        assert seconds < 30, f"{host} took {seconds:.0f} s"
        failure = jobs[host].failure
        assert "RuntimeError: rank 3 cannot go on: disk full" in failure.splitlines()[0], failure
        assert "Horovod rank 3 on algo-2" in failure


LONG_TRAINING = """\
import os
import time
import horovod.mxnet as hvd
import mxnet as mx

hvd.init()
open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], f"started-{hvd.rank()}"), "w").close()
x = mx.nd.ones((16,))
while True:
    hvd.allreduce(x, name="x").wait_to_read()
    time.sleep(0.01)
"""


@pytest.mark.parametrize("launcher", ["gloo", "mpirun"])
def test_a_lost_host_ends_the_job_on_the_other_naming_it(horovod, cluster, make_job, tmp_path, launcher):
    import netns

    if launcher == "mpirun":
        apt_install_missing({"sshd": "openssh-server", "ssh": "openssh-client"})
    network = cluster(2).network
    jobs = host_jobs(make_job, network.hosts, horovod_hyperparameters(launcher, sagemaker_program="train.py"))
    for job in jobs.values():
        job.code_dir.mkdir()
        (job.code_dir / "train.py").write_text(LONG_TRAINING)
    processes = {}
    for host, job in jobs.items():
        argv = ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', host, *netns.train_argv()]
        environ = {"SAGEMAKER_BASE_DIR": str(job.base), "SAGEMAKER_MXNET_SSH_DIR": str(tmp_path / "ssh")}
        processes[host] = network.start(host, argv, {**os.environ, **environ}, job.log)
    deadline = time.monotonic() + 120
    # Under mpirun every rank has the first host's SM_OUTPUT_DATA_DIR, which the hosts here share.
    while sum(len(list((job.output_dir / "data").glob("started-*"))) for job in jobs.values()) < 4:
        assert time.monotonic() < deadline, jobs["algo-1"].log.read_text()[-3000:]
        time.sleep(0.2)

    network.kill_host("algo-2")
    lost = time.monotonic()
    codes = netns.wait_all({"algo-1": processes["algo-1"]}, timeout=150)

    assert codes["algo-1"] not in (None, 0), jobs["algo-1"].log.read_text()[-3000:]
    assert time.monotonic() - lost < 120
    assert "algo-2" in jobs["algo-1"].failure.splitlines()[0]
