"""Structured logs: stdlib logging with a JSON formatter and the id of the job being handled.

The job id lives in a context variable: the worker binds it when an attempt
starts (its slot thread keeps it until the next attempt), the HTTP API binds it
for a request about one job. Every record emitted meanwhile, from any logger,
carries ``job_id``::

    configure(json=True, level="INFO")        # once, at the edge (server, worker)
    with job_context("0b4f..."):
        logging.getLogger("x").info("started")  # {"ts": ..., "level": "INFO", ..., "job_id": "0b4f..."}
"""

from __future__ import annotations

import json as _json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from enum import StrEnum
from typing import IO, Any

__all__ = [
    "JobIdFilter",
    "JsonFormatter",
    "LogFormat",
    "bind_job_id",
    "configure",
    "current_job_id",
    "job_context",
    "reset_job_id",
]

_job_id: ContextVar[str | None] = ContextVar("quantfleet_job_id", default=None)

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged as a field.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "job_id", "taskName"}


class LogFormat(StrEnum):
    """How log lines are written: ``text`` for people, ``json`` (one object per line) for collectors."""

    TEXT = "text"
    JSON = "json"


def current_job_id() -> str | None:
    """Return the id of the job being handled in this context, or None."""
    return _job_id.get()


def bind_job_id(job_id: str | None) -> Token[str | None]:
    """Name the job this context handles from now on; return a token to undo it with ``reset_job_id``."""
    return _job_id.set(None if job_id is None else str(job_id))


def reset_job_id(token: Token[str | None]) -> None:
    """Undo a :func:`bind_job_id`."""
    _job_id.reset(token)


@contextmanager
def job_context(job_id: str | None) -> Iterator[None]:
    """Name the job this block handles; every log record emitted inside carries its ``job_id``."""
    token = bind_job_id(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


class JobIdFilter(logging.Filter):
    """Stamp each record with the current ``job_id`` (None outside a job) when it is emitted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = _job_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, logger, message, job_id, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        job_id = getattr(record, "job_id", None) or _job_id.get()
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if job_id is not None:
            body["job_id"] = job_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                body[key] = value
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            body["stack"] = self.formatStack(record.stack_info)
        return _json.dumps(body, default=str, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        job_id = getattr(record, "job_id", None) or _job_id.get()
        return f"{line} [job {job_id}]" if job_id else line


_INSTALLED = "_quantfleet_handler"


def configure(
    *, json: bool = False, level: int | str = "INFO", stream: IO[str] | None = None
) -> logging.Handler:
    """Send every log record to ``stream`` (default: stderr) as JSON lines (``json=True``) or text.

    Installs one handler on the root logger, replacing the one an earlier call
    installed (so calling it twice does not double lines), and returns it.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(JobIdFilter())
    handler.setFormatter(
        JsonFormatter() if json else _TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    setattr(handler, _INSTALLED, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _INSTALLED, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
