"""Measure the accuracy of a saved MNIST model on a gzipped IDX data set.

Usable as a module (``accuracy(model_dir, data_dir)``) and from the command line::

    python examples/mnist/evaluate.py MODEL_DIR DATA_DIR

MODEL_DIR holds the files the container writes: ``model-symbol.json``,
``model-0000.params`` and, optionally, ``model-shapes.json``.
"""

import argparse
import gzip
import json
import os
import struct
import sys

import mxnet as mx
import numpy as np

BATCH_SIZE = 100


def _find_file(directory, name):
    for root, _, files in sorted(os.walk(directory)):
        if name in files:
            return os.path.join(root, name)
    raise FileNotFoundError(f"no {name} under {directory}")


def _read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = magic & 0xFF
    shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _data_desc(model_dir):
    """Name and per-example shape of the model's input."""
    shapes_file = os.path.join(model_dir, "model-shapes.json")
    if os.path.exists(shapes_file):
        with open(shapes_file) as f:
            first = json.load(f)[0]
        # The batch size the model was trained with is irrelevant here.
        return first["name"], tuple(first["shape"][1:])
    return "data", (1, 28, 28)


def load_module(model_dir, batch_size=BATCH_SIZE):
    symbol, arg_params, aux_params = mx.model.load_checkpoint(
        os.path.join(model_dir, "model"), 0
    )
    data_name, example_shape = _data_desc(model_dir)
    data_shape = (batch_size,) + example_shape
    # The loss layer's label is an input of the graph even though inference
    # never reads it; declaring it with its inferred shape keeps Module from
    # treating it as a missing parameter.
    arg_shapes, _, _ = symbol.infer_shape(**{data_name: data_shape})
    label_shapes = [
        (name, shape)
        for name, shape in zip(symbol.list_arguments(), arg_shapes, strict=True)
        if name.endswith("label")
    ]
    module = mx.mod.Module(
        symbol=symbol,
        data_names=[data_name],
        label_names=[name for name, _ in label_shapes],
        context=mx.cpu(),
    )
    module.bind(
        data_shapes=[(data_name, data_shape)],
        label_shapes=label_shapes or None,
        for_training=False,
    )
    module.set_params(arg_params, aux_params)
    return module, data_name, example_shape


def load_examples(data_dir, example_shape=(1, 28, 28)):
    """The images (float32 in [0, 1], each of ``example_shape``) and labels under ``data_dir``."""
    images = _read_idx(_find_file(data_dir, "images.gz"))
    labels = _read_idx(_find_file(data_dir, "labels.gz"))
    return images.reshape((-1,) + tuple(example_shape)).astype(np.float32) / 255.0, labels


def accuracy(model_dir, data_dir):
    module, data_name, example_shape = load_module(model_dir)
    images, labels = load_examples(data_dir, example_shape)

    data_iter = mx.io.NDArrayIter({data_name: images}, batch_size=BATCH_SIZE)
    # predict() drops the padding of the last batch, so every example counts once.
    probabilities = module.predict(data_iter).asnumpy()
    predicted = probabilities.argmax(axis=1)
    return float((predicted == labels).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description="Accuracy of a saved MNIST model.")
    parser.add_argument("model_dir")
    parser.add_argument("data_dir", help="directory holding images.gz and labels.gz")
    args = parser.parse_args(argv)
    print(f"test accuracy: {accuracy(args.model_dir, args.data_dir):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
