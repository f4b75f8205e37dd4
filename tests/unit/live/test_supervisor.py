"""The supervisor restarts a deployment's process when it dies or its heartbeat goes stale (real processes)."""

from __future__ import annotations

import sys
import time
from typing import Any

from quantfleet.live.deployments import DeploymentService
from quantfleet.live.supervisor import Supervisor
from quantfleet.testing import FrozenClock


def wait_for(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_dead_process_is_restarted_and_a_hung_one_killed(
    deploy: Any, deployments: DeploymentService, clock: FrozenClock
) -> None:
    dep = deploy("def run(ctx):\n    pass\n")
    dying = Supervisor([sys.executable, "-c", "raise SystemExit(3)"], deployments, dep.id, clock=clock)
    assert dying.step() == "started"
    first = dying.process
    assert first is not None
    wait_for(lambda: first.poll() is not None)
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
