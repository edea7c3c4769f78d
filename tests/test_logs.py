"""logs: the toolkit's logger and the redaction that keeps secrets out of logs and failure files."""

import io
import json
import logging
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from sagemaker_mxnet_container import logs
from sagemaker_mxnet_container.environment import parse_log_level
from sagemaker_mxnet_container.logs import Redactor

ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKENdGhpcyBpcyBub3Q"


@pytest.fixture
def toolkit_logger(monkeypatch):
    """The configured toolkit logger writing into a buffer; its global state is restored after."""
    logger = logging.getLogger(logs.LOGGER_NAME)
    saved = (list(logger.handlers), logger.propagate, logger.level)
    # The module-level redactor is global state that use_secrets_of replaces.
    monkeypatch.setattr(logs, "redact", logs.redact)
    configured = logs.configure(logging.DEBUG)
    buffer = io.StringIO()
    handler = configured.handlers[0]
    # The handler bound sys.stderr when first configured, possibly before capsys existed.
    previous_stream = handler.setStream(buffer)
    yield configured, buffer
    handler.setStream(previous_stream)
    for added in [h for h in logger.handlers if h not in saved[0]]:
        logger.removeHandler(added)
    logger.propagate, logger.level = saved[1], saved[2]


# --- Redactor ---------------------------------------------------------------------------------


def test_known_secrets_are_masked_wherever_they_appear():
    redact = Redactor(["supersecret1", "another-secret"])

    assert redact("a=supersecret1 b=another-secret c=supersecret1") == "a=**** b=**** c=****"


def test_short_values_are_not_masked_because_they_would_hide_ordinary_words():
    redact = Redactor(["true", "12345"])

    assert redact("flag true for 12345 items") == "flag true for 12345 items"


def test_the_longer_of_two_overlapping_secrets_is_masked_whole():
    redact = Redactor(["abcdef", "abcdefghijkl"])

    assert redact("key abcdefghijkl") == "key ****"


@pytest.mark.parametrize(
    "key_id", [ACCESS_KEY_ID, "ASIAIOSFODNN7EXAMPLE", "AROAIOSFODNN7EXAMPLE", "AIDAIOSFODNN7EXAMPLE"]
)
def test_aws_access_key_ids_are_masked_without_being_told(key_id):
    assert Redactor()(f"credentials {key_id} used") == "credentials **** used"


def test_text_that_only_resembles_a_key_id_is_kept():
    text = "AKIA123 and XAKIAIOSFODNN7EXAMPLE and AKIAIOSFODNN7EXAMPLEX"

    assert Redactor()(text) == text


def test_secrets_come_from_secret_named_environment_variables():
    environ = {
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
        "HF_TOKEN": "hf_abcdefghijklmnop",
        "DB_PASSWORD": "hunter2hunter2",
        "PASSWORD_OF_ADMIN": "adminpass99",
        "WANDB_API_KEY": "0123456789abcdef",
        "HOME": "/home/someone",
        "AWS_DEFAULT_REGION": "us-west-2",
    }
    redact = Redactor.from_sources(environ)
    text = " ".join(environ.values())

    assert redact(text) == "**** **** **** **** **** **** /home/someone us-west-2"


def test_secrets_come_from_secret_named_hyperparameters():
    hyperparameters = {
        "api_key": "sk-live-0123456789",
        "db_password": "correct horse battery",
        "auth-token": "tok_abcdefgh",
        "secret_number": 123456789,
        "learning_rate": "0.000123456",
    }
    redact = Redactor.from_sources({}, hyperparameters)

    text = "sk-live-0123456789 | correct horse battery | tok_abcdefgh | 123456789 | 0.000123456"
    assert redact(text) == "**** | **** | **** | **** | 0.000123456"


SECRET = 'pa\\ss"w0rd\'s'  # a backslash and both quotes: every escaping differs from the text


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(SECRET, id="as written"),
        # The case: str(KeyError(secret)) is its repr.
        pytest.param(str(KeyError(SECRET)), id="KeyError"),
        pytest.param(repr({"password": SECRET}), id="repr of a dict"),
        pytest.param(json.dumps({"password": SECRET}), id="JSON"),
        pytest.param(json.dumps(json.dumps({"password": SECRET})), id="JSON in JSON"),
        pytest.param(repr(repr(SECRET)), id="repr of a repr"),
        pytest.param(repr(str(KeyError(SECRET))), id="repr of a KeyError's message"),
        pytest.param(f"https://host/login?p={quote(SECRET, safe='')}", id="in a URL"),
    ],
)
def test_every_form_a_secret_takes_in_a_message_is_masked(message):
    redact = Redactor.from_sources({}, {"db_password": SECRET})

    masked = redact(message)

    assert "****" in masked
    for form in (SECRET, repr(SECRET)[1:-1], json.dumps(SECRET)[1:-1], "w0rd"):
        assert form not in masked


