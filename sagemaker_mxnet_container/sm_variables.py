"""The arguments and variables the user's code receives, built as the official toolkit builds them.

sagemaker-training (5.x, under the official MXNet toolkit) turns the decoded configuration into
``SM_*`` variables and command-line arguments, and scripts parse exactly those forms (``== 'True'``,
``ast.literal_eval``, ``-k``), so they are built here the same way from the same values. Where the
official toolkit would hand the user's code something broken (two keys for one variable, a name
that shifts every later argument, text no process can receive), the job fails instead, before
anything runs, naming the key. What this image adds, and why, is in docs/compatibility.md.
``SM_TRAINING_ENV`` carries everything as one JSON document; the legacy-mode runner rebuilds
``train()``'s keyword arguments from it.
"""

import json
import os
import re
import shutil
from typing import Any, Dict, Iterable, List, Mapping

from sagemaker_mxnet_container.environment import TrainingEnvironment, shown
from sagemaker_mxnet_container.errors import ConfigurationError
from sagemaker_mxnet_container.mxnet_settings import MXNetSettings
from sagemaker_mxnet_container.resources import Resources

FRAMEWORK_MODULE = "sagemaker_mxnet_container.entrypoint:main"
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_]")
# Linux's MAX_ARG_STRLEN: execve refuses ("Argument list too long") any one argument or
# NAME=value string longer than 32 pages, however small the rest is.
MAX_STRING_BYTES = 32 * os.sysconf("SC_PAGE_SIZE")
# Any of these true puts the current instance group among the distributed ones (sagemaker-training).
_DISTRIBUTION_FLAGS = (
    "sagemaker_mpi_enabled",
    "sagemaker_parameter_server_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
    "sagemaker_torch_distributed_enabled",
)
# Names that would shift the other arguments, so that the script trains with its defaults or
# fails on its command line: the official toolkit passes them; this image refuses them.
_SHIFTING_NAMES = {
    "": "has no name: its value would reach the script with no option before it, as a positional argument",
    "-": "would reach the script as '--', which ends its options: every later --name value would become "
    "a positional argument",
}


def _passable(what: str, text: str) -> bytes:
    """``text`` as execve will see it; ConfigurationError where no process could receive it."""
    if "\0" in text:
        raise ConfigurationError(
            f"{what} contains a NUL character, which no program argument or environment variable can carry"
        )
    try:
        encoded = os.fsencode(text)
    except UnicodeEncodeError as error:
        raise ConfigurationError(
            f"{what} is not valid Unicode text (a lone surrogate at position {error.start}); "
            "it cannot be passed to the user's code"
        ) from None
    if len(encoded) + 1 > MAX_STRING_BYTES:
        raise ConfigurationError(
            f"{what} takes {len(encoded)} bytes, more than the {MAX_STRING_BYTES} Linux passes in one program "
            "argument or environment variable: put large hyperparameter values in a file (in an input channel "
            "or the code) and pass its name instead"
        )
    return encoded


# --- arguments ---------------------------------------------------------------------------------


def argument_name(key: str) -> str:
    """``--name``, or ``-k`` for a one-character name."""
    return f"--{key}" if len(key) > 1 else f"-{key}"


def argument_value(value: Any) -> str:
    """Python's ``str()`` of the decoded value (``True``, ``[{'epoch': 1}]``, ``1e-05``), ``None`` as
    an empty string, and a dict as ``key=value`` pairs sorted by key and joined by commas."""
    if isinstance(value, dict):
        return ",".join(f"{key}={item}" for key, item in sorted(value.items()))
    return "" if value is None else str(value)


def user_arguments(hyperparameters: Mapping[str, Any]) -> List[str]:
    """Name and value of every hyperparameter, sorted by name; ConfigurationError for a name that
    would shift the other arguments or a name or value no process can receive."""
    arguments = []
    for key in sorted(hyperparameters):
        if key in _SHIFTING_NAMES:
            raise ConfigurationError(
                f"hyperparameter {shown(key)} {_SHIFTING_NAMES[key]}, and the script would not get the arguments "
                "it was given. Rename or remove it"
            )
        name = argument_name(key)
        value = argument_value(hyperparameters[key])
        _passable(f"the name of hyperparameter {shown(key)}", name)
        _passable(f"the value of hyperparameter {shown(key)}", value)
        arguments += [name, value]
    return arguments


# --- variables ---------------------------------------------------------------------------------


