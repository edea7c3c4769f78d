"""The helpers user scripts import: scheduler_host and save (also legacy mode's default save)."""

import json

import mxnet as mx
import pytest

from sagemaker_mxnet_container.training_utils import save, scheduler_host

MODEL_FILES = ["model-0000.params", "model-shapes.json", "model-symbol.json"]


def _module():
    data = mx.sym.var("data")
    net = mx.sym.FullyConnected(mx.sym.flatten(data), num_hidden=3, name="fc")
    module = mx.mod.Module(mx.sym.SoftmaxOutput(net, name="softmax"), context=mx.cpu())
    module.bind(data_shapes=[("data", (4, 1, 2, 2))], label_shapes=[("softmax_label", (4,))])
    module.init_params()
    return module


def test_scheduler_host_is_the_first_host():
    assert scheduler_host(["algo-1", "algo-2", "algo-3"]) == "algo-1"


def test_save_writes_symbol_params_and_input_shapes(tmp_path):
    module = _module()

    save(str(tmp_path), module, current_host="algo-1", hosts=["algo-1", "algo-2"])

    assert sorted(p.name for p in tmp_path.iterdir()) == MODEL_FILES
    assert json.loads((tmp_path / "model-shapes.json").read_text()) == [{"name": "data", "shape": [4, 1, 2, 2]}]
    loaded = mx.sym.load(str(tmp_path / "model-symbol.json"))
    assert loaded.list_arguments() == module.symbol.list_arguments()
    params = mx.nd.load(str(tmp_path / "model-0000.params"))
    arg_params, _ = module.get_params()
    assert (params["arg:fc_weight"].asnumpy() == arg_params["fc_weight"].asnumpy()).all()


def test_save_on_a_host_that_is_not_the_scheduler_writes_nothing(tmp_path):
    save(str(tmp_path / "model"), _module(), current_host="algo-2", hosts=["algo-1", "algo-2"])

    assert not (tmp_path / "model").exists()


def test_save_reads_the_hosts_from_the_job_environment_when_not_given(tmp_path, monkeypatch):
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-2")
    monkeypatch.setenv("SM_HOSTS", json.dumps(["algo-1", "algo-2"]))
    save(str(tmp_path / "not-scheduler"), _module())
    assert not (tmp_path / "not-scheduler").exists()

    monkeypatch.setenv("SM_CURRENT_HOST", "algo-1")
    save(str(tmp_path / "scheduler"), _module())
    assert sorted(p.name for p in (tmp_path / "scheduler").iterdir()) == MODEL_FILES


def test_save_without_any_host_information_saves(tmp_path, monkeypatch):
    monkeypatch.delenv("SM_CURRENT_HOST", raising=False)
    monkeypatch.delenv("SM_HOSTS", raising=False)

    save(str(tmp_path), _module())

    assert sorted(p.name for p in tmp_path.iterdir()) == MODEL_FILES


def test_save_exports_a_hybridized_gluon_block(tmp_path):
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(3))
    net.initialize()
    net.hybridize()
    net(mx.nd.ones((2, 4)))

    save(str(tmp_path), net, current_host="algo-1", hosts=["algo-1"])

    assert sorted(p.name for p in tmp_path.iterdir()) == ["model-0000.params", "model-symbol.json"]
    restored = mx.gluon.SymbolBlock.imports(
        str(tmp_path / "model-symbol.json"), ["data"], str(tmp_path / "model-0000.params")
    )
    assert restored(mx.nd.ones((2, 4))).shape == (2, 3)


def test_save_refuses_what_it_cannot_save_and_says_what_to_return(tmp_path):
    with pytest.raises(TypeError, match=r"cannot save a builtins.dict: return an mx.mod.Module"):
        save(str(tmp_path), {"weights": [1, 2]}, current_host="algo-1", hosts=["algo-1"])
