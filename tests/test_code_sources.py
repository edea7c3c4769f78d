"""Where the user's code comes from, through the real ``train`` run as a subprocess.

sagemaker_submit_directory may be an S3 .tar.gz (served here by moto over HTTP), a local
directory or .tar.gz, a file:// URI to either, or absent when the code is already in code/.
Failures must be recorded in output/failure with the cause first and no credential in sight.
"""

import io
import itertools
import json
import shutil
import socket
import tarfile
import time
from pathlib import Path

import pytest
from conftest import (
    FAKE_ACCESS_KEY_ID,
    FAKE_SECRET_ACCESS_KEY,
    FAKE_SESSION_TOKEN,
    encode_hyperparameters,
    make_tarball,
    tarball_of_directory,
)
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from sagemaker_mxnet_container.errors import DownloadError
from sagemaker_mxnet_container.outcome import REASON_SHOWN
from sagemaker_mxnet_container.s3 import Retries, describe, is_transient, parse_uri

PROGRAM = "train_script.py"
USER_PROGRAM = """\
import json
import os
import sys

with open(os.path.join(os.environ["SM_MODEL_DIR"], "marker.json"), "w") as stream:
    json.dump(sys.argv[1:], stream)
print("argv:", sys.argv[1:])
"""
HYPERPARAMETERS = {"sagemaker_program": PROGRAM, "epochs": 2}
EXPECTED_ARGV = ["--epochs", "2"]


@pytest.fixture
def source_dir(tmp_path) -> Path:
    directory = tmp_path / "source"
    (directory / "helpers").mkdir(parents=True)
    (directory / PROGRAM).write_text(USER_PROGRAM)
    (directory / "helpers" / "__init__.py").write_text("")
    return directory


@pytest.fixture
def source_tarball(tmp_path, source_dir) -> Path:
    path = tmp_path / "sourcedir.tar.gz"
    path.write_bytes(tarball_of_directory(source_dir))
    return path


def assert_ran_the_user_program(job, result):
    assert result.returncode == 0, result.stderr[-3000:]
    assert job.succeeded
    assert job.failure is None
    assert json.loads((job.model_dir / "marker.json").read_text()) == EXPECTED_ARGV
    assert f"argv: {EXPECTED_ARGV}" in result.stdout


def assert_failed_with(job, result, cause: str) -> str:
    """The job failed, said why within what the platform shows, and leaked no credential."""
    assert result.returncode != 0
    assert not job.succeeded
    failure = job.failure
    assert failure is not None, result.stderr[-3000:]
    assert cause in failure[:REASON_SHOWN], failure
    for secret in (FAKE_SECRET_ACCESS_KEY, FAKE_SESSION_TOKEN, FAKE_ACCESS_KEY_ID):
        for text in (result.stdout, result.stderr, failure):
            assert secret not in text
    assert not (job.model_dir / "marker.json").exists()
    return failure


def test_code_from_s3(make_job, run_train, s3, source_dir):
    uri = s3.put("code-bucket", "job-1/source/sourcedir.tar.gz", tarball_of_directory(source_dir))
    job = make_job({**HYPERPARAMETERS, "sagemaker_submit_directory": uri})

    result = run_train(job)

    assert_ran_the_user_program(job, result)
    assert (job.code_dir / "helpers" / "__init__.py").is_file()
    # The downloaded archive and the download's error record are temporary files.
    leftovers = [path.name for path in job.base.iterdir() if path.name.startswith(".")]
    assert leftovers == []


@pytest.mark.parametrize(
    "submit_directory",
    [
        pytest.param(lambda source_dir, tarball: str(source_dir), id="local directory"),
        pytest.param(lambda source_dir, tarball: str(tarball), id="local tar.gz"),
        pytest.param(lambda source_dir, tarball: source_dir.as_uri(), id="file URI to a directory"),
        pytest.param(lambda source_dir, tarball: tarball.as_uri(), id="file URI to a tar.gz"),
        pytest.param(lambda source_dir, tarball: f"file://localhost{tarball}", id="file URI naming localhost"),
    ],
)
def test_code_from_a_local_source(make_job, run_train, source_dir, source_tarball, submit_directory):
    job = make_job({**HYPERPARAMETERS, "sagemaker_submit_directory": submit_directory(source_dir, source_tarball)})

    result = run_train(job)

    assert_ran_the_user_program(job, result)
    assert (job.code_dir / PROGRAM).read_text() == USER_PROGRAM


