"""A scheduled run's strategy executes in the job's child; its orders come back as messages the runner forwards.

These run the child unsandboxed (QUANTFLEET_SANDBOX=trusted, as every unit
test's worker does); tests/sandbox/test_live_runs.py runs the same in the real sandbox.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from quantfleet.core.logging import current_job_id
from quantfleet.core.orders import OrderStatus
from quantfleet.data import MarketDataStore
from quantfleet.jobs import JobState
from quantfleet.live.broker import BrokerUnavailable, OrderRequest
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.paper import PaperBroker
from quantfleet.live.runner import LiveRunner
from quantfleet.live.scheduler import Scheduler
from quantfleet.testing import FrozenClock
from quantfleet.testing.live import FakeBroker

CRON = {"kind": "cron", "cron": "0 10 * * MON-FRI"}
FIRST = datetime(2022, 6, 1, 14, 0, 30, tzinfo=UTC)  # 10:00 New York: run 1 is due
SECOND = datetime(2022, 6, 2, 14, 0, 5, tzinfo=UTC)

PROBE = """
import os

def run(ctx):
    ctx.state["pid"] = os.getpid()
    ctx.state["keys"] = sorted(k for k in os.environ if "ALPACA" in k or "DATABASE" in k)
    ctx.state["runs"] = ctx.state.get("runs", 0) + 1
    ctx.order("AAA", 10)
"""


def fire(runner: LiveRunner, when: datetime, clock: FrozenClock) -> None:
    clock.set(when)
    Scheduler(runner, run_jobs=False).tick(when)


def make(deploy: Any, deployments: DeploymentService, clock: FrozenClock, store: MarketDataStore, code: str, **kw: Any):
    clock.set(datetime(2022, 6, 1, 13, 0, tzinfo=UTC))
    broker = kw.pop("broker", None)
    dep = deploy(code, universe=("AAA", "BBB"), trigger=CRON, engine={"cash": 100_000.0}, **kw)
    runner = LiveRunner(
        deployments, store=lambda: store, clock=clock, broker=(lambda d, now: broker) if broker else None
    )
    return dep, runner


def test_the_strategy_runs_in_the_jobs_child_without_the_schedulers_secrets(
    deploy: Any,
    deployments: DeploymentService,
    clock: FrozenClock,
    daily_store: MarketDataStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scheduler holds the Alpaca key; the strategy, in another process, sees none of it; its order is placed."""
    monkeypatch.setenv("ALPACA_API_KEY", "PKFAKEKEY")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "fake-secret")
    monkeypatch.setenv("QUANTFLEET_DATABASE_URL", "postgresql://u:p@db/quantfleet")
    dep, runner = make(deploy, deployments, clock, daily_store, PROBE)
    try:
        fire(runner, FIRST, clock)
        assert runner.run_pending() == 1
        fire(runner, SECOND, clock)
        assert runner.run_pending() == 1
    finally:
        runner.close()
    assert current_job_id() is None  # the scheduler's own log records name no run's job afterwards
    state = deployments.get(dep.id).state
    assert state["pid"] != os.getpid()
    assert state["keys"] == []
    assert state["runs"] == 2  # ctx.state came back from the child and went into the next run
    paper = PaperBroker(runner.jobs.db, dep.account)
    assert paper.positions()["AAA"].quantity == 10  # run 1's order, filled on the bar run 2 saw
    assert {o.client_id for o in paper.orders()} == {f"qf-{dep.id[:12]}-1-1", f"qf-{dep.id[:12]}-2-1"}
    runs = deployments.runs(dep.id)
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    second = next(r for r in runs if r.number == 2)
    job = runner.jobs.get(second.job_id)  # type: ignore[arg-type]
    assert job.metrics is not None
    assert (job.metrics["orders"], job.metrics["fills"], job.metrics["rejected"]) == (1, 1, 0)


