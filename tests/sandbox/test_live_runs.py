"""A scheduled live run's strategy executes in the real sandbox: no broker key, no secrets file, no network.

The scheduler's process holds the (fake) Alpaca credentials in its
environment and in a secrets file; the strategy, run by the live runner
through the bubblewrap launcher, looks for them and tries the network, and
still places an order that reaches the paper account.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars
from quantfleet.dispatch.launcher import child_environment
from quantfleet.dispatch.sandboxed import BubblewrapLauncher
from quantfleet.jobs import JobService, JobState
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.models import DeploymentSpec
from quantfleet.live.paper import PaperBroker
from quantfleet.live.runner import LiveRunner
from quantfleet.live.scheduler import Scheduler
from quantfleet.store import Database, ObjectStore
from quantfleet.testing import FrozenClock

PROBE = """
import os, socket

def run(ctx, secrets=""):
    ctx.state["uid"] = os.getuid()
    ctx.state["keys"] = sorted(k for k in os.environ if "ALPACA" in k)
    try:
        ctx.state["secrets"] = open(secrets).read()
    except OSError as exc:
        ctx.state["secrets"] = type(exc).__name__
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1)
        ctx.state["network"] = "REACHED"
    except OSError:
        ctx.state["network"] = "blocked"
    ctx.order("AAA", 10)
"""


def test_a_scheduled_run_executes_in_the_sandbox_and_its_order_reaches_the_paper_broker(
    tmp_path: Path, secrets_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPACA_API_KEY", "PKFAKEKEY")
    monkeypatch.setenv("QUANTFLEET_ALPACA_SECRETS", str(secrets_file))
    store = MarketDataStore(str(tmp_path / "data"))
    data = synthetic_bars(["AAA", "BBB"], start=date(2022, 1, 1), end=date(2022, 6, 30), actions=False)
    store.ingest_bars([data.bars], frequency="1d", source="test")
    clock = FrozenClock()
    clock.set(datetime(2022, 6, 1, 13, 0, tzinfo=UTC))
    db = Database(f"sqlite:///{tmp_path / 'quantfleet.db'}")
    db.upgrade()
    deployments = DeploymentService(JobService(db, ObjectStore(str(tmp_path / "objects")), clock=clock), clock=clock)
    code = PROBE.encode()
    spec = DeploymentSpec.model_validate(
        {
            "name": "probe",
            "owner": "alice",
            "code_sha256": deployments.put_code(code, "probe.py"),
            "code_name": "probe.py",
            "universe": ("AAA", "BBB"),
            "trigger": {"kind": "cron", "cron": "0 10 * * MON-FRI"},
            "engine": {"cash": 100_000.0},
            "params": {"secrets": str(secrets_file)},
        }
    )
    dep = deployments.create(spec)
    launcher = BubblewrapLauncher(child_environment(os.environ))
    launcher.start()
    runner = LiveRunner(deployments, store=lambda: store, clock=clock, launcher=launcher, work_root=tmp_path / "work")
    try:
        clock.set(datetime(2022, 6, 1, 14, 0, 30, tzinfo=UTC))
        Scheduler(runner, run_jobs=False).tick(clock.now())
        assert runner.run_pending() == 1
        (run,) = deployments.runs(dep.id)
        job = runner.jobs.get(run.job_id)  # type: ignore[arg-type]
        log = runner.jobs.read_log(job.id).text
        assert job.state is JobState.SUCCEEDED, (job.error, log[-2000:])
        state = deployments.get(dep.id).state
        assert 61000 <= state["uid"] < 61064  # a slot's uid, not the scheduler's root
        assert state["keys"] == []
        assert state["secrets"] == "FileNotFoundError"
        assert state["network"] == "blocked"
        paper = PaperBroker(db, dep.account)
        (order,) = paper.open_orders()
        assert (order.client_id, order.symbol, order.quantity) == (f"qf-{dep.id[:12]}-1-1", "AAA", 10)

        # A failing strategy in the sandbox is a failed job with the user's message, as a backtest's is.
        broken = DeploymentSpec.model_validate(
            {
                **spec.model_dump(),
                "name": "broken",
                "params": {},
                "code_sha256": deployments.put_code(b"def run(ctx):\n    1 / 0\n", "probe.py"),
            }
        )
        bad = deployments.create(broken)
        clock.set(datetime(2022, 6, 2, 14, 0, 30, tzinfo=UTC))
        Scheduler(runner, run_jobs=False).tick(clock.now())
        runner.run_pending()
        (failed,) = deployments.runs(bad.id)
        assert failed.status == "failed"
        assert "ZeroDivisionError" in (runner.jobs.get(failed.job_id).error or "")  # type: ignore[arg-type]
    finally:
        runner.close()
        db.dispose()
