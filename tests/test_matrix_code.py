"""Matrix, code rows through the real ``train``: archives that are broken, hostile or huge, odd
member names, entry points that are not files to run.

test_archive.py proves each case on ``archive.extract`` itself; here the same archives go through
the whole job (a local ``sagemaker_submit_directory``, so no network is involved), and
``run_checked`` (conftest) checks exit code, outcome files, time, nothing written outside the
job, no secret and no process left behind.
"""

import io
import json
import os
import stat
import sys
import tarfile

import pytest
from conftest import train_command
from test_archive import UNSAFE, corrupt_deflate_after_the_first_member, file, gzip_bomb, truncated_gzip, write_tar
from test_matrix_user_code import needs_mounts, small_tmpfs

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


# Local code directories: copied only after every entry is checked, within the same limits as an
# archive; a copy or an extraction that fails leaves nothing of itself in code/.


@pytest.fixture
def directory_job(make_job, tmp_path):
    """A job whose code is the directory tmp_path/source (holding the program that runs)."""
    source = tmp_path / "source"
    source.mkdir()
    (source / PROGRAM).write_bytes(RUNS)

    def make():
        return make_job({"sagemaker_program": PROGRAM, "sagemaker_submit_directory": str(source)})

    make.source = source
    return make


def bind_unix_socket(path):
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    return sock


@pytest.mark.parametrize("kind", ["FIFO", "socket"])
def test_a_local_directory_holding_what_cannot_be_copied_fails_naming_it(directory_job, run_checked, kind):
    job = directory_job()
    (directory_job.source / "data").mkdir()
    entry = directory_job.source / "data" / "feed"
    if kind == "FIFO":
        os.mkfifo(entry)
        described = "a FIFO (named pipe)"
    else:
        sock = bind_unix_socket(entry)
        described = "a socket"

    # Before: the FIFO blocked the copy for ever; the socket was an internal error with a traceback.
    finished = run_checked(job, within=20)

    assert_fails_before_running(finished, f"cannot copy 'data/feed' from {directory_job.source}: it is {described}")
    assert "remove it from the code directory. Nothing was copied" in finished.reason
    assert not job.code_dir.exists()
    if kind == "socket":
        sock.close()


@pytest.mark.parametrize(
    "variable, value, reason",
    [
        (MAX_BYTES_VARIABLE, "1000", f"holds more than 1000 bytes, the limit ({MAX_BYTES_VARIABLE}; reached at"),
        (MAX_MEMBERS_VARIABLE, "10", f"holds more than 10 entries, the limit ({MAX_MEMBERS_VARIABLE})"),
    ],
)
def test_a_local_directory_over_the_limits_fails_and_copies_nothing(
    directory_job, run_checked, variable, value, reason
):
    job = directory_job()
    for index in range(20):
        (directory_job.source / f"part-{index}.bin").write_bytes(b"p" * 100)

    finished = run_checked(job, {variable: value}, within=20)

    assert_fails_before_running(finished, f"{directory_job.source} {reason}")
    assert not job.code_dir.exists()


def test_a_local_copy_keeps_links_and_drops_setuid_and_group_write(directory_job, run_checked):
    job = directory_job()
    (directory_job.source / "pkg").mkdir()
    (directory_job.source / "pkg" / "tool.sh").write_text("echo hi\n")
    os.chmod(directory_job.source / "pkg" / "tool.sh", 0o6777)
    os.symlink("pkg/tool.sh", directory_job.source / "tool")

    finished = run_checked(job)

    assert finished.exit_code == 0, finished.failure
    assert os.readlink(job.code_dir / "tool") == "pkg/tool.sh"
    assert stat.S_IMODE((job.code_dir / "pkg" / "tool.sh").stat().st_mode) == 0o755


def test_a_code_directory_that_is_a_file_is_named(directory_job, run_checked):
    job = directory_job()
    job.code_dir.write_text("not a directory")

    finished = run_checked(job, within=20)

    assert_fails_before_running(finished, f"{job.code_dir} exists but is not a directory: remove it")


BIG = b"z" * (2 * 1024 * 1024)

# Mounts, runs train, then lists code/ into a file of the job before the namespace (and its
# tmpfs) is gone: the only way to see what train left on the full disk.
MOUNT_TRAIN_THEN_LIST = """
import json, os, subprocess, sys
mounts, code_dir, listing = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
for argv in mounts:
    subprocess.run(argv, check=True)
exit_code = subprocess.run(sys.argv[4:]).returncode
with open(listing, "w") as stream:
    json.dump(sorted(os.listdir(code_dir)), stream)
sys.exit(exit_code)
"""


def train_on_a_small_code_volume(job, size):
    return [
        "unshare", "--mount", "--propagation", "private", sys.executable, "-c", MOUNT_TRAIN_THEN_LIST,
        json.dumps([list(mount) for mount in small_tmpfs(job.code_dir, size)]), str(job.code_dir),
        str(job.base / "code-listing.json"), *train_command(),
    ]  # fmt: skip


@needs_mounts
@pytest.mark.parametrize("source", ["directory", "archive"])
def test_code_larger_than_the_disk_fails_naming_the_entry_and_leaves_no_partial_code(
    directory_job, archive_job, run_checked, source
):
    # code/ is a 1 MiB tmpfs: the program fits, the 2 MiB file after it does not.
    if source == "directory":
        job = directory_job()
        (directory_job.source / "weights.bin").write_bytes(BIG)
        expected = f"cannot copy 'weights.bin' from {directory_job.source} into {job.code_dir}: "
    else:
        job = archive_job()
        write_tar(archive_job.archive, [file(PROGRAM, RUNS), file("weights.bin", BIG)])
        expected = "cannot extract archive member 'weights.bin': "
    job.code_dir.mkdir()

    finished = run_checked(job, command=train_on_a_small_code_volume(job, "1m"), within=30)

    assert_fails_before_running(finished, expected + "No space left on device (ENOSPC); the job's volume is full")
    assert "complete .tar.gz" not in finished.failure
    # Before: the program that fitted stayed in code/, beside a truncated weights.bin.
    assert json.loads((job.base / "code-listing.json").read_text()) == []


@pytest.mark.parametrize("name", ["model", "output/data"])
def test_a_file_where_the_job_needs_a_directory_is_named(code_job, run_checked, name):
    job = code_job("open(os.path.join(MARKERS, 'ran'), 'w').close()\n")
    (job.base / name).parent.mkdir(parents=True, exist_ok=True)
    (job.base / name).write_text("in the way")

    # Before: FileExistsError, an internal error with a traceback.
    finished = run_checked(job, within=20)

    assert finished.exit_code == 1
    blocked = f"{job.base / name} is a file, but the job needs it as a directory"
    assert finished.reason.startswith(blocked), finished.failure
    assert "Traceback" not in finished.stderr
    assert not (code_job.markers / "ran").exists()
