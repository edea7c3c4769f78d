"""The claims of docs/security.md that no other test proves: credentials in pip URLs stay out of
every log and the failure file, no shell is ever involved, hostile hyperparameters are inert
text, and what the job writes is not writable by others."""

import ast
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

import sagemaker_mxnet_container

PACKAGE = Path(sagemaker_mxnet_container.__file__).parent
TOKEN = "tok-5e6f7a8b9c0d1e2f"
# Nothing listens on port 9 (discard) on loopback: every fetch fails at once.
PIP_OFFLINE = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_RETRIES": "0",
    "PIP_TIMEOUT": "2",
    "PIP_NO_CACHE_DIR": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}


@pytest.mark.parametrize(
    "requirements, environ",
    [
        pytest.param(f"--index-url http://alice:{TOKEN}@127.0.0.1:9/simple\nsmmx-absent==1.0\n", {}, id="index-url"),
        pytest.param(f"smmx-absent @ https://bob:{TOKEN}@127.0.0.1:9/smmx-absent-1.0.tar.gz\n", {}, id="direct-url"),
        pytest.param(
            "smmx-absent==1.0\n",
            {"PIP_INDEX_URL": f"http://{TOKEN}@127.0.0.1:9/simple"},
            id="token-only-index-in-environment",
        ),
    ],
)
def test_credentials_in_pip_urls_never_reach_a_log_or_the_failure(code_job, run_checked, requirements, environ):
    job = code_job("open(os.path.join(MARKERS, 'ran'), 'w').close()\n", requirements=requirements)

    finished = run_checked(job, {**PIP_OFFLINE, **environ}, secrets=(TOKEN,), within=90)

    assert finished.exit_code == 1
    assert finished.reason == "pip could not install requirements.txt (exit code 1):"
    assert "127.0.0.1" in finished.stdout + finished.stderr
    assert not (code_job.markers / "ran").exists()


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(function) -> str:
    if isinstance(function, ast.Attribute):
        return f"{_name(function.value)}.{function.attr}"
    return function.id if isinstance(function, ast.Name) else ""


def test_no_module_of_the_toolkit_runs_anything_through_a_shell():
    offenders = []
    # Recursive: subpackages (horovod/, cluster/) are the toolkit too.
    for path in sorted(PACKAGE.rglob("*.py")):
        for call in _calls(ast.parse(path.read_text(), str(path))):
            name = _name(call.func)
            if name in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"):
                offenders.append(f"{path.relative_to(PACKAGE)}:{call.lineno} {name}")
            for keyword in call.keywords:
                if keyword.arg == "shell" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                ):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{call.lineno} shell=")
    assert offenders == []


HOSTILE = {
    "cmd": "$(touch PWNED)",
    "semicolon": "; touch PWNED",
    "backticks": "`touch PWNED`",
    "newline": "x\n--sagemaker_program evil.py",
    "dash": "--epochs=1000",
    "glob": "*",
}


@pytest.mark.parametrize("entry_point", ["train.py", "train.sh"])
def test_hostile_hyperparameters_reach_the_program_as_inert_text(make_job, run_checked, entry_point):
    job = make_job({"sagemaker_program": entry_point, **HOSTILE})
    job.code_dir.mkdir()
    (job.code_dir / "train.py").write_text(
        "import json, os, sys\n"
        "open(os.path.join(os.environ['SM_MODEL_DIR'], 'argv.json'), 'w').write(json.dumps(sys.argv[1:]))\n"
    )
    # A shell entry point hands its arguments on untouched, as "$@" must.
    (job.code_dir / "train.sh").write_text('exec python3 "$(dirname "$0")/train.py" "$@"\n')

    finished = run_checked(job, {"PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"})

    assert finished.exit_code == 0, finished.stderr[-3000:]
    argv = json.loads((job.model_dir / "argv.json").read_text())
    assert argv == [item for key in sorted(HOSTILE) for item in (f"--{key}", HOSTILE[key])]
    assert not any(path.name == "PWNED" for path in job.base.parent.rglob("*"))


