"""sm_variables: the arguments and ``SM_*`` variables the user's code receives, in the official
toolkit's forms (docs/compatibility.md; tests/test_official_differential.py runs both toolkits)."""

import json
import math
import os

import pytest

from sagemaker_mxnet_container import environment, mxnet_settings, sm_variables
from sagemaker_mxnet_container.errors import ConfigurationError
from sagemaker_mxnet_container.legacy import available_arguments
from sagemaker_mxnet_container.resources import Resources
from sagemaker_mxnet_container.sm_variables import argument_value, user_arguments, variable_value

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
    "sagemaker_estimator_class_name": "MXNet",
    "sagemaker_kvstore": "dist_device_sync",
}


GPU_HOST = Resources(num_gpus=2, num_cpus=8)


def build(job, resources=GPU_HOST, environ=None, parameter_server=True):
    environ = {} if environ is None else environ
    env = environment.read(environment.Paths(str(job.base)), environ=environ)
    settings = mxnet_settings.choose(len(env.hosts), resources.num_gpus, env.kvstore, parameter_server)
    training = sm_variables.training_env(env, resources, settings, environ=environ)
    return env, training, sm_variables.variables(training, env, str(job.code_dir))


@pytest.fixture
def job(make_job, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "part-0").write_text("data")
    return make_job(
        {**HYPERPARAMETERS, **FRAMEWORK},
        channels={"train": source, "test-set": source},
        hosts=("algo-1", "algo-2"),
        current_host="algo-1",
    )


@pytest.fixture
def built(job, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return build(job, environ={"TRAINING_JOB_NAME": "mnist-2024-001"})


@pytest.fixture
def variables(built):
    return built[2]


@pytest.fixture
def training(built):
    return built[1]


# --- arguments: str() of the decoded value, as sagemaker-training's to_cmd_args ----------------


@pytest.mark.parametrize(
    ("value", "argument"),
    [
        ("sgd", "sgd"),
        ("0.1", "0.1"),
        ("two words", "two words"),
        ('"quoted"', '"quoted"'),
        (0.1, "0.1"),
        (1e-05, "1e-05"),
        (1e20, "1e+20"),
        (math.inf, "inf"),
        (64, "64"),
        (2**70, "1180591620717411303424"),
        (True, "True"),
        (False, "False"),
        (None, ""),
        ([1, 2], "[1, 2]"),
        ([{"epoch": 1}], "[{'epoch': 1}]"),
        ({"b": 2, "a": 1}, "a=1,b=2"),
        ({"a": {"b": None, "c": True}}, "a={'b': None, 'c': True}"),
        ({"a": None}, "a=None"),
        ({}, ""),
        ([], "[]"),
    ],
)
def test_values_are_passed_as_pythons_str_of_the_decoded_value(value, argument):
    assert argument_value(value) == argument


def test_arguments_are_sorted_by_name_in_name_value_pairs_one_letter_names_with_one_dash():
    assert user_arguments({**HYPERPARAMETERS, "k": 3, "é": "x"}) == [
        "--batch-size", "64",
        "-k", "3",
        "--layers", "sizes=[128, 64]",
        "--lr", "0.1",
        "--note", "two words",
        "--optimizer", "sgd",
        "--use_bn", "True",
        "-é", "x",
    ]  # fmt: skip


def test_no_hyperparameters_means_no_arguments():
    assert user_arguments({}) == []


@pytest.mark.parametrize("key", ["", "-"])
def test_a_name_that_would_shift_every_later_argument_fails_naming_it(key):
    # "" would arrive as "--" here ("" in the official toolkit), "-" as "--": either ends the options.
    with pytest.raises(ConfigurationError) as caught:
        user_arguments({"epochs": 5, key: 1, "lr": 0.1})

    assert str(caught.value).startswith(f"hyperparameter {key!r} ")
    assert "positional argument" in str(caught.value)


# --- variables: sagemaker-training's to_env_vars ------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("sgd", "sgd"),
        (None, ""),
        (True, "true"),
        (0.1, "0.1"),
        ([1, "é"], '[1,"\\u00e9"]'),
        ({"b": 1, "a": [None]}, '{"a":[null],"b":1}'),
    ],
)
def test_variable_values_are_strings_as_they_are_and_anything_else_compact_json(value, text):
    assert variable_value(value) == text


