"""``train --help`` and the README's tables come from one declaration (``reference``), and that
declaration says what the code does: the keys it reads, the variables it reads."""

import os
import subprocess

import pytest
from conftest import REPO, train_command

import sagemaker_mxnet_container
from sagemaker_mxnet_container import environment, reference, settings

PACKAGE = os.path.dirname(sagemaker_mxnet_container.__file__)


@pytest.mark.parametrize("table", reference.tables(), ids=lambda table: table.title.split(" (")[0])
def test_the_readme_holds_each_table_as_declared(table):
    # On a difference, `python -m sagemaker_mxnet_container.reference` prints the tables to paste.
    assert reference.markdown(table) in (REPO / "README.md").read_text()


def test_train_help_prints_every_table_and_touches_nothing(tmp_path):
    base = tmp_path / "no-job"
    run = subprocess.run(
        [*train_command(), "--help"],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(base), "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: train")
    for table in reference.tables():
        assert reference.text(table) in run.stdout
    for variable in settings.variables():
        assert variable.name in run.stdout
    assert not base.exists()


def _package_source() -> str:
    sources = []
    for directory, _, files in os.walk(PACKAGE):
        sources += [open(os.path.join(directory, name)).read() for name in files if name.endswith(".py")]
    return "\n".join(sources)


def test_the_reserved_hyperparameters_are_the_keys_the_toolkit_reads():
    documented = {row[0] for row in reference.RESERVED_HYPERPARAMETERS.rows}
    horovod = {key for key, enabler in environment._COMPANIONS.items() if enabler == "sagemaker_mpi_enabled"}
    assert documented == environment._READ | horovod


def test_every_documented_environment_variable_is_read_by_the_toolkit():
    source = _package_source()
    for row in reference.ENVIRONMENT.rows:
        for name in row[0].split(", "):
            assert f'"{name}"' in source, name


def test_the_text_form_wraps_and_keeps_every_word():
    table = reference.Table("Title", ("name", "default", "meaning"), (("x", "3", "word " * 60),))
    lines = reference.text(table, width=40).splitlines()
    assert lines[:2] == ["Title:", "  x"]
    assert all(len(line) <= 40 for line in lines)
    assert " ".join(lines[2:]).split() == ["word"] * 60 + ["(default", "3)"]
