"""``python -m sagemaker_mxnet_container.metrics.plot METRICS_CSV PNG``: the training curves.

Runs as a child of the supervisor once the user's code has ended, so that matplotlib (tens of
megabytes, a second to import) is never loaded into the supervisor. One panel per metric, its
train, validation and test values together; per-epoch values as lines with markers, per-batch
values (the Speedometer's) as a thin line behind them. The PNG's ``Panels`` text chunk lists the
panels' titles, in order.
"""

import json
import math
import signal
import sys
from typing import Dict, List, Tuple

from sagemaker_mxnet_container.metrics.collector import Row
from sagemaker_mxnet_container.metrics.report import read_csv, series

PANEL_WIDTH_INCHES = 6.0
PANEL_HEIGHT_INCHES = 3.6
DPI = 100
MAX_COLUMNS = 2
MAX_SECONDS = 60
EPOCHS = "epochs completed"
_SERIES_ORDER = {"train": 0, "validation": 1, "test": 2, "": 3}


def layout(panel_count: int) -> Tuple[int, int]:
    """(rows, columns) of the grid of panels."""
    columns = min(MAX_COLUMNS, max(panel_count, 1))
    return math.ceil(max(panel_count, 1) / columns), columns


def panels(rows: List[Row]) -> Dict[str, Dict[str, List[Row]]]:
    """{panel: {series: rows}}, panels in the order their first value appeared."""
    grouped: Dict[str, Dict[str, List[Row]]] = {}
    for row in rows:
        panel, name = series(row.sample.name)
        grouped.setdefault(panel, {}).setdefault(name, []).append(row)
    return grouped


def _axis(rows: List[Row]) -> str:
    if all(row.sample.epoch is not None for row in rows):
        return EPOCHS
    if all(row.sample.batch is not None for row in rows):
        return "batch"
    return "seconds"


def _x(row: Row, axis: str, batches_per_epoch: int) -> float:
    sample = row.sample
    if axis == EPOCHS:
        # Epochs count from 0, as MXNet counts them, and a per-epoch value is measured at the end
        # of its epoch: epoch 0's lies at 1 epoch completed, its batches between 0 and 1.
        return sample.epoch + (sample.batch / batches_per_epoch if sample.batch is not None else 1.0)
    if axis == "batch":
        return float(sample.batch)
    return row.seconds


def draw(rows: List[Row], path: str) -> List[str]:
    """Draws the curves of ``rows`` into the PNG at ``path``; returns the panels' titles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    grouped = panels(rows)
    titles = list(grouped)
    row_count, column_count = layout(len(titles))
    figure, axes = pyplot.subplots(
        row_count,
        column_count,
        figsize=(PANEL_WIDTH_INCHES * column_count, PANEL_HEIGHT_INCHES * row_count),
        dpi=DPI,
        squeeze=False,
    )
    for unused in axes.flat[len(titles) :]:
        unused.set_axis_off()
    for plot, title in zip(axes.flat, titles, strict=False):
        by_series = grouped[title]
        panel_rows = [row for found in by_series.values() for row in found]
        axis = _axis(panel_rows)
        batches = [row.sample.batch for row in panel_rows if row.sample.batch is not None]
        # Batch numbers restart every epoch; the largest seen stands for an epoch's length.
        batches_per_epoch = max(batches, default=0) or 1
        for name in sorted(by_series, key=lambda key: _SERIES_ORDER.get(key, 3)):
            found = by_series[name]
            per_batch = [row for row in found if row.sample.batch is not None and axis == EPOCHS]
            whole = [row for row in found if row not in per_batch] if per_batch else found
            label = name or title
            if per_batch:
                plot.plot(
                    [_x(row, axis, batches_per_epoch) for row in per_batch],
                    [row.sample.value for row in per_batch],
                    linewidth=0.8,
                    alpha=0.5,
                    label=f"{label} (per batch)",
                )
            if whole:
                plot.plot(
                    [_x(row, axis, batches_per_epoch) for row in whole],
                    [row.sample.value for row in whole],
                    marker="o",
                    markersize=3,
                    label=label,
                )
        # Metric names are the user's text: a "$" must not switch matplotlib into math mode.
        plot.set_title(title, parse_math=False)
        plot.set_xlabel(axis)
        plot.grid(True, alpha=0.3)
        legend = plot.legend(fontsize="small")
        for text in legend.get_texts():
            text.set_parse_math(False)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=DPI, metadata={"Title": "Training curves", "Panels": json.dumps(titles)})
    pyplot.close(figure)
    return titles


def main(argv=None) -> int:
    """The child's entry. It arms an alarm: call ``draw`` instead in a process that lives on."""
    argv = sys.argv[1:] if argv is None else argv
    csv_path, png_path = argv
    # The job waits for this drawing before it ends: a plot that hangs must not hold it.
    signal.alarm(MAX_SECONDS)
    rows = read_csv(csv_path)
    if not rows:
        return 0
    draw(rows, png_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
