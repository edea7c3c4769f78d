"""Typed failures: each names its cause in words a user can act on.

The entry point writes ``str(error)`` to ``output/failure`` and exits with ``error.exit_code``.
"""

import errno

# What a user can do about the errors a step that writes files meets (the job's volume, not a bug).
_ADVICE = {
    errno.ENOSPC: "the job's volume is full: give the job a larger volume, or make what is written smaller",
    errno.EDQUOT: "the disk quota is used up: give the job a larger volume, or make what is written smaller",
    errno.ENAMETOOLONG: "the file system takes names of at most 255 bytes and paths of at most 4095: shorten it",
    errno.EROFS: "the file system is mounted read-only",
}


def describe_os_error(error: OSError) -> str:
    """``No space left on device (ENOSPC); the job's volume is full: ...`` for ``[Errno 28] ...``."""
    name = errno.errorcode.get(error.errno or 0)
    text = f"{error.strerror} ({name})" if name and error.strerror else str(error)
    advice = _ADVICE.get(error.errno)
    return f"{text}; {advice}" if advice else text


class ToolkitError(Exception):
    """A job failure whose cause is known; the message is the failure reason."""

    exit_code = 1


class ConfigurationError(ToolkitError):
    """A configuration file or reserved hyperparameter is missing or malformed."""


class CodeError(ToolkitError):
    """The user's code could not be obtained or located."""


class DownloadError(CodeError):
    """The code archive could not be downloaded."""


class ArchiveError(CodeError):
    """The code archive is unreadable, unsafe or too large to extract."""


class RequirementsError(ToolkitError):
    """``pip install -r requirements.txt`` failed."""


class StartError(ToolkitError):
    """A process of the job could not be started at all (not executable, bad interpreter line)."""


class UserCodeError(ToolkitError):
    """The user's code failed; ``exit_code`` is the one the job must end with."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


class Stopped(ToolkitError):
    """The job was told to stop by a signal (the platform's StopTrainingJob sends SIGTERM)."""

    def __init__(self, message, signum):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class Aborted(ToolkitError):
    """The job was ended because another part of it failed: another host, or a parameter-server process."""


class ClusterError(ToolkitError):
    """The hosts of a multi-host job could not find or reach each other."""
