"""Runs a real SageMaker-style MNIST training job through ``train`` on this machine.

It lays out an ``/opt/ml`` tree under ``--job-dir`` (the platform's layout, relocated with
SAGEMAKER_BASE_DIR), with the embedded MNIST subset as the ``train`` and ``test`` channels and
the example's code as ``sagemaker_submit_directory``, runs ``train`` and reports the outcome and
the saved model's test accuracy.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import evaluate  # noqa: E402  (lives beside this file, not in an installed package)


def lay_out_job(base, data_dir, code_dir, epochs):
    if os.path.exists(base):
        shutil.rmtree(base)
    config = os.path.join(base, "input", "config")
    os.makedirs(config)
    for channel in ("train", "test"):
        shutil.copytree(os.path.join(data_dir, channel), os.path.join(base, "input", "data", channel))
    hyperparameters = {
        "sagemaker_program": "mnist.py",
        "sagemaker_submit_directory": code_dir,
        "sagemaker_container_log_level": 20,
        "epochs": epochs,
    }
    files = {
        # The platform JSON-encodes every hyperparameter value into a string.
        "hyperparameters.json": {key: json.dumps(value) for key, value in hyperparameters.items()},
        "resourceconfig.json": {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"},
        "inputdataconfig.json": {
            channel: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}
            for channel in ("train", "test")
        },
    }
    for name, content in files.items():
        with open(os.path.join(config, name), "w") as stream:
            json.dump(content, stream, indent=2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job-dir", default=os.path.join(os.getcwd(), "mnist-job"), help="where /opt/ml is laid out")
    parser.add_argument("--mode", choices=("legacy", "script"), default="legacy", help="which example to run")
    parser.add_argument("--data", default=os.path.join(HERE, "data"), help="MNIST with train/ and test/ channels")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args(argv)

    base = os.path.abspath(args.job_dir)
    lay_out_job(base, args.data, os.path.join(HERE, args.mode), args.epochs)
    environ = dict(os.environ, SAGEMAKER_BASE_DIR=base)
    print(f"Running the {args.mode}-mode MNIST job in {base}", flush=True)
    returncode = subprocess.call([sys.executable, "-m", "sagemaker_mxnet_container"], env=environ)

    model_dir = os.path.join(base, "model")
    if returncode != 0:
        with open(os.path.join(base, "output", "failure")) as stream:
            print(f"Training failed (exit code {returncode}):\n{stream.read()}", file=sys.stderr)
        return returncode
    print(f"Model saved in {model_dir}: {', '.join(sorted(os.listdir(model_dir)))}")
    print(f"Test accuracy: {evaluate.accuracy(model_dir, os.path.join(args.data, 'test')):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
