"""The peer toolkit in a virtual environment of its own, installed from PyPI on first use.

Its MXNet package imports as ``sagemaker_mxnet_container``, the same name as ours, so it must
never share an interpreter path with this checkout.
"""

import json
import os
import subprocess
from dataclasses import dataclass

from benchmarks import side_venv

# The last release of the public MXNet training toolkit, and the sagemaker-training 5.x it resolves to.
REQUIREMENTS = ("sagemaker-mxnet-training==4.3.0", "sagemaker-training==5.1.4")
DEFAULT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".peer-venv")
TRAINING_PACKAGE = "sagemaker_mxnet_container.training"
# What sagemaker-training's train imports and calls: the MXNet toolkit's entry, as in its images.
TRAINING_MODULE = f"{TRAINING_PACKAGE}:main"


class PeerError(side_venv.SideVenvError):
    pass


@dataclass(frozen=True)
class Peer:
    directory: str
    versions: dict

    @property
    def python(self) -> str:
        return os.path.join(self.directory, "bin", "python")

    @property
    def train(self) -> str:
        return os.path.join(self.directory, "bin", "train")

    def environ(self) -> dict:
        """What the peer's ``train`` needs to run the MXNet toolkit's entry."""
        return {"SAGEMAKER_TRAINING_MODULE": TRAINING_MODULE}


def ensure(directory: str = DEFAULT_DIR, log=print) -> Peer:
    side_venv.ensure(directory, REQUIREMENTS, log=log, what="the peer")
    return Peer(directory, _verify(directory))


_PROBE = """
import importlib.metadata as metadata, json, sys
import sagemaker_mxnet_container.training as training, sagemaker_training
print(json.dumps({
    "files": [training.__file__, sagemaker_training.__file__],
    "versions": {name: metadata.version(name) for name in ("sagemaker-mxnet-training", "sagemaker-training")},
}))
"""


def _verify(directory: str) -> dict:
    """The peer's packages must load from its own venv, not from this checkout."""
    python = os.path.join(directory, "bin", "python")
    result = subprocess.run(
        [python, "-c", _PROBE], capture_output=True, text=True, env=side_venv.isolated_environ(), cwd="/"
    )
    if result.returncode != 0:
        raise PeerError(f"the peer in {directory} does not import:\n{result.stderr[-2000:]}")
    probe = json.loads(result.stdout)
    root = os.path.realpath(directory)
    for path in probe["files"]:
        if not os.path.realpath(path).startswith(root + os.sep):
            raise PeerError(f"the peer's {path} is outside its venv {directory}")
    if not probe["versions"]["sagemaker-training"].startswith("5."):
        raise PeerError(f"the peer has sagemaker-training {probe['versions']['sagemaker-training']}, not 5.x")
    return probe["versions"]
