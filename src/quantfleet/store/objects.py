"""Objects (code, logs, artifacts) under one fsspec root: a local folder or an ``s3://`` prefix.

Keys are relative ``/``-separated paths (``code/<sha256>``, ``logs/<job>/<attempt>/00001.txt``).
Writes are atomic: locally a temporary file in the same folder renamed into
place; on S3 a single PUT, which is atomic by itself. Failures to reach the
store raise :class:`~quantfleet.core.errors.StorageUnavailable`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from quantfleet.core.errors import StorageUnavailable
from quantfleet.store.errors import ObjectNotFound

__all__ = ["ObjectInfo", "ObjectStore"]


@dataclass(frozen=True)
class ObjectInfo:
    """A stored object's key (relative to the root) and size in bytes."""

    key: str
    size: int


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad object key {key!r}: use a relative path without '.', '..' or empty parts")
    return key


class ObjectStore:
    """Read and write objects under ``root`` (a path, ``file://`` URL or ``s3://bucket/prefix``).

    ``fs`` is the fsspec filesystem to use for remote roots (built by the caller
    with its endpoint and credentials, e.g. ``StorageOptions.filesystem``);
    local roots use the local filesystem.
    """

    def __init__(self, root: str, *, fs: fsspec.AbstractFileSystem | None = None) -> None:
        if root.startswith("file://"):
            root = root[len("file://") :]
        self.remote = "://" in root
        if self.remote:
            self.root = root.rstrip("/")
            protocol = self.root.split("://", 1)[0]
            self.fs = fs if fs is not None else fsspec.filesystem(protocol)
        else:
            self.root = str(Path(root).expanduser().resolve())
            self.fs = fsspec.filesystem("file")

    def url(self, key: str) -> str:
        """Return the full URL (or local path) of ``key``."""
        return f"{self.root}/{_check_key(key)}"

    def _path(self, key: str) -> str:
        # s3fs takes bucket/key without the scheme; the local filesystem a plain path.
        url = self.url(key)
        return url.split("://", 1)[1] if self.remote else url

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (ObjectNotFound, StorageUnavailable, ValueError):
            raise
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"no object {what} in the object store at {self.root}") from exc
        except Exception as exc:  # botocore, aiohttp and OSError come in many kinds
            raise StorageUnavailable(
                f"cannot reach the object store at {self.root} ({what}): {type(exc).__name__}: {exc}. "
                "Check QUANTFLEET_OBJECTS_URL, QUANTFLEET_S3_ENDPOINT_URL and the credentials."
            ) from exc

    def put(self, key: str, data: bytes) -> str:
        """Write ``data`` under ``key`` atomically (replacing it); return its URL."""
        path = self._path(key)
        with self._errors(key):
            if self.remote:
                self.fs.pipe_file(path, data)
            else:
                _atomic_write(Path(path), data)
        return self.url(key)

    def put_file(self, key: str, source: Path) -> str:
        """Copy the local file ``source`` under ``key`` atomically; return its URL."""
        path = self._path(key)
        with self._errors(key):
            if self.remote:
                self.fs.put_file(str(source), path)
            else:
                target = Path(path)
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
                os.close(fd)
                try:
                    with open(source, "rb") as src, open(tmp, "wb") as dst:
                        while chunk := src.read(1 << 20):
                            dst.write(chunk)
                    os.replace(tmp, target)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
        return self.url(key)

    def get(self, key: str) -> bytes:
        """Return the bytes under ``key``; :class:`ObjectNotFound` if there are none."""
        with self._errors(key):
            data: bytes = self.fs.cat_file(self._path(key))
            return data

    def get_range(self, key: str, start: int, end: int | None = None) -> bytes:
        """Return bytes ``start:end`` of the object under ``key``."""
        with self._errors(key):
            data: bytes = self.fs.cat_file(self._path(key), start=start, end=end)
            return data

    def exists(self, key: str) -> bool:
        """Return whether an object is stored under ``key``."""
        with self._errors(key):
            return bool(self.fs.exists(self._path(key)))

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Return the objects directly or indirectly under ``prefix`` (a folder key), sorted by key."""
        base = self._path(_check_key(prefix.rstrip("/")))
        with self._errors(prefix):
            try:
                found: dict[str, Any] = self.fs.find(base, detail=True)
            except FileNotFoundError:
                return []
        out = []
        for name, info in found.items():
            if info.get("type") == "directory":
                continue
            rel = name[len(base.rstrip("/")) + 1 :] if name.startswith(base) else name.rsplit("/", 1)[-1]
            if rel.rsplit("/", 1)[-1].startswith("."):  # a local temporary file, mid-write
                continue
            out.append(ObjectInfo(key=f"{prefix.rstrip('/')}/{rel}", size=int(info.get("size") or 0)))
        return sorted(out, key=lambda o: o.key)

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under ``prefix`` (and, locally, its folder); nothing happens if there are none."""
        if not self.remote:
            folder = Path(self._path(_check_key(prefix.rstrip("/"))))
            if folder.is_dir():
                with self._errors(prefix):
                    shutil.rmtree(folder)
            return
        paths = [self._path(info.key) for info in self.list(prefix)]
        if paths:
            with self._errors(prefix):
                self.fs.rm(paths)


def _atomic_write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
