"""This host's part in a job of one or more hosts: joining the others, and ending together.

``join`` resolves the other hosts and opens the liveness link to them; a failure inside its block
is carried to every host. ``ServiceWatch`` makes the exit of a process the job relies on (a
parameter server, a rendezvous server, sshd) a failure on every host.
"""

import contextlib
import logging
from typing import Iterator, Mapping, Optional

from sagemaker_mxnet_container.cluster.hosts import resolve_hosts
from sagemaker_mxnet_container.cluster.link import Link
from sagemaker_mxnet_container.environment import TrainingEnvironment
from sagemaker_mxnet_container.errors import Aborted
from sagemaker_mxnet_container.runner import ProcessResult, Supervisor
from sagemaker_mxnet_container.settings import Settings

logger = logging.getLogger(__name__)


class Cluster:
    """This host's view of a multi-host job: the others' addresses and the link to them, and the
    operator's settings."""

    def __init__(
        self, env: TrainingEnvironment, settings: Settings, addresses: Mapping[str, str], link: Optional[Link]
    ):
        self.env = env
        self.settings = settings
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
def join(env: TrainingEnvironment, settings: Settings, supervisor: Supervisor) -> Iterator[Cluster]:
    """Meets the other hosts; any failure inside the block is reported to them, so they end too."""
    if len(env.hosts) == 1:
        yield Cluster(env, settings, {}, None)
        return
    addresses = resolve_hosts(env.hosts, settings.host_wait_seconds, settings.host_addresses or {})
    link = Link(
        env.hosts,
        env.current_host,
        addresses,
        env.cluster.liveness_port,
        settings.heartbeat_timeout_seconds,
        on_abort=supervisor.abort,
    )
    try:
        link.open(settings.host_wait_seconds)
        logger.info("All %d hosts joined: %s", len(env.hosts), ", ".join(env.hosts))
        yield Cluster(env, settings, addresses, link)
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
