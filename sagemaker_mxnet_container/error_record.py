"""Failures of a child process, passed to the supervisor as a small JSON file.

A child's stderr shows its traceback, but a message can span lines and the stderr can hold
anything; the record carries the exception's type and message exactly.
"""

import json
import os
import traceback
from typing import Optional

FILE_VARIABLE = "SAGEMAKER_MXNET_ERROR_FILE"


def write(error: BaseException, where: str) -> None:
    """Records ``error`` where the supervisor asked; call it from an ``except`` block."""
    path = os.environ.get(FILE_VARIABLE)
    if not path:
        return
    record = {
        "type": type(error).__name__,
        "message": str(error),
        "where": where,
        "traceback": traceback.format_exc(),
    }
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(record, stream)


def read(path: str) -> Optional[dict]:
    try:
        with open(path, encoding="utf-8") as stream:
            record = json.load(stream)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
