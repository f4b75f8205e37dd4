"""The supervisor restarts a deployment's process when it dies or its heartbeat goes stale (real processes).

The fleet does so for every active event deployment, stepped by the scheduler.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

from quantfleet.live.deployments import DeploymentService
from quantfleet.live.runner import LiveRunner
from quantfleet.live.scheduler import Scheduler
from quantfleet.live.supervisor import EventFleet, Supervisor
from quantfleet.testing import FrozenClock
from quantfleet.testing.jobs import wait_until


def test_a_dead_process_is_restarted_and_a_hung_one_killed(
    deploy: Any, deployments: DeploymentService, clock: FrozenClock
) -> None:
    dep = deploy("def run(ctx):\n    pass\n")
    dying = Supervisor([sys.executable, "-c", "raise SystemExit(3)"], deployments, dep.id, clock=clock)
    assert dying.step() == "started"
    first = dying.process
    assert first is not None
    wait_until(lambda: first.poll() is not None)
    assert dying.step() == "restarted"
    assert dying.restarts == 1
    dying.stop()

    hung = Supervisor(
        [sys.executable, "-c", "import time; time.sleep(600)"], deployments, dep.id, clock=clock, stale_after=30
    )
    assert hung.step() == "started"
    assert hung.step() == "running"
    deployments.beat(dep.id, now=clock.advance(20))
    clock.advance(20)
    assert hung.step() == "running"  # beat 20 s ago
    old = hung.process
    assert old is not None
    clock.advance(15)
    assert hung.step() == "restarted"  # no beat for 35 s: killed, not left running
    assert old.poll() is not None
    deployments.pause(dep.id)
    assert hung.step() == "stopped"
    assert hung.process is None


def test_the_fleet_runs_every_active_event_deployment_and_only_those(
    deploy: Any, deployments: DeploymentService, clock: FrozenClock, tmp_path: Path
) -> None:
    """An on-bars deployment gets a process without anyone asking; a dead one is restarted; a paused one ends."""
    events = deploy("def run(ctx):\n    pass\n", name="events")
    deploy("def run(ctx):\n    pass\n", name="cron", trigger={"kind": "cron", "cron": "0 10 * * *"})
    starts = tmp_path / "starts"
    script = tmp_path / "proc.py"  # logs each start; the first process dies at once, later ones live on
    script.write_text(
        "import pathlib, sys, time\n"
        "log = pathlib.Path(sys.argv[1])\n"
        "with log.open('a') as f:\n    f.write(sys.argv[2] + '\\n')\n"
        "if len(log.read_text().splitlines()) > 1:\n    time.sleep(600)\n"
    )
    fleet = EventFleet(lambda dep_id: [sys.executable, str(script), str(starts), dep_id], deployments, clock=clock)
    try:
        assert fleet.step() == {events.id: "started"}
        first = fleet.supervisors[events.id].process
        assert first is not None
        wait_until(lambda: first.poll() is not None)
        assert fleet.step() == {events.id: "restarted"}  # the first process exited: started again
        wait_until(lambda: starts.read_text().count("\n") == 2)
        assert fleet.step() == {events.id: "running"}
        assert starts.read_text().split() == [events.id, events.id]  # the cron deployment never got a process
        running = fleet.supervisors[events.id].process
        assert running is not None
        deployments.pause(events.id)
        assert fleet.step() == {events.id: "stopped"}
        assert running.poll() is not None  # killed, not left behind
        assert fleet.supervisors == {}
        deployments.resume(events.id)
        assert fleet.step() == {events.id: "started"}  # resumed: running again
    finally:
        fleet.stop()


def test_the_scheduler_steps_the_fleet_and_stops_it_when_it_stops(
    deploy: Any, deployments: DeploymentService, clock: FrozenClock, daily_store: Any
) -> None:
    """Each scheduler tick keeps the event processes; ending serve() kills them."""
    events = deploy("def run(ctx):\n    pass\n")
    fleet = EventFleet(lambda dep_id: [sys.executable, "-c", "import time; time.sleep(600)"], deployments, clock=clock)
    scheduler = Scheduler(LiveRunner(deployments, store=lambda: daily_store, clock=clock), events=fleet,
                          run_jobs=False)  # fmt: skip
    assert scheduler.tick(clock.now()) == [f"{events.id}:started"]
    process = fleet.supervisors[events.id].process
    assert process is not None
    assert scheduler.tick(clock.now()) == []
    stop = threading.Event()
    stop.set()
    scheduler.serve(stop, clock=clock.now)
    assert process.poll() is not None
    assert fleet.supervisors == {}


def test_a_process_that_keeps_dying_is_restarted_ever_more_slowly_then_given_up(
    deploy: Any, deployments: DeploymentService, clock: FrozenClock
) -> None:
    """Restarts back off (1, 2, 4 s after the last start); after max_restarts in a row the deployment pauses."""
    dep = deploy("def run(ctx):\n    pass\n")
    sup = Supervisor([sys.executable, "-c", "raise SystemExit(1)"], deployments, dep.id, clock=clock, max_restarts=3)

    def dead() -> None:
        process = sup.process
        assert process is not None
        wait_until(lambda: process.poll() is not None)

    assert sup.step() == "started"
    dead()
    assert sup.step() == "restarted"  # the first restart is at once
    dead()
    assert sup.step() == "waiting"
    clock.advance(1)
    assert sup.step() == "restarted"
    dead()
    clock.advance(1)
    assert sup.step() == "waiting"  # 2 s after the last start
    clock.advance(1)
    assert sup.step() == "restarted"
    dead()
    clock.advance(4)
    assert sup.step() == "gave up"
    paused = deployments.get(dep.id)
    assert (paused.status.value, paused.reason) == ("paused", "its process failed 3 times; see its log")
