"""Logging for the toolkit, and the redaction that keeps secrets out of logs and failure files."""

import json
import logging
import os
import re
import sys
from typing import Iterable, Iterator, Mapping, Set
from urllib.parse import quote

LOGGER_NAME = "sagemaker_mxnet_container"
FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"

# TOKEN must end a word: "tokenizer" and "max_tokens" are ordinary hyperparameters whose values
# (model names, counts) would otherwise vanish from every log line and failure reason. PIN must
# be a word of its own ("pin", "user_pin"), not part of "spinner" or "pinned".
_SECRET_NAME = re.compile(
    r"SECRET|TOKEN(?![A-Z])|PASSWORD|PASSWD|PASSPHRASE|PASSCODE|CREDENTIAL|API_?KEY|PRIVATE_?KEY|(?<![A-Z])PIN(?![A-Z])",
    re.IGNORECASE,
)
# AWS access key ids are not secret alone, but name the account; mask them with their secret.
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{16}\b")
_MASK = "****"
# Credentials inside a URL (https://user:token@host/simple, a pip index or a direct requirement):
# the whole user-info part goes, since a token is often the user name alone.
_URL_USERINFO = re.compile(r"(?<=://)[^/\s@'\"<>]+@")
# Short values ("1", "true") would mask ordinary words everywhere.
_MIN_SECRET_LENGTH = 6


def _forms(secret: str) -> Set[str]:
    """Every way a secret shows in a message: as written, escaped inside a Python repr (``str``
    of a KeyError, a logged dict) or a JSON string, %-escaped in a URL, and each escaped twice
    (a repr of a repr, JSON inside JSON)."""
    found = {secret}
    for _ in range(2):
        for text in list(found):
            found.update(
                (
                    repr(text)[1:-1],
                    ascii(text)[1:-1],
                    json.dumps(text)[1:-1],
                    json.dumps(text, ensure_ascii=False)[1:-1],
                    quote(text, safe=""),
                )
            )
    return found


def _values(value: object, secret: bool) -> Iterator[str]:
    """The text of every value that is secret: all of ``value`` when ``secret``, and anything under
    a secret-named key at any depth (``{"db": {"password": ...}}``). Numbers count: a PIN is one."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _values(item, secret or bool(_SECRET_NAME.search(str(key))))
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _values(item, secret)
    elif secret and isinstance(value, str):
        yield value
    elif secret and isinstance(value, (int, float)) and not isinstance(value, bool):
        yield from {str(value), repr(value), json.dumps(value)}


def _decoded(text: str) -> object:
    """A JSON object or list inside an environment variable, else the text itself."""
    if text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            pass
    return text


class Redactor:
    """Masks known secret values, in every form they take in a message, and anything shaped like
    an AWS access key id."""

    def __init__(self, secrets: Iterable[str] = ()):
        forms = {form for secret in secrets if len(secret) >= _MIN_SECRET_LENGTH for form in _forms(secret)}
        # Longest first, so that a secret holding another is masked whole.
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    @classmethod
    def from_sources(cls, environ: Mapping[str, str], hyperparameters: Mapping[str, object] = None) -> "Redactor":
        secrets = []
        for name, value in environ.items():
            is_secret = bool(_SECRET_NAME.search(name))
            if is_secret:
                secrets.append(value)
            secrets.extend(_values(_decoded(value), is_secret))
        secrets.extend(_values(hyperparameters or {}, False))
        return cls(secrets)

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(_MASK, text)
        text = _URL_USERINFO.sub(_MASK + "@", text)
        return _ACCESS_KEY_ID.sub(_MASK, text)


redact = Redactor.from_sources(os.environ)


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


def configure(level: int = logging.INFO) -> logging.Logger:
    """Sets up the toolkit's logger once; later calls only change the level."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(_RedactingFilter())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)
    return logger


def use_secrets_of(hyperparameters: Mapping[str, object]) -> None:
    """Adds hyperparameters whose names look secret to what is masked."""
    global redact
    redact = Redactor.from_sources(os.environ, hyperparameters)
