"""uv installs what pip would: for each requirements file of a corpus, pip (as the
sagemaker-training toolkit runs it) installs into one fresh environment and the real ``train``
into another, and the two hold the same distributions at the same versions; ``train``'s were
installed by uv, not by its fallback to pip.

Both environments start as the same copy of a venv like the image's (pip and setuptools, and two
packages already installed at versions the corpus moves or keeps). The packages are the tests'
own, served from a local directory and an index started on 127.0.0.1, so the corpus needs no
network; setuptools, which a setup.py build fetches, is downloaded once and cached.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from installs import copy_of, installed, make_template, python_of
from package_index import IndexServer
from packages import project, sdist, simple_index, wheel

BUILD_WHEELS = Path.home() / ".cache" / "sagemaker-mxnet-container" / "build-wheels"
PROGRAM = "t.py"
BASELINE = {"smmx-kept": "1.0", "smmx-bumped": "1.0"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The wheelhouse (find-links), the index server, the template environment, and the paths
    the corpus refers to."""
    root = tmp_path_factory.mktemp("installed-set")
    wheels = root / "wheelhouse"
    for version in ("1.0", "1.1", "2.0"):
        wheel(wheels, "smmx-alpha", version)
    wheel(wheels, "smmx-beta", "1.0", requires=["smmx-alpha>=1.1"])
    wheel(wheels, "smmx-gamma", "1.0", extras={"fast": ["smmx-delta"]})
    for version in ("1.0", "1.1"):
        wheel(wheels, "smmx-delta", version)
    wheel(wheels, "smmx-epsilon", "1.0", requires=['smmx-alpha<2; python_version >= "3"'])
    wheel(wheels, "smmx-zeta", "1.0")
    wheel(wheels, "smmx-zeta", "2.0rc1")
    for name in BASELINE:
        for version in ("1.0", "1.5", "2.0"):
            wheel(wheels, name, version)
    # What pip and uv build a setup.py project with (pip's default build requirements and theirs),
    # fetched once where this machine's pip finds them (PyPI, or the index its configuration names).
    if not (BUILD_WHEELS / "complete").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "setuptools>=70.1", "wheel", "-d", str(BUILD_WHEELS)],
            check=True,
            capture_output=True,
        )
        (BUILD_WHEELS / "complete").touch()
    for path in BUILD_WHEELS.glob("*.whl"):
        shutil.copy(path, wheels)

    simple_index(root / "index" / "main", [wheel(root / "only-in-index", "smmx-only-in-index", "1.0")])
    simple_index(root / "index" / "extra", [wheel(root / "extra-wheels", "smmx-alpha", "2.1")])
    direct = root / "direct"
    wheel(direct, "smmx-direct", "1.0")
    project(direct / "smmx-project", "smmx-project", "1.0", requires=["smmx-delta==1.0"])

    template = make_template(
        root / "template", [wheels / f"{name.replace('-', '_')}-1.0-py3-none-any.whl" for name in BASELINE]
    )
    with IndexServer(root / "index") as index:
        yield {
            "root": root,
            "wheels": wheels,
            "index": index.url,
            "direct": direct,
            "template": template,
            "baseline": installed(template),
        }


