"""Gets the user's code into the code directory: from S3, a local path or ``file://`` URI, or
already there (mounted by the SDK's local mode or baked into the image)."""

import logging
import os
import shutil
import sys
import tempfile
from urllib.parse import unquote, urlparse

from sagemaker_mxnet_container import error_record
from sagemaker_mxnet_container.environment import TrainingEnvironment
from sagemaker_mxnet_container.errors import CodeError, DownloadError
from sagemaker_mxnet_container.runner import Supervisor
from sagemaker_mxnet_container.settings import Settings

logger = logging.getLogger(__name__)


def _local_path(source: str) -> str:
    if source.startswith("file://"):
        parsed = urlparse(source)
        # file://localhost/x is file:///x (RFC 8089); file://dir/x is read as the relative dir/x.
        host = "" if parsed.netloc == "localhost" else parsed.netloc
        return unquote(host + parsed.path)
    return source


def _same_directory(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def fetch(env: TrainingEnvironment, operator: Settings, supervisor: Supervisor) -> str:
    """Returns the directory the user's code is in."""
    code_dir = env.paths.code_dir
    source = env.submit_directory
    if source is None or (not source.startswith("s3://") and _same_directory(_local_path(source), code_dir)):
        if not os.path.isdir(code_dir):
            raise CodeError(
                f"no code to run: sagemaker_submit_directory is not set and {code_dir} does not exist"
            )
        logger.info("Using the code already in %s", code_dir)
        return code_dir
    if source.startswith("s3://"):
        _download_and_extract(env, operator, source, supervisor)
        return code_dir
    if "://" in source and not source.startswith("file://"):
        raise CodeError(
            f"sagemaker_submit_directory {source!r} is not supported: use s3://, file:// or a local path"
        )
    local = _local_path(source)
    if os.path.isdir(local):
        logger.info("Copying code from %s", local)
        shutil.copytree(local, code_dir, symlinks=True, dirs_exist_ok=True)
    elif os.path.isfile(local):
        logger.info("Extracting code from %s", local)
        _extract(local, code_dir, operator)
    else:
        raise CodeError(f"sagemaker_submit_directory {source!r} does not exist")
    return code_dir


def _download_and_extract(env: TrainingEnvironment, operator: Settings, uri: str, supervisor: Supervisor) -> None:
    logger.info("Downloading code from %s", uri)
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
        ]
        result = supervisor.run(command, env=child_env)
        if result.exit_code != 0:
            record = error_record.read(record_path)
            if record:
                raise DownloadError(record["message"])
            detail = "\n".join(result.stderr_tail[-5:])
            raise DownloadError(
                f"cannot download code from {uri}: the download exited with {result.exit_code}\n{detail}"
            )
        _extract(destination, env.paths.code_dir, operator)


def _extract(path: str, code_dir: str, operator: Settings) -> None:
    # tarfile and its compressors take milliseconds to import, and code already in place (the
    # SDK's local mode, an image with the code baked in) never needs them.
    from sagemaker_mxnet_container import archive

    archive.extract(path, code_dir, archive.Limits.of(operator))
