"""requirements.txt (and a setup.py package) in the user's code, installed through the real
``train``: with uv wherever uv can do what pip would, with pip where it cannot (the log says why)
or when told to, and how installs fail and stop.

The packages are built by the tests (tests/packages.py) and served from a local directory or an
index the test starts on 127.0.0.1. pip's configuration is the test's own: PIP_CONFIG_FILE is
/dev/null (no pip.conf is read) and the PIP_* variables are those given.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import RUN_MARKER, processes_of_run, train_command, train_environ
from package_index import IndexServer
from packages import module_name, simple_index, wheel

from sagemaker_mxnet_container.outcome import REASON_SHOWN

PROGRAM = "train_script.py"


def offline(wheels: Path, **extra: str) -> dict:
    return {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels), **extra}


def importing(name: str) -> str:
    """A user program that imports ``name`` and writes its VALUE to the model directory."""
    module = module_name(name)
    return (
        f"import os\nimport {module}\n"
        f"with open(os.path.join(os.environ['SM_MODEL_DIR'], 'value'), 'w') as stream:\n"
        f"    stream.write({module}.VALUE)\n"
    )


def compiled_at_install(name: str) -> bool:
    """Whether the install of ``name`` byte-compiled it: pip records the .pyc files it writes."""
    files = f"importlib.metadata.distribution({name!r}).files"
    probe = f"import importlib.metadata; print(any(str(f).endswith('.pyc') for f in {files}))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return result.stdout.strip() == "True"


def installer_of(name: str) -> str:
    """Which tool installed ``name`` into this venv, as its INSTALLER file says ("uv" or "pip")."""
    probe = f"import importlib.metadata as m; print(m.distribution({name!r}).read_text('INSTALLER').strip())"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(autouse=True)
def only_the_tests_pip_settings(monkeypatch):
    """This machine's PIP_* variables (a CA bundle, a timeout, wheel directories) stay out."""
    for name in list(os.environ):
        if name.startswith(("PIP_", "UV_")):
            monkeypatch.delenv(name)


