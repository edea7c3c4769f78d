"""The botocore session the download child builds its S3 client from, made cheaper to build.

Building an S3 client, botocore lists every service it has a model of (about 400 directories)
to check that "s3" is one, and parses S3's whole model (about a hundred operations, over a
megabyte of JSON). The download calls GetObject and HeadBucket (the bucket check, and botocore's
own region redirects); botocore itself may call CreateSession (directory buckets). So:

- the session's loader answers "is there a model of this service" by looking for that one;
- ``python -m sagemaker_mxnet_container.s3_model`` cuts those three operations, and every shape
  they reach, out of the installed botocore's model, once, where the image is built; the session
  puts the cut model first in its data path (what AWS_DATA_PATH sets), but only while botocore's
  model is the one it was cut from, as a digest of its files says; else botocore reads its own.

Everything else (endpoint rules, credentials, retries, redirects, error codes) is botocore's.
"""

import hashlib
import json
import os
import sys
from typing import Iterable, List, Optional

OPERATIONS = ("GetObject", "HeadBucket", "CreateSession")
API_VERSION = "2006-03-01"
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "botocore_data")
_MODEL_DIR = os.path.join("s3", API_VERSION)
_DIGEST_FILE = "source.sha256"


def _source_files() -> List[str]:
    """The installed botocore's S3 model files (the model and the extras merged into it)."""
    import botocore

    directory = os.path.join(os.path.dirname(botocore.__file__), "data", _MODEL_DIR)
    return [os.path.join(directory, name) for name in sorted(os.listdir(directory)) if name.startswith("service-2.")]


def _digest(paths: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as stream:
            digest.update(stream.read())
    return digest.hexdigest()


def usable(data_dir: Optional[str] = None) -> Optional[str]:
    """``data_dir`` (default DATA_DIR) where it holds a model cut from the installed botocore's, else None."""
    data_dir = data_dir or DATA_DIR
    try:
        with open(os.path.join(data_dir, _MODEL_DIR, _DIGEST_FILE)) as stream:
            recorded = stream.read().strip()
    except OSError:
        return None
    return data_dir if recorded == _digest(_source_files()) else None


class _Services:
    """The services a loader has models of (of one type): ``in`` looks for the one asked about."""

    def __init__(self, loader, type_name: str):
        self._loader = loader
        self._type_name = type_name

    def __contains__(self, service_name: str) -> bool:
        for path in self._loader.search_paths:
            directory = os.path.join(path, service_name)
            if os.path.isdir(directory):
                for version in os.listdir(directory):
                    if self._loader.file_loader.exists(os.path.join(directory, version, self._type_name)):
                        return True
        return False

    def __iter__(self):
        from botocore.loaders import Loader

        return iter(Loader.list_available_services(self._loader, self._type_name))


def session(data_dir: Optional[str] = None):
    """A botocore session whose loader looks services up, with the cut S3 model first where usable."""
    import botocore.session
    from botocore.loaders import Loader

    class LookingLoader(Loader):
        def list_available_services(self, type_name):
            return _Services(self, type_name)

    made = botocore.session.get_session()
    # As botocore's create_loader reads data_path, with the cut model's directory before it.
    configured = made.get_config_variable("data_path")
    paths = [os.path.expanduser(os.path.expandvars(path)) for path in (configured or "").split(os.pathsep) if path]
    directory = usable(data_dir)
    made.register_component("data_loader", LookingLoader(extra_search_paths=([directory] if directory else []) + paths))
    return made


def trim(model: dict, operations: Iterable[str] = OPERATIONS) -> dict:
    """``model`` with only ``operations`` and the shapes they reach."""
    kept = {name: model["operations"][name] for name in operations if name in model["operations"]}
    shapes, pending = set(), []
    for operation in kept.values():
        pending += [operation[key]["shape"] for key in ("input", "output") if key in operation]
        pending += [error["shape"] for error in operation.get("errors", ())]
    while pending:
        name = pending.pop()
        if name in shapes:
            continue
        shapes.add(name)
        shape = model["shapes"][name]
        pending += [member["shape"] for member in shape.get("members", {}).values()]
        pending += [shape[key]["shape"] for key in ("member", "key", "value") if key in shape]
    return {**model, "operations": kept, "shapes": {name: model["shapes"][name] for name in sorted(shapes)}}


def write(data_dir: Optional[str] = None) -> str:
    """Cuts the installed botocore's S3 model into ``data_dir`` (default DATA_DIR); returns the model's path."""
    from botocore.loaders import Loader

    data_dir = data_dir or DATA_DIR
    sources = _source_files()
    model = trim(Loader().load_service_model("s3", "service-2", API_VERSION))
    directory = os.path.join(data_dir, _MODEL_DIR)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "service-2.json")
    with open(path, "w") as stream:
        json.dump(model, stream, separators=(",", ":"))
    with open(os.path.join(directory, _DIGEST_FILE), "w") as stream:
        stream.write(_digest(sources) + "\n")
    return path


if __name__ == "__main__":
    print(write(sys.argv[1] if len(sys.argv) > 1 else None))
