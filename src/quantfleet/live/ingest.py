"""Ingestion schedules kept in the database: a vendor pull on a cron schedule, each run a new data snapshot.

``quantfleet data schedule add`` records an :class:`IngestJob`; the scheduler
process reads the schedules again on every tick (so one added or removed
while it runs is picked up), fires each when due and records the outcome:
the snapshot written, or the error. A run at ``due`` pulls the
``lookback_days`` sessions before it, up to the exchange's date of ``due``,
in ``upsert`` mode by default: the windows overlap on purpose, so a bar the
vendor corrected is replaced and a day missed while the scheduler was down
is filled in on the next run. Credentials (Alpaca's keys) come from the
scheduler's environment, never from the database.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from quantfleet.core.errors import ConfigError, UserError
from quantfleet.core.types import Frequency
from quantfleet.data import MarketDataStore
from quantfleet.data.calendars import calendar_for
from quantfleet.data.ingest.base import VendorData
from quantfleet.data.store import IngestResult
from quantfleet.jobs.clock import Clock, SystemClock
from quantfleet.live.models import CronTrigger
from quantfleet.live.scheduler import IngestSchedule
from quantfleet.live.triggers import next_fire
from quantfleet.store import Database, ObjectNotFound
from quantfleet.store.models import ingest_schedules

__all__ = [
    "VENDORS",
    "IngestBook",
    "IngestExists",
    "IngestJob",
    "IngestNotFound",
    "IngestRecord",
    "parse_job",
    "pull",
    "scheduled",
    "window",
]

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")

Fetch = Callable[..., VendorData]
"""A vendor adapter: ``fetch(symbols, *, start, end, frequency, env)`` returns bars (and actions)."""


def _yahoo(symbols: Sequence[str], *, start: date, end: date, frequency: Frequency, env: Mapping[str, str]) -> Any:
    from quantfleet.data.ingest.yahoo import fetch_yahoo

    return fetch_yahoo(symbols, start=start, end=end, frequency=frequency)


def _alpaca(symbols: Sequence[str], *, start: date, end: date, frequency: Frequency, env: Mapping[str, str]) -> Any:
    from quantfleet.data.ingest.alpaca import fetch_alpaca

    return fetch_alpaca(symbols, start=start, end=end, frequency=frequency,
                        api_key=env.get("APCA_API_KEY_ID") or env.get("ALPACA_API_KEY"),
                        secret_key=env.get("APCA_API_SECRET_KEY") or env.get("ALPACA_SECRET_KEY"))  # fmt: skip


VENDORS: dict[str, Fetch] = {"yahoo": _yahoo, "alpaca": _alpaca}
"""The vendor adapters a schedule may name."""


class IngestExists(UserError):
    """An ingestion schedule of this name exists already."""


class IngestNotFound(ObjectNotFound):
    """No ingestion schedule has this name."""


class IngestJob(BaseModel):
    """One scheduled pull: which vendor, which symbols and bars, when, how far back, how it is written."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="A short name: letters, digits, '_', '-', '.'.")
    vendor: Literal["yahoo", "alpaca"]
    symbols: tuple[str, ...] = Field(min_length=1)
    frequency: Frequency = Frequency.DAILY
    trigger: CronTrigger
    lookback_days: int = Field(default=5, ge=1, le=3650, description="Days before the run's date each pull covers.")
    mode: Literal["append", "upsert"] = "upsert"
    off_session: Literal["error", "drop", "keep"] = "error"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r}: name a schedule with 1-64 letters, digits, '_', '-' or '.'")
        return value

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(s.strip().upper() for s in value)
        if any(not s for s in cleaned) or len(set(cleaned)) != len(cleaned):
            raise ValueError("symbols must be non-empty and listed once each")
        return cleaned


class IngestRecord(BaseModel):
    """A stored schedule and how its runs went."""

    model_config = ConfigDict(frozen=True)

    job: IngestJob
    next_at: datetime | None = None
    last_run_at: datetime | None = None
    last_snapshot: int | None = None
    last_error: str | None = None
    created_at: datetime


def _record(row: Mapping[Any, Any]) -> IngestRecord:
    return IngestRecord(
        job=IngestJob.model_validate(row["spec"]),
        next_at=row["next_at"],
        last_run_at=row["last_run_at"],
        last_snapshot=row["last_snapshot"],
        last_error=row["last_error"],
        created_at=row["created_at"],
    )


