"""The job's configuration, read once from ``/opt/ml`` into immutable values.

The platform writes three JSON files under ``input/config``; every other part of the toolkit
reads this module's ``TrainingEnvironment`` and never the files themselves.
"""

import configparser
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Optional, Tuple

from sagemaker_mxnet_container.errors import ConfigurationError

BASE_DIR_VARIABLE = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"

# The platform restricts channel names to these characters; anything else could climb out of
# input/data when joined to it.
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9._-]+$")

# The official toolkit's reserved keys (sagemaker-training's SAGEMAKER_HYPERPARAMETERS): they reach
# the user's code neither as hyperparameters nor as additional framework parameters. Two of them
# lack the prefix: automatic model tuning adds _tuning_objective_metric to every trial.
OFFICIAL_RESERVED = frozenset(
    {
        "sagemaker_program",
        "sagemaker_submit_directory",
        "sagemaker_enable_cloudwatch_metrics",
        "sagemaker_region",
        "sagemaker_container_log_level",
        "sagemaker_job_name",
        "default_user_module_name",
        "_tuning_objective_metric",
        "sagemaker_s3_output",
    }
)
PREFIX = "sagemaker_"
# What the image's environment may say instead of the configuration files, as in the official toolkit.
PROGRAM_VARIABLE = "SAGEMAKER_PROGRAM"
JOB_NAME_VARIABLE = "TRAINING_JOB_NAME"

# Reserved hyperparameters this toolkit reads. Keys the SDK sends that change nothing here are
# listed so that only truly unknown ``sagemaker_*`` keys are reported as ignored.
_READ = frozenset(
    {
        "sagemaker_program",
        "sagemaker_submit_directory",
        "sagemaker_region",
        "sagemaker_container_log_level",
        "sagemaker_job_name",
        "sagemaker_mode",
        "sagemaker_kvstore",
        "sagemaker_stop_grace_seconds",
        "sagemaker_parameter_server_enabled",
        "sagemaker_parameter_server_port",
        "sagemaker_liveness_port",
        "sagemaker_mpi_enabled",
        "sagemaker_distribution_instance_groups",
    }
)
_ACCEPTED = frozenset(
    {
        "sagemaker_enable_cloudwatch_metrics",
        "sagemaker_estimator_class_name",
        "sagemaker_estimator_module",
    }
)

# Options of other images' launchers: silently running without them would train something else
# than the user asked for (one process instead of many, no gradient sharing).
_UNSUPPORTED = {
    "sagemaker_distributed_dataparallel_enabled": "SageMaker distributed data parallel (smdistributed)",
    "sagemaker_multi_worker_mirrored_strategy_enabled": "TensorFlow's MultiWorkerMirroredStrategy",
    "sagemaker_pytorch_xla_multi_worker_enabled": "PyTorch/XLA multi-worker training",
    "sagemaker_torch_distributed_enabled": "torch.distributed launching",
}
# Settings that only mean something next to an option above.
_COMPANIONS = {
    "sagemaker_mpi_num_of_processes_per_host": "sagemaker_mpi_enabled",
    "sagemaker_mpi_custom_mpi_options": "sagemaker_mpi_enabled",
    "sagemaker_mpi_launcher": "sagemaker_mpi_enabled",
    "sagemaker_horovod_rendezvous_port": "sagemaker_mpi_enabled",
    "sagemaker_distributed_dataparallel_custom_mpi_options": "sagemaker_distributed_dataparallel_enabled",
}

MODES = ("legacy", "script")
DEFAULT_STOP_GRACE_SECONDS = 100.0
# The grace period arms an interval timer, which overflows near 1e10 s inside the signal handler;
# the platform kills a stopped job after about two minutes anyway.
MAX_STOP_GRACE_SECONDS = 86400.0

DEFAULT_PARAMETER_SERVER_PORT = 8000
# The official MXNet toolkit's own parameter-server settings: user hyperparameters (no prefix),
# so the script receives them as arguments too.
PS_PORT_KEY = "_ps_port"
PS_VERBOSE_KEY = "_ps_verbose"


