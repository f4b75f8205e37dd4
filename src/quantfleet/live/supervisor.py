"""Keep an event-driven deployment's process running: restart it when it exits or its heartbeat goes stale.

The process (``quantfleet deployments run ID``) records a heartbeat in the
deployment's row every few seconds. :meth:`Supervisor.step` starts it when
it is not running, and kills (its whole process group) and restarts it when
it exited or has not beaten for ``stale_after`` seconds; one that keeps
dying is restarted ever more slowly (1, 2, 4 ... 60 seconds after its
last start), and after ``max_restarts`` failures in a row (each within
5 minutes of its start) the deployment is paused. A restarted process
recovers from the broker (positions, open orders) and the database
(``ctx.state``, the last bar handled), never from the dead one's memory.
Step mode for tests; :meth:`serve` loops.

:class:`EventFleet` does this for every active event-driven deployment at
once: the scheduler process steps it on each tick, so a deployment created
``--on-bars`` (from the CLI or the API) is started without anyone running
``quantfleet deployments supervise``, restarted when it fails, and stopped
when it is paused or stopped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from quantfleet.core.process import stop_with_parent
from quantfleet.jobs.clock import Clock
from quantfleet.live.deployments import DeploymentNotFound, DeploymentService
from quantfleet.live.models import BarsTrigger, DeploymentStatus

__all__ = ["EventFleet", "Supervisor"]

log = logging.getLogger(__name__)

_HEALTHY = timedelta(minutes=5)  # a process that lived this long before failing counts as a fresh start


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
        # Its own group (killed whole), and told to stop should the supervisor die without cleaning up (SIGKILL,
        # OOM): otherwise the orphan would keep trading beside the one the next scheduler starts.
        self.process = subprocess.Popen(self.command, start_new_session=True, preexec_fn=stop_with_parent())
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
        """Start, keep or restart the process; return what was done.

        One of: started, running, restarted, waiting (dead, restarted after the backoff), stopped or gave up.
        """
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
        if self.started_at is not None and now - self.started_at >= _HEALTHY:
            self.restarts = 0  # it ran well for a while: only failures in a row slow restarts down or give up
        if exited and not stale and self.started_at is not None and now - self.started_at < self._backoff():
            return "waiting"  # it keeps dying at once (the feed is down?): do not respawn it every second
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

    def _backoff(self) -> timedelta:
        """Return how long after its start a process that died is restarted: 0, then 1, 2, 4 ... 60 seconds."""
        return timedelta(seconds=0.0 if self.restarts == 0 else min(60.0, 2.0 ** (self.restarts - 1)))

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


class EventFleet:
    """Supervise the process of every active event-driven (``bars``-triggered) deployment.

    ``command(deployment_id)`` returns the argv that runs one deployment (``quantfleet deployments run ID``).
    """

    def __init__(
        self,
        command: Callable[[str], Sequence[str]],
        service: DeploymentService,
        *,
        clock: Clock,
        stale_after: float = 30.0,
        max_restarts: int = 100,
    ) -> None:
        self.command = command
        self.service = service
        self.clock = clock
        self.stale_after = stale_after
        self.max_restarts = max_restarts
        self.supervisors: dict[str, Supervisor] = {}

    def step(self) -> dict[str, str]:
        """Start, keep, restart or stop each deployment's process; return what was done, by deployment id."""
        done: dict[str, str] = {}
        for dep in self.service.list(status=DeploymentStatus.ACTIVE):
            if isinstance(dep.spec.trigger, BarsTrigger) and dep.id not in self.supervisors:
                self.supervisors[dep.id] = Supervisor(
                    self.command(dep.id), self.service, dep.id, clock=self.clock,
                    stale_after=self.stale_after, max_restarts=self.max_restarts,
                )  # fmt: skip
        for dep_id, sup in list(self.supervisors.items()):
            try:
                done[dep_id] = sup.step()
            except DeploymentNotFound:
                sup.stop()
                done[dep_id] = "stopped"
            except Exception:  # one deployment's trouble (a failed spawn) must not stop the others
                log.exception("deployment %s: supervising failed; trying again on the next step", dep_id)
                continue
            if done[dep_id] in ("stopped", "gave up"):
                del self.supervisors[dep_id]
        return done

    def stop(self) -> None:
        """Kill every supervised process (the scheduler is stopping)."""
        for sup in self.supervisors.values():
            sup.stop()
        self.supervisors.clear()
