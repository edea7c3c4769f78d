"""Metrics through the real ``train``: what the user's code prints becomes output/data/metrics.csv,
the training curves and a summary in the log, in success and in failure, while the user's output
reaches the log unchanged. The MNIST examples' real logs are covered in test_mnist_jobs.py."""

import csv
import json
import os
import signal
import subprocess
import time

from conftest import train_command, train_environ
from PIL import Image

# A script that prints what Module.fit prints (on stderr, through logging) and what a Gluon script
# prints (on stdout), for two epochs, then ends with EXIT.
TRAINING = """
import logging, sys
logging.basicConfig(level=logging.INFO)
for epoch in range(2):
    speed, accuracy = 900.0 + epoch, 0.5 + epoch / 4
    logging.info("Epoch[%d] Batch [0-20]\\tSpeed: %.2f samples/sec\\taccuracy=%f", epoch, speed, accuracy)
    logging.info("Epoch[%d] Train-accuracy=%f", epoch, 0.6 + epoch / 4)
    logging.info("Epoch[%d] Validation-accuracy=%f", epoch, 0.7 + epoch / 5)
    print(f"[metrics] epoch={epoch} train-loss={1.0 / (epoch + 1)} validation-loss={1.2 / (epoch + 1)}", flush=True)
EXIT
"""


def _script(exit_statement="pass"):
    return TRAINING.replace("EXIT", exit_statement)


def _metrics(job):
    with open(job.output_dir / "data" / "metrics.csv", newline="") as stream:
        return [(row["metric"], row["epoch"], row["batch"], float(row["value"])) for row in csv.DictReader(stream)]


def _panels(job):
    """The curves' panels; in no particular order, since stdout and stderr race each other."""
    with Image.open(job.output_dir / "data" / "training-curves.png") as image:
        return sorted(json.loads(image.text["Panels"]))


def test_what_the_code_prints_becomes_metrics_csv_curves_and_a_summary(code_job, run_checked):
    job = code_job(_script())

    finished = run_checked(job)

    assert finished.exit_code == 0
    rows = _metrics(job)
    assert ("validation-accuracy", "1", "", 0.9) in rows
    assert ("train-accuracy", "0", "20", 0.5) in rows
    assert ("speed", "1", "20", 901.0) in rows
    assert ("validation-loss", "1", "", 0.6) in rows
    assert len(rows) == 12
    assert _panels(job) == ["accuracy", "loss", "speed"]
    assert "validation-accuracy: last 0.9 (epoch 1)" in finished.stderr
    assert "train-loss: last 0.5 (epoch 1)" in finished.stderr
    # The user's own output reaches the log as it was written.
    assert finished.stdout.count("[metrics] epoch=") == 2
    assert "Epoch[1] Validation-accuracy=0.900000" in finished.stderr


def test_a_failed_job_still_records_its_metrics(code_job, run_checked):
    job = code_job(_script("raise RuntimeError('loss diverged')"))

    finished = run_checked(job)

    assert finished.exit_code == 1
    assert finished.reason == "RuntimeError: loss diverged"
    assert ("train-loss", "1", "", 0.5) in _metrics(job)
    assert _panels(job) == ["accuracy", "loss", "speed"]


def test_output_passes_through_byte_for_byte(code_job, run_checked):
    job = code_job(
        """
        import sys
        sys.stdout.buffer.write(b"\\xff\\xfe not utf-8\\n" + b"x" * 200000 + b"\\n[metrics] a=1")
        sys.stdout.flush()
        """
    )

    completed = subprocess.run(
        train_command(), env=train_environ(job), cwd=job.base.parent, capture_output=True, timeout=120
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout == b"\xff\xfe not utf-8\n" + b"x" * 200000 + b"\n[metrics] a=1"
    assert _metrics(job) == [("a", "", "", 1.0)]


def test_no_metrics_no_files(code_job, run_checked):
    job = code_job("print('hello')\n")

    run_checked(job)

    assert sorted(os.listdir(job.output_dir / "data")) == []


def test_the_codes_own_metrics_csv_and_curves_are_left_alone(code_job, run_checked):
    job = code_job(
        _script()
        + """
import os
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "metrics.csv"), "w") as stream:
    stream.write("mine\\n")
"""
    )

    finished = run_checked(job)

    assert finished.exit_code == 0
    assert (job.output_dir / "data" / "metrics.csv").read_text() == "mine\n"
    assert "was written by the training code" in finished.stderr
    assert not (job.output_dir / "data" / "training-curves.png").exists()


def test_an_earlier_runs_files_are_replaced(code_job, run_checked):
    job = code_job(_script())
    data = job.output_dir / "data"
    data.mkdir(parents=True)
    (data / "metrics.csv").write_text("from an earlier run\n")

    run_checked(job)

    assert len(_metrics(job)) == 12


def test_links_planted_by_the_code_are_never_written_through(code_job, run_checked, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    job = code_job(
        _script()
        + f"""
import os, shutil
data = os.environ["SM_OUTPUT_DATA_DIR"]
shutil.rmtree(data)
os.symlink({str(outside)!r}, data)
"""
    )

    finished = run_checked(job, allowed_outside=[outside])

    assert finished.exit_code == 0
    assert list(outside.iterdir()) == []
    assert "metrics.csv and the curves were not written" in finished.stderr


def test_a_stopped_job_writes_its_metrics_but_draws_no_curves(code_job):
    job = code_job(
        _script("import time; print('ready', flush=True); time.sleep(60)").replace(
            "import logging, sys",
            "import logging, sys, signal\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(143))",
        )
    )
    process = subprocess.Popen(
        train_command(), env=train_environ(job), cwd=job.base.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    for line in process.stdout:
        if b"ready" in line or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 143
    assert (job.output_dir / "failure").read_text().startswith("Training job stopped: SIGTERM")
    assert len(_metrics(job)) == 12
    assert not (job.output_dir / "data" / "training-curves.png").exists()
    assert b"not drawn: the job is ending" in stderr


def test_curves_that_cannot_be_drawn_change_nothing_of_the_outcome(code_job, run_checked, tmp_path):
    # A matplotlib that fails to import stands for any failure of the drawing child.
    broken = tmp_path / "broken-site"
    (broken / "matplotlib").mkdir(parents=True)
    (broken / "matplotlib" / "__init__.py").write_text("raise ImportError('no display library here')\n")
    job = code_job(_script())

    finished = run_checked(job, {"PYTHONPATH": str(broken)})

    assert finished.exit_code == 0 and job.succeeded
    assert len(_metrics(job)) == 12
    assert not (job.output_dir / "data" / "training-curves.png").exists()
    assert "The training curves were not drawn: the plot exited with 1: ImportError: no display library here" in (
        finished.stderr
    )
    assert sorted(os.listdir(job.output_dir / "data")) == ["metrics.csv"]