@pytest.fixture
def package_name():
    """A name no real package has; uninstalled afterwards, since the install goes into this venv."""
    name = f"smmx-testpkg-{uuid.uuid4().hex[:12]}"
    yield name
    subprocess.run(
        [sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", name, f"{name}-dep"],
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
        capture_output=True,
        check=False,
    )


def code_job(make_job, tmp_path: Path, requirements: str, program: str):
    job = make_job({"sagemaker_program": PROGRAM})
    job.code_dir.mkdir()
    (job.code_dir / "requirements.txt").write_text(requirements)
    (job.code_dir / PROGRAM).write_text(program)
    return job


def test_requirements_are_installed_with_uv_before_the_user_program_runs(tmp_path, make_job, run_train, package_name):
    wheels = tmp_path / "wheels"
    wheel(wheels, package_name, "1.0", value="installed by uv")
    wheel(wheels, package_name, "2.0")
    job = code_job(make_job, tmp_path, f"{package_name}<2\n", importing(package_name))

    result = run_train(job, env=offline(wheels))

    assert result.returncode == 0, result.stderr[-3000:]
    assert (job.model_dir / "value").read_text() == "installed by uv"
    assert "Installing requirements.txt with uv (from pip's configuration: --find-links, --no-index)" in result.stderr
    assert installer_of(package_name) == "uv"
    # Unlike pip, uv compiles nothing at install (docs/compatibility.md).
    assert not compiled_at_install(package_name)


def test_sagemaker_mxnet_installer_pip_installs_with_pip(tmp_path, make_job, run_train, package_name):
    wheels = tmp_path / "wheels"
    wheel(wheels, package_name, "1.0", value="installed by pip")
    job = code_job(make_job, tmp_path, f"{package_name}\n", importing(package_name))

    result = run_train(job, env=offline(wheels, SAGEMAKER_MXNET_INSTALLER="pip"))

    assert result.returncode == 0, result.stderr[-3000:]
    assert (job.model_dir / "value").read_text() == "installed by pip"
    assert "Installing requirements.txt with pip (SAGEMAKER_MXNET_INSTALLER=pip)" in result.stderr
    assert installer_of(package_name) == "pip"
    assert compiled_at_install(package_name)


def test_a_requirement_no_index_has_fails_the_job_with_pips_error_after_uvs(
    tmp_path, make_job, run_train, package_name
):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    missing = f"{package_name}-missing"
    job = code_job(make_job, tmp_path, f"{missing}==1.0\n", "raise SystemExit('the program ran')\n")

    result = run_train(job, env=offline(wheels))

    assert result.returncode == 1
    shown = job.failure[:REASON_SHOWN]
    # uv failed first; pip then tried the same install, and its words come first in the reason.
    assert "uv could not install requirements.txt (exit code 1): error: " in result.stderr
    assert shown.startswith("pip could not install requirements.txt (exit code 1):\n")
    assert f"ERROR: No matching distribution found for {missing}==1.0" in shown
    assert "\nuv, tried first: uv could not install requirements.txt (exit code 1):\nerror: " in shown
    assert not (job.model_dir / "value").exists()


@pytest.mark.parametrize(
    "requirements_line, environ, reason",
    [
        pytest.param(
            "--prefer-binary\n", {}, "requirements.txt line 1 uses --prefer-binary, which uv does not support",
            id="requirements-file",
        ),
        pytest.param(
            "", {"PIP_PREFER_BINARY": "1"}, "pip's configuration sets --prefer-binary, which uv does not support",
            id="pip-configuration",
        ),
    ],
)  # fmt: skip
def test_a_setting_uv_cannot_honour_installs_with_pip_and_the_log_says_which(
    tmp_path, make_job, run_train, package_name, requirements_line, environ, reason
):
    wheels = tmp_path / "wheels"
    wheel(wheels, package_name, "1.0")
    job = code_job(make_job, tmp_path, f"{requirements_line}{package_name}\n", importing(package_name))

    result = run_train(job, env=offline(wheels, **environ))

    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Installing requirements.txt with pip: {reason}" in result.stderr
    assert installer_of(package_name) == "pip"


def test_a_package_and_its_requirements_are_installed_in_one_install(tmp_path, make_job, run_train, package_name):
    wheels = tmp_path / "wheels"
    wheel(wheels, f"{package_name}-dep", "1.0", value="named by requirements.txt")
    job = make_job({"sagemaker_program": "trainer.py"})
    job.code_dir.mkdir()
    (job.code_dir / "setup.py").write_text(
        f"from setuptools import setup\nsetup(name={package_name!r}, version='1.0', py_modules=['trainer'])\n"
    )
    (job.code_dir / "requirements.txt").write_text(f"{package_name}-dep\n")
    (job.code_dir / "trainer.py").write_text(
        "if __name__ == '__main__':\n    " + importing(f"{package_name}-dep").replace("\n", "\n    ")
    )

    # Offline: setuptools comes from this venv instead of a build-isolation download.
    result = run_train(job, env=offline(wheels, PIP_NO_BUILD_ISOLATION="0"))

    assert result.returncode == 0, result.stderr[-3000:]
    assert "Installing the code's package (setup.py) and requirements.txt with uv" in result.stderr
    assert (job.model_dir / "value").read_text() == "named by requirements.txt"
    assert installer_of(package_name) == "uv"


def test_sigterm_while_uv_waits_for_the_index_ends_the_job_as_stopped_and_leaves_nothing_running(
    tmp_path, make_job, package_name
):
    job = code_job(make_job, tmp_path, f"{package_name}\n", "raise SystemExit('the program ran')\n")
    marker = uuid.uuid4().hex
    with IndexServer(tmp_path, hold=True) as index:
        environ = {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_INDEX_URL": f"{index.url}/simple",
            RUN_MARKER: marker,
        }
        train = subprocess.Popen(
            train_command(),
            env=train_environ(job, environ),
            cwd=job.base.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not index.fetched(package_name):
            assert train.poll() is None, train.stderr.read()
            assert time.monotonic() < deadline, "the installer never asked the index"
            time.sleep(0.05)

        train.send_signal(signal.SIGTERM)
        _, stderr = train.communicate(timeout=60)

    assert train.returncode == 143, stderr[-3000:]
    assert "with uv" in stderr
    assert job.failure.startswith("Training job stopped: SIGTERM received.")
    assert "requirements.txt" in job.failure
    assert processes_of_run(marker) == []


def test_an_index_password_reaches_uv_but_no_log(tmp_path, make_job, run_train, package_name):
    password = f"pw-{uuid.uuid4().hex}"
    simple_index(tmp_path / "index", [wheel(tmp_path / "wheels", package_name, "1.0", value="behind a password")])
    job = code_job(make_job, tmp_path, f"{package_name}\n", importing(package_name))
    with IndexServer(tmp_path / "index", credentials=("alice", password)) as index:
        url = f"http://alice:{password}@{index.host}/simple"
        result = run_train(job, env={"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": url})

    assert result.returncode == 0, result.stderr[-3000:]
    assert (job.model_dir / "value").read_text() == "behind a password"
    assert installer_of(package_name) == "uv"
    assert password not in result.stdout + result.stderr


def test_a_shell_entry_point_gets_nothing_installed_as_with_the_sagemaker_training_toolkit(
    tmp_path, make_job, run_train
):
    job = make_job({"sagemaker_program": "train.sh"})
    job.code_dir.mkdir()
    # Neither could be installed: were either tried, the job would fail.
    (job.code_dir / "requirements.txt").write_text("smmx-never-installed==1.0\n")
    (job.code_dir / "setup.py").write_text("raise SystemExit('setup.py ran')\n")
    (job.code_dir / "train.sh").write_text('touch "$SM_MODEL_DIR/ran"\n')

    result = run_train(job, env=offline(tmp_path))

    assert result.returncode == 0, result.stderr[-3000:]
    assert (job.model_dir / "ran").exists()
    assert (
        "Not installing the code's package (setup.py) and requirements.txt: train.sh is run as a command, "
        "for which the sagemaker-training toolkit installs nothing" in result.stderr
    )
