"""Pump a child's output into the job's log as it runs.

A thread reads the child's stdout/stderr pipe in chunks (never waiting for a
newline, so a line without one cannot stall it), decodes UTF-8 incrementally
and writes the text to the job's log writer, flushing a part at least every
``flush_seconds`` while output arrives and every ``flush_lines`` lines. The
log writer caps the attempt's log and marks the truncation; the pump keeps
draining the pipe past the cap, so a chatty child never blocks on a full pipe
and nothing reaches the disk beyond the cap.

A failed flush (the log store is briefly unavailable) is not the end: the
writer keeps its buffer and the next flush stores it. Only text the writer
refused is lost; :attr:`LogPump.lost` says so, and the attempt records it.
"""

from __future__ import annotations

import codecs
import os
import select
import threading
import time
from typing import Protocol

__all__ = ["LogPump", "LogSink"]


class LogSink(Protocol):
    """Where the pump writes: the job service's log writer fits."""

    def write(self, text: str) -> None:
        """Buffer ``text``."""
        ...

    def flush(self) -> None:
        """Store what is buffered."""
        ...


class LogPump:
    """Copy ``fd`` into ``sink`` on a thread until EOF; :meth:`join` waits for the end."""

    def __init__(self, fd: int, sink: LogSink, *, flush_seconds: float = 1.0, flush_lines: int = 200) -> None:
        self._fd = fd
        self._sink = sink
        self._flush_seconds = flush_seconds
        self._flush_lines = flush_lines
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._error: BaseException | None = None
        self._lost = False
        self.bytes_read = 0
        self._thread = threading.Thread(target=self._run, name="quantfleet-log-pump", daemon=True)

    def start(self) -> LogPump:
        """Start pumping."""
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait for EOF (the child and everything holding its pipe ended); return whether it came."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def error(self) -> BaseException | None:
        """Return the last failure of the log store, if any (a later flush may have stored the text anyway)."""
        return self._error

    @property
    def lost(self) -> bool:
        """Return whether some output could not be handed to the log writer (it is missing from the log)."""
        return self._lost

    def _write(self, text: str) -> None:
        if not text:
            return
        try:
            self._sink.write(text)
        except Exception as exc:  # the writer refused the text: keep draining the pipe, report it at the end
            self._error = exc
            self._lost = True

    def _flush(self) -> bool:
        try:
            self._sink.flush()
        except Exception as exc:  # the writer keeps its buffer: the next flush tries again
            self._error = exc
            return False
        return True

    def _run(self) -> None:
        dirty = False
        lines = 0
        last_flush = time.monotonic()
        while True:
            wait = max(0.0, self._flush_seconds - (time.monotonic() - last_flush)) if dirty else self._flush_seconds
            ready, _, _ = select.select([self._fd], [], [], wait)
            if ready:
                try:
                    chunk = os.read(self._fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                self.bytes_read += len(chunk)
                text = self._decoder.decode(chunk)
                self._write(text)
                dirty = True
                lines += text.count("\n")
            now = time.monotonic()
            if dirty and (lines >= self._flush_lines or now - last_flush >= self._flush_seconds):
                stored = self._flush()
                dirty, lines, last_flush = not stored, 0, now
        self._write(self._decoder.decode(b"", final=True))
        self._flush()
