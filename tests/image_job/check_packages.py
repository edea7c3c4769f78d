"""Uses each package the image carries, as a script written for the official image would: none of
them is in requirements.txt, which names only a C extension that must build from source. Writes
what each produced to $SM_OUTPUT_DATA_DIR/report.json for the test to check."""

import importlib.metadata
import io
import json
import os
import subprocess
import sys

import cv2
import gluoncv
import gluonnlp
import mxnet as mx
import native_ext
import numpy as np
import pandas as pd
import smdebug.mxnet as smd
from mxnet import autograd, gluon
from PIL import Image
from sklearn.linear_model import LogisticRegression

HERE = os.path.dirname(os.path.abspath(__file__))
DISTRIBUTIONS = [
    "mxnet", "horovod", "gluoncv", "gluonnlp", "pandas", "scikit-learn", "Pillow", "opencv-python",
    "smdebug", "protobuf", "mpi4py", "pyinstrument-cext", "Cython", "numpy",
]  # fmt: skip


def model_zoo_forward():
    net = gluoncv.model_zoo.get_model("resnet18_v1b", pretrained=False)
    net.initialize(mx.init.Xavier())
    return list(net(mx.nd.random.uniform(shape=(2, 3, 224, 224))).shape)


def vocabulary_and_tokenizer():
    tokens = gluonnlp.data.BERTBasicTokenizer(lower=True)("Gluon NLP splits THIS sentence, and this one.")
    vocab = gluonnlp.Vocab(gluonnlp.data.count_tokens(tokens))
    return {"tokens": tokens, "indices": vocab[tokens], "unknown": vocab["never-seen"]}


def csv_channel():
    frame = pd.read_csv(os.path.join(os.environ["SM_CHANNEL_TABULAR"], "measurements.csv"))
    model = LogisticRegression().fit(frame[["x1", "x2"]], frame["label"])
    return {
        "rows": len(frame),
        "means": {column: round(float(value), 6) for column, value in frame.mean().items()},
        "accuracy": float(model.score(frame[["x1", "x2"]], frame["label"])),
    }


def image_round_trip():
    pixels = np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3)
    encoded = io.BytesIO()
    Image.fromarray(pixels).save(encoded, format="PNG")
    decoded = cv2.imdecode(np.frombuffer(encoded.getvalue(), np.uint8), cv2.IMREAD_COLOR)
    return {
        "identical": bool((cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB) == pixels).all()),
        "resized": list(cv2.resize(decoded, (32, 24)).shape),
    }


def debugger_hook(steps=3):
    """A training loop with the hook that the job's debughookconfig.json describes."""
    hook = smd.Hook.create_from_json_file()
    net = gluon.nn.Dense(2)
    net.initialize(mx.init.Xavier())
    loss_function = gluon.loss.SoftmaxCrossEntropyLoss()
    hook.register_block(net)
    hook.register_block(loss_function)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
    data, labels = mx.nd.random.uniform(shape=(8, 4)), mx.nd.array([0, 1] * 4)
    for _ in range(steps):
        with autograd.record():
            loss = loss_function(net(data), labels)
        loss.backward()
        trainer.step(data.shape[0])
    hook.close()
    return steps


def two_mpi_ranks():
    run = subprocess.run(
        ["mpirun", "--oversubscribe", "-np", "2", sys.executable, os.path.join(HERE, "mpi_ranks.py")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if run.returncode != 0:
        sys.exit(f"mpirun exited {run.returncode}:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    report = {
        "versions": {name: importlib.metadata.version(name) for name in DISTRIBUTIONS},
        "gluoncv": model_zoo_forward(),
        "gluonnlp": vocabulary_and_tokenizer(),
        "pandas": csv_channel(),
        "opencv": image_round_trip(),
        "smdebug_steps": debugger_hook(),
        "mpi4py": two_mpi_ranks(),
        "native_ext": native_ext.add(40, 2),
    }
    os.makedirs(os.environ["SM_OUTPUT_DATA_DIR"], exist_ok=True)
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "report.json"), "w") as stream:
        json.dump(report, stream)
