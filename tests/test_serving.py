"""What ``train`` saves deploys with the official MXNet serving stack (issue 13).

The stack is the real one, in a venv of its own (tests/serving_stack.py: sagemaker-mxnet-inference
1.5.5 on sagemaker-inference and multi-model-server 1.1.11, installed from PyPI once and kept
under ~/.cache). Each model is trained once per session by ``train-local`` on the embedded MNIST
subset, laid out as the SDK's MXNetModel lays it out (the trained files, the entry point in
``code/``), loaded by the serving toolkit's handler service with its default ``model_fn`` and
scored on the 1000 test images sent as JSON, CSV and NPY. The end-to-end test starts the model
server itself and talks HTTP to it. Nothing is mocked.
"""

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import serving_probe
import serving_stack
from conftest import EXAMPLES, MNIST_SUBSET, RUN_MARKER, apt_install_missing, processes_of_run

sys.path.insert(0, str(EXAMPLES))
import evaluate  # noqa: E402

MODULE_ACCURACY = 0.95
GLUON_ACCURACY = 0.9


@pytest.fixture(scope="session")
def serving_python() -> str:
    return serving_stack.ensure_venv()


def _train_local(tmp_path_factory, example: str, epochs: int) -> Path:
    """A one-host ``train-local`` job of examples/mnist/<example>; returns its job directory."""
    job = tmp_path_factory.mktemp(f"{example}-job")
    command = [
        sys.executable, "-m", "sagemaker_mxnet_container.local", "--hosts", "1",
        "--source-dir", str(EXAMPLES / example), "--entry-point", "mnist.py",
        "--channel", f"train={MNIST_SUBSET / 'train'}", "--channel", f"test={MNIST_SUBSET / 'test'}",
        "-p", f"epochs={epochs}", "--job-dir", str(job),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return job


@pytest.fixture(scope="session")
def legacy_module_job(tmp_path_factory) -> Path:
    return _train_local(tmp_path_factory, "legacy", epochs=5)


@pytest.fixture(scope="session")
def legacy_gluon_job(tmp_path_factory) -> Path:
    return _train_local(tmp_path_factory, "gluon", epochs=3)


@pytest.fixture(scope="session")
def script_mode_job(tmp_path_factory) -> Path:
    return _train_local(tmp_path_factory, "script", epochs=5)


def _deployed(job: Path, example: str, destination: Path) -> Path:
    """The job's model.tar.gz with the training entry point as the model's entry point, as
    ``estimator.deploy()`` repacks it."""
    return serving_stack.lay_out_model(job / "model.tar.gz", destination / "model", EXAMPLES / example / "mnist.py")


def _assert_served(results: dict, bound: float) -> None:
    assert set(results) == set(serving_probe.FORMATS), results
    for name, (_, accept) in serving_probe.FORMATS.items():
        assert "accuracy" in results[name], results[name]
        assert results[name]["accuracy"] >= bound, (name, results[name])
        assert results[name]["headers"] == {"content-type": accept}


def test_a_legacy_module_serves_mnist_through_the_default_handlers(serving_python, legacy_module_job, tmp_path):
    model_dir = _deployed(legacy_module_job, "legacy", tmp_path)

    _assert_served(serving_stack.probe(serving_python, model_dir, MNIST_SUBSET / "test"), MODULE_ACCURACY)


def test_a_legacy_gluon_block_saves_its_input_shapes_and_serves_mnist(serving_python, legacy_gluon_job, tmp_path):
    model_dir = _deployed(legacy_gluon_job, "gluon", tmp_path)

    # The shapes of the batches it was trained on (100 images), under the exported input's name.
    assert json.loads((model_dir / "model-shapes.json").read_text()) == [{"name": "data", "shape": [100, 1, 28, 28]}]
    _assert_served(serving_stack.probe(serving_python, model_dir, MNIST_SUBSET / "test"), GLUON_ACCURACY)


def test_without_its_shapes_file_a_gluon_export_does_not_load_in_the_default_model_fn(
    serving_python, legacy_gluon_job, tmp_path
):
    # What the issue saw before exports wrote model-shapes.json, and what the warning for a
    # block of unknown shapes says.
    model_dir = _deployed(legacy_gluon_job, "gluon", tmp_path)
    (model_dir / "model-shapes.json").unlink()

    results = serving_stack.probe(serving_python, model_dir, MNIST_SUBSET / "test")

    assert "missing file model-shapes.json" in results["initialize"]


def test_the_script_mode_examples_model_serves_mnist_through_the_default_handlers(
    serving_python, script_mode_job, tmp_path
):
    model_dir = _deployed(script_mode_job, "script", tmp_path)

    _assert_served(serving_stack.probe(serving_python, model_dir, MNIST_SUBSET / "test"), MODULE_ACCURACY)


def _wait_until_gone(marker: str, seconds: float) -> list:
    deadline = time.monotonic() + seconds
    left = processes_of_run(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = processes_of_run(marker)
    return left


def test_the_model_server_answers_invocations_for_a_train_local_model_tar_gz(serving_python, script_mode_job, tmp_path):
    apt_install_missing({"java": "default-jre-headless"})
    reason = serving_stack.unavailable_reason(tmp_path)
    if reason is not None:
        pytest.skip(f"cannot start the model server here: {reason}")
    base = tmp_path / "ml"
    _deployed(script_mode_job, "script", base)
    etc_file = Path("/etc/sagemaker-mms.properties")
    existed = etc_file.exists()
    marker = uuid.uuid4().hex
    server = serving_stack.ModelServer(serving_python, base, tmp_path / "server", {RUN_MARKER: marker})
    images, labels = evaluate.load_examples(MNIST_SUBSET / "test")
    try:
        server.start(timeout=180)

        assert server.request("GET", "/ping")[0] == 200
        for name, (content_type, accept) in serving_probe.FORMATS.items():
            correct = 0
            for batch, truth in serving_probe.batches(images, labels):
                body = serving_probe.encode(batch, name)
                headers = {"Content-Type": content_type, "Accept": accept}
                status, headers, body = server.request("POST", "/invocations", body, headers)
                assert status == 200, (name, body[:2000])
                assert headers["Content-Type"].split(";")[0] == accept
                correct += int((serving_probe.decode(body, name).argmax(axis=1) == truth).sum())
            assert correct / len(labels) >= MODULE_ACCURACY, name
        # Any other type is refused with the reason (the serving toolkit answers 500, not 415).
        status, _, body = server.request("POST", "/invocations", b"<digit/>", {"Content-Type": "application/xml"})
        assert status == 500, body[:2000]
        assert b"Content type application/xml is not supported" in body
    finally:
        exit_code = server.stop()
        left = _wait_until_gone(marker, 10)

    assert exit_code == 0, f"the serving entry did not stop on SIGTERM:\n{server.log_tail()}"
    assert left == [], f"processes left behind: {left}"
    # The start wrote its configuration into the overlay, not into the machine's /etc.
    assert (tmp_path / "server" / "etc-changes" / "sagemaker-mms.properties").is_file()
    assert etc_file.exists() == existed
