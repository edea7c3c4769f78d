"""Matrix, code rows through the real ``train``: archives that are broken, hostile or huge, odd
member names, entry points that are not files to run.

test_archive.py proves each case on ``archive.extract`` itself; here the same archives go through
the whole job (a local ``sagemaker_submit_directory``, so no network is involved), and
``run_checked`` (conftest) checks exit code, outcome files, time, nothing written outside the
job, no secret and no process left behind.
"""

import io
import os
import tarfile

import pytest
from test_archive import UNSAFE, corrupt_deflate_after_the_first_member, file, gzip_bomb, truncated_gzip, write_tar

from sagemaker_mxnet_container.settings import variable

MAX_BYTES_VARIABLE = variable("archive_max_bytes").name
MAX_MEMBERS_VARIABLE = variable("archive_max_members").name

PROGRAM = "train.py"
RUNS = b"import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'ran'), 'w').close()\n"


@pytest.fixture
def archive_job(make_job, tmp_path):
    """A job whose code is the archive at tmp_path/outside/sourcedir.tar.gz; tmp_path/outside is
    also where unsafe members aim."""
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = outside / "sourcedir.tar.gz"

    def make(program: str = PROGRAM):
        return make_job({"sagemaker_program": program, "sagemaker_submit_directory": str(archive)})

    make.archive = archive
    make.outside = outside
    return make


def assert_fails_before_running(finished, reason_start: str):
    assert finished.exit_code == 1
    assert finished.reason.startswith(reason_start), finished.failure
    assert not (finished.job.model_dir / "ran").exists()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"PK\x03\x04 a zip file, not a tar.gz", id="not-gzip"),
        pytest.param(truncated_gzip(), id="truncated"),
        pytest.param(corrupt_deflate_after_the_first_member(), id="corrupt-after-first-member"),
    ],
)
def test_an_archive_that_is_not_a_complete_tar_gz_fails_and_extracts_nothing(archive_job, run_checked, content):
    job = archive_job()
    archive_job.archive.write_bytes(content)

    finished = run_checked(job, within=30)

    assert_fails_before_running(
        finished, "the code archive sourcedir.tar.gz cannot be extracted (is it a complete .tar.gz?)"
    )
    assert not job.code_dir.exists()


@pytest.mark.parametrize("case", UNSAFE.values(), ids=UNSAFE.keys())
def test_every_unsafe_member_kind_fails_the_job_naming_the_member(archive_job, run_checked, case):
    job = archive_job()
    outside = str(archive_job.outside)
    members = [
        file(PROGRAM, RUNS),
        *[m._replace(name=m.name.replace("/OUTSIDE", outside)) for m in case.members],
    ]
    write_tar(archive_job.archive, members)
    blamed = case.blamed.replace("/OUTSIDE", outside)

    finished = run_checked(job, within=30)

    assert finished.exit_code == 1
    assert f"archive member {blamed!r}" in finished.reason
    assert case.words in finished.reason
    assert not job.code_dir.exists()
    assert not (job.base / "planted").exists() and not (job.base / "escaped").exists()


def test_a_gzip_bomb_fails_fast_on_the_configured_size_limit(archive_job, run_checked):
    job = archive_job()
    gzip_bomb(archive_job.archive, "zeros.bin", 200 * 1024 * 1024)

    finished = run_checked(job, {MAX_BYTES_VARIABLE: str(10 * 1024 * 1024)}, within=30)

    assert_fails_before_running(
        finished,
        "the code archive expands to more than 10485760 bytes, the limit (reached at archive member 'zeros.bin')",
    )
    assert not job.code_dir.exists()


def many_members(path, count: int):
    with tarfile.open(path, "w:gz") as archive:
        for name, data in [(PROGRAM, RUNS)] + [(f"data/{i:05d}.txt", b"x") for i in range(count - 1)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_thousands_of_members_extract_and_run(archive_job, run_checked):
    job = archive_job()
    many_members(archive_job.archive, 5000)

    finished = run_checked(job, within=60)

    assert finished.exit_code == 0, finished.stderr[-3000:]
    assert len(list((job.code_dir / "data").iterdir())) == 4999


def test_more_members_than_the_configured_limit_fail_and_extract_nothing(archive_job, run_checked):
    job = archive_job()
    many_members(archive_job.archive, 5000)

    finished = run_checked(job, {MAX_MEMBERS_VARIABLE: "1000"}, within=30)

    assert_fails_before_running(finished, "the code archive has more than 1000 members, the limit; nothing was")
    assert not job.code_dir.exists()


def latin1_named(path, names):
    """Member names written as raw Latin-1 bytes, as an old tar on a non-UTF-8 system does."""
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT, encoding="latin-1") as archive:
        for name, data in names:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_a_member_name_in_another_encoding_extracts_byte_for_byte(archive_job, run_checked):
    job = archive_job()
    latin1_named(archive_job.archive, [(PROGRAM, RUNS), ("donn\xe9es.txt", b"data")])

    finished = run_checked(job, within=30)

    assert finished.exit_code == 0, finished.stderr[-3000:]
    assert sorted(os.listdir(bytes(job.code_dir))) == [b"donn\xe9es.txt", b"train.py"]


def test_an_unsafe_member_name_in_another_encoding_is_named_readably(archive_job, run_checked):
    job = archive_job()
    latin1_named(archive_job.archive, [(PROGRAM, RUNS), ("../donn\xe9es.txt", b"data")])

    finished = run_checked(job, within=30)

    assert finished.exit_code == 1
    # The undecodable byte is shown escaped: the failure file stays valid UTF-8 on one line.
    assert finished.reason.startswith("unsafe archive member '../donn\\udce9es.txt': it climbs above")
    finished.failure.encode("utf-8")


@pytest.mark.parametrize(
    "program, reason",
    [
        ("pkg", "sagemaker_program 'pkg' is a directory in "),
        ("../train.py", "sagemaker_program '../train.py' points outside the code directory"),
        ("pkg/../../train.py", "sagemaker_program 'pkg/../../train.py' points outside the code directory"),
        ("missing.py", "entry point 'missing.py' not found in the code directory"),
    ],
)
def test_an_entry_point_that_is_not_a_file_in_the_code_fails_naming_it(archive_job, run_checked, program, reason):
    job = archive_job(program)
    write_tar(archive_job.archive, [file(PROGRAM, RUNS), file("pkg/__init__.py", b"")])
    # What ../train.py would name if it were followed: it must not run.
    (job.base / PROGRAM).write_bytes(RUNS)

    finished = run_checked(job, within=30)

    assert_fails_before_running(finished, reason)
