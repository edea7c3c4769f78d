"""Gets the user's code into the code directory: from S3, a local path or ``file://`` URI, or
already there (mounted by the SDK's local mode or baked into the image).

Whatever the source, a copy or an extraction that fails leaves no partial code behind: what it
added to the code directory is removed, so a half-written tree can never run.
"""

import contextlib
import logging
import os
import re
import shutil
import sys
import tempfile
from typing import Iterator, Optional
from urllib.parse import unquote

from sagemaker_mxnet_container import code_copy, error_record, s3
from sagemaker_mxnet_container.environment import TrainingEnvironment
from sagemaker_mxnet_container.errors import CodeError, DownloadError
from sagemaker_mxnet_container.runner import Supervisor
from sagemaker_mxnet_container.settings import Settings

logger = logging.getLogger(__name__)

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def _scheme(source: str) -> Optional[str]:
    match = _SCHEME.match(source)
    return match.group(1).lower() if match else None


def local_path(source: str) -> str:
    """The path a local source names: a path as written, or what follows a ``file://`` URI's host.

    ``?`` and ``#`` are characters of a file name here, never a query or a fragment. The SDK's
    local mode writes ``file://`` and the path unescaped, so the path is taken as written; only
    where that does not exist and its %-decoded form does (a URI escaped by hand) is it decoded.
    """
    if _scheme(source) != "file":
        return source
    rest = source[len("file://") :]
    host, _, path = rest.partition("/")
    # file://localhost/x is file:///x (RFC 8089); file://dir/x is read as the relative dir/x.
    written = "/" + path if host in ("", "localhost") else rest
    decoded = unquote(written)
    if decoded != written and not os.path.lexists(written) and os.path.lexists(decoded):
        return decoded
    return written


def _check_text(source: str) -> None:
    """A NUL or a lone surrogate can name no file and reach no child process."""
    problem = "holds a NUL character" if "\0" in source else None
    try:
        os.fsencode(source)
    except UnicodeEncodeError:
        problem = "is not valid Unicode"
    if problem:
        raise CodeError(f"sagemaker_submit_directory {source!r} {problem}: it cannot name code to run")


def _same_directory(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def fetch(env: TrainingEnvironment, operator: Settings, supervisor: Supervisor) -> str:
    """Returns the directory the user's code is in."""
    code_dir = env.paths.code_dir
    source = env.submit_directory
    if source is not None:
        _check_text(source)
    scheme = _scheme(source) if source is not None else None
    if scheme == "s3":
        s3.parse_uri(source)
        with _undone_on_failure(code_dir):
            _download_and_extract(env, operator, source, supervisor)
        return code_dir
    if scheme not in (None, "file"):
        raise CodeError(
            f"sagemaker_submit_directory {source!r} is not supported: use s3://, file:// or a local path"
        )
    local = local_path(source) if source is not None else None
    if local is None or _same_directory(local, code_dir):
        if not os.path.isdir(code_dir):
            raise CodeError(f"no code to run: sagemaker_submit_directory is not set and {code_dir} is not a directory")
        logger.info("Using the code already in %s", code_dir)
        return code_dir
    if os.path.isdir(local):
        logger.info("Copying code from %s", local)
        with _undone_on_failure(code_dir):
            code_copy.copy(local, code_dir, operator.archive_max_members, operator.archive_max_bytes)
    elif os.path.isfile(local):
        logger.info("Extracting code from %s", local)
        with _undone_on_failure(code_dir):
            _extract(local, code_dir, operator)
    elif os.path.lexists(local):
        raise CodeError(f"sagemaker_submit_directory {source!r} is neither a directory nor an archive file")
    else:
        raise CodeError(f"sagemaker_submit_directory {source!r} does not exist")
    return code_dir


@contextlib.contextmanager
def _undone_on_failure(code_dir: str) -> Iterator[None]:
    """Removes what the block added to ``code_dir`` if it fails (or is stopped)."""
    if os.path.lexists(code_dir) and not os.path.isdir(code_dir):
        raise CodeError(f"{code_dir} exists but is not a directory: remove it, so that the code can be put there")
    existed = os.path.isdir(code_dir)
    before = set(os.listdir(code_dir)) if existed else set()
    try:
        yield
    except BaseException:
        if not existed:
            shutil.rmtree(code_dir, ignore_errors=True)
        else:
            for name in set(os.listdir(code_dir)) - before:
                path = os.path.join(code_dir, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
        raise


def _download_and_extract(env: TrainingEnvironment, operator: Settings, uri: str, supervisor: Supervisor) -> None:
    logger.info("Downloading code from %s", s3.shown(uri))
    os.makedirs(env.paths.base, exist_ok=True)
    # Inside the job, not /tmp: the job's volume is the one sized for its data.
    with tempfile.TemporaryDirectory(prefix=".download-", dir=env.paths.base) as scratch:
        destination = os.path.join(scratch, "sourcedir.tar.gz")
        record_path = os.path.join(scratch, "error.json")
        child_env = {**os.environ, error_record.FILE_VARIABLE: record_path}
        command = [
            sys.executable,
            "-m",
            "sagemaker_mxnet_container.s3",
            uri,
            destination,
            env.region or "",
            str(operator.download_retry_seconds),
            str(operator.download_connect_seconds),
        ]
        # botocore alone, no code of the user's: nothing it starts needs a cgroup.
        result = supervisor.run(command, env=child_env, confined=False)
        if result.exit_code != 0:
            record = error_record.read(record_path)
            if record:
                raise DownloadError(record["message"])
            detail = "\n".join(result.stderr_tail[-5:])
            raise DownloadError(
                f"cannot download code from {s3.shown(uri)}: the download exited with {result.exit_code}\n{detail}"
            )
        _extract(destination, env.paths.code_dir, operator)


def _extract(path: str, code_dir: str, operator: Settings) -> None:
    # tarfile and its compressors take milliseconds to import, and code already in place (the
    # SDK's local mode, an image with the code baked in) never needs them.
    from sagemaker_mxnet_container import archive

    archive.extract(path, code_dir, archive.Limits.of(operator))
