"""The devices and kvstore the user's code is handed, end to end through ``train``.

No GPU exists here: nvidia-smi is a stand-in that lists GPUs, and MXNet contexts for them are
only created, never used, so the legacy module below runs anywhere.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import host_jobs, install_fake_nvidia_smi, train_environ

from sagemaker_mxnet_container import local
from sagemaker_mxnet_container.local import free_port

LEGACY_DUMP = """
import json, os

def train(context, kvstore, num_gpus, model_dir):
    with open(os.path.join(model_dir, "devices.json"), "w") as stream:
        json.dump({"context": [str(c) for c in context], "kvstore": kvstore, "num_gpus": num_gpus}, stream)
"""


def _gpus(count):
    return "\n".join(f"GPU {index}: Tesla V100-SXM2-16GB (UUID: GPU-{index:08d})" for index in range(count))


@pytest.mark.parametrize(
    "gpus, visible, hosts, expected",
    [
        (0, None, ("algo-1",), {"context": ["cpu(0)"], "kvstore": "local", "num_gpus": 0}),
        (1, None, ("algo-1",), {"context": ["gpu(0)"], "kvstore": "local", "num_gpus": 1}),
        (4, None, ("algo-1",), {"context": [f"gpu({i})" for i in range(4)], "kvstore": "device", "num_gpus": 4}),
        (4, "0,1", ("algo-1",), {"context": ["gpu(0)", "gpu(1)"], "kvstore": "device", "num_gpus": 2}),
        (0, None, ("algo-1", "algo-2"), {"context": ["cpu(0)"], "kvstore": "dist_sync", "num_gpus": 0}),
        (
            2,
            None,
            ("algo-1", "algo-2"),
            {"context": ["gpu(0)", "gpu(1)"], "kvstore": "dist_device_sync", "num_gpus": 2},
        ),
    ],
)
def test_legacy_train_gets_contexts_and_kvstore_for_the_hosts_gpus(
    make_job, tmp_path, monkeypatch, gpus, visible, hosts, expected
):
    install_fake_nvidia_smi(tmp_path, monkeypatch, stdout=_gpus(gpus))
    ports = {"sagemaker_parameter_server_port": free_port(), "sagemaker_liveness_port": free_port()}
    jobs = host_jobs(make_job, hosts, {"sagemaker_program": "legacy.py", **ports})
    for job in jobs.values():
        job.code_dir.mkdir()
        (job.code_dir / "legacy.py").write_text(LEGACY_DUMP)
    environ = train_environ(jobs[hosts[0]], {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible})

    # Several hosts run as the local runner runs them: each the real train, on loopback.
    codes = local.run_hosts({host: str(job.base) for host, job in jobs.items()}, environ)

    assert codes == {host: 0 for host in hosts}
    for job in jobs.values():
        assert json.loads((job.model_dir / "devices.json").read_text()) == expected


def test_the_kvstore_hyperparameter_overrides_the_choice(make_job, run_train):
    job = make_job({"sagemaker_program": "legacy.py", "sagemaker_kvstore": "dist_async"})
    job.code_dir.mkdir()
    (job.code_dir / "legacy.py").write_text(LEGACY_DUMP)

    run = run_train(job)

    assert run.returncode == 0, run.stderr
    assert json.loads((job.model_dir / "devices.json").read_text())["kvstore"] == "dist_async"


def test_an_unknown_kvstore_fails_the_job_naming_the_choices(make_job, run_train):
    job = make_job({"sagemaker_program": "legacy.py", "sagemaker_kvstore": "dist_turbo"})
    job.code_dir.mkdir()
    (job.code_dir / "legacy.py").write_text(LEGACY_DUMP)

    run = run_train(job)

    assert run.returncode == 1
    assert job.failure.startswith("hyperparameter sagemaker_kvstore 'dist_turbo' is not a kvstore")
    assert "dist_device_sync" in job.failure.splitlines()[0]


def test_the_train_console_script_is_installed_and_runs_the_job(make_job):
    train = shutil.which("train", path=str(Path(sys.executable).parent))
    assert train is not None
    job = make_job({"sagemaker_program": "legacy.py"})
    job.code_dir.mkdir()
    (job.code_dir / "legacy.py").write_text(LEGACY_DUMP)

    run = subprocess.run([train], env=train_environ(job), capture_output=True, text=True, timeout=120)

    assert run.returncode == 0, run.stderr
    assert job.succeeded
