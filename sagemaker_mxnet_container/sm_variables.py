"""The ``SM_*`` variables and ``--name value`` arguments the user's code receives.

Names and formats follow the sagemaker-training toolkit, so scripts written for the official
images read the same values here. ``SM_TRAINING_ENV`` carries everything as one JSON document;
the legacy-mode runner rebuilds ``train()``'s keyword arguments from it.
"""

import json
import os
import re
from typing import Any, Dict, Iterable, List, Mapping

from sagemaker_mxnet_container.environment import TrainingEnvironment
from sagemaker_mxnet_container.errors import ConfigurationError
from sagemaker_mxnet_container.mxnet_settings import MXNetSettings
from sagemaker_mxnet_container.resources import Resources

_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_]")
# Linux's MAX_ARG_STRLEN: execve refuses ("Argument list too long") any one argument or
# NAME=value string longer than 32 pages, however small the rest is.
MAX_STRING_BYTES = 32 * os.sysconf("SC_PAGE_SIZE")
_SHOWN_KEY = 60


def _shown(key: str) -> str:
    """A key as an error message names it: repr, so control characters cannot forge lines."""
    return repr(key if len(key) <= _SHOWN_KEY else key[:_SHOWN_KEY] + "...")


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


def to_argument(value: Any) -> str:
    """Strings are passed raw, everything else as JSON, like the peer toolkit."""
    return value if isinstance(value, str) else json.dumps(value)


def user_arguments(hyperparameters: Mapping[str, Any]) -> List[str]:
    """``--name value`` pairs; ConfigurationError for a name or value no process can receive."""
    arguments = []
    for name in sorted(hyperparameters):
        argument = to_argument(hyperparameters[name])
        _passable(f"the name of hyperparameter {_shown(name)}", name)
        _passable(f"the value of hyperparameter {_shown(name)}", argument)
        arguments += [f"--{name}", argument]
    return arguments


def variable_name(key: str) -> str:
    return _NOT_IN_NAME.sub("_", key).upper()


def _check_distinct(prefix: str, keys: Iterable[str], what: str) -> None:
    """Two keys that map to one variable would leave the user's code with only one of them."""
    seen: Dict[str, str] = {}
    for key in sorted(keys):
        name = prefix + variable_name(key)
        if name in seen:
            raise ConfigurationError(
                f"{what} {_shown(seen[name])} and {_shown(key)} would both be passed as {name}: rename one of "
                "them (variable names are upper-cased, and characters other than letters, digits and _ become _)"
            )
        seen[name] = key


def training_env(
    env: TrainingEnvironment, resources: Resources, settings: MXNetSettings, module_name: str
) -> Dict[str, Any]:
    paths = env.paths
    return {
        "additional_framework_parameters": dict(env.framework_parameters),
        "channel_input_dirs": dict(env.channels),
        "context": settings.context_string,
        "current_host": env.current_host,
        "framework_module": "sagemaker_mxnet_container.entrypoint:main",
        "hosts": list(env.hosts),
        "hyperparameters": dict(env.hyperparameters),
        "input_config_dir": paths.input_config_dir,
        "input_data_config": dict(env.input_data_config),
        "input_dir": paths.input_dir,
        "is_master": env.is_first_host,
        "job_name": env.job_name,
        "kvstore": settings.kvstore,
        "log_level": env.log_level,
        "master_hostname": env.hosts[0],
        "model_dir": paths.model_dir,
        "module_dir": env.submit_directory or paths.code_dir,
        "module_name": module_name,
        "network_interface_name": env.network_interface_name,
        "num_cpus": resources.num_cpus,
        "num_gpus": resources.num_gpus,
        "output_data_dir": paths.output_data_dir,
        "output_dir": paths.output_dir,
        "output_intermediate_dir": paths.output_intermediate_dir,
        "resource_config": dict(env.resource_config),
        "user_entry_point": env.program,
    }


def check(hyperparameters: Mapping[str, Any], channels: Iterable[str]) -> None:
    """ConfigurationError where the hyperparameters or channels cannot reach the user's code
    intact; cheap enough to run right after the configuration is read, before any download."""
    _check_distinct("SM_HP_", hyperparameters, "hyperparameters")
    _check_distinct("SM_CHANNEL_", channels, "channels")
    user_arguments(hyperparameters)
    # SM_HPS holds exactly this; SM_TRAINING_ENV holds it and more.
    _passable("the variable SM_HPS", "SM_HPS=" + json.dumps(dict(hyperparameters)))


def variables(training: Mapping[str, Any], code_dir: str) -> Dict[str, str]:
    """The variables added to the user's process environment.

    Raises ConfigurationError, before anything runs, where a hyperparameter or channel could not
    reach the user's code intact: two keys for one variable, a NUL, text that is not Unicode,
    or more than one variable can hold (all hyperparameters travel in SM_HPS and SM_TRAINING_ENV).
    """
    hyperparameters = training["hyperparameters"]
    check(hyperparameters, training["channel_input_dirs"])
    result = {
        "SM_TRAINING_ENV": json.dumps(training),
        "SM_USER_ARGS": json.dumps(user_arguments(hyperparameters)),
        "SM_HPS": json.dumps(hyperparameters),
        "SM_CHANNELS": json.dumps(sorted(training["channel_input_dirs"])),
        "SM_FRAMEWORK_PARAMS": json.dumps(training["additional_framework_parameters"]),
        "SM_HOSTS": json.dumps(training["hosts"]),
        "SM_RESOURCE_CONFIG": json.dumps(training["resource_config"]),
        "SM_INPUT_DATA_CONFIG": json.dumps(training["input_data_config"]),
    }
    for name, directory in training["channel_input_dirs"].items():
        result[f"SM_CHANNEL_{variable_name(name)}"] = directory
    for name, value in hyperparameters.items():
        result[f"SM_HP_{variable_name(name)}"] = to_argument(value)
    for key in (
        "current_host",
        "framework_module",
        "input_config_dir",
        "input_dir",
        "job_name",
        "log_level",
        "master_hostname",
        "model_dir",
        "module_dir",
        "module_name",
        "network_interface_name",
        "num_cpus",
        "num_gpus",
        "output_data_dir",
        "output_dir",
        "output_intermediate_dir",
        "user_entry_point",
        "kvstore",
        "context",
    ):
        value = training[key]
        if value is not None:
            result[f"SM_{key.upper()}"] = str(value)
    result["SM_IS_MASTER"] = json.dumps(training["is_master"])
    # The user's modules import from the code directory whatever the working directory.
    python_path = os.environ.get("PYTHONPATH")
    result["PYTHONPATH"] = code_dir + (os.pathsep + python_path if python_path else "")
    # OpenMP and MXNet's engine would otherwise size their pools by the host's CPUs, not the
    # CPUs this container may use; the user's own settings win.
    result["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS", str(training["num_cpus"]))
    for name, value in result.items():
        _passable(f"the variable {name}", f"{name}={value}")
    return result