def files_of(world, case: str) -> dict:
    """The code directory of each corpus case: {relative path: text or bytes}."""
    wheels, scratch = world["wheels"], world["root"] / "scratch" / case
    if case == "pins":
        return {"requirements.txt": "smmx-alpha==1.0\nsmmx-delta==1.0\n"}
    if case == "ranges and dependencies":
        return {"requirements.txt": "smmx-alpha>=1.0,<2\nsmmx-beta~=1.0\n"}
    if case == "extras and environment markers":
        return {
            "requirements.txt": 'smmx-gamma[fast]\nsmmx-delta<1.1 ; python_version >= "3.8"\n'
            'smmx-zeta ; sys_platform == "win32"\nsmmx-epsilon\n'
        }
    if case == "-r includes and -c constraints":
        return {
            "requirements.txt": "-r more/base.txt\n-c constraints.txt\nsmmx-beta\n",
            "more/base.txt": "smmx-alpha\n",
            "constraints.txt": "smmx-alpha<2\n",
        }
    if case == "--extra-index-url and --find-links to a local directory":
        linked = wheel(scratch, "smmx-linked", "1.0")
        return {
            "requirements.txt": f"--extra-index-url {world['index']}/extra/simple\n--find-links ./local-wheels\n"
            "smmx-alpha\nsmmx-only-in-index\nsmmx-linked\n",
            f"local-wheels/{linked.name}": linked.read_bytes(),
        }
    if case == "a local wheel path":
        local = wheel(scratch, "smmx-local", "1.0", requires=["smmx-delta"])
        return {"requirements.txt": f"./dist/{local.name}\n", f"dist/{local.name}": local.read_bytes()}
    if case == "a local sdist that needs a build":
        built = sdist(scratch, "smmx-built", "1.0", requires=["smmx-alpha<2"])
        return {"requirements.txt": f"./dist/{built.name}\n", f"dist/{built.name}": built.read_bytes()}
    if case == "pkg @ file:// URLs":
        direct = world["direct"]
        return {
            "requirements.txt": f"smmx-direct @ file://{direct}/smmx_direct-1.0-py3-none-any.whl\n"
            f"smmx-project @ file://{direct}/smmx-project\n"
        }
    if case == "-e .":
        tree = project(scratch, "smmx-editable", "1.0", requires=["smmx-delta"])
        return {
            "requirements.txt": "-e .\n",
            **{path.relative_to(tree).as_posix(): path.read_bytes() for path in tree.rglob("*") if path.is_file()},
        }
    if case == "packages already installed at other versions":
        return {"requirements.txt": "smmx-kept>=1.0\nsmmx-bumped==2.0\n"}
    if case == "a setup.py package with requirements":
        return {
            "setup.py": "from setuptools import setup\n"
            "setup(name='smmx-trainer', version='1.0', py_modules=['t'], install_requires=['smmx-alpha<2'])\n",
            "requirements.txt": "smmx-delta\n",
        }
    if case == "--pre":
        return {"requirements.txt": "--pre\nsmmx-zeta\n"}
    if case == "--hash":
        alpha, delta = wheels / "smmx_alpha-1.0-py3-none-any.whl", wheels / "smmx_delta-1.1-py3-none-any.whl"
        return {
            "requirements.txt": f"smmx-alpha==1.0 --hash=sha256:{sha256(alpha)}\n"
            f"smmx-delta==1.1 --hash=sha256:{sha256(delta)}\n"
        }
    raise AssertionError(case)


CASES = [
    "pins",
    "ranges and dependencies",
    "extras and environment markers",
    "-r includes and -c constraints",
    "--extra-index-url and --find-links to a local directory",
    "a local wheel path",
    "a local sdist that needs a build",
    "pkg @ file:// URLs",
    "-e .",
    "packages already installed at other versions",
    "a setup.py package with requirements",
    "--pre",
    "--hash",
]


def lay_out(directory: Path, files: dict) -> Path:
    for relative, content in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    program = directory / PROGRAM
    if not program.exists():
        program.write_text("print('trained')\n")
    return directory


def environ_for(world, home: Path, **extra) -> dict:
    environ = {name: value for name, value in os.environ.items() if not name.startswith(("PIP_", "UV_"))}
    environ.pop("XDG_CONFIG_HOME", None)
    home.mkdir(parents=True, exist_ok=True)
    environ.update(
        HOME=str(home),
        XDG_CONFIG_DIRS=str(home / "xdg"),
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_INDEX_URL=f"{world['index']}/main/simple",
        PIP_FIND_LINKS=str(world["wheels"]),
        **extra,
    )
    return environ