def test_values_nested_under_a_secret_named_key_are_secret_at_any_depth():
    hyperparameters = {
        # The case: a dict-valued hyperparameter.
        "db_credentials": {"user": "admin-user", "password": "s3cr3t-pw", "hosts": ["db-1.internal"]},
        "config": {"service": {"api_key": "ak-0123456789", "timeout": 30000000}},
        "layers": [{"units": 1234567}],
    }
    redact = Redactor.from_sources({}, hyperparameters)

    text = "admin-user s3cr3t-pw db-1.internal ak-0123456789 30000000 1234567"
    assert redact(text) == "**** **** **** **** 30000000 1234567"


@pytest.mark.parametrize("value", [87654321, 8765432.1, -123456789])
@pytest.mark.parametrize("name", ["pin", "user-pin", "PIN_CODE", "passcode", "wifi_passphrase"])
def test_numbers_under_a_secret_named_key_are_secret(name, value):
    # The case: pin: 87654321.
    redact = Redactor.from_sources({}, {name: value})

    assert redact(f"login failed with {value}") == "login failed with ****"


def test_json_in_an_environment_variable_is_searched_for_secrets():
    environ = {
        "DB_CREDENTIALS": '{"user": "admin-user", "password": "env-s3cr3t"}',
        "APP_CONFIG": '{"log": "info", "private_key": "-----BEGIN KEY-----abc"}',
    }
    redact = Redactor.from_sources(environ)

    assert redact("admin-user env-s3cr3t -----BEGIN KEY-----abc info") == "**** **** **** info"


# Secrets of any characters (six or more), each shown in every way a message can show it.
FORMS = [
    lambda secret: secret,
    lambda secret: str(KeyError(secret)),
    lambda secret: repr([secret]),
    lambda secret: json.dumps({"k": secret}),
    lambda secret: json.dumps({"k": secret}, ensure_ascii=False),
    lambda secret: json.dumps(json.dumps(secret)),
    lambda secret: repr(repr(secret)),
    lambda secret: ascii(secret),
]


@hypothesis_settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(secret=st.text(min_size=6, max_size=30), form=st.sampled_from(FORMS), around=st.text(max_size=10))
def test_no_form_of_any_secret_survives_redaction(secret, form, around):
    redact = Redactor.from_sources({}, {"api_token": secret})

    masked = redact(around + form(secret) + around)

    assert secret not in masked
    assert repr(secret)[1:-1] not in masked
    assert json.dumps(secret)[1:-1] not in masked


@pytest.mark.parametrize(
    "name", ["tokenizer", "tokenizer_name", "max_tokens", "TOKENIZERS_PARALLELISM", "spinner", "pinned_version"]
)
def test_names_that_merely_contain_token_are_not_secret(name):
    # Their values are model names and counts, which failure reasons must be able to show.
    redact = Redactor.from_sources({name: "bert-base-uncased"}, {name: "bert-base-uncased"})

    assert redact("cannot load bert-base-uncased") == "cannot load bert-base-uncased"


def test_use_secrets_of_adds_hyperparameters_to_the_module_redactor(monkeypatch):
    monkeypatch.setattr(logs, "redact", logs.redact)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)

    logs.use_secrets_of({"github_token": "ghp_0123456789abcdef", "epochs": "100000000"})

    assert logs.redact(f"ghp_0123456789abcdef {SECRET_ACCESS_KEY} 100000000") == "**** **** 100000000"


# --- the configured logger --------------------------------------------------------------------


def test_logged_messages_pass_through_redaction(toolkit_logger):
    logger, buffer = toolkit_logger
    logs.use_secrets_of({"db_password": "hunter2hunter2"})

    logger.info("connecting with %s and key %s", "hunter2hunter2", ACCESS_KEY_ID)
    logging.getLogger("sagemaker_mxnet_container.runner").warning("retrying with hunter2hunter2")

    output = buffer.getvalue()
    assert "hunter2hunter2" not in output
    assert ACCESS_KEY_ID not in output
    assert "connecting with **** and key ****" in output
    assert "sagemaker_mxnet_container.runner WARNING retrying with ****" in output


def test_messages_without_secrets_are_logged_unchanged(toolkit_logger):
    logger, buffer = toolkit_logger

    logger.info("epoch %d of %d, loss %.2f", 3, 10, 0.5)

    assert buffer.getvalue().rstrip("\n").endswith("sagemaker_mxnet_container INFO epoch 3 of 10, loss 0.50")


def test_configure_twice_adds_no_second_handler(toolkit_logger):
    logger, _ = toolkit_logger
    handlers = list(logger.handlers)

    logs.configure(logging.INFO)

    assert logger.handlers == handlers
    assert logger.propagate is False


@pytest.mark.parametrize(
    ("setting", "level"), [("DEBUG", logging.DEBUG), ("logging.WARNING", logging.WARNING), ("40", logging.ERROR)]
)
def test_the_parsed_level_is_the_loggers_level(toolkit_logger, setting, level):
    logs.configure(parse_log_level(setting))

    assert logging.getLogger(logs.LOGGER_NAME).level == level


def test_messages_below_the_level_are_dropped(toolkit_logger):
    logger, buffer = toolkit_logger
    logs.configure(parse_log_level("WARNING"))

    logger.info("not shown")
    logger.debug("not shown either")
    logger.warning("shown")

    assert "not shown" not in buffer.getvalue()
    assert "WARNING shown" in buffer.getvalue()
