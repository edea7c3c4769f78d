"""The input shapes a Gluon HybridBlock built its graph with, for ``model-shapes.json``.

The serving image's default ``model_fn`` binds a Module with the shapes in ``model-shapes.json``.
A Module knows them (``data_shapes``); a HybridBlock exported after training does not: MXNet 1.9.1
keeps neither the shapes a hybridized block was first called with nor a public hook that sees
the first call of a block the user's code makes. So ``record()`` wraps the one place that sees
them, ``HybridBlock._build_cache`` (run once per traced graph, never per batch), and keeps
each block's input names and shapes beside it. Without that private method nothing is
recorded, and saving falls back to a warning.
"""

import functools
import weakref
from typing import Dict, List, Optional

import wrapt

# block -> [{"name": ..., "shape": [...]}], forgotten with the block.
_SIGNATURES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_MARK = "_sagemaker_records_input_shapes"
_hooked = False


def record() -> None:
    """Records, in this process, the inputs every HybridBlock traces its graph with.

    Works whenever MXNet is imported, before or after this call, without importing it: the
    user's code may set MXNet's variables before its own ``import mxnet``."""
    global _hooked
    if not _hooked:
        wrapt.register_post_import_hook(_wrap_build_cache, "mxnet.gluon.block")
        _hooked = True


def _wrap_build_cache(block_module) -> None:
    hybrid_block = getattr(block_module, "HybridBlock", None)
    build_cache = getattr(hybrid_block, "_build_cache", None)
    if build_cache is None or getattr(build_cache, _MARK, False):
        return

    @functools.wraps(build_cache)
    def recording_build_cache(self, *args):
        result = build_cache(self, *args)
        try:
            _remember(self, args)
        except Exception:  # recording must never break the user's training
            _SIGNATURES.pop(self, None)
        return result

    setattr(recording_build_cache, _MARK, True)
    hybrid_block._build_cache = recording_build_cache


def _remember(block, args) -> None:
    # _cached_graph[0] holds the graph's data variables, one per non-None input in call order:
    # the names its export gives them ("data", or "data0", "data1", ...).
    names = [variable.name for variable in block._cached_graph[0]]
    shapes = [list(leaf.shape) for leaf in _leaves(args)]
    _SIGNATURES[block] = [{"name": name, "shape": shape} for name, shape in zip(names, shapes, strict=True)]


def _leaves(args):
    for arg in args:
        if isinstance(arg, (list, tuple)):
            yield from _leaves(arg)
        elif arg is not None:
            yield arg


def signature(block, graph_inputs) -> Optional[List[Dict]]:
    """The recorded inputs of ``block`` that its exported graph reads (``graph_inputs``: the
    saved symbol's ``list_inputs()``), or None when the block's shapes were never recorded."""
    recorded = _SIGNATURES.get(block)
    if not recorded:
        return None
    wanted = set(graph_inputs)
    used = [entry for entry in recorded if entry["name"] in wanted]
    return used or None
