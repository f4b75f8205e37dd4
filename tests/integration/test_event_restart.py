"""An event deployment's process killed with SIGKILL and started again carries on from the database and the broker:
its ctx.state and position continue, bars it handled are not handled twice, and no order is sent twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from quantfleet.cli.app import app
from quantfleet.core.settings import load_settings
from quantfleet.jobs import JobService
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.mqtt import publish_bars
from quantfleet.live.paper import PaperBroker
from quantfleet.testing import require_server
from quantfleet.testing.jobs import wait_until
from quantfleet.testing.live import random_walk_bars
from quantfleet.testing.processes import live_pids

HOST, PORT = "127.0.0.1", 1883
CODE = """
def run(ctx):
    ctx.state["bars"] = ctx.state.get("bars", 0) + 1
    ctx.order(ctx.universe[0], 1)
"""


def strategy_children(dep_id: str) -> list[int]:
    """Return the pids of the strategy children of ``dep_id``'s sessions (by their work folder), zombies aside."""
    wanted = (b"quantfleet.dispatch.child", dep_id.encode())
    return live_pids(lambda argv: all(part in b"\0".join(argv) for part in wanted))


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    wait_until(condition, timeout=timeout, what=what)


def test_a_killed_event_process_recovers(tmp_path: Path, monkeypatch: Any) -> None:
    require_server("Mosquitto", HOST, PORT, "mosquitto -p 1883 -d")
    monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "home"))
    symbol = f"R{uuid.uuid4().hex[:6].upper()}"
    path = tmp_path / "count.py"
    path.write_text(CODE)
    done = CliRunner().invoke(app, ["deploy", str(path), "--symbols", symbol, "--on-bars", "--frequency", "1m"])
    assert done.exit_code == 0, done.output
    dep_id = done.output.split()[0]
    service = DeploymentService(JobService.from_settings(load_settings()))
    day = random_walk_bars((symbol,), datetime(2024, 3, 4, 14, 30, tzinfo=UTC), n=10)
    command = [sys.executable, "-m", "quantfleet.cli.app", "deployments", "run", dep_id]

    def start() -> subprocess.Popen[bytes]:
        before = service.get(dep_id).heartbeat_at
        proc = subprocess.Popen(command, env=dict(os.environ), start_new_session=True)
        wait_for(lambda: service.get(dep_id).heartbeat_at not in (None, before), "the process to beat")
        return proc

    first = start()
    try:
        publish_bars(HOST, PORT, "1m", day[:5])
        wait_for(lambda: service.get(dep_id).state.get("bars") == 5, "5 bars")
        assert len(strategy_children(dep_id)) == 1  # the strategy runs in a child of its own
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    # Its strategy child (a session of its own) sees its stdin end and kills itself: it does not trade on unseen.
    wait_for(lambda: strategy_children(dep_id) == [], "the dead process's strategy child to end", timeout=20)
    second = start()
    try:
        publish_bars(HOST, PORT, "1m", day[3:])  # bars 3 and 4 again: already handled
        wait_for(lambda: service.get(dep_id).state.get("bars") == 10, "10 bars")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    wait_for(lambda: strategy_children(dep_id) == [], "the stopped process's strategy child to end", timeout=20)
    dep = service.get(dep_id)
    orders = PaperBroker(service.db, dep.account).orders()
    assert len(orders) == 10
    assert len({o.client_id for o in orders}) == 10
    assert {o.client_id.rsplit("-", 2)[-2] for o in orders} == {"1", "2"}  # two runs: the two processes
    assert PaperBroker(service.db, dep.account).positions()[symbol].quantity == 9  # the 10th fills on bar 11
