"""environment.read: the three /opt/ml config files into one immutable TrainingEnvironment."""

import dataclasses
import logging
import os

import pytest

from sagemaker_mxnet_container import environment
from sagemaker_mxnet_container.environment import Paths, parse_log_level
from sagemaker_mxnet_container.errors import ConfigurationError

CONFIG_FILES = ("hyperparameters.json", "resourceconfig.json", "inputdataconfig.json")


def read(job, environ=None):
    # Not this process's environment: TRAINING_JOB_NAME or SAGEMAKER_PROGRAM there would change the result.
    return environment.read(Paths(str(job.base)), environ={} if environ is None else environ)


def read_error(job, environ=None) -> str:
    with pytest.raises(ConfigurationError) as caught:
        read(job, environ)
    return str(caught.value)


@pytest.fixture
def data_dir(tmp_path):
    source = tmp_path / "channel-source"
    source.mkdir()
    (source / "part-0.csv").write_text("1,2\n")
    return source


# --- hyperparameters -------------------------------------------------------------------------


def test_hyperparameters_written_by_the_platform_are_json_decoded(make_job):
    job = make_job({"epochs": 10, "lr": 0.1, "layers": [128, 64], "optimizer": "sgd", "use_bn": True})

    env = read(job)

    assert dict(env.hyperparameters) == {
        "epochs": 10,
        "lr": 0.1,
        "layers": [128, 64],
        "optimizer": "sgd",
        "use_bn": True,
    }


def test_hand_written_hyperparameters_keep_strings_that_are_not_json_and_non_string_values(make_job):
    job = make_job(
        {
            "optimizer": "sgd",
            "path": "s3://bucket/key",
            "number_in_string": "0.5",
            "object_in_string": '{"a": [1, 2]}',
            "bool_in_string": "false",
            "native_int": 7,
            "native_list": [1, "x"],
            "native_null": None,
        },
        raw=True,
    )

    env = read(job)

    assert env.hyperparameters["optimizer"] == "sgd"
    assert env.hyperparameters["path"] == "s3://bucket/key"
    assert env.hyperparameters["number_in_string"] == 0.5
    assert env.hyperparameters["object_in_string"] == {"a": [1, 2]}
    assert env.hyperparameters["bool_in_string"] is False
    assert env.hyperparameters["native_int"] == 7
    assert env.hyperparameters["native_list"] == [1, "x"]
    assert env.hyperparameters["native_null"] is None


def test_a_string_the_platform_encoded_stays_a_string_even_if_it_looks_like_a_number(make_job):
    env = read(make_job({"version": "5", "name": "resnet"}))

    assert env.hyperparameters["version"] == "5"
    assert env.hyperparameters["name"] == "resnet"


def test_sagemaker_keys_are_split_from_the_users_hyperparameters(make_job):
    job = make_job(
        {
            "epochs": 3,
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": "s3://bucket/code.tar.gz",
            "sagemaker_region": "us-west-2",
            "sagemaker_job_name": "job-1",
            "sagemaker_kvstore": "dist_sync",
            "sagemaker_mode": "script",
        }
    )

    env = read(job)

    assert dict(env.hyperparameters) == {"epochs": 3}
    assert set(env.framework_parameters) == {
        "sagemaker_program",
        "sagemaker_submit_directory",
        "sagemaker_region",
        "sagemaker_job_name",
        "sagemaker_kvstore",
        "sagemaker_mode",
    }
    assert env.additional_framework_parameters == {"sagemaker_kvstore": "dist_sync", "sagemaker_mode": "script"}
    assert env.program == "train.py"
    assert env.submit_directory == "s3://bucket/code.tar.gz"
    assert env.region == env.default_region == "us-west-2"
    assert env.submitted_job_name == "job-1"
    assert env.kvstore == "dist_sync"
    assert env.mode == "script"