def test_every_value_is_a_string_so_it_can_go_into_an_environment(variables):
    assert all(isinstance(name, str) and isinstance(value, str) for name, value in variables.items())


def test_directories(variables, job):
    assert variables["SM_MODEL_DIR"] == str(job.model_dir)
    assert variables["SM_OUTPUT_DIR"] == str(job.output_dir)
    assert variables["SM_OUTPUT_DATA_DIR"] == str(job.output_dir / "data")
    assert variables["SM_OUTPUT_INTERMEDIATE_DIR"] == str(job.output_dir / "intermediate")
    assert variables["SM_INPUT_DIR"] == str(job.base / "input")
    assert variables["SM_INPUT_CONFIG_DIR"] == str(job.config_dir)


def test_channels_are_named_upper_cased_and_also_with_other_characters_as_underscores(variables, job):
    assert variables["SM_CHANNELS"] == '["test-set","train"]'
    assert variables["SM_CHANNEL_TRAIN"] == str(job.channel("train"))
    assert variables["SM_CHANNEL_TEST-SET"] == str(job.channel("test-set"))
    assert variables["SM_CHANNEL_TEST_SET"] == str(job.channel("test-set"))


def test_hyperparameters(variables):
    assert json.loads(variables["SM_HPS"]) == HYPERPARAMETERS
    assert variables["SM_HP_BATCH-SIZE"] == "64"
    assert variables["SM_HP_BATCH_SIZE"] == "64"
    assert variables["SM_HP_LR"] == "0.1"
    assert variables["SM_HP_USE_BN"] == "true"
    assert variables["SM_HP_OPTIMIZER"] == "sgd"
    assert variables["SM_HP_NOTE"] == "two words"
    assert variables["SM_HP_LAYERS"] == '{"sizes":[128,64]}'
    assert json.loads(variables["SM_USER_ARGS"]) == user_arguments(HYPERPARAMETERS)


def test_the_underscore_name_is_left_to_the_key_that_owns_it(make_job):
    job = make_job({"learning-rate": 1, "learning_rate": 2, "a.b": 3, "a-b": 4})

    _, _, result = build(job)

    assert result["SM_HP_LEARNING-RATE"] == "1"
    assert result["SM_HP_LEARNING_RATE"] == "2"
    # Two keys would claim SM_HP_A_B: neither gets it.
    assert (result["SM_HP_A.B"], result["SM_HP_A-B"]) == ("3", "4")
    assert "SM_HP_A_B" not in result


@pytest.mark.parametrize(
    ("first", "second", "variable"),
    [("lr", "LR", "SM_HP_LR"), ("straße", "STRASSE", "SM_HP_STRASSE")],
)
def test_keys_that_upper_case_to_one_variable_fail_naming_both(first, second, variable):
    with pytest.raises(ConfigurationError) as caught:
        sm_variables.check({first: 1, second: 2}, [])

    message = str(caught.value)
    assert repr(first) in message and repr(second) in message and variable in message


def test_a_key_with_an_equals_sign_fails_naming_it():
    with pytest.raises(ConfigurationError, match=r"'a=b' contains '='"):
        sm_variables.check({"a=b": 1}, [])


def test_only_the_non_reserved_sagemaker_keys_are_framework_parameters(variables):
    assert not any(name.startswith("SM_HP_SAGEMAKER") for name in variables)
    assert json.loads(variables["SM_FRAMEWORK_PARAMS"]) == {
        "sagemaker_estimator_class_name": "MXNet",
        "sagemaker_kvstore": "dist_device_sync",
    }


def test_hosts_in_resourceconfigs_order_the_first_is_the_master(make_job):
    job = make_job({}, hosts=("algo-2", "algo-1"), current_host="algo-1")

    _, training, result = build(job, Resources(0, 1))

    assert result["SM_HOSTS"] == '["algo-2","algo-1"]'
    assert result["SM_CURRENT_HOST"] == result["CURRENT_HOST"] == "algo-1"
    assert training["master_hostname"] == result["SM_MASTER_HOSTNAME"] == "algo-2"
    assert training["is_master"] is False
    assert result["SM_IS_MASTER"] == "false"
    assert training["distribution_hosts"] == ["algo-2", "algo-1"]


