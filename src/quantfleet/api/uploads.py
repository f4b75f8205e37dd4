"""Strategy uploads: a .py file, or a zip archive checked from its central directory before anything is read.

An archive is refused (413 or 422, naming the limit) when it lists more
members than ``max_archive_members``, declares more than
``max_unpacked_bytes`` unpacked, or names a member outside itself (absolute,
``..``, backslashes, drive letters) or a symbolic link. Only the entry file is
then read, and never more than the limit even if its header lies.

Workers run one strategy file today, so the entry file is what is stored and
run; the archive's other members are checked but not kept.
"""

from __future__ import annotations

import ast
import io
import posixpath
import re
import stat
import zipfile
from dataclasses import dataclass

from quantfleet.api.errors import LimitExceeded, PayloadTooLarge
from quantfleet.api.settings import ApiSettings
from quantfleet.core.errors import UserError

__all__ = ["StrategyCode", "strategy_code"]

_PLAIN = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")


@dataclass(frozen=True, kw_only=True)
class StrategyCode:
    """The strategy file to store: its plain file name and bytes."""

    name: str
    data: bytes


def _plain_py_name(name: str, *, what: str) -> str:
    base = posixpath.basename(name)
    if not base.endswith(".py") or not _PLAIN.match(base) or base in (".py",):
        raise UserError(f"{what} {name!r}: give a Python file named like 'my_strategy.py' (letters, digits, _ - .)")
    return base


def _check_source(data: bytes, name: str) -> None:
    try:
        ast.parse(data, filename=name)
    except SyntaxError as exc:
        raise UserError(f"{name} line {exc.lineno}: {exc.msg}; fix the syntax error and submit again") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise UserError(f"{name} is not Python source this server can parse: {type(exc).__name__}") from None


def _unsafe(name: str) -> bool:
    if not name or "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name) or "\x00" in name:
        return True
    return any(part == ".." for part in name.split("/"))


def _from_archive(data: bytes, entry: str | None, limits: ApiSettings) -> StrategyCode:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise UserError(
            f"the strategy upload is not a readable zip archive ({exc}); send a .py file or a zip"
        ) from None
    with archive:
        members = archive.infolist()  # the central directory only: nothing is decompressed yet
        if len(members) > limits.max_archive_members:
            raise LimitExceeded(
                f"the archive lists {len(members)} members; the limit (max_archive_members) is "
                f"{limits.max_archive_members}"
            )
        declared = sum(m.file_size for m in members)
        if declared > limits.max_unpacked_bytes:
            raise PayloadTooLarge(
                f"the archive unpacks to {declared} bytes; "
                f"the limit (max_unpacked_bytes) is {limits.max_unpacked_bytes}"
            )
        for member in members:
            if _unsafe(member.filename):
                raise LimitExceeded(f"archive member {member.filename!r} points outside the archive; refused")
            if stat.S_ISLNK(member.external_attr >> 16):
                raise LimitExceeded(f"archive member {member.filename!r} is a symbolic link; refused")
        files = {m.filename: m for m in members if not m.is_dir()}
        if entry is None:
            candidates = [n for n in files if n.endswith(".py") and "/" not in n]
            if len(candidates) != 1:
                raise UserError(
                    "name the strategy file of the archive in the spec's 'entry' "
                    f"(top-level .py files: {', '.join(sorted(candidates)) or 'none'})"
                )
            entry = candidates[0]
        if entry not in files:
            raise UserError(f"the archive has no member {entry!r} (the spec's 'entry'); list it with 'unzip -l'")
        name = _plain_py_name(entry, what="entry")
        try:
            with archive.open(files[entry]) as handle:
                body = handle.read(limits.max_unpacked_bytes + 1)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError) as exc:
            raise UserError(f"the archive's member {entry!r} cannot be read: {exc}") from None
        if len(body) > limits.max_unpacked_bytes:
            raise PayloadTooLarge(f"{entry} unpacks past the limit (max_unpacked_bytes) of {limits.max_unpacked_bytes}")
    return StrategyCode(name=name, data=body)


def strategy_code(filename: str | None, data: bytes, *, entry: str | None, limits: ApiSettings) -> StrategyCode:
    """Return the strategy file of an upload (a .py file, or a zip archive's entry file), checked."""
    if len(data) > limits.max_upload_bytes:
        raise PayloadTooLarge(
            f"the upload has {len(data)} bytes; the limit (max_upload_bytes) is {limits.max_upload_bytes}"
        )
    if not data:
        raise UserError("the strategy upload is empty; send a .py file or a zip archive")
    name = filename or ""
    if name.lower().endswith(".zip") or data[:4] == b"PK\x03\x04":
        code = _from_archive(data, entry, limits)
    else:
        if entry is not None:
            raise UserError("'entry' names a file inside a zip archive; leave it out when uploading a .py file")
        code = StrategyCode(name=_plain_py_name(name, what="strategy file"), data=data)
    _check_source(code.data, code.name)
    return code
