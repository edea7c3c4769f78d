"""Horovod on one host, both launch paths: real Horovod (built by scripts/horovod-wheel.sh), real
MXNet, real MNIST, real Open MPI and sshd on loopback.

The workers are started here from the launch modules' commands, as ``train`` starts them."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import EXAMPLES, MNIST_SUBSET, REPO, apt_install_missing, failing_rank_script

from sagemaker_mxnet_container import cluster
from sagemaker_mxnet_container.errors import ToolkitError
from sagemaker_mxnet_container.horovod import gloo, mpi, mpi_rank
from sagemaker_mxnet_container.horovod import launch as horovod_launch

sys.path.insert(0, str(EXAMPLES))
import evaluate  # noqa: E402

HOROVOD_MNIST = REPO / "examples" / "horovod" / "mnist.py"
# Horovod's own failure detection plus ours must end the job within this after a rank fails.
FAIL_FAST_SECONDS = 30

FAILING_RANK = failing_rank_script(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_all(commands, timeout):
    """Starts every (argv, env) at once; when one fails the others are ended, as the supervisor's
    fail-fast does. Returns [(exit code, stderr)] and the seconds from start to the last exit."""
    started = time.monotonic()
    processes = [
        subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
        for argv, env in commands
    ]
    try:
        deadline = started + timeout
        while any(p.poll() is None for p in processes):
            assert time.monotonic() < deadline, f"workers still running after {timeout} s"
            if any(p.returncode not in (None, 0) for p in processes):
                for process in processes:
                    if process.poll() is None:
                        os.killpg(process.pid, signal.SIGTERM)
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        return [(p.returncode, p.stderr.read()) for p in processes], elapsed
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def sm_environment(tmp_path):
    return {
        **os.environ,
        "SM_CHANNEL_TRAIN": str(MNIST_SUBSET / "train"),
        "SM_CHANNEL_TEST": str(MNIST_SUBSET / "test"),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output" / "data"),
        "SM_CURRENT_HOST": "algo-1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
    }


class Rendezvous:
    """The first host's rendezvous server, as ``train`` runs it: a child for the whole job."""

    def __init__(self, hosts, processes_per_host):
        self.port = free_port()
        self.process = subprocess.Popen(
            gloo.rendezvous_command(hosts, processes_per_host, self.port), stderr=subprocess.PIPE, text=True
        )
        gloo.wait_for_rendezvous("127.0.0.1", self.port, timeout=60)

    def stop(self):
        self.process.terminate()
        assert self.process.wait(timeout=10) == 0


@pytest.fixture
def rendezvous(horovod):
    started = []

    def start(hosts=("algo-1",), processes_per_host=2):
        server = Rendezvous(list(hosts), processes_per_host)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()


def gloo_workers(rendezvous, program, environment, processes=2):
    server = rendezvous(processes_per_host=processes)
    return gloo.worker_commands(
        [sys.executable, *program], ["algo-1"], "algo-1", processes, ("127.0.0.1", server.port), "lo", environment
    )


def mpirun_workers(program, environment, processes=2):
    as_root = os.geteuid() == 0
    argv = mpi.mpirun_command(
        [sys.executable, *program], ["algo-1"], processes, environment, interface="lo", as_root=as_root
    )
    return [(argv, mpi.mpirun_environment(environment, as_root))]


def rank_records(tmp_path):
    return sorted(
        (json.loads(path.read_text()) for path in (tmp_path / "output" / "data").glob("rank-*.json")),
        key=lambda record: record["rank"],
    )


# -- the plan: pure functions ---------------------------------------------------------------


def test_ranks_are_ordered_host_by_host():
    plan = gloo.slots(["algo-1", "algo-2"], 2)

    assert [(s.host, s.rank, s.local_rank, s.cross_rank) for s in plan] == [
        ("algo-1", 0, 0, 0),
        ("algo-1", 1, 1, 0),
        ("algo-2", 2, 0, 1),
        ("algo-2", 3, 1, 1),
    ]
    assert {(s.size, s.local_size, s.cross_size) for s in plan} == {(4, 2, 2)}