def test_on_fill_hears_the_newest_bars_fills_in_the_child(
    deploy: Any, deployments: DeploymentService, clock: FrozenClock, daily_store: MarketDataStore
) -> None:
    """Run 2 fills run 1's order on the new bar before the child starts; the child's on_fill is told of it."""
    code = """
from quantfleet import Strategy

class Fills(Strategy):
    def on_fill(self, ctx, fill):
        ctx.state.setdefault("fills", []).append([fill.symbol, fill.quantity])

    def on_bar(self, ctx, bars):
        if not ctx.portfolio.positions and not ctx.open_orders():
            ctx.order("BBB", 3)
        ctx.state["open"] = len(ctx.open_orders())
"""
    dep, runner = make(deploy, deployments, clock, daily_store, code)
    try:
        fire(runner, FIRST, clock)
        runner.run_pending()
        assert deployments.get(dep.id).state == {"open": 1}  # its own order, open for the rest of the run
        fire(runner, SECOND, clock)
        runner.run_pending()
    finally:
        runner.close()
    assert deployments.get(dep.id).state == {"fills": [["BBB", 3.0]], "open": 0}


def test_a_failing_strategy_fails_the_run_and_sends_nothing(
    deploy: Any, deployments: DeploymentService, clock: FrozenClock, daily_store: MarketDataStore
) -> None:
    """An exception after an order: the job fails with the user's traceback, like a backtest's; no order leaves."""
    code = "def run(ctx):\n    ctx.order('AAA', 1)\n    raise ValueError('model not fitted')\n"
    broker = FakeBroker()
    dep, runner = make(deploy, deployments, clock, daily_store, code, broker=broker)
    try:
        fire(runner, FIRST, clock)
        assert runner.run_pending() == 1
    finally:
        runner.close()
    (run,) = deployments.runs(dep.id)
    job = runner.jobs.get(run.job_id)  # type: ignore[arg-type]
    assert job.state is JobState.FAILED
    assert run.status == "failed"
    assert "ValueError: model not fitted" in (job.error or "")
    assert "strategy.py" in (job.error or "")
    assert "model not fitted" in runner.jobs.read_log(job.id).text
    assert broker.sent == []
    assert deployments.orders(dep.id) == []


def test_over_limit_orders_are_refused_outside_the_sandbox_with_a_reason(
    deploy: Any, deployments: DeploymentService, clock: FrozenClock, daily_store: MarketDataStore
) -> None:
    """The deployment's limits are the runner's, not the child's: the big order is refused, recorded and logged."""
    code = "def run(ctx):\n    ctx.order('AAA', 1)\n    ctx.order('BBB', 100000)\n"
    broker = FakeBroker()
    dep, runner = make(deploy, deployments, clock, daily_store, code, broker=broker, risk={"max_order_value": 10_000.0})
    try:
        fire(runner, FIRST, clock)
        runner.run_pending()
    finally:
        runner.close()
    prefix = f"qf-{dep.id[:12]}-1-"
    assert broker.sent == [f"{prefix}1"]
    refused = {r["client_id"]: r for r in deployments.orders(dep.id)}[f"{prefix}2"]
    assert refused["status"] == "rejected"
    assert "max_order_value" in refused["reason"]
    (run,) = deployments.runs(dep.id)
    job = runner.jobs.get(run.job_id)  # type: ignore[arg-type]
    assert job.state is JobState.SUCCEEDED
    assert job.metrics is not None
    assert job.metrics["rejected"] == 1
    assert "max_order_value" in runner.jobs.read_log(job.id).text


