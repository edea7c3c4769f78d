"""Script mode seen from inside the user's program: its arguments, its SM_* environment, and the
kinds of entry point it can be (a Python file, a package with setup.py, a shell script)."""

import json
import os
import sys

from conftest import MNIST_SUBSET

from sagemaker_mxnet_container import local

DUMP = """
import json, os, sys
shown = ("PYTHONPATH", "OMP_NUM_THREADS", "CURRENT_HOST", "SAGEMAKER_JOB_NAME", "SAGEMAKER_REGION", "PS_VERBOSE")
keys = [k for k in os.environ if k.startswith(("SM_", "DMLC_")) or k in shown]
with open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w") as stream:
    json.dump({"argv": sys.argv[1:], "cwd": os.getcwd(), "env": {k: os.environ[k] for k in keys}}, stream)
"""


def _seen(job):
    return json.loads((job.model_dir / "seen.json").read_text())


def test_hyperparameters_become_sorted_arguments_as_pythons_str_of_their_values(code_job, run_train):
    # As sagemaker-training passes them: scripts compare with 'True' and parse lists with ast.literal_eval.
    job = code_job(
        DUMP,
        {"learning-rate": 0.1, "epochs": 5, "optimizer": "sgd", "layers": [64, 32], "use-bias": True, "k": None},
    )

    run = run_train(job)

    assert run.returncode == 0, run.stderr
    assert _seen(job)["argv"] == [
        "--epochs", "5",
        "-k", "",
        "--layers", "[64, 32]",
        "--learning-rate", "0.1",
        "--optimizer", "sgd",
        "--use-bias", "True",
    ]  # fmt: skip


def test_reserved_hyperparameters_are_not_passed_to_the_program(code_job, run_train):
    reserved = {"sagemaker_container_log_level": 10, "sagemaker_job_name": "job-1", "sagemaker_estimator_module": "m"}
    # Automatic model tuning adds the objective to every trial's hyperparameters.
    job = code_job(DUMP, {"epochs": 1, "_tuning_objective_metric": "validation:accuracy", **reserved})

    run = run_train(job)

    assert run.returncode == 0, run.stderr
    seen = _seen(job)
    assert seen["argv"] == ["--epochs", "1"]
    assert json.loads(seen["env"]["SM_HPS"]) == {"epochs": 1}
    assert json.loads(seen["env"]["SM_FRAMEWORK_PARAMS"]) == {"sagemaker_estimator_module": "m"}
    assert seen["env"]["SAGEMAKER_JOB_NAME"] == "job-1"


def test_sagemaker_program_in_the_environment_names_the_entry_point(make_job, run_train):
    # AWS's "extend the image" pattern: the Dockerfile sets ENV SAGEMAKER_PROGRAM, the code is in code/.
    job = make_job({"epochs": 2})
    job.code_dir.mkdir()
    (job.code_dir / "entry.py").write_text("import os\nMARKERS = ''\n" + DUMP)

    run = run_train(job, env={"SAGEMAKER_PROGRAM": "entry.py"})

    assert run.returncode == 0, run.stderr
    assert _seen(job)["argv"] == ["--epochs", "2"]
    assert _seen(job)["env"]["SM_USER_ENTRY_POINT"] == "entry.py"


