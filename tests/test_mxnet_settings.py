"""mxnet_settings.choose: the contexts and kvstore handed to the user's MXNet code."""

import pytest

from sagemaker_mxnet_container.errors import ConfigurationError
from sagemaker_mxnet_container.mxnet_settings import KVSTORE_TYPES, choose


@pytest.mark.parametrize(
    ("hosts", "gpus", "kvstore", "contexts"),
    [
        (1, 0, "local", "cpu(0)"),
        (1, 1, "local", "gpu(0)"),
        (1, 4, "device", "gpu(0),gpu(1),gpu(2),gpu(3)"),
        (2, 0, "dist_sync", "cpu(0)"),
        (3, 1, "dist_device_sync", "gpu(0)"),
        (2, 8, "dist_device_sync", "gpu(0),gpu(1),gpu(2),gpu(3),gpu(4),gpu(5),gpu(6),gpu(7)"),
    ],
)
def test_kvstore_and_contexts_follow_hosts_and_gpus(hosts, gpus, kvstore, contexts):
    settings = choose(hosts, gpus)

    assert settings.kvstore == kvstore
    assert settings.context_string == contexts
    assert settings.contexts == tuple(contexts.split(","))


@pytest.mark.parametrize(("gpus", "kvstore"), [(0, "local"), (1, "local"), (2, "device")])
def test_hosts_without_a_parameter_server_get_a_single_host_kvstore(gpus, kvstore):
    assert choose(3, gpus, parameter_server=False).kvstore == kvstore


@pytest.mark.parametrize("override", ["dist_async", "nccl", "local", "dist_sync_device"])
def test_a_valid_kvstore_override_wins_and_keeps_the_contexts(override):
    settings = choose(2, 2, override)

    assert settings.kvstore == override
    assert settings.contexts == ("gpu(0)", "gpu(1)")


@pytest.mark.parametrize("override", ["horovod", "byteps", "dist", "DIST_SYNC", ""])
def test_an_invalid_kvstore_override_names_the_value_and_the_choices(override):
    with pytest.raises(ConfigurationError) as caught:
        choose(1, 0, override)

    message = str(caught.value)
    assert f"sagemaker_kvstore {override!r}" in message
    assert all(kind in message for kind in KVSTORE_TYPES)