def test_a_homogeneous_cluster_as_sagemaker_training_describes_it(variables, training):
    assert variables["SM_CURRENT_INSTANCE_TYPE"] == "local"
    assert variables["SM_CURRENT_INSTANCE_GROUP"] == "homogeneousCluster"
    assert variables["SM_CURRENT_INSTANCE_GROUP_HOSTS"] == "[]"
    assert variables["SM_INSTANCE_GROUPS"] == "[]"
    assert variables["SM_INSTANCE_GROUPS_DICT"] == "{}"
    assert variables["SM_DISTRIBUTION_INSTANCE_GROUPS"] == "[]"
    assert variables["SM_IS_HETERO"] == "false"
    assert variables["SM_NUM_NEURONS"] == "0"
    assert "SM_TOPOLOGY" not in variables
    assert training["topology"] == []


def test_a_heterogeneous_cluster_from_resourceconfig(make_job):
    job = make_job({"sagemaker_mpi_enabled": True}, hosts=("algo-1", "algo-2"), current_host="algo-2")
    groups = [
        {"instance_group_name": "data", "instance_type": "ml.c5.xlarge", "hosts": ["algo-1"]},
        {"instance_group_name": "train", "instance_type": "ml.p3.2xlarge", "hosts": ["algo-2"]},
    ]
    job.write_config(
        "resourceconfig.json",
        {
            "current_host": "algo-2",
            "hosts": ["algo-1", "algo-2"],
            "current_group_name": "train",
            "current_instance_type": "ml.p3.2xlarge",
            "instance_groups": groups,
            "topology": [{"hostName": "algo-2", "capacityUnitId": "u"}],
        },
    )

    _, training, result = build(job, Resources(1, 8))

    assert result["SM_CURRENT_INSTANCE_TYPE"] == "ml.p3.2xlarge"
    assert result["SM_CURRENT_INSTANCE_GROUP"] == "train"
    assert result["SM_CURRENT_INSTANCE_GROUP_HOSTS"] == '["algo-2"]'
    assert json.loads(result["SM_INSTANCE_GROUPS"]) == ["data", "train"]
    assert json.loads(result["SM_INSTANCE_GROUPS_DICT"]) == {group["instance_group_name"]: group for group in groups}
    assert result["SM_IS_HETERO"] == "true"
    # MPI distributes the current group only; its first host is the master.
    assert result["SM_DISTRIBUTION_INSTANCE_GROUPS"] == '["train"]'
    assert training["distribution_hosts"] == ["algo-2"]
    assert training["master_hostname"] == "algo-2" and training["is_master"] is True
    assert result["SM_TOPOLOGY"] == '[{"capacityUnitId":"u","hostName":"algo-2"}]'


def test_the_distribution_groups_can_be_named(make_job):
    job = make_job({"sagemaker_distribution_instance_groups": ["gpu"]})

    _, training, _ = build(job, Resources(0, 1))

    assert training["distribution_instance_groups"] == ["gpu"]


@pytest.mark.parametrize(("instance_type", "neurons"), [("ml.trn2.48xlarge", 64), ("ml.p3.2xlarge", 0)])
def test_neuron_cores_are_known_only_for_the_instance_type_sagemaker_training_knows(make_job, instance_type, neurons):
    job = make_job({})
    job.write_config(
        "resourceconfig.json", {"current_host": "algo-1", "hosts": ["algo-1"], "current_instance_type": instance_type}
    )

    assert build(job, Resources(0, 1))[2]["SM_NUM_NEURONS"] == str(neurons)


def test_resources_and_mxnet_settings(variables):
    assert variables["SM_NUM_GPUS"] == "2"
    assert variables["SM_NUM_CPUS"] == "8"
    assert variables["SM_KVSTORE"] == "dist_device_sync"
    assert variables["SM_CONTEXT"] == "gpu(0),gpu(1)"


