"""Job logs as numbered part objects, so they can be followed live on S3 too (S3 cannot append).

A worker's :class:`LogWriter` buffers text and, on each ``flush``, stores the
buffer as the next part: ``logs/<job>/<attempt>/00001.txt``, ``00002.txt``, ...
A reader concatenates the parts (by number) and reads from a byte offset, so
``read_log(..., offset=chunk.next_offset)`` follows the log as it grows.

An attempt's log is capped (10 MiB by default): what passes the cap is dropped
and one truncation marker says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from quantfleet.store import ObjectStore

__all__ = ["LOG_CAP_BYTES", "LogWriter", "log_prefix", "part_key", "read_parts"]

LOG_CAP_BYTES = 10 * 1024 * 1024
PART_DIGITS = 5


def log_prefix(job_id: str, attempt: int) -> str:
    """Return the object-key folder of one attempt's log parts."""
    return f"logs/{job_id}/{attempt}"


def part_key(job_id: str, attempt: int, number: int) -> str:
    """Return the object key of part ``number`` (from 1) of an attempt's log."""
    return f"{log_prefix(job_id, attempt)}/{number:0{PART_DIGITS}d}.txt"


def _truncation_marker(cap: int) -> str:
    size = f"{cap / 1024 / 1024:g} MiB" if cap >= 1024 * 1024 else f"{cap} bytes"
    return f"\n[quantfleet: log truncated at {size}; later output was dropped]\n"


class LogWriter:
    """Write one attempt's log as numbered parts. Thread-safe; use as a context manager to close it.

    ``write`` only buffers; ``flush`` stores what is buffered as one part
    (nothing if the buffer is empty); ``close`` flushes. Bytes past
    ``cap_bytes`` are dropped, and a marker says so once.
    """

    def __init__(
        self,
        objects: ObjectStore,
        job_id: str,
        attempt: int,
        *,
        cap_bytes: int = LOG_CAP_BYTES,
        on_part: Callable[[int], None] | None = None,
    ) -> None:
        self._objects = objects
        self._job_id = job_id
        self._attempt = attempt
        self._cap = cap_bytes
        self._on_part = on_part
        self._buffer: list[str] = []
        self._lock = threading.Lock()
        self._written = 0  # bytes accepted so far (buffered or stored), marker excluded
        self._truncated = False
        self._closed = False
        existing = objects.list(log_prefix(job_id, attempt))
        self._next_part = 1 + max((_part_number(o.key) for o in existing), default=0)
        self._written = sum(o.size for o in existing)

    @property
    def truncated(self) -> bool:
        """Return whether output was dropped at the cap."""
        return self._truncated

    @property
    def bytes_written(self) -> int:
        """Return how many bytes of output were accepted (at most the cap)."""
        return self._written

    def write(self, text: str) -> None:
        """Buffer ``text``; what passes the cap is dropped."""
        if not text:
            return
        with self._lock:
            if self._closed:
                raise ValueError("write to a closed LogWriter")
            if self._truncated:
                return
            data = text.encode("utf-8", errors="replace")
            room = self._cap - self._written
            if len(data) <= room:
                self._buffer.append(text)
                self._written += len(data)
                return
            # Cut at a character boundary within the room left.
            kept = data[:room].decode("utf-8", errors="ignore")
            self._buffer.append(kept)
            self._written += len(kept.encode("utf-8"))
            self._buffer.append(_truncation_marker(self._cap))
            self._truncated = True

    def flush(self) -> None:
        """Store what is buffered as the next part."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._buffer:
            return
        text = "".join(self._buffer)
        number = self._next_part
        self._objects.put(part_key(self._job_id, self._attempt, number), text.encode("utf-8"))
        self._buffer.clear()
        self._next_part += 1
        if self._on_part is not None:
            self._on_part(number)

    def close(self) -> None:
        """Flush and refuse further writes."""
        with self._lock:
            if self._closed:
                return
            self._flush_locked()
            self._closed = True

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _part_number(key: str) -> int:
    name = key.rsplit("/", 1)[-1]
    stem = name.split(".", 1)[0]
    return int(stem) if stem.isdigit() else 0


def read_parts(objects: ObjectStore, job_id: str, attempt: int, offset: int = 0) -> tuple[str, int]:
    """Return the text of an attempt's log parts from byte ``offset``, and the offset to read from next."""
    if offset < 0:
        raise ValueError(f"offset {offset} is negative; start at 0")
    parts = sorted(
        (p for p in objects.list(log_prefix(job_id, attempt)) if _part_number(p.key) > 0),
        key=lambda p: _part_number(p.key),
    )
    chunks: list[bytes] = []
    position = 0
    for part in parts:
        end = position + part.size
        if end > offset:
            start = max(0, offset - position)
            data = objects.get(part.key)
            chunks.append(data[start:])
        position = end
    data = b"".join(chunks)
    return data.decode("utf-8", errors="replace"), max(offset, position)
