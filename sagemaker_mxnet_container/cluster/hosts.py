"""Where the job's hosts are: their names resolved (retrying while instances boot), and ports
checked free before a service of the job listens on them."""

import logging
import socket
import time
from typing import Dict, Mapping, Sequence

from retrying import RetryError, retry

from sagemaker_mxnet_container.errors import ClusterError

logger = logging.getLogger(__name__)


def resolve_hosts(hosts: Sequence[str], wait_seconds: float, overrides: Mapping[str, str]) -> Dict[str, str]:
    """Each host's IPv4 address, retrying names that do not resolve yet for up to ``wait_seconds`` in all."""
    deadline = time.monotonic() + wait_seconds
    addresses = {}
    for host in hosts:
        if host in overrides:
            addresses[host] = overrides[host]
            continue
        last_error = []

        def lookup(name=host, errors=last_error):
            try:
                return socket.gethostbyname(name)
            except OSError as error:
                errors[:] = [error]
                logger.info("Host %s does not resolve yet (%s); retrying", name, error)
                return None

        remaining_ms = max(0.0, deadline - time.monotonic()) * 1000
        try:
            addresses[host] = retry(
                retry_on_result=lambda address: address is None,
                wait_exponential_multiplier=100,
                wait_exponential_max=5000,
                stop_max_delay=remaining_ms,
            )(lookup)()
        except RetryError:
            cause = last_error[0] if last_error else "no answer"
            raise ClusterError(
                f"Host {host} did not resolve within {wait_seconds:.0f} s ({cause}). "
                "Check that every host of the job is up and on the same network; "
                "SAGEMAKER_MXNET_HOST_WAIT_SECONDS sets how long to wait."
            ) from None
    return addresses


def check_port_free(port: int, host: str, service: str, hyperparameter: str) -> None:
    """Raises ClusterError naming the port and the setting that moves it when the port is taken.

    Checked before a service starts, because the services themselves fail without naming the cause
    (ps-lite's scheduler aborts with a bare "bind failed"), or clients reach whatever else listens.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError as error:
            raise ClusterError(
                f"Port {port} on {host} is in use ({error.strerror}), so {service} cannot start. "
                f"Choose a free port with the hyperparameter {hyperparameter}."
            ) from None
