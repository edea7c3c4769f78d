"""What pip would be told, said to uv: pip's configuration and the requirements files' options,
turned into uv's arguments and environment, or the reason uv cannot do what pip would.

pip itself reads its configuration (every pip.conf level, ``PIP_CONFIG_FILE`` and the ``PIP_*``
variables, merged by its own parser) and parses the requirements files, so that nothing of its
precedence is re-implemented here. Each setting that differs from pip's default is translated,
ignored (it changes nothing installed: verbosity, the version check, pip's own cache), or,
where uv has no equivalent, named as the reason to install with pip. A setting this module does
not know (a newer pip's) is such a reason too.

Index URLs and proxies may hold credentials: they reach uv through its environment, which other
users cannot read, never through its arguments, which they can. Imports pip: the installer's
child process uses it, never the supervisor.
"""

import contextlib
import copy
import importlib.util
import io
import math
import os
import shutil
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence


class CannotUseUv(Exception):
    """uv cannot install exactly what pip would; the message says which setting and where."""


@dataclass
class UvInstall:
    """``uv pip install`` arguments (after ``--python``) and the variables to set in its environment."""

    arguments: List[str] = field(default_factory=list)
    environ: Dict[str, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    """The pip settings taken, by option name for the log (never their values: they may be secret)."""


# Settings that change nothing a user's code can see: pip's output, its prompts and version
# check, its own cache and build directories.
_IGNORED = frozenset(
    {
        "cache_dir",
        "debug_mode",
        "disable_pip_version_check",
        "exists_action",
        "help",
        "isolated_mode",
        "log",
        "no_clean",
        "no_color",
        "no_input",
        "no_python_version_warning",
        "progress_bar",
        "quiet",
        "resume_retries",
        "root_user_action",
        "verbose",
        "version",
        "warn_about_conflicts",
        "warn_script_location",
        # pip byte-compiles every file it installs; uv leaves that to the first import, which
        # compiles only what is imported (docs/performance.md has the figures).
        "compile",
        # Read below as values, whatever they are.
        "timeout",
        "retries",
        "keyring_provider",
    }
)
# Requirements-file options uv reads from the file itself as pip does.
_READ_BY_UV = frozenset(
    {"extra_index_urls", "no_index", "find_links", "format_control", "require_hashes", "editables"}
)
# Since this pip release, pip verifies TLS against the system's certificate store (truststore).
_SYSTEM_CERTS_SINCE = (24, 2)


def _pip_version() -> tuple:
    import pip

    return tuple(int(part) for part in pip.__version__.split(".")[:2] if part.isdigit())


def pip_configuration():
    """(pip install's options as configured, {dest: option string} of those that differ from pip's defaults)."""
    from pip._internal.commands import create_command

    parser = create_command("install").parser
    # Callbacks (--no-binary) change the default objects in place: keep a copy from before.
    defaults = copy.deepcopy(parser.defaults)
    complaint = io.StringIO()
    try:
        with contextlib.redirect_stderr(complaint):
            configured = parser.get_default_values()
    except SystemExit:
        detail = complaint.getvalue().strip().splitlines()
        raise CannotUseUv(f"pip's configuration is not valid ({detail[-1] if detail else 'pip says why'})") from None
    names = {}
    for option in parser.option_list_all:
        if option.dest is not None:
            names.setdefault(option.dest, option.get_opt_string())
    changed = {
        dest: names.get(dest, f"--{dest}")
        for dest, value in vars(configured).items()
        if dest in names and value != defaults.get(dest)
    }
    return configured, changed


class _NoNetwork:
    """pip's requirements parser fetches an included file given by URL through this."""

    def get(self, url, *args, **kwargs):
        raise CannotUseUv(f"a requirements file includes {url} by URL")


@dataclass
class _FileOptions:
    index_urls: List[str] = field(default_factory=list)
    trusted_hosts: List[str] = field(default_factory=list)
    pre: bool = False
    hashed: bool = False


def _where(line) -> str:
    return f"{os.path.basename(line.filename)} line {line.lineno}"


def requirements_options(path: str) -> _FileOptions:
    """The options of ``path`` and the files it includes, as pip parses them."""
    from pip._internal.exceptions import InstallationError
    from pip._internal.req import req_file

    line_parser = req_file.build_parser()
    # Copied: pip's line parser appends to default lists that every later line shares.
    line_defaults = copy.deepcopy(vars(line_parser.get_default_values()))
    line_defaults["index_url"] = None  # as pip's own line parser sets it
    names = {option.dest: option.get_opt_string() for option in line_parser.option_list if option.dest}
    found = _FileOptions()
    parser = req_file.RequirementsFileParser(_NoNetwork(), req_file.get_line_parser(None))
    try:
        for line in parser.parse(path, constraint=False):
            for dest, value in vars(line.opts).items():
                if value == line_defaults.get(dest) or dest in ("requirements", "constraints"):
                    continue
                if dest in _READ_BY_UV:
                    pass
                elif dest == "index_url":
                    found.index_urls.append(value)
                elif dest == "hashes":
                    found.hashed = True
                elif dest == "pre":
                    found.pre = True
                elif dest == "trusted_hosts":
                    found.trusted_hosts.extend(value)
                else:
                    option = names.get(dest, dest)
                    raise CannotUseUv(f"{_where(line)} uses {option}, which uv does not support")
    except InstallationError as error:
        # pip will fail on it too, and say so in its own words.
        raise CannotUseUv(f"pip cannot read the requirements ({error})") from None
    return found


def _keyring_in_reach() -> bool:
    return importlib.util.find_spec("keyring") is not None or shutil.which("keyring") is not None


def _certificates(options, environ: Mapping[str, str]) -> List[str]:
    # pip's requests session takes a bundle from --cert, else from these variables.
    bundle = options.cert or environ.get("REQUESTS_CA_BUNDLE") or environ.get("CURL_CA_BUNDLE")
    if bundle:
        return ["--cert", bundle]
    return ["--system-certs"] if _pip_version() >= _SYSTEM_CERTS_SINCE else []


def _format_control(format_control) -> List[str]:
    arguments = []
    for flag, names in (("--no-binary", format_control.no_binary), ("--only-binary", format_control.only_binary)):
        for name in sorted(names):
            arguments += [flag, name]
    return arguments


def plan(
    requirement_files: Sequence[str],
    index_url: Optional[str] = None,
    environ: Mapping[str, str] = os.environ,
) -> UvInstall:
    """How uv installs what ``pip install`` would with this configuration, or CannotUseUv.

    ``index_url`` is the index given on pip's command line (CodeArtifact's): it overrides the
    configured one, and a requirements file's --index-url overrides both, as in pip.
    """
    options, changed = pip_configuration()
    files = _FileOptions()
    for path in requirement_files:
        found = requirements_options(path)
        files.index_urls += found.index_urls
        files.trusted_hosts += found.trusted_hosts
        files.pre = files.pre or found.pre
        files.hashed = files.hashed or found.hashed
    if len(set(files.index_urls)) > 1:
        raise CannotUseUv("the requirements files set --index-url more than once")

    uv = UvInstall()
    for dest, name in sorted(changed.items()):
        if dest in _IGNORED:
            continue
        if not _translate(dest, getattr(options, dest), options, uv):
            raise CannotUseUv(f"pip's configuration sets {name}, which uv does not support")
        uv.notes.append(name)

    if not files.index_urls:
        if index_url is not None:
            uv.environ["UV_INDEX_URL"] = index_url
        elif "index_url" in changed:
            uv.environ["UV_INDEX_URL"] = options.index_url
    for host in files.trusted_hosts:
        uv.arguments += ["--allow-insecure-host", host]
    if files.pre and "--prerelease" not in uv.arguments:
        uv.arguments += ["--prerelease", "allow"]
    # pip checks every requirement's hash once any has one; uv only when told to.
    if files.hashed and "--require-hashes" not in uv.arguments:
        uv.arguments.append("--require-hashes")
    if getattr(options, "keyring_provider", "auto") != "disabled" and _keyring_in_reach():
        raise CannotUseUv("keyring is installed, and pip may ask it for index credentials where uv would not")
    uv.arguments += _certificates(options, environ)
    uv.environ["UV_HTTP_TIMEOUT"] = str(max(1, math.ceil(options.timeout)))
    uv.environ["UV_HTTP_RETRIES"] = str(max(0, int(options.retries)))
    return uv


def _translate(dest: str, value, options, uv: UvInstall) -> bool:
    """Adds to ``uv`` what ``dest`` set to ``value`` means to pip; False where uv has no equivalent."""
    arguments, environ = uv.arguments, uv.environ
    if dest in ("index_url", "cert"):
        pass  # read by plan() and _certificates(): they depend on more than this setting
    elif dest == "extra_index_urls":
        environ["UV_EXTRA_INDEX_URL"] = " ".join(value)
    elif dest == "find_links":
        if any("," in location for location in value):
            return False  # UV_FIND_LINKS is a comma-separated list
        environ["UV_FIND_LINKS"] = ",".join(value)
    elif dest == "no_index":
        arguments.append("--no-index")
    elif dest == "trusted_hosts":
        for host in value:
            arguments += ["--allow-insecure-host", host]
    elif dest == "constraints":
        for path in value:
            arguments += ["--constraints", path]
    elif dest == "build_constraints":
        for path in value:
            arguments += ["--build-constraints", path]
    elif dest == "pre":
        arguments += ["--prerelease", "allow"]
    elif dest == "require_hashes":
        arguments.append("--require-hashes")
    elif dest == "format_control":
        arguments += _format_control(value)
    elif dest == "ignore_dependencies":
        arguments.append("--no-deps")
    elif dest == "force_reinstall":
        arguments.append("--reinstall")
    elif dest in ("upgrade", "upgrade_strategy"):
        # uv's --upgrade upgrades every package, as pip's eager strategy does; pip's default
        # strategy upgrades only the packages named.
        if options.upgrade:
            if options.upgrade_strategy != "eager":
                return False
            if "--upgrade" not in arguments:
                arguments.append("--upgrade")
    elif dest == "build_isolation":
        arguments.append("--no-build-isolation")
    elif dest == "use_pep517":
        return bool(value)  # uv always builds through PEP 517
    elif dest == "override_externally_managed":
        arguments.append("--break-system-packages")
    elif dest == "client_cert":
        environ["SSL_CLIENT_CERT"] = value
    elif dest == "proxy":
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            environ[name] = value
    else:
        return False
    return True