def variable_value(value: Any) -> str:
    """A string as it is, ``None`` as an empty string, anything else as compact JSON with sorted keys."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def variable_name(key: str) -> str:
    """The name this image also gives ``SM_HP_``/``SM_CHANNEL_`` variables where the official one,
    the key upper-cased, is not an identifier: other characters become ``_`` (``LEARNING_RATE``)."""
    return _NOT_IN_NAME.sub("_", key).upper()


def _check_distinct(prefix: str, keys: Iterable[str], what: str) -> None:
    """Two keys that map to one variable would leave the user's code with only one of them."""
    seen: Dict[str, str] = {}
    for key in sorted(keys):
        name = prefix + key.upper()
        if "=" in key:
            raise ConfigurationError(
                f"{what[:-1]} {shown(key)} contains '=', which no environment variable name can: rename it"
            )
        if name in seen:
            raise ConfigurationError(
                f"{what} {shown(seen[name])} and {shown(key)} would both be passed as {name}: rename one of "
                "them (variable names are the keys upper-cased)"
            )
        seen[name] = key


def check(hyperparameters: Mapping[str, Any], channels: Iterable[str]) -> None:
    """ConfigurationError where the hyperparameters or channels cannot reach the user's code
    intact; cheap enough to run right after the configuration is read, before any download."""
    _check_distinct("SM_HP_", hyperparameters, "hyperparameters")
    _check_distinct("SM_CHANNEL_", channels, "channels")
    user_arguments(hyperparameters)
    for key, value in hyperparameters.items():
        _passable(f"the value of hyperparameter {shown(key)}", variable_value(value))
    # SM_HPS holds exactly this; SM_TRAINING_ENV holds it and more.
    _passable("the variable SM_HPS", "SM_HPS=" + variable_value(dict(hyperparameters)))


def training_env(
    env: TrainingEnvironment,
    resources: Resources,
    settings: MXNetSettings,
    environ: Mapping[str, str] = os.environ,
) -> Dict[str, Any]:
    """``SM_TRAINING_ENV``: the official toolkit's training environment, plus ``kvstore`` and ``context``."""
    paths = env.paths
    framework = dict(env.additional_framework_parameters)
    groups = {group["instance_group_name"]: dict(group) for group in env.instance_groups}
    current_group_hosts = next(
        (list(g["hosts"]) for g in env.instance_groups if g["instance_group_name"] == env.current_instance_group), []
    )
    if "sagemaker_distribution_instance_groups" in framework:
        distribution_groups = framework["sagemaker_distribution_instance_groups"]
    else:
        # Python's truth of the decoded values, as the official toolkit reads them ("False" is true).
        distributed = any(framework.get(key) for key in _DISTRIBUTION_FLAGS)
        distribution_groups = [env.current_instance_group] if distributed else []
    if env.instance_groups:
        distribution_hosts = [
            host
            for group in env.instance_groups
            if group["instance_group_name"] in distribution_groups
            for host in group["hosts"]
        ]
    else:
        distribution_hosts = list(env.hosts)
    master = distribution_hosts[0] if distribution_hosts else env.hosts[0]
    model_parallel = environ.get("SM_HP_MP_PARAMETERS")
    program = env.program
    topology = env.resource_config.get("topology", [])
    return {
        "additional_framework_parameters": framework,
        "channel_input_dirs": dict(env.channels),
        "current_host": env.current_host,
        "current_instance_group": env.current_instance_group,
        "current_instance_group_hosts": current_group_hosts,
        "current_instance_type": env.current_instance_type,
        "distribution_hosts": distribution_hosts,
        "distribution_instance_groups": distribution_groups,
        "framework_module": FRAMEWORK_MODULE,
        "hosts": list(env.hosts),
        "hyperparameters": dict(env.hyperparameters),
        "input_config_dir": paths.input_config_dir,
        "input_data_config": dict(env.input_data_config),
        "input_dir": paths.input_dir,
        "instance_groups": list(groups),
        "instance_groups_dict": groups,
        "is_hetero": len(env.instance_groups) > 1,
        "is_master": env.current_host == master,
        "is_modelparallel_enabled": model_parallel and model_parallel != "{}",
        "is_smddpmprun_installed": shutil.which("smddpmprun") is not None,
        "is_smddprun_installed": shutil.which("smddprun") is not None,
        "job_name": env.job_name,
        "log_level": env.log_level_setting,
        "master_hostname": master,
        "model_dir": paths.model_dir,
        "module_dir": env.submit_directory or paths.code_dir,
        "module_name": program[:-3] if program and program.endswith(".py") else program,
        "network_interface_name": env.network_interface_name,
        "num_cpus": resources.num_cpus,
        "num_gpus": resources.num_gpus,
        # sagemaker-training counts Neuron cores with neuron-ls, which this image lacks, except
        # on the one instance type it knows the count of without asking.
        "num_neurons": 64 if "trn2.48xlarge" in env.current_instance_type else 0,
        "output_data_dir": paths.output_data_dir,
        "output_dir": paths.output_dir,
        "output_intermediate_dir": paths.output_intermediate_dir,
        "resource_config": dict(env.resource_config),
        "topology": topology,
        "user_entry_point": program,
        # This image's own.
        "kvstore": settings.kvstore,
        "context": settings.context_string,
    }