@dataclass(frozen=True)
class Paths:
    """The ``/opt/ml`` layout, relocatable through ``SAGEMAKER_BASE_DIR``."""

    base: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> "Paths":
        return cls(os.path.abspath(environ.get(BASE_DIR_VARIABLE) or DEFAULT_BASE_DIR))

    @property
    def input_dir(self) -> str:
        return os.path.join(self.base, "input")

    @property
    def input_config_dir(self) -> str:
        return os.path.join(self.input_dir, "config")

    @property
    def input_data_dir(self) -> str:
        return os.path.join(self.input_dir, "data")

    @property
    def code_dir(self) -> str:
        return os.path.join(self.base, "code")

    @property
    def model_dir(self) -> str:
        return os.path.join(self.base, "model")

    @property
    def output_dir(self) -> str:
        return os.path.join(self.base, "output")

    @property
    def output_data_dir(self) -> str:
        return os.path.join(self.output_dir, "data")

    @property
    def output_intermediate_dir(self) -> str:
        return os.path.join(self.output_dir, "intermediate")

    def config_file(self, name: str) -> str:
        return os.path.join(self.input_config_dir, name)


@dataclass(frozen=True)
class ClusterSettings:
    """How the hosts of a multi-host job find and watch each other."""

    parameter_server_enabled: bool
    """``sagemaker_parameter_server_enabled``: off unless set, as in the official toolkit."""
    parameter_server_port: int
    parameter_server_verbose: str
    """``PS_VERBOSE`` for ps-lite, from ``_ps_verbose`` (default 0), as the official toolkit exports it."""
    liveness_port: int


@dataclass(frozen=True)
class TrainingEnvironment:
    """Everything the job was configured with. Mappings are read-only views."""

    paths: Paths
    hyperparameters: Mapping[str, Any]
    """The user's: every key but the ``sagemaker_*`` ones and the official toolkit's other reserved keys."""
    framework_parameters: Mapping[str, Any]
    """Every ``sagemaker_*`` key."""
    hosts: Tuple[str, ...]
    """In resourceconfig.json's order (the platform sorts them); the first is the first host."""
    current_host: str
    network_interface_name: str
    channels: Mapping[str, str]
    input_data_config: Mapping[str, Any]
    resource_config: Mapping[str, Any]
    program: Optional[str]
    """``SAGEMAKER_PROGRAM`` from the environment (the image's ENV), else ``sagemaker_program``."""
    submit_directory: Optional[str]
    region: Optional[str]
    """``sagemaker_region``."""
    default_region: str
    """``sagemaker_region``, else the AWS SDK's default region, else empty (``SAGEMAKER_REGION``)."""
    job_name: Optional[str]
    """``TRAINING_JOB_NAME``, which the platform sets: the training job, also in a tuning job's trials."""
    submitted_job_name: Optional[str]
    """``sagemaker_job_name``, which the SDK sets: in a tuning job, the tuning job's name."""
    log_level: int
    log_level_setting: Any
    """``sagemaker_container_log_level`` as written (20 when unset), which the user's code is shown."""
    current_instance_type: str
    current_instance_group: str
    instance_groups: Tuple[Mapping[str, Any], ...]
    """resourceconfig.json's ``instance_groups`` (heterogeneous clusters), each checked to have a name and hosts."""
    mode: Optional[str]
    kvstore: Optional[str]
    stop_grace_seconds: float
    cluster: ClusterSettings
    ignored_parameters: Tuple[str, ...] = field(default=())

    @property
    def is_first_host(self) -> bool:
        return self.current_host == self.hosts[0]

    @property
    def additional_framework_parameters(self) -> Mapping[str, Any]:
        """The ``sagemaker_*`` keys the official toolkit shows the user's code: all but its reserved ones."""
        return {key: value for key, value in self.framework_parameters.items() if key not in OFFICIAL_RESERVED}


_SHOWN = 60


