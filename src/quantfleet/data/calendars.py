"""Exchange calendars (``exchange-calendars``): which bars fall inside sessions."""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from typing import Any

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from quantfleet.core.errors import CalendarError
from quantfleet.core.types import US_PER_DAY, Frequency

__all__ = [
    "ALWAYS_OPEN",
    "calendar_for",
    "off_session_mask",
    "quiet",
    "session_bounds",
    "session_dates",
    "session_minutes",
    "sessions",
]

ALWAYS_OPEN = "24/7"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence deprecation warnings raised inside exchange-calendars.

    exchange-calendars still calls ``.values`` on tz-aware pandas data, which
    pandas 3.1 deprecates; the values it takes (UTC) are right.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def sessions(name: str, first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
    """Return the sessions of calendar ``name`` from ``first`` to ``last`` (naive dates)."""
    first, last = pd.Timestamp(first), pd.Timestamp(last)
    first = first.tz_convert(None) if first.tzinfo else first
    last = last.tz_convert(None) if last.tzinfo else last
    cal = calendar_for(name, first, last)
    with quiet():
        days: pd.DatetimeIndex = cal.sessions_in_range(first.normalize(), last.normalize())
    return days


def session_bounds(name: str, days: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Return the open and close (UTC microseconds) of each session in ``days``."""
    cal = calendar_for(name, days[0], days[-1])
    with quiet():
        opens = pd.DatetimeIndex(cal.opens.loc[days]).as_unit("us").asi8
        closes = pd.DatetimeIndex(cal.closes.loc[days]).as_unit("us").asi8
    return np.asarray(opens, dtype=np.int64), np.asarray(closes, dtype=np.int64)


@functools.lru_cache(maxsize=32)
def _calendar(name: str, first_year: int, last_year: int) -> Any:
    try:
        with quiet():
            return xcals.get_calendar(name, start=f"{first_year}-01-01", end=f"{last_year}-12-31")
    except xcals.errors.InvalidCalendarName:
        names = ", ".join(sorted(n for n in xcals.get_calendar_names() if n.startswith("X"))[:12])
        raise CalendarError(
            f"unknown exchange calendar {name!r}; use an ISO MIC such as {names}, ... "
            f"or {ALWAYS_OPEN!r} for markets that never close"
        ) from None
    except ValueError as exc:
        raise CalendarError(f"calendar {name} cannot cover {first_year}-{last_year}: {exc}") from None


def calendar_for(name: str, first: pd.Timestamp, last: pd.Timestamp) -> Any:
    """Return the ``exchange_calendars`` calendar ``name`` covering ``first``..``last``."""
    # A year of margin either side: range queries may start before the first session.
    return _calendar(name, int(first.year) - 1, int(last.year) + 1)


def session_dates(name: str, first: pd.Timestamp, last: pd.Timestamp) -> np.ndarray:
    """Return the session dates between ``first`` and ``last`` as days since the epoch."""
    days = sessions(name, first, last)
    return np.asarray(days.as_unit("us").asi8 // US_PER_DAY, dtype=np.int64)


def off_session_mask(ts_us: np.ndarray, frequency: Frequency, calendar: str) -> np.ndarray:
    """Return a mask of bars (UTC microseconds) that fall outside ``calendar``'s sessions.

    A daily bar must be stamped on a session date; an intraday bar's opening
    minute must be a trading minute of a session.
    """
    if len(ts_us) == 0 or calendar == ALWAYS_OPEN:
        return np.zeros(len(ts_us), dtype=bool)
    first = pd.Timestamp(int(ts_us.min()), unit="us", tz="UTC")
    last = pd.Timestamp(int(ts_us.max()), unit="us", tz="UTC")
    if not frequency.is_intraday:
        days = ts_us // US_PER_DAY
        return ~np.isin(days, session_dates(calendar, first, last))
    cal = calendar_for(calendar, first, last)
    with quiet():
        minutes = cal.minutes_in_range(first.floor("min"), last.ceil("min"))
    allowed = np.asarray(minutes.as_unit("us").asi8, dtype=np.int64)
    pos = np.searchsorted(allowed, ts_us)
    pos = np.minimum(pos, len(allowed) - 1)
    return ~(allowed[pos] == ts_us) if len(allowed) else np.ones(len(ts_us), dtype=bool)


def session_minutes(name: str, first: pd.Timestamp, last: pd.Timestamp) -> float:
    """Return the typical (median) session length of ``name`` in minutes, e.g. 390 for XNYS.

    The median ignores half-days; a market that never closes has 1,440-minute sessions.
    """
    if name == ALWAYS_OPEN:
        return 1440.0
    days = sessions(name, first, last)
    if len(days) == 0:
        return 390.0
    opens, closes = session_bounds(name, days)
    return float(np.median(closes - opens) / 60_000_000)
