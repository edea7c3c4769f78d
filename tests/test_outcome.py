"""The outcome files and the failure reason's wording: the cause first, secrets masked."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from sagemaker_mxnet_container import error_record, logs, outcome
from sagemaker_mxnet_container.environment import Paths
from sagemaker_mxnet_container.runner import ProcessResult


def stderr_lines_of(source: str):
    """What Python really prints to stderr when it runs ``source`` and fails."""
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(source)], capture_output=True, text=True, timeout=20)
    assert run.returncode != 0
    return run.stderr.splitlines()


@pytest.fixture
def paths(tmp_path):
    return Paths(str(tmp_path / "opt" / "ml"))


@pytest.fixture
def restore_redaction(monkeypatch):
    """Tests change what is masked; the module-wide redactor is put back afterwards."""
    monkeypatch.setattr(logs, "redact", logs.redact)


def read_failure(paths: Paths) -> str:
    with open(os.path.join(paths.output_dir, "failure"), encoding="utf-8") as stream:
        return stream.read()


# exception_lines


def test_exception_lines_of_a_real_traceback_are_type_and_message():
    lines = stderr_lines_of(
        """
        def load(path):
            raise FileNotFoundError(f"no such file: {path}")
        print("starting", flush=True)
        load("/opt/ml/input/data/train/images.gz")
        """
    )
    assert outcome.exception_lines(lines) == ["FileNotFoundError: no such file: /opt/ml/input/data/train/images.gz"]


def test_exception_lines_keep_a_multi_line_message():
    lines = stderr_lines_of('raise ValueError("bad shape\\nexpected (1, 28, 28)\\ngot (28, 28)")')
    assert outcome.exception_lines(lines) == ["ValueError: bad shape", "expected (1, 28, 28)", "got (28, 28)"]


def test_exception_lines_of_a_chain_raised_during_handling_are_the_last_exception():
    lines = stderr_lines_of(
        """
        try:
            {}["learning_rate"]
        except KeyError:
            raise RuntimeError("hyperparameter learning_rate is required")
        """
    )
    assert any(line.startswith("During handling of the above exception") for line in lines)
    assert outcome.exception_lines(lines) == ["RuntimeError: hyperparameter learning_rate is required"]


def test_exception_lines_of_a_chain_raised_from_a_cause_are_the_last_exception():
    lines = stderr_lines_of(
        """
        try:
            int("ten")
        except ValueError as error:
            raise TypeError("epochs must be an integer") from error
        """
    )
    assert any(line.startswith("The above exception was the direct cause") for line in lines)
    assert outcome.exception_lines(lines) == ["TypeError: epochs must be an integer"]


def test_exception_lines_of_a_syntax_error_in_the_main_program():
    lines = stderr_lines_of("for epoch in range(10)\n    pass\n")
    assert not any(line.startswith("Traceback") for line in lines)
    assert outcome.exception_lines(lines) == ["SyntaxError: expected ':'"]


def stderr_tail_of(source: str):
    """What the supervisor's tee keeps of the stderr of ``source`` run as a program: its exit
    code, and the last 100 lines split at newlines only."""
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(source)], capture_output=True, timeout=20)
    lines = run.stderr.decode().split("\n")
    return run.returncode, [line.rstrip("\r") for line in lines if line][-100:]


CAUGHT_THEN = """
import logging, os, signal, sys
try:
    {{}}["learning_rate"]
except KeyError:
    logging.exception("no learning rate given; using 0.1")
