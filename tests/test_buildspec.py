"""buildspec.yml, the CodeBuild definition: it parses, its shell is valid, and every script, file
and tool it names exists in the repository (or, for .venv/bin tools, is installed by the setup
it runs)."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

BUILDSPEC = REPO / "buildspec.yml"
PHASES = ("install", "pre_build", "build", "post_build")


@pytest.fixture(scope="module")
def spec():
    return yaml.safe_load(BUILDSPEC.read_text())


def _commands(spec):
    return [(phase, command) for phase in PHASES for command in spec["phases"][phase]["commands"]]


def _named_paths(command: str):
    """(path, runs) for each repository path a command names; runs: it is the program of a step."""
    for line in command.splitlines():
        at_program = True
        for token in shlex.split(line, comments=True):
            if token in ("|", "&&", "||", ";", "then", "do", "else"):
                at_program = True
                continue
            if "=" in token and not token.startswith("-") and token.split("=", 1)[0].isidentifier():
                continue  # an environment assignment before the program
            value = token.split("=", 1)[1] if token.startswith("--") and "=" in token else token
            if "/" in value and "$" not in value and "://" not in value and not value.startswith(("/", "-")):
                yield value, at_program
            at_program = False


def test_buildspec_is_version_0_2_with_the_four_phases(spec):
    assert spec["version"] == 0.2
    assert all(spec["phases"][phase]["commands"] for phase in PHASES)


def test_every_command_is_valid_shell(spec):
    for phase, command in _commands(spec):
        check = subprocess.run(["bash", "-n"], input=command, capture_output=True, text=True)
        assert check.returncode == 0, f"{phase}: {command}\n{check.stderr}"


def test_every_script_and_file_the_buildspec_names_exists(spec):
    venv_bin = Path(sys.executable).parent
    named = [(phase, path, runs) for phase, command in _commands(spec) for path, runs in _named_paths(command)]
    assert named, "the buildspec names no repository paths"
    for phase, path, runs in named:
        if path.startswith(".venv/bin/"):
            # Made by the install phase (scripts/setup.sh with the test extra), as here.
            assert (venv_bin / Path(path).name).exists(), f"{phase}: {path} is not installed by the test extra"
            continue
        assert (REPO / path).exists(), f"{phase}: {path} is not in the repository"
        if runs:
            assert os.access(REPO / path, os.X_OK), f"{phase}: {path} is run but not executable"


def test_buildspec_lints_tests_builds_both_images_and_tests_the_cpu_image(spec):
    steps = " ".join(command for _, command in _commands(spec))

    assert "ruff check" in steps and "hadolint" in steps
    assert "docker/build.sh cpu" in steps and "docker/build.sh gpu" in steps
    assert 'SAGEMAKER_MXNET_TEST_IMAGE="$CPU_IMAGE"' in steps and "tests/test_containers.py" in steps


def test_push_happens_only_with_an_account_and_a_repository(spec):
    push = " ".join(spec["phases"]["post_build"]["commands"])
    assert spec["env"]["variables"]["ACCOUNT_ID"] == "" and spec["env"]["variables"]["ECR_REPOSITORY"] == ""
    environ = {
        "PATH": os.environ["PATH"],
        "CODEBUILD_BUILD_SUCCEEDING": "1",
        "ACCOUNT_ID": "",
        "ECR_REPOSITORY": "",
        "AWS_DEFAULT_REGION": "us-west-2",
        "CPU_IMAGE": "cpu:tag",
        "GPU_IMAGE": "gpu:tag",
    }

    run = subprocess.run(["bash", "-c", push], env=environ, capture_output=True, text=True, timeout=30)

    assert run.returncode == 0
    assert "Not pushing" in run.stdout


def test_push_tags_both_images_into_the_ecr_repository(spec, tmp_path):
    # ECR cannot be reached from here: stand-in aws and docker commands record what would run.
    calls = tmp_path / "calls"
    for tool in ("aws", "docker"):
        stand_in = tmp_path / tool
        stand_in.write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\n')
        stand_in.chmod(0o755)
    environ = {
        "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}",
        "CODEBUILD_BUILD_SUCCEEDING": "1",
        "ACCOUNT_ID": "123456789012",
        "ECR_REPOSITORY": "sagemaker-mxnet-training",
        "AWS_DEFAULT_REGION": "us-west-2",
        "CPU_IMAGE": spec["env"]["variables"]["CPU_IMAGE"],
        "GPU_IMAGE": spec["env"]["variables"]["GPU_IMAGE"],
    }

    run = subprocess.run(
        ["bash", "-c", " ".join(spec["phases"]["post_build"]["commands"])],
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert run.returncode == 0, run.stderr
    registry = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
    lines = calls.read_text().splitlines()
    # The two sides of the login pipe run at once, so either may have written first.
    login = {
        "aws ecr get-login-password --region us-west-2",
        f"docker login --username AWS --password-stdin {registry}",
    }
    assert set(lines[:2]) == login
    pushed = {flavor: f"{registry}/sagemaker-mxnet-training:1.9.1-{flavor}-py3" for flavor in ("cpu", "gpu")}
    assert lines[2:] == [
        line
        for flavor, target in pushed.items()
        for line in (f"docker tag sagemaker-mxnet-training:1.9.1-{flavor}-py3 {target}", f"docker push {target}")
    ]
