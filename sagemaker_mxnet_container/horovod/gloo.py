"""Horovod over Gloo: the workers of every host started by that host's own supervisor, no ssh.

Horovod's Gloo controller needs one rendezvous server (an HTTP key-value store, Horovod's own,
run by ``python -m sagemaker_mxnet_container.horovod.rendezvous`` on the first host) and, in each worker,
its place in the job: rank, size, local and cross rank, the host name the rendezvous knows it by,
and the interface to talk over. Ranks are ordered host by host, as ``mpirun --map-by slot`` orders
them: host 0 holds ranks 0..N-1.

Everything here is a pure function of the configuration, except the network check
``wait_for_rendezvous``.
"""

import socket
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Mapping, Sequence, Tuple

from sagemaker_mxnet_container.errors import ToolkitError

LOOPBACK_INTERFACE = "lo"
DEFAULT_RENDEZVOUS_TIMEOUT_SECONDS = 300.0


class RendezvousError(ToolkitError):
    """The Horovod rendezvous server could not be reached."""


@dataclass(frozen=True)
class Slot:
    """One Horovod worker's place in the job."""

    host: str
    rank: int
    size: int
    local_rank: int
    local_size: int
    cross_rank: int
    cross_size: int


def slots(hosts: Sequence[str], processes_per_host: int) -> List[Slot]:
    """Every worker of the job, ranks ordered host by host (``hosts`` in the job's agreed order)."""
    size = len(hosts) * processes_per_host
    return [
        Slot(
            host=host,
            rank=host_index * processes_per_host + local_rank,
            size=size,
            local_rank=local_rank,
            local_size=processes_per_host,
            # Every host runs the same number of workers, so local rank k has one peer per host.
            cross_rank=host_index,
            cross_size=len(hosts),
        )
        for host_index, host in enumerate(hosts)
        for local_rank in range(processes_per_host)
    ]


def interface_for(hosts: Sequence[str], network_interface_name: str) -> str:
    """A one-host job talks over loopback, which every machine and container has."""
    return LOOPBACK_INTERFACE if len(hosts) == 1 else network_interface_name


def rendezvous_command(hosts: Sequence[str], processes_per_host: int, port: int) -> List[str]:
    """The first host's rendezvous server, a background child for the whole job."""
    return [
        sys.executable,
        "-m",
        "sagemaker_mxnet_container.horovod.rendezvous",
        "--port",
        str(port),
        "--processes-per-host",
        str(processes_per_host),
        *hosts,
    ]


def slot_environment(slot: Slot, rendezvous: Tuple[str, int], interface: str) -> Dict[str, str]:
    address, port = rendezvous
    return {
        "HOROVOD_CONTROLLER": "gloo",
        "HOROVOD_CPU_OPERATIONS": "gloo",
        "HOROVOD_GLOO_RENDEZVOUS_ADDR": address,
        "HOROVOD_GLOO_RENDEZVOUS_PORT": str(port),
        "HOROVOD_GLOO_IFACE": interface,
        "NCCL_SOCKET_IFNAME": interface,
        # The rendezvous knows each worker by this name; it must be the host's name in the plan.
        "HOROVOD_HOSTNAME": slot.host,
        "HOROVOD_RANK": str(slot.rank),
        "HOROVOD_SIZE": str(slot.size),
        "HOROVOD_LOCAL_RANK": str(slot.local_rank),
        "HOROVOD_LOCAL_SIZE": str(slot.local_size),
        "HOROVOD_CROSS_RANK": str(slot.cross_rank),
        "HOROVOD_CROSS_SIZE": str(slot.cross_size),
    }


def worker_commands(
    command: Sequence[str],
    hosts: Sequence[str],
    current_host: str,
    processes_per_host: int,
    rendezvous: Tuple[str, int],
    interface: str,
    base_env: Mapping[str, str],
) -> List[Tuple[List[str], Dict[str, str]]]:
    """(argv, env) of each worker this host starts: ``command`` (the user's program) once per local
    rank, its environment ``base_env`` plus that rank's Horovod variables."""
    if current_host not in hosts:
        raise ValueError(f"{current_host!r} is not one of the hosts {list(hosts)!r}")
    commands = []
    for slot in slots(hosts, processes_per_host):
        if slot.host == current_host:
            env = dict(base_env)
            env.update(slot_environment(slot, rendezvous, interface))
            commands.append((list(command), env))
    return commands


def threads_per_worker(num_cpus: int, processes_per_host: int) -> int:
    """OpenMP threads for each of the host's workers, so that together they fill its CPUs once."""
    return max(1, num_cpus // processes_per_host)


def wait_for_rendezvous(address: str, port: int, timeout: float = DEFAULT_RENDEZVOUS_TIMEOUT_SECONDS) -> None:
    """Returns once the rendezvous server accepts connections; raises RendezvousError at ``timeout``.

    Horovod's workers give up on the rendezvous after a few quick retries, so they must not start
    before it listens.
    """
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            with socket.create_connection((address, port), timeout=min(5.0, max(0.1, timeout))):
                return
        except OSError as error:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RendezvousError(
                    f"the Horovod rendezvous server at {address}:{port} on the first host did not accept "
                    f"connections within {timeout:.0f} s ({error}); check that the first host is running and "
                    "that sagemaker_horovod_rendezvous_port is free there and reachable from the other hosts"
                ) from None
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 1.0)