@pytest.mark.parametrize("hosts, processes", [(1, 1), (1, 3), (2, 2), (3, 2), (4, 1)])
def test_the_plan_is_the_one_horovods_rendezvous_serves(horovod, hosts, processes):
    from sagemaker_mxnet_container.horovod import rendezvous

    names = [f"algo-{index}" for index in range(1, hosts + 1)]
    theirs = rendezvous.plan(names, processes)

    assert [
        (s.host, s.rank, s.size, s.local_rank, s.local_size, s.cross_rank, s.cross_size)
        for s in gloo.slots(names, processes)
    ] == [(s.hostname, s.rank, s.size, s.local_rank, s.local_size, s.cross_rank, s.cross_size) for s in theirs]


def test_each_host_starts_only_its_own_ranks_with_horovods_variables():
    base = {"SM_CURRENT_HOST": "algo-2", "PATH": "/usr/bin"}

    commands = gloo.worker_commands(
        ["python", "train.py", "--epochs", "1"], ["algo-1", "algo-2"], "algo-2", 2, ("10.0.0.1", 29400), "eth0", base
    )

    assert [argv for argv, _ in commands] == [["python", "train.py", "--epochs", "1"]] * 2
    first, second = (env for _, env in commands)
    assert (first["HOROVOD_RANK"], second["HOROVOD_RANK"]) == ("2", "3")
    assert (first["HOROVOD_LOCAL_RANK"], second["HOROVOD_LOCAL_RANK"]) == ("0", "1")
    assert first["HOROVOD_CROSS_RANK"] == "1" and first["HOROVOD_CROSS_SIZE"] == "2"
    assert (first["HOROVOD_SIZE"], first["HOROVOD_LOCAL_SIZE"]) == ("4", "2")
    assert first["HOROVOD_HOSTNAME"] == "algo-2"
    assert (first["HOROVOD_GLOO_RENDEZVOUS_ADDR"], first["HOROVOD_GLOO_RENDEZVOUS_PORT"]) == ("10.0.0.1", "29400")
    assert (first["HOROVOD_CONTROLLER"], first["HOROVOD_CPU_OPERATIONS"], first["HOROVOD_GLOO_IFACE"]) == (
        "gloo",
        "gloo",
        "eth0",
    )
    assert first["PATH"] == "/usr/bin" and base == {"SM_CURRENT_HOST": "algo-2", "PATH": "/usr/bin"}


def test_a_one_host_job_talks_over_loopback_and_a_cluster_over_its_interface():
    assert gloo.interface_for(["algo-1"], "eth0") == "lo"
    assert gloo.interface_for(["algo-1", "algo-2"], "eth0") == "eth0"


def test_workers_share_the_cpus_instead_of_each_taking_them_all():
    assert gloo.threads_per_worker(8, 2) == 4
    assert gloo.threads_per_worker(2, 4) == 1


def test_mpirun_gets_an_argument_list_with_the_custom_options_verbatim():
    options = ("-x", "NCCL_DEBUG=INFO", ";", "rm", "-rf", "/")

    argv = mpi.mpirun_command(
        ["python", "train.py"],
        ["algo-1", "algo-2"],
        2,
        {"SM_HOSTS": "[]", "SECRET_TOKEN": "x", "PATH": "/usr/bin"},
        interface="eth0",
        custom_options=options,
        ssh_port=2222,
        ssh_key="/keys/id",
    )

    assert argv[:5] == ["mpirun", "--host", "algo-1:2,algo-2:2", "-np", "4"]
    assert argv[argv.index("--map-by") + 1] == "slot"
    separator = argv.index("--")
    assert argv[separator:] == ["--", sys.executable, "-m", "sagemaker_mxnet_container.horovod.mpi_rank", "2", "--"] + [
        "python",
        "train.py",
    ]
    assert tuple(argv[separator - len(options) : separator]) == options
    exported = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-x"]
    assert {"SM_HOSTS", "PATH", "HOROVOD_CONTROLLER=mpi"} <= set(exported) and "SECRET_TOKEN" not in exported
    ssh_args = argv[argv.index("plm_rsh_args") + 1]
    assert "-p 2222" in ssh_args and "-i /keys/id" in ssh_args
    assert argv[argv.index("btl_tcp_if_include") + 1] == "eth0"
    assert "--allow-run-as-root" not in argv


