"""Keep an event-driven deployment's process running: restart it when it exits or its heartbeat goes stale.

The process (``quantfleet deployments run ID``) records a heartbeat in the
deployment's row every few seconds. :meth:`Supervisor.step` starts it when
it is not running, and kills (its whole process group) and restarts it when
it exited or has not beaten for ``stale_after`` seconds. A restarted process
recovers from the broker (positions, open orders) and the database
(``ctx.state``, the last bar handled), never from the dead one's memory.
Step mode for tests; :meth:`serve` loops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

from quantfleet.jobs.clock import Clock
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.models import DeploymentStatus

__all__ = ["Supervisor"]

log = logging.getLogger(__name__)


class Supervisor:
    """Run ``command`` for one deployment and restart it on failure (see the module docstring)."""

    def __init__(
        self,
        command: Sequence[str],
        service: DeploymentService,
        deployment_id: str,
        *,
        clock: Clock,
        stale_after: float = 30.0,
        max_restarts: int = 100,
    ) -> None:
        self.command = list(command)
        self.service = service
        self.deployment_id = deployment_id
        self.clock = clock
        self.stale_after = timedelta(seconds=stale_after)
        self.max_restarts = max_restarts
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at: datetime | None = None
        self.restarts = 0

    def _start(self) -> None:
        self.process = subprocess.Popen(self.command, start_new_session=True)  # its own group: killed whole
        self.started_at = self.clock.now()
        log.info("deployment %s: process %d started", self.deployment_id, self.process.pid)

    def _kill(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def step(self) -> str:
        """Start, keep or restart the process; return what was done: started, running, restarted, stopped or gave up."""
        dep = self.service.get(self.deployment_id)
        if dep.status is not DeploymentStatus.ACTIVE:
            self.stop()
            return "stopped"
        if self.process is None:
            self._start()
            return "started"
        now = self.clock.now()
        exited = self.process.poll() is not None
        beat = dep.heartbeat_at
        since = beat if beat is not None and self.started_at is not None and beat > self.started_at else self.started_at
        stale = since is not None and now - since > self.stale_after
        if not (exited or stale):
            return "running"
        if self.restarts >= self.max_restarts:
            self.service.pause(self.deployment_id, reason=f"its process failed {self.restarts} times; see its log")
            self.stop()
            return "gave up"
        why = f"exited with {self.process.returncode}" if exited else f"no heartbeat since {since}"
        log.warning("deployment %s: process %d %s; restarting", self.deployment_id, self.process.pid, why)
        self._kill()
        self.restarts += 1
        self._start()
        return "restarted"

    def stop(self) -> None:
        """Kill the process (its whole group)."""
        self._kill()
        self.process = None

    def serve(self, stop: threading.Event, *, every: float = 1.0) -> None:
        """Step every ``every`` seconds until ``stop`` is set, then stop the process."""
        try:
            while not stop.is_set():
                self.step()
                stop.wait(every)
        finally:
            self.stop()
