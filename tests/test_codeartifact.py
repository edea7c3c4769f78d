"""CA_REPOSITORY_ARN: requirements installed from a CodeArtifact repository with an authorization
token, as the sagemaker-training toolkit does, and the token kept out of every log, the failure
file, the user's environment and every process's command line.

moto has no CodeArtifact, so the test starts a stand-in on 127.0.0.1: the two API operations the
toolkit calls (GetAuthorizationToken, GetRepositoryEndpoint, answered as AWS's REST-JSON API
answers them, to the real botocore) and the repository's PyPI index behind Basic authentication
with user ``aws`` and the token. The package it holds is built by the test; no public index has it.
"""

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psutil
import pytest
from conftest import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY
from hypothesis import given
from hypothesis import strategies as st
from package_index import IndexServer, Request
from packages import module_name, simple_index, wheel

from sagemaker_mxnet_container import codeartifact
from sagemaker_mxnet_container.errors import ConfigurationError

REGION, ACCOUNT, DOMAIN, REPOSITORY = "us-west-2", "123456789012", "ml-packages", "team-pypi"
ARN = f"arn:aws:codeartifact:{REGION}:{ACCOUNT}:repository/{DOMAIN}/{REPOSITORY}"
PROGRAM = "train_script.py"


class CodeArtifactStandIn:
    """The API and the repository's index, on one server; ``denied`` answers the token call with 403."""

    def __init__(self, root: Path, token: str, denied: bool = False):
        self.token = token
        self.denied = denied
        self.api_calls = []
        self.index_reached = threading.Event()
        self.release_index = threading.Event()
        self.release_index.set()
        self.server = IndexServer(root, credentials=("aws", token), answer=self.answer)

    def answer(self, request: Request):
        parts = urlsplit(request.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        if parts.path.startswith("/v1/"):
            self.api_calls.append((request.method, parts.path, query, request.authorization))
            if self.denied:
                body = {"__type": "AccessDeniedException", "message": "not authorized to perform GetAuthorizationToken"}
                return 403, "application/json", json.dumps(body).encode()
            if (request.method, parts.path) == ("POST", "/v1/authorization-token"):
                return 200, "application/json", json.dumps({"authorizationToken": self.token}).encode()
            if (request.method, parts.path) == ("GET", "/v1/repository/endpoint"):
                endpoint = f"{self.server.url}/pypi/{query['repository']}/"
                return 200, "application/json", json.dumps({"repositoryEndpoint": endpoint}).encode()
            return 404, "application/json", b'{"__type": "ResourceNotFoundException", "message": "no such call"}'
        self.index_reached.set()
        self.release_index.wait(60)
        return None

    def __enter__(self):
        self.server.__enter__()
        return self

    def __exit__(self, *exc):
        self.release_index.set()
        self.server.__exit__(*exc)


@pytest.fixture
def token():
    # Shaped like CodeArtifact's (long, dotted base64url), and unique to the test.
    return "eyJ2ZXIiOjEsImlzdSI6MTcw." + uuid.uuid4().hex + "." + uuid.uuid4().hex


@pytest.fixture
def repository(tmp_path):
    """(package name, index root): a package only the repository holds; uninstalled afterwards."""
    name = f"smmx-private-{uuid.uuid4().hex[:10]}"
    simple_index(tmp_path / "ca" / "pypi" / REPOSITORY, [wheel(tmp_path / "built", name, "1.0", value="from CA")])
    yield name, tmp_path / "ca"
    subprocess.run(
        [sys.executable, "-m", "pip", "uninstall", "-y", "-q", name],
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
        capture_output=True,
    )


def ca_job(make_job, requirements: str):
    job = make_job({"sagemaker_program": PROGRAM})
    job.code_dir.mkdir()
    (job.code_dir / "requirements.txt").write_text(requirements)
    name = requirements.split()[0]
    (job.code_dir / PROGRAM).write_text(
        f"import json, os, {module_name(name)}\n"
        f"with open(os.path.join(os.environ['SM_MODEL_DIR'], 'seen.json'), 'w') as stream:\n"
        f"    json.dump({{'value': {module_name(name)}.VALUE, 'environ': dict(os.environ)}}, stream)\n"
    )
    return job


def environ_for(stand_in: CodeArtifactStandIn, **extra) -> dict:
    environ = {name: value for name, value in os.environ.items() if not name.startswith(("PIP_", "UV_", "AWS_"))}
    environ.update(
        CA_REPOSITORY_ARN=ARN,
        AWS_ENDPOINT_URL_CODEARTIFACT=stand_in.server.url,
        AWS_ACCESS_KEY_ID=FAKE_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=FAKE_SECRET_ACCESS_KEY,
        AWS_EC2_METADATA_DISABLED="true",
        # The machine's own index must not be where the package comes from: none is configured.
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        **extra,
    )
    return environ


def start_train(job, environ) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sagemaker_mxnet_container"],
        env={**environ, "SAGEMAKER_BASE_DIR": str(job.base)},
        cwd=job.base.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def command_lines_holding(secret: str) -> list:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(secret in part for part in process.info["cmdline"] or ()):
            found.append(process.info["cmdline"])
    return found


def installer_of(name: str) -> str:
    probe = f"import importlib.metadata as m; print(m.distribution({name!r}).read_text('INSTALLER').strip())"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_requirements_come_from_the_repository_with_a_token_nothing_else_sees(
    make_job, repository, token, installer
):
    name, root = repository
    job = ca_job(make_job, f"{name}\n")
    with CodeArtifactStandIn(root, token) as stand_in:
        stand_in.release_index.clear()
        train = start_train(job, environ_for(stand_in, SAGEMAKER_MXNET_INSTALLER=installer))
        assert stand_in.index_reached.wait(120), "the installer never asked the repository's index"
        # While the installer waits for the index's answer: no command line holds the token.
        on_command_lines = command_lines_holding(token)
        stand_in.release_index.set()
        stdout, stderr = train.communicate(timeout=300)

    assert train.returncode == 0, stderr[-3000:]
    assert on_command_lines == []
    seen = json.loads((job.model_dir / "seen.json").read_text())
    assert seen["value"] == "from CA"
    assert installer_of(name) == installer
    assert f"Installing requirements.txt with {installer}" in stderr
    (token_call, endpoint_call) = stand_in.api_calls
    assert token_call[:3] == ("POST", "/v1/authorization-token", {"domain": DOMAIN, "domain-owner": ACCOUNT})
    assert endpoint_call[:3] == (
        "GET",
        "/v1/repository/endpoint",
        {"domain": DOMAIN, "domain-owner": ACCOUNT, "repository": REPOSITORY, "format": "pypi"},
    )
    # Signed with the job's credentials, for CodeArtifact in the ARN's region.
    assert f"Credential={FAKE_ACCESS_KEY_ID}/" in token_call[3] and f"/{REGION}/codeartifact/" in token_call[3]
    for place in (stdout, stderr, json.dumps(seen["environ"])):
        assert token not in place


def test_a_package_the_repository_lacks_fails_with_the_installers_error_and_no_token(
    make_job, repository, token
):
    name, root = repository
    job = ca_job(make_job, f"{name}-absent\n")
    with CodeArtifactStandIn(root, token) as stand_in:
        train = start_train(job, environ_for(stand_in, PIP_RETRIES="0"))
        stdout, stderr = train.communicate(timeout=300)

    assert train.returncode == 1
    assert job.failure.startswith("pip could not install requirements.txt (exit code 1):\n")
    assert f"No matching distribution found for {name}-absent" in job.failure
    assert stand_in.server.fetched(f"/pypi/{REPOSITORY}/simple/")
    basic = base64.b64encode(f"aws:{token}".encode()).decode()
    for place in (stdout, stderr, job.failure):
        assert token not in place
        assert basic not in place


def test_a_token_the_role_may_not_get_fails_the_job_saying_which_permissions_it_needs(make_job, repository, token):
    name, root = repository
    job = ca_job(make_job, f"{name}\n")
    with CodeArtifactStandIn(root, token, denied=True) as stand_in:
        train = start_train(job, environ_for(stand_in))
        _, stderr = train.communicate(timeout=300)

    assert train.returncode == 1, stderr[-3000:]
    assert job.failure.splitlines()[0] == (
        f"cannot use the CodeArtifact repository {ARN} (CA_REPOSITORY_ARN): AccessDeniedException: not authorized to "
        "perform GetAuthorizationToken; check that the repository exists and that the job's role allows "
        "codeartifact:GetAuthorizationToken, codeartifact:GetRepositoryEndpoint and sts:GetServiceBearerToken"
    )
    assert not (job.model_dir / "seen.json").exists()
    assert not stand_in.server.fetched("/pypi/")


def test_no_credentials_for_the_repository_fail_the_job_saying_so(make_job, repository, token):
    name, root = repository
    job = ca_job(make_job, f"{name}\n")
    with CodeArtifactStandIn(root, token) as stand_in:
        environ = environ_for(stand_in)
        del environ["AWS_ACCESS_KEY_ID"], environ["AWS_SECRET_ACCESS_KEY"]
        train = start_train(job, {**environ, "HOME": str(root / "no-aws-config")})
        train.communicate(timeout=120)

    assert train.returncode == 1
    assert job.failure.splitlines()[0] == (
        f"cannot use the CodeArtifact repository {ARN} (CA_REPOSITORY_ARN): NoCredentialsError: "
        "Unable to locate credentials"
    )
    assert stand_in.api_calls == []


def test_an_arn_that_is_not_a_repository_fails_the_job_before_anything_is_asked(make_job, repository, token):
    name, root = repository
    job = ca_job(make_job, f"{name}\n")
    with CodeArtifactStandIn(root, token) as stand_in:
        started = time.monotonic()
        train = start_train(job, {**environ_for(stand_in), "CA_REPOSITORY_ARN": f"arn:aws:s3:::{DOMAIN}"})
        train.communicate(timeout=120)

    assert train.returncode == 1
    assert job.failure.startswith(f"CA_REPOSITORY_ARN='arn:aws:s3:::{DOMAIN}' is not a CodeArtifact repository ARN")
    assert stand_in.server.requests == []
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    "endpoint",
    [
        f"https://{DOMAIN}-{ACCOUNT}.d.codeartifact.{REGION}.amazonaws.com/pypi/{REPOSITORY}/",
        f"https://{DOMAIN}-{ACCOUNT}.d.codeartifact.{REGION}.amazonaws.com/pypi/{REPOSITORY}",
    ],
)
def test_the_index_url_is_the_one_the_sagemaker_training_toolkit_builds(endpoint, token):
    # sagemaker-training 5.1.4 (modules._get_codeartifact_index): "simple/" after the repository,
    # then the token as the password of user "aws".
    simple = re.sub(f"{REPOSITORY}/?$", f"{REPOSITORY}/simple/", endpoint)
    official = re.sub("https://", f"https://aws:{token}@", simple)

    assert codeartifact.authenticated_index(endpoint, REPOSITORY, token) == official


def test_a_token_holding_url_delimiters_cannot_move_the_index():
    url = codeartifact.authenticated_index("https://host.test/pypi/r/", "r", "a/b@evil.test:1?#")

    assert urlsplit(url).hostname == "host.test"
    assert url == "https://aws:a%2Fb%40evil.test%3A1%3F%23@host.test/pypi/r/simple/"


@given(st.text(max_size=120))
def test_any_value_is_a_repository_arn_or_a_configuration_error_naming_the_variable(value):
    try:
        repository = codeartifact.parse_arn(value)
    except ConfigurationError as error:
        assert str(error).startswith("CA_REPOSITORY_ARN=")
    else:
        rebuilt = f":{repository.region}:{repository.account}:repository/{repository.domain}/{repository.name}"
        assert repository.arn.endswith(rebuilt)
        assert repository.arn == value.strip()


def test_a_repository_arn_is_read_into_its_parts():
    assert codeartifact.parse_arn(f" {ARN}\n") == codeartifact.Repository(ARN, REGION, ACCOUNT, DOMAIN, REPOSITORY)
