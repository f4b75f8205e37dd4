"""Ingestion schedules in the database: the scheduler fires them when due, each pull a new snapshot, outcomes kept.

The vendor here is a function handing back bars (the Alpaca and Yahoo adapters are tested on recorded HTTP
answers in tests/unit/data/ingest and, scheduled end to end, in tests/unit/cli/test_schedule_cli.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from quantfleet.core.errors import ConfigError, VendorError
from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.ingest import IngestBook, IngestExists, IngestNotFound, parse_job, scheduled
from quantfleet.live.runner import LiveRunner
from quantfleet.live.scheduler import Scheduler
from quantfleet.store import Database
from quantfleet.testing import FrozenClock

FRIDAY_CLOSE = datetime(2024, 2, 9, 21, 0, tzinfo=UTC)  # 16:00 New York, a session day


def job(**kw: Any) -> Any:
    fields = {"name": "eod", "vendor": "yahoo", "symbols": ("aaa", "BBB"),
              "trigger": {"cron": "30 17 * * MON-FRI", "calendar": "XNYS", "sessions_only": False}, **kw}  # fmt: skip
    return parse_job(fields)


class Vendor:
    """A vendor adapter that answers with synthetic bars of the asked window, and remembers each ask."""

    def __init__(self) -> None:
        self.asked: list[tuple[tuple[str, ...], date, date]] = []
        self.down = False

    def __call__(self, symbols: list[str], *, start: date, end: date, frequency: Any, env: Any) -> Any:
        self.asked.append((tuple(symbols), start, end))
        if self.down:
            raise VendorError("yahoo answered 502; try again later")
        return synthetic_bars(symbols, start=start, end=end, actions=False)


def test_the_book_adds_lists_and_removes(db: Database, clock: FrozenClock) -> None:
    clock.set(FRIDAY_CLOSE)
    book = IngestBook(db, clock=clock)
    record = book.add(job())
    assert record.job.symbols == ("AAA", "BBB")
    assert record.next_at == datetime(2024, 2, 9, 22, 30, tzinfo=UTC)  # 17:30 New York the same day
    with pytest.raises(IngestExists, match="remove it first"):
        book.add(job())
    assert [r.job.name for r in book.list()] == ["eod"]
    book.remove("eod")
    assert book.list() == []
    with pytest.raises(IngestNotFound, match="data schedule ls"):
        book.remove("eod")


def test_bad_fields_are_named(db: Database) -> None:
    with pytest.raises(ConfigError, match="vendor"):
        job(vendor="bloomberg")
    with pytest.raises(ConfigError, match="name"):
        job(name="end of day")
    with pytest.raises(ConfigError, match="five fields"):
        IngestBook(db).add(job(trigger={"cron": "daily"}))


def test_due_pulls_write_snapshots_and_missed_ones_collapse(
    db: Database, clock: FrozenClock, store: MarketDataStore, deployments: DeploymentService
) -> None:
    """Each due pull writes one snapshot; after two days down, one pull covers the gap; failures are kept."""
    clock.set(FRIDAY_CLOSE)
    book = IngestBook(db, clock=clock)
    book.add(job(lookback_days=3))
    vendor = Vendor()
    runner = LiveRunner(deployments, store=lambda: store, clock=clock)
    scheduler = Scheduler(runner, ingest=scheduled(book, store, env={}, vendors={"yahoo": vendor}), run_jobs=False)
    assert scheduler.tick(clock.advance(hours=1)) == []  # 17:00 New York: not yet
    assert scheduler.tick(clock.advance(minutes=31)) == ["eod"]
    first = book.get("eod")
    assert first.last_snapshot == store.latest()
    assert first.last_error is None
    assert vendor.asked == [(("AAA", "BBB"), date(2024, 2, 6), date(2024, 2, 9))]
    assert first.next_at == datetime(2024, 2, 12, 22, 30, tzinfo=UTC)  # Monday: no pulls at the weekend
    assert scheduler.tick(clock.now()) == []  # once per due time

    # The scheduler was down Monday and Tuesday: on Wednesday evening one pull, not three, is made.
    wednesday = datetime(2024, 2, 14, 23, 0, tzinfo=UTC)
    clock.set(wednesday)
    assert scheduler.tick(wednesday) == ["eod"]
    assert vendor.asked[-1][1:] == (date(2024, 2, 11), date(2024, 2, 14))
    assert len(vendor.asked) == 2
    assert book.get("eod").next_at == datetime(2024, 2, 15, 22, 30, tzinfo=UTC)

    vendor.down = True
    clock.set(datetime(2024, 2, 15, 22, 31, tzinfo=UTC))
    kept = book.get("eod").last_snapshot
    assert scheduler.tick(clock.now()) == []  # failed: logged, recorded, the next is tried on schedule
    failed = book.get("eod")
    assert "502" in (failed.last_error or "")
    assert failed.last_snapshot == kept
    assert failed.next_at == datetime(2024, 2, 16, 22, 30, tzinfo=UTC)


def test_a_schedule_added_while_the_scheduler_runs_is_picked_up(
    db: Database, clock: FrozenClock, store: MarketDataStore, deployments: DeploymentService
) -> None:
    clock.set(FRIDAY_CLOSE)
    book = IngestBook(db, clock=clock)
    vendor = Vendor()
    runner = LiveRunner(deployments, store=lambda: store, clock=clock)
    scheduler = Scheduler(runner, ingest=scheduled(book, store, env={}, vendors={"yahoo": vendor}), run_jobs=False)
    assert scheduler.tick(clock.now()) == []
    book.add(job())
    assert scheduler.tick(clock.advance(hours=2)) == ["eod"]
    book.remove("eod")
    assert scheduler.tick(clock.advance(days=3)) == []
