"""What a metric line looks like: pure parsing of one line of the user's output.

Recognised, anywhere in a line (so that a logging prefix such as ``INFO:root:`` or a timestamp
does not matter):

- MXNet's own lines, from ``Module.fit`` and its callbacks:
  ``Epoch[3] Train-accuracy=0.91``, ``Epoch[3] Validation-accuracy=0.95``, ``Epoch[3] Time cost=4.2``,
  the Speedometer's ``Epoch[3] Batch [100-200]\\tSpeed: 812.5 samples/sec\\taccuracy=0.93`` (and its
  ``Batch [0-200]`` and ``Iter[3] Batch [200]`` forms), and ``log_train_metric``'s
  ``Iter[3] Batch[200] Train-accuracy=0.93``;
- lines a script marks with ``[metrics]``, followed by ``name=value`` or ``name: value`` pairs
  separated by spaces, commas or semicolons: ``print(f"[metrics] epoch={epoch} train-loss={loss}
  validation-accuracy={acc}")``. ``epoch`` and ``batch`` (or ``step``) place the other values.

Names are kept as the line spells them (MXNet's ``Train-``/``Validation-`` prefixes lower-cased), so
that a ``metric_definitions`` regular expression written for the log finds the same metric.
"""

import math
import re
from dataclasses import dataclass
from typing import List, Optional

MARKER = "[metrics]"
# Bytes that a line must contain to hold a metric: checked on raw output before any decoding or
# line splitting, so output without metrics costs one search per chunk.
CANDIDATE = re.compile(rb"Epoch\[|Iter\[|\[metrics\]")
# A metric name longer than this is not a name but a line that happens to hold "=".
MAX_NAME_LENGTH = 80

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_EPOCH_VALUE = re.compile(r"Epoch\[(\d+)\]\s+(Train|Validation)-([^=\t]+?)=(" + _NUMBER + ")")
_EPOCH_TIME = re.compile(r"Epoch\[(\d+)\]\s+Time cost=(" + _NUMBER + ")")
_SPEED = re.compile(
    r"(?:Epoch|Iter)\[(\d+)\]\s+Batch\s*\[(?:\d+-)?(\d+)\]\s+Speed:\s*(" + _NUMBER + r")\s+samples/sec(.*)"
)
_BATCH_VALUE = re.compile(r"Iter\[(\d+)\]\s+Batch\[(\d+)\]\s+Train-([^=\t]+?)=(" + _NUMBER + ")")
_TAB_PAIR = re.compile(r"\t([^=\t]+?)=(" + _NUMBER + ")")
_MARKED_PAIR = re.compile(r"(?<![^\s,;])([A-Za-z_][\w.\-/]*)\s*[=:]\s*(" + _NUMBER + r")(?![\w.])")
_EPOCH_NAMES = ("epoch",)
_BATCH_NAMES = ("batch", "step", "iteration")


@dataclass(frozen=True)
class Sample:
    """One value of one metric, placed by epoch and batch where the line says."""

    name: str
    value: float
    epoch: Optional[int] = None
    batch: Optional[int] = None


def _number(text: str) -> float:
    return float(text)


def _name(text: str) -> Optional[str]:
    name = text.strip()
    return name if 0 < len(name) <= MAX_NAME_LENGTH else None


def _mxnet(line: str) -> List[Sample]:
    match = _EPOCH_VALUE.search(line)
    if match:
        name = _name(match.group(3))
        if name is None:
            return []
        return [Sample(f"{match.group(2).lower()}-{name}", _number(match.group(4)), int(match.group(1)))]
    match = _EPOCH_TIME.search(line)
    if match:
        return [Sample("time-cost", _number(match.group(2)), int(match.group(1)))]
    match = _SPEED.search(line)
    if match:
        epoch, batch = int(match.group(1)), int(match.group(2))
        samples = [Sample("speed", _number(match.group(3)), epoch, batch)]
        # The Speedometer's values are the training metric over the batches since its last line.
        for pair in _TAB_PAIR.finditer(match.group(4)):
            name = _name(pair.group(1))
            if name is not None:
                samples.append(Sample(f"train-{name}", _number(pair.group(2)), epoch, batch))
        return samples
    match = _BATCH_VALUE.search(line)
    if match:
        name = _name(match.group(3))
        if name is None:
            return []
        return [Sample(f"train-{name}", _number(match.group(4)), int(match.group(1)), int(match.group(2)))]
    return []


def _coordinate(value: float) -> Optional[int]:
    """An epoch or batch number: a whole, non-negative, finite number."""
    if not math.isfinite(value) or value < 0 or value != int(value):
        return None
    return int(value)


def _marked(text: str) -> List[Sample]:
    epoch = batch = None
    values = []
    for match in _MARKED_PAIR.finditer(text):
        name, value = match.group(1), _number(match.group(2))
        if name.lower() in _EPOCH_NAMES:
            epoch = _coordinate(value)
        elif name.lower() in _BATCH_NAMES:
            batch = _coordinate(value)
        elif len(name) <= MAX_NAME_LENGTH:
            values.append((name, value))
    return [Sample(name, value, epoch, batch) for name, value in values]


def parse(line: str) -> List[Sample]:
    """The metric values a line holds, in the order it holds them; [] for any other line."""
    position = line.find(MARKER)
    if position >= 0:
        return _marked(line[position + len(MARKER) :])
    if "Epoch[" in line or "Iter[" in line:
        return _mxnet(line)
    return []
