"""The reserved hyperparameters that turn on Horovod and shape its launch."""

import logging

import pytest

from sagemaker_mxnet_container.errors import ConfigurationError
from sagemaker_mxnet_container.horovod import settings as horovod_settings


def read(num_gpus=0, num_cpus=4, **framework):
    return horovod_settings.read(framework, num_gpus=num_gpus, num_cpus=num_cpus)


def test_horovod_is_off_unless_mpi_is_enabled():
    assert read() is None
    assert read(sagemaker_mpi_enabled=False) is None
    assert read(sagemaker_mpi_enabled="false", sagemaker_mpi_num_of_processes_per_host=4) is None


def test_defaults_are_one_process_per_gpu_else_one_over_gloo():
    assert read(sagemaker_mpi_enabled=True) == horovod_settings.HorovodSettings(
        1, "gloo", (), horovod_settings.DEFAULT_RENDEZVOUS_PORT
    )
    assert read(num_gpus=8, sagemaker_mpi_enabled=True).processes_per_host == 8


def test_values_as_the_sdk_sends_them_are_accepted():
    settings = read(
        sagemaker_mpi_enabled="true",
        sagemaker_mpi_num_of_processes_per_host="2",
        sagemaker_mpi_launcher="mpirun",
        sagemaker_horovod_rendezvous_port="31000",
    )
    assert (settings.processes_per_host, settings.launcher, settings.rendezvous_port) == (2, "mpirun", 31000)


def test_custom_mpi_options_are_split_like_a_shell_would_without_running_one():
    settings = read(
        sagemaker_mpi_enabled=True,
        sagemaker_mpi_launcher="mpirun",
        sagemaker_mpi_custom_mpi_options="-x NCCL_DEBUG=INFO --mca btl_tcp_if_exclude 'lo,docker0' ; rm -rf /",
    )
    assert settings.custom_mpi_options == (
        "-x",
        "NCCL_DEBUG=INFO",
        "--mca",
        "btl_tcp_if_exclude",
        "lo,docker0",
        ";",
        "rm",
        "-rf",
        "/",
    )


@pytest.mark.parametrize(
    "framework, named",
    [
        ({"sagemaker_mpi_enabled": "yes"}, "sagemaker_mpi_enabled"),
        ({"sagemaker_mpi_enabled": True, "sagemaker_mpi_num_of_processes_per_host": 0}, "processes_per_host"),
        ({"sagemaker_mpi_enabled": True, "sagemaker_mpi_num_of_processes_per_host": "two"}, "processes_per_host"),
        ({"sagemaker_mpi_enabled": True, "sagemaker_mpi_num_of_processes_per_host": True}, "processes_per_host"),
        ({"sagemaker_mpi_enabled": True, "sagemaker_mpi_launcher": "ssh"}, "sagemaker_mpi_launcher"),
        ({"sagemaker_mpi_enabled": True, "sagemaker_mpi_custom_mpi_options": "-x 'A=1"}, "quotes"),
        ({"sagemaker_mpi_enabled": True, "sagemaker_mpi_custom_mpi_options": ["-x"]}, "custom_mpi_options"),
        ({"sagemaker_mpi_enabled": True, "sagemaker_horovod_rendezvous_port": 70000}, "rendezvous_port"),
        ({"sagemaker_mpi_enabled": True, "sagemaker_horovod_rendezvous_port": "29²"}, "rendezvous_port"),
        ({"sagemaker_mpi_enabled": True, "sagemaker_mpi_num_of_processes_per_host": "²"}, "processes_per_host"),
    ],
)
def test_malformed_values_fail_naming_the_hyperparameter(framework, named):
    with pytest.raises(ConfigurationError, match=named):
        read(**framework)


def test_more_processes_than_cpus_still_runs_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        settings = read(num_cpus=2, sagemaker_mpi_enabled=True, sagemaker_mpi_num_of_processes_per_host=3)
    assert settings.processes_per_host == 3
    assert "oversubscribed" in caplog.text


def test_custom_mpi_options_that_set_variables_apply_to_the_gloo_ranks():
    options = "-x NCCL_DEBUG=INFO -x PATH -x A='b c'"

    settings = read(sagemaker_mpi_enabled=True, sagemaker_mpi_custom_mpi_options=options)

    assert settings.worker_variables == {"NCCL_DEBUG": "INFO", "A": "b c"}
    assert settings.custom_mpi_options == ("-x", "NCCL_DEBUG=INFO", "-x", "PATH", "-x", "A=b c")


def test_the_official_nccl_debug_option_sets_nccl_debug_on_either_launcher():
    for launcher in ("gloo", "mpirun"):
        for options in ("--NCCL_DEBUG WARN", "--NCCL_DEBUG=WARN"):
            settings = read(
                sagemaker_mpi_enabled=True, sagemaker_mpi_launcher=launcher, sagemaker_mpi_custom_mpi_options=options
            )
            assert settings.worker_variables == {"NCCL_DEBUG": "WARN"}
            assert settings.custom_mpi_options == ("-x", "NCCL_DEBUG=WARN")


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ("-x NCCL_DEBUG=INFO --mca btl_tcp_if_include eth0", "'--mca' has no meaning under the Gloo launcher"),
        ("--bind-to none", "'--bind-to' has no meaning under the Gloo launcher"),
        ("-x", "-x needs a value"),
        ("--NCCL_DEBUG", "--NCCL_DEBUG needs a value"),
        ("-x 1A=2", "-x '1A=2' does not name an environment variable"),
        ("-x =2", "-x '=2' does not name an environment variable"),
    ],
)
def test_an_option_without_a_meaning_under_gloo_fails_naming_it(options, named):
    # Before, every option was dropped with a warning: -x NCCL_DEBUG=INFO silently did nothing.
    with pytest.raises(ConfigurationError) as caught:
        read(sagemaker_mpi_enabled=True, sagemaker_mpi_custom_mpi_options=options)

    assert "sagemaker_mpi_custom_mpi_options" in str(caught.value)
    assert named in str(caught.value)