def shown(text: str) -> str:
    """Input as an error message names it: repr, so control characters cannot forge lines, and cut short."""
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def whole_number(value: Any) -> Optional[int]:
    """An int, or a string of ASCII digits (``str.isdigit`` also accepts "²", which int() refuses)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        return int(value)
    return None


def decode_hyperparameter(value: Any) -> Any:
    """The platform JSON-encodes every value into a string; hand-written files often do not."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    # RecursionError: JSON nested thousands deep, which is no hyperparameter either.
    except (ValueError, RecursionError):
        return value


def parse_log_level(value: Any) -> int:
    """Accepts 20, "20", "INFO", "info" or "logging.INFO"."""
    if isinstance(value, bool):
        raise ConfigurationError(f"sagemaker_container_log_level must be a level, got {value!r}")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    name = text.upper().removeprefix("LOGGING.")
    level = logging.getLevelName(name)
    if isinstance(level, int):
        return level
    raise ConfigurationError(
        f"sagemaker_container_log_level {value!r} is not a logging level: "
        "use a number such as 20 or a name such as INFO or DEBUG"
    )


def _load_json_object(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except FileNotFoundError:
        raise ConfigurationError(f"{path} is missing: the platform writes it before training starts") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"{path} cannot be read: {error}") from None
    if not text.strip():
        raise ConfigurationError(f"{path} is empty: it must hold a JSON object")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ConfigurationError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} must hold a JSON object, not a {type(data).__name__}")
    return data


def _optional_string(framework: Mapping[str, Any], key: str) -> Optional[str]:
    value = framework.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"hyperparameter {key} must be a string, got {value!r}")
    return value


def _stop_grace(framework: Mapping[str, Any]) -> float:
    value = framework.get("sagemaker_stop_grace_seconds", DEFAULT_STOP_GRACE_SECONDS)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if isinstance(value, bool) or not (math.isfinite(seconds) and 0 <= seconds <= MAX_STOP_GRACE_SECONDS):
        raise ConfigurationError(
            "hyperparameter sagemaker_stop_grace_seconds must be a number of seconds from 0 to "
            f"{MAX_STOP_GRACE_SECONDS:.0f}, got {value!r}"
        )
    return seconds


def _flag(framework: Mapping[str, Any], key: str) -> Optional[bool]:
    """A boolean hyperparameter, as JSON (true) or as the strings the SDK's older versions send."""
    value = framework.get(key)
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise ConfigurationError(f"hyperparameter {key} must be true or false, got {value!r}")


def _port(framework: Mapping[str, Any], key: str, default: int) -> int:
    value = framework.get(key, default)
    port = whole_number(value)
    if port is None:
        raise ConfigurationError(f"hyperparameter {key} must be a TCP port number, got {value!r}")
    if not 1 <= port <= 65535:
        raise ConfigurationError(f"hyperparameter {key} must be a TCP port from 1 to 65535, got {value!r}")
    return port


def _ps_verbose(user: Mapping[str, Any]) -> str:
    value = user.get(PS_VERBOSE_KEY, "0")
    if whole_number(value) is None:
        raise ConfigurationError(
            f"hyperparameter {PS_VERBOSE_KEY} must be ps-lite's verbosity (0, 1 or 2), got {value!r}"
        )
    return str(value).strip()


def _cluster(framework: Mapping[str, Any], user: Mapping[str, Any]) -> ClusterSettings:
    # The official MXNet toolkit's _ps_port, unless this image's own setting says otherwise.
    default_port = _port(user, PS_PORT_KEY, DEFAULT_PARAMETER_SERVER_PORT)
    ps_port = _port(framework, "sagemaker_parameter_server_port", default_port)
    liveness_port = _port(framework, "sagemaker_liveness_port", ps_port % 65535 + 1)
    if liveness_port == ps_port:
        raise ConfigurationError(
            f"hyperparameters sagemaker_parameter_server_port and sagemaker_liveness_port are both {ps_port}: "
            "the two need different ports"
        )
    return ClusterSettings(
        parameter_server_enabled=bool(_flag(framework, "sagemaker_parameter_server_enabled")),
        parameter_server_port=ps_port,
        parameter_server_verbose=_ps_verbose(user),
        liveness_port=liveness_port,
    )


