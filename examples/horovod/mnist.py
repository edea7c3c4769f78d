"""MNIST with Gluon and Horovod, written for SageMaker script mode with MPI (Horovod) enabled.

The container starts this program once per Horovod rank (``sagemaker_mpi_enabled``), on every
host. Each rank trains on its own shard of the training channel; ``DistributedTrainer`` averages
the gradients across ranks, so every rank ends with the same weights. Rank 0 saves the model in
the format the other MNIST examples use (``model-symbol.json``, ``model-0000.params``,
``model-shapes.json``). Every rank writes a digest of its final weights to
``<output data dir>/rank-<N>.json``, so that a run can be checked for ranks that drifted apart.
"""

import argparse
import gzip
import hashlib
import json
import logging
import os
import socket
import struct

import horovod.mxnet as hvd
import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

SEED = 42


def find_file(directory, name):
    # Channels may be copied with their S3 key prefixes, so the file can sit in a subdirectory.
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
    with net.name_scope():
        net.add(gluon.nn.Flatten())
        net.add(gluon.nn.Dense(128, activation="relu"))
        net.add(gluon.nn.Dense(64, activation="relu"))
        net.add(gluon.nn.Dense(10))
    return net


def weights_digest(net):
    """SHA-256 over every parameter's bytes, in name order: equal only for identical weights."""
    digest = hashlib.sha256()
    for name, param in sorted(net.collect_params().items()):
        digest.update(name.encode())
        digest.update(param.data().asnumpy().tobytes())
    return digest.hexdigest()


def evaluate(net, images, labels, batch_size, context):
    metric = mx.metric.Accuracy()
    for batch in mx.io.NDArrayIter(images, labels, batch_size):
        output = net(batch.data[0].as_in_context(context))
        metric.update([batch.label[0]], [output])
    return metric.get()[1]


def train(args):
    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    context = mx.gpu(hvd.local_rank()) if args.num_gpus > 0 else mx.cpu()
    logging.info(
        "rank %d of %d (local rank %d of %d) on %s",
        rank,
        size,
        hvd.local_rank(),
        hvd.local_size(),
        args.current_host,
    )

    # Same seed everywhere for the shuffles; the initial weights come from rank 0 anyway.
    mx.random.seed(SEED)
    np.random.seed(SEED)

    train_images, train_labels = load_channel(args.train)
    test_images, test_labels = load_channel(args.test)
    train_images, train_labels = train_images[rank::size], train_labels[rank::size]
    train_iter = mx.io.NDArrayIter(train_images, train_labels, args.batch_size, shuffle=True)

    net = build_network()
    net.initialize(mx.init.Xavier(magnitude=2.0), ctx=context)
    net.hybridize()
    # Materialize the parameters, then start every rank from rank 0's.
    net(mx.nd.zeros((1, 1, 28, 28), ctx=context))
    params = net.collect_params()
    hvd.broadcast_parameters(params, root_rank=0)

    # The averaged gradient of `size` batches is as noisy as one batch `size` times larger, which
    # bears a learning rate that much higher (Goyal et al.'s linear scaling).
    trainer = hvd.DistributedTrainer(params, "sgd", {"learning_rate": args.learning_rate * size, "momentum": 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    for epoch in range(args.epochs):
        train_iter.reset()
        metric = mx.metric.Accuracy()
        for batch in train_iter:
            data = batch.data[0].as_in_context(context)
            label = batch.label[0].as_in_context(context)
            with autograd.record():
                output = net(data)
                loss = loss_fn(output, label)
            loss.backward()
            trainer.step(args.batch_size)
            metric.update([label], [output])
        logging.info("rank %d epoch %d training accuracy %.4f", rank, epoch, metric.get()[1])
        if rank == 0:
            # The form train reads into output/data/metrics.csv and the training curves.
            print(f"[metrics] epoch={epoch} train-accuracy={metric.get()[1]:.4f}", flush=True)

    accuracy = evaluate(net, test_images, test_labels, args.batch_size, context)
    digest = weights_digest(net)
    logging.info("rank %d test accuracy %.4f weights %s", rank, accuracy, digest)

    os.makedirs(args.output_data_dir, exist_ok=True)
    record = {
        "rank": rank,
        "size": size,
        "local_rank": hvd.local_rank(),
        "local_size": hvd.local_size(),
        "cross_rank": hvd.cross_rank(),
        "host": args.current_host,
        "hostname": socket.gethostname(),
        "weights_sha256": digest,
        "test_accuracy": accuracy,
    }
    with open(os.path.join(args.output_data_dir, f"rank-{rank}.json"), "w") as f:
        json.dump(record, f)

    if rank == 0:
        save(net, args.model_dir, args.batch_size)
    hvd.shutdown()


def save(net, model_dir, batch_size):
    os.makedirs(model_dir, exist_ok=True)
    net.export(os.path.join(model_dir, "model"), epoch=0)
    with open(os.path.join(model_dir, "model-shapes.json"), "w") as f:
        json.dump([{"name": "data", "shape": [batch_size, 1, 28, 28]}], f)


def parse_args(argv=None):
    env = os.environ
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--model-dir", default=env.get("SM_MODEL_DIR"))
    parser.add_argument("--output-data-dir", default=env.get("SM_OUTPUT_DATA_DIR"))
    parser.add_argument("--train", default=env.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--test", default=env.get("SM_CHANNEL_TEST"))
    parser.add_argument("--current-host", default=env.get("SM_CURRENT_HOST", socket.gethostname()))
    parser.add_argument("--num-gpus", type=int, default=env.get("SM_NUM_GPUS", "0"))
    args = parser.parse_args(argv)
    for name in ("model_dir", "output_data_dir", "train", "test"):
        if not getattr(args, name):
            flag = "--" + name.replace("_", "-")
            parser.error(f"{flag} is required when its SM_* variable is unset")
    return args


if __name__ == "__main__":
    train(parse_args())