class IngestBook:
    """The ingestion schedules in the job database: add, list, remove, and each run's outcome."""

    def __init__(self, db: Database, *, clock: Clock | None = None) -> None:
        self.db = db
        self.clock: Clock = clock if clock is not None else SystemClock()

    def add(self, job: IngestJob) -> IngestRecord:
        """Store a new schedule; its first run is the first fire time after now."""
        first = next_fire(job.trigger, self.clock.now())  # checks the cron expression and the calendar
        if first is None:
            raise ConfigError(f"the schedule {job.trigger.cron!r} never fires on {job.trigger.calendar} sessions")
        now = self.clock.now()
        with self.db.write() as conn:
            known = conn.execute(sa.select(ingest_schedules.c.name).where(ingest_schedules.c.name == job.name)).first()
            if known is not None:
                raise IngestExists(
                    f"an ingestion schedule named {job.name!r} exists; remove it first "
                    f"('quantfleet data schedule rm {job.name}') or choose another name"
                )
            conn.execute(
                sa.insert(ingest_schedules).values(
                    name=job.name, spec=job.model_dump(mode="json"), next_at=first, created_at=now, updated_at=now
                )
            )
        return self.get(job.name)

    def get(self, name: str) -> IngestRecord:
        """Return one schedule; :class:`IngestNotFound` says how to list them."""
        with self.db.read() as conn:
            row = conn.execute(sa.select(ingest_schedules).where(ingest_schedules.c.name == name)).mappings().first()
        if row is None:
            raise IngestNotFound(f"no ingestion schedule {name!r}; list them with 'quantfleet data schedule ls'")
        return _record(row)

    def list(self) -> builtins.list[IngestRecord]:
        """Return every schedule, by name."""
        with self.db.read() as conn:
            rows = conn.execute(sa.select(ingest_schedules).order_by(ingest_schedules.c.name)).mappings().all()
        return [_record(r) for r in rows]

    def remove(self, name: str) -> None:
        """Delete a schedule (the snapshots it wrote stay)."""
        with self.db.write() as conn:
            gone = conn.execute(sa.delete(ingest_schedules).where(ingest_schedules.c.name == name)).rowcount
        if not gone:
            raise IngestNotFound(f"no ingestion schedule {name!r}; list them with 'quantfleet data schedule ls'")

    def set_next(self, name: str, when: datetime | None) -> None:
        """Record when the schedule fires next."""
        with self.db.write() as conn:
            conn.execute(sa.update(ingest_schedules).where(ingest_schedules.c.name == name)
                         .values(next_at=when, updated_at=self.clock.now()))  # fmt: skip

    def record_run(self, name: str, *, at: datetime, snapshot: int | None, error: str | None) -> None:
        """Record a run's outcome: the snapshot it wrote, or its error (the last snapshot is kept then)."""
        values: dict[str, Any] = {"last_run_at": at, "last_error": error, "updated_at": self.clock.now()}
        if snapshot is not None:
            values["last_snapshot"] = snapshot
        with self.db.write() as conn:
            conn.execute(sa.update(ingest_schedules).where(ingest_schedules.c.name == name).values(**values))


def parse_job(fields: Mapping[str, Any]) -> IngestJob:
    """Return the job ``fields`` describe; a :class:`ConfigError` names each field that is wrong."""
    try:
        return IngestJob.model_validate(dict(fields))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"the ingestion schedule is invalid: {problems}") from None


def window(job: IngestJob, due: datetime) -> tuple[date, date]:
    """Return the first and last date a run due at ``due`` pulls (the exchange's date of ``due``)."""
    cal = calendar_for(job.trigger.calendar, pd.Timestamp(due), pd.Timestamp(due))
    last = due.astimezone(cal.tz).date()
    return last - timedelta(days=job.lookback_days), last


def pull(
    job: IngestJob,
    store: MarketDataStore,
    *,
    due: datetime,
    env: Mapping[str, str],
    vendors: Mapping[str, Fetch] = VENDORS,
) -> IngestResult:
    """Fetch the job's window from its vendor and write it as one new snapshot (then its corporate actions)."""
    first, last = window(job, due)
    data = vendors[job.vendor](list(job.symbols), start=first, end=last, frequency=job.frequency, env=env)
    result = store.ingest_bars(
        [data.bars],
        frequency=job.frequency,
        mode=job.mode,
        calendar=job.trigger.calendar,
        off_session=job.off_session,
        source=f"{job.vendor}:{job.name}",
    )
    actions: pa.Table = data.actions
    if actions.num_rows:
        store.ingest_corporate_actions(actions, source=f"{job.vendor}:{job.name}")
    return result


def scheduled(
    book: IngestBook, store: MarketDataStore, *, env: Mapping[str, str], vendors: Mapping[str, Fetch] = VENDORS
) -> Callable[[], builtins.list[IngestSchedule]]:
    """Return what the scheduler calls each tick: the stored schedules, each recording its runs in ``book``."""

    def schedule_of(record: IngestRecord) -> IngestSchedule:
        job = record.job

        def run(due: datetime) -> object:
            try:
                result = pull(job, store, due=due, env=env, vendors=vendors)
            except Exception as exc:
                book.record_run(job.name, at=book.clock.now(), snapshot=None, error=f"{type(exc).__name__}: {exc}")
                raise
            book.record_run(job.name, at=book.clock.now(), snapshot=int(result.snapshot), error=None)
            return result

        return IngestSchedule(job.name, job.trigger, run, next_at=record.next_at,
                              on_next=lambda when: book.set_next(job.name, when))  # fmt: skip

    def load() -> builtins.list[IngestSchedule]:
        return [schedule_of(r) for r in book.list()]

    return load