def test_job_module_and_region(variables):
    assert variables["SM_LOG_LEVEL"] == "10"
    assert variables["SM_JOB_NAME"] == "mnist-2024-001"
    assert variables["SAGEMAKER_JOB_NAME"] == "mnist-2024"
    assert variables["SAGEMAKER_REGION"] == "us-west-2"
    assert variables["SM_MODULE_DIR"] == "s3://bucket/job/source/sourcedir.tar.gz"
    assert variables["SM_MODULE_NAME"] == "train"
    assert variables["SM_USER_ENTRY_POINT"] == "train.py"
    assert variables["SM_FRAMEWORK_MODULE"] == "sagemaker_mxnet_container.entrypoint:main"


def test_a_job_without_name_program_or_region(make_job, monkeypatch):
    job = make_job({})

    _, training, result = build(job, Resources(0, 1), environ={"HOME": "/nonexistent"})

    assert training["job_name"] is None and "SM_JOB_NAME" not in result
    assert result["SAGEMAKER_JOB_NAME"] == ""
    assert result["SAGEMAKER_REGION"] == ""
    assert result["SM_USER_ENTRY_POINT"] == "" and training["user_entry_point"] is None
    assert result["SM_MODULE_DIR"] == str(job.code_dir)


def test_the_log_level_is_shown_as_written(make_job):
    job = make_job({"sagemaker_container_log_level": "DEBUG"})

    env, training, result = build(job, Resources(0, 1))

    assert env.log_level == 10
    assert training["log_level"] == result["SM_LOG_LEVEL"] == "DEBUG"


def test_the_program_named_by_sagemaker_program_in_the_environment(make_job):
    job = make_job({"sagemaker_program": "decoy.py"})

    _, training, result = build(job, Resources(0, 1), environ={"SAGEMAKER_PROGRAM": "sub/train.py"})

    assert result["SM_USER_ENTRY_POINT"] == "sub/train.py"
    assert result["SM_MODULE_NAME"] == "sub/train"


def test_config_files_are_passed_as_json(variables, job):
    files = {"SM_RESOURCE_CONFIG": "resourceconfig.json", "SM_INPUT_DATA_CONFIG": "inputdataconfig.json"}
    for variable, name in files.items():
        assert json.loads(variables[variable]) == json.loads((job.config_dir / name).read_text())


def test_training_env_parses_and_carries_everything(variables, job):
    training = json.loads(variables["SM_TRAINING_ENV"])

    assert training["kvstore"] == "dist_device_sync"
    assert training["context"] == "gpu(0),gpu(1)"
    assert training["hyperparameters"] == HYPERPARAMETERS
    assert training["channel_input_dirs"] == {
        "train": str(job.channel("train")),
        "test-set": str(job.channel("test-set")),
    }
    assert training["hosts"] == ["algo-1", "algo-2"]
    assert training["num_gpus"] == 2
    assert training["log_level"] == 10
    assert training["is_master"] is True
    assert training["is_modelparallel_enabled"] is None
    assert training["is_smddprun_installed"] is False


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

    _, _, result = build(job, Resources(0, 1), parameter_server=False)

    assert result["SM_IS_MASTER"] == "false"
    assert result["SM_CURRENT_HOST"] == "algo-2"
    assert result["SM_KVSTORE"] == "local"
    assert result["SM_CONTEXT"] == "cpu(0)"


# --- PYTHONPATH and OMP_NUM_THREADS -----------------------------------------------------------


def test_pythonpath_is_the_code_dir_when_unset(variables, job):
    assert variables["PYTHONPATH"] == str(job.code_dir)


def test_pythonpath_starts_with_the_code_dir_and_keeps_the_existing_path(job, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", f"/opt/lib{os.pathsep}/opt/more")

    result = build(job)[2]

    assert result["PYTHONPATH"].split(os.pathsep) == [str(job.code_dir), "/opt/lib", "/opt/more"]


def test_omp_num_threads_defaults_to_the_cpus_this_container_may_use(variables):
    assert variables["OMP_NUM_THREADS"] == "8"


def test_the_users_omp_num_threads_is_kept(job, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")

    assert build(job)[2]["OMP_NUM_THREADS"] == "3"
