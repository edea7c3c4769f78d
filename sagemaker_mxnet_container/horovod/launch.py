"""This host's part of a Horovod job, on either launch path, under the supervisor.

Gloo (the default): the first host runs the rendezvous server as a background child; once every
host has reached the start line (a barrier on the link between the hosts' supervisors), each
starts its own ranks side by side with ``run_all``, whose fail-fast ends them all when one fails;
the link carries a failure to the other hosts. MPI: every host but the first runs sshd as a
background child; after the start line the first host checks (bounded) that each sshd answers and
runs ``mpirun``, which starts every rank and ends them all when one fails. The ranks and servers
are children of the supervisor (the ranks mpirun starts elsewhere, of that host's sshd), so a
stop signal reaches them and nothing outlives the job.

    with launch.launch(job, supervisor, settings, child_env, code_dir) as launcher:
        result, reason = launcher.run(command, name, num_cpus)   # (None, None): nothing runs here
        ...check the outcome, then job.finish(supervisor)
"""

import contextlib
import logging
import os
import re
import shutil
import tempfile
from dataclasses import replace
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from sagemaker_mxnet_container import cluster, outcome
from sagemaker_mxnet_container.horovod import gloo, mpi
from sagemaker_mxnet_container.horovod.settings import GLOO, HorovodSettings
from sagemaker_mxnet_container.runner import Command, Observer, ProcessResult, Supervisor

logger = logging.getLogger(__name__)

# Once every host has reached the start line, the rendezvous server or sshd is already running;
# this only covers the network between the hosts.
CONNECT_SECONDS = 120.0
_TAG = re.compile(r"\[\d+,(\d+)\]<(?:stdout|stderr)>:")
_SHUT_DOWN = "Horovod has been shut down"


