"""Logging for the toolkit, and the redaction that keeps secrets out of logs and failure files."""

import logging
import os
import re
import sys
from typing import Iterable, Mapping

LOGGER_NAME = "sagemaker_mxnet_container"
FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"

# TOKEN must end a word: "tokenizer" and "max_tokens" are ordinary hyperparameters whose values
# (model names, counts) would otherwise vanish from every log line and failure reason.
_SECRET_NAME = re.compile(r"SECRET|TOKEN(?![A-Z])|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|PRIVATE_?KEY", re.IGNORECASE)
# AWS access key ids are not secret alone, but name the account; mask them with their secret.
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{16}\b")
_MASK = "****"
# Credentials inside a URL (https://user:token@host/simple, a pip index or a direct requirement):
# the whole user-info part goes, since a token is often the user name alone.
_URL_USERINFO = re.compile(r"(?<=://)[^/\s@'\"<>]+@")
# Short values ("1", "true") would mask ordinary words everywhere.
_MIN_SECRET_LENGTH = 6


class Redactor:
    """Masks known secret values and anything shaped like an AWS access key id."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets = sorted({s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)

    @classmethod
    def from_sources(cls, environ: Mapping[str, str], hyperparameters: Mapping[str, object] = None) -> "Redactor":
        secrets = [value for name, value in environ.items() if _SECRET_NAME.search(name)]
        for name, value in (hyperparameters or {}).items():
            if _SECRET_NAME.search(name) and isinstance(value, str):
                secrets.append(value)
        return cls(secrets)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _MASK)
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
