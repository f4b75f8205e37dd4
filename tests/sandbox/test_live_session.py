"""An on-bars deployment's strategy runs in the real sandbox for the whole session: no broker key, no secrets
file, no network, yet its attributes live from bar to bar and its orders reach the paper account.

The host (the session, as ``quantfleet deployments run`` builds it) holds the
(fake) Alpaca credentials in its environment and a secrets file; the strategy
looks for them and tries the network on every bar.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from quantfleet.core.settings import load_settings
from quantfleet.dispatch.launcher import child_environment
from quantfleet.dispatch.sandboxed import BubblewrapLauncher
from quantfleet.engine.config import EngineConfig
from quantfleet.jobs import JobService
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.models import DeploymentSpec
from quantfleet.live.mqtt import publish_bars
from quantfleet.live.paper import PaperBroker
from quantfleet.live.session import DeploymentSession
from quantfleet.store import Database, ObjectStore
from quantfleet.strategy.loader import StrategyError
from quantfleet.testing import FrozenClock, require_server
from quantfleet.testing.live import random_walk_bars

PROBE = """
import os, socket
from quantfleet import Strategy

class Probe(Strategy):
    def initialize(self, ctx):
        self.seen = 0  # an attribute: kept between bars only if the same object hears every bar

    def on_bar(self, ctx, bars):
        self.seen += 1
        ctx.state["seen"] = self.seen
        ctx.state["uid"] = os.getuid()
        ctx.state["keys"] = sorted(k for k in os.environ if "ALPACA" in k)
        try:
            ctx.state["secrets"] = open("SECRETS").read()
        except OSError as exc:
            ctx.state["secrets"] = type(exc).__name__
        try:
            socket.create_connection(("127.0.0.1", 5432), timeout=1)
            ctx.state["network"] = "REACHED"
        except OSError:
            ctx.state["network"] = "blocked"
        ctx.order("AAA", 1)
"""


def _session(tmp_path: Path, code: str, launcher: BubblewrapLauncher) -> tuple[DeploymentSession, Database]:
    clock = FrozenClock()
    clock.set(datetime(2024, 3, 4, 14, 31, tzinfo=UTC))
    db = Database(f"sqlite:///{tmp_path / 'quantfleet.db'}")
    db.upgrade()
    deployments = DeploymentService(JobService(db, ObjectStore(str(tmp_path / "objects")), clock=clock), clock=clock)
    spec = DeploymentSpec.model_validate(
        {
            "name": "probe",
            "owner": "alice",
            "code_sha256": deployments.put_code(code.encode(), "probe.py"),
            "code_name": "probe.py",
            "universe": ("AAA",),
            "frequency": "1m",
            "trigger": {"kind": "bars"},
            "engine": {"cash": 100_000.0},
        }
    )
    dep = deployments.create(spec)
    broker = PaperBroker.open(db, dep.account, now=clock.now(), config=EngineConfig(cash=100_000.0))
    session = DeploymentSession(
        deployments, dep, broker, run=1, clock=clock, launcher=launcher, work_root=tmp_path / "work"
    )
    return session, db


def test_an_on_bars_strategy_runs_in_the_sandbox_and_keeps_its_attributes(
    tmp_path: Path, secrets_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPACA_API_KEY", "PKFAKEKEY")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "fake-secret")
    monkeypatch.setenv("QUANTFLEET_ALPACA_SECRETS", str(secrets_file))
    launcher = BubblewrapLauncher(child_environment(os.environ))
    launcher.start()
    session, db = _session(tmp_path, PROBE.replace("SECRETS", str(secrets_file)), launcher)
    try:
        first_child = session.child
        assert first_child is not None
        for bars in random_walk_bars(("AAA",), datetime(2024, 3, 4, 14, 30, tzinfo=UTC), n=3):
            session.on_bars(bars["AAA"].ts_us, bars)
        assert session.child is first_child  # one child for the whole session
        state = session.service.get(session.deployment.id).state
        assert state["seen"] == 3  # the same strategy object heard every bar
        assert 61000 <= state["uid"] < 61064  # a slot's uid, not the host's root
        assert state["keys"] == []
        assert state["secrets"] == "FileNotFoundError"
        assert state["network"] == "blocked"
        orders = PaperBroker(db, session.deployment.account).orders()
        dep = session.deployment.id[:12]
        assert sorted(o.client_id for o in orders) == [f"qf-{dep}-1-{n}" for n in (1, 2, 3)]
    finally:
        session.close()
        launcher.close()
        db.dispose()


def test_a_failing_strategy_in_the_sandbox_shows_the_users_traceback(tmp_path: Path) -> None:
    launcher = BubblewrapLauncher(child_environment(os.environ))
    launcher.start()
    session, db = _session(tmp_path, "def run(ctx):\n    1 / 0\n", launcher)
    try:
        bars = random_walk_bars(("AAA",), datetime(2024, 3, 4, 14, 30, tzinfo=UTC), n=1)[0]
        with pytest.raises(StrategyError, match=r"ZeroDivisionError.*probe.py:2"):
            session.on_bars(bars["AAA"].ts_us, bars)
        assert PaperBroker(db, session.deployment.account).orders() == []
    finally:
        session.close()
        launcher.close()
        db.dispose()


def test_deployments_run_under_the_default_policy_runs_the_strategy_in_the_sandbox(
    tmp_path: Path, secrets_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'quantfleet deployments run' (what the scheduler supervises), sandbox on, bars over MQTT."""
    require_server("Mosquitto", "127.0.0.1", 1883, "mosquitto -p 1883 -d")
    env = {
        **os.environ,
        "QUANTFLEET_HOME": str(tmp_path / "home"),
        "QUANTFLEET_SANDBOX": "on",
        "ALPACA_API_KEY": "PKFAKEKEY",
        "QUANTFLEET_ALPACA_SECRETS": str(secrets_file),
    }
    symbol = f"S{uuid.uuid4().hex[:6].upper()}"
    path = tmp_path / "probe.py"
    path.write_text(PROBE.replace("SECRETS", str(secrets_file)).replace('"AAA"', repr(symbol)))
    cli = [sys.executable, "-m", "quantfleet.cli.app"]
    made = subprocess.run(
        [*cli, "deploy", str(path), "--symbols", symbol, "--on-bars", "--frequency", "1m"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    dep_id = made.stdout.split()[0]
    proc = subprocess.Popen([*cli, "deployments", "run", dep_id], env=env, start_new_session=True)
    try:
        monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "home"))
        service = DeploymentService(JobService.from_settings(load_settings()))
        deadline = time.monotonic() + 120
        while service.get(dep_id).heartbeat_at is None:
            assert proc.poll() is None, "the deployments run process exited"
            assert time.monotonic() < deadline, "the process never beat"
            time.sleep(0.1)
        publish_bars(
            "127.0.0.1", 1883, "1m", random_walk_bars((symbol,), datetime(2024, 3, 4, 14, 30, tzinfo=UTC), n=2)
        )
        while service.get(dep_id).state.get("seen") != 2:
            assert proc.poll() is None, "the deployments run process exited"
            assert time.monotonic() < deadline, f"state is {service.get(dep_id).state}"
            time.sleep(0.1)
        state = service.get(dep_id).state
        assert 61000 <= state["uid"] < 61064
        assert (state["keys"], state["secrets"], state["network"]) == ([], "FileNotFoundError", "blocked")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
