"""The operator's settings (``SAGEMAKER_MXNET_*``): declared once, each checked with an error that
names it, and the only place in the toolkit that reads them."""

import ast
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import sagemaker_mxnet_container
from sagemaker_mxnet_container import settings
from sagemaker_mxnet_container.errors import ConfigurationError

PACKAGE = Path(sagemaker_mxnet_container.__file__).parent
# Handed by the supervisor to its own children; not the operator's.
INTERNAL = {"SAGEMAKER_MXNET_ERROR_FILE"}
NAMES = [declared.name for declared in settings.variables()]


def test_every_sagemaker_mxnet_variable_in_the_toolkit_is_declared_once():
    mentioned = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                mentioned |= set(re.findall(r"\bSAGEMAKER_MXNET_[A-Z0-9_]+\b", node.value))
    assert mentioned - INTERNAL <= set(NAMES), "every variable the toolkit names must be declared in settings"
    assert len(NAMES) == len(set(NAMES))


def test_only_the_settings_module_reads_them_from_the_environment():
    readers = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and any(
                isinstance(argument, ast.Constant) and str(argument.value).startswith("SAGEMAKER_MXNET_")
                for argument in node.args
            ):
                readers.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert readers == []


def test_every_declaration_says_what_it_does_and_what_it_accepts():
    for declared in settings.variables():
        assert declared.name.startswith("SAGEMAKER_MXNET_")
        assert declared.description and declared.kind.accepted
        assert declared.field and hasattr(settings.Settings(), declared.field)
        # The default is itself an accepted value.
        if declared.default is not None:
            assert declared.kind.parse(declared.default_text) == declared.default


def test_unset_or_blank_variables_take_the_defaults():
    blank = {name: " " for name in NAMES}
    assert settings.read({}) == settings.read(blank) == settings.Settings()


@pytest.mark.parametrize(
    "field, text, value",
    [
        ("download_retry_seconds", "3", 3.0),
        ("download_retry_seconds", "0.5", 0.5),
        ("download_retry_seconds", " 12 ", 12.0),
        ("host_wait_seconds", "86400", 86400.0),
        ("archive_max_bytes", "1048576", 1048576),
        ("archive_max_members", "1", 1),
        ("host_addresses", '{"algo-1": "127.0.0.1"}', {"algo-1": "127.0.0.1"}),
        ("ssh_dir", "/root/.ssh-job", "/root/.ssh-job"),
        ("cgroup", "OFF", "off"),
    ],
)
def test_accepted_values(field, text, value):
    declared = settings.variable(field)
    assert getattr(settings.read({declared.name: text}), field) == value


@pytest.mark.parametrize(
    "field, text",
    [
        # The two: a traceback that never named the variable, and a silent hang.
        ("download_retry_seconds", "abc"),
        ("download_retry_seconds", "nan"),
        ("download_retry_seconds", "inf"),
        ("download_retry_seconds", "-1"),
        ("download_retry_seconds", "0"),
        ("download_retry_seconds", "1e3"),
        ("download_retry_seconds", "1_000"),
        ("download_retry_seconds", "３"),  # a full-width digit, which float() accepts
        ("host_wait_seconds", "86401"),
        ("heartbeat_timeout_seconds", "30s"),
        ("heartbeat_timeout_seconds", "2.9"),  # three beats at least, or it misfires
        ("archive_max_bytes", "²"),  # str.isdigit() says yes, int() says no
        ("archive_max_bytes", "1.5"),
        ("archive_max_members", "0"),
        ("archive_max_members", "9" * 5000),  # past int()'s digit limit
        ("host_addresses", "algo-1=127.0.0.1"),
        ("host_addresses", '{"algo-1": "no-such-address"}'),
        ("host_addresses", '{"algo-1": 127}'),
        ("host_addresses", '["127.0.0.1"]'),
        ("host_addresses", "[" * 100_000),
        ("ssh_dir", "relative/.ssh"),
        ("cgroup", "on"),
    ],
)
def test_a_value_that_is_not_accepted_is_named_with_what_is(field, text):
    declared = settings.variable(field)

    with pytest.raises(ConfigurationError) as raised:
        settings.read({declared.name: text})

    message = str(raised.value)
    assert message.startswith(f"{declared.name} must be {declared.kind.accepted}, got ")
    assert f"unset it for the default ({declared.default_text})" in message


@hypothesis_settings(max_examples=300, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(field=st.sampled_from([declared.field for declared in settings.variables()]), text=st.text(max_size=40))
def test_any_text_is_a_value_in_bounds_or_an_error_naming_the_variable(field, text):
    declared = settings.variable(field)
    try:
        value = getattr(settings.read({declared.name: text}), field)
    except ConfigurationError as error:
        assert str(error).startswith(f"{declared.name} must be ")
        return
    if isinstance(value, float):
        assert 0 < value <= 86400
    elif isinstance(value, int):
        assert value >= 1


def test_the_readme_table_lists_every_variable_with_its_default():
    readme = (PACKAGE.parent / "README.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line.split("|")[2] for line in readme.splitlines()
            if line.startswith("| `SAGEMAKER_MXNET_")}  # fmt: skip
    assert set(rows) == set(NAMES)
    for declared in settings.variables():
        assert rows[declared.name].strip().startswith(declared.default_text), declared.name
