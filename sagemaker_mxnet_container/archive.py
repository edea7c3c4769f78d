"""Safe extraction of the user's code archive.

Every member is checked before anything is written: a member that would land outside the
destination, directly or through a link inside the archive, fails the whole extraction with
an error naming it. The peer toolkit renames such members and runs the job; a code archive
that tries this is either broken or hostile, and either way the job must not run it.
"""

import lzma
import os
import tarfile
import zlib
from dataclasses import dataclass
from typing import Dict, Iterable, List, Set

from sagemaker_mxnet_container import settings
from sagemaker_mxnet_container.errors import ArchiveError, describe_os_error

# Python 3.11.4+ (and distributions that backported PEP 706) raise these from the data filter.
_FILTER_ERRORS = (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()
# Corrupt compressed data surfaces from the decompressor itself, not as a TarError.
_READ_ERRORS = (tarfile.TarError, EOFError, OSError, ValueError, zlib.error, lzma.LZMAError)


@dataclass(frozen=True)
class Limits:
    """Bounds that stop an archive from filling the disk (a gzip bomb, millions of entries)."""

    max_members: int = settings.variable("archive_max_members").default
    max_total_bytes: int = settings.variable("archive_max_bytes").default

    @classmethod
    def of(cls, operator: settings.Settings) -> "Limits":
        """What the image (or ``docker run -e``) set, or the defaults."""
        return cls(max_members=operator.archive_max_members, max_total_bytes=operator.archive_max_bytes)


class _Namespace:
    """The paths an archive creates, resolved the way the filesystem will resolve them.

    Symlinks are followed within the archive itself, so a chain such as ``a -> .`` followed by
    ``b -> a/..`` is seen to point outside even though each link looks harmless alone.
    """

    # Linux gives up (ELOOP) after this many links in one lookup; counting every link followed,
    # not the nesting depth, also keeps chains like a -> b/b, b -> c/c from taking exponential time.
    _MAX_LINKS_FOLLOWED = 40

    def __init__(self):
        self.symlinks: Dict[str, str] = {}
        self.directories: Set[str] = set()

    def resolve(self, parts: List[str], follow_last: bool) -> List[str]:
        """Resolves path components relative to the root; raises ValueError if they climb out.

        ``follow_last`` is False only where the filesystem replaces a final symlink instead of
        going through it (tarfile unlinks an existing path before creating a symlink there).
        """
        return self._resolve(parts, follow_last, [self._MAX_LINKS_FOLLOWED])

    def _resolve(self, parts: List[str], follow_last: bool, budget: List[int]) -> List[str]:
        resolved: List[str] = []
        for index, part in enumerate(parts):
            if part in ("", "."):
                continue
            if part == "..":
                if not resolved:
                    raise ValueError("climbs above the code directory")
                resolved.pop()
                continue
            resolved.append(part)
            target = self.symlinks.get("/".join(resolved))
            if target is None or (index == len(parts) - 1 and not follow_last):
                continue
            budget[0] -= 1
            if budget[0] < 0:
                raise ValueError("goes through too many levels of symbolic links")
            # Every link target was checked to be relative when the link was added.
            resolved = self._resolve(resolved[:-1] + target.split("/"), True, budget)
        return resolved

    def check_link(self, link: List[str], target: str) -> None:
        """Raises ValueError if the symlink at the resolved path ``link`` points outside."""
        # A loop is refused too: it is broken, and proving where a long chain ends is no cheaper
        # than following it.
        self.resolve(link[:-1] + target.split("/"), follow_last=True)


def _describe(member: tarfile.TarInfo) -> str:
    # repr() keeps newlines and odd bytes in a member name from forging lines in the failure file.
    return f"archive member {member.name!r}"


def _has_control_character(text: str) -> bool:
    return any(ord(character) < 0x20 or ord(character) == 0x7F for character in text)


# Linux's NAME_MAX and PATH_MAX: a longer name fails to extract (ENAMETOOLONG) halfway through.
_NAME_MAX = 255
_PATH_MAX = 4096


class _Checker:
    """Checks members as the archive is read, so a limit fails before the rest is decompressed."""

    def __init__(self, limits: Limits, destination: str = ""):
        self.limits = limits
        self.destination_bytes = len(os.fsencode(destination))
        self.namespace = _Namespace()
        self.links: Dict[str, tarfile.TarInfo] = {}
        self.count = 0
        self.total = 0

    def add(self, member: tarfile.TarInfo) -> None:
        self.count += 1
        if self.count > self.limits.max_members:
            raise ArchiveError(
                f"the code archive has more than {self.limits.max_members} members, the limit; nothing was extracted"
            )
        name = member.name
        if name.startswith("/") or os.path.isabs(name):
            raise ArchiveError(f"unsafe {_describe(member)}: absolute paths are not allowed; nothing was extracted")
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise ArchiveError(
                f"unsafe {_describe(member)}: device files and FIFOs are not allowed; nothing was extracted"
            )
        is_link = member.issym() or member.islnk()
        if _has_control_character(name) or (is_link and _has_control_character(member.linkname)):
            raise ArchiveError(
                f"unsafe {_describe(member)}: names with control characters such as newlines are not allowed; "
                "nothing was extracted"
            )
        self._check_length(member)
        try:
            self._place(member)
        except ValueError as problem:
            target = f" (link target {member.linkname!r})" if is_link else ""
            raise ArchiveError(f"unsafe {_describe(member)}{target}: it {problem}; nothing was extracted") from None
        self.total += max(member.size, 0)
        if self.total > self.limits.max_total_bytes:
            raise ArchiveError(
                f"the code archive expands to more than {self.limits.max_total_bytes} bytes, the limit "
                f"(reached at {_describe(member)}); nothing was extracted"
            )

    def _check_length(self, member: tarfile.TarInfo) -> None:
        longest = max(len(os.fsencode(part)) for part in member.name.split("/"))
        if longest > _NAME_MAX:
            raise ArchiveError(
                f"{_describe(member)} cannot be extracted: a name in its path has {longest} bytes, and the file "
                f"system takes at most {_NAME_MAX} (ENAMETOOLONG); nothing was extracted"
            )
        path_bytes = self.destination_bytes + 1 + len(os.fsencode(member.name))
        if path_bytes >= _PATH_MAX:
            raise ArchiveError(
                f"{_describe(member)} cannot be extracted: its path in the code directory has {path_bytes} bytes, "
                f"and the file system takes fewer than {_PATH_MAX} (ENAMETOOLONG); nothing was extracted"
            )

    def _place(self, member: tarfile.TarInfo) -> None:
        parts = member.name.split("/")
        # Writing a file or directory over an existing symlink goes through it (open, chmod and
        # utime all follow links); only a new symlink replaces the old one.
        resolved = self.namespace.resolve(parts, follow_last=not member.issym())
        if not resolved:
            if member.isdir():
                return
            raise ValueError("names the code directory itself")
        # tarfile creates missing parent directories on the way.
        self.namespace.directories.update("/".join(resolved[:end]) for end in range(1, len(resolved)))
        key = "/".join(resolved)
        if member.isdir():
            self.namespace.directories.add(key)
        if member.issym():
            if member.linkname.startswith("/"):
                raise ValueError(f"is a symbolic link to the absolute path {member.linkname!r}")
            if key in self.namespace.directories:
                # tarfile cannot unlink the directory, leaves it in place and carries on, so
                # paths through it would no longer go where the link says.
                raise ValueError("would replace a directory that earlier members created")
            self.namespace.check_link(resolved, member.linkname)
            self.namespace.symlinks[key] = member.linkname
            self.links[key] = member
        elif member.islnk():
            # Hard link targets are archive paths, relative to the extraction root; os.link
            # follows a symlink it is given.
            if member.linkname.startswith("/"):
                raise ValueError(f"is a hard link to the absolute path {member.linkname!r}")
            self.namespace.resolve(member.linkname.split("/"), follow_last=True)

    def finish(self) -> None:
        """Rechecks every symlink against the final tree.

        A link added later can change where an earlier one points (``a -> d/..`` is harmless
        until ``d -> .`` arrives), and the earlier link stays in the code directory.
        """
        for key, target in self.namespace.symlinks.items():
            try:
                self.namespace.check_link(key.split("/"), target)
            except ValueError as problem:
                member = self.links[key]
                raise ArchiveError(
                    f"unsafe {_describe(member)} (link target {target!r}): it {problem} "
                    "through links that come later in the archive; nothing was extracted"
                ) from None


def check_members(members: Iterable[tarfile.TarInfo], limits: Limits = Limits(), destination: str = "") -> None:
    """Raises ArchiveError for the first member that is unsafe to extract (into ``destination``)."""
    checker = _Checker(limits, destination)
    for member in members:
        checker.add(member)
    checker.finish()


def _read_members(archive: tarfile.TarFile, limits: Limits, destination: str) -> List[tarfile.TarInfo]:
    members: List[tarfile.TarInfo] = []

    def recorded():
        # Iterating reads one header at a time: a member over a limit fails before its data (or
        # the next million headers) is decompressed.
        for member in archive:
            members.append(member)
            yield member

    check_members(recorded(), limits, destination)
    return members


def extract(archive_path: str, destination: str, limits: Limits = Limits()) -> None:
    """Checks every member of a tar archive (any compression), then extracts it.

    A member that cannot be written (a full disk, a read-only volume) fails with an ArchiveError
    naming it and the system's error; the caller removes what was extracted before it.
    """
    try:
        with tarfile.open(archive_path, "r:*") as archive:
            members = _read_members(archive, limits, destination)
            _write(archive, members, destination)
    except ArchiveError:
        raise
    except _FILTER_ERRORS as error:
        raise ArchiveError(f"unsafe archive member refused while extracting: {error}") from None
    except _READ_ERRORS as error:
        raise ArchiveError(
            f"the code archive {os.path.basename(archive_path)} cannot be extracted "
            f"(is it a complete .tar.gz?): {error}"
        ) from None


def _write(archive: tarfile.TarFile, members: List[tarfile.TarInfo], destination: str) -> None:
    current: List[tarfile.TarInfo] = []

    def tracked():
        for member in members:
            current[:] = [member]
            yield member

    try:
        os.makedirs(destination, exist_ok=True)
        # Python's own "data" filter, where this Python has it, is a second line of defence and
        # also clears setuid bits and group/other write permission.
        if hasattr(tarfile, "data_filter"):
            archive.extractall(destination, members=tracked(), filter="data")
        else:
            archive.extractall(destination, members=tracked())
    except OSError as error:
        # A read error (corrupt data) has no errno; one from the file system names what to fix.
        if error.errno is None:
            raise
        where = _describe(current[0]) if current else f"into {destination}"
        raise ArchiveError(f"cannot extract {where}: {describe_os_error(error)}") from None
