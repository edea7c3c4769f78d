"""Matrix, outcome rows through the real ``train``: whatever the user's code leaves at
``output/success`` and ``output/failure`` and however it exits, the job ends with exactly one of
the two, a regular file, agreeing with the exit code (``run_checked`` checks that for every case).

A failure file the user's code wrote counts as a failure, its text first in the reason (a blank
one is named as blank); a success file it wrote is removed when the job fails. Links are replaced,
never written through or read.
"""

import itertools

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

LEAVES = """
import json, os, socket, sys
output, outside = os.environ["SM_OUTPUT_DIR"], os.path.join(MARKERS, "outside.txt")
for name, kind in {states!r}.items():
    path = os.path.join(output, name)
    if kind == "text file":
        open(path, "w").write("accuracy 0.41 is below 0.90")
    elif kind == "blank file":
        open(path, "w").write(" \\n")
    elif kind == "directory":
        os.makedirs(os.path.join(path, "inside"))
    elif kind == "link outside":
        os.symlink(outside, path)
    elif kind == "FIFO":
        os.mkfifo(path)
    elif kind == "socket":
        socket.socket(socket.AF_UNIX).bind(path)
sys.exit({exit_code})
"""
JOB_NUMBERS = itertools.count()
KINDS = ["absent", "text file", "blank file", "directory", "link outside", "FIFO", "socket"]


def leaves(code_job, success: str, failure: str, exit_code: int):
    source = LEAVES.format(states={"success": success, "failure": failure}, exit_code=exit_code)
    # Hypothesis runs several examples in one test's tmp_path: each gets a job of its own.
    job = code_job(source, name=f"job-{next(JOB_NUMBERS)}")
    (code_job.markers / "outside.txt").write_text("not the job's")
    return job


def check_what_it_left(finished, failure_kind: str, exit_code: int):
    if exit_code == 0 and failure_kind == "absent":
        assert finished.exit_code == 0
        return
    assert finished.exit_code == (exit_code or 1)
    if failure_kind == "text file":
        assert finished.failure.startswith("accuracy 0.41 is below 0.90\n\n")
    elif exit_code == 0:
        assert finished.reason.startswith("train.py exited with code 0 but "), finished.failure
        assert finished.reason.endswith("so the job counts as failed")
    assert "not the job's" not in finished.failure


@hypothesis_settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(success=st.sampled_from(KINDS), failure=st.sampled_from(KINDS), exit_code=st.sampled_from([0, 1, 3]))
def test_whatever_the_program_leaves_the_job_ends_with_exactly_one_outcome(code_job, run_checked, success, failure,
                                                                           exit_code):  # fmt: skip
    job = leaves(code_job, success, failure, exit_code)

    finished = run_checked(job, within=20)

    check_what_it_left(finished, failure, exit_code)
    assert (code_job.markers / "outside.txt").read_text() == "not the job's"


@pytest.mark.parametrize(
    "success, failure, exit_code, first_line",
    [
        # The cases: each left both files, or exited 0 with a failure present.
        ("text file", "absent", 1, "train.py exited with code 1."),
        ("text file", "absent", 3, "train.py exited with code 3."),
        ("absent", "blank file", 0, "train.py exited with code 0 but {output}/failure is blank"),
        ("text file", "blank file", 0, "train.py exited with code 0 but {output}/failure is blank"),
        ("absent", "directory", 0, "train.py exited with code 0 but {output}/failure is a directory"),
        ("absent", "link outside", 0, "train.py exited with code 0 but {output}/failure is a symbolic link"),
        ("absent", "FIFO", 0, "train.py exited with code 0 but {output}/failure is a FIFO (named pipe)"),
        ("directory", "absent", 0, None),
        ("link outside", "absent", 0, None),
        ("FIFO", "absent", 2, "train.py exited with code 2."),
    ],
)
def test_each_outcome_the_program_leaves(code_job, run_checked, success, failure, exit_code, first_line):
    job = leaves(code_job, success, failure, exit_code)

    finished = run_checked(job, within=20)

    check_what_it_left(finished, failure, exit_code)
    if first_line:
        assert finished.reason.startswith(first_line.format(output=job.output_dir)), finished.failure
    assert (code_job.markers / "outside.txt").read_text() == "not the job's"
