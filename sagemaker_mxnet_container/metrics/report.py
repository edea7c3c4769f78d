"""``metrics.csv`` and the summary logged at the end of a job; how metric names group into panels.

One CSV row per value: ``seconds`` (since the user's code started), ``epoch`` and ``batch`` (empty
where the line named none), ``metric`` and ``value``.
"""

import csv
import math
import re
from typing import Dict, List, Optional, Tuple

from sagemaker_mxnet_container.metrics.collector import Row
from sagemaker_mxnet_container.metrics.lines import Sample

CSV_NAME = "metrics.csv"
PNG_NAME = "training-curves.png"
COLUMNS = ("seconds", "epoch", "batch", "metric", "value")

# The part of a metric name that says which data it was measured on; the rest names the panel,
# so that train and validation accuracy are drawn together.
_SPLIT = re.compile(
    r"^(?P<split>train(?:ing)?|trn|val(?:id(?:ation)?)?|eval(?:uation)?|dev|test)[-_:./ ](?P<panel>.+)$",
    re.IGNORECASE,
)
_SPLIT_NAMES = {"trn": "train", "training": "train", "val": "validation", "valid": "validation", "dev": "validation"}
_SPLIT_NAMES.update({"eval": "validation", "evaluation": "validation"})
# Metrics for which a smaller value is the better one; anything else (accuracy, F1, speed) is
# better larger.
_LOWER_IS_BETTER = re.compile(
    r"loss|err(?:or)?s?\b|\b(?:r?mse|mae|nll|ce|wer|cer|ppl)\b|perplexity|cross.?entropy|time|cost|latency",
    re.IGNORECASE,
)


def series(name: str) -> Tuple[str, str]:
    """(panel, series) for a metric name: ``validation-accuracy`` is the accuracy panel's validation series."""
    match = _SPLIT.match(name)
    if not match:
        return name, ""
    split = match.group("split").lower()
    return match.group("panel"), _SPLIT_NAMES.get(split, split)


def lower_is_better(name: str) -> bool:
    return bool(_LOWER_IS_BETTER.search(series(name)[0]))


def write_csv(rows: List[Row], path: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(COLUMNS)
        for row in rows:
            sample = row.sample
            writer.writerow(
                (
                    f"{row.seconds:.3f}",
                    "" if sample.epoch is None else sample.epoch,
                    "" if sample.batch is None else sample.batch,
                    sample.name,
                    repr(sample.value),
                )
            )


def read_csv(path: str) -> List[Row]:
    rows = []
    with open(path, newline="", encoding="utf-8") as stream:
        for record in csv.DictReader(stream):
            sample = Sample(
                record["metric"],
                float(record["value"]),
                int(record["epoch"]) if record["epoch"] else None,
                int(record["batch"]) if record["batch"] else None,
            )
            rows.append(Row(float(record["seconds"]), sample))
    return rows


def by_metric(rows: List[Row]) -> Dict[str, List[Row]]:
    """Rows grouped by metric name, in the order the metrics first appeared."""
    grouped: Dict[str, List[Row]] = {}
    for row in rows:
        grouped.setdefault(row.sample.name, []).append(row)
    return grouped


def _where(row: Row) -> str:
    sample = row.sample
    if sample.epoch is not None and sample.batch is not None:
        return f"epoch {sample.epoch}, batch {sample.batch}"
    if sample.epoch is not None:
        return f"epoch {sample.epoch}"
    if sample.batch is not None:
        return f"batch {sample.batch}"
    return f"at {row.seconds:.1f} s"


def _best(name: str, rows: List[Row]) -> Optional[Row]:
    finite = [row for row in rows if math.isfinite(row.sample.value)]
    if not finite:
        return None
    choose = min if lower_is_better(name) else max
    return choose(finite, key=lambda row: row.sample.value)


def summary(rows: List[Row], dropped: int = 0) -> List[str]:
    """One line per metric: its last and best value, from per-epoch values where there are any."""
    lines = []
    for name, found in by_metric(rows).items():
        per_epoch = [row for row in found if row.sample.batch is None]
        chosen = per_epoch or found
        last = chosen[-1]
        text = f"{name}: last {last.sample.value:g} ({_where(last)})"
        best = _best(name, chosen)
        if best is not None and best is not last:
            text += f", best {best.sample.value:g} ({_where(best)})"
        lines.append(text)
    if dropped:
        lines.append(f"{dropped} further values were not kept (more than the limit of values per job)")
    return lines