# SM_<KEY> for each of these keys of SM_TRAINING_ENV, as sagemaker-training exports them.
_EXPORTED = (
    "current_host",
    "current_instance_group",
    "current_instance_group_hosts",
    "current_instance_type",
    "distribution_instance_groups",
    "framework_module",
    "hosts",
    "input_config_dir",
    "input_data_config",
    "input_dir",
    "instance_groups",
    "instance_groups_dict",
    "is_hetero",
    "log_level",
    "model_dir",
    "module_dir",
    "module_name",
    "network_interface_name",
    "num_cpus",
    "num_gpus",
    "num_neurons",
    "output_data_dir",
    "output_dir",
    "output_intermediate_dir",
    "resource_config",
    "user_entry_point",
)
# This image's additions: SM_<KEY> for these keys too (SM_JOB_NAME only when the job has a name).
_ADDED = ("is_master", "master_hostname", "kvstore", "context", "job_name")


def _with_aliases(prefix: str, values: Mapping[str, str], taken: Mapping[str, str]) -> Dict[str, str]:
    """``prefix + KEY`` for every key, plus ``prefix + variable_name(key)`` where that differs and
    names no other variable (``SM_HP_LEARNING-RATE`` and ``SM_HP_LEARNING_RATE``)."""
    result = {prefix + key.upper(): value for key, value in values.items()}
    aliases: Dict[str, List[str]] = {}
    for key in values:
        aliases.setdefault(prefix + variable_name(key), []).append(key)
    for alias, keys in aliases.items():
        if len(keys) == 1 and alias not in result and alias not in taken:
            result[alias] = values[keys[0]]
    return result


def variables(training: Mapping[str, Any], env: TrainingEnvironment, code_dir: str) -> Dict[str, str]:
    """The variables added to the user's process environment.

    Raises ConfigurationError, before anything runs, where a hyperparameter or channel could not
    reach the user's code intact: two keys for one variable, a NUL, text that is not Unicode,
    or more than one variable can hold (all hyperparameters travel in SM_HPS and SM_TRAINING_ENV).
    """
    hyperparameters = training["hyperparameters"]
    channels = training["channel_input_dirs"]
    check(hyperparameters, channels)
    result = {f"SM_{key.upper()}": variable_value(training[key]) for key in _EXPORTED}
    result.update(
        {
            "SM_HPS": variable_value(hyperparameters),
            "SM_FRAMEWORK_PARAMS": variable_value(training["additional_framework_parameters"]),
            "SM_CHANNELS": variable_value(sorted(channels)),
            "SM_USER_ARGS": variable_value(user_arguments(hyperparameters)),
            "SM_TRAINING_ENV": variable_value(dict(training)),
        }
    )
    if training["topology"]:
        result["SM_TOPOLOGY"] = variable_value(training["topology"])
    result.update(_with_aliases("SM_CHANNEL_", channels, result))
    result.update(
        _with_aliases("SM_HP_", {key: variable_value(value) for key, value in hyperparameters.items()}, result)
    )
    for key in _ADDED:
        if training[key] is not None:
            result[f"SM_{key.upper()}"] = variable_value(training[key])
    # What sagemaker-training sets in its own environment before starting the user's code.
    result["CURRENT_HOST"] = training["current_host"]
    result["SAGEMAKER_JOB_NAME"] = env.submitted_job_name or ""
    result["SAGEMAKER_REGION"] = env.default_region
    # The user's modules import from the code directory whatever the working directory.
    python_path = os.environ.get("PYTHONPATH")
    result["PYTHONPATH"] = code_dir + (os.pathsep + python_path if python_path else "")
    # OpenMP and MXNet's engine would otherwise size their pools by the host's CPUs, not the
    # CPUs this container may use; the user's own settings win.
    result["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", str(training["num_cpus"]))
    for name, value in result.items():
        # A name made from a key is shown quoted: it may hold any character.
        shown_name = name if re.fullmatch(r"[A-Z0-9_]+", name) else shown(name)
        _passable(f"the variable {shown_name}", f"{name}={value}")
    return result
