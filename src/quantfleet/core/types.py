"""Value types shared by every layer: frequencies, adjustments, snapshot references."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import NewType

__all__ = ["US_PER_DAY", "Adjustment", "Frequency", "SnapshotId", "SnapshotRef"]

US_PER_DAY = 86_400_000_000
"""Microseconds in a day: timestamps are UTC microseconds, and a daily bar's is its date's midnight."""

SnapshotId = NewType("SnapshotId", int)
"""A version of the market-data bars table; immutable once written."""

SnapshotRef = int | str
"""A snapshot id, or the name of a tag that points at one."""


class Frequency(StrEnum):
    """Bar frequency. Intraday bars are labelled by their opening minute (UTC)."""

    MINUTE_1 = "1m"
    MINUTE_5 = "5m"
    MINUTE_15 = "15m"
    MINUTE_30 = "30m"
    HOUR_1 = "1h"
    DAILY = "1d"

    @property
    def is_intraday(self) -> bool:
        """Return whether bars of this frequency are shorter than a session."""
        return self is not Frequency.DAILY

    @property
    def step(self) -> timedelta:
        """Return the nominal length of one bar."""
        return _STEPS[self]

    @classmethod
    def parse(cls, value: str | Frequency) -> Frequency:
        """Return the frequency named by ``value`` (accepts '1d', 'daily', '1min', ...)."""
        if isinstance(value, Frequency):
            return value
        key = value.strip().lower()
        key = _ALIASES.get(key, key)
        try:
            return cls(key)
        except ValueError:
            valid = ", ".join(f.value for f in cls)
            raise ValueError(f"unknown frequency {value!r}; use one of {valid}") from None


_STEPS = {
    Frequency.MINUTE_1: timedelta(minutes=1),
    Frequency.MINUTE_5: timedelta(minutes=5),
    Frequency.MINUTE_15: timedelta(minutes=15),
    Frequency.MINUTE_30: timedelta(minutes=30),
    Frequency.HOUR_1: timedelta(hours=1),
    Frequency.DAILY: timedelta(days=1),
}

_ALIASES = {
    "1min": "1m",
    "minute": "1m",
    "5min": "5m",
    "15min": "15m",
    "30min": "30m",
    "60m": "1h",
    "60min": "1h",
    "hour": "1h",
    "d": "1d",
    "day": "1d",
    "daily": "1d",
}


class Adjustment(StrEnum):
    """How prices are adjusted for corporate actions at read time.

    ``raw``: as traded. ``splits``: back-adjusted for splits only.
    ``all``: back-adjusted for splits and cash dividends (total-return prices).
    """

    RAW = "raw"
    SPLITS = "splits"
    ALL = "all"