# -- real training ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory, horovod):
    """Each launch path's run of the Horovod MNIST example, once per module."""
    results = {}

    def train(launcher):
        if launcher not in results:
            tmp_path = tmp_path_factory.mktemp(launcher)
            environment = sm_environment(tmp_path)
            program = [str(HOROVOD_MNIST), "--epochs", "10"]
            if launcher == "gloo":
                server = Rendezvous(["algo-1"], 2)
                try:
                    commands = gloo.worker_commands(
                        [sys.executable, *program],
                        ["algo-1"],
                        "algo-1",
                        2,
                        ("127.0.0.1", server.port),
                        "lo",
                        environment,
                    )
                    outcome = run_all(commands, timeout=300)
                finally:
                    server.stop()
            else:
                outcome = run_all(mpirun_workers(program, environment), timeout=300)
            results[launcher] = (tmp_path, outcome)
        return results[launcher]

    return train


@pytest.mark.parametrize("launcher", ["gloo", "mpirun"])
def test_two_ranks_train_mnist_to_identical_weights_and_rank_0_saves_a_good_model(trained, launcher):
    tmp_path, (results, _elapsed) = trained(launcher)

    assert all(code == 0 for code, _ in results), [stderr[-3000:] for _, stderr in results]
    records = rank_records(tmp_path)
    assert [(r["rank"], r["size"], r["local_rank"], r["local_size"]) for r in records] == [(0, 2, 0, 2), (1, 2, 1, 2)]
    assert records[0]["weights_sha256"] == records[1]["weights_sha256"]
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "model-0000.params",
        "model-shapes.json",
        "model-symbol.json",
    ]
    assert evaluate.accuracy(str(tmp_path / "model"), str(MNIST_SUBSET / "test")) >= 0.9


def test_both_launch_paths_train_the_same_model(trained):
    digests = {launcher: rank_records(trained(launcher)[0])[0]["weights_sha256"] for launcher in ("gloo", "mpirun")}

    assert digests["gloo"] == digests["mpirun"]


@pytest.mark.parametrize("launcher", ["gloo", "mpirun"])
def test_a_failing_rank_ends_every_rank_quickly_with_its_error(rendezvous, tmp_path, launcher):
    script = tmp_path / "fails.py"
    script.write_text(FAILING_RANK)
    environment = sm_environment(tmp_path)
    if launcher == "gloo":
        commands = gloo_workers(rendezvous, [str(script)], environment)
    else:
        commands = mpirun_workers([str(script)], environment)

    results, elapsed = run_all(commands, timeout=120)

    assert elapsed < FAIL_FAST_SECONDS
    assert all(code != 0 for code, _ in results)
    assert any("rank 1 cannot go on: disk full" in stderr for _, stderr in results)


def test_more_ranks_than_cpus_still_train(rendezvous, tmp_path):
    processes = (os.cpu_count() or 1) + 1
    commands = gloo_workers(
        rendezvous, [str(HOROVOD_MNIST), "--epochs", "1"], sm_environment(tmp_path), processes=processes
    )

    results, _ = run_all(commands, timeout=300)

    assert all(code == 0 for code, _ in results), [stderr[-2000:] for _, stderr in results]
    assert len({r["weights_sha256"] for r in rank_records(tmp_path)}) == 1
    assert len(rank_records(tmp_path)) == processes


# -- bounded waits and clear failures ---------------------------------------------------------


def test_waiting_for_an_absent_rendezvous_gives_up_within_its_timeout():
    port = free_port()
    started = time.monotonic()

    with pytest.raises(ToolkitError, match=f"127.0.0.1:{port}.*within 1 s"):
        gloo.wait_for_rendezvous("127.0.0.1", port, timeout=1)
    assert time.monotonic() - started < 5


def test_a_rendezvous_port_in_use_is_a_clear_failure(horovod):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run(gloo.rendezvous_command(["algo-1"], 2, port), capture_output=True, text=True, timeout=60)

    assert run.returncode == 2
    assert f"cannot listen on 0.0.0.0:{port}" in run.stderr and "sagemaker_horovod_rendezvous_port" in run.stderr


