"""Unpack a strategy archive (a ``.zip``) safely: run by the job's child, inside the sandbox, before any import.

An archive is the user's as much as its code is, so it is opened only where
the code runs (the sandboxed child), and refused whole, before a byte is
written, when it

- has more than ``max_members`` members, or declares more than ``max_bytes``
  unpacked (a zip bomb: a few KiB that inflate to gigabytes);
- has a member whose name is absolute, climbs out (``../x``), holds a
  backslash or a NUL, or repeats another's;
- has a member that is a symbolic link (or anything but a file or a folder).

While unpacking, every member is read in chunks and counted again, so a member
that inflates beyond its declared size (a forged header) stops the unpack at
the limit. Files are created exclusively and never through a link.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

from quantfleet.core.errors import UserError

__all__ = ["MAX_ARCHIVE_BYTES", "MAX_ARCHIVE_MEMBERS", "ArchiveRefused", "is_archive", "unpack_strategy"]

MAX_ARCHIVE_MEMBERS = 1000
MAX_ARCHIVE_BYTES = 256 * 1024**2
_CHUNK = 1 << 16


class ArchiveRefused(UserError):
    """A strategy archive is unsafe or too big to unpack; the message names the member and the fix."""


def is_archive(name: str) -> bool:
    """Return whether a code file named ``name`` is an archive to unpack."""
    return name.lower().endswith(".zip")


def _refuse(archive: Path, why: str) -> ArchiveRefused:
    return ArchiveRefused(f"strategy archive {archive.name} refused: {why}")


def _member_path(archive: Path, info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise _refuse(archive, f"member {name!r} is a symbolic link; pack the file itself, not a link to it")
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise _refuse(archive, f"member {name!r} is not a file or a folder")
    if "\\" in name or "\0" in name or not name.strip("/"):
        raise _refuse(archive, f"member {name!r} has an unsafe name (a backslash, a NUL or nothing)")
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or (path.parts and path.parts[0].endswith(":")):
        raise _refuse(archive, f"member {name!r} points outside the archive's folder (absolute or '..')")
    return path


def _check(archive: Path, infos: list[zipfile.ZipInfo], *, max_members: int, max_bytes: int) -> None:
    if len(infos) > max_members:
        raise _refuse(archive, f"{len(infos):,} members, above the limit of {max_members:,}; pack fewer files")
    declared = sum(info.file_size for info in infos)
    if declared > max_bytes:
        raise _refuse(
            archive,
            f"it unpacks to {declared:,} bytes, above the limit of {max_bytes:,}; a strategy archive holds code "
            "and small files only (the market data comes from the snapshot)",
        )
    seen: set[PurePosixPath] = set()
    for info in infos:
        path = _member_path(archive, info)
        if path in seen:
            raise _refuse(archive, f"member {info.filename!r} appears twice")
        seen.add(path)


def _write(archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: list[int]) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(target, flags, 0o600)
    written = 0
    with os.fdopen(fd, "wb") as out, zf.open(info) as member:
        while chunk := member.read(_CHUNK):
            written += len(chunk)
            budget[0] -= len(chunk)
            if written > info.file_size or budget[0] < 0:
                raise _refuse(archive, f"member {info.filename!r} inflates beyond its declared size")
            out.write(chunk)


def unpack_strategy(
    archive: Path,
    dest: Path,
    *,
    max_members: int = MAX_ARCHIVE_MEMBERS,
    max_bytes: int = MAX_ARCHIVE_BYTES,
) -> Path:
    """Unpack ``archive`` into ``dest`` (created, must not exist); return the strategy file in it.

    The strategy file is the only ``.py`` file at the archive's top level (its
    helpers go in folders beside it). Raise :class:`ArchiveRefused` (see the
    module docstring) before anything is written.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _refuse(archive, f"it is not a readable zip file ({exc}); pack it with 'zip -r'") from exc
    with zf:
        infos = zf.infolist()
        _check(archive, infos, max_members=max_members, max_bytes=max_bytes)
        dest.mkdir(mode=0o700)
        budget = [max_bytes]
        try:
            for info in infos:
                target = dest.joinpath(*_member_path(archive, info).parts)
                if info.is_dir():
                    target.mkdir(mode=0o700, parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                _write(archive, zf, info, target, budget)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
            raise _refuse(archive, f"a member cannot be unpacked ({exc})") from exc
    return _entry(archive, dest)


def _entry(archive: Path, dest: Path) -> Path:
    top = sorted(p for p in dest.glob("*.py") if p.is_file())
    if len(top) != 1:
        found = ", ".join(p.name for p in top) or "none"
        raise _refuse(
            archive,
            f"it needs exactly one .py file at its top level to run (found: {found}); put the strategy at the top "
            "and its helpers in a folder beside it",
        )
    return top[0]
