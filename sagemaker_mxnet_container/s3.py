"""Downloads the code archive from S3, in a short-lived child process of its own.

botocore costs tens of megabytes and a few hundred milliseconds to import; keeping it in a child
means the supervisor never holds it while the user's code runs. The child uses botocore alone,
not boto3 and its transfer manager: one GET streamed to disk is all a code archive needs, and
boto3's layers and the transfer manager's HEAD request and thread pool only add start-up time.
``python -m sagemaker_mxnet_container.s3 URI DEST [REGION]`` exits 0 with the object at DEST, or
non-zero with an error record naming the URI and the cause.
"""

import os
import sys
from typing import Optional, Tuple
from urllib.parse import urlparse

from sagemaker_mxnet_container import error_record, s3_model
from sagemaker_mxnet_container.errors import DownloadError

TOTAL_RETRY_SECONDS_VARIABLE = "SAGEMAKER_MXNET_DOWNLOAD_RETRY_SECONDS"
DEFAULT_TOTAL_RETRY_SECONDS = 300.0
# Per-request retries inside botocore; the outer loop retries whole downloads that broke off.
_REQUEST_ATTEMPTS = 4
_TRANSIENT_CODES = frozenset(
    {"Throttling", "ThrottlingException", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "InternalError"}
)


def parse_uri(uri: str) -> Tuple[str, str]:
    parsed = urlparse(uri)
    key = parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not parsed.netloc or not key:
        raise DownloadError(f"{uri!r} is not an S3 object URI of the form s3://bucket/key")
    return parsed.netloc, key


def _http_status(error) -> Optional[int]:
    """The HTTP status of a botocore ClientError's response."""
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def is_transient(error: BaseException) -> bool:
    """Throttling, server errors and broken connections are worth another try; 403/404 are not."""
    import builtins

    from botocore import exceptions

    if isinstance(error, exceptions.ClientError):
        status = _http_status(error) or 0
        return status >= 500 or status == 429 or error.response.get("Error", {}).get("Code") in _TRANSIENT_CODES
    # Only the network's OSErrors: a full disk or a read-only destination will not heal by waiting.
    network = (builtins.ConnectionError, TimeoutError)
    # A body that broke off mid-stream: botocore reports it once the GET itself has succeeded.
    broken_body = (exceptions.IncompleteReadError, getattr(exceptions, "ResponseStreamingError", ()))
    return isinstance(
        error,
        (
            exceptions.ConnectionError,
            exceptions.HTTPClientError,
            exceptions.ReadTimeoutError,
            *broken_body,
            *network,
        ),
    )


def describe(uri: str, error: BaseException) -> str:
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(error, ClientError):
        status = _http_status(error)
        code = error.response.get("Error", {}).get("Code", "")
        if status == 404 or code in ("404", "NoSuchKey", "NoSuchBucket"):
            return _not_found(uri, "bucket" if code == "NoSuchBucket" else "object")
        if status == 403 or code in ("403", "AccessDenied"):
            return (
                f"cannot download code from {uri}: access denied (403); "
                "check that the job's role may s3:GetObject on it"
            )
        return f"cannot download code from {uri}: {code or status} {error}"
    if isinstance(error, NoCredentialsError):
        return f"cannot download code from {uri}: no AWS credentials were found"
    return f"cannot download code from {uri}: {type(error).__name__}: {error}"


def _not_found(uri: str, what: str) -> str:
    return f"cannot download code from {uri}: the {what} does not exist (404); check sagemaker_submit_directory"


_CHUNK_BYTES = 1024 * 1024
# Pinned, so that botocore need not list its data directory to find the latest one.
_S3_API_VERSION = "2006-03-01"


def download(uri: str, destination: str, region: Optional[str], total_retry_seconds: float) -> None:
    from botocore.config import Config
    from retrying import retry

    bucket, key = parse_uri(uri)
    client = s3_model.session().create_client(
        "s3",
        # S3 answers for every region at us-east-1, so a job without a region still downloads.
        region_name=region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        api_version=_S3_API_VERSION,
        config=Config(
            retries={"mode": "standard", "max_attempts": _REQUEST_ATTEMPTS},
            # An endpoint that accepts the connection and then says nothing must not hold one try
            # for minutes past the whole retry budget.
            connect_timeout=min(10.0, max(1.0, total_retry_seconds)),
            read_timeout=min(60.0, max(1.0, total_retry_seconds)),
        ),
    )

    @retry(
        retry_on_exception=is_transient,
        wait_exponential_multiplier=500,
        wait_exponential_max=10_000,
        stop_max_delay=total_retry_seconds * 1000,
    )
    def fetch():
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            # Each try writes the file from its start: the part of a body that broke off is never kept.
            with open(destination, "wb") as stream:
                for chunk in body.iter_chunks(_CHUNK_BYTES):
                    stream.write(chunk)
        finally:
            body.close()

    try:
        fetch()
    except DownloadError:
        raise
    except Exception as error:
        if _is_not_found(error) and not _bucket_exists(client, bucket):
            raise DownloadError(_not_found(uri, "bucket")) from error
        raise DownloadError(describe(uri, error)) from error


def _is_not_found(error: BaseException) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(error, ClientError) and _http_status(error) == 404


def _bucket_exists(client, bucket: str) -> bool:
    """S3 may answer a GET for a missing key in a missing bucket without saying which is missing
    (a 404 without a body, or NoSuchKey); HeadBucket tells them apart. Anything but a 404 leaves
    the object to blame."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as error:
        return not _is_not_found(error)
    except BotoCoreError:
        return True
    return True


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    uri, destination = argv[0], argv[1]
    region = argv[2] if len(argv) > 2 and argv[2] else None
    total = float(os.environ.get(TOTAL_RETRY_SECONDS_VARIABLE) or DEFAULT_TOTAL_RETRY_SECONDS)
    try:
        download(uri, destination, region, total)
    except Exception as error:
        error_record.write(error, "downloading the code")
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The download is on the job's critical path until this process is reaped, and the
    # interpreter's teardown with botocore loaded takes tens of milliseconds: skip it. Every file
    # (the archive, the error record) is closed by now.
    os._exit(exit_code)
