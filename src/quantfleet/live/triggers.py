"""Cron triggers in the exchange's time zone, on its trading sessions only (croniter + exchange-calendars).

A cron time fires when its date (in the exchange's zone) is a session and,
with ``sessions_only``, the time lies within that session (from the open, before the close).
On an early-close day a time after the early close but before the regular
close is skipped (``half_days="skip"``) or moved to the session's last
minute (``"move"``); several moved times collapse into one run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from croniter import croniter

from quantfleet.core.errors import ConfigError
from quantfleet.data.calendars import calendar_for, quiet
from quantfleet.live.models import CronTrigger

__all__ = ["check_cron", "next_fire"]

_SEARCH = 20_000  # cron candidates examined before giving up (a year of every-15-minutes is ~35,000)


def check_cron(expression: str) -> None:
    """Raise ConfigError naming the problem when ``expression`` is not a five-field cron expression."""
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ConfigError(
            f"{expression!r} is not a cron expression; give five fields (minute hour day month weekday), "
            "e.g. '*/15 9-16 * * MON-FRI'"
        )


def next_fire(trigger: CronTrigger, after: datetime) -> datetime | None:
    """Return the first fire time (UTC) strictly after ``after``, None if none within 400 days (or the search)."""
    check_cron(trigger.cron)
    when = pd.Timestamp(after).tz_convert("UTC")
    horizon = when + pd.Timedelta(days=400)
    cal = calendar_for(trigger.calendar, when, horizon)
    tz = cal.tz
    it = croniter(trigger.cron, after.astimezone(tz))
    with quiet():
        for _ in range(_SEARCH):
            local: datetime = it.get_next(datetime)
            if local > horizon:  # past what the calendar was built for: it fires nowhere in that time
                return None
            fire = _admit(cal, trigger, local)
            if fire is not None and fire > after:
                return fire
    return None


def _admit(cal: object, trigger: CronTrigger, local: datetime) -> datetime | None:
    """Return the UTC time ``local`` fires at (moved on a half day), None when it does not fire."""
    day = pd.Timestamp(local.date())
    if not cal.is_session(day):  # type: ignore[attr-defined]
        return None
    utc = local.astimezone(UTC)
    if not trigger.sessions_only:
        return utc
    opens = cal.opens.loc[day].to_pydatetime()  # type: ignore[attr-defined]
    closes = cal.closes.loc[day].to_pydatetime()  # type: ignore[attr-defined]
    if opens <= utc < closes:  # at the close itself nothing can trade
        return utc
    if utc >= closes and day in cal.early_closes:  # type: ignore[attr-defined]
        regular = _regular_close(cal, day)
        if utc <= regular:
            return closes - timedelta(minutes=1) if trigger.half_days == "move" else None
    return None


def _regular_close(cal: object, day: pd.Timestamp) -> datetime:
    """Return when ``day`` would close without its early close (the exchange's usual close time)."""
    tz = cal.tz  # type: ignore[attr-defined]
    close_time = cal.close_times[-1][1]  # type: ignore[attr-defined]
    local = datetime.combine(day.date(), close_time, tzinfo=tz)
    return local.astimezone(UTC)
