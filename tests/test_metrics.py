"""Metric lines recognised in the user's output, and what is recorded from them: the parsing, the
collector's bounds, metrics.csv, the summary, and the PNG of curves (drawn by the real matplotlib)."""

import json
import math
import os
import signal
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagemaker_mxnet_container.metrics import collector, plot, report
from sagemaker_mxnet_container.metrics.lines import Sample, parse

# Lines as MXNet 1.9.1 prints them (Module.fit, Speedometer, log_train_metric), behind the prefix
# logging.basicConfig gives them.
MXNET_LOG = (
    "INFO:root:Epoch[0] Batch [0-100]\tSpeed: 2512.33 samples/sec\taccuracy=0.612000\n"
    "INFO:root:Epoch[0] Batch [100-200]\tSpeed: 2612.33 samples/sec\taccuracy=0.812000\tcross-entropy=0.530000\n"
    "INFO:root:Epoch[0] Train-accuracy=0.686000\n"
    "INFO:root:Epoch[0] Time cost=1.170\n"
    "INFO:root:Epoch[0] Validation-accuracy=0.899000\n"
    "INFO:root:Saved checkpoint to \"/opt/ml/model/model-0000.params\"\n"
    "INFO:root:Epoch[1] Train-accuracy=0.952167\n"
    "INFO:root:Epoch[1] Time cost=1.270\n"
    "INFO:root:Epoch[1] Validation-accuracy=0.951000\n"
)


def _rows(text, chunk=None):
    # A clock that stands still: every value is seen at 0 s.
    found = collector.Collector(clock=lambda: 0.0)
    stream = found.stream()
    data = text.encode() if isinstance(text, str) else text
    size = chunk or len(data) or 1
    for start in range(0, len(data), size):
        stream.feed(data[start : start + size])
    stream.close()
    return found.rows()


@pytest.mark.parametrize(
    "line, expected",
    [
        ("INFO:root:Epoch[3] Train-accuracy=0.912345", [Sample("train-accuracy", 0.912345, 3)]),
        ("2026-11-30 Epoch[12] Validation-top_k_accuracy_5=0.99", [Sample("validation-top_k_accuracy_5", 0.99, 12)]),
        ("Epoch[3] Time cost=4.210", [Sample("time-cost", 4.21, 3)]),
        (
            "Epoch[2] Batch [100-200]\tSpeed: 812.50 samples/sec\taccuracy=0.930000\tce=0.2",
            [Sample("speed", 812.5, 2, 200), Sample("train-accuracy", 0.93, 2, 200), Sample("train-ce", 0.2, 2, 200)],
        ),
        (
            "Epoch[2] Batch [0-300]\tSpeed: 800.00 samples/sec\taccuracy=0.940000",
            [Sample("speed", 800.0, 2, 300), Sample("train-accuracy", 0.94, 2, 300)],
        ),
        ("Iter[1] Batch [50]\tSpeed: 99.00 samples/sec", [Sample("speed", 99.0, 1, 50)]),
        ("Iter[1] Batch[50] Train-mse=0.25", [Sample("train-mse", 0.25, 1, 50)]),
        ("Epoch[0] Train-accuracy=nan", [Sample("train-accuracy", math.nan, 0)]),
        (
            "[metrics] epoch=4 train-loss=0.31, validation-accuracy: 0.97; lr=1e-05",
            [
                Sample("train-loss", 0.31, 4),
                Sample("validation-accuracy", 0.97, 4),
                Sample("lr", 1e-05, 4),
            ],
        ),
        ("INFO 12:00 [metrics] step=300 loss=1.5", [Sample("loss", 1.5, None, 300)]),
        # A name must start a token: "w$eird=3" holds no name "eird".
        ("[metrics] w$eird=3 ok=1", [Sample("ok", 1.0)]),
        # An epoch that is not a whole number places nothing; the values are still kept.
        ("[metrics] epoch=1.5 loss=2", [Sample("loss", 2.0)]),
        ("[metrics] loss=0.5x acc=abc", []),
        ("Epoch 3: loss=0.5", []),
        ("Training finished; accuracy=0.99", []),
        ("Epoch[3] Train-" + "x" * 200 + "=0.5", []),
    ],
)
def test_a_line_yields_the_values_it_holds(line, expected):
    found = parse(line)
    assert [(s.name, s.epoch, s.batch) for s in found] == [(s.name, s.epoch, s.batch) for s in expected]
    for got, want in zip(found, expected, strict=True):
        assert got.value == want.value or (math.isnan(got.value) and math.isnan(want.value))