def test_the_platforms_reserved_keys_never_reach_the_user(make_job):
    # Automatic model tuning adds _tuning_objective_metric to every trial's hyperparameters.
    job = make_job({"epochs": 3, "_tuning_objective_metric": "validation:accuracy", "default_user_module_name": "m"})

    env = read(job)

    assert dict(env.hyperparameters) == {"epochs": 3}
    assert env.additional_framework_parameters == {}


def test_the_job_name_is_the_platforms_training_job_name(make_job):
    job = make_job({"sagemaker_job_name": "tuning-job"})

    assert read(job, {"TRAINING_JOB_NAME": "tuning-job-001-abc"}).job_name == "tuning-job-001-abc"
    assert read(job).job_name is None
    assert read(job).submitted_job_name == "tuning-job"


def test_sagemaker_program_in_the_environment_names_the_entry_point_and_wins(make_job):
    # The "extend the image" pattern: ENV SAGEMAKER_PROGRAM in the Dockerfile, code in /opt/ml/code.
    assert read(make_job({}), {"SAGEMAKER_PROGRAM": "train.py"}).program == "train.py"
    assert read(make_job({"sagemaker_program": "hp.py"}, name="both"), {"SAGEMAKER_PROGRAM": "env.py"}).program == (
        "env.py"
    )
    assert read(make_job({"sagemaker_program": "hp.py"}, name="hp"), {"SAGEMAKER_PROGRAM": ""}).program == "hp.py"


