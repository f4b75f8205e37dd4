"""'quantfleet scheduler' runs an on-bars deployment's process by itself, restarts it after a SIGKILL (the new one
carries on from the database and the broker), stops it when the deployment is paused, and leaves nothing behind.
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


def processes_of(dep_id: str) -> list[int]:
    """Return the pids of 'quantfleet deployments run DEP_ID' processes (read from /proc)."""
    return live_pids(lambda argv: b"run" in argv and dep_id.encode() in argv and b"deployments" in argv)


def wait_for(condition: Callable[[], object], what: str, timeout: float = 90.0) -> None:
    wait_until(condition, timeout=timeout, what=what)


def test_the_scheduler_keeps_an_event_deployment_running(tmp_path: Path, monkeypatch: Any) -> None:
    require_server("Mosquitto", HOST, PORT, "mosquitto -p 1883 -d")
    monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "home"))
    symbol = f"S{uuid.uuid4().hex[:6].upper()}"
    path = tmp_path / "count.py"
    path.write_text(CODE)
    done = CliRunner().invoke(app, ["deploy", str(path), "--symbols", symbol, "--on-bars", "--frequency", "1m"])
    assert done.exit_code == 0, done.output
    dep_id = done.output.split()[0]
    service = DeploymentService(JobService.from_settings(load_settings()))
    day = random_walk_bars((symbol,), datetime(2024, 3, 4, 14, 30, tzinfo=UTC), n=10)
    command = [sys.executable, "-m", "quantfleet.cli.app", "scheduler", "--mqtt-host", HOST, "--mqtt-port", str(PORT)]
    scheduler = subprocess.Popen(command, env=dict(os.environ), start_new_session=True)
    try:
        wait_for(lambda: service.get(dep_id).heartbeat_at is not None, "the scheduler to start the process")
        (first,) = processes_of(dep_id)
        publish_bars(HOST, PORT, "1m", day[:5])
        wait_for(lambda: service.get(dep_id).state.get("bars") == 5, "5 bars")

        os.killpg(first, signal.SIGKILL)  # the deployment's process dies; the scheduler is not told
        wait_for(lambda: processes_of(dep_id) not in ([], [first]), "a new process")
        (second,) = processes_of(dep_id)
        beat = service.get(dep_id).heartbeat_at
        wait_for(lambda: service.get(dep_id).heartbeat_at != beat, "the new process to beat")
        publish_bars(HOST, PORT, "1m", day[3:])  # bars 3 and 4 again: already handled
        wait_for(lambda: service.get(dep_id).state.get("bars") == 10, "10 bars")

        service.pause(dep_id)
        wait_for(lambda: processes_of(dep_id) == [], "the paused deployment's process to end")
        service.resume(dep_id)
        wait_for(lambda: len(processes_of(dep_id)) == 1, "the resumed deployment's process")
    finally:
        scheduler.send_signal(signal.SIGTERM)
        scheduler.wait(30)
    assert scheduler.returncode == 0
    wait_for(lambda: processes_of(dep_id) == [], "nothing left behind", timeout=10)
    orders = PaperBroker(service.db, service.get(dep_id).account).orders()
    assert len(orders) == 10
    assert len({o.client_id for o in orders}) == 10  # no order sent twice across the restart
    assert second != first


def test_an_event_process_stops_when_its_scheduler_is_killed(tmp_path: Path, monkeypatch: Any) -> None:
    require_server("Mosquitto", HOST, PORT, "mosquitto -p 1883 -d")
    monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "home"))
    path = tmp_path / "count.py"
    path.write_text(CODE)
    symbol = f"K{uuid.uuid4().hex[:6].upper()}"
    done = CliRunner().invoke(app, ["deploy", str(path), "--symbols", symbol, "--on-bars", "--frequency", "1m"])
    assert done.exit_code == 0, done.output
    dep_id = done.output.split()[0]
    service = DeploymentService(JobService.from_settings(load_settings()))
    command = [sys.executable, "-m", "quantfleet.cli.app", "scheduler", "--mqtt-host", HOST, "--mqtt-port", str(PORT)]
    scheduler = subprocess.Popen(command, env=dict(os.environ), start_new_session=True)
    try:
        wait_for(lambda: service.get(dep_id).heartbeat_at is not None, "the scheduler to start the process")
        (orphan,) = processes_of(dep_id)
    finally:
        scheduler.kill()  # SIGKILL: no clean-up of its own
        scheduler.wait(30)
    # Without a parent-death signal the event process would trade on beside the next scheduler's.
    wait_for(lambda: processes_of(dep_id) == [], "the orphaned event process to stop", timeout=20)
    assert orphan not in processes_of(dep_id)
