"""Multi-host jobs on MXNet's parameter server, each host a network namespace of its own running
the real ``train``: training to a good model, and ending quickly and clearly when a host is lost.

Every host gets its own address and /etc/hosts, and the code comes from a real S3 endpoint on the
namespaces' bridge. Only the platform is missing: the tests start the hosts themselves.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import EXAMPLES, MNIST_SUBSET, host_jobs, make_tarball, tarball_of_directory
from netns import wait_all

sys.path.insert(0, str(EXAMPLES))
import evaluate  # noqa: E402

CHANNELS = {"train": MNIST_SUBSET / "train", "test": MNIST_SUBSET / "test"}
# A lost host must end the job on the others within this (the bound).
LOSS_DEADLINE = 120.0
TRAINING_TIMEOUT = 600.0

# A worker that keeps pushing and pulling through dist_sync until it is ended: it blocks in ps-lite
# as soon as another host stops answering. It writes a marker once the kvstore works.
ENDLESS_WORKER = """
import os, sys, time
import mxnet as mx

def train(current_host, output_data_dir):
    kv = mx.kv.create(os.environ["SM_KVSTORE"])
    kv.init(0, mx.nd.zeros((1000,)))
    out = mx.nd.zeros((1000,))
    step = 0
    while True:
        kv.push(0, mx.nd.ones((1000,)))
        kv.pull(0, out=out)
        out.wait_to_read()
        step += 1
        if step == 5:
            open(os.path.join(output_data_dir, "training"), "w").close()
        time.sleep(0.02)
