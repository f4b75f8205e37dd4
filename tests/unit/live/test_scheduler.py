"""Cron triggers on exchange sessions, and the scheduler firing runs as live jobs (tick(now): no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from quantfleet.core.errors import ConfigError
from quantfleet.data import MarketDataStore
from quantfleet.jobs import JobState
from quantfleet.live.broker import BrokerOrder, BrokerUnavailable, OrderRequest
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.models import CronTrigger
from quantfleet.live.paper import PaperBroker
from quantfleet.live.runner import LiveRunner
from quantfleet.live.scheduler import IngestSchedule, Scheduler
from quantfleet.live.triggers import check_cron, next_fire
from quantfleet.testing import FrozenClock
from quantfleet.testing.live import FakeBroker

BUY = "def run(ctx):\n    ctx.order('AAA', 10)\n    ctx.order('BBB', 5)\n"


def fires(trigger: CronTrigger, start: datetime, n: int) -> list[datetime]:
    out, when = [], start
    for _ in range(n):
        when = next_fire(trigger, when)
        assert when is not None
        out.append(when)
    return out


def test_cron_runs_in_exchange_time_on_sessions_only() -> None:
    """'*/15 9-16' in New York starts at the 9:30 open, stops before the 16:00 close, skips the holiday."""
    trigger = CronTrigger(cron="*/15 9-16 * * MON-FRI", calendar="XNYS")
    got = fires(trigger, datetime(2025, 11, 26, 20, 30, tzinfo=UTC), 3)  # Wednesday 15:30 New York
    # 15:45 Wednesday; Thursday is Thanksgiving (closed); Friday opens 9:30 New York (14:30 UTC).
    assert got == [
        datetime(2025, 11, 26, 20, 45, tzinfo=UTC),
        datetime(2025, 11, 28, 14, 30, tzinfo=UTC),
        datetime(2025, 11, 28, 14, 45, tzinfo=UTC),
    ]


def test_half_days_skip_or_move() -> None:
    """The day after Thanksgiving closes at 13:00 New York: later runs are skipped, or one moves to 12:59."""
    after = datetime(2025, 11, 28, 17, 30, tzinfo=UTC)
    monday = datetime(2025, 12, 1, 14, 30, tzinfo=UTC)
    last = datetime(2025, 11, 28, 17, 45, tzinfo=UTC)
    skip = fires(CronTrigger(cron="*/15 9-16 * * MON-FRI", half_days="skip"), after, 2)
    assert skip == [last, monday]
    move = fires(CronTrigger(cron="*/15 9-16 * * MON-FRI", half_days="move"), after, 3)
    assert move == [last, datetime(2025, 11, 28, 17, 59, tzinfo=UTC), monday]


def test_a_bad_cron_names_the_fix() -> None:
    """A malformed expression is refused with an example."""
    with pytest.raises(ConfigError, match="five fields"):
        check_cron("every minute")


def setup(deploy: Any, deployments: DeploymentService, clock: FrozenClock, store: MarketDataStore, **kw: Any) -> Any:
    clock.set(datetime(2022, 6, 1, 13, 0, tzinfo=UTC))
    dep = deploy(
        BUY, universe=("AAA", "BBB"), trigger={"kind": "cron", "cron": "0 10 * * MON-FRI"}, engine={"cash": 100_000.0}
    )
    runner = LiveRunner(deployments, store=lambda: store, clock=clock, **kw)
    return dep, runner


def test_the_scheduler_fires_runs_as_jobs(
    deploy: Any, deployments: DeploymentService, clock: FrozenClock, daily_store: MarketDataStore
) -> None:
    """At 10:00 New York each session a live job runs; the next run fills the last one's orders on the new bar."""
    dep, runner = setup(deploy, deployments, clock, daily_store)
    scheduler = Scheduler(runner)
    assert scheduler.tick(clock.now()) == []
    clock.set(datetime(2022, 6, 1, 14, 0, 30, tzinfo=UTC))
    assert scheduler.tick(clock.now()) == [f"{dep.id}#1"]
    assert scheduler.tick(clock.now()) == []  # fired once
    clock.set(datetime(2022, 6, 2, 14, 0, 5, tzinfo=UTC))
    assert scheduler.tick(clock.now()) == [f"{dep.id}#2"]
    runs = deployments.runs(dep.id)
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    job = runner.jobs.get(runs[0].job_id)  # type: ignore[arg-type]
    assert job.state is JobState.SUCCEEDED
    assert job.kind == "live"
    paper = PaperBroker(runner.jobs.db, dep.account)
    assert {s: p.quantity for s, p in paper.positions().items()} == {"AAA": 10, "BBB": 5}
    (fill, *_) = paper.fills()
    assert fill.ts == datetime(2022, 6, 1, tzinfo=UTC)  # run 1's order filled on the 1 June bar, seen by run 2
    assert len(paper.open_orders()) == 2
    assert deployments.get(dep.id).next_run_at == datetime(2022, 6, 3, 14, 0, tzinfo=UTC)
    # Weeks later, the runs missed meanwhile are skipped, not fired late.
    clock.set(datetime(2022, 7, 1, 14, 0, 1, tzinfo=UTC))
    assert scheduler.tick(clock.now()) == [f"{dep.id}#3"]


class Flaky(FakeBroker):
    """Loses the connection on the second order, once."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def submit(self, request: OrderRequest, *, now: datetime) -> BrokerOrder:
        self.calls += 1
        if self.calls == 2:
            raise BrokerUnavailable("connection reset")
        return super().submit(request, now=now)


def test_a_retried_run_does_not_send_its_orders_twice(
    deploy: Any, deployments: DeploymentService, clock: FrozenClock, daily_store: MarketDataStore
) -> None:
    """The job is released when the broker drops; its retry (same run) sends only the order not yet sent."""
    broker = Flaky()
    dep, runner = setup(deploy, deployments, clock, daily_store, broker=lambda d, now: broker)
    clock.set(datetime(2022, 6, 1, 14, 0, 30, tzinfo=UTC))
    Scheduler(runner, run_jobs=False).tick(clock.now())
    (job_id,) = runner.pending()
    assert runner.run_job(job_id) is None  # released
    assert runner.jobs.get(job_id).state is JobState.QUEUED
    assert runner.run_pending() == 1
    assert runner.jobs.get(job_id).state is JobState.SUCCEEDED
    assert runner.jobs.get(job_id).attempt == 2
    assert broker.sent == [f"qf-{dep.id[:12]}-1-1", f"qf-{dep.id[:12]}-1-2"]


def test_ingestion_runs_on_its_schedule(
    deploy: Any, deployments: DeploymentService, clock: FrozenClock, daily_store: MarketDataStore
) -> None:
    """An end-of-day pull scheduled at 17:00 New York runs once per session."""
    _, runner = setup(deploy, deployments, clock, daily_store)
    pulls: list[datetime] = []
    eod = IngestSchedule("eod", CronTrigger(cron="0 17 * * *", sessions_only=False), pulls.append)
    scheduler = Scheduler(runner, ingest=[eod], run_jobs=False)
    start = datetime(2022, 6, 3, 20, 0, tzinfo=UTC)  # Friday 16:00 New York
    for hours in range(0, 80):
        scheduler.tick(start + timedelta(hours=hours))
    assert pulls == [datetime(2022, 6, 3, 21, 0, tzinfo=UTC), datetime(2022, 6, 6, 21, 0, tzinfo=UTC)]