@pytest.mark.parametrize(
    "submit_directory",
    [
        pytest.param(lambda job: None, id="sagemaker_submit_directory absent"),
        pytest.param(lambda job: str(job.code_dir), id="sagemaker_submit_directory is the code directory"),
        pytest.param(lambda job: job.code_dir.as_uri(), id="file URI to the code directory"),
    ],
)
def test_code_already_in_the_code_directory(make_job, run_train, source_dir, submit_directory):
    job = make_job(HYPERPARAMETERS)
    shutil.copytree(source_dir, job.code_dir)
    value = submit_directory(job)
    if value is not None:
        set_hyperparameters(job, {**HYPERPARAMETERS, "sagemaker_submit_directory": value})

    result = run_train(job)

    assert_ran_the_user_program(job, result)


def set_hyperparameters(job, hyperparameters):
    """For values that name the job's own paths, known only once the job exists."""
    job.write_config("hyperparameters.json", encode_hyperparameters(hyperparameters))


def test_an_s3_key_that_does_not_exist_fails_fast_and_names_the_uri(make_job, run_train, s3):
    s3.put("code-bucket", "job-2/other.tar.gz", b"not this one")
    uri = "s3://code-bucket/job-2/source/sourcedir.tar.gz"
    job = make_job({**HYPERPARAMETERS, "sagemaker_submit_directory": uri})

    started = time.monotonic()
    result = run_train(job)
    elapsed = time.monotonic() - started

    failure = assert_failed_with(job, result, f"cannot download code from {uri}: the object does not exist (404)")
    assert failure.startswith("cannot download code from")
    # A 404 is not retried: retrying would only delay the answer by minutes.
    assert elapsed < 10


def test_an_s3_bucket_that_does_not_exist_is_named_as_missing(make_job, run_train, s3):
    uri = "s3://no-such-code-bucket/job-3/source/sourcedir.tar.gz"
    job = make_job({**HYPERPARAMETERS, "sagemaker_submit_directory": uri})

    result = run_train(job)

    assert_failed_with(job, result, f"cannot download code from {uri}: the bucket does not exist (404)")


