"""Time is a port: the job service asks a :class:`Clock`, never ``datetime.now()`` itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Tell the current time, timezone-aware in UTC."""

    def now(self) -> datetime:
        """Return the current time in UTC (timezone-aware)."""
        ...


class SystemClock:
    """The wall clock. Tests use :class:`quantfleet.testing.FrozenClock` instead."""

    def now(self) -> datetime:
        """Return the current time in UTC."""
        return datetime.now(UTC)