def test_what_the_job_writes_is_not_writable_by_group_or_others(make_job, run_checked, tmp_path):
    # Members that ask for world-writable and setuid modes.
    archive = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, mode, data in (("train.py", 0o777, b"raise SystemExit(2)\n"), ("tool.sh", 0o6777, b"")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    job = make_job({"sagemaker_program": "train.py", "sagemaker_submit_directory": str(archive)})
    previous = os.umask(0o022)
    try:
        finished = run_checked(job)
    finally:
        os.umask(previous)

    assert finished.exit_code == 2
    written = [
        job.output_dir / "failure",
        job.output_dir / "data",
        job.output_dir / "intermediate",
        job.model_dir,
        job.code_dir,
        *job.code_dir.rglob("*"),
    ]
    for path in written:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & (stat.S_IWGRP | stat.S_IWOTH | stat.S_ISUID | stat.S_ISGID) == 0, (path, oct(mode))


@pytest.mark.parametrize(
    "text, masked",
    [
        ("indexes: https://alice:tok-1@pypi.example/simple", "indexes: https://****@pypi.example/simple"),
        ("pkg @ https://bob:tok-2@files.example/pkg.tar.gz", "pkg @ https://****@files.example/pkg.tar.gz"),
        ("git+https://ghp_0123456789@github.com/o/r.git", "git+https://****@github.com/o/r.git"),
        ("'http://user:p%40ss@127.0.0.1:9/simple'", "'http://****@127.0.0.1:9/simple'"),
        # Not credentials: an @ after the host, an e-mail address.
        ("https://example.com/a@b and ml@example.com", "https://example.com/a@b and ml@example.com"),
    ],
)
def test_the_user_info_of_every_url_is_masked(text, masked):
    from sagemaker_mxnet_container.logs import Redactor

    assert Redactor()(text) == masked


# Secrets in the forms the masking used to miss (issue 16, item 6), through the real train.
QUOTED = 'pa\\ss"w0rd\'x'
NESTED = "nested-s3cr3t"
PIN = 87654321
SECRET_HYPERPARAMETERS = {"api_key": QUOTED, "db_credentials": {"user": "admin", "password": NESTED}, "pin": PIN}
SHOWS_SECRETS = {
    "script": """
import json, sys
hps = json.loads(os.environ["SM_HPS"])
print("loaded", repr(hps), json.dumps(hps), file=sys.stderr)
raise KeyError(hps["api_key"] + " " + hps["db_credentials"]["password"] + " " + str(hps["pin"]))
""",
    "legacy": """
import sys
def train(hyperparameters):
    print("loaded", repr(hyperparameters), file=sys.stderr)
    raise KeyError((hyperparameters["api_key"], hyperparameters["db_credentials"], hyperparameters["pin"]))
""",
}


def forms_of(secret) -> set:
    text = str(secret)
    return {text, repr(text)[1:-1], json.dumps(text)[1:-1], repr(repr(text))[1:-1], json.dumps(json.dumps(text))[1:-1]}


@pytest.mark.parametrize("mode", SHOWS_SECRETS)
def test_no_form_of_a_secret_reaches_the_failure_or_trains_own_log(code_job, run_checked, mode):
    job = code_job(SHOWS_SECRETS[mode], SECRET_HYPERPARAMETERS)

    finished = run_checked(job, within=60)

    assert finished.exit_code == 1
    assert finished.reason.startswith("KeyError: "), finished.failure
    own_log = [line for line in finished.stderr.splitlines() if " sagemaker_mxnet_container." in line]
    assert any("Training failed: KeyError: " in line for line in own_log)
    for secret in (QUOTED, NESTED, PIN):
        for form in forms_of(secret):
            assert form not in finished.failure, (form, finished.failure)
            assert not any(form in line for line in own_log), form
    assert "****" in finished.reason
