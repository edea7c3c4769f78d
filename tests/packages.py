"""Tiny Python packages that no public index has, built by the tests: wheels, source distributions
and project directories whose build backend lies inside them (so building one needs no index),
and PEP 503 index trees holding them."""

import base64
import hashlib
import html
import io
import json
import os
import re
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence

# The build backend of every project and sdist made here: it builds a wheel (or an editable
# wheel: a .pth naming the source) from project.json, with nothing but the standard library.
BACKEND = '''\
import base64, hashlib, json, os, zipfile

def _project():
    with open("project.json") as stream:
        return json.load(stream)

def _metadata(project):
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in project["requires"]]
    return "\\n".join(lines) + "\\n"

def _wheel(directory, project, files):
    name = project["name"].replace("-", "_")
    dist_info = f"{name}-{project['version']}.dist-info"
    files = dict(files)
    files[f"{dist_info}/METADATA"] = _metadata(project)
    files[f"{dist_info}/WHEEL"] = "Wheel-Version: 1.0\\nGenerator: smmx\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist_info}/RECORD"] = "\\n".join(record + [f"{dist_info}/RECORD,,"]) + "\\n"
    filename = f"{name}-{project['version']}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, filename), "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return filename

def _sources(project):
    module = project["module"]
    with open(os.path.join(module, "__init__.py")) as stream:
        return {f"{module}/__init__.py": stream.read()}

def get_requires_for_build_wheel(config_settings=None):
    return []

def get_requires_for_build_editable(config_settings=None):
    return []

def get_requires_for_build_sdist(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = _project()
    return _wheel(wheel_directory, project, _sources(project))

def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    project = _project()
    return _wheel(wheel_directory, project, {f"{project['module']}.pth": os.getcwd() + "\\n"})

def build_sdist(sdist_directory, config_settings=None):
    raise NotImplementedError("the tests build their sdists themselves")
'''
PYPROJECT = '[build-system]\nrequires = []\nbuild-backend = "smmx_backend"\nbackend-path = ["."]\n'


def module_name(name: str) -> str:
    return re.sub(r"[-.]+", "_", name).lower()


def normalized(name: str) -> str:
    """PEP 503's normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    extras: Optional[Dict[str, Sequence[str]]] = None,
    value: Optional[str] = None,
) -> Path:
    """A pure-Python wheel whose module's ``VALUE`` is ``value`` (default: its name and version)."""
    directory.mkdir(parents=True, exist_ok=True)
    module = module_name(name)
    dist_info = f"{module}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
    for extra, requirements in (extras or {}).items():
        metadata.append(f"Provides-Extra: {extra}")
        metadata += [f'Requires-Dist: {requirement}; extra == "{extra}"' for requirement in requirements]
    files = {
        f"{module}/__init__.py": f"VALUE = {value if value is not None else f'{name} {version}'!r}\n",
        f"{dist_info}/METADATA": "\n".join(metadata) + "\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: smmx\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [_record_line(path, text.encode()) for path, text in files.items()]
    files[f"{dist_info}/RECORD"] = "\n".join(record + [f"{dist_info}/RECORD,,"]) + "\n"
    path = directory / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return path


def project(directory: Path, name: str, version: str, *, requires: Sequence[str] = ()) -> Path:
    """A source tree built by its own backend (pyproject.toml, no setup.py)."""
    directory.mkdir(parents=True, exist_ok=True)
    module = module_name(name)
    (directory / module).mkdir(exist_ok=True)
    (directory / module / "__init__.py").write_text(f"VALUE = {f'{name} {version} built'!r}\n")
    (directory / "pyproject.toml").write_text(PYPROJECT)
    (directory / "smmx_backend.py").write_text(BACKEND)
    (directory / "project.json").write_text(
        json.dumps({"name": name, "version": version, "requires": list(requires), "module": module})
    )
    return directory


def sdist(directory: Path, name: str, version: str, *, requires: Sequence[str] = ()) -> Path:
    """A source distribution that installers must build (with its own backend) before installing."""
    directory.mkdir(parents=True, exist_ok=True)
    top = f"{module_name(name)}-{version}"
    with tempfile.TemporaryDirectory() as scratch:
        source = project(Path(scratch), name, version, requires=requires)
        files = {path.relative_to(source).as_posix(): path.read_bytes() for path in source.rglob("*") if path.is_file()}
    files["PKG-INFO"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    path = directory / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for member, data in files.items():
            info = tarfile.TarInfo(f"{top}/{member}")
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def simple_index(root: Path, distributions: Iterable[Path]) -> Path:
    """A PEP 503 tree at ``root`` (``root/simple/<project>/``) holding copies of ``distributions``."""
    (root / "simple").mkdir(parents=True, exist_ok=True)
    for path in distributions:
        target = root / "simple" / normalized(re.split(r"-\d", path.name, maxsplit=1)[0])
        target.mkdir(exist_ok=True)
        (target / path.name).write_bytes(path.read_bytes())
    for project_name in sorted(os.listdir(root / "simple")):
        target = root / "simple" / project_name
        if not target.is_dir():
            continue
        names = sorted(entry.name for entry in target.iterdir() if entry.name != "index.html")
        links = "".join(f'<a href="{html.escape(name)}">{html.escape(name)}</a>\n' for name in names)
        (target / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    projects = sorted(entry.name for entry in (root / "simple").iterdir() if entry.is_dir())
    links = "".join(f'<a href="{name}/">{name}</a>\n' for name in projects)
    (root / "simple" / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    return root / "simple"