def test_the_region_defaults_as_the_aws_sdk_finds_it(make_job, tmp_path):
    job = make_job({})
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = eu-north-1\n[profile other]\nregion = sa-east-1\n")

    assert read(job, {"AWS_DEFAULT_REGION": "ap-south-1"}).default_region == "ap-south-1"
    assert read(job, {"AWS_CONFIG_FILE": str(config)}).default_region == "eu-north-1"
    assert read(job, {"AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "other"}).default_region == "sa-east-1"
    assert read(job, {"HOME": str(tmp_path / "nobody")}).default_region == ""


def test_unset_framework_parameters_are_none_and_defaults_apply(make_job):
    env = read(make_job({}))

    assert env.program is None
    assert env.submit_directory is None
    assert env.mode is None
    assert env.kvstore is None
    assert env.log_level == logging.INFO
    assert env.stop_grace_seconds == environment.DEFAULT_STOP_GRACE_SECONDS
    assert env.ignored_parameters == ()


def test_a_non_string_sagemaker_program_is_rejected(make_job):
    message = read_error(make_job({"sagemaker_program": 5}))

    assert "sagemaker_program" in message
    assert "must be a string" in message


def test_unknown_sagemaker_keys_are_reported_as_ignored_and_known_ones_are_not(make_job):
    job = make_job(
        {
            "sagemaker_program": "train.py",
            "sagemaker_container_log_level": 20,
            "sagemaker_enable_cloudwatch_metrics": False,
            "sagemaker_estimator_class_name": "MXNet",
            "sagemaker_estimator_module": "sagemaker.mxnet.estimator",
            "sagemaker_distributed_dataparallel_enabled": False,
            "sagemaker_mpi_num_of_processes_per_host": 2,
            "sagemaker_parameter_server_enabled": True,
            "sagemaker_a_typo": 1,
            "not_reserved": 1,
        }
    )

    env = read(job)

    # A companion setting without the option it configures changes nothing, so it is reported.
    assert env.ignored_parameters == ("sagemaker_a_typo", "sagemaker_mpi_num_of_processes_per_host")


# --- log level --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "level"),
    [
        (10, logging.DEBUG),
        ("20", logging.INFO),
        (" 30 ", logging.WARNING),
        ("DEBUG", logging.DEBUG),
        ("warning", logging.WARNING),
        ("logging.INFO", logging.INFO),
        ("logging.error", logging.ERROR),
        (5, 5),
        ("-5", -5),
        ("+10", 10),
    ],
)
def test_log_level_is_read_from_a_number_a_numeric_string_or_a_level_name(value, level):
    assert parse_log_level(value) == level


@pytest.mark.parametrize("value", ["LOUD", "logging.LOUD", "", True, 1.5, "--5", "²", "1²", "+-3"])
def test_a_bad_log_level_names_the_hyperparameter_and_the_value(value):
    with pytest.raises(ConfigurationError) as caught:
        parse_log_level(value)

    assert "sagemaker_container_log_level" in str(caught.value)
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize(
    ("written", "level"),
    [(10, logging.DEBUG), ("20", logging.INFO), ("DEBUG", logging.DEBUG), ("logging.INFO", logging.INFO)],
)
def test_log_level_hyperparameter_as_written_in_the_file(make_job, written, level):
    env = read(make_job({"sagemaker_container_log_level": written}, raw=True))

    assert env.log_level == level


def test_a_bad_log_level_in_the_file_fails_the_read(make_job):
    message = read_error(make_job({"sagemaker_container_log_level": "CHATTY"}))

    assert "sagemaker_container_log_level 'CHATTY' is not a logging level" in message


# --- the config files themselves ---------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_a_missing_config_file_is_named(make_job, name):
    job = make_job({})
    (job.config_dir / name).unlink()

    message = read_error(job)

    assert str(job.config_dir / name) in message
    assert "is missing" in message


@pytest.mark.parametrize("name", CONFIG_FILES)
@pytest.mark.parametrize("content", ["", "  \n"])
def test_an_empty_config_file_is_named(make_job, name, content):
    job = make_job({})
    job.write_config(name, content)

    message = read_error(job)

    assert str(job.config_dir / name) in message
    assert "is empty" in message


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_a_config_file_that_is_not_json_is_named(make_job, name):
    job = make_job({})
    job.write_config(name, '{"hosts": [')

    message = read_error(job)

    assert str(job.config_dir / name) in message
    assert "is not valid JSON" in message


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_a_config_file_holding_a_json_list_is_named(make_job, name):
    job = make_job({})
    job.write_config(name, ["algo-1"])

    message = read_error(job)

    assert str(job.config_dir / name) in message
    assert "must hold a JSON object, not a list" in message


def test_a_config_file_that_is_not_utf8_is_named(make_job):
    job = make_job({})
    (job.config_dir / "hyperparameters.json").write_bytes(b'{"a": "\xff\xfe"}')

    message = read_error(job)

    assert str(job.config_dir / "hyperparameters.json") in message
    assert "cannot be read" in message


# --- resourceconfig.json ----------------------------------------------------------------------


def test_missing_current_host_is_an_error_naming_the_file(make_job):
    job = make_job({})
    job.write_config("resourceconfig.json", {"hosts": ["algo-1"]})

    message = read_error(job)

    assert str(job.config_dir / "resourceconfig.json") in message
    assert "'current_host' must be this host's name, got None" in message


def test_current_host_must_be_one_of_the_hosts(make_job):
    message = read_error(make_job({}, hosts=("algo-1", "algo-2"), current_host="algo-3"))

    assert "current_host 'algo-3' is not one of the hosts ['algo-1', 'algo-2']" in message


@pytest.mark.parametrize("hosts", [[], None, "algo-1", ["algo-1", ""], ["algo-1", 2]])
def test_hosts_must_be_a_non_empty_list_of_names(make_job, hosts):
    job = make_job({})
    job.write_config("resourceconfig.json", {"current_host": "algo-1", "hosts": hosts})

    message = read_error(job)

    assert "'hosts' must be a non-empty list of host names" in message


def test_a_host_listed_twice_is_an_error(make_job):
    message = read_error(make_job({}, hosts=("algo-1", "algo-2", "algo-1")))

    assert "'hosts' lists a host more than once" in message


def test_hosts_keep_the_order_resourceconfig_lists_them_in_and_the_first_is_the_first_host(make_job):
    # As the official toolkit keeps them; the platform writes them sorted.
    env = read(make_job({}, hosts=("algo-3", "algo-1", "algo-2"), current_host="algo-3"))

    assert env.hosts == ("algo-3", "algo-1", "algo-2")
    assert env.is_first_host is True


@pytest.mark.parametrize(
    "host",
    ["a..b", "a" * 64, "a" * 300, "algo\x00-1", "algo 1", "algo/1", ".algo", "algo..", "x" * 63 + "." + "y" * 200],
)
def test_a_host_name_no_resolver_accepts_fails_at_once_naming_it(make_job, host):
    # Before this check, such a name failed only after the whole host wait (ten minutes).
    job = make_job({})
    job.write_config("resourceconfig.json", {"current_host": "algo-1", "hosts": ["algo-1", host]})

    message = read_error(job)

    assert "is not a valid host name" in message
    assert repr(host[:60])[:-1] in message


@pytest.mark.parametrize("host", ["algo-1", "10.0.0.7", "ip-10-0-0-7.ec2.internal", "algo-1.", "my_host", "a" * 63])
def test_host_names_a_resolver_accepts_are_accepted(make_job, host):
    assert read(make_job({}, hosts=(host,), current_host=host)).hosts == (host,)


def test_instance_groups_of_a_heterogeneous_cluster_are_read(make_job):
    job = make_job({})
    groups = [{"instance_group_name": "train", "instance_type": "ml.p3.2xlarge", "hosts": ["algo-1"]}]
    job.write_config(
        "resourceconfig.json",
        {
            "current_host": "algo-1",
            "hosts": ["algo-1"],
            "current_group_name": "train",
            "current_instance_type": "ml.p3.2xlarge",
            "instance_groups": groups,
        },
    )

    env = read(job)

    assert (env.current_instance_group, env.current_instance_type) == ("train", "ml.p3.2xlarge")
    assert [dict(group) for group in env.instance_groups] == groups


def test_a_homogeneous_cluster_has_the_official_defaults(make_job):
    env = read(make_job({}))

    assert (env.current_instance_group, env.current_instance_type, env.instance_groups) == (
        "homogeneousCluster",
        "local",
        (),
    )


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("instance_groups", {"train": []}, "'instance_groups' must be a list"),
        ("instance_groups", [{"hosts": ["algo-1"]}], "string 'instance_group_name'"),
        ("instance_groups", [{"instance_group_name": "train", "hosts": "algo-1"}], "list of host names 'hosts'"),
        ("instance_groups", ["train"], "every entry of 'instance_groups'"),
        ("current_group_name", 3, "'current_group_name' must be a string"),
        ("current_instance_type", None, "'current_instance_type' must be a string"),
    ],
)
def test_a_malformed_instance_group_setting_fails_naming_it(make_job, key, value, problem):
    job = make_job({})
    job.write_config("resourceconfig.json", {"current_host": "algo-1", "hosts": ["algo-1"], key: value})

    assert problem in read_error(job)


