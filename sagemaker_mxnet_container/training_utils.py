"""Helpers that user scripts import, as they do on the official SageMaker MXNet images.

``save`` is also the legacy mode's default save, so a model saved either way has one format:
``model-symbol.json``, ``model-0000.params`` and ``model-shapes.json`` (a list of
``{"name": ..., "shape": [...]}``, the input shapes a server binds the module with), the three
files the SageMaker MXNet serving image's default ``model_fn`` loads.

Importing this module starts recording the shapes Gluon blocks are called with
(``block_shapes``), so a script that imports it before training saves a HybridBlock with its
``model-shapes.json`` too.
"""

import json
import logging
import os
from typing import Optional, Sequence

from sagemaker_mxnet_container import block_shapes

SYMBOL_FILE = "model-symbol.json"
PARAMS_FILE = "model-0000.params"
SHAPES_FILE = "model-shapes.json"

logger = logging.getLogger(__name__)

block_shapes.record()


def scheduler_host(hosts: Sequence[str]) -> str:
    """The host that runs the parameter server's scheduler and saves the model: the first one."""
    return hosts[0]


def save(model_dir: str, model, current_host: Optional[str] = None, hosts: Optional[Sequence[str]] = None) -> None:
    """Saves a Module (or an exportable Gluon HybridBlock) on the scheduler host only.

    Without ``current_host`` and ``hosts`` the job's ``SM_CURRENT_HOST`` and ``SM_HOSTS`` decide.
    """
    if current_host is None:
        current_host = os.environ.get("SM_CURRENT_HOST")
    if hosts is None:
        hosts = json.loads(os.environ.get("SM_HOSTS") or "[]")
    if hosts and current_host is not None and current_host != scheduler_host(hosts):
        return

    import mxnet as mx

    os.makedirs(model_dir, exist_ok=True)
    prefix = os.path.join(model_dir, "model")
    if isinstance(model, mx.mod.BaseModule):
        model.save_checkpoint(prefix, 0)
        _write_shapes(model_dir, [{"name": desc.name, "shape": list(desc.shape)} for desc in model.data_shapes])
    elif isinstance(model, mx.gluon.HybridBlock):
        # Export needs the traced graph: hybridize() and one forward pass before returning the block.
        model.export(prefix, epoch=0)
        graph_inputs = mx.sym.load(os.path.join(model_dir, SYMBOL_FILE)).list_inputs()
        shapes = block_shapes.signature(model, graph_inputs)
        if shapes is None:
            logger.warning(
                "Saved %s without %s: its input shapes are unknown (it was not called while they were "
                "recorded: in legacy mode from the start, in a script from the import of "
                "sagemaker_mxnet_container.training_utils), so the SageMaker MXNet serving image's "
                "default model_fn cannot load it. Call the block on one batch before saving it, "
                "save it yourself (in legacy mode, a save(model, model_dir) function in your module), "
                "or give the serving image a model_fn in the model's entry point.",
                type(model).__name__,
                SHAPES_FILE,
            )
        else:
            _write_shapes(model_dir, shapes)
    else:
        raise TypeError(
            f"cannot save a {type(model).__module__}.{type(model).__qualname__}: return an mx.mod.Module "
            "or a hybridized gluon.HybridBlock from train(), or define save(model, model_dir) in your module"
        )


def _write_shapes(model_dir: str, shapes) -> None:
    with open(os.path.join(model_dir, SHAPES_FILE), "w") as stream:
        json.dump(shapes, stream)
