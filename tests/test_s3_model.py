"""The S3 model cut for the download child (``s3_model``): what it holds, that the child uses it
only while botocore's model is the one it was cut from, and that downloads through it behave as
through botocore's whole model, against moto's S3 over HTTP."""

import json

import botocore.loaders
import botocore.session
import pytest

from sagemaker_mxnet_container import s3_model
from sagemaker_mxnet_container.errors import DownloadError
from sagemaker_mxnet_container.s3 import Retries, download


@pytest.fixture
def cut(tmp_path, monkeypatch):
    """A model cut from this venv's botocore, where the download child looks for one."""
    data_dir = tmp_path / "botocore-data"
    path = s3_model.write(str(data_dir))
    monkeypatch.setattr(s3_model, "DATA_DIR", str(data_dir))
    return data_dir, json.loads(open(path).read())


@pytest.fixture
def clients(monkeypatch):
    """The S3 clients the download makes, as they were made."""
    made = []
    create = botocore.session.Session.create_client

    def recording(self, *args, **kwargs):
        client = create(self, *args, **kwargs)
        made.append(client)
        return client

    monkeypatch.setattr(botocore.session.Session, "create_client", recording)
    return made


def test_the_cut_model_holds_the_operations_a_download_may_call_as_botocore_defines_them(cut):
    _, model = cut
    whole = botocore.session.get_session().get_service_model("s3", "2006-03-01")

    assert sorted(model["operations"]) == sorted(s3_model.OPERATIONS)
    for name in s3_model.OPERATIONS:
        assert model["operations"][name] == whole.operation_model(name)._operation_model
    assert len(model["shapes"]) < len(whole.shape_names) / 3


def operations_of_a_client_made_from(session) -> list:
    client = session.create_client(
        "s3", region_name="us-east-1", api_version="2006-03-01", aws_access_key_id="a", aws_secret_access_key="b"
    )
    return sorted(client.meta.service_model.operation_names)


def test_a_model_cut_from_another_botocore_is_never_used(cut):
    data_dir, _ = cut
    (data_dir / "s3" / "2006-03-01" / "source.sha256").write_text("0" * 64 + "\n")

    assert s3_model.usable() is None
    assert len(operations_of_a_client_made_from(s3_model.session())) > 50


def test_without_a_cut_model_the_session_reads_botocores_own(tmp_path, monkeypatch):
    monkeypatch.setattr(s3_model, "DATA_DIR", str(tmp_path / "nothing-here"))

    assert operations_of_a_client_made_from(s3_model.session()) == operations_of_a_client_made_from(
        botocore.session.get_session()
    )


def test_the_sessions_loader_finds_each_service_as_botocores_listing_does(monkeypatch):
    monkeypatch.setenv("AWS_DATA_PATH", "/nonexistent/models")
    looking = s3_model.session().get_component("data_loader")
    listing = botocore.loaders.Loader(extra_search_paths=["/nonexistent/models"])

    for type_name in ("service-2", "endpoint-rule-set-1"):
        services = looking.list_available_services(type_name)
        listed = listing.list_available_services(type_name)
        assert sorted(services) == listed
        for name in ("s3", "sts", "sso", "sso-oidc"):
            assert name in services
        assert "no-such-service" not in services
    assert looking.search_paths == listing.search_paths


def test_a_download_through_the_cut_model_gets_the_object(cut, clients, s3, tmp_path):
    uri = s3.put("cut-model", "code/sourcedir.tar.gz", b"the archive")
    destination = tmp_path / "sourcedir.tar.gz"

    s3_download(uri, destination)

    assert destination.read_bytes() == b"the archive"
    assert sorted(clients[-1].meta.service_model.operation_names) == sorted(s3_model.OPERATIONS)


@pytest.mark.parametrize("bucket_exists, missing", [(True, "object"), (False, "bucket")])
def test_a_missing_object_or_bucket_is_named_through_the_cut_model(cut, clients, s3, tmp_path, bucket_exists, missing):
    if bucket_exists:
        s3.put("cut-model-present", "other", b"")
    uri = f"s3://{'cut-model-present' if bucket_exists else 'cut-model-absent'}/code/sourcedir.tar.gz"

    with pytest.raises(DownloadError, match=f"the {missing} does not exist \\(404\\)"):
        s3_download(uri, tmp_path / "sourcedir.tar.gz")

    assert sorted(clients[-1].meta.service_model.operation_names) == sorted(s3_model.OPERATIONS)


def s3_download(uri, destination):
    download(uri, str(destination), "us-west-2", Retries(total_seconds=5.0, connect_seconds=5.0))