sys.stderr.write("epoch 1 [=====     ] 50%\\r")
sys.stderr.flush()
{}
"""


@pytest.mark.parametrize(
    "ending, first_line",
    [
        # The case: the logged KeyError came first in the reason.
        ('raise RuntimeError("loss is nan")', "RuntimeError: loss is nan"),
        ("sys.exit(3)", "train.py exited with code 3. Last lines of its stderr:"),
        ("os._exit(4)", "train.py exited with code 4. Last lines of its stderr:"),
        ("os.kill(os.getpid(), signal.SIGKILL)", "train.py was killed by SIGKILL (exit code 137)"),
        ("os.kill(os.getpid(), signal.SIGABRT)", "train.py was killed by SIGABRT (exit code 134)"),
    ],
    ids=["another exception", "sys.exit(3)", "os._exit(4)", "SIGKILL", "SIGABRT"],
)
def test_the_cause_is_what_ended_the_program_not_an_exception_it_logged_before(ending, first_line):
    exit_code, tail = stderr_tail_of(CAUGHT_THEN.format(ending))
    killed = -exit_code if exit_code < 0 else None
    result = ProcessResult(128 + killed if killed else exit_code, killed, tail)

    reason = outcome.script_failure("train.py", result)

    assert reason.splitlines()[0].startswith(first_line), reason
    assert "KeyError" not in reason.splitlines()[0]


def test_a_program_ended_from_outside_while_it_shut_down_after_its_exception_failed_of_that_exception():
    # A Horovod rank raises, prints its traceback, and waits at exit for the other ranks until
    # the supervisor's fail-fast ends it with SIGTERM.
    _, tail = stderr_tail_of('raise RuntimeError("rank 3 cannot go on: disk full")')

    reason = outcome.script_failure("train.py", ProcessResult(143, signal.SIGTERM, tail))

    assert reason.startswith("RuntimeError: rank 3 cannot go on: disk full\ntrain.py was killed by SIGTERM")


def test_a_traceback_longer_than_the_tail_still_names_its_exception():
    # Two functions calling each other: no "[Previous line repeated]" folding, 200 frame lines.
    exit_code, tail = stderr_tail_of(
        """
        def ping(n):
            return pong(n - 1)
        def pong(n):
            if n == 0:
                raise MemoryError("batch of 4096 does not fit")
            return ping(n)
        ping(100)
        """
    )
    assert exit_code == 1 and not any("Traceback" in line for line in tail)

    reason = outcome.script_failure("train.py", ProcessResult(1, None, tail))

    assert reason.startswith("MemoryError: batch of 4096 does not fit\ntrain.py exited with code 1.")


def test_the_stderr_shown_is_what_a_terminal_shows_of_progress_bars():
    tail = ["epoch 1 [=   ]\repoch 1 [==  ]\repoch 1 [====] done", "saved"]

    reason = outcome.script_failure("train.py", ProcessResult(2, None, tail))

    assert reason.endswith("Last lines of its stderr:\nepoch 1 [====] done\nsaved")


def test_exception_lines_without_a_traceback_are_empty():
    assert outcome.exception_lines(["epoch 1: loss 0.52", "  File saved", "error: loss diverged"]) == []
    assert outcome.exception_lines([]) == []


# exit_description and the reasons built from it


@pytest.mark.parametrize(
    "result, expected",
    [
        (ProcessResult(1, None, []), "train.py exited with code 1"),
        (ProcessResult(3, None, []), "train.py exited with code 3"),
        (ProcessResult(139, signal.SIGSEGV, []), "train.py was killed by SIGSEGV (exit code 139)"),
        (ProcessResult(143, signal.SIGTERM, []), "train.py was killed by SIGTERM (exit code 143)"),
        (
            ProcessResult(137, signal.SIGKILL, []),
            "train.py was killed by SIGKILL (exit code 137); it may have run out of memory",
        ),
        (
            ProcessResult(137, None, []),
            "train.py exited with code 137 (a process it ran was killed by SIGKILL; it may have run out of memory)",
        ),
        (
            ProcessResult(137, signal.SIGKILL, [], stopped_by_kill=True),
            "train.py was killed by SIGKILL (exit code 137) after it outlived the stop grace period "
            "(sagemaker_stop_grace_seconds)",
        ),
    ],
)
def test_exit_description(result, expected):
    assert outcome.exit_description("train.py", result) == expected


def test_script_failure_puts_the_exception_before_the_exit_and_the_tail():
    tail = stderr_lines_of('print("epoch 1", flush=True)\nraise ValueError("learning rate must be positive")')
    reason = outcome.script_failure("train.py", ProcessResult(1, None, tail))
    head, exit_line, *rest = reason.splitlines()
    assert head == "ValueError: learning rate must be positive"
    assert exit_line == "train.py exited with code 1. Last lines of its stderr:"
    assert rest == [line for line in tail if line.strip()]


def test_script_failure_without_stderr_says_so():
    reason = outcome.script_failure("train.py", ProcessResult(7, None, []))
    assert reason == "train.py exited with code 7. It wrote nothing to stderr."


def test_legacy_failure_starts_with_the_recorded_exception():
    record = {
        "type": "ValueError",
        "message": "batch_size must be positive\nit was 0",
        "where": "running train() in mnist.py",
        "traceback": 'Traceback (most recent call last):\n  File "mnist.py", line 3\nValueError: batch_size ...\n',
    }
    reason = outcome.legacy_failure("mnist.py", ProcessResult(1, None, ["noise"]), record)
    assert reason.startswith(
        "ValueError: batch_size must be positive\nit was 0\n"
        "Raised while running train() in mnist.py; mnist.py exited with code 1.\n"
        "Traceback (most recent call last):"
    )


def test_legacy_failure_without_a_record_falls_back_to_stderr():
    tail = stderr_lines_of('raise ImportError("libcuda.so.1: cannot open shared object file")')
    reason = outcome.legacy_failure("mnist.py", ProcessResult(1, None, tail), None)
    assert reason.startswith("ImportError: libcuda.so.1: cannot open shared object file\nmnist.py exited with code 1.")


# The files


def test_record_failure_redacts_secret_environment_values(paths, monkeypatch, restore_redaction):
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    logs.use_secrets_of({})
    outcome.record_failure(paths, f"cannot sign request with {secret} for AKIAIOSFODNN7EXAMPLE")
    failure = read_failure(paths)
    assert secret not in failure and "AKIAIOSFODNN7EXAMPLE" not in failure
    assert failure == "cannot sign request with **** for ****\n"


def test_record_failure_redacts_secret_hyperparameters_in_the_users_text_and_ours(paths, restore_redaction):
    logs.use_secrets_of({"db_password": "hunter2-correct-horse"})
    os.makedirs(paths.output_dir)
    with open(os.path.join(paths.output_dir, "failure"), "w") as stream:
        stream.write("login refused for password hunter2-correct-horse\n")
    outcome.record_failure(paths, "train.py exited with code 1; argv had --db_password hunter2-correct-horse")
    assert read_failure(paths) == (
        "login refused for password ****\n\ntrain.py exited with code 1; argv had --db_password ****\n"
    )


def test_record_failure_keeps_the_users_failure_first(paths):
    os.makedirs(paths.output_dir)
    with open(os.path.join(paths.output_dir, "failure"), "w") as stream:
        stream.write("Accuracy 0.41 is below 0.90\n\n\n")
    outcome.record_failure(paths, "train.py exited with code 1.")
    assert read_failure(paths) == "Accuracy 0.41 is below 0.90\n\ntrain.py exited with code 1.\n"


def test_a_blank_user_failure_is_named_as_blank_and_replaced(paths):
    os.makedirs(paths.output_dir)
    with open(os.path.join(paths.output_dir, "failure"), "w") as stream:
        stream.write("\n  \n")
    assert outcome.left_failure(paths) == outcome.LeftFailure("", "is blank")
    outcome.record_failure(paths, "train.py exited with code 1.")
    assert read_failure(paths) == "train.py exited with code 1.\n"


def test_a_huge_user_failure_is_cut_so_that_our_reason_still_fits(paths):
    os.makedirs(paths.output_dir)
    with open(os.path.join(paths.output_dir, "failure"), "w") as stream:
        stream.write("u" * 200_000)
    outcome.record_failure(paths, "train.py exited with code 1.")
    failure = read_failure(paths)
    assert failure.startswith("u" * 1000)
    assert failure.endswith("\n\ntrain.py exited with code 1.\n")
    assert len(failure) <= 64 * 1024


def test_record_success_and_clear(paths):
    outcome.record_success(paths)
    assert os.listdir(paths.output_dir) == ["success"]
    outcome.clear(paths)
    assert os.listdir(paths.output_dir) == []
    outcome.clear(paths)


# Whatever the user's code left at output/success and output/failure, the job ends with exactly
# one of them, a regular file, and never writes through a link.

LEFT = {
    "absent": lambda path, outside: None,
    "empty file": lambda path, outside: path.write_text(""),
    "blank file": lambda path, outside: path.write_text(" \n\t\n"),
    "text file": lambda path, outside: path.write_text("accuracy 0.41 is below 0.90\n"),
    "directory": lambda path, outside: (path.mkdir(), (path / "inside").write_text("x")),
    "link to a file outside": lambda path, outside: path.symlink_to(outside),
    "dangling link": lambda path, outside: path.symlink_to(path.parent / "nowhere"),
    "FIFO": lambda path, outside: os.mkfifo(path),
    "socket": lambda path, outside: bind_socket(path),
}
PROBLEMS = {
    "empty file": "is blank",
    "blank file": "is blank",
    "directory": "is a directory",
    "link to a file outside": "is a symbolic link (not followed)",
    "dangling link": "is a symbolic link (not followed)",
    "FIFO": "is a FIFO (named pipe)",
    "socket": "is a socket",
}
SOCKETS = []


def bind_socket(path):
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    SOCKETS.append(sock)


def finish_like_train(paths: Paths, failed: bool) -> int:
    """What train does once the user's code has ended: exit 0 checks what it left."""
    left = outcome.left_failure(paths)
    if not failed and left is None:
        try:
            outcome.record_success(paths)
            return 0
        except Exception as error:
            outcome.record_failure(paths, str(error))
            return 1
    reason = outcome.left_failure_reason(paths, "train.py", left) if not failed else "train.py exited with code 1."
    outcome.record_failure(paths, reason)
    return 1