def install_as_the_official_toolkit_does(world, directory: Path, code: Path) -> dict:
    environment = copy_of(world["template"], directory / "pip-env")
    # sagemaker-training: "python -m pip install . -r requirements.txt" for a package,
    # "python -m pip install -r requirements.txt" otherwise, in the code directory.
    command = [str(python_of(environment)), "-m", "pip", "install"]
    command += ["."] if (code / "setup.py").exists() else []
    result = subprocess.run(
        [*command, "-r", "requirements.txt"],
        cwd=code,
        env=environ_for(world, directory / "pip-home"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return installed(environment)


def train_in(environment: Path, directory: Path, code: Path, environ: dict):
    """Runs the real ``train`` of ``environment`` for a job in ``directory`` whose code is ``code``."""
    base = directory / "job" / "opt" / "ml"
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (base / "input" / "data").mkdir()
    (config / "hyperparameters.json").write_text(json.dumps({"sagemaker_program": json.dumps(PROGRAM)}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    (config / "inputdataconfig.json").write_text("{}")
    shutil.copytree(code, base / "code")
    return subprocess.run(
        [str(python_of(environment)), "-m", "sagemaker_mxnet_container"],
        cwd=directory,
        env={**environ, "SAGEMAKER_BASE_DIR": str(base)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def install_through_train(world, directory: Path, code: Path) -> tuple:
    environment = copy_of(world["template"], directory / "train-env")
    result = train_in(environment, directory, code, environ_for(world, directory / "train-home"))
    assert result.returncode == 0, result.stderr[-4000:]
    return installed(environment), result.stderr


@pytest.mark.parametrize("case", CASES)
def test_train_installs_the_same_distributions_as_pip(world, tmp_path, case):
    files = files_of(world, case)
    by_pip = install_as_the_official_toolkit_does(world, tmp_path, lay_out(tmp_path / "pip-code", files))
    by_train, log = install_through_train(world, tmp_path, lay_out(tmp_path / "train-code", files))

    def versions(found):
        return {name: (dist["version"], dist["editable"]) for name, dist in found.items()}

    assert versions(by_train) == versions(by_pip)
    assert "with uv" in log
    changed = {name for name, dist in by_train.items() if world["baseline"].get(name) != dist}
    assert changed, "the case installed nothing"
    assert {by_train[name]["installer"] for name in changed} == {"uv"}


def test_the_site_pip_conf_of_the_jobs_environment_is_honoured(world, tmp_path):
    """pip.conf at the environment's own prefix (sys.prefix), the level no other test reaches."""
    code = lay_out(tmp_path / "code", {"requirements.txt": "smmx-only-in-index\n"})
    environment = copy_of(world["template"], tmp_path / "train-env")
    (environment / "pip.conf").write_text(f"[global]\nindex-url = {world['index']}/main/simple\n")
    environ = environ_for(world, tmp_path / "home")
    # Only the environment's pip.conf names the index that holds the package.
    del environ["PIP_CONFIG_FILE"], environ["PIP_INDEX_URL"]

    result = train_in(environment, tmp_path, code, environ)

    assert result.returncode == 0, result.stderr[-3000:]
    assert installed(environment)["smmx-only-in-index"]["installer"] == "uv"


def test_a_uv_that_cannot_start_leaves_the_install_to_pip(world, tmp_path):
    code = lay_out(tmp_path / "code", {"requirements.txt": "smmx-alpha==1.0\n"})
    environment = copy_of(world["template"], tmp_path / "train-env")
    broken = environment / "bin" / "uv"
    broken.unlink()
    broken.write_text("not a program\n")  # found, but not executable

    result = train_in(environment, tmp_path, code, environ_for(world, tmp_path / "home"))

    assert result.returncode == 0, result.stderr[-3000:]
    assert "uv could not install requirements.txt (exit code 127): error: uv could not be started" in result.stderr
    assert installed(environment)["smmx-alpha"]["installer"] == "pip"
