"""Typed failures: each names its cause in words a user can act on.

The entry point writes ``str(error)`` to ``output/failure`` and exits with ``error.exit_code``.
"""


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
