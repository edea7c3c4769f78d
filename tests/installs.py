"""Fresh Python environments for install tests, and what is installed in them.

A template venv is made once (``python -m venv``: pip and setuptools, as the image's venv has),
then copied for each install, so that every install starts from the same state. ``train`` runs
in a copy as it runs in the image: this checkout's package and the modules it needs (retrying,
uv and uv's binary) are importable there through a .pth file and links, without being
distributions of that environment, so they never show in what the tests compare.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Mapping, Optional

import retrying
import uv

REPO = Path(__file__).resolve().parent.parent
# Names the redaction counts as secret, and settings of this machine's pip: none may leak into
# an install that a test means to describe completely.
_DROPPED = ("PIP_", "UV_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CA_REPOSITORY_ARN", "SAGEMAKER_MXNET_")

_LIST = """
import importlib.metadata as metadata, json, re
found = {}
for dist in metadata.distributions():
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    found[re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()] = {
        "version": dist.version,
        "editable": bool(direct.get("dir_info", {}).get("editable")),
        "installer": (dist.read_text("INSTALLER") or "").strip(),
    }
print(json.dumps(found))
"""


def isolated_environ(home: Path, extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """This process's environment without pip's settings, with a home and XDG dirs of its own
    (no user or XDG-level pip.conf), plus ``extra``."""
    environ = {name: value for name, value in os.environ.items() if not name.startswith(_DROPPED)}
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        environ.pop(name, None)
    home.mkdir(parents=True, exist_ok=True)
    environ["HOME"] = str(home)
    environ["XDG_CONFIG_DIRS"] = str(home / "no-global-config")
    environ["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    environ.update(extra or {})
    return environ


def python_of(environment: Path) -> Path:
    return environment / "bin" / "python"


def site_packages(environment: Path) -> Path:
    return next((environment / "lib").glob("python3*/site-packages"))


def make_template(directory: Path, baseline_wheels=()) -> Path:
    """A venv like the image's, with ``baseline_wheels`` installed by pip, offline."""
    subprocess.run([sys._base_executable, "-m", "venv", str(directory)], check=True, capture_output=True)
    if baseline_wheels:
        subprocess.run(
            [str(python_of(directory)), "-m", "pip", "install", "--no-index", "--no-deps", "-q",
             *map(str, baseline_wheels)],
            check=True,
            capture_output=True,
            env=isolated_environ(directory / ".home"),
        )  # fmt: skip
    site = site_packages(directory)
    (site / "smmx_checkout.pth").write_text(f"{REPO}\n")
    (site / "retrying.py").symlink_to(retrying.__file__)
    (site / "uv").symlink_to(Path(uv.__file__).parent)
    (directory / "bin" / "uv").symlink_to(uv.find_uv_bin())
    return directory


def copy_of(template: Path, destination: Path) -> Path:
    shutil.copytree(template, destination, symlinks=True)
    return destination


def installed(environment: Path) -> Dict[str, dict]:
    """{normalized name: {version, editable, installer}} of every distribution in ``environment``."""
    result = subprocess.run(
        [str(python_of(environment)), "-c", _LIST], check=True, capture_output=True, text=True, env={"PATH": ""}
    )
    return json.loads(result.stdout)
