"""Matrix, settings rows through the real ``train``: every ``SAGEMAKER_MXNET_*`` variable with a
value it does not accept ends the job at once, naming the variable, before anything of the
user's runs (the issue's ``abc`` was a traceback that never named it; ``nan`` a silent hang)."""

import pytest

from sagemaker_mxnet_container import settings

BAD = {
    "download_retry_seconds": "nan",
    "download_connect_seconds": "inf",
    "host_wait_seconds": "abc",
    "heartbeat_timeout_seconds": "-5",
    "archive_max_bytes": "1e9",
    "archive_max_members": "0",
    "host_addresses": "{not json",
    "ssh_dir": "~/.ssh",
    "installer": "conda",
    "cgroup": "yes",
}


def test_the_matrix_covers_every_declared_variable():
    assert set(BAD) == {declared.field for declared in settings.variables()}


@pytest.mark.parametrize("field, text", BAD.items(), ids=BAD.keys())
def test_a_bad_setting_fails_the_job_naming_it_before_any_code_runs(code_job, run_checked, field, text):
    declared = settings.variable(field)
    job = code_job("open(os.path.join(MARKERS, 'ran'), 'w').close()\n")

    finished = run_checked(job, {declared.name: text}, within=20)

    assert finished.exit_code == 1
    assert finished.reason.startswith(f"{declared.name} must be {declared.kind.accepted}, got {text!r}")
    assert "Traceback" not in finished.stderr
    assert not (code_job.markers / "ran").exists()
