"""Horovod jobs through the real ``train``: ``sagemaker_mpi_enabled`` runs the script once per rank,
over Gloo (the default) or mpirun, with real Horovod, MXNet and MNIST on one host."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
from conftest import (
    EXAMPLES,
    MNIST_SUBSET,
    REPO,
    RUN_MARKER,
    failing_rank_script,
    processes_of_run,
    train_command,
    train_environ,
)

sys.path.insert(0, str(EXAMPLES))
import evaluate  # noqa: E402

EXAMPLE = {"sagemaker_program": "mnist.py", "sagemaker_submit_directory": str(REPO / "examples" / "horovod")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def horovod_hyperparameters(launcher, processes=2, **more):
    """The SDK's Horovod settings, plus ours; code_job's own train.py unless more names a program."""
    return {
        "sagemaker_mpi_enabled": True,
        "sagemaker_mpi_num_of_processes_per_host": processes,
        "sagemaker_mpi_launcher": launcher,
        # Tests run side by side; each job gets its own rendezvous port.
        "sagemaker_horovod_rendezvous_port": free_port(),
        **more,
    }


def rank_records(job):
    return sorted(
        (json.loads(path.read_text()) for path in (job.output_dir / "data").glob("rank-*.json")),
        key=lambda record: record["rank"],
    )


@pytest.mark.parametrize("launcher", ["gloo", "mpirun"])
def test_a_horovod_job_trains_on_two_ranks_and_rank_0_saves_a_good_model(horovod, mnist_job, run_checked, launcher):
    job = mnist_job(horovod_hyperparameters(launcher, epochs=10, **EXAMPLE))

    finished = run_checked(job, within=240)

    assert finished.exit_code == 0, finished.stderr[-3000:]
    records = rank_records(job)
    assert [(r["rank"], r["size"], r["local_rank"]) for r in records] == [(0, 2, 0), (1, 2, 1)]
    assert records[0]["weights_sha256"] == records[1]["weights_sha256"]
    assert evaluate.accuracy(str(job.model_dir), str(MNIST_SUBSET / "test")) >= 0.9
    assert "Ignoring hyperparameter sagemaker_mpi" not in finished.stderr


FAILING_RANK = failing_rank_script(1)


@pytest.mark.parametrize("launcher", ["gloo", "mpirun"])
def test_a_failing_rank_fails_the_job_quickly_with_that_ranks_error_first(horovod, code_job, run_checked, launcher):
    job = code_job(FAILING_RANK, horovod_hyperparameters(launcher))

    finished = run_checked(job, within=30)

    assert finished.exit_code != 0
    assert "RuntimeError: rank 1 cannot go on: disk full" in finished.reason
    assert "Horovod rank 1 on algo-1" in finished.failure


def test_a_legacy_module_cannot_be_run_as_horovod_ranks(horovod, code_job, run_checked):
    job = code_job("def train(**kwargs):\n    return None\n", horovod_hyperparameters("gloo"))

    finished = run_checked(job)

    assert "sagemaker_mpi_enabled" in finished.reason and "legacy-mode" in finished.reason


@pytest.mark.parametrize("launcher", ["gloo", "mpirun"])
def test_sigterm_reaches_every_rank_and_nothing_is_left_running(horovod, code_job, tmp_path, launcher):
    source = """
    import signal, sys, time
    import horovod.mxnet as hvd
    hvd.init()
    def stop(*_):
        open(os.path.join(MARKERS, f"stopped-{hvd.rank()}"), "w").close()
        sys.exit(3)
    signal.signal(signal.SIGTERM, stop)
    open(os.path.join(MARKERS, f"started-{hvd.rank()}"), "w").close()
    time.sleep(600)
    """
    job = code_job(source, {**horovod_hyperparameters(launcher), "sagemaker_stop_grace_seconds": 10})
    marker = uuid.uuid4().hex
    train = subprocess.Popen(
        train_command(), env=train_environ(job, {RUN_MARKER: marker}), stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while len(list(code_job.markers.glob("started-*"))) < 2:
            assert time.monotonic() < deadline and train.poll() is None, train.stderr.read()[-3000:]
            time.sleep(0.1)
        train.send_signal(signal.SIGTERM)
        assert train.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if train.poll() is None:
            train.kill()
    assert sorted(path.name for path in code_job.markers.glob("stopped-*")) == ["stopped-0", "stopped-1"]
    assert "SIGTERM" in job.failure
    time.sleep(1)
    assert processes_of_run(marker) == []


def test_more_ranks_than_cpus_run_oversubscribed_with_a_warning(horovod, mnist_job, run_checked):
    processes = (os.cpu_count() or 1) + 1
    job = mnist_job(horovod_hyperparameters("gloo", processes=processes, epochs=1, **EXAMPLE))

    finished = run_checked(job, within=240)

    assert finished.exit_code == 0, finished.stderr[-3000:]
    assert "oversubscribed" in finished.stderr
    assert len(rank_records(job)) == processes


def test_a_taken_rendezvous_port_fails_the_job_naming_the_port_and_the_setting(horovod, code_job, run_checked):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        job = code_job(
            "raise SystemExit('never runs')",
            {**horovod_hyperparameters("gloo"), "sagemaker_horovod_rendezvous_port": port},
        )

        finished = run_checked(job)

    assert f"Port {port} on algo-1 is in use" in finished.reason
    assert "sagemaker_horovod_rendezvous_port" in finished.reason


def test_custom_mpi_options_that_set_variables_reach_every_gloo_rank(horovod, code_job, run_checked):
    source = """
    import horovod.mxnet as hvd
    hvd.init()
    with open(os.path.join(MARKERS, f"rank-{hvd.rank()}"), "w") as stream:
        stream.write(os.environ["NCCL_DEBUG"] + " " + os.environ["SMMX_FLAG"])
    """
    options = {"sagemaker_mpi_custom_mpi_options": "-x NCCL_DEBUG=INFO -x 'SMMX_FLAG=a b'"}
    job = code_job(source, horovod_hyperparameters("gloo", **options))

    finished = run_checked(job, within=60, allowed_outside=[code_job.markers])

    assert finished.exit_code == 0, finished.stderr[-3000:]
    assert [path.read_text() for path in sorted(code_job.markers.glob("rank-*"))] == ["INFO a b", "INFO a b"]


def test_a_custom_mpi_option_without_meaning_under_gloo_fails_before_any_rank_runs(code_job, run_checked):
    options = {"sagemaker_mpi_custom_mpi_options": "-x NCCL_DEBUG=INFO --mca btl_tcp_if_include eth0"}
    job = code_job("open(os.path.join(MARKERS, 'ran'), 'w').close()\n", horovod_hyperparameters("gloo", **options))

    finished = run_checked(job)

    assert finished.exit_code == 1
    assert "'--mca' has no meaning under the Gloo launcher" in finished.reason
    assert not (code_job.markers / "ran").exists()
