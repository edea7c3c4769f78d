"""Real MNIST training jobs, end to end: code from a real S3 endpoint, real MXNet, and the saved
model loaded back and scored on the test set."""

import csv
import json
import re
import subprocess
import sys

import pytest
from conftest import EXAMPLES, MNIST_FULL, MNIST_SUBSET, REPO, tarball_of_directory
from PIL import Image

sys.path.insert(0, str(EXAMPLES))
import evaluate  # noqa: E402

DATA_SETS = {"subset": MNIST_SUBSET}
if (MNIST_FULL / "train" / "images.gz").exists():
    DATA_SETS["full"] = MNIST_FULL


@pytest.fixture(params=sorted(DATA_SETS))
def mnist_data(request):
    """The embedded subset always; the full set as well where the workplace provides it."""
    return DATA_SETS[request.param]


def _mnist_job(make_job, data, code_uri, epochs, name="job"):
    return make_job(
        {"sagemaker_program": "mnist.py", "sagemaker_submit_directory": code_uri, "epochs": epochs},
        channels={"train": data / "train", "test": data / "test"},
        name=name,
    )


def _assert_trained(job, run, data):
    assert run.returncode == 0, run.stderr[-3000:]
    assert job.succeeded and job.failure is None
    assert sorted(p.name for p in job.model_dir.iterdir()) == [
        "model-0000.params",
        "model-shapes.json",
        "model-symbol.json",
    ]
    assert json.loads((job.model_dir / "model-shapes.json").read_text()) == [
        {"name": "data", "shape": [100, 1, 28, 28]}
    ]
    assert evaluate.accuracy(str(job.model_dir), str(data / "test")) >= 0.9


def _metric_definitions():
    """The README's metric_definitions table: (its Name cell, Regex, metric in metrics.csv, per batch?)."""
    section = (REPO / "README.md").read_text().split("## Training metrics", 1)[1].split("\n## ", 1)[0]
    row = r"^\| ([^|]+?) \| `([^`]+)` \| `([^`]+)`, per (epoch|batch) \|$"
    rows = re.findall(row, section, re.MULTILINE)
    assert len(rows) == 7, section
    return [(name, re.compile(regex), metric, per == "batch") for name, regex, metric, per in rows]


def _recorded(job):
    with open(job.output_dir / "data" / "metrics.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def _assert_definitions_find_what_was_recorded(job, log: str, expected_names):
    """The README expressions that find anything in the real log (exactly ``expected_names``) find
    the values metrics.csv holds for their metric, in order."""
    recorded = _recorded(job)
    matched = []
    for name, regex, metric, per_batch in _metric_definitions():
        found = [float(match.group(1)) for line in log.splitlines() for match in [regex.search(line)] if match]
        if not found:
            continue
        matched.append(name)
        rows = [row for row in recorded if row["metric"] == metric and bool(row["batch"]) == per_batch]
        values = [float(row["value"]) for row in rows]
        assert found == values, (name, found, values)
    assert matched == expected_names


@pytest.mark.parametrize("mode", ["legacy", "script"])
def test_mnist_from_s3_trains_a_model_that_scores_on_the_test_set(s3, make_job, run_train, mnist_data, mode):
    uri = s3.put("code-bucket", f"jobs/{mode}/source/sourcedir.tar.gz", tarball_of_directory(EXAMPLES / mode))
    epochs = 1 if mnist_data == MNIST_FULL else 5
    job = _mnist_job(make_job, mnist_data, uri, epochs)

    run = run_train(job)

    assert f"in {mode} mode" in run.stderr
    _assert_trained(job, run, mnist_data)
    # The lines Module.fit prints became the job's metrics, curves and summary.
    validation = [row for row in _recorded(job) if row["metric"] == "validation-accuracy"]
    assert [int(row["epoch"]) for row in validation] == list(range(epochs))
    assert float(validation[-1]["value"]) >= 0.9
    with Image.open(job.output_dir / "data" / "training-curves.png") as image:
        assert json.loads(image.text["Panels"]) == ["speed", "accuracy", "time-cost"]
    assert f"validation-accuracy: last {float(validation[-1]['value']):g} (epoch {epochs - 1})" in run.stderr
    mxnet_lines = ["`train:accuracy`", "`validation:accuracy`", "`epoch:seconds`", "`train:speed`"]
    _assert_definitions_find_what_was_recorded(job, run.stderr, [*mxnet_lines, "`train:batch-accuracy`"])


def test_a_gluon_module_prints_one_line_per_epoch_for_its_metrics(make_job, run_train):
    job = make_job(
        {"sagemaker_program": "mnist.py", "sagemaker_submit_directory": str(EXAMPLES / "gluon"), "epochs": 2},
        channels={"train": MNIST_SUBSET / "train", "test": MNIST_SUBSET / "test"},
    )

    run = run_train(job)

    assert run.returncode == 0, run.stderr[-3000:]
    assert [(row["metric"], row["epoch"]) for row in _recorded(job)] == [
        ("train-loss", "0"),
        ("validation-accuracy", "0"),
        ("train-loss", "1"),
        ("validation-accuracy", "1"),
    ]
    marked = ["`validation:accuracy` (a `[metrics]` line)", "`train:loss` (a `[metrics]` line)"]
    _assert_definitions_find_what_was_recorded(job, run.stdout, marked)


def test_legacy_and_script_mode_save_the_same_model_format(make_job, run_train):
    saved = {}
    for mode in ("legacy", "script"):
        job = _mnist_job(make_job, MNIST_SUBSET, str(EXAMPLES / mode), 1, name=mode)
        assert run_train(job).returncode == 0
        saved[mode] = {
            "files": sorted(p.name for p in job.model_dir.iterdir()),
            "shapes": (job.model_dir / "model-shapes.json").read_text(),
            "arguments": json.loads((job.model_dir / "model-symbol.json").read_text())["arg_nodes"],
        }
    assert saved["legacy"] == saved["script"]


def test_demo_command_trains_and_reports_the_test_accuracy(tmp_path):
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py"), "--job-dir", str(tmp_path / "job"), "--epochs", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert run.returncode == 0, run.stderr[-3000:]
    accuracy = float(run.stdout.split("Test accuracy:")[1])
    assert accuracy >= 0.85
    assert f"Model saved in {tmp_path / 'job' / 'model'}" in run.stdout
