"""Extracting the user's code archive: real tar files, built member by member in tmp_path.

An unsafe archive must fail before anything is written, with an error that names the member
(as repr, so a crafted name cannot forge lines in the failure file).
"""

import gzip
import io
import os
import stat
import tarfile
import time
import zlib
from pathlib import Path
from typing import List, NamedTuple, Set

import pytest

from sagemaker_mxnet_container.archive import Limits, check_members, extract
from sagemaker_mxnet_container.errors import ArchiveError, CodeError


class Member(NamedTuple):
    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    linkname: str = ""


def file(name: str, data: bytes = b"x") -> Member:
    return Member(name, tarfile.REGTYPE, data)


def directory(name: str) -> Member:
    return Member(name, tarfile.DIRTYPE)


def symlink(name: str, target: str) -> Member:
    return Member(name, tarfile.SYMTYPE, linkname=target)


def hardlink(name: str, target: str) -> Member:
    return Member(name, tarfile.LNKTYPE, linkname=target)


def write_tar(path: Path, members: List[Member], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type = member.type
            info.linkname = member.linkname
            info.mode = 0o755 if member.type == tarfile.DIRTYPE else 0o644
            info.size = len(member.data) if member.type == tarfile.REGTYPE else 0
            archive.addfile(info, io.BytesIO(member.data) if info.size else None)
    return path


class Layout(NamedTuple):
    """tmp_path/outside holds the archive and is the "outside" an unsafe member aims for;
    tmp_path/outside/job/code is where the code goes, so ``../..`` from it is still watched."""

    archive: Path
    outside: Path
    dest: Path


@pytest.fixture
def layout(tmp_path) -> Layout:
    outside = tmp_path / "outside"
    (outside / "job").mkdir(parents=True)
    return Layout(outside / "sourcedir.tar.gz", outside, outside / "job" / "code")


def tree(root: Path) -> Set[str]:
    """Every path under root, links included whether or not they resolve."""
    return {str(path.relative_to(root)) for path in root.rglob("*")} | {
        str(Path(dirpath, name).relative_to(root))
        for dirpath, dirnames, filenames in os.walk(root)
        for name in dirnames + filenames
    }


def test_a_normal_archive_extracts_files_directories_and_links_to_siblings(layout):
    write_tar(
        layout.archive,
        [
            file("train.py", b"print('hello')\n"),
            directory("pkg"),
            file("pkg/model.py", b"MODEL = 1\n"),
            symlink("pkg/alias.py", "model.py"),
            hardlink("pkg/copy.py", "pkg/model.py"),
            directory("pkg/data"),
            symlink("pkg/data/up", ".."),
        ],
    )

    extract(str(layout.archive), str(layout.dest))

    assert (layout.dest / "train.py").read_bytes() == b"print('hello')\n"
    assert (layout.dest / "pkg").is_dir()
    assert os.readlink(layout.dest / "pkg" / "alias.py") == "model.py"
    assert (layout.dest / "pkg" / "alias.py").read_bytes() == b"MODEL = 1\n"
    assert os.path.samefile(layout.dest / "pkg" / "copy.py", layout.dest / "pkg" / "model.py")
    assert not (layout.dest / "pkg" / "copy.py").is_symlink()
    assert (layout.dest / "pkg" / "data" / "up" / "model.py").read_bytes() == b"MODEL = 1\n"


def test_extraction_clears_setuid_and_group_other_write_bits(layout):
    with tarfile.open(layout.archive, "w:gz") as archive:
        info = tarfile.TarInfo("tool.sh")
        info.mode = 0o6777
        archive.addfile(info, io.BytesIO(b""))

    extract(str(layout.archive), str(layout.dest))

    mode = stat.S_IMODE((layout.dest / "tool.sh").stat().st_mode)
    assert mode & (stat.S_ISUID | stat.S_ISGID | stat.S_IWGRP | stat.S_IWOTH) == 0
    assert mode & stat.S_IXUSR


class Unsafe(NamedTuple):
    members: List[Member]
    blamed: str
    """The member the error must name."""
    words: str
    """What the error must say about it."""


UNSAFE = {
    "absolute name": Unsafe([file("/OUTSIDE/abs")], "/OUTSIDE/abs", "absolute paths are not allowed"),
    "parent name": Unsafe([file("../escaped")], "../escaped", "climbs above the code directory"),
    "parent name inside a path": Unsafe([file("a/../../escaped")], "a/../../escaped", "climbs above"),
    "symlink to an absolute path": Unsafe(
        [symlink("passwd", "/etc/passwd")], "passwd", "symbolic link to the absolute path '/etc/passwd'"
    ),
    "symlink climbing out": Unsafe([symlink("up", "../..")], "up", "climbs above"),
    "symlink that escapes only through another link (a -> ., b -> a/..)": Unsafe(
        [symlink("a", "."), symlink("b", "a/..")], "b", "climbs above"
    ),
    "symlink whose chain is followed through two links (a -> ., b -> a, c -> b/..)": Unsafe(
        [symlink("a", "."), symlink("b", "a"), symlink("c", "b/..")], "c", "climbs above"
    ),
    "symlink placed inside a linked directory (a -> ., a/l -> ../x)": Unsafe(
        [symlink("a", "."), symlink("a/l", "../x")], "a/l", "climbs above"
    ),
    "file written through a symlinked directory that points outside": Unsafe(
        [symlink("escape", "../../outside"), file("escape/planted")], "escape", "climbs above"
    ),
    "file written through links that point outside only once both exist": Unsafe(
        [symlink("s", "d/.."), symlink("d", "."), file("s/planted")], "s/planted", "climbs above"
    ),
    "symlink that a later link makes point outside": Unsafe(
        [symlink("s", "d/../planted"), symlink("d", ".")], "s", "through links that come later"
    ),
    "file written over a link that a later link makes point outside": Unsafe(
        [symlink("s", "d/../planted"), symlink("d", "."), file("s")], "s", "climbs above"
    ),
    "name that climbs through a link to the root (a -> ., a/../x)": Unsafe(
        [symlink("a", "."), file("a/../planted")], "a/../planted", "climbs above"
    ),
    "hard link to a parent path": Unsafe([hardlink("h", "../escaped")], "h", "climbs above"),
    "hard link to an absolute path": Unsafe(
        [hardlink("h", "/etc/passwd")], "h", "hard link to the absolute path '/etc/passwd'"
    ),
    "hard link through a symlink that points outside": Unsafe(
        [symlink("a", "."), hardlink("h", "a/../escaped")], "h", "climbs above"
    ),
    "character device": Unsafe([Member("tty", tarfile.CHRTYPE)], "tty", "device files and FIFOs"),
    "block device": Unsafe([Member("disk", tarfile.BLKTYPE)], "disk", "device files and FIFOs"),
    "FIFO": Unsafe([Member("pipe", tarfile.FIFOTYPE)], "pipe", "device files and FIFOs"),
    "name with a newline": Unsafe(
        [file("train.py\nERROR: forged line")], "train.py\nERROR: forged line", "control characters"
    ),
    "symlink target with a newline": Unsafe([symlink("l", "x\ny")], "l", "control characters"),
    "symlink over a directory, then a name through it (d/, d -> a/b/c, d/../../x)": Unsafe(
        [directory("d"), symlink("d", "a/b/c"), file("d/../../escaped")], "d", "would replace a directory"
    ),
    "symlink over a directory created for a file in it": Unsafe(
        [file("d/x.py"), symlink("d", "a/b/c")], "d", "would replace a directory"
    ),
    "symlink loop": Unsafe([symlink("a", "b"), symlink("b", "a")], "a", "too many levels of symbolic links"),
    "member that is the code directory itself": Unsafe([file(".")], ".", "names the code directory itself"),
}


@pytest.mark.parametrize("case", UNSAFE.values(), ids=UNSAFE.keys())
def test_an_unsafe_member_fails_the_whole_archive_before_anything_is_written(layout, case):
    members = [
        # The legitimate members come first, so a checker that extracted as it went would leave them.
        file("train.py", b"print('ok')\n"),
        *[m._replace(name=m.name.replace("/OUTSIDE", str(layout.outside))) for m in case.members],
        file("after.py"),
    ]
    blamed = case.blamed.replace("/OUTSIDE", str(layout.outside))
    write_tar(layout.archive, members)
    before = tree(layout.outside)

    with pytest.raises(ArchiveError) as raised:
        extract(str(layout.archive), str(layout.dest))

    message = str(raised.value)
    assert f"archive member {blamed!r}" in message
    assert case.words in message
    assert "\n" not in message
    assert tree(layout.outside) == before
    assert not layout.dest.exists()
    assert not (layout.outside / "planted").exists()
    assert not (layout.outside / "escaped").exists()


def test_archive_errors_are_code_errors_so_the_job_reports_them_as_its_cause(layout):
    write_tar(layout.archive, [file("../escaped")])

    with pytest.raises(CodeError):
        extract(str(layout.archive), str(layout.dest))


def test_links_that_fan_out_are_refused_without_following_every_path(layout):
    # l1 -> l0/../l0, l2 -> l1/../l1, ...: each is harmless alone, but l30 names 2**30 link
    # lookups; following them all would hang the job instead of failing it.
    members = [directory("d"), symlink("l0", "d")]
    members += [symlink(f"l{i}", f"l{i - 1}/../l{i - 1}") for i in range(1, 31)]
    write_tar(layout.archive, members)

    started = time.monotonic()
    with pytest.raises(ArchiveError, match="too many levels of symbolic links"):
        extract(str(layout.archive), str(layout.dest))
    assert time.monotonic() - started < 5
    assert not layout.dest.exists()


def test_check_members_accepts_the_members_of_a_safe_archive_as_a_list():
    members = []
    for member in [directory("pkg"), file("pkg/a.py"), symlink("pkg/b.py", "a.py"), hardlink("c.py", "pkg/a.py")]:
        info = tarfile.TarInfo(member.name)
        info.type = member.type
        info.linkname = member.linkname
        members.append(info)

    check_members(members)

    bad = tarfile.TarInfo("x")
    bad.type, bad.linkname = tarfile.SYMTYPE, "../y"
    with pytest.raises(ArchiveError, match=r"archive member 'x' \(link target '../y'\)"):
        check_members([*members, bad])


def random_bytes() -> bytes:
    return os.urandom(4096)


def truncated_gzip() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for index in range(8):
            info = tarfile.TarInfo(f"f{index}.py")
            data = os.urandom(4096)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


def gzip_of_text() -> bytes:
    return gzip.compress(b"plain text, not a tar archive\n" * 100)


def corrupt_deflate_after_the_first_member() -> bytes:
    # A byte-aligned deflate block header with the reserved type 3 is invalid in every zlib,
    # so the first member reads and the decompressor fails on the way to the second.
    # The member is large enough that opening the archive does not already decompress that far.
    info = tarfile.TarInfo("data.bin")
    info.size = 100 * 1024
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = compressor.compress(info.tobuf() + bytes(info.size)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return head + b"\x07" + bytes(64)


@pytest.mark.parametrize(
    "make", [random_bytes, bytes, truncated_gzip, gzip_of_text, corrupt_deflate_after_the_first_member]
)
def test_a_file_that_is_not_a_complete_archive_fails_clearly_and_writes_nothing(layout, make):
    layout.archive.write_bytes(make())

    with pytest.raises(ArchiveError) as raised:
        extract(str(layout.archive), str(layout.dest))

    assert "the code archive sourcedir.tar.gz cannot be extracted (is it a complete .tar.gz?)" in str(raised.value)
    assert not layout.dest.exists()


def test_uncompressed_and_other_compressions_extract_too(layout):
    for mode in ("w", "w:bz2", "w:xz"):
        write_tar(layout.archive, [file("train.py", mode.encode())], mode=mode)
        extract(str(layout.archive), str(layout.dest))
        assert (layout.dest / "train.py").read_bytes() == mode.encode()


def test_more_members_than_the_limit_fails_and_writes_nothing(layout):
    write_tar(layout.archive, [file(f"f{i}.py") for i in range(5)])

    with pytest.raises(ArchiveError, match="the code archive has more than 3 members, the limit"):
        extract(str(layout.archive), str(layout.dest), Limits(max_members=3))
    assert not layout.dest.exists()

    extract(str(layout.archive), str(layout.dest), Limits(max_members=5))
    assert len(list(layout.dest.iterdir())) == 5


def gzip_bomb(path: Path, name: str, size: int) -> Path:
    """A .tar.gz with one member of ``size`` zero bytes, compressed as it is written (~1000:1)."""
    header = tarfile.TarInfo(name)
    header.size = size
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    zeros = bytes(1024 * 1024)
    with open(path, "wb") as stream:
        stream.write(compressor.compress(header.tobuf(format=tarfile.GNU_FORMAT)))
        for _ in range(size // len(zeros)):
            stream.write(compressor.compress(zeros))
        stream.write(compressor.compress(bytes(2 * tarfile.RECORDSIZE)))
        stream.write(compressor.flush())
    return path


def test_a_gzip_bomb_fails_fast_on_the_total_size_limit_and_writes_nothing(layout):
    gzip_bomb(layout.archive, "zeros.bin", 50 * 1024 * 1024)
    assert layout.archive.stat().st_size < 1024 * 1024

    started = time.monotonic()
    with pytest.raises(ArchiveError) as raised:
        extract(str(layout.archive), str(layout.dest), Limits(max_total_bytes=1024 * 1024))
    elapsed = time.monotonic() - started

    assert str(raised.value) == (
        "the code archive expands to more than 1048576 bytes, the limit "
        "(reached at archive member 'zeros.bin'); nothing was extracted"
    )
    assert elapsed < 2
    assert not layout.dest.exists()


def test_the_size_limit_is_enforced_from_the_member_header_before_its_data_is_read(layout):
    # Cut the bomb right after its first member's header: had the extractor decompressed the
    # data to reach the next header, it would fail on the truncation instead of the limit.
    data = gzip_bomb(layout.archive, "zeros.bin", 50 * 1024 * 1024).read_bytes()
    layout.archive.write_bytes(data[:2048])

    with pytest.raises(ArchiveError, match="expands to more than 1048576 bytes"):
        extract(str(layout.archive), str(layout.dest), Limits(max_total_bytes=1024 * 1024))


def test_members_up_to_the_size_limit_extract(layout):
    write_tar(layout.archive, [file("a.bin", bytes(600)), file("b.bin", bytes(400))])

    extract(str(layout.archive), str(layout.dest), Limits(max_total_bytes=1000))

    assert (layout.dest / "a.bin").stat().st_size == 600
    with pytest.raises(ArchiveError, match=r"more than 999 bytes, the limit \(reached at archive member 'b.bin'\)"):
        extract(str(layout.archive), str(layout.outside / "other"), Limits(max_total_bytes=999))


def test_an_archive_of_dot_extracts_into_the_code_directory(layout):
    # What `tar -czf sourcedir.tar.gz -C src .` writes: a "." directory and "./"-prefixed names.
    write_tar(layout.archive, [directory("."), file("./train.py", b"1"), directory("./pkg"), file("./pkg/a.py", b"2")])

    extract(str(layout.archive), str(layout.dest))

    assert (layout.dest / "train.py").read_bytes() == b"1"
    assert (layout.dest / "pkg" / "a.py").read_bytes() == b"2"


@pytest.mark.parametrize(
    "name, problem",
    [
        ("n" * 256 + ".py", "a name in its path has 259 bytes, and the file system takes at most 255 (ENAMETOOLONG)"),
        ("pkg/" + "é" * 128, "a name in its path has 256 bytes"),  # 128 characters, 2 bytes each
        ("/".join(["d" * 250] * 17), "its path in the code directory has"),
    ],
    ids=["name of 259 bytes", "name of 256 bytes in UTF-8", "path of over 4096 bytes"],
)
def test_a_name_the_file_system_cannot_take_fails_naming_the_member_before_anything_is_written(
    layout, name, problem
):
    write_tar(layout.archive, [file("train.py"), file(name)])

    with pytest.raises(ArchiveError) as raised:
        extract(str(layout.archive), str(layout.dest))

    message = str(raised.value)
    assert message.startswith(f"archive member {name!r} cannot be extracted: ")
    assert problem in message and message.endswith("; nothing was extracted")
    assert "complete .tar.gz" not in message
    assert not layout.dest.exists()


def test_the_longest_names_the_file_system_takes_extract(layout):
    name = "n" * 252 + ".py"
    write_tar(layout.archive, [file(name, b"1")])

    extract(str(layout.archive), str(layout.dest))

    assert (layout.dest / name).read_bytes() == b"1"


def test_a_member_that_cannot_be_written_is_named_with_the_systems_error(layout):
    # A directory where the archive has a file: the write fails with EISDIR, not a read error.
    layout.dest.mkdir()
    (layout.dest / "model.bin").mkdir()
    write_tar(layout.archive, [file("train.py"), file("model.bin", b"weights")])

    with pytest.raises(ArchiveError) as raised:
        extract(str(layout.archive), str(layout.dest))

    assert str(raised.value).startswith("cannot extract archive member 'model.bin': Is a directory (EISDIR)")