@pytest.mark.parametrize("value", ["gpu", [1], {"gpu": 1}])
def test_distribution_instance_groups_must_be_a_list_of_names(make_job, value):
    message = read_error(make_job({"sagemaker_distribution_instance_groups": value}))

    assert "sagemaker_distribution_instance_groups must be a list of instance group names" in message


def test_network_interface_defaults_to_eth0(make_job):
    job = make_job({})
    job.write_config("resourceconfig.json", {"current_host": "algo-1", "hosts": ["algo-1"]})

    assert read(job).network_interface_name == "eth0"


def test_network_interface_is_read(make_job):
    job = make_job({})
    job.write_config(
        "resourceconfig.json", {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "ethwe"}
    )

    env = read(job)

    assert env.network_interface_name == "ethwe"
    assert env.resource_config["network_interface_name"] == "ethwe"


# --- inputdataconfig.json ---------------------------------------------------------------------


def test_channels_map_to_their_data_directories(make_job, data_dir):
    job = make_job({}, channels={"train": data_dir, "eval": data_dir})

    env = read(job)

    assert dict(env.channels) == {"train": str(job.channel("train")), "eval": str(job.channel("eval"))}
    assert env.input_data_config["train"]["TrainingInputMode"] == "File"


def test_a_file_mode_channel_without_its_directory_names_channel_and_directory(make_job, data_dir):
    job = make_job({}, channels={"train": data_dir})
    job.write_config("inputdataconfig.json", {"train": {"TrainingInputMode": "File"}, "test": {}})

    message = read_error(job)

    assert "channel 'test'" in message
    assert str(job.channel("test")) in message
    assert "does not exist" in message


