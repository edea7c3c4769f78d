"""Downloads the code archive from S3, in a short-lived child process of its own.

botocore costs tens of megabytes and a few hundred milliseconds to import; keeping it in a child
means the supervisor never holds it while the user's code runs. The child uses botocore alone,
not boto3 and its transfer manager: one GET streamed to disk is all a code archive needs, and
boto3's layers and the transfer manager's HEAD request and thread pool only add start-up time.
``python -m sagemaker_mxnet_container.s3 URI DEST REGION RETRY_SECONDS CONNECT_SECONDS`` exits 0
with the object at DEST, or non-zero with an error record naming the URI and the cause (REGION
may be empty; the two budgets are the operator's settings, checked by the supervisor).
"""

import os
import re
import sys
import time
from typing import Callable, Optional, Tuple

from sagemaker_mxnet_container import error_record
from sagemaker_mxnet_container.errors import DownloadError

# Per-request retries inside botocore; the outer loop retries whole downloads that broke off.
_REQUEST_ATTEMPTS = 4
_TRANSIENT_CODES = frozenset(
    {"Throttling", "ThrottlingException", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "InternalError"}
)


# What botocore itself accepts as a bucket name (S3's own rules are narrower; S3 names the rest).
_BUCKET = re.compile(r"[A-Za-z0-9._-]{1,255}", re.ASCII)
# S3 keys are at most 1024 bytes of UTF-8.
_MAX_KEY_BYTES = 1024


def parse_uri(uri: str) -> Tuple[str, str]:
    """The bucket (up to the first ``/``) and the key (everything after it, verbatim).

    An S3 key may hold any character: ``?``, ``#``, ``%`` and spaces are part of the key, not a
    query, a fragment or an escape, so a URL parser would download another object than the one
    named (``s3://bucket/code?v=2.tar.gz`` as ``code``).
    """
    if uri[:5].lower() != "s3://":
        raise DownloadError(f"{uri!r} is not an S3 object URI of the form s3://bucket/key")
    bucket, _, key = uri[5:].partition("/")
    if not bucket or not key:
        raise DownloadError(f"{uri!r} is not an S3 object URI of the form s3://bucket/key")
    if not _BUCKET.fullmatch(bucket):
        raise DownloadError(
            f"{uri!r} names the bucket {bucket!r}, which is not an S3 bucket name: "
            "bucket names hold only letters, digits, '.', '-' and '_'"
        )
    if "\0" in key:
        raise DownloadError(f"{uri!r} is not an S3 object URI: its key holds a NUL character")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise DownloadError(f"{uri!r} is not an S3 object URI: its key is not valid Unicode") from None
    if size > _MAX_KEY_BYTES:
        raise DownloadError(f"the key of {uri[:80]!r}... has {size} bytes; S3 keys have at most {_MAX_KEY_BYTES}")
    return bucket, key


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


def shown(uri: str) -> str:
    """The URI as written, or escaped where it holds characters that would forge lines in a log."""
    return uri if uri.isprintable() else repr(uri)


def describe(uri: str, error: BaseException) -> str:
    from botocore.exceptions import ClientError, NoCredentialsError

    uri = shown(uri)
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
    return f"cannot download code from {shown(uri)}: the {what} does not exist (404); check sagemaker_submit_directory"


_CHUNK_BYTES = 1024 * 1024
# Pinned, so that botocore need not list its data directory to find the latest one.
_S3_API_VERSION = "2006-03-01"


class Retries:
    """When a failed try is worth another: a transient failure until ``total_seconds`` have passed
    since the first try, but a connection that cannot be made at all (refused, unresolvable,
    unreachable, TLS) only for ``connect_seconds`` on end: it fails the same way every time, and
    waiting the whole budget only delays the reason."""

    def __init__(self, total_seconds: float, connect_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.total_seconds = total_seconds
        self.connect_seconds = connect_seconds
        self._clock = clock
        self._started = clock()
        self._unconnected_since: Optional[float] = None
        self._delay = 0.5

    def wait_before_next(self, error: BaseException) -> Optional[float]:
        """Seconds to wait before trying again, or None to give up with ``error``."""
        if not is_transient(error):
            return None
        now = self._clock()
        limit = self._started + self.total_seconds
        if is_unconnected(error):
            self._unconnected_since = self._unconnected_since or now
            limit = min(limit, self._unconnected_since + self.connect_seconds)
        else:
            self._unconnected_since = None
        if now >= limit:
            return None
        delay, self._delay = self._delay, min(self._delay * 2, 10.0)
        # The last try is made at the limit, so that the whole time allowed is used.
        return min(delay, limit - now)

    def unconnected_seconds(self) -> Optional[float]:
        """How long no connection could be made, where that is why the download gave up."""
        return None if self._unconnected_since is None else self._clock() - self._unconnected_since


def is_unconnected(error: BaseException) -> bool:
    """No connection to the endpoint could be made (as opposed to one that broke or timed out)."""
    from botocore import exceptions

    return isinstance(error, (exceptions.ConnectionError, ConnectionRefusedError))


def download(uri: str, destination: str, region: Optional[str], retries: Retries) -> None:
    from botocore.config import Config

    bucket, key = parse_uri(uri)
    # Here, not at the top: the supervisor imports this module for its URI parsing alone.
    from sagemaker_mxnet_container import s3_model

    client = s3_model.session().create_client(
        "s3",
        # S3 answers for every region at us-east-1, so a job without a region still downloads.
        region_name=region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        api_version=_S3_API_VERSION,
        config=Config(
            retries={"mode": "standard", "max_attempts": _REQUEST_ATTEMPTS},
            # An endpoint that accepts the connection and then says nothing must not hold one try
            # for minutes past the whole retry budget.
            connect_timeout=min(10.0, max(1.0, retries.connect_seconds)),
            read_timeout=min(60.0, max(1.0, retries.total_seconds)),
        ),
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

    while True:
        try:
            fetch()
            return
        except DownloadError:
            raise
        except Exception as error:
            delay = retries.wait_before_next(error)
            if delay is not None:
                time.sleep(delay)
                continue
            if _is_not_found(error) and not _bucket_exists(client, bucket):
                raise DownloadError(_not_found(uri, "bucket")) from error
            unconnected = retries.unconnected_seconds()
            if unconnected is not None:
                raise DownloadError(
                    f"cannot download code from {shown(uri)}: no connection to S3 could be made in "
                    f"{unconnected:.0f} s of trying ({type(error).__name__}: {error}). Check the region, "
                    "AWS_ENDPOINT_URL_S3 and that the job's network reaches S3 (a VPC endpoint or a NAT "
                    "gateway); SAGEMAKER_MXNET_DOWNLOAD_CONNECT_SECONDS sets how long to try"
                ) from error
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
    uri, destination, region, total, connect = sys.argv[1:] if argv is None else argv
    try:
        download(uri, destination, region or None, Retries(float(total), float(connect)))
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
