"""Bad configuration through the real ``train``: a non-zero exit and an ``output/failure`` whose
first line names the file and the problem, before any user code runs."""

import pytest
from conftest import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, FAKE_SESSION_TOKEN

REASON_SHOWN = 1024
PROGRAM = "open(os.path.join(MARKERS, 'ran'), 'w').close()\n"


def _failed_with(job, run, *phrases):
    assert run.returncode == 1, run.stderr
    assert not job.succeeded
    head = job.failure[:REASON_SHOWN]
    for phrase in phrases:
        assert phrase in head.splitlines()[0], head


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "is not valid JSON"),
        ("", "is empty"),
        ("[1, 2]", "must hold a JSON object, not a list"),
    ],
)
@pytest.mark.parametrize("name", ["hyperparameters.json", "resourceconfig.json", "inputdataconfig.json"])
def test_a_malformed_configuration_file_is_named_with_its_problem(code_job, run_train, name, content, problem):
    job = code_job(PROGRAM)
    job.write_config(name, content)

    run = run_train(job)

    _failed_with(job, run, str(job.config_dir / name), problem)
    assert not (code_job.markers / "ran").exists()


@pytest.mark.parametrize("name", ["hyperparameters.json", "resourceconfig.json", "inputdataconfig.json"])
def test_a_missing_configuration_file_is_named(code_job, run_train, name):
    job = code_job(PROGRAM)
    (job.config_dir / name).unlink()

    run = run_train(job)

    _failed_with(job, run, str(job.config_dir / name), "is missing")


@pytest.mark.parametrize(
    "resource_config, problem",
    [
        ({"hosts": ["algo-1"]}, "'current_host' must be this host's name"),
        ({"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]}, "current_host 'algo-3' is not one of the hosts"),
        ({"current_host": "algo-1", "hosts": []}, "'hosts' must be a non-empty list"),
    ],
)
def test_a_resource_config_of_the_wrong_shape_says_what_is_wrong(code_job, run_train, resource_config, problem):
    job = code_job(PROGRAM)
    job.write_config("resourceconfig.json", resource_config)

    run = run_train(job)

    _failed_with(job, run, "resourceconfig.json", problem)


def test_a_channel_without_its_data_directory_is_named(code_job, run_train):
    job = code_job(PROGRAM)
    job.write_config("inputdataconfig.json", {"train": {"TrainingInputMode": "File"}})

    run = run_train(job)

    _failed_with(job, run, "channel 'train'", str(job.channel("train")), "does not exist")


def test_a_missing_entry_point_is_named_with_what_the_code_holds(code_job, run_train):
    job = code_job(PROGRAM, {"sagemaker_program": "mnist.py"})

    run = run_train(job)

    _failed_with(job, run, "entry point 'mnist.py' not found", "it holds: train.py")


def test_a_hand_written_unencoded_configuration_still_runs(code_job, run_train):
    job = code_job("import sys\nprint(sys.argv[1:])\n")
    # People write these by hand without the platform's JSON-in-string encoding.
    job.write_config("hyperparameters.json", {"sagemaker_program": "train.py", "epochs": 3, "optimizer": "adam"})

    run = run_train(job)

    assert run.returncode == 0, run.stderr
    assert "['--epochs', '3', '--optimizer', 'adam']" in run.stdout


def test_an_unknown_reserved_hyperparameter_is_logged_once_as_ignored(code_job, run_train):
    job = code_job(PROGRAM, {"sagemaker_shiny_new_option": True})

    run = run_train(job)

    assert run.returncode == 0, run.stderr
    assert run.stderr.count("Ignoring hyperparameter sagemaker_shiny_new_option") == 1


@pytest.mark.parametrize(
    ("option", "feature"),
    [
        ("sagemaker_distributed_dataparallel_enabled", "SageMaker distributed data parallel"),
        ("sagemaker_multi_worker_mirrored_strategy_enabled", "MultiWorkerMirroredStrategy"),
        ("sagemaker_pytorch_xla_multi_worker_enabled", "PyTorch/XLA"),
        ("sagemaker_torch_distributed_enabled", "torch.distributed"),
    ],
)
def test_an_unsupported_reserved_option_ends_the_job_at_once_naming_it(code_job, run_train, option, feature):
    job = code_job(PROGRAM, {option: True})

    run = run_train(job)

    assert run.returncode == 1
    first_line = job.failure.splitlines()[0]
    assert first_line.startswith(f"hyperparameter {option} is not supported by this image")
    assert feature in first_line
    assert not (code_job.markers / "ran").exists()


def test_an_unsupported_option_that_is_switched_off_changes_nothing(code_job, run_train):
    job = code_job(PROGRAM, {"sagemaker_distributed_dataparallel_enabled": False})

    run = run_train(job)

    assert run.returncode == 0, run.stderr


def test_no_secret_reaches_a_log_or_the_failure_file(code_job, run_train):
    job = code_job(
        "import sys\nprint('training'); raise SystemExit('failed with ' + sys.argv[-1])\n",
        {"sagemaker_container_log_level": "DEBUG", "api_token": "tok-8c1d2e3f4a5b6c7d"},
    )
    secrets = {
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_ACCESS_KEY,
        "AWS_SESSION_TOKEN": FAKE_SESSION_TOKEN,
        "WANDB_API_KEY": "0123456789abcdef0123456789abcdef01234567",
    }

    run = run_train(job, env=secrets)

    assert run.returncode == 1
    # The program printed the token into its own error; the failure file still masks it.
    assert "failed with ****" in job.failure
    for secret in [*secrets.values(), "tok-8c1d2e3f4a5b6c7d"]:
        assert secret not in job.failure
        assert secret not in run.stderr.replace("failed with tok-8c1d2e3f4a5b6c7d", "")
        assert secret not in run.stdout


def test_a_failed_job_writes_only_inside_its_own_tree(code_job, run_train, tmp_path):
    job = code_job("raise ValueError('boom')\n")
    before = {p for p in tmp_path.rglob("*") if not p.is_relative_to(job.base)}

    run_train(job, cwd=tmp_path)

    after = {p for p in tmp_path.rglob("*") if not p.is_relative_to(job.base)}
    assert after == before
    assert sorted(p.name for p in job.output_dir.iterdir()) == ["data", "failure", "intermediate"]
