"""The scheduler: fires deployments' cron runs (as live jobs) and data-ingestion schedules.

Step mode: :meth:`Scheduler.tick` does everything due at ``now`` and
returns; :meth:`Scheduler.serve` calls it once a second. Fire times come
from :func:`~quantfleet.live.triggers.next_fire`; a run missed by more than
``grace`` (the scheduler was down) is skipped, not fired late. A due time
fires once: runs are unique per (deployment, due time) in the database, so
two schedulers, or one restarted within the minute, do not double a run.

With an :class:`~quantfleet.live.supervisor.EventFleet` the scheduler also
keeps event-driven deployments' processes running: each tick steps it, and
:meth:`Scheduler.serve` stops their processes when it ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from quantfleet.live.models import CronTrigger, DeploymentStatus
from quantfleet.live.runner import LiveRunner
from quantfleet.live.supervisor import EventFleet
from quantfleet.live.triggers import next_fire

__all__ = ["IngestSchedule", "Scheduler"]

log = logging.getLogger(__name__)


@dataclass
class IngestSchedule:
    """A data-ingestion job on a cron schedule: ``run(due)`` pulls from a vendor into a new snapshot.

    ``on_next(when)`` is told each new fire time (a stored schedule keeps it in the database).
    """

    name: str
    trigger: CronTrigger
    run: Callable[[datetime], object]
    next_at: datetime | None = field(default=None)
    on_next: Callable[[datetime | None], object] | None = field(default=None)


class Scheduler:
    """Fire what is due: deployments' runs (then run their jobs) and ingestion schedules."""

    def __init__(
        self,
        runner: LiveRunner,
        *,
        ingest: Sequence[IngestSchedule] | Callable[[], Sequence[IngestSchedule]] = (),
        grace: timedelta = timedelta(minutes=5),
        run_jobs: bool = True,
        events: EventFleet | None = None,
    ) -> None:
        self.runner = runner
        self.deployments = runner.deployments
        # A callable is asked again on every tick: schedules stored in the database come and go while it runs.
        self.ingest = ingest if callable(ingest) else list(ingest)
        self.grace = grace
        self.run_jobs = run_jobs
        self.events = events

    def tick(self, now: datetime) -> list[str]:
        """Fire everything due at ``now``; return what fired (``deployment-id#run`` and ingestion names)."""
        fired: list[str] = []
        for schedule in self.ingest() if callable(self.ingest) else self.ingest:
            fired += self._ingest(schedule, now)
        for dep in self.deployments.list(status=DeploymentStatus.ACTIVE):
            trigger = dep.spec.trigger
            if not isinstance(trigger, CronTrigger):
                continue
            due = dep.next_run_at or next_fire(trigger, dep.created_at)
            while due is not None and due <= now:
                if now - due > self.grace:
                    log.warning("deployment %s: run due at %s missed by %s; skipped", dep.id, due, now - due)
                else:
                    run = self.runner.submit(dep, due_at=due)
                    if run is not None:
                        fired.append(f"{dep.id}#{run.number}")
                due = next_fire(trigger, due)
            if due != dep.next_run_at:
                self.deployments.set_next_run(dep.id, due)
        if self.events is not None:
            for dep_id, what in self.events.step().items():
                if what in ("started", "restarted"):
                    fired.append(f"{dep_id}:{what}")
        if self.run_jobs:
            self.runner.run_pending()
        return fired

    def _ingest(self, schedule: IngestSchedule, now: datetime) -> list[str]:
        if schedule.next_at is None:
            schedule.next_at = next_fire(schedule.trigger, now - self.grace)
        if schedule.next_at is None or schedule.next_at > now:
            return []
        # Pulls missed while the scheduler was down collapse into one: the latest due time, which fetches
        # the freshest data (its window reaches back over the missed days).
        due = schedule.next_at
        while (after := next_fire(schedule.trigger, due)) is not None and after <= now:
            due = after
        fired = []
        try:
            schedule.run(due)
            fired.append(schedule.name)
        except Exception:  # one failed pull must not stop the trading schedules
            log.exception("ingestion %s due at %s failed; the next is tried on schedule", schedule.name, due)
        schedule.next_at = after
        if schedule.on_next is not None:
            schedule.on_next(after)
        return fired

    def serve(self, stop: threading.Event, *, clock: Callable[[], datetime], every: float = 1.0) -> None:
        """Tick every ``every`` seconds until ``stop`` is set; then stop the event deployments' processes."""
        try:
            while not stop.is_set():
                try:
                    self.tick(clock())
                except Exception:
                    log.exception("a scheduler tick failed; trying again in %g s", every)
                stop.wait(every)
        finally:
            if self.events is not None:
                self.events.stop()