@pytest.mark.parametrize("failed", [False, True], ids=["exit 0", "exit 1"])
@pytest.mark.parametrize("at_failure", LEFT, ids=[f"failure {name}" for name in LEFT])
@pytest.mark.parametrize("at_success", LEFT, ids=[f"success {name}" for name in LEFT])
def test_every_combination_of_outcome_files_ends_with_exactly_one(tmp_path, paths, at_success, at_failure, failed):
    outside = tmp_path / "outside.txt"
    outside.write_text("not the job's")
    os.makedirs(paths.output_dir)
    LEFT[at_success](tmp_path / "opt" / "ml" / "output" / "success", outside)
    LEFT[at_failure](tmp_path / "opt" / "ml" / "output" / "failure", outside)

    exit_code = finish_like_train(paths, failed)

    written = sorted(os.listdir(paths.output_dir))
    expected = "failure" if failed or at_failure != "absent" else "success"
    assert written == [expected]
    assert os.path.isfile(os.path.join(paths.output_dir, expected))
    assert not os.path.islink(os.path.join(paths.output_dir, expected))
    assert exit_code == (0 if expected == "success" else 1)
    assert outside.read_text() == "not the job's"
    if expected == "failure":
        failure = read_failure(paths)
        assert failure.strip()
        if at_failure == "text file":
            assert failure.startswith("accuracy 0.41 is below 0.90\n\n")
        elif not failed and at_failure != "absent":
            assert failure == f"train.py exited with code 0 but {paths.output_dir}/failure {PROBLEMS[at_failure]}, " \
                "so the job counts as failed\n"
        assert "not the job's" not in failure
    for sock in SOCKETS:
        sock.close()
    SOCKETS.clear()


