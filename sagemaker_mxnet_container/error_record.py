"""Failures of a child process, passed to the supervisor as a small JSON file.

A child's stderr shows its traceback, but a message can span lines and the stderr can hold
anything; the record carries the exception's type and message exactly.
"""

import json
import os
import traceback
from typing import Optional

FILE_VARIABLE = "SAGEMAKER_MXNET_ERROR_FILE"


_KEYS = ("type", "message", "where", "traceback")
# The failure file holds 64 KiB; a message larger than that is never shown whole anyway.
_MAX_FIELD = 32 * 1024


def _text(function, error: BaseException) -> str:
    # The user's exception may define a __str__ that raises, even SystemExit(0): the record must
    # still be written, and the exception being reported must not be replaced by a new one (a
    # SystemExit(0) escaping from here ended a failed job with exit code 0).
    try:
        text = function(error)
        return text if isinstance(text, str) else f"<{type(error).__name__} whose message is not text>"
    except BaseException:
        return f"<{type(error).__name__} whose message could not be rendered>"


def _message(error: BaseException) -> str:
    text = _text(str, error)
    lines = text.splitlines()
    if lines and lines[0].startswith("Traceback (most recent call last)"):
        # MXNet's errors start with the C++ stack; the check that failed is the last line, and it
        # is what the failure reason must show first.
        last = next(line.strip() for line in reversed(lines) if line.strip())
        prefix = f"{type(error).__name__}: "
        text = last.removeprefix(prefix) + "\n" + text
    return text


def write(error: BaseException, where: str) -> None:
    """Records ``error`` where the supervisor asked."""
    path = os.environ.get(FILE_VARIABLE)
    if not path:
        return
    record = {
        "type": type(error).__name__,
        "message": _message(error)[:_MAX_FIELD],
        "where": where,
        "traceback": _text(lambda e: "".join(traceback.format_exception(e)), error)[-_MAX_FIELD:],
    }
    try:
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(record, stream)
    except OSError:
        pass


def read(path: str) -> Optional[dict]:
    """The record, or None where there is none or it is not one (the supervisor then falls back to stderr)."""
    try:
        with open(path, encoding="utf-8") as stream:
            record = json.load(stream)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not all(isinstance(record.get(key), str) for key in _KEYS):
        return None
    return record
