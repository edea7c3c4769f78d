"""The ``SM_*`` variables and ``--name value`` arguments the user's code receives.

Names and formats follow the sagemaker-training toolkit, so scripts written for the official
images read the same values here. ``SM_TRAINING_ENV`` carries everything as one JSON document;
the legacy-mode runner rebuilds ``train()``'s keyword arguments from it.
"""

import json
import os
import re
from typing import Any, Dict, List, Mapping

from sagemaker_mxnet_container.environment import TrainingEnvironment
from sagemaker_mxnet_container.mxnet_settings import MXNetSettings
from sagemaker_mxnet_container.resources import Resources

_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_]")


def to_argument(value: Any) -> str:
    """Strings are passed raw, everything else as JSON, like the peer toolkit."""
    return value if isinstance(value, str) else json.dumps(value)


def user_arguments(hyperparameters: Mapping[str, Any]) -> List[str]:
    arguments = []
    for name in sorted(hyperparameters):
        arguments += [f"--{name}", to_argument(hyperparameters[name])]
    return arguments


def variable_name(key: str) -> str:
    return _NOT_IN_NAME.sub("_", key).upper()


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


def variables(training: Mapping[str, Any], code_dir: str) -> Dict[str, str]:
    """The variables added to the user's process environment."""
    hyperparameters = training["hyperparameters"]
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
    return result
