"""Matrix, S3 rows: the code download through a fault-injecting proxy in front of the local S3.

The real ``train`` downloads through tests/fault_proxy.py, which sits between boto3 and moto's
server (both on 127.0.0.1) and answers chosen requests with errors, resets, delays or nothing.
Every run is checked by ``run_checked`` (conftest): exit code and outcome files agree, the time
is bounded, nothing is written outside the job, no credential is printed, no process is left.
"""

import os
import signal
import subprocess
import time

import fault_proxy
import pytest
from conftest import (
    FinishedJob,
    check_finished_job,
    processes_of_run,
    tarball_of_directory,
    train_command,
    train_environ,
)
from fault_proxy import FaultProxy

PROGRAM = "train_script.py"
RETRY_SECONDS = "3"


@pytest.fixture
def proxy(s3_server):
    server = FaultProxy(s3_server).start()
    yield server
    server.stop()


@pytest.fixture
def code_uri(s3, tmp_path):
    """A code archive on the local S3, large enough (about 300 KB) that half of it is a real cut."""
    source = tmp_path / "source"
    source.mkdir()
    (source / PROGRAM).write_text(
        "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'ran'), 'w').close()\n"
    )
    (source / "weights.bin").write_bytes(os.urandom(300 * 1024))
    return s3.put("matrix-bucket", "job/source/sourcedir.tar.gz", tarball_of_directory(source))


@pytest.fixture
def s3_job(make_job, code_uri):
    return make_job({"sagemaker_program": PROGRAM, "sagemaker_submit_directory": code_uri})


def through(proxy, **extra):
    return {"AWS_ENDPOINT_URL_S3": proxy.url, "SAGEMAKER_MXNET_DOWNLOAD_RETRY_SECONDS": RETRY_SECONDS, **extra}


def assert_ran(finished):
    assert finished.exit_code == 0, finished.stderr[-3000:]
    assert (finished.job.model_dir / "ran").exists()


def assert_not_ran(finished):
    assert not finished.job.code_dir.exists()
    assert not (finished.job.model_dir / "ran").exists()


@pytest.mark.parametrize("code", [500, 503])
def test_5xx_answers_that_succeed_on_retry_do_not_fail_the_job(s3_job, run_checked, proxy, code):
    proxy.plan(fault_proxy.status(code, methods=("GET",), times=2))

    finished = run_checked(s3_job, through(proxy))

    assert_ran(finished)
    assert proxy.count("GET", str(code)) == 2


def test_connections_reset_mid_download_are_retried_and_the_job_runs(s3_job, run_checked, proxy):
    proxy.plan(fault_proxy.reset_mid_body(times=2))

    finished = run_checked(s3_job, through(proxy))

    assert_ran(finished)
    assert proxy.count("GET", "reset") == 2
    # The archive that ran is the whole one, not the half a reset left.
    assert (s3_job.code_dir / "weights.bin").stat().st_size == 300 * 1024


def test_a_connection_reset_on_every_try_fails_within_the_retry_bound(s3_job, run_checked, proxy, code_uri):
    proxy.plan(fault_proxy.reset_mid_body())

    finished = run_checked(s3_job, through(proxy), within=90)

    assert finished.exit_code == 1
    assert finished.reason.startswith(f"cannot download code from {code_uri}: ")
    assert proxy.count("GET", "reset") >= 2
    assert_not_ran(finished)


def test_5xx_on_every_try_is_retried_for_the_bounded_time_then_named(s3_job, run_checked, proxy, code_uri):
    proxy.plan(fault_proxy.status(503))

    finished = run_checked(s3_job, through(proxy), within=90)

    assert finished.exit_code == 1
    assert finished.reason.startswith(f"cannot download code from {code_uri}: ")
    assert "503" in finished.failure or "SlowDown" in finished.failure
    assert finished.seconds >= float(RETRY_SECONDS)
    assert_not_ran(finished)


def test_an_endpoint_that_accepts_and_never_answers_fails_within_the_retry_bound(
    s3_job, run_checked, proxy, code_uri
):
    proxy.plan(fault_proxy.hold())

    # Each try's read timeout is capped by the retry budget (3 s here), not botocore's 60 s.
    finished = run_checked(s3_job, through(proxy), within=60)

    assert finished.exit_code == 1
    assert finished.reason.startswith(f"cannot download code from {code_uri}: ")
    assert proxy.count("GET", "hold") >= 1
    assert_not_ran(finished)


def test_access_denied_fails_at_once_and_points_at_the_role(s3_job, run_checked, proxy, code_uri):
    proxy.plan(fault_proxy.status(403))

    finished = run_checked(s3_job, through(proxy), within=20)

    assert finished.exit_code == 1
    assert finished.reason == (
        f"cannot download code from {code_uri}: access denied (403); check that the job's role may s3:GetObject on it"
    )
    # A 403 does not heal by waiting: it is not retried.
    assert proxy.count("HEAD", "403") + proxy.count("GET", "403") <= 2
    assert_not_ran(finished)


def test_an_object_the_endpoint_says_is_missing_fails_at_once(s3_job, run_checked, proxy, code_uri):
    # HeadObject is answered 404; HeadBucket passes through to the real bucket, which exists.
    proxy.plan(fault_proxy.status(404, path_contains="sourcedir.tar.gz"))

    finished = run_checked(s3_job, through(proxy), within=20)

    assert finished.exit_code == 1
    assert finished.reason.startswith(f"cannot download code from {code_uri}: the object does not exist (404)")
    assert_not_ran(finished)


def test_a_slow_endpoint_only_slows_the_job(s3_job, run_checked, proxy):
    proxy.plan(fault_proxy.delay(1.0))

    finished = run_checked(s3_job, through(proxy))

    assert_ran(finished)
    # At least the GET waited its second (a HEAD first, where the download sends one, waits too).
    assert finished.seconds >= 1.0
    assert proxy.count("GET", "delay") >= 1


def test_sigterm_during_the_download_ends_the_job_as_stopped(s3_job, proxy, tmp_path, code_uri):
    proxy.plan(fault_proxy.hold())
    marker = "sigterm-during-download"
    environ = train_environ(s3_job, {**through(proxy), "SAGEMAKER_MXNET_TEST_RUN": marker})
    started = time.monotonic()
    train = subprocess.Popen(train_command(), env=environ, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proxy.wait_for("GET", "hold")
        train.send_signal(signal.SIGTERM)
        stdout, stderr = train.communicate(timeout=30)
    finally:
        if train.poll() is None:
            train.kill()
            train.wait()
    output = (stdout.decode(errors="replace"), stderr.decode(errors="replace"))
    finished = FinishedJob(s3_job, train.returncode, *output, time.monotonic() - started)
    check_finished_job(finished, within=60)
    assert finished.exit_code == 143
    assert finished.reason.startswith("Training job stopped: SIGTERM received. The step it ended reported: "), (
        finished.failure
    )
    assert f"cannot download code from {code_uri}" in finished.reason
    assert processes_of_run(marker) == []
    assert_not_ran(finished)
    assert [p.name for p in s3_job.base.iterdir() if p.name.startswith(".download-")] == []
