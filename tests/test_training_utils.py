"""The helpers user scripts import: scheduler_host and save (also legacy mode's default save)."""

import json
import logging
import subprocess
import sys
import textwrap

import mxnet as mx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _dense_block(units=3):
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Dense(units))
    net.initialize()
    net.hybridize()
    return net


def test_save_exports_a_hybridized_gluon_block_with_the_shapes_it_was_called_with(tmp_path):
    net = _dense_block()
    net(mx.nd.ones((2, 4)))
    net(mx.nd.ones((5, 4)))  # later calls reuse the graph traced by the first

    save(str(tmp_path), net, current_host="algo-1", hosts=["algo-1"])

    assert sorted(p.name for p in tmp_path.iterdir()) == MODEL_FILES
    assert json.loads((tmp_path / "model-shapes.json").read_text()) == [{"name": "data", "shape": [2, 4]}]
    restored = mx.gluon.SymbolBlock.imports(
        str(tmp_path / "model-symbol.json"), ["data"], str(tmp_path / "model-0000.params")
    )
    assert restored(mx.nd.ones((2, 4))).shape == (2, 3)


class _TwoInputs(mx.gluon.HybridBlock):
    def hybrid_forward(self, F, first, second):
        return F.broadcast_add(first, F.sum(second))


_shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


@settings(max_examples=15, deadline=None)
@given(first=_shapes, second=_shapes)
def test_each_input_of_a_block_is_saved_with_its_shape_under_its_exported_name(tmp_path_factory, first, second):
    block = _TwoInputs()
    block.hybridize()
    block(mx.nd.ones(first), mx.nd.ones(second))
    model_dir = tmp_path_factory.mktemp("model")

    save(str(model_dir), block, current_host="algo-1", hosts=["algo-1"])

    shapes = json.loads((model_dir / "model-shapes.json").read_text())
    assert shapes == [{"name": "data0", "shape": list(first)}, {"name": "data1", "shape": list(second)}]
    exported_inputs = mx.sym.load(str(model_dir / "model-symbol.json")).list_inputs()
    assert {"data0", "data1"} <= set(exported_inputs)


def test_a_block_whose_shapes_are_unknown_is_saved_without_them_and_the_log_says_what_to_do(tmp_path, caplog):
    net = _dense_block()
    net(mx.nd.ones((2, 4)))
    save(str(tmp_path / "first"), net, current_host="algo-1", hosts=["algo-1"])
    # Loaded from files and exported again without ever being called: its graph is known, its
    # input shapes are not.
    loaded = mx.gluon.SymbolBlock.imports(
        str(tmp_path / "first" / "model-symbol.json"), ["data"], str(tmp_path / "first" / "model-0000.params")
    )

    with caplog.at_level(logging.WARNING, logger="sagemaker_mxnet_container.training_utils"):
        save(str(tmp_path / "second"), loaded, current_host="algo-1", hosts=["algo-1"])

    assert sorted(p.name for p in (tmp_path / "second").iterdir()) == ["model-0000.params", "model-symbol.json"]
    [record] = [r for r in caplog.records if r.name == "sagemaker_mxnet_container.training_utils"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert message.startswith("Saved SymbolBlock without model-shapes.json: its input shapes are unknown")
    assert "default model_fn cannot load it" in message
    assert "save(model, model_dir)" in message and "model_fn in the model's entry point" in message


def test_a_block_never_called_cannot_be_exported_and_mxnet_says_why(tmp_path):
    with pytest.raises(RuntimeError, match=r"call block.hybridize\(\) and then run forward"):
        save(str(tmp_path), _dense_block(), current_host="algo-1", hosts=["algo-1"])


def test_save_refuses_what_it_cannot_save_and_says_what_to_return(tmp_path):
    with pytest.raises(TypeError, match=r"cannot save a builtins.dict: return an mx.mod.Module"):
        save(str(tmp_path), {"weights": [1, 2]}, current_host="algo-1", hosts=["algo-1"])


def test_importing_training_utils_leaves_mxnet_unimported_and_still_records_blocks_made_after(tmp_path):
    # A script may set MXNet's variables between the two imports: the toolkit must not import
    # MXNet first, and must still see the blocks the script calls.
    script = textwrap.dedent(
        f"""
        import json, os, sys
        from sagemaker_mxnet_container.training_utils import save
        assert "mxnet" not in sys.modules
        os.environ["MXNET_ENGINE_TYPE"] = "NaiveEngine"
        import mxnet as mx
        net = mx.gluon.nn.Dense(2)
        net.initialize()
        net.hybridize()
        net(mx.nd.ones((3, 7)))
        save({str(tmp_path)!r}, net, "algo-1", ["algo-1"])
        print(open(os.path.join({str(tmp_path)!r}, "model-shapes.json")).read())
        """
    )

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == [{"name": "data", "shape": [3, 7]}]
