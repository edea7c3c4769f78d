"""pip's configuration honoured through the real ``train``, as pip would honour it: each variable and
each pip.conf level points at a package index the test starts on 127.0.0.1, holding a package
built by the test that no public index has. The install must come from there, and with uv.

The site level (pip.conf in the job environment's prefix) is tested in test_installed_set.py,
which makes fresh environments. Each test has a home and XDG directories of its own and no
PIP_* variable but its own, so this machine's pip configuration plays no part.
"""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import train_command
from package_index import IndexServer, self_signed_certificate
from packages import module_name, normalized, simple_index, wheel

PROGRAM = "train_script.py"


@pytest.fixture
def package(tmp_path):
    """(name, index root): a package only the test's index has; uninstalled from this venv afterwards."""
    name = f"smmx-configured-{uuid.uuid4().hex[:10]}"
    built = wheel(tmp_path / "built", name, "1.0", value="from the test's index")
    root = tmp_path / "index"
    simple_index(root, [built])
    (root / "links").mkdir()
    (root / "links" / built.name).write_bytes(built.read_bytes())
    (root / "links" / "index.html").write_text(f'<a href="{built.name}">{built.name}</a>\n')
    simple_index(root / "empty", [])
    yield name, root
    subprocess.run(
        [sys.executable, "-m", "pip", "uninstall", "-y", "-q", name],
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
        capture_output=True,
    )


def job_for(make_job, name: str, job_name: str = "job"):
    module = module_name(name)
    job = make_job({"sagemaker_program": PROGRAM}, name=job_name)
    job.code_dir.mkdir()
    (job.code_dir / "requirements.txt").write_text(f"{name}\n")
    (job.code_dir / PROGRAM).write_text(
        f"import os, {module}\n"
        f"open(os.path.join(os.environ['SM_MODEL_DIR'], 'value'), 'w').write({module}.VALUE)\n"
    )
    return job


def isolated(tmp_path: Path, job, **variables: str) -> dict:
    environ = {name: value for name, value in os.environ.items() if not name.startswith(("PIP_", "UV_"))}
    environ.pop("XDG_CONFIG_HOME", None)
    (tmp_path / "home").mkdir(exist_ok=True)
    environ.update(
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_DIRS=str(tmp_path / "xdg"),
        SAGEMAKER_BASE_DIR=str(job.base),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        **variables,
    )
    return environ


def train(command, environ, job):
    return subprocess.run(command, env=environ, cwd=job.base.parent, capture_output=True, text=True, timeout=300)


def installer_of(python, name: str) -> str:
    probe = f"import importlib.metadata as m; print(m.distribution({name!r}).read_text('INSTALLER').strip())"
    return subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True).stdout.strip()


def assert_installed_from(index: IndexServer, result, job, python, name: str) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    assert (job.model_dir / "value").read_text() == "from the test's index"
    assert index.fetched(normalized(name)) or index.fetched(module_name(name))
    assert installer_of(python, name) == "uv"
    assert "Installing requirements.txt with uv" in result.stderr


@pytest.mark.parametrize(
    "variables",
    [
        pytest.param({"PIP_INDEX_URL": "{url}/simple"}, id="PIP_INDEX_URL"),
        pytest.param(
            {"PIP_INDEX_URL": "{url}/empty/simple", "PIP_EXTRA_INDEX_URL": "{url}/simple"}, id="PIP_EXTRA_INDEX_URL"
        ),
        pytest.param({"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "{url}/links/"}, id="PIP_FIND_LINKS"),
    ],
)
def test_pip_variables_point_the_install_at_the_tests_index(tmp_path, make_job, package, variables):
    name, root = package
    job = job_for(make_job, name)
    with IndexServer(root) as index:
        given = {key: value.format(url=index.url) for key, value in variables.items()}
        result = train(train_command(), isolated(tmp_path, job, PIP_CONFIG_FILE=os.devnull, **given), job)

    assert_installed_from(index, result, job, sys.executable, name)


def test_pip_trusted_host_lets_the_install_use_an_index_whose_certificate_nothing_trusts(tmp_path, make_job, package):
    name, root = package
    job, refused_job = job_for(make_job, name), job_for(make_job, name, "refused")
    certificate = self_signed_certificate(tmp_path)
    with IndexServer(root, tls=certificate) as index:
        # Without it, neither uv nor pip accepts the certificate.
        refused = train(
            train_command(),
            isolated(
                tmp_path, refused_job, PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL=f"{index.url}/simple", PIP_RETRIES="0"
            ),
            refused_job,
        )
        environ = isolated(
            tmp_path, job, PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL=f"{index.url}/simple", PIP_TRUSTED_HOST=index.host
        )
        result = train(train_command(), environ, job)

    assert refused.returncode == 1, refused.stderr[-3000:]
    # pip says only that it found no version; uv, which tried first, names the certificate.
    assert "invalid peer certificate" in refused_job.failure, refused.stderr
    assert_installed_from(index, result, job, sys.executable, name)


@pytest.mark.parametrize(
    "location",
    ["xdg/pip/pip.conf", "home/.config/pip/pip.conf", "home/.pip/pip.conf", "anywhere/given.conf"],
    ids=["global (XDG_CONFIG_DIRS, as /etc/xdg/pip/pip.conf)", "user", "user (legacy)", "PIP_CONFIG_FILE"],
)
def test_each_pip_conf_level_points_the_install_at_the_tests_index(tmp_path, make_job, package, location):
    name, root = package
    job = job_for(make_job, name)
    config = tmp_path / location
    config.parent.mkdir(parents=True, exist_ok=True)
    with IndexServer(root) as index:
        config.write_text(f"[install]\nindex-url = {index.url}/simple\n")
        extra = {"PIP_CONFIG_FILE": str(config)} if location.startswith("anywhere") else {}
        result = train(train_command(), isolated(tmp_path, job, **extra), job)

    assert_installed_from(index, result, job, sys.executable, name)
