"""Copies a local code directory into the code directory, checked before anything is written.

Like an archive, the directory may hold only files, directories and symbolic links (copied as
links), within the operator's limits on entries and bytes. A FIFO would block the copy forever,
a socket or a device cannot be copied at all, and a directory larger than the disk would fill it:
each fails the job naming the entry, before anything is copied.
"""

import os
import shutil
import stat
from typing import List, Tuple

from sagemaker_mxnet_container.errors import CodeError, describe_os_error

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}
_DIRECTORY, _FILE, _LINK = "directory", "file", "link"


def _shown(path: str) -> str:
    return path if path.isprintable() else repr(path)


def check(source: str, max_entries: int, max_bytes: int) -> List[Tuple[str, str]]:
    """Every entry under ``source`` as (path relative to it, kind), parents before children;
    raises CodeError for the first entry that cannot be copied or that passes a limit."""
    entries: List[Tuple[str, str]] = []
    total = 0
    pending = [""]
    while pending:
        relative = pending.pop()
        try:
            with os.scandir(os.path.join(source, relative)) as listing:
                found = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            raise CodeError(
                f"cannot read {_shown(os.path.join(source, relative))}: {describe_os_error(error)}; nothing was copied"
            ) from None
        for entry in found:
            path = os.path.join(relative, entry.name)
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                kind = _LINK
            elif stat.S_ISDIR(mode):
                kind = _DIRECTORY
                pending.append(path)
            elif stat.S_ISREG(mode):
                kind = _FILE
                total += entry.stat(follow_symlinks=False).st_size
            else:
                raise CodeError(
                    f"cannot copy {_shown(path)!r} from {_shown(source)}: it is "
                    f"{_KINDS.get(stat.S_IFMT(mode), 'not a file')}, and only files, directories and symbolic links "
                    "can be code; remove it from the code directory. Nothing was copied"
                )
            entries.append((path, kind))
            if len(entries) > max_entries:
                raise CodeError(
                    f"{_shown(source)} holds more than {max_entries} entries, the limit "
                    "(SAGEMAKER_MXNET_ARCHIVE_MAX_MEMBERS); nothing was copied"
                )
            if total > max_bytes:
                raise CodeError(
                    f"{_shown(source)} holds more than {max_bytes} bytes, the limit "
                    f"(SAGEMAKER_MXNET_ARCHIVE_MAX_BYTES; reached at {_shown(path)!r}); nothing was copied"
                )
    return entries


def copy(source: str, destination: str, max_entries: int, max_bytes: int) -> None:
    """Copies ``source`` into ``destination`` (created if missing); raises CodeError naming the
    entry that could not be copied. The caller removes a partial copy.

    As with archives, setuid and setgid bits and group and other write permission are dropped.
    """
    entries = check(source, max_entries, max_bytes)
    os.makedirs(destination, exist_ok=True)
    for relative, kind in entries:
        path, target = os.path.join(source, relative), os.path.join(destination, relative)
        try:
            if kind == _DIRECTORY:
                os.makedirs(target, exist_ok=True)
                continue
            if os.path.islink(target) or os.path.isfile(target):
                # Written through, a link already there would send the copy wherever it points.
                os.unlink(target)
            if kind == _LINK:
                os.symlink(os.readlink(path), target)
            else:
                _copy_file(path, target)
        except OSError as error:
            raise CodeError(
                f"cannot copy {_shown(relative)!r} from {_shown(source)} into {destination}: "
                f"{describe_os_error(error)}. Nothing was copied"
            ) from None
    for relative, kind in reversed(entries):
        if kind == _DIRECTORY:
            _copy_mode(os.path.join(source, relative), os.path.join(destination, relative))


def _copy_file(path: str, target: str) -> None:
    # The entry was a file when checked; opened without following a link and without blocking, a
    # FIFO put in its place since is refused instead of hanging the job.
    source_fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with open(source_fd, "rb") as source:
        if not stat.S_ISREG(os.fstat(source_fd).st_mode):
            raise CodeError(f"cannot copy {_shown(path)}: it stopped being a regular file while it was copied")
        with open(target, "xb") as copied:
            shutil.copyfileobj(source, copied, 1024 * 1024)
    _copy_mode(path, target)


def _copy_mode(path: str, target: str) -> None:
    shutil.copystat(path, target, follow_symlinks=False)
    mode = stat.S_IMODE(os.lstat(target).st_mode)
    os.chmod(target, mode & ~(stat.S_ISUID | stat.S_ISGID | stat.S_IWGRP | stat.S_IWOTH))
