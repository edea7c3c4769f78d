"""Calls a legacy module's train() directly, with the arguments ``train`` would pass on one CPU
host, and saves the model the same way: the floor for training through the toolkit.

python benchmarks/bare_legacy.py PROGRAM TRAIN_DIR TEST_DIR EPOCHS MODEL_DIR
"""

import importlib.util
import os
import sys

import mxnet as mx

from sagemaker_mxnet_container.training_utils import save


def main(argv):
    program, train_dir, test_dir, epochs, model_dir = argv
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(program))[0], program)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.train(
        hyperparameters={"epochs": int(epochs)},
        channel_input_dirs={"train": train_dir, "test": test_dir},
        num_gpus=0,
        hosts=["algo-1"],
        current_host="algo-1",
        context=[mx.cpu(0)],
        kvstore="local",
    )
    os.makedirs(model_dir, exist_ok=True)
    save(model_dir, model, "algo-1", ["algo-1"])


if __name__ == "__main__":
    main(sys.argv[1:])
