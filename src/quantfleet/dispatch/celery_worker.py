"""A Celery worker of the fleet: each message names a job id; the attempt runs as a local pool slot runs it.

:class:`CeleryFleet` is a :class:`~quantfleet.dispatch.worker.Worker` that
does not poll the queue table: Celery's threads are its slots, and each
``run_job(job_id)`` message is a wake-up that claims the next job by the job
system's fair order (priority, then the owner with the fewest running jobs,
then the oldest; quotas applied) and runs the attempt
in a child process forked by the same launcher, with the same heartbeats,
fencing, logs and artifacts. Its own loop (a thread beside Celery's, no beat
needed) keeps the authority on lost jobs and lost messages:

- the **reaper** re-queues jobs whose lease expired (a worker killed, a host
  lost); the job service then publishes their ids again;
- the **sweeper** publishes again the ids of jobs queued longer than
  ``QUANTFLEET_SWEEP_SECONDS`` while the broker's queue is empty (a message
  lost: submitted while the broker was down, or a broker restarted without
  persistence). A duplicate costs one no-op claim;
- sweep parents waiting on their children are tended as in the local pool.

Run one with ``quantfleet worker --broker redis://...`` or
``python -m quantfleet.dispatch.celery_worker --broker URL --slots N``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from datetime import timedelta
from enum import StrEnum

from celery import Celery

from quantfleet.core.settings import Settings
from quantfleet.data.storage import is_remote
from quantfleet.dispatch.celery_app import CeleryDispatcher, QuantfleetCelery, app, configure, queue_messages
from quantfleet.dispatch.execute import Attempt, retry
from quantfleet.dispatch.launcher import LAUNCHERS, ChildLauncher, child_environment
from quantfleet.dispatch.task import DataRef
from quantfleet.dispatch.trusted import launcher_from_settings
from quantfleet.dispatch.worker import Worker, WorkerConfig, default_worker_name
from quantfleet.jobs import Claim, JobId, JobService, JobState
from quantfleet.jobs.errors import DatabaseUnavailable

__all__ = ["CeleryFleet", "Ran", "fleet_from_settings", "run_celery_worker"]

log = logging.getLogger(__name__)


class Ran(StrEnum):
    """What one delivery of a job id did."""

    RAN = "ran"
    SKIPPED = "skipped"  # not queued any more: a duplicate or late delivery


class CeleryFleet(Worker):
    """Run the jobs Celery messages name; reap lost jobs and re-publish lost messages (module docstring)."""

    def __init__(
        self,
        service: JobService,
        config: WorkerConfig,
        *,
        launcher: ChildLauncher,
        celery: Celery,
        sweep_seconds: float = 60.0,
    ) -> None:
        super().__init__(service, config, launcher=launcher)
        self.celery = celery
        self.sweep_seconds = sweep_seconds
        self.publish = CeleryDispatcher(celery)
        self._tasks = 0
        self._next_sweep = 0.0
        self._published: dict[JobId, float] = {}
        self._attempts: dict[JobId, Attempt] = {}
        self.executions = 0

    @property
    def busy(self) -> int:
        """Return how many slots run an attempt (Celery's tasks and this worker's own gathers)."""
        with self._lock:
            return len(self._running) + self._tasks

    def run_job(self, job_id: JobId) -> Ran:
        """Claim the next job in fair order and run its attempt here, in the calling (slot) thread.

        The database, not the message, decides which job runs: one message per
        submitted job wakes one claim, so every job runs, in the fair order
        (a user's 1,000-job sweep does not starve another's single backtest,
        which taking messages in arrival order would), within each owner's
        running quota. A duplicate or late message finds nothing to claim.
        """
        claim = retry(lambda: self.service.claim(self.config.name), stop=self._shutdown)
        if claim is None:
            log.info("nothing to claim for the message of job %s: a duplicate, or its owner is at quota", job_id)
            return Ran.SKIPPED
        with self._lock:
            self._tasks += 1
            self.executions += 1
        launched = threading.Event()
        bridge = threading.Thread(target=self._bridge, args=(claim, launched), name="quantfleet-bridge", daemon=True)
        bridge.start()
        try:
            self._execute(claim)
        finally:
            launched.set()
            bridge.join()
            with self._lock:
                self._tasks -= 1
                self._attempts.pop(claim.job_id, None)
        return Ran.RAN

    def _attempt(self, claim: Claim) -> Attempt:
        attempt = super()._attempt(claim)
        with self._lock:
            self._attempts[claim.job_id] = attempt
        return attempt

    def _bridge(self, claim: Claim, ended: threading.Event) -> None:
        """Renew the lease from the claim until the child runs (then the attempt's own heartbeats take over).

        Preparing and launching can outlast a short lease: the fork server's first
        fork waits for its pre-imports, the code may come from S3. (Redundant, and
        skipped, once ``Attempt`` renews its own lease from the claim.)
        """
        while not ended.wait(self.config.heartbeat_seconds):
            with self._lock:
                attempt = self._attempts.get(claim.job_id)
            if attempt is not None and (attempt.pid is not None or getattr(attempt, "beat", None) is not None):
                return  # the child runs (its supervisor beats), or the attempt renews its own lease
            try:
                if not self.service.heartbeat(claim).ok:
                    return
            except DatabaseUnavailable:
                continue

    # -- the loop beside Celery ----------------------------------------------------------------

    def tick(self) -> bool:
        """Reap lost jobs, tend waiting sweep parents, re-publish lost messages; never claims by itself."""
        now = time.monotonic()
        if now >= self._next_reap:
            self._next_reap = now + (self.config.reap_seconds or self.config.lease_seconds / 2)
            with contextlib.suppress(DatabaseUnavailable):
                self.service.reap()  # re-queued ids are published by the service's notify hook
        self._tend_parents()
        if now >= self._next_sweep:
            self._next_sweep = now + max(self.sweep_seconds / 2, 0.2)
            try:
                self.sweep()
            except DatabaseUnavailable:
                pass
            except Exception as exc:  # the broker is down: the next sweep tries again
                log.warning("sweeper: the broker is unreachable (%s); queued jobs wait for it", exc)
        return False

    def serve(self, stop: threading.Event) -> None:
        """Run the reaper and sweeper loop until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # a bug or a poison job must not stop the reaper and the sweeper
                log.exception("the reaper and sweeper loop failed; trying again on the next tick")
            stop.wait(min(self.config.poll_seconds, self.sweep_seconds / 4))

    def broker_backlog(self) -> int:
        """Return how many messages wait in the broker's queue (0 when Redis holds none: the key is gone)."""
        return queue_messages(self.celery)

    def sweep(self) -> list[JobId]:
        """Publish again the ids of jobs queued for over ``sweep_seconds`` if the broker's queue is empty."""
        if self.broker_backlog() > 0:
            return []  # the fleet is busy with messages: every queued job's id may still be among them
        cutoff = self.service.clock.now() - timedelta(seconds=self.sweep_seconds)
        now = time.monotonic()
        stale: list[JobId] = []
        cursor = None
        while True:
            page = self.service.list(state=JobState.QUEUED, limit=1000, cursor=cursor)
            stale.extend(j.id for j in page.items if j.updated_at <= cutoff)
            cursor = page.next_cursor
            if cursor is None:
                break
        published = []
        for job_id in reversed(stale):  # oldest first
            if now - self._published.get(job_id, -1e18) < self.sweep_seconds:
                continue
            self.publish(job_id)
            self._published[job_id] = now
            published.append(job_id)
        self._published = {k: v for k, v in self._published.items() if now - v < 10 * self.sweep_seconds}
        if published:
            log.info("sweeper: published %d queued job(s) again", len(published))
        return published


def fleet_from_settings(
    settings: Settings,
    *,
    celery: QuantfleetCelery = app,
    slots: int | None = None,
    name: str | None = None,
    launcher: str | None = None,
) -> CeleryFleet:
    """Return a fleet worker on the settings' database, objects and data, its launcher started.

    The job service's ``notify`` publishes to ``celery``, so jobs the reaper
    re-queues (and children a sweep submits) are published after the commit.
    """
    service = JobService.from_settings(settings, notify=CeleryDispatcher(celery))
    data = DataRef.from_settings(settings)
    env = child_environment(os.environ, remote_data=is_remote(data.url))
    env.pop("QUANTFLEET_BROKER_URL", None)  # the broker's address (and password) never reaches a job
    child_launcher = launcher_from_settings(settings, env, service=service, kind=launcher)
    start = getattr(child_launcher, "start", None)
    if start is not None:
        start()  # before Celery starts its threads
    config = WorkerConfig(
        data=data,
        work_root=(settings.home / "work").resolve(),
        name=name or default_worker_name(),
        slots=slots or (os.cpu_count() or 1),
        lease_seconds=settings.lease_seconds,
        poll_seconds=0.2,
    )
    return CeleryFleet(service, config, launcher=child_launcher, celery=celery, sweep_seconds=settings.sweep_seconds)


def run_celery_worker(
    settings: Settings,
    *,
    broker_url: str | None = None,
    slots: int | None = None,
    name: str | None = None,
    launcher: str | None = None,
    grace: float = 30.0,
    loglevel: str = "WARNING",
) -> CeleryFleet:
    """Run a Celery worker (a threads pool of ``slots``) until it is stopped (SIGTERM or Ctrl-C); return its fleet.

    Celery's warm shutdown lets running attempts finish; after ``grace``
    seconds they are killed and their jobs re-queued (and published again).
    """
    import warnings

    from celery import signals
    from celery.exceptions import CPendingDeprecationWarning

    # Celery warns on every broker connection loss that Celery 6 will cancel running late-ack tasks
    # by default. We keep them running on purpose (set explicitly in celery_config): the database,
    # not the broker, owns the job, and its lost ack only costs a harmless re-delivery.
    warnings.filterwarnings("ignore", message=r"\s*In Celery 5.1 we introduced", category=CPendingDeprecationWarning)
    configure(app, settings, broker_url=broker_url)
    fleet = fleet_from_settings(settings, celery=app, slots=slots, name=name, launcher=launcher)
    app.fleet = fleet
    stop = threading.Event()
    loop = threading.Thread(target=fleet.serve, args=(stop,), name="quantfleet-reaper", daemon=True)

    def on_shutting_down(**_: object) -> None:
        timer = threading.Timer(grace, fleet.abandon)
        timer.daemon = True
        timer.start()

    signals.worker_shutting_down.connect(on_shutting_down, weak=False)
    loop.start()
    try:
        worker = app.Worker(
            pool="threads",
            concurrency=fleet.config.slots,
            hostname=f"quantfleet@{fleet.config.name.replace('/', '-')}",
            loglevel=loglevel,
            without_mingle=True,
            without_gossip=True,
            quiet=True,
        )
        worker.start()
    finally:
        stop.set()
        loop.join(timeout=10)
        signals.worker_shutting_down.disconnect(on_shutting_down)
        fleet.shutdown(grace=0)
        app.fleet = None
    return fleet


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m quantfleet.dispatch.celery_worker [--broker URL] [--slots N]``: a worker without the CLI."""
    import argparse

    from quantfleet.core.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m quantfleet.dispatch.celery_worker")
    parser.add_argument("--broker", default=None)
    parser.add_argument("--slots", type=int, default=None)
    parser.add_argument("--name", default=None)
    parser.add_argument("--grace", type=float, default=30.0)
    parser.add_argument("--launcher", default=None, choices=LAUNCHERS, help="default: QUANTFLEET_WORKER_LAUNCHER")
    parser.add_argument("--loglevel", default="WARNING")
    args = parser.parse_args(argv)
    run_celery_worker(
        load_settings(), broker_url=args.broker, slots=args.slots, name=args.name,
        launcher=args.launcher, grace=args.grace, loglevel=args.loglevel,
    )  # fmt: skip
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a process
    raise SystemExit(main())
