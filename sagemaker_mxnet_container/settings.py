"""The operator's settings: every ``SAGEMAKER_MXNET_*`` environment variable, read and checked once.

The image's builder (or ``docker run -e``) tunes ``train`` through these variables. ``read`` checks
all of them when ``train`` starts, before anything else happens, and returns one immutable
``Settings``; the rest of the toolkit takes its values from there, never from the environment. A
value that is not accepted fails the job with a reason naming the variable and saying what it
accepts: a typo must not turn into a silent default, a hang (``nan`` seconds) or a traceback.

Each variable is declared once, as a field of ``Settings``: its name, what it accepts, its default
and one line saying what it does. ``variables()`` lists the declarations (for ``train --help`` and
the README's table). An unset or empty variable takes the default.

``SAGEMAKER_MXNET_ERROR_FILE`` is not a setting: the supervisor hands it to its own children.
"""

import ipaddress
import json
import os
import re
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional, Tuple

from sagemaker_mxnet_container.errors import ConfigurationError

# Digits only, and ASCII ones: int() and float() also take "1_000", " 1e3", "²" and "nan".
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", re.ASCII)
_WHOLE = re.compile(r"[0-9]+", re.ASCII)


@dataclass(frozen=True)
class Kind:
    """What a variable accepts: ``parse`` raises ValueError for anything ``accepted`` excludes."""

    accepted: str
    parse: Callable[[str], Any]


def seconds(at_least: Optional[float] = None, maximum: float = 86400.0) -> Kind:
    """Seconds above 0 (or from ``at_least``) up to ``maximum``."""

    def parse(text: str) -> float:
        if not _DECIMAL.fullmatch(text):
            raise ValueError(text)
        value = float(text)
        low_enough = value > 0 if at_least is None else value >= at_least
        if not (low_enough and value <= maximum):
            raise ValueError(text)
        return value

    lower = "above 0" if at_least is None else f"from {at_least:g}"
    return Kind(f"a number of seconds {lower} to {maximum:g}, in digits with an optional decimal point", parse)


def whole(minimum: int = 1) -> Kind:
    def parse(text: str) -> int:
        if not _WHOLE.fullmatch(text):
            raise ValueError(text)
        value = int(text)
        if value < minimum:
            raise ValueError(text)
        return value

    return Kind(f"a whole number of at least {minimum}", parse)


def choice(*options: str) -> Kind:
    def parse(text: str) -> str:
        if text.lower() not in options:
            raise ValueError(text)
        return text.lower()

    return Kind("one of " + ", ".join(options), parse)


def _absolute_path(text: str) -> str:
    if not os.path.isabs(text):
        raise ValueError(text)
    return text


def _host_addresses(text: str) -> Mapping[str, str]:
    addresses = json.loads(text)
    if not isinstance(addresses, dict):
        raise ValueError(text)
    for name, address in addresses.items():
        if not name or not isinstance(address, str):
            raise ValueError(text)
        ipaddress.IPv4Address(address)
    return MappingProxyType(dict(addresses))


ABSOLUTE_PATH = Kind("an absolute path", _absolute_path)
HOST_ADDRESSES = Kind('a JSON object of host name to IPv4 address, such as {"algo-1": "10.0.0.1"}', _host_addresses)


@dataclass(frozen=True)
class Variable:
    """One setting's declaration."""

    name: str
    kind: Kind
    default: Any
    description: str
    field: str = ""

    def read(self, environ: Mapping[str, str]) -> Any:
        text = environ.get(self.name, "")
        if not text.strip():
            return self.default
        try:
            return self.kind.parse(text.strip())
        except (ValueError, RecursionError):
            raise ConfigurationError(
                f"{self.name} must be {self.kind.accepted}, got {text!r}. Correct it, or unset it for the "
                f"default ({self.default_text})."
            ) from None

    @property
    def default_text(self) -> str:
        if self.default is None:
            return "unset"
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)


def _setting(name: str, kind: Kind, default: Any, description: str) -> Any:
    return field(default=default, metadata={"variable": Variable(name, kind, default, description)})


@dataclass(frozen=True)
class Settings:
    download_retry_seconds: float = _setting(
        "SAGEMAKER_MXNET_DOWNLOAD_RETRY_SECONDS",
        seconds(),
        300.0,
        "how long a code download that fails in a way worth retrying (throttling, 5xx, a broken "
        "connection) is retried, in all",
    )
    download_connect_seconds: float = _setting(
        "SAGEMAKER_MXNET_DOWNLOAD_CONNECT_SECONDS",
        seconds(),
        60.0,
        "how long a code download is retried while no connection to S3 can be made at all "
        "(refused, unresolvable, unreachable)",
    )
    archive_max_bytes: int = _setting(
        "SAGEMAKER_MXNET_ARCHIVE_MAX_BYTES",
        whole(),
        20 * 1024**3,
        "the most bytes the user's code (an archive's members, or a local directory) may hold",
    )
    archive_max_members: int = _setting(
        "SAGEMAKER_MXNET_ARCHIVE_MAX_MEMBERS",
        whole(),
        100_000,
        "the most entries the user's code (an archive, or a local directory) may hold",
    )
    host_wait_seconds: float = _setting(
        "SAGEMAKER_MXNET_HOST_WAIT_SECONDS",
        seconds(),
        600.0,
        "how long the hosts of a multi-host job wait for each other's names and supervisors",
    )
    heartbeat_timeout_seconds: float = _setting(
        "SAGEMAKER_MXNET_HEARTBEAT_TIMEOUT_SECONDS",
        seconds(at_least=3.0),
        10.0,
        "the silence after which another host counts as lost and the job ends (heartbeats go every second)",
    )
    host_addresses: Optional[Mapping[str, str]] = _setting(
        "SAGEMAKER_MXNET_HOST_ADDRESSES",
        HOST_ADDRESSES,
        None,
        "host addresses to use instead of resolving the host names (train-local sets it)",
    )
    ssh_dir: Optional[str] = _setting(
        "SAGEMAKER_MXNET_SSH_DIR",
        ABSOLUTE_PATH,
        None,
        "where the mpirun launcher's ssh client key is (unset: ~/.ssh of the user train runs as)",
    )
    installer: str = _setting(
        "SAGEMAKER_MXNET_INSTALLER",
        choice("uv", "pip"),
        "uv",
        "uv: requirements install with uv wherever it does exactly what pip would, with pip elsewhere (the "
        "log says why); pip: with pip only",
    )
    cgroup: str = _setting(
        "SAGEMAKER_MXNET_CGROUP",
        choice("auto", "off"),
        "auto",
        "auto: the user's processes run in a cgroup of their own where train can make one, so that "
        "whatever they leave running is ended as a whole; off: never",
    )

    @property
    def client_ssh_dir(self) -> str:
        return self.ssh_dir or os.path.expanduser("~/.ssh")


def variables() -> Tuple[Variable, ...]:
    """Every declared variable, in declaration order."""
    return tuple(replace(item.metadata["variable"], field=item.name) for item in fields(Settings))


def variable(field_name: str) -> Variable:
    """The declaration behind ``Settings.<field_name>``."""
    return next(declared for declared in variables() if declared.field == field_name)


def read(environ: Mapping[str, str] = os.environ) -> Settings:
    """Checks every variable; raises ConfigurationError naming the first that is not accepted."""
    return Settings(**{declared.field: declared.read(environ) for declared in variables()})