"""


def _code(cluster, name: str, source: str) -> str:
    tarball = make_tarball({"worker.py": textwrap.dedent(source)})
    return cluster.s3.put("code", f"{name}/sourcedir.tar.gz", tarball)


def _wait_for(condition, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


def _logs(jobs) -> str:
    return "\n".join(f"--- {host}\n{job.log.read_text(errors='replace')[-4000:]}" for host, job in jobs.items())


def _assert_nothing_left(cluster) -> None:
    for host in cluster.hosts:
        assert cluster.network.pids(host) == [], f"processes left running on {host}"


def _assert_trained(cluster, jobs, codes, data=MNIST_SUBSET) -> None:
    assert codes == {host: 0 for host in jobs}, _logs(jobs)
    first, *others = cluster.hosts
    assert all(job.succeeded for job in jobs.values())
    assert sorted(path.name for path in jobs[first].model_dir.iterdir()) == [
        "model-0000.params",
        "model-shapes.json",
        "model-symbol.json",
    ]
    for host in others:
        assert list(jobs[host].model_dir.iterdir()) == [], f"{host} saved a model"
    assert evaluate.accuracy(str(jobs[first].model_dir), str(data / "test")) >= 0.95
    _assert_nothing_left(cluster)


@pytest.mark.parametrize(("mode", "hosts"), [("legacy", 2), ("legacy", 3), ("script", 2)])
def test_mnist_trains_across_hosts_with_dist_sync(cluster, make_job, mode, hosts):
    job_cluster = cluster(hosts)
    uri = job_cluster.s3.put("code", f"{mode}/sourcedir.tar.gz", tarball_of_directory(EXAMPLES / mode))
    # A script asks for the parameter server, as the SDK's distribution={"parameter_server": ...} does.
    asked = {"sagemaker_parameter_server_enabled": True} if mode == "script" else {}
    jobs = host_jobs(
        make_job,
        job_cluster.hosts,
        {"sagemaker_program": "mnist.py", "sagemaker_submit_directory": uri, "epochs": 10, **asked},
        CHANNELS,
    )

    codes = wait_all(job_cluster.start(jobs), TRAINING_TIMEOUT)

    _assert_trained(job_cluster, jobs, codes)
    for job in jobs.values():
        assert f"in {mode} mode" in job.log.read_text()
        assert "kvstore dist_sync" in job.log.read_text()


def test_a_script_that_does_not_ask_for_the_parameter_server_trains_alone_on_each_host(cluster, make_job):
    # As in the official MXNet toolkit: the parameter server runs only with sagemaker_parameter_server_enabled.
    job_cluster = cluster(2)
    source = """
    import json, os
    seen = {"kvstore": os.environ["SM_KVSTORE"], "dmlc": sorted(k for k in os.environ if k.startswith("DMLC_"))}
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "seen.json"), "w") as stream:
        json.dump(seen, stream)
    """
    uri = _code(job_cluster, "alone", "if __name__ == '__main__':\n" + textwrap.indent(textwrap.dedent(source), "    "))
    jobs = host_jobs(
        make_job,
        job_cluster.hosts,
        {"sagemaker_program": "worker.py", "sagemaker_submit_directory": uri},
    )

    codes = wait_all(job_cluster.start(jobs), TRAINING_TIMEOUT)

    assert codes == {"algo-1": 0, "algo-2": 0}, _logs(jobs)
    for job in jobs.values():
        assert (job.output_dir / "data" / "seen.json").read_text() == '{"kvstore": "local", "dmlc": []}'
    _assert_nothing_left(job_cluster)


# --- losing a host ---------------------------------------------------------------------------


def _start_endless(cluster, make_job, hosts, extra=None):
    job_cluster = cluster(hosts)
    uri = _code(job_cluster, "endless", ENDLESS_WORKER)
    jobs = host_jobs(make_job, job_cluster.hosts, {"sagemaker_program": "worker.py", "sagemaker_submit_directory": uri})
    processes = job_cluster.start(jobs, extra)
    for host, job in jobs.items():
        _wait_for(lambda job=job: (job.output_dir / "data" / "training").exists(), f"training on {host}")
    return job_cluster, jobs, processes


@pytest.mark.parametrize("lost", ["algo-2", "algo-1"])
def test_a_host_that_dies_mid_training_ends_the_job_on_the_others(cluster, make_job, lost):
    job_cluster, jobs, processes = _start_endless(cluster, make_job, 3)

    killed_at = time.monotonic()
    job_cluster.network.kill_host(lost)
    survivors = {host: process for host, process in processes.items() if host != lost}
    codes = wait_all(survivors, LOSS_DEADLINE)

    assert time.monotonic() - killed_at < LOSS_DEADLINE
    assert all(code not in (0, None) for code in codes.values()), _logs(jobs)
    for host in survivors:
        failure = jobs[host].failure
        assert failure.startswith(f"Host {lost} ("), failure
        assert "was lost" in failure.splitlines()[0]
        assert not (jobs[host].output_dir / "success").exists()
    if lost == "algo-1":
        assert "the first host, which runs the parameter-server scheduler" in jobs["algo-2"].failure
    _assert_nothing_left(job_cluster)


def test_stopping_every_host_ends_the_job_everywhere_and_leaves_nothing(cluster, make_job):
    job_cluster, jobs, processes = _start_endless(cluster, make_job, 2)

    # The platform's StopTrainingJob: SIGTERM to every host's train (ip netns exec became it).
    for process in processes.values():
        process.send_signal(signal.SIGTERM)
    codes = wait_all(processes, LOSS_DEADLINE)

    assert all(code not in (0, None) for code in codes.values()), _logs(jobs)
    for job in jobs.values():
        first_line = job.failure.splitlines()[0]
        assert first_line.startswith(("Training job stopped: SIGTERM", "Training failed on host")), first_line
        assert "SIGTERM" in first_line
    _assert_nothing_left(job_cluster)


# The default heartbeat timeout (10 s) plus the time to end the survivor's processes.
SILENCE_DEADLINE = 25.0


def test_a_host_that_hangs_is_noticed_by_its_silence(cluster, make_job):
    job_cluster, jobs, processes = _start_endless(cluster, make_job, 2)

    # Every process of algo-2 stops but its connections stay open, as on a frozen instance.
    stopped_at = time.monotonic()
    job_cluster.network.signal_host("algo-2", signal.SIGSTOP)
    codes = wait_all({"algo-1": processes["algo-1"]}, LOSS_DEADLINE)

    assert codes["algo-1"] not in (0, None), _logs(jobs)
    assert time.monotonic() - stopped_at < SILENCE_DEADLINE
    failure = jobs["algo-1"].failure
    assert failure.startswith("Host algo-2 (a host) was lost: nothing was heard from it for 1"), failure
    job_cluster.network.kill_host("algo-2")


def test_a_partitioned_host_is_noticed_within_the_default_heartbeat_timeout(cluster, make_job):
    # The case: the network is cut, the processes live on, so no connection closes; the
    # job ended only after 30 s of silence.
    job_cluster, jobs, processes = _start_endless(cluster, make_job, 2)

    cut_at = time.monotonic()
    job_cluster.network.cut("algo-2")
    codes = wait_all(processes, LOSS_DEADLINE)

    assert codes["algo-1"] not in (0, None) and codes["algo-2"] not in (0, None), _logs(jobs)
    assert time.monotonic() - cut_at < SILENCE_DEADLINE
    first_lines = {host: job.failure.splitlines()[0] for host, job in jobs.items()}
    assert first_lines["algo-1"].startswith("Host algo-2 (a host) was lost: nothing was heard from it for 1")
    assert first_lines["algo-2"].startswith("Host algo-1 (the first host, which runs the parameter-server scheduler)")
    _assert_nothing_left(job_cluster)


def test_a_user_error_on_one_host_ends_the_others_with_that_error(cluster, make_job):
    job_cluster = cluster(2)
    source = ENDLESS_WORKER.replace(
        "        time.sleep(0.02)",
        "        time.sleep(0.02)\n"
        "        if step == 20 and current_host == 'algo-2':\n"
        "            raise ValueError('the learning rate exploded on algo-2')",
    )
    uri = _code(job_cluster, "failing", source)
    jobs = host_jobs(make_job, job_cluster.hosts, {"sagemaker_program": "worker.py", "sagemaker_submit_directory": uri})

    codes = wait_all(job_cluster.start(jobs), LOSS_DEADLINE + 60)

    assert codes["algo-2"] == 1 and codes["algo-1"] not in (0, None), _logs(jobs)
    assert jobs["algo-2"].failure.startswith("ValueError: the learning rate exploded on algo-2")
    assert jobs["algo-1"].failure.startswith(
        "Training failed on host algo-2: ValueError: the learning rate exploded on algo-2"
    )
    _assert_nothing_left(job_cluster)


# --- hosts that never meet -------------------------------------------------------------------


def test_a_host_name_that_never_resolves_fails_the_job_naming_it(make_job, run_train):
    job = make_job({"sagemaker_program": "train.py"}, hosts=("localhost", "algo-9.invalid"), current_host="localhost")

    started = time.monotonic()
    run = run_train(job, env={"SAGEMAKER_MXNET_HOST_WAIT_SECONDS": "3"}, timeout=60)

    assert run.returncode == 1
    assert job.failure.startswith("Host algo-9.invalid did not resolve within 3 s"), job.failure
    assert time.monotonic() - started < 30


def test_a_host_that_never_joins_fails_the_job_naming_it(cluster, make_job):
    job_cluster = cluster(2)
    uri = _code(job_cluster, "lonely", ENDLESS_WORKER)
    jobs = host_jobs(make_job, job_cluster.hosts, {"sagemaker_program": "worker.py", "sagemaker_submit_directory": uri})

    processes = job_cluster.start({"algo-1": jobs["algo-1"]}, {"SAGEMAKER_MXNET_HOST_WAIT_SECONDS": "5"})
    codes = wait_all(processes, 60)

    assert codes == {"algo-1": 1}, _logs(jobs)
    assert jobs["algo-1"].failure.startswith("Host(s) algo-2 did not join the job within 5 s")
    _assert_nothing_left(job_cluster)


def test_hosts_that_boot_late_join_a_job_whose_other_hosts_already_wait(cluster, make_job):
    job_cluster = cluster(3)
    source = "import os\nif __name__ == '__main__':\n    print('ran on', os.environ['SM_CURRENT_HOST'])\n"
    uri = job_cluster.s3.put("code", "late/sourcedir.tar.gz", make_tarball({"worker.py": source}))
    jobs = host_jobs(make_job, job_cluster.hosts, {"sagemaker_program": "worker.py", "sagemaker_submit_directory": uri})
    # The wait for the last host lasts longer than the silence that counts as a lost host.
    extra = {"SAGEMAKER_MXNET_HEARTBEAT_TIMEOUT_SECONDS": "4"}

    early = job_cluster.start({host: jobs[host] for host in ("algo-1", "algo-2")}, extra)
    time.sleep(10)
    late = job_cluster.start({"algo-3": jobs["algo-3"]}, extra)
    codes = wait_all({**early, **late}, TRAINING_TIMEOUT)

    assert codes == {"algo-1": 0, "algo-2": 0, "algo-3": 0}, _logs(jobs)
    _assert_nothing_left(job_cluster)


def test_a_taken_scheduler_port_fails_every_host_naming_the_port(cluster, make_job):
    job_cluster = cluster(2)
    uri = _code(job_cluster, "port", ENDLESS_WORKER)
    jobs = host_jobs(make_job, job_cluster.hosts, {"sagemaker_program": "worker.py", "sagemaker_submit_directory": uri})
    squatter = subprocess.Popen(
        job_cluster.network.command(
            "algo-1",
            [sys.executable, "-c", "import socket, time; s = socket.socket(); s.bind(('0.0.0.0', 8000)); s.listen(); "
             "print('bound', flush=True); time.sleep(600)"],
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert squatter.stdout.readline().strip() == "bound"
        codes = wait_all(job_cluster.start(jobs), LOSS_DEADLINE)
    finally:
        squatter.kill()
        squatter.wait()

    assert codes == {"algo-1": 1, "algo-2": 1}, _logs(jobs)
    assert jobs["algo-1"].failure.startswith("Port 8000 on algo-1 is in use")
    assert jobs["algo-2"].failure.startswith("Training failed on host algo-1: Port 8000 on algo-1 is in use")
    _assert_nothing_left(job_cluster)


def test_the_liveness_port_must_differ_from_the_parameter_server_port(make_job, run_train):
    job = make_job({"sagemaker_parameter_server_port": 9000, "sagemaker_liveness_port": 9000})

    run = run_train(job, timeout=60)

    assert run.returncode == 1
    assert "need different ports" in job.failure.splitlines()[0]


# --- the local runner ------------------------------------------------------------------------


def test_train_local_runs_a_two_host_job_on_loopback_and_leaves_the_sdk_archives(tmp_path):
    import tarfile

    job_dir = tmp_path / "local-job"
    command = [
        sys.executable,
        "-m",
        "sagemaker_mxnet_container.local",
        "--hosts", "2",
        "--source-dir", str(EXAMPLES / "legacy"),
        "--entry-point", "mnist.py",
        "--channel", f"train={MNIST_SUBSET / 'train'}",
        "--channel", f"test={MNIST_SUBSET / 'test'}",
        "-p", "epochs=10",
        "--job-dir", str(job_dir),
    ]  # fmt: skip

    run = subprocess.run(command, capture_output=True, text=True, timeout=TRAINING_TIMEOUT)

    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    assert "algo-1: succeeded" in run.stdout and "algo-2: succeeded" in run.stdout
    assert "algo-2 | " in run.stdout and "kvstore dist_sync" in run.stdout
    model = tmp_path / "model"
    with tarfile.open(job_dir / "model.tar.gz") as archive:
        assert sorted(archive.getnames()) == ["model-0000.params", "model-shapes.json", "model-symbol.json"]
        archive.extractall(model)
    with tarfile.open(job_dir / "output.tar.gz") as archive:
        assert {"success", "data/metrics.csv", "data/training-curves.png"} <= set(archive.getnames())
    curves = job_dir / "algo-1" / "output" / "data" / "training-curves.png"
    assert f"Training curves and metrics of algo-1: {curves} " in run.stdout
    # Each host records its own.
    assert (job_dir / "algo-2" / "output" / "data" / "training-curves.png").is_file()
    assert evaluate.accuracy(str(model), str(MNIST_SUBSET / "test")) >= 0.95


def test_train_local_reports_the_failing_host_and_exits_with_its_code(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "fail.py").write_text(
        "import os, sys\nif __name__ == '__main__':\n"
        "    if os.environ['SM_CURRENT_HOST'] == 'algo-2':\n"
        "        sys.exit('no data for algo-2')\n"
    )

    run = subprocess.run(
        [sys.executable, "-m", "sagemaker_mxnet_container.local", "--hosts", "2", "--source-dir", str(code),
         "--entry-point", "fail.py", "--job-dir", str(tmp_path / "job")],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 1, run.stdout
    assert "algo-2: failed with exit code 1: " in run.stdout
    assert "algo-1: failed with exit code 1: Training failed on host algo-2" in run.stdout


# The link must not misfire under load (issue 16, item 9): with the default heartbeat timeout of
# 10 s, each host's program keeps more busy processes than there are cores at the supervisors'
# own priority, as many again at a lower one (other load on the instance), and floods stderr
# through the supervisor's tee (its threads then compete for the GIL), for three timeouts.
# Both hosts run on this machine (train-local), so their supervisors compete for the same cores.
# About 40 s of CI time, every core busy.
SATURATES = """
import os, subprocess, sys, time
SECONDS = {seconds}
burn = f"import time\\nend = time.monotonic() + {{SECONDS}}\\nwhile time.monotonic() < end:\\n    pass\\n"
cores = os.cpu_count()
busy = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(2 * cores)]
busy += [subprocess.Popen(["nice", "-n", "10", sys.executable, "-c", burn]) for _ in range(2 * cores)]
end = time.monotonic() + SECONDS
while time.monotonic() < end:
    sys.stderr.write("loss 0.25 " + "x" * 200 + "\\n")
