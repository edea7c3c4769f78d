"""Legacy mode, run in the user's process: import the module, call its ``train()``, save the model.

The supervisor starts this as ``python -m sagemaker_mxnet_container.legacy`` with the job's
``SM_*`` environment, so MXNet is only ever imported here, next to the user's code. A failure
is written as a JSON record (type, message, where, traceback) to the file named by
``error_record.FILE_VARIABLE``, from which the supervisor writes the job's failure reason.
"""

import errno
import importlib.util
import inspect
import json
import logging
import os
import re
import sys
import traceback

from sagemaker_mxnet_container import block_shapes, error_record
from sagemaker_mxnet_container.environment import parse_log_level

LEGACY_ARGUMENTS = (
    "hyperparameters",
    "input_data_config",
    "channel_input_dirs",
    "output_data_dir",
    "model_dir",
    "num_gpus",
    "num_cpus",
    "hosts",
    "current_host",
    "context",
    "kvstore",
)

logger = logging.getLogger("sagemaker_mxnet_container.legacy")


class LegacyError(Exception):
    """A problem with the user's module that is not an exception raised by it."""


def parse_contexts(text):
    """``cpu(0)`` or ``gpu(0),gpu(1)`` into MXNet contexts."""
    import mxnet as mx

    contexts = []
    for item in text.split(","):
        match = re.fullmatch(r"\s*(cpu|gpu)\((\d+)\)\s*", item)
        if not match:
            raise LegacyError(f"bad context {item!r}")
        contexts.append(mx.gpu(int(match.group(2))) if match.group(1) == "gpu" else mx.cpu(int(match.group(2))))
    return contexts


def available_arguments(training):
    """What legacy mode can pass, from the job's SM_TRAINING_ENV (``context`` still as text)."""
    return {name: training[name] for name in LEGACY_ARGUMENTS}


def select_arguments(function, available):
    """The keyword arguments ``function`` names (all of them if it takes ``**kwargs``)."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(available)
    chosen = {}
    missing = []
    for parameter in parameters:
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            if parameter.kind is inspect.Parameter.POSITIONAL_ONLY and parameter.default is parameter.empty:
                missing.append(parameter.name)
            continue
        if parameter.name in available:
            chosen[parameter.name] = available[parameter.name]
        elif parameter.default is parameter.empty:
            missing.append(parameter.name)
    if missing:
        raise LegacyError(
            f"train() requires {', '.join(missing)}, which legacy mode does not pass; it passes "
            f"{', '.join(LEGACY_ARGUMENTS)} by keyword. To run the file as a script instead, call "
            "train() under if __name__ == '__main__': or set the hyperparameter sagemaker_mode to 'script'"
        )
    return chosen


def import_user_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise LegacyError(f"{os.path.basename(path)} is not a Python module (.py), which legacy mode imports")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run(training, program_path):
    name = os.path.splitext(os.path.basename(program_path))[0]
    where = f"importing {os.path.basename(program_path)}"
    # Before the user's code builds any Gluon block, so a returned HybridBlock saves with its shapes.
    block_shapes.record()
    try:
        module = import_user_module(program_path, name)
        where = f"checking train() in {os.path.basename(program_path)}"
        train = getattr(module, "train", None)
        if not callable(train):
            raise LegacyError(f"{os.path.basename(program_path)} has no train() function to call in legacy mode")
        arguments = select_arguments(train, available_arguments(training))
        if "context" in arguments:
            arguments["context"] = parse_contexts(arguments["context"])
        where = f"running train() in {os.path.basename(program_path)}"
        logger.info("Calling train() with %s", ", ".join(sorted(arguments)) or "no arguments")
        model = train(**arguments)
        where = "saving the model"
        _save(module, model, training)
    except Exception as error:
        error_record.write(error, where)
        raise


def _save(module, model, training):
    from sagemaker_mxnet_container.training_utils import save, scheduler_host

    if training["current_host"] != scheduler_host(training["hosts"]):
        return
    model_dir = training["model_dir"]
    if model is None:
        logger.warning("train() returned nothing, so no model was saved by the toolkit")
        return
    user_save = getattr(module, "save", None)
    try:
        if callable(user_save):
            user_save(model, model_dir)
        else:
            save(model_dir, model, training["current_host"], training["hosts"])
    except Exception as error:
        _raise_if_disk_full(model_dir, error)
        raise
    logger.info("Model saved in %s", model_dir)


# Below this much free space a failed save is put down to a full disk.
_FULL_BELOW_BYTES = 1024 * 1024


def _raise_if_disk_full(model_dir, error):
    """MXNet reports a full disk as "FileStream.Write incomplete" under a C++ traceback; the
    user needs to hear that the model's volume is full."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return
    try:
        stats = os.statvfs(model_dir)
    except OSError:
        return
    free = stats.f_bavail * stats.f_frsize
    if free < _FULL_BELOW_BYTES:
        raise OSError(
            errno.ENOSPC,
            f"No space left on device while saving the model in {model_dir} ({free} bytes free); "
            f"increase the training volume size (the save failed with {type(error).__name__})",
        ) from error


def main():
    training = json.loads(os.environ["SM_TRAINING_ENV"])
    logging.basicConfig(
        # As written in sagemaker_container_log_level (20, "20", "DEBUG"): checked by train already.
        level=parse_log_level(training["log_level"]),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        run(training, sys.argv[1])
    except BaseException as error:
        if os.environ.get("DMLC_ROLE") != "worker" or (isinstance(error, SystemExit) and not error.code):
            raise
        # At exit MXNet's distributed kvstore waits for every other worker, and they are still
        # training: a failed worker would hang there, so it leaves without that handshake.
        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(error.code if isinstance(error, SystemExit) and isinstance(error.code, int) else 1)


if __name__ == "__main__":
    main()
