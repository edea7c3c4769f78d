"""Safe extraction of the user's code archive.

Every member is checked before anything is written: a member that would land outside the
destination, directly or through a link inside the archive, fails the whole extraction with
an error naming it. The peer toolkit renames such members and runs the job; a code archive
that tries this is either broken or hostile, and either way the job must not run it.
"""

import os
import tarfile
from dataclasses import dataclass
from typing import Dict, List

from sagemaker_mxnet_container.errors import ArchiveError

# Python 3.11.4+ (and distributions that backported PEP 706) raise these from the data filter.
_FILTER_ERRORS = (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()


@dataclass(frozen=True)
class Limits:
    """Bounds that stop an archive from filling the disk (a gzip bomb, millions of entries)."""

    max_members: int = 100_000
    max_total_bytes: int = 20 * 1024**3


class _Namespace:
    """The paths an archive creates, resolved the way the filesystem will resolve them.

    Symlinks are followed within the archive itself, so a chain such as ``a -> .`` followed by
    ``b -> a/..`` is seen to point outside even though each link looks harmless alone.
    """

    _MAX_LINK_DEPTH = 40

    def __init__(self):
        self.symlinks: Dict[str, str] = {}

    def resolve(self, parts: List[str], depth: int = 0) -> List[str]:
        """Resolves path components relative to the root; raises ValueError if they climb out."""
        if depth > self._MAX_LINK_DEPTH:
            raise ValueError("too many levels of symbolic links")
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
            if target is not None and index < len(parts) - 1:
                resolved = self.resolve(resolved[:-1] + target.split("/"), depth + 1)
        return resolved

    def resolve_target(self, link_parts: List[str], target: str) -> List[str]:
        parent = self.resolve(link_parts[:-1])
        return self.resolve(parent + target.split("/"))


def _describe(member: tarfile.TarInfo) -> str:
    # repr() keeps newlines and odd bytes in a member name from forging lines in the failure file.
    return f"archive member {member.name!r}"


def check_members(members: List[tarfile.TarInfo], limits: Limits = Limits()) -> None:
    """Raises ArchiveError for the first member that is unsafe to extract."""
    if len(members) > limits.max_members:
        raise ArchiveError(
            f"the code archive has {len(members)} members, more than the limit of {limits.max_members}"
        )
    namespace = _Namespace()
    total = 0
    for member in members:
        name = member.name
        if name.startswith("/") or os.path.isabs(name):
            raise ArchiveError(f"unsafe {_describe(member)}: absolute paths are not allowed")
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise ArchiveError(f"unsafe {_describe(member)}: device files and FIFOs are not allowed")
        parts = name.split("/")
        try:
            resolved = namespace.resolve(parts)
            if not resolved:
                if member.isdir():
                    continue
                raise ValueError("names the code directory itself")
            if member.issym():
                if member.linkname.startswith("/"):
                    raise ValueError(f"is a symbolic link to the absolute path {member.linkname!r}")
                namespace.resolve_target(parts, member.linkname)
                namespace.symlinks["/".join(resolved)] = member.linkname
            elif member.islnk():
                # Hard link targets are archive paths, relative to the extraction root.
                if member.linkname.startswith("/"):
                    raise ValueError(f"is a hard link to the absolute path {member.linkname!r}")
                namespace.resolve(member.linkname.split("/"))
        except ValueError as problem:
            target = f" (link target {member.linkname!r})" if member.issym() or member.islnk() else ""
            raise ArchiveError(f"unsafe {_describe(member)}{target}: it {problem}; nothing was extracted") from None
        total += max(member.size, 0)
        if total > limits.max_total_bytes:
            raise ArchiveError(
                f"the code archive expands to more than {limits.max_total_bytes} bytes "
                f"(reached at {_describe(member)})"
            )


def extract(archive_path: str, destination: str, limits: Limits = Limits()) -> None:
    """Checks every member of a tar archive (any compression), then extracts it."""
    try:
        with tarfile.open(archive_path, "r:*") as archive:
            members = archive.getmembers()
            check_members(members, limits)
            os.makedirs(destination, exist_ok=True)
            # Python's own "data" filter, where this Python has it, is a second line of defence
            # and also clears setuid bits and group/other write permission.
            if hasattr(tarfile, "data_filter"):
                archive.extractall(destination, members=members, filter="data")
            else:
                archive.extractall(destination, members=members)
    except ArchiveError:
        raise
    except _FILTER_ERRORS as error:
        raise ArchiveError(f"unsafe archive member refused while extracting: {error}") from None
    except (tarfile.TarError, EOFError, OSError, ValueError) as error:
        raise ArchiveError(
            f"the code archive {os.path.basename(archive_path)} cannot be extracted "
            f"(is it a complete .tar.gz?): {error}"
        ) from None