def test_the_whole_log_of_a_module_fit():
    names = [(row.sample.name, row.sample.epoch, row.sample.batch) for row in _rows(MXNET_LOG)]
    assert names == [
        ("speed", 0, 100),
        ("train-accuracy", 0, 100),
        ("speed", 0, 200),
        ("train-accuracy", 0, 200),
        ("train-cross-entropy", 0, 200),
        ("train-accuracy", 0, None),
        ("time-cost", 0, None),
        ("validation-accuracy", 0, None),
        ("train-accuracy", 1, None),
        ("time-cost", 1, None),
        ("validation-accuracy", 1, None),
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=40))
def test_how_output_is_split_into_chunks_changes_nothing(sizes):
    data = (MXNET_LOG + "[metrics] epoch=2 loss=0.1").encode()
    found = collector.Collector()
    stream = found.stream()
    start = 0
    for size in sizes * (len(data) // sum(sizes) + 1):
        stream.feed(data[start : start + size])
        start += size
    stream.close()
    assert [row.sample for row in found.rows()] == [row.sample for row in _rows(data)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_are_survived(data):
    rows = _rows(b"Epoch[1] Train-acc=0.5\n" + data + b"\n[metrics] x=1\n", chunk=97)
    assert rows[0].sample == Sample("train-acc", 0.5, 1)
    assert rows[-1].sample == Sample("x", 1.0)


def test_a_progress_bar_rewriting_its_line_gives_each_rewrite():
    rows = _rows("[metrics] batch=1 loss=3\r[metrics] batch=2 loss=2\r[metrics] batch=3 loss=1\n")
    assert [(row.sample.batch, row.sample.value) for row in rows] == [(1, 3.0), (2, 2.0), (3, 1.0)]


def test_memory_is_bounded_per_batch_first_then_everything():
    found = collector.Collector(max_rows=10)
    stream = found.stream()
    stream.feed(b"".join(b"[metrics] epoch=0 batch=%d loss=1\n" % n for n in range(15)))
    assert len(found.rows()) == 10 and found.dropped == 5
    stream.feed(b"".join(b"[metrics] epoch=%d loss=1\n" % n for n in range(15)))
    assert len(found.rows()) == 20 and found.dropped == 10
    assert all(row.sample.batch is None for row in found.rows()[10:])


def test_a_partial_line_is_bounded_and_a_huge_line_costs_no_memory():
    found = collector.Collector()
    stream = found.stream()
    for _ in range(64):
        stream.feed(b"y" * 65536)
    stream.feed(b"\n[metrics] a=1\n")
    assert len(stream._partial) == 0
    assert [row.sample.name for row in found.rows()] == ["a"]


@pytest.mark.parametrize(
    "name, panel, split",
    [
        ("train-accuracy", "accuracy", "train"),
        ("Validation-accuracy", "accuracy", "validation"),
        ("val_loss", "loss", "validation"),
        ("training loss", "loss", "train"),
        ("test:f1", "f1", "test"),
        ("speed", "speed", ""),
        ("trainer_steps", "trainer_steps", ""),
    ],
)
def test_names_group_into_panels(name, panel, split):
    assert report.series(name) == (panel, split)


@pytest.mark.parametrize(
    "name, lower",
    [("train-loss", True), ("validation-accuracy", False), ("time-cost", True), ("speed", False), ("val_mse", True)],
)
def test_which_way_is_better(name, lower):
    assert report.lower_is_better(name) is lower


def test_the_csv_round_trips_and_the_summary_names_last_and_best(tmp_path):
    rows = _rows(MXNET_LOG + "[metrics] epoch=2 val_loss=0.4\n[metrics] epoch=3 val_loss=0.5\n")
    path = tmp_path / "metrics.csv"
    report.write_csv(rows, str(path))
    assert path.read_text().splitlines()[0] == "seconds,epoch,batch,metric,value"
    assert path.read_text().splitlines()[1] == "0.000,0,100,speed,2512.33"
    assert [row.sample for row in report.read_csv(str(path))] == [row.sample for row in rows]
    lines = report.summary(rows)
    assert "validation-accuracy: last 0.951 (epoch 1)" in lines
    assert "time-cost: last 1.27 (epoch 1), best 1.17 (epoch 0)" in lines
    assert "val_loss: last 0.5 (epoch 3), best 0.4 (epoch 2)" in lines
    # Per-epoch values win over the Speedometer's per-batch ones for the summary.
    assert "train-accuracy: last 0.952167 (epoch 1)" in lines


def _panel_has_ink(image, box) -> bool:
    left, top, right, bottom = box
    crop = image.convert("RGB").crop((left, top, right, bottom))
    colours = crop.getcolors(maxcolors=1 << 20) or []
    # More than the background and the frame: a curve, markers, labels.
    return sum(count for count, colour in colours if colour != (255, 255, 255)) > 500


def test_the_png_has_one_panel_per_metric(tmp_path):
    from PIL import Image

    # A "$" in a name is drawn as written, not as matplotlib's math.
    rows = _rows(MXNET_LOG + "[metrics] epoch=1 train_loss=0.31 val_loss=0.25 lr=0.1\nEpoch[1] Train-a$b$=0.5\n")
    path = tmp_path / "curves.png"
    titles = plot.draw(rows, str(path))
    assert titles == ["speed", "accuracy", "cross-entropy", "time-cost", "loss", "lr", "a$b$"]
    with Image.open(path) as image:
        assert json.loads(image.text["Panels"]) == titles
        rows_of_panels, columns = plot.layout(len(titles))
        assert (rows_of_panels, columns) == (4, 2)
        assert image.size == (int(plot.PANEL_WIDTH_INCHES * plot.DPI * 2), int(plot.PANEL_HEIGHT_INCHES * plot.DPI * 4))
        width, height = image.size[0] // columns, image.size[1] // rows_of_panels
        boxes = [(c * width, r * height, (c + 1) * width, (r + 1) * height) for r in range(4) for c in range(2)]
        assert [_panel_has_ink(image, box) for box in boxes] == [True] * 7 + [False]


def test_the_plot_child_draws_from_the_csv_and_draws_nothing_without_values(tmp_path):
    rows = _rows(MXNET_LOG)
    csv_path, png_path = tmp_path / "metrics.csv", tmp_path / "curves.png"
    child = [sys.executable, "-m", "sagemaker_mxnet_container.metrics.plot", str(csv_path), str(png_path)]
    report.write_csv(rows, str(csv_path))
    assert subprocess.run(child, timeout=120).returncode == 0
    assert png_path.stat().st_size > 10_000
    report.write_csv([], str(csv_path))
    png_path.unlink()
    assert subprocess.run(child, timeout=120).returncode == 0
    assert not png_path.exists()


def test_a_plot_that_hangs_is_ended_by_its_own_alarm(tmp_path):
    # A CSV that never ends stands for a drawing that never ends.
    fifo = tmp_path / "metrics.csv"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)  # held open: the reader never sees the end
    try:
        run = subprocess.run(
            [sys.executable, "-c", PLOT_WITH_SHORT_ALARM, str(fifo), str(tmp_path / "curves.png")], timeout=60
        )
    finally:
        os.close(writer)
    assert run.returncode == -signal.SIGALRM


# The plot child's entry, with its alarm shortened for the test.
PLOT_WITH_SHORT_ALARM = """
import sys
from sagemaker_mxnet_container.metrics import plot
plot.MAX_SECONDS = 1
plot.main(sys.argv[1:])
"""
