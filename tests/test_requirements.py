"""requirements.txt in the user's code, installed by the real pip through the real ``train``.

No index is reachable from a test: pip reads a wheel this test builds, from a local directory.
The machine's own pip configuration is switched off so the test means the same everywhere.
"""

import base64
import hashlib
import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest

from sagemaker_mxnet_container.outcome import REASON_SHOWN

PROGRAM = "train_script.py"


def build_wheel(directory: Path, name: str, version: str, value: str) -> Path:
    """A pure-Python wheel: the package, and the three dist-info files pip requires."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = {value!r}\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def pip_offline(wheels: Path) -> dict:
    return {
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        # This machine's /etc/xdg/pip/pip.conf adds links and constraints; a clean machine has none.
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


@pytest.fixture
def package_name():
    """A name no real package has; uninstalled afterwards, since pip installs into this venv."""
    name = f"smmx_testpkg_{uuid.uuid4().hex[:12]}"
    yield name
    subprocess.run(
        [sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", name],
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
        capture_output=True,
        check=False,
    )


def code_with_requirements(directory: Path, requirements: str, program: str) -> Path:
    directory.mkdir()
    (directory / "requirements.txt").write_text(requirements)
    (directory / PROGRAM).write_text(program)
    return directory


def test_requirements_are_installed_before_the_user_program_runs(tmp_path, make_job, run_train, package_name):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels, package_name, "1.0", "installed by pip")
    source = code_with_requirements(
        tmp_path / "source",
        f"{package_name}==1.0\n",
        f"import os\nimport {package_name}\n"
        f"with open(os.path.join(os.environ['SM_MODEL_DIR'], 'marker'), 'w') as stream:\n"
        f"    stream.write({package_name}.VALUE)\n",
    )
    job = make_job({"sagemaker_program": PROGRAM, "sagemaker_submit_directory": str(source)})

    result = run_train(job, env=pip_offline(wheels))

    assert result.returncode == 0, result.stderr[-3000:]
    assert job.succeeded
    assert (job.model_dir / "marker").read_text() == "installed by pip"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "show", package_name],
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
        capture_output=True,
        text=True,
    )
    assert "Version: 1.0" in installed.stdout


def test_a_requirement_pip_cannot_find_fails_the_job_with_pips_error(tmp_path, make_job, run_train, package_name):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    missing = f"{package_name}_missing"
    source = code_with_requirements(
        tmp_path / "source",
        f"{missing}==1.0\n",
        "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'marker'), 'w').close()\n",
    )
    job = make_job({"sagemaker_program": PROGRAM, "sagemaker_submit_directory": str(source)})

    result = run_train(job, env=pip_offline(wheels))

    assert result.returncode != 0
    assert not job.succeeded
    failure = job.failure
    assert failure is not None, result.stderr[-3000:]
    shown = failure[:REASON_SHOWN]
    assert shown.startswith("pip could not install requirements.txt (exit code 1):")
    assert f"ERROR: No matching distribution found for {missing}==1.0" in shown
    assert not (job.model_dir / "marker").exists()
