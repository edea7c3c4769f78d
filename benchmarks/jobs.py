"""The jobs both toolkits run: the same /opt/ml layout, hyperparameters and user code."""

import io
import json
import os
import shutil
import tarfile
from typing import Dict, Optional

PROGRAM = "bench_script.py"
MARKER_VARIABLE = "BENCHMARK_MARKER"

# Its first line takes the time; its last line writes that time and the time of the last line to
# a file opened beforehand (opening a file is the slow part on some filesystems, and must not count
# as the toolkit's time after the last line). ``--hold S`` keeps it running so that the toolkit's
# memory can be sampled meanwhile.
USER_SCRIPT = """\
import time; FIRST = time.time()  # noqa: E401,E702
import os
import sys

stream = open(os.environ["BENCHMARK_MARKER"], "w")
hold = float(sys.argv[sys.argv.index("--hold") + 1]) if "--hold" in sys.argv else 0.0
if hold:
    time.sleep(hold)
stream.write(f"{FIRST!r} {time.time()!r} {os.getpid()}"); stream.close()  # noqa: E702
"""


def source_tarball(files: Dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def lay_out(
    base: str,
    hyperparameters: Dict[str, object],
    *,
    code: Optional[Dict[str, str]] = None,
    code_from: Optional[str] = None,
    channels: Optional[Dict[str, str]] = None,
) -> str:
    """An /opt/ml tree at ``base``; ``code`` files are put in code/ (or copied from ``code_from``)."""
    if os.path.exists(base):
        shutil.rmtree(base)
    config = os.path.join(base, "input", "config")
    os.makedirs(config)
    os.makedirs(os.path.join(base, "input", "data"))
    data_config = {}
    for name, source in (channels or {}).items():
        # Symlinks, not copies: the data is read, never written, and the same for every run.
        os.symlink(source, os.path.join(base, "input", "data", name))
        data_config[name] = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}
    files = {
        # The platform JSON-encodes every hyperparameter value into a string.
        "hyperparameters.json": {key: json.dumps(value) for key, value in hyperparameters.items()},
        "resourceconfig.json": {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"},
        "inputdataconfig.json": data_config,
    }
    for name, content in files.items():
        with open(os.path.join(config, name), "w") as stream:
            json.dump(content, stream)
    code_dir = os.path.join(base, "code")
    if code_from is not None:
        shutil.copytree(code_from, code_dir, ignore=shutil.ignore_patterns("__pycache__"))
    elif code is not None:
        os.makedirs(code_dir)
        for name, text in code.items():
            with open(os.path.join(code_dir, name), "w") as stream:
                stream.write(text)
    return base


def read_marker(path: str):
    """(first line's time, last line's time, pid) as the user script wrote them, or None."""
    try:
        with open(path) as stream:
            first, last, pid = stream.read().split()
    except (OSError, ValueError):
        return None
    return float(first), float(last), int(pid)
