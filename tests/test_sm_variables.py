"""sm_variables: the ``--name value`` arguments and ``SM_*`` variables the user's code receives."""

import json
import os

import pytest

from sagemaker_mxnet_container import environment, mxnet_settings, sm_variables
from sagemaker_mxnet_container.legacy import available_arguments
from sagemaker_mxnet_container.resources import Resources
from sagemaker_mxnet_container.sm_variables import to_argument, user_arguments, variable_name

HYPERPARAMETERS = {
    "batch-size": 64,
    "lr": 0.1,
    "use_bn": True,
    "optimizer": "sgd",
    "layers": {"sizes": [128, 64]},
    "note": "two words",
}
FRAMEWORK = {
    "sagemaker_program": "train.py",
    "sagemaker_submit_directory": "s3://bucket/job/source/sourcedir.tar.gz",
    "sagemaker_container_log_level": 10,
    "sagemaker_job_name": "mnist-2024",
    "sagemaker_region": "us-west-2",
}


@pytest.fixture
def job(make_job, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "part-0").write_text("data")
    return make_job(
        {**HYPERPARAMETERS, **FRAMEWORK},
        channels={"train": source, "test": source},
        hosts=("algo-2", "algo-1"),
        current_host="algo-1",
    )


@pytest.fixture
def training(job):
    env = environment.read(environment.Paths(str(job.base)))
    settings = mxnet_settings.choose(len(env.hosts), 2)
    return sm_variables.training_env(env, Resources(num_gpus=2, num_cpus=8), settings, "train")


@pytest.fixture
def code_dir(job):
    return str(job.code_dir)