def test_waiting_for_sshd_names_the_hosts_that_never_answered():
    port = free_port()

    with pytest.raises(ToolkitError, match=f"sshd on 127.0.0.1 did not answer on port {port} within 1 s"):
        mpi.wait_for_sshd(["127.0.0.1"], port, timeout=1)


def test_sshd_with_job_keys_lets_the_key_holder_in_and_no_one_else(tmp_path):
    apt_install_missing({"sshd": "openssh-server", "ssh": "openssh-client", "ssh-keygen": "openssh-client"})
    if os.geteuid() != 0:
        pytest.skip("sshd must run as root to accept logins for this user without PAM")
    key = mpi.ensure_client_key(str(tmp_path / "client"))
    stranger = mpi.ensure_client_key(str(tmp_path / "stranger"))
    port = free_port()
    config = mpi.prepare_sshd(str(tmp_path / "sshd"), [mpi.public_key(key)], port=port)
    sshd = subprocess.Popen(mpi.sshd_command(config), stderr=subprocess.PIPE, text=True)
    try:
        mpi.wait_for_sshd(["127.0.0.1"], port, timeout=30)

        def login(identity):
            return subprocess.run(
                [
                    "ssh",
                    "-p",
                    str(port),
                    "-i",
                    identity,
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    "IdentitiesOnly=yes",
                    "127.0.0.1",
                    "echo",
                    "in",
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )

        assert login(key).stdout.strip() == "in"
        assert login(stranger).returncode == 255
    finally:
        sshd.terminate()
        sshd.wait(timeout=10)


def test_the_failure_names_the_rank_that_raised_not_the_ones_horovod_shut_down():
    # As mpirun prints it: every chunk a rank writes is tagged, also inside a line.
    tail = [
        "[1,0]<stderr>:Traceback (most recent call last):",
        "[1,0]<stderr>:mxnet.base.MXNetError: MXNetError: Horovod has been shut down. This was caused by",
        "[1,1]<stderr>:Traceback (most recent call last):",
        '[1,1]<stderr>:  File "/opt/ml/code/train.py", line 13, in <module>',
        '    [1,1]<stderr>:raise RuntimeError("disk full")[1,1]<stderr>:',
        "RuntimeError[1,1]<stderr>:: [1,1]<stderr>:disk full[1,1]<stderr>:",
    ]

    rank, lines = horovod_launch.failing_rank_lines(tail)

    assert rank == 1
    assert lines[-2:] == ['    raise RuntimeError("disk full")', "RuntimeError: disk full"]
    assert horovod_launch.is_consequence(["MXNetError: Horovod has been shut down. This was caused by"])
    assert not horovod_launch.is_consequence(lines)


def test_a_rank_mpirun_starts_on_another_host_is_told_that_host():
    environ = {
        "SM_HOSTS": '["algo-1", "algo-2"]',
        "SM_CURRENT_HOST": "algo-1",
        "SM_IS_MASTER": "true",
        "SM_TRAINING_ENV": '{"current_host": "algo-1", "is_master": true, "hosts": ["algo-1", "algo-2"]}',
    }

    on_second = mpi_rank.host_environment({**environ, "OMPI_COMM_WORLD_RANK": "2"}, processes_per_host=2)
    on_first = mpi_rank.host_environment({**environ, "OMPI_COMM_WORLD_RANK": "1"}, processes_per_host=2)

    assert (on_second["SM_CURRENT_HOST"], on_second["SM_IS_MASTER"]) == ("algo-2", "false")
    assert json.loads(on_second["SM_TRAINING_ENV"])["current_host"] == "algo-2"
    assert json.loads(on_second["SM_TRAINING_ENV"])["is_master"] is False
    assert (on_first["SM_CURRENT_HOST"], on_first["SM_IS_MASTER"]) == ("algo-1", "true")


def test_a_taken_rendezvous_port_is_named_with_the_setting_that_moves_it():
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]

        setting = "sagemaker_horovod_rendezvous_port"
        with pytest.raises(ToolkitError, match=f"Port {port} on algo-1 is in use.*{setting}"):
            cluster.check_port_free(port, "algo-1", "the Horovod rendezvous server", setting)
    cluster.check_port_free(port, "algo-1", "the Horovod rendezvous server", setting)