def unsafe_tarball(member_name: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in ((PROGRAM, USER_PROGRAM.encode()), (member_name, b"planted\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_an_unsafe_archive_on_s3_fails_naming_the_member_and_writes_nothing(make_job, run_train, s3):
    uri = s3.put("code-bucket", "job-4/sourcedir.tar.gz", unsafe_tarball("../planted"))
    job = make_job({**HYPERPARAMETERS, "sagemaker_submit_directory": uri})
    # code/../planted: where the member would land if it were extracted.
    sentinel = job.base / "planted"

    result = run_train(job)

    failure = assert_failed_with(job, result, "unsafe archive member '../planted'")
    assert "unsafe archive member '../planted'" in failure.splitlines()[0]
    assert not sentinel.exists()
    assert not job.code_dir.exists()


def test_a_submit_directory_that_does_not_exist(make_job, run_train, s3, tmp_path):
    missing = tmp_path / "no-such-source"
    job = make_job({**HYPERPARAMETERS, "sagemaker_submit_directory": str(missing)})

    result = run_train(job)

    assert_failed_with(job, result, f"sagemaker_submit_directory {str(missing)!r} does not exist")


def test_an_unsupported_scheme(make_job, run_train, s3):
    uri = "http://example.com/sourcedir.tar.gz"
    job = make_job({**HYPERPARAMETERS, "sagemaker_submit_directory": uri})

    result = run_train(job)

    assert_failed_with(job, result, f"sagemaker_submit_directory {uri!r} is not supported")


def test_a_program_missing_from_the_archive_is_named(make_job, run_train, s3):
    uri = s3.put("code-bucket", "job-5/sourcedir.tar.gz", make_tarball({"other.py": "print('not me')\n"}))
    job = make_job({**HYPERPARAMETERS, "sagemaker_submit_directory": uri})

    result = run_train(job)

    failure = assert_failed_with(job, result, f"entry point {PROGRAM!r} not found in the code directory")
    assert "other.py" in failure[:REASON_SHOWN]


def refused_endpoint() -> str:
    # Nothing listens on this port: every connection is refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_an_unreachable_s3_is_retried_until_the_deadline_then_named(make_job, run_train, s3):
    uri = "s3://code-bucket/job-6/sourcedir.tar.gz"
    job = make_job({**HYPERPARAMETERS, "sagemaker_submit_directory": uri})

    started = time.monotonic()
    environ = {"AWS_ENDPOINT_URL_S3": refused_endpoint(), "SAGEMAKER_MXNET_DOWNLOAD_RETRY_SECONDS": "2"}
    result = run_train(job, env=environ)
    elapsed = time.monotonic() - started

    assert_failed_with(job, result, f"cannot download code from {uri}: no connection to S3 could be made")
    assert 2 <= elapsed < 30


def test_a_refused_connection_ends_the_download_long_before_the_retry_budget(make_job, run_checked, s3):
    # The case: the whole budget (300 s by default) was spent on a failure that never
    # changes. Here the budget stays 300 s and the connection window is 2 s (default 60).
    uri = "s3://code-bucket/job-7/sourcedir.tar.gz"
    job = make_job({**HYPERPARAMETERS, "sagemaker_submit_directory": uri})
    environ = {
        "AWS_ENDPOINT_URL_S3": refused_endpoint(),
        "SAGEMAKER_MXNET_DOWNLOAD_RETRY_SECONDS": "300",
        "SAGEMAKER_MXNET_DOWNLOAD_CONNECT_SECONDS": "2",
    }

    finished = run_checked(job, environ, within=30)

    assert finished.exit_code == 1
    assert finished.reason.startswith(f"cannot download code from {uri}: no connection to S3 could be made ")
    assert "no connection to S3 could be made in 2 s of trying (EndpointConnectionError: " in finished.reason
    assert "SAGEMAKER_MXNET_DOWNLOAD_CONNECT_SECONDS sets how long to try" in finished.reason
    assert finished.seconds >= 2


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def connection_refused():
    from botocore.exceptions import EndpointConnectionError

    return EndpointConnectionError(endpoint_url="https://code-bucket.s3.amazonaws.com/key")


def read_timeout():
    from botocore.exceptions import ReadTimeoutError

    return ReadTimeoutError(endpoint_url="https://code-bucket.s3.amazonaws.com/key")


def tries_until_given_up(retries: Retries, clock: Clock, errors) -> float:
    """Feeds the errors in turn (the last one for ever), sleeping as told; when it gives up."""
    for error in itertools.chain(errors, itertools.repeat(errors[-1])):
        delay = retries.wait_before_next(error)
        if delay is None:
            return clock.now
        clock.now += delay + 0.01  # each try itself takes a little


def test_a_connection_that_is_never_made_is_given_up_after_the_connection_window():
    clock = Clock()
    given_up = tries_until_given_up(Retries(300, 60, clock), clock, [connection_refused()])

    assert 60 <= given_up <= 61


def test_a_connection_window_restarts_once_the_endpoint_answered():
    # Refused for over 40 s, then one 503 (the endpoint answered), then refused again: the
    # window of 60 s starts again at the first refusal after the answer.
    clock = Clock()
    retries = Retries(300, 60, clock)
    while clock.now < 40:
        clock.now += retries.wait_before_next(connection_refused()) + 0.01
    clock.now += retries.wait_before_next(client_error(503, "SlowDown", "GetObject")) + 0.01
    refused_again_at = clock.now

    given_up = tries_until_given_up(retries, clock, [connection_refused()])

    assert 60 <= given_up - refused_again_at <= 61


def test_other_transient_failures_use_the_whole_budget_and_others_none():
    clock = Clock()
    assert 300 <= tries_until_given_up(Retries(300, 60, clock), clock, [read_timeout()]) <= 301
    assert Retries(300, 60, Clock()).wait_before_next(client_error(403, "AccessDenied", "GetObject")) is None


# The download's error handling, unit by unit. botocore raises ClientError for every HTTP error
# S3 returns; the shapes below are the ones it builds from S3's responses.


def client_error(status: int, code: str, operation: str = "HeadObject"):
    from botocore.exceptions import ClientError

    return ClientError(
        {"Error": {"Code": code, "Message": "message"}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


@pytest.mark.parametrize(
    "status, code, transient",
    [
        (500, "InternalError", True),
        (503, "SlowDown", True),
        (503, "ServiceUnavailable", True),
        (429, "TooManyRequests", True),
        (400, "RequestTimeout", True),
        (403, "AccessDenied", False),
        (404, "NoSuchKey", False),
        # HeadObject's 404 has no body: botocore names the error after the status.
        (404, "404", False),
        (400, "InvalidBucketName", False),
    ],
)
def test_which_s3_errors_are_worth_another_try(status, code, transient):
    assert is_transient(client_error(status, code)) is transient


def test_broken_connections_are_transient_and_programming_errors_are_not():
    from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

    assert is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert is_transient(ReadTimeoutError(endpoint_url="http://127.0.0.1:9"))
    assert not is_transient(ValueError("bad argument"))


URI = "s3://code-bucket/job/source/sourcedir.tar.gz"


def test_a_missing_object_is_described_with_its_uri():
    assert describe(URI, client_error(404, "NoSuchKey", "GetObject")) == (
        f"cannot download code from {URI}: the object does not exist (404); check sagemaker_submit_directory"
    )
    assert describe(URI, client_error(404, "404")).startswith(f"cannot download code from {URI}: the object does not")


def test_a_missing_bucket_is_described_as_such():
    assert describe(URI, client_error(404, "NoSuchBucket", "GetObject")) == (
        f"cannot download code from {URI}: the bucket does not exist (404); check sagemaker_submit_directory"
    )


def test_access_denied_points_at_the_role():
    # moto allows every request unless IAM enforcement is configured, so a 403 cannot be
    # produced over HTTP here; this is the ClientError botocore builds from S3's 403.
    message = describe(URI, client_error(403, "AccessDenied", "GetObject"))

    assert message == (
        f"cannot download code from {URI}: access denied (403); check that the job's role may s3:GetObject on it"
    )


@pytest.mark.parametrize(
    "uri",
    ["s3://code-bucket", "s3://code-bucket/", "s3:///key.tar.gz", "https://code-bucket/key.tar.gz", "code-bucket/key"],
)
def test_an_uri_without_bucket_and_key_is_refused(uri):
    with pytest.raises(DownloadError) as raised:
        parse_uri(uri)

    assert str(raised.value) == f"{uri!r} is not an S3 object URI of the form s3://bucket/key"


def test_an_s3_uri_splits_into_bucket_and_key():
    assert parse_uri(URI) == ("code-bucket", "job/source/sourcedir.tar.gz")


@pytest.mark.parametrize(
    "uri, bucket, key",
    [
        # An S3 key may hold any character: none is a query, a fragment or an escape.
        ("s3://bucket/code?v=2.tar.gz", "bucket", "code?v=2.tar.gz"),
        ("s3://bucket/code#2.tar.gz", "bucket", "code#2.tar.gz"),
        ("s3://bucket/a%20b.tar.gz", "bucket", "a%20b.tar.gz"),
        ("s3://bucket/with space/;params.tar.gz", "bucket", "with space/;params.tar.gz"),
        ("s3://bucket//leading-slash.tar.gz", "bucket", "/leading-slash.tar.gz"),
        ("s3://bucket/a/../b.tar.gz", "bucket", "a/../b.tar.gz"),
        ("s3://bucket/\t tab and trailing space ", "bucket", "\t tab and trailing space "),
        ("s3://bucket/代码/ünï.tar.gz", "bucket", "代码/ünï.tar.gz"),
        ("S3://bucket/upper-case-scheme.tar.gz", "bucket", "upper-case-scheme.tar.gz"),
        ("s3://my.bucket_name-1/k", "my.bucket_name-1", "k"),
    ],
)
def test_the_key_is_everything_after_the_bucket_verbatim(uri, bucket, key):
    assert parse_uri(uri) == (bucket, key)


@pytest.mark.parametrize(
    "uri, problem",
    [
        ("s3://bucket?x/key", "names the bucket 'bucket?x', which is not an S3 bucket name"),
        ("s3://bucket#x/key", "names the bucket 'bucket#x', which is not an S3 bucket name"),
        ("s3://user@bucket/key", "names the bucket 'user@bucket', which is not an S3 bucket name"),
        ("s3://bucket/nul\0.tar.gz", "its key holds a NUL character"),
        ("s3://bucket/lone\ud800.tar.gz", "its key is not valid Unicode"),
        ("s3://bucket/" + "k" * 1025, "has 1025 bytes; S3 keys have at most 1024"),
    ],
)
def test_what_cannot_be_an_s3_object_is_refused_naming_why(uri, problem):
    with pytest.raises(DownloadError) as raised:
        parse_uri(uri)

    assert problem in str(raised.value)


# moto's server routes a key with a newline nowhere (real S3 stores it), so keys here hold any
# character but NUL, lone surrogates (neither can be in an S3 key) and newlines.
ANY_KEY = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0\n"), min_size=1)


@hypothesis_settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(key=ANY_KEY.filter(lambda key: len(key.encode()) <= 1024))
def test_an_object_with_any_key_is_downloaded_byte_for_byte(s3, tmp_path, key):
    from sagemaker_mxnet_container.s3 import download

    body = b"the object at " + key.encode()
    uri = s3.put("any-key-bucket", key, body)
    destination = tmp_path / "sourcedir.tar.gz"

    download(uri, str(destination), None, Retries(2.0, 2.0))

    assert destination.read_bytes() == body
    s3.client.delete_object(Bucket="any-key-bucket", Key=key)


MARKS = "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'ran'), 'w').write({!r})\n"


@pytest.mark.parametrize(
    "key, decoy",
    [
        # The example: a URL parser downloads code/ and runs it, reporting success.
        ("code?v=2.tar.gz", "code"),
        ("code#2.tar.gz", "code"),
        ("sources/a%2Fb.tar.gz", "sources/a/b.tar.gz"),
        ("sources/a b+c.tar.gz", "sources/a+b+c.tar.gz"),
        ("//double/slash.tar.gz", "double/slash.tar.gz"),
        ("代码/ünïcode.tar.gz", "%E4%BB%A3%E7%A0%81/%C3%BCn%C3%AFcode.tar.gz"),
    ],
)
def test_train_runs_exactly_the_object_named_whatever_its_key_holds(make_job, run_checked, s3, key, decoy):
    uri = s3.put("odd-keys", key, make_tarball({PROGRAM: MARKS.format(key)}))
    s3.put("odd-keys", decoy, make_tarball({PROGRAM: MARKS.format(decoy)}))
    job = make_job({"sagemaker_program": PROGRAM, "sagemaker_submit_directory": uri})

    finished = run_checked(job, {"AWS_ENDPOINT_URL_S3": s3.endpoint}, within=30)

    assert finished.exit_code == 0, finished.failure
    assert (job.model_dir / "ran").read_text() == key


def code_directory(path: Path, marker: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / PROGRAM).write_text(MARKS.format(marker))
    return path


@pytest.mark.parametrize(
    "name, decoy",
    [("code?v=2", "code"), ("code#2", "code"), ("100%25 done", "100% done"), ("a%20b", "a b"), ("semi;colon", "semi")],
)
@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file URI"])
def test_a_local_source_is_the_path_as_written(make_job, run_checked, tmp_path, name, decoy, as_uri):
    code_directory(tmp_path / "sources" / decoy, "decoy")
    source = code_directory(tmp_path / "sources" / name, "named")
    job = make_job(
        {"sagemaker_program": PROGRAM, "sagemaker_submit_directory": f"file://{source}" if as_uri else str(source)}
    )

    finished = run_checked(job)

    assert finished.exit_code == 0, finished.failure
    assert (job.model_dir / "ran").read_text() == "named"


def test_a_hand_escaped_file_uri_is_decoded_when_only_its_decoded_path_exists(make_job, run_checked, tmp_path):
    source = code_directory(tmp_path / "my code", "named")
    assert "my%20code" in source.as_uri()
    job = make_job({"sagemaker_program": PROGRAM, "sagemaker_submit_directory": source.as_uri()})

    finished = run_checked(job)

    assert finished.exit_code == 0, finished.failure
    assert (job.model_dir / "ran").read_text() == "named"


@pytest.mark.parametrize(
    "written, reason",
    [
        # As the platform writes them: JSON inside the JSON string.
        (r'"s3://bucket/nul\u0000.tar.gz"', "holds a NUL character: it cannot name code to run"),
        (r'"/tmp/code\ud800"', "is not valid Unicode: it cannot name code to run"),
        ('"s3://bucket?v=1/code.tar.gz"', "which is not an S3 bucket name"),
        ('"S3://"', "is not an S3 object URI of the form s3://bucket/key"),
        ('"ftp://example.com/code.tar.gz"', "is not supported: use s3://, file:// or a local path"),
    ],
)
def test_a_submit_directory_that_can_name_no_code_fails_before_anything_runs(make_job, run_checked, written, reason):
    job = make_job({"sagemaker_program": json.dumps(PROGRAM), "sagemaker_submit_directory": written}, raw=True)

    finished = run_checked(job, within=20)

    assert finished.exit_code == 1
    assert reason in finished.reason, finished.failure
    assert "Traceback" not in finished.stderr