def test_a_pipe_mode_channel_needs_no_directory(make_job):
    job = make_job({})
    job.write_config("inputdataconfig.json", {"train": {"TrainingInputMode": "Pipe"}})

    env = read(job)

    assert dict(env.channels) == {"train": str(job.channel("train"))}
    assert not job.channel("train").exists()


@pytest.mark.parametrize("name", ["../x", "..", ".", "a/b", "", "tr ain"])
def test_a_channel_name_that_could_leave_input_data_is_rejected(make_job, name):
    job = make_job({})
    job.write_config("inputdataconfig.json", {name: {"TrainingInputMode": "Pipe"}})

    message = read_error(job)

    assert f"channel name {name!r}" in message
    assert str(job.config_dir / "inputdataconfig.json") in message


def test_a_channel_whose_settings_are_not_an_object_is_rejected(make_job):
    job = make_job({})
    job.write_config("inputdataconfig.json", {"train": "File"})

    assert "channel 'train' must map to a JSON object" in read_error(job)


# --- SAGEMAKER_BASE_DIR -----------------------------------------------------------------------


def test_base_dir_defaults_to_opt_ml():
    assert Paths.from_environ({}).base == "/opt/ml"
    assert Paths.from_environ({"SAGEMAKER_BASE_DIR": ""}).base == "/opt/ml"


def test_base_dir_relocates_every_path(tmp_path):
    paths = Paths.from_environ({"SAGEMAKER_BASE_DIR": str(tmp_path)})

    assert paths.base == str(tmp_path)
    assert paths.input_config_dir == str(tmp_path / "input" / "config")
    assert paths.input_data_dir == str(tmp_path / "input" / "data")
    assert paths.code_dir == str(tmp_path / "code")
    assert paths.model_dir == str(tmp_path / "model")
    assert paths.output_dir == str(tmp_path / "output")
    assert paths.output_data_dir == str(tmp_path / "output" / "data")
    assert paths.output_intermediate_dir == str(tmp_path / "output" / "intermediate")
    assert paths.config_file("resourceconfig.json") == str(tmp_path / "input" / "config" / "resourceconfig.json")


def test_a_relative_base_dir_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    assert Paths.from_environ({"SAGEMAKER_BASE_DIR": "ml"}).base == str(tmp_path / "ml")


def test_the_process_environment_is_read_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))

    assert Paths.from_environ().base == str(tmp_path)


def test_a_relocated_job_is_read_from_its_base(make_job, data_dir, monkeypatch):
    job = make_job({"epochs": 1}, channels={"train": data_dir})
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(job.base))

    env = environment.read(Paths.from_environ())

    assert env.paths.base == str(job.base)
    assert env.channels["train"] == str(job.channel("train"))


# --- sagemaker_mode and sagemaker_stop_grace_seconds ------------------------------------------


@pytest.mark.parametrize("mode", ["legacy", "script"])
def test_sagemaker_mode_accepts_legacy_and_script(make_job, mode):
    assert read(make_job({"sagemaker_mode": mode})).mode == mode


def test_an_empty_sagemaker_mode_means_detect(make_job):
    assert read(make_job({"sagemaker_mode": ""})).mode is None


