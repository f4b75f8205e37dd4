"""Exchange calendars (``exchange-calendars``): which bars fall inside sessions."""

from __future__ import annotations

import functools
from typing import Any

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from quantfleet.core.errors import CalendarError
from quantfleet.core.types import Frequency

__all__ = ["ALWAYS_OPEN", "calendar_for", "off_session_mask", "session_dates"]

ALWAYS_OPEN = "24/7"
_US_PER_DAY = 86_400_000_000


@functools.lru_cache(maxsize=32)
def _calendar(name: str, first_year: int, last_year: int) -> Any:
    try:
        return xcals.get_calendar(
            name, start=f"{first_year}-01-01", end=f"{last_year}-12-31"
        )
    except xcals.errors.InvalidCalendarName:
        names = ", ".join(sorted(n for n in xcals.get_calendar_names() if n.startswith("X"))[:12])
        raise CalendarError(
            f"unknown exchange calendar {name!r}; use an ISO MIC such as {names}, ... "
            f"or {ALWAYS_OPEN!r} for markets that never close"
        ) from None
    except ValueError as exc:
        raise CalendarError(
            f"calendar {name} cannot cover {first_year}-{last_year}: {exc}"
        ) from None


def calendar_for(name: str, first: pd.Timestamp, last: pd.Timestamp) -> Any:
    """Return the ``exchange_calendars`` calendar ``name`` covering ``first``..``last``."""
    return _calendar(name, int(first.year), int(last.year))


def session_dates(name: str, first: pd.Timestamp, last: pd.Timestamp) -> np.ndarray:
    """Return the session dates between ``first`` and ``last`` as days since the epoch."""
    cal = calendar_for(name, first, last)
    sessions = cal.sessions_in_range(first.normalize().tz_localize(None), last.normalize().tz_localize(None))
    return np.asarray(sessions.asi8 // (_US_PER_DAY * 1000), dtype=np.int64)


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
        days = ts_us // _US_PER_DAY
        return ~np.isin(days, session_dates(calendar, first, last))
    cal = calendar_for(calendar, first, last)
    minutes = cal.minutes_in_range(first.floor("min"), last.ceil("min"))
    allowed = np.asarray(minutes.asi8 // 1000, dtype=np.int64)
    pos = np.searchsorted(allowed, ts_us)
    pos = np.minimum(pos, len(allowed) - 1)
    return ~(allowed[pos] == ts_us) if len(allowed) else np.ones(len(ts_us), dtype=bool)