# error_record: how a child process hands its exception to the supervisor


WRITE_RECORD = """
from sagemaker_mxnet_container import error_record

class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("__str__ is broken")

def train():
    raise ERROR

try:
    train()
except Exception as error:
    error_record.write(error, "running train() in mnist.py")
    raise
"""


@pytest.mark.parametrize(
    "error, expected_type, expected_message",
    [
        ('ValueError("bad shape\\nexpected (28, 28)")', "ValueError", "bad shape\nexpected (28, 28)"),
        ('KeyError("learning_rate")', "KeyError", "'learning_rate'"),
        ("Unprintable()", "Unprintable", "<Unprintable whose message could not be rendered>"),
    ],
    ids=["multi-line", "key-error", "unprintable"],
)
def test_a_record_written_by_a_failing_child_is_read_back(tmp_path, error, expected_type, expected_message):
    path = tmp_path / "record.json"
    run = subprocess.run(
        [sys.executable, "-c", WRITE_RECORD.replace("ERROR", error)],
        env={**os.environ, error_record.FILE_VARIABLE: str(path)},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert run.returncode == 1
    record = error_record.read(str(path))
    assert record["type"] == expected_type
    assert record["message"] == expected_message
    assert record["where"] == "running train() in mnist.py"
    assert record["traceback"].startswith("Traceback (most recent call last):")
    assert ", in train\n" in record["traceback"]


@pytest.mark.parametrize(
    "content",
    ["", "not json", "[1, 2]", json.dumps({"type": "ValueError"}), json.dumps({"type": 1, "message": "m"})],
    ids=["empty", "not-json", "list", "missing-keys", "wrong-types"],
)
def test_what_is_not_a_record_reads_as_none(tmp_path, content):
    path = tmp_path / "record.json"
    path.write_text(content)
    assert error_record.read(str(path)) is None


def test_a_missing_record_reads_as_none(tmp_path):
    assert error_record.read(str(tmp_path / "absent.json")) is None