def test_the_program_gets_the_sagemaker_training_environment(code_job):
    ports = {"sagemaker_parameter_server_port": local.free_port(), "sagemaker_liveness_port": local.free_port()}
    hyperparameters = {"lr": 0.5, "sagemaker_parameter_server_enabled": True, "_ps_verbose": "1", **ports}
    jobs = {
        host: code_job(
            DUMP,
            hyperparameters,
            channels={"train": MNIST_SUBSET / "train", "test": MNIST_SUBSET / "test"},
            hosts=("algo-1", "algo-2"),
            current_host=host,
            name=host,
        )
        for host in ("algo-1", "algo-2")
    }

    # Both hosts run for real, on loopback, as train-local runs them.
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "TRAINING_JOB_NAME": "mnist-1"}
    codes = local.run_hosts({host: str(job.base) for host, job in jobs.items()}, environ)

    assert codes == {"algo-1": 0, "algo-2": 0}
    job = jobs["algo-2"]
    seen = _seen(job)
    env = seen["env"]
    base = str(job.base)
    assert seen["cwd"] == str(job.code_dir)
    assert env["SM_MODEL_DIR"] == f"{base}/model"
    assert env["SM_CHANNELS"] == '["test","train"]'
    assert env["SM_CHANNEL_TRAIN"] == f"{base}/input/data/train"
    assert env["SM_CHANNEL_TEST"] == f"{base}/input/data/test"
    assert env["SM_HP_LR"] == "0.5"
    assert json.loads(env["SM_HPS"]) == {"lr": 0.5, "_ps_verbose": "1"}
    assert json.loads(env["SM_HOSTS"]) == ["algo-1", "algo-2"]
    assert env["SM_CURRENT_HOST"] == env["CURRENT_HOST"] == "algo-2"
    assert env["SM_NUM_GPUS"] == "0"
    assert int(env["SM_NUM_CPUS"]) == len(os.sched_getaffinity(0))
    assert env["SM_OUTPUT_DATA_DIR"] == f"{base}/output/data"
    assert env["SM_OUTPUT_DIR"] == f"{base}/output"
    assert env["SM_INPUT_DIR"] == f"{base}/input"
    assert env["SM_INPUT_CONFIG_DIR"] == f"{base}/input/config"
    assert env["SM_MODULE_DIR"] == f"{base}/code"
    assert json.loads(env["SM_USER_ARGS"]) == ["--_ps_verbose", "1", "--lr", "0.5"]
    assert env["SM_LOG_LEVEL"] == "20"
    assert env["SM_NETWORK_INTERFACE_NAME"] == "eth0"
    assert json.loads(env["SM_RESOURCE_CONFIG"])["current_host"] == "algo-2"
    assert set(json.loads(env["SM_INPUT_DATA_CONFIG"])) == {"train", "test"}
    # Two hosts without GPUs, the parameter server asked for: synchronous, as the MXNet toolkit sets it up.
    assert env["SM_KVSTORE"] == "dist_sync"
    assert (env["DMLC_ROLE"], env["DMLC_NUM_WORKER"], env["DMLC_PS_ROOT_URI"]) == ("worker", "2", "127.0.0.1")
    assert env["PS_VERBOSE"] == "1"
    assert env["SM_CONTEXT"] == "cpu(0)"
    assert env["OMP_NUM_THREADS"] == "1"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(job.code_dir)
    training = json.loads(env["SM_TRAINING_ENV"])
    assert training["job_name"] == "mnist-1"
    assert training["is_master"] is False
    assert training["channel_input_dirs"]["train"] == env["SM_CHANNEL_TRAIN"]
    assert training["user_entry_point"] == "train.py"


def test_a_shell_entry_point_gets_its_arguments_verbatim(make_job, run_train):
    job = make_job({"sagemaker_program": "train.sh", "message": "it's $(not run) & done"})
    job.code_dir.mkdir()
    (job.code_dir / "train.sh").write_text('printf "%s\\n" "$0" "$@" > "$SM_MODEL_DIR/args.txt"\n')

    run = run_train(job)

    assert run.returncode == 0, run.stderr
    assert (job.model_dir / "args.txt").read_text() == "./train.sh\n--message\nit's $(not run) & done\n"


def test_a_shell_entry_points_interpreter_line_chooses_its_interpreter(make_job, run_train):
    # It used to run under /bin/sh whatever its #! line said.
    job = make_job({"sagemaker_program": "train.sh"})
    job.code_dir.mkdir()
    (job.code_dir / "train.sh").write_text('#!/bin/bash\necho "bash ${BASH_VERSINFO[0]}" > "$SM_MODEL_DIR/shell.txt"\n')

    run = run_train(job)

    assert run.returncode == 0, run.stderr
    assert (job.model_dir / "shell.txt").read_text().startswith("bash ")


def test_a_package_with_setup_py_is_installed_and_run_as_a_module(make_job, run_train):
    job = make_job({"sagemaker_program": "trainer.py", "epochs": 2})
    job.code_dir.mkdir()
    (job.code_dir / "setup.py").write_text(
        "from setuptools import setup\n"
        "setup(name='smmx-test-trainer', version='1.0', py_modules=['trainer', 'helpers'])\n"
    )
    (job.code_dir / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    (job.code_dir / "trainer.py").write_text(
        "import json, os, sys\n"
        "from helpers import double\n"
        "if __name__ == '__main__':\n"
        "    with open(os.path.join(os.environ['SM_MODEL_DIR'], 'run.json'), 'w') as f:\n"
        "        json.dump({'name': __name__, 'spec': __spec__.name, 'argv': sys.argv[1:], 'x': double(2)}, f)\n"
    )

    # Offline: setuptools comes from the environment instead of a build-isolation download.
    run = run_train(job, env={"PIP_NO_BUILD_ISOLATION": "0", "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull})

    try:
        assert run.returncode == 0, run.stderr
        assert json.loads((job.model_dir / "run.json").read_text()) == {
            "name": "__main__",
            "spec": "trainer",
            "argv": ["--epochs", "2"],
            "x": 4,
        }
    finally:
        import subprocess

        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "-y", "-q", "smmx-test-trainer"], capture_output=True
        )
