"""MNIST convolutional network (a small LeNet) in Gluon, written for legacy mode.

Legacy mode imports this module and calls ``train`` with the keyword arguments its signature
names, then saves the returned block: a hybridized HybridBlock that has been called, so the
export has its graph and ``model-shapes.json`` the shapes it was called with (the SageMaker
MXNet serving image's default ``model_fn`` needs all three files). Like the Module example,
it has no ``__main__`` block: the toolkit drives it.
"""

import gzip
import logging
import os
import struct

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

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
    net = gluon.nn.HybridSequential()
    net.add(
        gluon.nn.Conv2D(16, kernel_size=5, activation="relu"),
        gluon.nn.MaxPool2D(pool_size=2, strides=2),
        gluon.nn.Conv2D(32, kernel_size=5, activation="relu"),
        gluon.nn.MaxPool2D(pool_size=2, strides=2),
        gluon.nn.Flatten(),
        gluon.nn.Dense(128, activation="relu"),
        gluon.nn.Dense(10),
    )
    return net


def accuracy(net, images, labels, context, batch_size):
    metric = mx.metric.Accuracy()
    for batch in mx.io.NDArrayIter(images, labels, batch_size):
        output = net(batch.data[0].as_in_context(context))
        metric.update([batch.label[0]], [output.as_in_context(mx.cpu())])
    return metric.get()[1]


def train(
    hyperparameters,
    channel_input_dirs,
    num_gpus,
    hosts,
    current_host,
    kvstore=None,
):
    mx.random.seed(SEED)
    np.random.seed(SEED)

    epochs = int(hyperparameters.get("epochs", 10))
    batch_size = int(hyperparameters.get("batch_size", 100))
    learning_rate = float(hyperparameters.get("learning_rate", 0.1))

    train_images, train_labels = load_channel(channel_input_dirs["train"])
    test_images, test_labels = load_channel(channel_input_dirs["test"])

    if len(hosts) > 1:
        # Each worker trains on its own slice; dist_sync sums the hosts' gradients, so
        # splitting the batch keeps the update what it is on one host.
        rank = sorted(hosts).index(current_host)
        train_images = train_images[rank :: len(hosts)]
        train_labels = train_labels[rank :: len(hosts)]
        batch_size = max(1, batch_size // len(hosts))
    if kvstore is None:
        kvstore = "local" if len(hosts) == 1 else "dist_sync"

    context = mx.gpu() if int(num_gpus) > 0 else mx.cpu()
    net = build_network()
    net.initialize(mx.init.Xavier(magnitude=2.0), ctx=context)
    # hybridize() makes the block exportable: its first call below traces the graph.
    net.hybridize()
    trainer = gluon.Trainer(
        net.collect_params(), "sgd", {"learning_rate": learning_rate, "momentum": 0.9}, kvstore=kvstore
    )
    loss = gluon.loss.SoftmaxCrossEntropyLoss()

    for epoch in range(epochs):
        batches = mx.io.NDArrayIter(train_images, train_labels, batch_size, shuffle=True)
        # Summed on the device; read once per epoch, so that no batch waits for the host.
        loss_sum, seen = mx.nd.zeros((1,), ctx=context), 0
        for batch in batches:
            data = batch.data[0].as_in_context(context)
            label = batch.label[0].as_in_context(context)
            with autograd.record():
                batch_loss = loss(net(data), label)
            batch_loss.backward()
            trainer.step(data.shape[0])
            loss_sum += batch_loss.sum()
            seen += data.shape[0]
        validation = accuracy(net, test_images, test_labels, context, batch_size)
        # One line per epoch in the form train reads into output/data/metrics.csv and the curves.
        print(
            f"[metrics] epoch={epoch} train-loss={loss_sum.asscalar() / seen:.4f} validation-accuracy={validation:.4f}",
            flush=True,
        )
    return net