class Launcher:
    def __init__(self, job, supervisor: Supervisor, settings: HorovodSettings, base_env: Mapping[str, str], code_dir):
        self.job = job
        self.env = job.env
        self.supervisor = supervisor
        self.settings = settings
        self.base_env = dict(base_env)
        self.code_dir = code_dir

    def _address(self, host: str) -> str:
        return self.job.addresses.get(host, "127.0.0.1") if len(self.env.hosts) > 1 else "127.0.0.1"

    def run(
        self, command: Sequence[str], name: str, num_cpus: int, observer: Optional[Observer] = None
    ) -> Tuple[Optional[ProcessResult], Optional[str]]:
        """Runs this host's ranks to the end: (result, failure reason or None); (None, None) where
        this host runs none itself (MPI, not the first host: the first host's mpirun starts them).

        ``observer`` sees the output of this host's first rank (with mpirun, of every rank: all
        reach the first host through mpirun)."""
        if self.job.link is not None:
            # Every host has started what it serves the others with (rendezvous server, sshd)
            # before any rank starts. The link ends this wait if a host is lost or fails.
            self.job.link.barrier("horovod", poll=self.supervisor.poll)
        if self.settings.launcher == GLOO:
            return self._run_gloo(command, name, num_cpus, observer)
        if not self.env.is_first_host:
            return None, None
        return self._run_mpirun(command, name, num_cpus, observer)

    def _worker_env(self, num_cpus: int) -> dict:
        # The -x NAME=VALUE of sagemaker_mpi_custom_mpi_options (mpirun also gets them as options).
        env = {**self.base_env, **self.settings.worker_variables}
        if "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(gloo.threads_per_worker(num_cpus, self.settings.processes_per_host))
        return env

    def _run_gloo(self, command, name, num_cpus, observer):
        hosts = self.env.hosts
        rendezvous = (self._address(hosts[0]), self.settings.rendezvous_port)
        gloo.wait_for_rendezvous(*rendezvous, timeout=CONNECT_SECONDS)
        interface = gloo.interface_for(hosts, self.env.network_interface_name)
        workers = gloo.worker_commands(
            command,
            hosts,
            self.env.current_host,
            self.settings.processes_per_host,
            rendezvous,
            interface,
            self._worker_env(num_cpus),
        )
        commands = [
            Command(
                argv,
                env,
                self.code_dir,
                f"Horovod rank {env['HOROVOD_RANK']} on {self.env.current_host}",
                # Every rank prints the same lines; one rank's are this host's metrics.
                observer if env["HOROVOD_LOCAL_RANK"] == "0" else None,
            )
            for argv, env in workers
        ]
        logger.info("Starting %d Horovod rank(s) over Gloo, rendezvous at %s:%d", len(commands), *rendezvous)
        results = self.supervisor.run_all(commands)
        failed = [(result, command) for result, command in zip(results, commands, strict=True) if result.exit_code]
        if not failed:
            return results[0], None
        # The rank that failed first in time is often a bystander: Horovod shuts down every rank
        # when one raises, and the bystanders can exit before the culprit has printed its error.
        result, command = min(failed, key=lambda pair: (is_consequence(pair[0].stderr_tail), pair[0].ended_at))
        return result, outcome.script_failure(f"{name} ({command.name})", result)

    def _run_mpirun(self, command, name, num_cpus, observer):
        hosts = self.env.hosts
        others = [self._address(host) for host in hosts[1:]]
        if others:
            mpi.wait_for_sshd(others, self.settings.ssh_port, timeout=CONNECT_SECONDS)
        as_root = os.geteuid() == 0
        env = self._worker_env(num_cpus)
        argv = mpi.mpirun_command(
            command,
            hosts,
            self.settings.processes_per_host,
            env,
            interface=self.env.network_interface_name,
            custom_options=self.settings.custom_mpi_options,
            ssh_port=self.settings.ssh_port,
            ssh_key=mpi.ensure_client_key(self.job.settings.client_ssh_dir) if others else "",
            as_root=as_root,
        )
        logger.info("Starting %d Horovod rank(s) with mpirun", len(hosts) * self.settings.processes_per_host)
        result = self.supervisor.run(
            argv, env=mpi.mpirun_environment(env, as_root), cwd=self.code_dir, observer=observer
        )
        if not result.exit_code:
            return result, None
        rank, lines = failing_rank_lines(result.stderr_tail)
        if rank is not None:
            # --map-by slot placed the ranks host by host.
            host = hosts[min(rank // self.settings.processes_per_host, len(hosts) - 1)]
            described = f"{name} (Horovod rank {rank} on {host}, started by mpirun)"
        else:
            described = f"{name} under mpirun"
        return result, outcome.script_failure(described, replace(result, stderr_tail=lines or result.stderr_tail))


def is_consequence(stderr_tail: List[str]) -> bool:
    """The rank failed because another one did: Horovod shut down under it."""
    return any(_SHUT_DOWN in line for line in stderr_tail)


def failing_rank_lines(tail: List[str]) -> Tuple[Optional[int], List[str]]:
    """From mpirun's tagged output: the rank whose Python traceback is the cause (the first not
    caused by another rank's failure), and its lines without the tags.

    mpirun tags every chunk a rank writes (``[job,rank]<stderr>:``), and an unbuffered Python
    writes a traceback line in several chunks, so tags also appear inside lines.
    """
    by_rank: Dict[int, List[str]] = {}
    with_traceback = []
    for line in tail:
        text = _TAG.sub("", line)
        for rank in dict.fromkeys(int(match.group(1)) for match in _TAG.finditer(line)):
            by_rank.setdefault(rank, []).append(text)
            if text.startswith("Traceback (most recent call last):") and rank not in with_traceback:
                with_traceback.append(rank)
    if not with_traceback:
        return None, []
    rank = min(with_traceback, key=lambda candidate: is_consequence(by_rank[candidate]))
    return rank, by_rank[rank]


@contextlib.contextmanager
def launch(
    job, supervisor: Supervisor, settings: HorovodSettings, base_env: Mapping[str, str], code_dir: str
) -> Iterator[Launcher]:
    """Starts what this host serves the job with (the rendezvous server, or sshd) for the block."""
    env = job.env
    watch = cluster.ServiceWatch(job, supervisor)
    supervisor.on_background_exit = watch
    scratch = None
    try:
        if settings.launcher == GLOO and env.is_first_host:
            # Checked here, not left to the server: the workers would otherwise connect to
            # whatever already listens there and fail in ways that do not name the cause.
            cluster.check_port_free(
                settings.rendezvous_port,
                env.current_host,
                "the Horovod rendezvous server",
                "sagemaker_horovod_rendezvous_port",
            )
            argv = gloo.rendezvous_command(env.hosts, settings.processes_per_host, settings.rendezvous_port)
            supervisor.start_background(Command(argv, dict(base_env), code_dir, "Horovod rendezvous server"))
        elif settings.launcher != GLOO and not env.is_first_host:
            scratch = tempfile.mkdtemp(prefix="sagemaker-sshd-")
            key = mpi.ensure_client_key(job.settings.client_ssh_dir)
            config = mpi.prepare_sshd(scratch, [mpi.public_key(key)], port=settings.ssh_port)
            supervisor.start_background(Command(mpi.sshd_command(config), dict(base_env), None, "sshd"))
        yield Launcher(job, supervisor, settings, base_env, code_dir)
    finally:
        watch.ending = True
        supervisor.end_background()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
