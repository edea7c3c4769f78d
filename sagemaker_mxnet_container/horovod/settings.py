"""Whether the job runs the user's program as Horovod workers, how many per host, and how.

The SDK's MXNet estimator sends ``sagemaker_mpi_enabled``, ``sagemaker_mpi_num_of_processes_per_host``
and ``sagemaker_mpi_custom_mpi_options``; ``sagemaker_mpi_launcher`` is ours and picks the launch
path: ``gloo`` (our supervisors start every worker, no ssh) or ``mpirun`` (the official images'
way, for scripts that need MPI itself).
"""

import logging
import shlex
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

from sagemaker_mxnet_container.errors import ConfigurationError

logger = logging.getLogger(__name__)

GLOO = "gloo"
MPIRUN = "mpirun"
LAUNCHERS = (GLOO, MPIRUN)
DEFAULT_RENDEZVOUS_PORT = 29400
DEFAULT_SSH_PORT = 22

PARAMETERS = frozenset(
    {
        "sagemaker_mpi_enabled",
        "sagemaker_mpi_num_of_processes_per_host",
        "sagemaker_mpi_custom_mpi_options",
        "sagemaker_mpi_launcher",
        "sagemaker_horovod_rendezvous_port",
    }
)


@dataclass(frozen=True)
class HorovodSettings:
    processes_per_host: int
    launcher: str
    custom_mpi_options: Tuple[str, ...]
    """``sagemaker_mpi_custom_mpi_options`` split as a POSIX shell would split it, never run by one."""
    rendezvous_port: int
    ssh_port: int = DEFAULT_SSH_PORT


def _flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigurationError(f"hyperparameter {key} must be true or false, got {value!r}")


def _positive_int(value: Any, key: str, maximum: int) -> int:
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    else:
        number = None
    if number is None or not 1 <= number <= maximum:
        raise ConfigurationError(f"hyperparameter {key} must be a whole number from 1 to {maximum}, got {value!r}")
    return number


def read(framework: Mapping[str, Any], num_gpus: int, num_cpus: int) -> Optional[HorovodSettings]:
    """The Horovod settings of a job, or None when ``sagemaker_mpi_enabled`` is not true."""
    if not _flag(framework.get("sagemaker_mpi_enabled", False), "sagemaker_mpi_enabled"):
        return None
    default_processes = num_gpus if num_gpus > 0 else 1
    processes = _positive_int(
        framework.get("sagemaker_mpi_num_of_processes_per_host", default_processes),
        "sagemaker_mpi_num_of_processes_per_host",
        1024,
    )
    if processes > max(num_cpus, num_gpus):
        logger.warning(
            "sagemaker_mpi_num_of_processes_per_host is %d but this host has %d CPU(s) and %d GPU(s): "
            "the workers share them (oversubscribed) and each runs slower",
            processes,
            num_cpus,
            num_gpus,
        )
    launcher = framework.get("sagemaker_mpi_launcher", GLOO)
    if launcher not in LAUNCHERS:
        raise ConfigurationError(
            f"hyperparameter sagemaker_mpi_launcher must be one of {', '.join(LAUNCHERS)}, got {launcher!r}"
        )
    options = framework.get("sagemaker_mpi_custom_mpi_options", "") or ""
    if not isinstance(options, str):
        raise ConfigurationError(
            f"hyperparameter sagemaker_mpi_custom_mpi_options must be a string of mpirun options, got {options!r}"
        )
    try:
        split_options = tuple(shlex.split(options))
    except ValueError as error:
        raise ConfigurationError(
            f"hyperparameter sagemaker_mpi_custom_mpi_options cannot be split into mpirun options: {error} "
            f"(in {options!r}); check its quotes"
        ) from None
    if split_options and launcher != MPIRUN:
        logger.warning(
            "sagemaker_mpi_custom_mpi_options is ignored: sagemaker_mpi_launcher is %s, not mpirun", launcher
        )
    port = _positive_int(
        framework.get("sagemaker_horovod_rendezvous_port", DEFAULT_RENDEZVOUS_PORT),
        "sagemaker_horovod_rendezvous_port",
        65535,
    )
    return HorovodSettings(processes, launcher, split_options, port)