@pytest.mark.parametrize(("mode", "problem"), [("auto", "must be one of legacy, script"), (1, "must be a string")])
def test_a_bad_sagemaker_mode_is_rejected(make_job, mode, problem):
    message = read_error(make_job({"sagemaker_mode": mode}))

    assert "sagemaker_mode" in message
    assert problem in message


@pytest.mark.parametrize(("written", "seconds"), [(30, 30.0), ("45.5", 45.5), (0, 0.0), (86400, 86400.0)])
def test_stop_grace_seconds_is_read(make_job, written, seconds):
    assert read(make_job({"sagemaker_stop_grace_seconds": written}, raw=True)).stop_grace_seconds == seconds


@pytest.mark.parametrize("written", [-1, "soon", True, None, "NaN", "Infinity", 1e12])
def test_a_bad_stop_grace_seconds_is_rejected(make_job, written):
    # Non-finite and huge values used to pass and then overflow setitimer inside the SIGTERM handler.
    message = read_error(make_job({"sagemaker_stop_grace_seconds": written}, raw=True))

    assert "sagemaker_stop_grace_seconds must be a number of seconds" in message


# --- multi-host settings ----------------------------------------------------------------------


def test_the_parameter_server_is_off_unless_asked_for_as_in_the_official_toolkit(make_job):
    assert read(make_job({})).cluster.parameter_server_enabled is False
    assert read(make_job({"sagemaker_parameter_server_enabled": True}, name="on")).cluster.parameter_server_enabled
    # Written by hand, not as JSON: the official toolkit takes any non-empty string for true.
    written = make_job({"sagemaker_parameter_server_enabled": "False"}, raw=True, name="by-hand")
    assert read(written).cluster.parameter_server_enabled is False


def test_the_official_toolkits_ps_port_and_ps_verbose_are_read(make_job):
    cluster = read(make_job({"_ps_port": "9000", "_ps_verbose": "2"})).cluster

    assert (cluster.parameter_server_port, cluster.liveness_port, cluster.parameter_server_verbose) == (9000, 9001, "2")
    assert read(make_job({}, name="defaults")).cluster.parameter_server_verbose == "0"


def test_this_images_parameter_server_port_wins_over_ps_port(make_job):
    job = make_job({"_ps_port": "9000", "sagemaker_parameter_server_port": 9100})

    assert read(job).cluster.parameter_server_port == 9100


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sagemaker_parameter_server_port", "8²"),
        ("sagemaker_parameter_server_port", "８０００"),
        ("sagemaker_liveness_port", "-1"),
        ("_ps_port", "http"),
        ("_ps_verbose", "loud"),
        ("_ps_verbose", "²"),
    ],
)
def test_a_port_or_verbosity_that_is_not_a_plain_number_fails_naming_it(make_job, key, value):
    # "8²".isdigit() is true, and int() then raised ValueError: an internal error with a traceback.
    message = read_error(make_job({key: value}))

    assert key in message and repr(value) in message


# --- immutability -----------------------------------------------------------------------------


def test_the_environment_and_its_mappings_are_read_only(make_job, data_dir):
    env = read(make_job({"epochs": 1, "sagemaker_program": "t.py"}, channels={"train": data_dir}))

    for mapping in (
        env.hyperparameters,
        env.framework_parameters,
        env.channels,
        env.input_data_config,
        env.resource_config,
    ):
        with pytest.raises(TypeError):
            mapping["new"] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        env.current_host = "algo-2"
    with pytest.raises(dataclasses.FrozenInstanceError):
        env.paths.base = "/elsewhere"
    assert isinstance(env.hosts, tuple)


def test_reading_leaves_the_config_files_unchanged(make_job):
    job = make_job({"epochs": 1})
    before = {name: (job.config_dir / name).read_bytes() for name in CONFIG_FILES}

    read(job)

    assert {name: (job.config_dir / name).read_bytes() for name in CONFIG_FILES} == before
    assert sorted(os.listdir(job.config_dir)) == sorted(CONFIG_FILES)