def _check_supported(framework: Mapping[str, Any]) -> Tuple[str, ...]:
    """Fails on an option this image cannot honour; returns the companions given without it."""
    for key, feature in _UNSUPPORTED.items():
        if _flag(framework, key):
            raise ConfigurationError(
                f"hyperparameter {key} is not supported by this image: it does not provide {feature}. "
                f"Remove {key} from the estimator, or use an image that supports it."
            )
    return tuple(key for key, enabler in _COMPANIONS.items() if key in framework and not _flag(framework, enabler))


def _mode(framework: Mapping[str, Any]) -> Optional[str]:
    mode = _optional_string(framework, "sagemaker_mode")
    if mode is not None and mode not in MODES:
        raise ConfigurationError(f"hyperparameter sagemaker_mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


# A label of a DNS name: what every resolver accepts (underscores too, as container networks use them).
_HOST_LABEL = re.compile(r"^[A-Za-z0-9_-]{1,63}$")


def _check_host_name(path: str, name: str) -> None:
    """Fails at once on a name no resolver can look up, rather than after the whole host wait."""
    # A trailing dot makes a name absolute; it is still a name.
    labels = (name[:-1] if name.endswith(".") and len(name) > 1 else name).split(".")
    if len(name) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ConfigurationError(
            f"{path}: host name {shown(name)} is not a valid host name: it must be dot-separated labels of "
            "1 to 63 letters, digits, '-' or '_' (253 characters at most), such as algo-1"
        )


def _resources(path: str, config: Mapping[str, Any]) -> Tuple[Tuple[str, ...], str, str]:
    hosts = config.get("hosts")
    current_host = config.get("current_host")
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and h for h in hosts):
        raise ConfigurationError(f"{path}: 'hosts' must be a non-empty list of host names, got {hosts!r}")
    if len(set(hosts)) != len(hosts):
        raise ConfigurationError(f"{path}: 'hosts' lists a host more than once: {hosts!r}")
    for host in hosts:
        _check_host_name(path, host)
    if not isinstance(current_host, str) or not current_host:
        raise ConfigurationError(f"{path}: 'current_host' must be this host's name, got {current_host!r}")
    if current_host not in hosts:
        raise ConfigurationError(f"{path}: current_host {current_host!r} is not one of the hosts {hosts!r}")
    interface = config.get("network_interface_name", "eth0")
    if not isinstance(interface, str) or not interface:
        raise ConfigurationError(f"{path}: 'network_interface_name' must be a string, got {interface!r}")
    # In the given order, as the official toolkit keeps it: the platform writes them sorted, and
    # the first one listed is where the scheduler runs and what scripts call the master.
    return tuple(hosts), current_host, interface


def _text_setting(path: str, config: Mapping[str, Any], key: str, default: str) -> str:
    value = config.get(key, default)
    if not isinstance(value, str):
        raise ConfigurationError(f"{path}: {key!r} must be a string, got {value!r}")
    return value


def _instance_groups(path: str, config: Mapping[str, Any]) -> Tuple[Mapping[str, Any], ...]:
    """A heterogeneous cluster's groups; each needs the two keys the official toolkit reads."""
    groups = config.get("instance_groups", [])
    if not isinstance(groups, list):
        raise ConfigurationError(f"{path}: 'instance_groups' must be a list of instance groups, got {groups!r}")
    for group in groups:
        name = group.get("instance_group_name") if isinstance(group, dict) else None
        hosts = group.get("hosts") if isinstance(group, dict) else None
        if not isinstance(name, str) or not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise ConfigurationError(
                f"{path}: every entry of 'instance_groups' must be an object with a string 'instance_group_name' "
                f"and a list of host names 'hosts', got {group!r}"
            )
    return tuple(MappingProxyType(group) for group in groups)


def _check_distribution_groups(framework: Mapping[str, Any]) -> None:
    value = framework.get("sagemaker_distribution_instance_groups", [])
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ConfigurationError(
            f"hyperparameter sagemaker_distribution_instance_groups must be a list of instance group names, "
            f"got {value!r}"
        )


