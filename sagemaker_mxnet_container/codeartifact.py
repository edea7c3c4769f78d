"""A CodeArtifact repository as the index requirements install from, when ``CA_REPOSITORY_ARN`` names one.

As the sagemaker-training toolkit does: an authorization token for the repository's domain, the
repository's PyPI endpoint with ``simple/`` added, and the token as the password of user ``aws``.
The supervisor only checks the ARN (``parse_arn``); the token is fetched by the installer's child
process (``index_url``), which alone imports botocore and alone holds the token.
"""

import re
from dataclasses import dataclass
from typing import Tuple
from urllib.parse import quote, urlsplit, urlunsplit

from sagemaker_mxnet_container.errors import ConfigurationError, RequirementsError

ARN_VARIABLE = "CA_REPOSITORY_ARN"
_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):codeartifact:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12})"
    r":repository/(?P<domain>[^/\s:]+)/(?P<name>[^/\s:]+)"
)
_PERMISSIONS = "codeartifact:GetAuthorizationToken, codeartifact:GetRepositoryEndpoint and sts:GetServiceBearerToken"
# Per-request retries inside botocore; both calls are small and idempotent.
_REQUEST_ATTEMPTS = 4


@dataclass(frozen=True)
class Repository:
    arn: str
    region: str
    account: str
    domain: str
    name: str


def parse_arn(value: str) -> Repository:
    match = _ARN.fullmatch(value.strip())
    if match is None:
        raise ConfigurationError(
            f"{ARN_VARIABLE}={value!r} is not a CodeArtifact repository ARN of the form "
            "arn:aws:codeartifact:REGION:ACCOUNT:repository/DOMAIN/REPOSITORY; correct it, or unset it "
            "to install requirements from the configured package index"
        )
    return Repository(value.strip(), match["region"], match["account"], match["domain"], match["name"])


def authenticated_index(endpoint: str, repository_name: str, token: str) -> str:
    """The repository's simple index with the token in it, as the sagemaker-training toolkit builds it."""
    endpoint = re.sub(rf"{re.escape(repository_name)}/?$", f"{repository_name}/simple/", endpoint)
    parts = urlsplit(endpoint)
    host = parts.netloc.rpartition("@")[2]
    # Quoted: a token holding "/" or "@" must not change where the URL points.
    return urlunsplit(parts._replace(netloc=f"aws:{quote(token, safe='')}@{host}"))


def index_url(repository: Repository) -> Tuple[str, str]:
    """(the index URL with the token in it, the token). Imports botocore: call it in a child."""
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = botocore.session.get_session().create_client(
            "codeartifact",
            region_name=repository.region,
            config=Config(
                retries={"mode": "standard", "max_attempts": _REQUEST_ATTEMPTS}, connect_timeout=10, read_timeout=30
            ),
        )
        token = client.get_authorization_token(domain=repository.domain, domainOwner=repository.account)[
            "authorizationToken"
        ]
        endpoint = client.get_repository_endpoint(
            domain=repository.domain, domainOwner=repository.account, repository=repository.name, format="pypi"
        )["repositoryEndpoint"]
    except ClientError as error:
        details = error.response.get("Error", {})
        cause = f"{details.get('Code', 'error')}: {details.get('Message', '')}".rstrip(": ")
        raise RequirementsError(
            f"cannot use the CodeArtifact repository {repository.arn} ({ARN_VARIABLE}): {cause}; "
            f"check that the repository exists and that the job's role allows {_PERMISSIONS}"
        ) from error
    except (BotoCoreError, KeyError, TypeError) as error:
        # No credentials, an endpoint that cannot be reached, an answer without the token.
        raise RequirementsError(
            f"cannot use the CodeArtifact repository {repository.arn} ({ARN_VARIABLE}): "
            f"{type(error).__name__}: {error}"
        ) from error
    return authenticated_index(endpoint, repository.name, token), token
