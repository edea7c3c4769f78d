"""Which devices and which kvstore the user's MXNet code should use.

Chosen here, in the supervisor, as plain strings: the supervisor never imports MXNet, and the
user's process turns them into ``mx.Context`` objects (legacy mode) or reads them from ``SM_*``
variables (script mode).
"""

from dataclasses import dataclass
from typing import Optional, Tuple

from sagemaker_mxnet_container.errors import ConfigurationError

# The kvstore types MXNet 1.9 creates with mx.kv.create(); "horovod" and "byteps" need their
# own launchers, which this image does not run.
KVSTORE_TYPES = (
    "local",
    "device",
    "nccl",
    "dist_sync",
    "dist_async",
    "dist_device_sync",
    "dist_sync_device",
    "dist_device_async",
    "dist_async_device",
)


@dataclass(frozen=True)
class MXNetSettings:
    contexts: Tuple[str, ...]
    kvstore: str

    @property
    def context_string(self) -> str:
        """As MXNet prints contexts: ``cpu(0)`` or ``gpu(0),gpu(1)``."""
        return ",".join(self.contexts)


def choose(
    num_hosts: int, num_gpus: int, kvstore_override: Optional[str] = None, parameter_server: bool = True
) -> MXNetSettings:
    """``parameter_server`` False: the hosts do not share a parameter server, so each trains alone."""
    if num_gpus > 0:
        contexts = tuple(f"gpu({index})" for index in range(num_gpus))
    else:
        contexts = ("cpu(0)",)
    if kvstore_override is not None:
        if kvstore_override not in KVSTORE_TYPES:
            raise ConfigurationError(
                f"hyperparameter sagemaker_kvstore {kvstore_override!r} is not a kvstore MXNet 1.9 "
                f"can create here; use one of: {', '.join(KVSTORE_TYPES)}"
            )
        return MXNetSettings(contexts, kvstore_override)
    if num_hosts > 1 and parameter_server:
        # Aggregating on the GPUs before sending to the servers saves a copy per device.
        kvstore = "dist_device_sync" if num_gpus > 0 else "dist_sync"
    elif num_gpus > 1:
        kvstore = "device"
    else:
        kvstore = "local"
    return MXNetSettings(contexts, kvstore)