@pytest.fixture
def variables(training, code_dir, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return sm_variables.variables(training, code_dir)


# --- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "argument"),
    [
        ("sgd", "sgd"),
        ("0.1", "0.1"),
        ("two words", "two words"),
        ('"quoted"', '"quoted"'),
        (0.1, "0.1"),
        (64, "64"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        ([1, 2], "[1, 2]"),
        ({"a": {"b": 1}}, '{"a": {"b": 1}}'),
    ],
)
def test_strings_are_passed_raw_and_other_values_as_json(value, argument):
    assert to_argument(value) == argument


def test_user_arguments_are_sorted_by_name_in_name_value_pairs():
    assert user_arguments(HYPERPARAMETERS) == [
        "--batch-size",
        "64",
        "--layers",
        '{"sizes": [128, 64]}',
        "--lr",
        "0.1",
        "--note",
        "two words",
        "--optimizer",
        "sgd",
        "--use_bn",
        "true",
    ]


def test_no_hyperparameters_means_no_arguments():
    assert user_arguments({}) == []


@pytest.mark.parametrize(
    ("key", "name"),
    [("batch-size", "BATCH_SIZE"), ("lr", "LR"), ("train.files", "TRAIN_FILES"), ("Mixed_Case", "MIXED_CASE")],
)
def test_variable_names_are_upper_case_with_other_characters_as_underscores(key, name):
    assert variable_name(key) == name


# --- variables --------------------------------------------------------------------------------


def test_every_value_is_a_string_so_it_can_go_into_an_environment(variables):
    assert all(isinstance(name, str) and isinstance(value, str) for name, value in variables.items())


def test_directories(variables, job, code_dir):
    assert variables["SM_MODEL_DIR"] == str(job.model_dir)
    assert variables["SM_OUTPUT_DIR"] == str(job.output_dir)
    assert variables["SM_OUTPUT_DATA_DIR"] == str(job.output_dir / "data")
    assert variables["SM_OUTPUT_INTERMEDIATE_DIR"] == str(job.output_dir / "intermediate")
    assert variables["SM_INPUT_DIR"] == str(job.base / "input")
    assert variables["SM_INPUT_CONFIG_DIR"] == str(job.config_dir)


def test_channels(variables, job):
    assert json.loads(variables["SM_CHANNELS"]) == ["test", "train"]
    assert variables["SM_CHANNEL_TRAIN"] == str(job.channel("train"))
    assert variables["SM_CHANNEL_TEST"] == str(job.channel("test"))


def test_hyperparameters(variables):
    assert json.loads(variables["SM_HPS"]) == HYPERPARAMETERS
    assert variables["SM_HP_BATCH_SIZE"] == "64"
    assert variables["SM_HP_LR"] == "0.1"
    assert variables["SM_HP_USE_BN"] == "true"
    assert variables["SM_HP_OPTIMIZER"] == "sgd"
    assert variables["SM_HP_NOTE"] == "two words"
    assert json.loads(variables["SM_HP_LAYERS"]) == {"sizes": [128, 64]}
    assert json.loads(variables["SM_USER_ARGS"]) == user_arguments(HYPERPARAMETERS)


def test_reserved_hyperparameters_are_framework_parameters_not_user_ones(variables):
    assert not any(name.startswith("SM_HP_SAGEMAKER") for name in variables)
    assert "--sagemaker_program" not in json.loads(variables["SM_USER_ARGS"])
    assert json.loads(variables["SM_FRAMEWORK_PARAMS"]) == FRAMEWORK


def test_hosts(variables):
    assert json.loads(variables["SM_HOSTS"]) == ["algo-1", "algo-2"]
    assert variables["SM_CURRENT_HOST"] == "algo-1"
    assert variables["SM_MASTER_HOSTNAME"] == "algo-1"
    assert variables["SM_IS_MASTER"] == "true"
    assert variables["SM_NETWORK_INTERFACE_NAME"] == "eth0"


def test_resources_and_mxnet_settings(variables):
    assert variables["SM_NUM_GPUS"] == "2"
    assert variables["SM_NUM_CPUS"] == "8"
    assert variables["SM_KVSTORE"] == "dist_device_sync"
    assert variables["SM_CONTEXT"] == "gpu(0),gpu(1)"


def test_job_and_module(variables):
    assert variables["SM_LOG_LEVEL"] == "10"
    assert variables["SM_JOB_NAME"] == "mnist-2024"
    assert variables["SM_MODULE_DIR"] == "s3://bucket/job/source/sourcedir.tar.gz"
    assert variables["SM_MODULE_NAME"] == "train"
    assert variables["SM_USER_ENTRY_POINT"] == "train.py"
    assert variables["SM_FRAMEWORK_MODULE"] == "sagemaker_mxnet_container.entrypoint:main"


def test_module_dir_is_the_code_dir_when_no_submit_directory_is_set(make_job, monkeypatch):
    job = make_job({"sagemaker_program": "train.py"})
    env = environment.read(environment.Paths(str(job.base)))
    training = sm_variables.training_env(env, Resources(0, 1), mxnet_settings.choose(1, 0), "train")

    result = sm_variables.variables(training, str(job.code_dir))

    assert result["SM_MODULE_DIR"] == str(job.code_dir)
    assert result["SM_IS_MASTER"] == "true"
    assert "SM_JOB_NAME" not in result


def test_config_files_are_passed_as_json(variables, job):
    assert json.loads(variables["SM_RESOURCE_CONFIG"]) == json.loads(
        (job.config_dir / "resourceconfig.json").read_text()
    )
    assert json.loads(variables["SM_INPUT_DATA_CONFIG"]) == json.loads(
        (job.config_dir / "inputdataconfig.json").read_text()
    )


def test_training_env_parses_and_carries_everything(variables, job):
    training = json.loads(variables["SM_TRAINING_ENV"])

    assert training["kvstore"] == "dist_device_sync"
    assert training["context"] == "gpu(0),gpu(1)"
    assert training["hyperparameters"] == HYPERPARAMETERS
    assert training["channel_input_dirs"] == {"train": str(job.channel("train")), "test": str(job.channel("test"))}
    assert training["hosts"] == ["algo-1", "algo-2"]
    assert training["num_gpus"] == 2
    assert training["log_level"] == 10
    assert training["is_master"] is True


def test_training_env_is_enough_for_the_legacy_runner_to_rebuild_train_arguments(variables, job):
    arguments = available_arguments(json.loads(variables["SM_TRAINING_ENV"]))

    assert arguments["hyperparameters"] == HYPERPARAMETERS
    assert arguments["channel_input_dirs"]["train"] == str(job.channel("train"))
    assert arguments["model_dir"] == str(job.model_dir)
    assert arguments["hosts"] == ["algo-1", "algo-2"]
    assert arguments["current_host"] == "algo-1"
    assert arguments["num_gpus"] == 2
    assert arguments["kvstore"] == "dist_device_sync"


def test_a_second_host_is_not_master(make_job):
    job = make_job({}, hosts=("algo-1", "algo-2"), current_host="algo-2")
    env = environment.read(environment.Paths(str(job.base)))
    training = sm_variables.training_env(env, Resources(0, 1), mxnet_settings.choose(2, 0), "train")

    result = sm_variables.variables(training, str(job.code_dir))

    assert result["SM_IS_MASTER"] == "false"
    assert result["SM_CURRENT_HOST"] == "algo-2"
    assert result["SM_KVSTORE"] == "dist_sync"
    assert result["SM_CONTEXT"] == "cpu(0)"


# --- PYTHONPATH and OMP_NUM_THREADS -----------------------------------------------------------


def test_pythonpath_is_the_code_dir_when_unset(variables, code_dir):
    assert variables["PYTHONPATH"] == code_dir


def test_pythonpath_starts_with_the_code_dir_and_keeps_the_existing_path(training, code_dir, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", f"/opt/lib{os.pathsep}/opt/more")

    result = sm_variables.variables(training, code_dir)

    assert result["PYTHONPATH"].split(os.pathsep) == [code_dir, "/opt/lib", "/opt/more"]


def test_omp_num_threads_defaults_to_the_cpus_this_container_may_use(variables):
    assert variables["OMP_NUM_THREADS"] == "8"


def test_the_users_omp_num_threads_is_kept(training, code_dir, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")

    assert sm_variables.variables(training, code_dir)["OMP_NUM_THREADS"] == "3"