def _default_region(region: Optional[str], environ: Mapping[str, str]) -> str:
    """What boto3 would take as the region where ``sagemaker_region`` is unset: AWS_DEFAULT_REGION,
    else the profile's region in the AWS config file, else none (the official toolkit asks boto3)."""
    if region is not None:
        return region
    if "AWS_DEFAULT_REGION" in environ:
        return environ["AWS_DEFAULT_REGION"]
    profile = environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE") or "default"
    home = environ.get("HOME") or os.path.expanduser("~")
    path = os.path.expanduser(environ.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config"))
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return ""
    section = profile if profile == "default" else f"profile {profile}"
    return parser.get(section, "region", fallback="")


def _channels(path: str, paths: Paths, config: Mapping[str, Any]) -> Mapping[str, str]:
    channels = {}
    for name, settings in config.items():
        if not _CHANNEL_NAME.match(name) or name in (".", ".."):
            raise ConfigurationError(f"{path}: channel name {name!r} may only use letters, digits, '.', '-' and '_'")
        if not isinstance(settings, dict):
            raise ConfigurationError(f"{path}: channel {name!r} must map to a JSON object, got {settings!r}")
        directory = os.path.join(paths.input_data_dir, name)
        # Pipe mode delivers data through FIFOs named <channel>_<epoch>, not a directory.
        if settings.get("TrainingInputMode", "File") != "Pipe" and not os.path.isdir(directory):
            raise ConfigurationError(
                f"channel {name!r} is listed in {path} but its data directory {directory} does not exist"
            )
        channels[name] = directory
    return channels


def read(paths: Paths, environ: Mapping[str, str] = os.environ) -> TrainingEnvironment:
    """Reads and checks the three configuration files; raises ConfigurationError naming the problem."""
    hyperparameters_path = paths.config_file("hyperparameters.json")
    resource_path = paths.config_file("resourceconfig.json")
    data_path = paths.config_file("inputdataconfig.json")

    raw = _load_json_object(hyperparameters_path)
    resource_config = _load_json_object(resource_path)
    input_data_config = _load_json_object(data_path)

    decoded = {key: decode_hyperparameter(value) for key, value in raw.items()}
    framework = {key: value for key, value in decoded.items() if key.startswith(PREFIX)}
    user = {key: value for key, value in decoded.items() if not key.startswith(PREFIX) and key not in OFFICIAL_RESERVED}
    known = _READ | _ACCEPTED | _UNSUPPORTED.keys() | _COMPANIONS.keys()
    unused_companions = _check_supported(framework)
    _check_distribution_groups(framework)
    ignored = tuple(sorted({key for key in framework if key not in known} | set(unused_companions)))

    hosts, current_host, interface = _resources(resource_path, resource_config)
    region = _optional_string(framework, "sagemaker_region")

    return TrainingEnvironment(
        paths=paths,
        hyperparameters=MappingProxyType(user),
        framework_parameters=MappingProxyType(framework),
        hosts=hosts,
        current_host=current_host,
        network_interface_name=interface,
        channels=MappingProxyType(_channels(data_path, paths, input_data_config)),
        input_data_config=MappingProxyType(input_data_config),
        resource_config=MappingProxyType(resource_config),
        program=environ.get(PROGRAM_VARIABLE) or _optional_string(framework, "sagemaker_program"),
        submit_directory=_optional_string(framework, "sagemaker_submit_directory"),
        region=region,
        default_region=_default_region(region, environ),
        job_name=environ.get(JOB_NAME_VARIABLE),
        submitted_job_name=_optional_string(framework, "sagemaker_job_name"),
        log_level=parse_log_level(framework.get("sagemaker_container_log_level", logging.INFO)),
        log_level_setting=framework.get("sagemaker_container_log_level", logging.INFO),
        current_instance_type=_text_setting(resource_path, resource_config, "current_instance_type", "local"),
        current_instance_group=_text_setting(
            resource_path, resource_config, "current_group_name", "homogeneousCluster"
        ),
        instance_groups=_instance_groups(resource_path, resource_config),
        mode=_mode(framework),
        kvstore=_optional_string(framework, "sagemaker_kvstore"),
        stop_grace_seconds=_stop_grace(framework),
        cluster=_cluster(framework, user),
        ignored_parameters=ignored,
    )
