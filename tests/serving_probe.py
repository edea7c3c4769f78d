"""MNIST test images as a client sends them to a SageMaker MXNet endpoint, and, run as a program
in the serving venv, a model served through the official serving toolkit's handler service.

    python serving_probe.py MODEL_DIR DATA_DIR

loads ``MODEL_DIR`` as multi-model-server's worker does (``HandlerService.initialize`` with an
MMS ``Context``: the entry point from ``SAGEMAKER_PROGRAM`` in ``MODEL_DIR/code``, the default
``model_fn``, input, predict and output functions wherever it defines none), sends every image
of ``DATA_DIR`` through ``handle`` as JSON, CSV and NPY, and prints a JSON object: for each
format its accuracy, or the status and message of the first request that failed (or, when
the model does not load, ``{"initialize": error}``). Only NumPy
and the standard library are imported at the top, so the tests import the encoders here too.
"""

import io
import json
import os
import sys

import numpy as np

# (request Content-Type, Accept): what the default handlers of sagemaker-mxnet-inference 1.5.5
# accept for a Module (the model its default model_fn loads).
FORMATS = {
    "json": ("application/json", "application/json"),
    "csv": ("text/csv", "text/csv"),
    "npy": ("application/x-npy", "application/x-npy"),
}
# Requests of this many images: multi-model-server refuses bodies over 6.5 MB by default.
BATCH = 250


def encode(images, name: str) -> bytes:
    if name == "json":
        return json.dumps(np.round(images, 4).tolist()).encode()
    if name == "csv":
        # One flattened image a line; the default input function reshapes it to the model's
        # input. Every value with a decimal point: sagemaker-inference parses CSV with
        # np.genfromtxt(dtype=None), which makes a record array when columns mix 0 and 0.5.
        stream = io.StringIO()
        np.savetxt(stream, images.reshape(len(images), -1), fmt="%.4f", delimiter=",")
        return stream.getvalue().encode()
    stream = io.BytesIO()
    np.save(stream, images)
    return stream.getvalue()


def decode(body, name: str):
    """Predictions from a response body: bytes off the wire, or the str a handler returns."""
    if name == "npy":
        return np.load(io.BytesIO(body))
    text = body.decode() if isinstance(body, bytes) else body
    if name == "json":
        return np.array(json.loads(text))
    return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2)


def batches(images, labels):
    for start in range(0, len(images), BATCH):
        yield images[start : start + BATCH], labels[start : start + BATCH]


def _serve_through_the_handler_service(model_dir: str, data_dir: str) -> dict:
    from mms.context import Context, RequestProcessor
    from sagemaker_mxnet_serving_container.handler_service import HandlerService

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "mnist"))
    import evaluate

    # The serving start puts the entry point's directory on PYTHONPATH before MMS starts.
    sys.path.insert(0, os.path.join(model_dir, "code"))
    images, labels = evaluate.load_examples(data_dir)
    context = Context("model", model_dir, {}, 1, None, "1.1.11")
    service = HandlerService()
    try:
        service.initialize(context)
    except Exception as error:  # what MMS would log before it gave up on the worker
        return {"initialize": f"{type(error).__name__}: {error}"}

    results = {}
    for name, (content_type, accept) in FORMATS.items():
        correct = 0
        for batch, truth in batches(images, labels):
            context.request_processor = [RequestProcessor({"Content-Type": content_type, "Accept": accept})]
            [response] = service.handle([{"body": encode(batch, name)}], context)
            processor = context.request_processor[0]
            if processor.get_response_status_code() != 200:
                results[name] = {"status": processor.get_response_status_code(), "error": str(response)[:2000]}
                break
            correct += int((decode(response, name).argmax(axis=1) == truth).sum())
        else:
            results[name] = {"accuracy": correct / len(labels), "headers": processor.get_response_headers()}
    return results


if __name__ == "__main__":
    print(json.dumps(_serve_through_the_handler_service(sys.argv[1], sys.argv[2])))
