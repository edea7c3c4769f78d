"""Real MNIST training jobs, end to end: code from a real S3 endpoint, real MXNet, and the saved
model loaded back and scored on the test set."""

import json
import subprocess
import sys

import pytest
from conftest import EXAMPLES, MNIST_FULL, MNIST_SUBSET, tarball_of_directory

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


@pytest.mark.parametrize("mode", ["legacy", "script"])
def test_mnist_from_s3_trains_a_model_that_scores_on_the_test_set(s3, make_job, run_train, mnist_data, mode):
    uri = s3.put("code-bucket", f"jobs/{mode}/source/sourcedir.tar.gz", tarball_of_directory(EXAMPLES / mode))
    epochs = 1 if mnist_data == MNIST_FULL else 5
    job = _mnist_job(make_job, mnist_data, uri, epochs)

    run = run_train(job)

    assert f"in {mode} mode" in run.stderr
    _assert_trained(job, run, mnist_data)


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