for process in busy:
    process.wait()
open(os.path.join(os.environ["SM_MODEL_DIR"], "done"), "w").close()
"""


def test_the_link_does_not_misfire_when_every_core_is_saturated(tmp_path):
    from sagemaker_mxnet_container import settings

    timeout = settings.Settings().heartbeat_timeout_seconds
    code = tmp_path / "code"
    code.mkdir()
    (code / "saturate.py").write_text(
        "if __name__ == '__main__':\n" + textwrap.indent(SATURATES.format(seconds=3 * timeout), "    ")
    )
    environ = {key: value for key, value in os.environ.items() if not key.startswith("SAGEMAKER_MXNET_")}

    run = subprocess.run(
        [sys.executable, "-m", "sagemaker_mxnet_container.local", "--hosts", "2", "--source-dir", str(code),
         "--entry-point", "saturate.py", "--job-dir", str(tmp_path / "job"),
         "-p", "sagemaker_parameter_server_enabled=false"],
        # Half a gigabyte of output: nobody reads it.
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environ,
        timeout=3 * timeout + 120,
    )  # fmt: skip

    failures = {host: (tmp_path / "job" / host / "output" / "failure") for host in ("algo-1", "algo-2")}
    assert run.returncode == 0, {host: path.read_text() for host, path in failures.items() if path.exists()}
    for host in failures:
        assert (tmp_path / "job" / host / "model" / "done").exists()
        assert (tmp_path / "job" / host / "output" / "success").exists()