def test_a_run_retried_after_the_forwarding_failed_sends_each_order_once(
    deploy: Any, deployments: DeploymentService, clock: FrozenClock, daily_store: MarketDataStore
) -> None:
    """The broker drops after the first of three orders: released; the retry reruns the child, sends only the rest."""
    code = "def run(ctx):\n    for s in ('AAA', 'BBB', 'AAA'):\n        ctx.order(s, 1)\n"

    class DropsOnce(FakeBroker):
        calls = 0

        def submit(self, request: Any, *, now: datetime) -> Any:
            self.calls += 1
            if self.calls == 2:
                raise BrokerUnavailable("connection reset")
            return super().submit(request, now=now)

    broker = DropsOnce()
    dep, runner = make(deploy, deployments, clock, daily_store, code, broker=broker)
    try:
        fire(runner, FIRST, clock)
        (job_id,) = runner.pending()
        assert runner.run_job(job_id) is None  # released
        assert [r.status for r in deployments.runs(dep.id)] == ["retrying"]
        assert runner.jobs.get(job_id).state is JobState.QUEUED
        assert runner.run_pending() == 1
    finally:
        runner.close()
    job = runner.jobs.get(job_id)
    assert (job.state, job.attempt) == (JobState.SUCCEEDED, 2)
    prefix = f"qf-{dep.id[:12]}-1-"
    assert broker.sent == [f"{prefix}1", f"{prefix}2", f"{prefix}3"]
    assert len(broker.orders) == 3


def test_a_child_cannot_cancel_another_deployments_order(
    deploy: Any, deployments: DeploymentService, clock: FrozenClock, daily_store: MarketDataStore
) -> None:
    """A strategy that forges a cancel message for an order not its deployment's: ignored, and said in the log."""
    broker = FakeBroker()
    theirs = "qf-someoneelse0-1-1"
    broker.submit(OrderRequest(client_id=theirs, symbol="AAA", quantity=5), now=FIRST)
    code = f"def run(ctx):\n    ctx._router.messages.append({{'op': 'cancel', 'client_id': {theirs!r}}})\n"
    dep, runner = make(deploy, deployments, clock, daily_store, code, broker=broker)
    try:
        fire(runner, FIRST, clock)
        assert runner.run_pending() == 1
    finally:
        runner.close()
    assert broker.get_order(theirs).status is OrderStatus.OPEN  # type: ignore[union-attr]
    (run,) = deployments.runs(dep.id)
    assert f"cancel of {theirs} ignored" in runner.jobs.read_log(run.job_id).text  # type: ignore[arg-type]


def test_a_run_whose_child_dies_is_retried_and_sends_its_order_once(
    deploy: Any, deployments: DeploymentService, clock: FrozenClock, daily_store: MarketDataStore, tmp_path: Path
) -> None:
    """The child is killed (as if the machine lost it) before reporting: released like any job, then rerun."""
    code = """
import os, signal

def run(ctx, marker=""):
    ctx.order("AAA", 1)
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
"""
    broker = FakeBroker()
    marker = tmp_path / "killed-once"
    dep, runner = make(deploy, deployments, clock, daily_store, code, broker=broker, params={"marker": str(marker)})
    try:
        fire(runner, FIRST, clock)
        (job_id,) = runner.pending()
        assert runner.run_job(job_id) is None
        assert marker.exists()
        assert broker.sent == []  # it died before its orders left
        (run,) = deployments.runs(dep.id)
        assert run.status == "retrying"
        assert "SIGKILL" in (run.error or "")
        assert runner.run_pending() == 1
    finally:
        runner.close()
    assert runner.jobs.get(job_id).attempt == 2
    assert broker.sent == [f"qf-{dep.id[:12]}-1-1"]


def test_a_state_that_is_not_json_fails_the_run_and_sends_nothing(
    deploy: Any, deployments: DeploymentService, clock: FrozenClock, daily_store: MarketDataStore
) -> None:
    """ctx.state must survive the trip out of the sandbox: an object in it fails the run, naming the fix."""
    code = "def run(ctx):\n    ctx.order('AAA', 1)\n    ctx.state['model'] = object()\n"
    broker = FakeBroker()
    dep, runner = make(deploy, deployments, clock, daily_store, code, broker=broker)
    try:
        fire(runner, FIRST, clock)
        runner.run_pending()
    finally:
        runner.close()
    (run,) = deployments.runs(dep.id)
    assert run.status == "failed"
    assert "ctx.state holds a value that is not plain JSON" in (run.error or "")
    assert broker.sent == []
