"""A local cache of immutable remote data files, evicting least-recently-used files.

Delta Lake never rewrites a data file in place, so a file's URL is a correct
cache key forever. Files are downloaded to a temporary name and renamed into
place, so worker processes sharing one cache never see half a file. When the
cache grows past ``threshold`` of its capacity, the least recently used files
are deleted until it is back under the threshold.

A cache folder that cannot be created or written disables the cache with a
warning; reads then go straight to the object store.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import fsspec

__all__ = ["FileCache"]

log = logging.getLogger(__name__)


class FileCache:
    """Copy remote files to a local folder on first read; evict LRU past a threshold."""

    def __init__(self, root: Path | str, *, capacity_bytes: int, threshold: float = 0.8) -> None:
        if capacity_bytes <= 0 or not 0 < threshold <= 1:
            raise ValueError("cache capacity must be positive and threshold in (0, 1]")
        self.root = Path(root)
        self.capacity_bytes = capacity_bytes
        self.threshold = threshold
        self.hits = 0
        self.misses = 0
        self._usable: bool | None = None
        self._total: int | None = None
        self._lock = threading.Lock()

    @property
    def limit_bytes(self) -> int:
        """Return the size past which files are evicted."""
        return int(self.capacity_bytes * self.threshold)

    def _check_usable(self) -> bool:
        if self._usable is not None:
            return self._usable
        with self._lock:  # reader threads arrive together; probe (and warn) once
            if self._usable is None:
                try:
                    self.root.mkdir(parents=True, exist_ok=True)
                    probe = self.root / f".probe-{os.getpid()}-{threading.get_ident()}"
                    probe.write_bytes(b"")
                    probe.unlink()
                    self._usable = True
                except OSError as exc:
                    self._usable = False
                    message = (
                        f"data cache folder {self.root} is not usable ({exc.strerror or exc}); reading "
                        "directly from the object store, which is slower. Set QUANTFLEET_CACHE_DIR to a "
                        "writable folder to enable the cache."
                    )
                    warnings.warn(message, RuntimeWarning, stacklevel=4)
                    log.warning(message)
        return self._usable

    def path_for(self, url: str) -> Path:
        """Return where the cache keeps (or would keep) ``url``."""
        digest = hashlib.sha256(url.encode()).hexdigest()
        name = url.rsplit("/", 1)[-1][-80:]
        return self.root / digest[:2] / f"{digest[:24]}-{name}"

    def fetch(self, url: str, fs: fsspec.AbstractFileSystem) -> str | None:
        """Return a local path holding ``url``'s bytes, or None when the file cannot be cached.

        Errors reading ``url`` from ``fs`` propagate; errors writing the cache
        folder warn and return None, so the caller reads ``url`` directly.
        """
        # Delta data files are tens of MB at most; s3fs fetches large ones in
        # parallel ranges. Reading first keeps remote errors apart from local ones.
        return self._get(url, lambda: fs.cat_file(url), count=True)

    def fetch_built(self, key: str, build: Callable[[], bytes]) -> str | None:
        """Return a local path holding the bytes ``build()`` made for ``key``, calling it only on a miss.

        For things derived from immutable files, such as the file list of one
        snapshot: ``key`` must name exactly one content forever. They share the
        folder and its eviction with data files but not the hit and miss
        counters, which count data files. Errors of ``build`` propagate.
        """
        return self._get(key, build, count=False)

    def _get(self, key: str, load: Callable[[], bytes], *, count: bool) -> str | None:
        if not self._check_usable():
            return None
        target = self.path_for(key)
        try:
            os.utime(target)  # a hit: mark as recently used
        except (FileNotFoundError, NotADirectoryError):
            pass  # a miss; a file in the way of the folder makes _place warn below
        except OSError:
            return None
        else:
            if count:
                with self._lock:  # reader threads share the counters
                    self.hits += 1
            return str(target)
        if count:
            with self._lock:
                self.misses += 1
        data = load()
        if not self._place(key, target, data):
            return None
        self._added(len(data), keep=target)
        return str(target)

    def _place(self, url: str, target: Path, data: bytes) -> bool:
        """Write ``data`` to ``target`` atomically; warn and return False if the folder refuses."""
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            warnings.warn(
                f"could not cache {url} in {self.root} ({exc.strerror or exc}); reading it directly. "
                "Free space there or set QUANTFLEET_CACHE_DIR to a writable folder.",
                RuntimeWarning,
                stacklevel=4,
            )
            return False
        return True

    def _files(self) -> list[tuple[int, int, str]]:
        """Return (mtime_ns, size, path) of every cached file; skip ones deleted meanwhile."""
        out: list[tuple[int, int, str]] = []
        if not self.root.is_dir():
            return out
        for sub in os.scandir(self.root):
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub.path):
                if entry.name.startswith("."):  # in-flight downloads
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:  # another process evicted it
                    continue
                out.append((st.st_mtime_ns, st.st_size, entry.path))
        return out

    def size_bytes(self) -> int:
        """Return the bytes the cache holds now."""
        return sum(size for _, size, _ in self._files())

    def _added(self, size: int, *, keep: Path) -> None:
        with self._lock:
            if self._total is None:
                self._total = self.size_bytes()
            else:
                self._total += size
            if self._total > self.limit_bytes:
                self._total = self.evict(keep=keep)

    def evict(self, *, keep: Path | None = None) -> int:
        """Delete least-recently-used files until under the threshold; return the size left.

        ``keep`` (the file just fetched) is never deleted, so a file larger
        than the threshold stays until the next eviction.
        """
        entries = sorted(self._files())
        total = sum(size for _, size, _ in entries)
        for _, size, path in entries:
            if total <= self.limit_bytes:
                break
            if keep is not None and path == str(keep):
                continue
            with contextlib.suppress(FileNotFoundError):  # another process evicted it first
                os.unlink(path)
            total -= size
        return total
