"""The benchmark (``python -m benchmarks``) runs end to end and reports consistently.

Only that it runs, with one repetition of tiny jobs: its figures are never asserted, since a
shared machine's timings are no test. What is asserted is the report itself: every row is there,
and each verdict agrees with the figures printed beside it. The peer toolkit is installed from
PyPI into benchmarks/.peer-venv on the first run (about a minute), and kept for later runs.
"""

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO
from packages import wheel

ROWS = (
    "start -> user's first line, code from S3",
    "start -> user's first line, code in code/",
    "whole job, code from S3",
    "whole job, code in code/",
    "user's last line -> exit, code from S3",
    "peak PSS, toolkit's process tree (user's excluded)",
    "peak PSS, toolkit's process alone",
    'floor: python -c "import boto3", whole',
    "samples/s, train vs bare (OMP_NUM_THREADS=",
    "legacy MNIST on 1 CPU (taskset -c 0)",
    "requirements.txt, cold caches: start -> user's first line",
    "requirements.txt, warm caches: start -> user's first line",
    "requirements.txt, warm caches: start -> the user's imports done",
)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the benchmark names the host algo-1 in a mount namespace of its own, which needs root")
    environ = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # The requirements rows install one tiny package of the test's own, from a local directory.
    wheels = tmp_path_factory.mktemp("benchmark-wheels")
    wheel(wheels, "smmx-benchmark-tiny", "1.0")
    requirements = wheels / "requirements.txt"
    requirements.write_text(f"--no-index\n--find-links {wheels}\nsmmx-benchmark-tiny\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--repetitions",
            "1",
            "--training-repetitions",
            "1",
            "--epochs",
            "1",
            "--hold",
            "0.2",
            "--requirements-file",
            str(requirements),
            "--requirements-repetitions",
            "1",
        ],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout


def table_rows(report):
    """{label: [cells]} of every table row."""
    rows = {}
    for line in report.splitlines():
        if line.startswith("| ") and not line.startswith("|--"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_the_benchmark_prints_every_row_side_by_side_with_the_peer(report):
    labels = list(table_rows(report))
    for row in ROWS:
        assert any(row in label for label in labels), (row, report)
    assert "Machine: " in report
    assert re.search(r"peer \(sagemaker-mxnet-training [\d.]+, sagemaker-training 5\.", report), report
    start = table_rows(report)["start -> user's first line, code from S3"]
    assert start[0].endswith("ms") and start[1].endswith("ms"), start


def test_each_verdict_agrees_with_the_figures_beside_it(report):
    checked = 0
    for label, cells in table_rows(report).items():
        if len(cells) != 5 or not re.fullmatch(r"(ratio [<>]=|ours <=) [\d.]+( \w+)?", cells[3]):
            continue  # not a row with a budget
        ours, _other, ratio, budget, verdict = cells
        limit = float(budget.split()[2])
        if budget.startswith("ratio <="):
            expected = float(ratio) <= limit
        elif budget.startswith("ratio >="):
            expected = float(ratio) >= limit
        else:
            expected = float(ours.split()[0]) <= limit
        assert verdict == ("PASS" if expected else "FAIL"), (label, cells)
        if verdict == "FAIL":
            assert f"BUDGET NOT MET: {label}" in report
        checked += 1
    # start-up (2), whole job (2), after the last line (2), tree PSS, training throughput,
    # requirements with cold and warm caches (2)
    assert checked == 10, report


def test_the_thread_table_shows_one_openmp_thread_per_usable_cpu_under_train(report):
    ours = [line for line in report.splitlines() if re.match(r"\| [\d,]+ \| ours \|", line)]
    assert len(ours) == 2, report
    for line in ours:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        usable, omp_variable, omp_threads = cells[2], cells[3], cells[4]
        # A cgroup quota may allow fewer CPUs than the affinity set shows, never more.
        assert omp_variable == omp_threads, line
        assert 1 <= int(omp_variable) <= int(usable), line


@pytest.mark.parametrize(
    "ours, budget, shown, verdict",
    [
        (0.978, {"min_ratio": 0.98}, "0.978", False),
        (0.98004, {"min_ratio": 0.98}, "0.98004", True),
        (0.6504, {"max_ratio": 0.65}, "0.6504", False),
        (0.98, {"min_ratio": 0.98}, "0.98", True),
        (0.7213, {"max_ratio": 0.65}, "0.72", False),
    ],
)
def test_a_ratio_is_shown_with_the_digits_its_verdict_needs(ours, budget, shown, verdict):
    from benchmarks.report import Budget, Row

    row = Row("row", "s", [ours], [1.0], Budget(**budget))

    assert (row.shown_ratio(), row.verdict) == (shown, verdict)
    assert row.measured() == f"ratio {shown}"
