"""Whether the job runs the user's program as Horovod workers, how many per host, and how.

The SDK's MXNet estimator sends ``sagemaker_mpi_enabled``, ``sagemaker_mpi_num_of_processes_per_host``
and ``sagemaker_mpi_custom_mpi_options``; ``sagemaker_mpi_launcher`` is ours and picks the launch
path: ``gloo`` (our supervisors start every worker, no ssh) or ``mpirun`` (the official images'
way, for scripts that need MPI itself).
"""

import logging
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from sagemaker_mxnet_container.environment import whole_number
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
    """``sagemaker_mpi_custom_mpi_options`` split as a POSIX shell would split it, never run by one,
    with the official toolkit's ``--NCCL_DEBUG LEVEL`` as ``-x NCCL_DEBUG=LEVEL``: mpirun's options."""
    rendezvous_port: int
    ssh_port: int = DEFAULT_SSH_PORT
    worker_variables: Mapping[str, str] = field(default_factory=dict)
    """What the options' ``-x NAME=VALUE`` set in every rank: the Gloo ranks get them directly."""


def _flag(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigurationError(f"hyperparameter {key} must be true or false, got {value!r}")


def _positive_int(value: Any, key: str, maximum: int) -> int:
    number = whole_number(value)
    if number is None or not 1 <= number <= maximum:
        raise ConfigurationError(f"hyperparameter {key} must be a whole number from 1 to {maximum}, got {value!r}")
    return number


_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OPTIONS = "sagemaker_mpi_custom_mpi_options"


def _exported(assignment: str) -> Tuple[str, Optional[str]]:
    """``NAME`` or ``NAME=VALUE`` of ``-x``."""
    name, equals, value = assignment.partition("=")
    if not _VARIABLE.match(name):
        raise ConfigurationError(
            f"hyperparameter {_OPTIONS}: -x {assignment!r} does not name an environment variable; "
            "write -x NAME or -x NAME=VALUE"
        )
    return name, value if equals else None


def _custom_options(options: List[str], launcher: str) -> Tuple[Tuple[str, ...], Dict[str, str]]:
    """mpirun's options and the variables they set in the ranks. Under Gloo only what sets
    variables has a meaning; anything else fails, naming it, rather than being silently dropped."""
    for_mpirun: List[str] = []
    variables: Dict[str, str] = {}
    remaining = list(options)
    while remaining:
        option = remaining.pop(0)
        if option in ("-x", "--NCCL_DEBUG") and not remaining:
            raise ConfigurationError(f"hyperparameter {_OPTIONS}: {option} needs a value after it")
        if option == "-x":
            assignment = remaining.pop(0)
        elif option == "--NCCL_DEBUG" or option.startswith("--NCCL_DEBUG="):
            # The official toolkit's own option: the ranks' NCCL_DEBUG (its default is INFO).
            assignment = "NCCL_DEBUG=" + (remaining.pop(0) if option == "--NCCL_DEBUG" else option.split("=", 1)[1])
        elif launcher == MPIRUN:
            for_mpirun.append(option)
            continue
        else:
            raise ConfigurationError(
                f"hyperparameter {_OPTIONS}: {option!r} has no meaning under the Gloo launcher (the default), "
                "which starts the Horovod ranks without mpirun; there only -x NAME, -x NAME=VALUE and "
                "--NCCL_DEBUG LEVEL apply. Remove it, or set sagemaker_mpi_launcher to mpirun"
            )
        name, value = _exported(assignment)
        for_mpirun += ["-x", assignment]
        if value is not None:
            variables[name] = value
    return tuple(for_mpirun), variables


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
    options = framework.get(_OPTIONS, "") or ""
    if not isinstance(options, str):
        raise ConfigurationError(f"hyperparameter {_OPTIONS} must be a string of mpirun options, got {options!r}")
    try:
        split_options = shlex.split(options)
    except ValueError as error:
        raise ConfigurationError(
            f"hyperparameter {_OPTIONS} cannot be split into mpirun options: {error} (in {options!r}); check its quotes"
        ) from None
    mpirun_options, worker_variables = _custom_options(split_options, launcher)
    port = _positive_int(
        framework.get("sagemaker_horovod_rendezvous_port", DEFAULT_RENDEZVOUS_PORT),
        "sagemaker_horovod_rendezvous_port",
        65535,
    )
    return HorovodSettings(processes, launcher, mpirun_options, port, worker_variables=worker_variables)
