"""Multi-host jobs: the link between the hosts' supervisors, and MXNet's parameter server.

MXNet's distributed kvstore (ps-lite) needs a scheduler on one host and a server on every host
beside the user's process, which is the worker. They are children of the supervisor like the
user's process: started before it, watched while it runs, and ended when the job ends.
"""

import contextlib
import logging
import os
import sys
from typing import Dict, Iterator, Mapping, Optional

from sagemaker_mxnet_container import cluster
from sagemaker_mxnet_container.environment import TrainingEnvironment
from sagemaker_mxnet_container.errors import Aborted
from sagemaker_mxnet_container.runner import Command, ProcessResult, Supervisor

logger = logging.getLogger(__name__)

# After the last worker finishes, ps-lite's servers and scheduler finish their own shutdown
# handshake; they get this long before they are ended.
_SHUTDOWN_SECONDS = 3.0


class Cluster:
    """This host's view of a multi-host job: the others' addresses and the link to them."""

    def __init__(self, env: TrainingEnvironment, addresses: Mapping[str, str], link: Optional[cluster.Link]):
        self.env = env
        self.addresses = dict(addresses)
        self.link = link

    def report_failure(self, reason: str) -> None:
        if self.link is not None:
            self.link.report_failure(reason)

    def finish(self, supervisor: Supervisor) -> None:
        """Waits until every host's code has finished: their workers may still need this host's server."""
        if self.link is not None:
            logger.info("Waiting for the other hosts to finish")
            self.link.barrier("done", poll=supervisor.poll)


@contextlib.contextmanager
def join(env: TrainingEnvironment, supervisor: Supervisor) -> Iterator[Cluster]:
    """Meets the other hosts; any failure inside the block is reported to them, so they end too."""
    if len(env.hosts) == 1:
        yield Cluster(env, {}, None)
        return
    settings = env.cluster
    addresses = cluster.resolve_hosts(env.hosts, settings.host_wait_seconds, settings.host_addresses)
    link = cluster.Link(
        env.hosts,
        env.current_host,
        addresses,
        settings.liveness_port,
        settings.heartbeat_timeout_seconds,
        on_abort=supervisor.abort,
    )
    try:
        link.open(settings.host_wait_seconds)
        logger.info("All %d hosts joined: %s", len(env.hosts), ", ".join(env.hosts))
        yield Cluster(env, addresses, link)
    except BaseException as error:
        if not isinstance(error, Aborted) and supervisor.abort_reason is None:
            message = str(error).strip() or type(error).__name__
            link.report_failure(message)
        raise
    finally:
        link.close()


class ServiceWatch:
    """Makes the unexpected exit of a process the job relies on (a parameter server, a rendezvous
    server, sshd) a failure on every host; a supervisor's ``on_background_exit``."""

    def __init__(self, job: Cluster, supervisor: Supervisor, clean_exit_expected: bool = False):
        self.job = job
        self.supervisor = supervisor
        self.clean_exit_expected = clean_exit_expected
        self.ending = False
        """Set once the job ends the services itself: their exits are then no failure."""

    def __call__(self, name: str, result: ProcessResult) -> None:
        if self.ending or self.supervisor.stop_signal is not None:
            return
        if result.exit_code == 0 and self.clean_exit_expected:
            return
        tail = "\n".join(line for line in result.stderr_tail[-20:] if line.strip())
        reason = f"The {name} on {self.job.env.current_host} exited with code {result.exit_code} while the job ran." + (
            f" Its last output:\n{tail}" if tail else ""
        )
        self.job.report_failure(reason)
        self.supervisor.abort(reason)


def uses_parameter_server(env: TrainingEnvironment, legacy: bool) -> bool:
    """Legacy code always expects ``dist_sync`` across hosts; a script opts in with
    ``sagemaker_parameter_server_enabled``, as in the official MXNet toolkit."""
    if len(env.hosts) == 1:
        return False
    return legacy or env.cluster.parameter_server_enabled


def ps_variables(env: TrainingEnvironment, addresses: Mapping[str, str]) -> Dict[str, str]:
    """The ``DMLC_*`` variables every ps-lite process of this host shares."""
    variables = {
        "DMLC_PS_ROOT_URI": addresses[env.hosts[0]],
        "DMLC_PS_ROOT_PORT": str(env.cluster.parameter_server_port),
        "DMLC_NUM_SERVER": str(len(env.hosts)),
        "DMLC_NUM_WORKER": str(len(env.hosts)),
        # ps-lite would otherwise guess the address from the first network interface it finds.
        "DMLC_NODE_HOST": addresses[env.current_host],
    }
    if os.path.exists(os.path.join("/sys/class/net", env.network_interface_name)):
        variables["DMLC_INTERFACE"] = env.network_interface_name
    return variables


@contextlib.contextmanager
def parameter_server(
    job: Cluster, supervisor: Supervisor, base_env: Mapping[str, str], code_dir: str
) -> Iterator[Dict[str, str]]:
    """Runs this host's scheduler (first host) and server; yields the worker's variables.

    They get the user's environment: a server unpickles the user's optimizer, which may live in
    the user's code.
    """
    env = job.env
    common = {**base_env, **ps_variables(env, job.addresses)}
    # ps-lite's processes exit 0 by themselves once every worker has finished.
    watch = ServiceWatch(job, supervisor, clean_exit_expected=True)
    supervisor.on_background_exit = watch
    launch = [sys.executable, "-c", "import mxnet"]
    try:
        if env.is_first_host:
            cluster.check_port_free(
                env.cluster.parameter_server_port,
                env.current_host,
                "the parameter-server scheduler",
                "sagemaker_parameter_server_port",
            )
            supervisor.start_background(
                Command(launch, {**common, "DMLC_ROLE": "scheduler"}, code_dir, "ps-lite scheduler")
            )
        supervisor.start_background(Command(launch, {**common, "DMLC_ROLE": "server"}, code_dir, "ps-lite server"))
        logger.info(
            "Started the parameter server%s; scheduler at %s:%s",
            " and its scheduler" if env.is_first_host else "",
            common["DMLC_PS_ROOT_URI"],
            common["DMLC_PS_ROOT_PORT"],
        )
        yield {key: value for key, value in common.items() if key.startswith("DMLC_")} | {"DMLC_ROLE": "worker"}
    except BaseException:
        watch.ending = True
        supervisor.end_background()
        raise
    watch.ending = True
    supervisor.end_background(_SHUTDOWN_SECONDS)
