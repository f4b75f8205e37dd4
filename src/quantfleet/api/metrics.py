"""``GET /metrics``: the fleet in Prometheus text format, read from the database at scrape time.

Each app has its own :class:`~prometheus_client.CollectorRegistry` (never the
process-global one), so two apps in one process (tests) do not collide.

======================================================  =====================================================
metric                                                  what
======================================================  =====================================================
``quantfleet_queue_depth{queue}``                       queued jobs (``queue="default"``): THE scaling signal
``quantfleet_jobs{state}``                              jobs per state now (queued and running; every state
                                                        once the job service counts them in one query)
``quantfleet_job_time_to_start_seconds``                histogram: submitted -> started, per job start seen
``quantfleet_job_run_seconds``                          histogram: started -> finished, per job end seen
``quantfleet_job_outcomes_total{outcome,reason}``       jobs ended since the server started, by final state
                                                        and reason (``quantfleet.jobs.EndReason``: completed,
                                                        error, memory, wall, cpu, infrastructure, ...)
``quantfleet_worker_heartbeat_age_seconds{worker}``     seconds since a worker last renewed a lease
``quantfleet_broker_up``                                1 if the broker answered this scrape, 0 if not (with
                                                        a broker configured)
``quantfleet_broker_messages{queue}``                   messages waiting in the broker's queue (job ids;
                                                        a duplicate costs a no-op claim)
``quantfleet_metrics_scrape_seconds``                   how long reading the database took
======================================================  =====================================================

Starts and ends are seen by comparing what the database holds at each scrape
with the previous one, so every job is observed once per server process
(histograms and counters are cumulative, as Prometheus expects).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Protocol

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.types import ASGIApp, Receive, Scope, Send

from quantfleet.core.logging import LogFormat, job_context
from quantfleet.dispatch.notify import Dispatch
from quantfleet.jobs import DEFAULT_REASON, TERMINAL, Job, JobService, JobState

__all__ = ["FleetMetrics", "JobLogContext", "JobStats", "ObservabilitySettings", "ServiceStats", "metrics_router"]

log = logging.getLogger(__name__)

QUEUE = "default"
_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


class ObservabilitySettings(BaseSettings):
    """Metrics and logs of the API server: ``QUANTFLEET_METRICS_ENABLED``, ``QUANTFLEET_LOG_FORMAT``, ``..._LEVEL``."""

    model_config = SettingsConfigDict(env_prefix="QUANTFLEET_", extra="ignore", frozen=True)

    metrics_enabled: bool = True
    log_format: LogFormat | None = None
    log_level: str = "INFO"


class JobStats(Protocol):
    """What the metrics read from the job database at each scrape."""

    def counts_by_state(self) -> Mapping[str, int]: ...

    def running(self) -> list[Job]: ...

    def finished_since(self, since: datetime) -> list[Job]: ...


class ServiceStats:
    """:class:`JobStats` through the job service: one GROUP BY, running jobs, an indexed range on finished_at."""

    def __init__(self, service: JobService) -> None:
        self.service = service

    def counts_by_state(self) -> Mapping[str, int]:
        return {state.value: count for state, count in self.service.counts_by_state().items()}

    def running(self) -> list[Job]:
        found: list[Job] = []
        cursor: str | None = None
        while True:  # bounded by the fleet's slots
            page = self.service.list(state=[JobState.RUNNING], limit=500, cursor=cursor)
            found.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                return found

    def finished_since(self, since: datetime) -> list[Job]:
        return self.service.finished_since(since)


class FleetMetrics:
    """The fleet's metrics in one registry; :meth:`refresh` reads the database (call it per scrape)."""

    def __init__(self, service: JobService, *, stats: JobStats | None = None, broker: Dispatch | None = None) -> None:
        self.service = service
        self.broker = broker
        self.stats: JobStats = stats if stats is not None else ServiceStats(service)
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.queue_depth = Gauge("quantfleet_queue_depth", "Queued jobs: the scaling signal for workers.",
                                 ["queue"], registry=r)  # fmt: skip
        self.jobs = Gauge("quantfleet_jobs", "Jobs per state now.", ["state"], registry=r)
        self.time_to_start = Histogram("quantfleet_job_time_to_start_seconds", "Seconds from submission to start.",
                                       buckets=_SECONDS_BUCKETS, registry=r)  # fmt: skip
        self.run_time = Histogram("quantfleet_job_run_seconds", "Seconds from start to end of a job.",
                                  buckets=_SECONDS_BUCKETS, registry=r)  # fmt: skip
        self.outcomes = Counter("quantfleet_job_outcomes", "Jobs ended, by final state and reason.",
                                ["outcome", "reason"], registry=r)  # fmt: skip
        beat = "Seconds since the worker last renewed a job's lease."
        self.heartbeat_age = Gauge("quantfleet_worker_heartbeat_age_seconds", beat, ["worker"], registry=r)
        if broker is not None:
            self.broker_up = Gauge("quantfleet_broker_up", "1 if the broker answered the last scrape.", registry=r)
            self.broker_messages = Gauge("quantfleet_broker_messages", "Messages waiting in the broker's queue.",
                                         ["queue"], registry=r)  # fmt: skip
        self.scrape_seconds = Gauge("quantfleet_metrics_scrape_seconds", "Seconds the last scrape read the database.",
                                    registry=r)  # fmt: skip
        for state in TERMINAL:  # every state's usual reason at 0, so a rate() has a series from the start
            self.outcomes.labels(outcome=state.value, reason=DEFAULT_REASON[state].value)
        self._lock = threading.Lock()
        self._since = service.clock.now()
        self._started: set[str] = set()  # running jobs whose start was observed
        self._ended: dict[str, datetime] = {}  # ended jobs observed, kept while a scan could see them again

    def refresh(self) -> None:
        """Read queue depth, states, starts, ends and heartbeats from the database into the registry."""
        with self._lock:
            began = time.perf_counter()
            now = self.service.clock.now()
            self.queue_depth.labels(queue=QUEUE).set(self.service.queue_depth())
            for state, count in self.stats.counts_by_state().items():
                self.jobs.labels(state=state).set(count)
            running = self.stats.running()
            for job in running:
                self._observe_start(job)
            self._beats(running, now)
            for job in self.stats.finished_since(self._since - timedelta(seconds=5)):
                self._observe_end(job)
            self._started &= {job.id for job in running}
            horizon = now - timedelta(seconds=6)  # the next scan starts 5 s before now: keep what it can see
            self._ended = {k: at for k, at in self._ended.items() if at > horizon}
            self._since = now
            self._broker()
            self.scrape_seconds.set(time.perf_counter() - began)

    def _broker(self) -> None:
        if self.broker is None:
            return
        try:
            waiting = self.broker.check()
        except Exception as exc:
            log.warning("metrics: the broker did not answer: %s", exc)
            self.broker_up.set(0)
            self.broker_messages.clear()  # unknown while the broker is down: no sample rather than a stale one
            return
        self.broker_up.set(1)
        self.broker_messages.labels(queue=self.broker.queue).set(waiting)

    def _observe_start(self, job: Job) -> None:
        if job.id in self._started or job.started_at is None:
            return
        self._started.add(job.id)
        self.time_to_start.observe(max(0.0, (job.started_at - job.submitted_at).total_seconds()))

    def _observe_end(self, job: Job) -> None:
        if job.id in self._ended or job.finished_at is None:
            return
        self._ended[job.id] = job.finished_at
        if job.started_at is not None:
            if job.id not in self._started:  # started and ended between two scrapes
                self.time_to_start.observe(max(0.0, (job.started_at - job.submitted_at).total_seconds()))
            self.run_time.observe(max(0.0, (job.finished_at - job.started_at).total_seconds()))
        self._started.discard(job.id)
        reason = job.reason.value if job.reason is not None else "unknown"
        self.outcomes.labels(outcome=job.state.value, reason=reason).inc()

    def _beats(self, running: list[Job], now: datetime) -> None:
        ages: dict[str, float] = {}
        for job in running:
            if job.worker is None or job.lease_expires_at is None:
                continue
            age = max(0.0, (now - (job.lease_expires_at - self.service.lease)).total_seconds())
            ages[job.worker] = min(age, ages.get(job.worker, age))
        self.heartbeat_age.clear()  # a worker with nothing running has no lease to renew
        for worker, age in ages.items():
            self.heartbeat_age.labels(worker=worker).set(age)

    def render(self) -> bytes:
        """Refresh, then return the registry in Prometheus text format."""
        self.refresh()
        return generate_latest(self.registry)


def metrics_router(metrics: FleetMetrics) -> APIRouter:
    """Return the router of ``GET /metrics`` (unauthenticated; disable with QUANTFLEET_METRICS_ENABLED=false)."""
    router = APIRouter(tags=["health"])

    @router.get("/metrics", include_in_schema=False)
    def scrape(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router


_JOB_PATH = re.compile(r"^/v1/(?:backtests|sweeps|walkforwards)/([0-9a-fA-F-]{6,36})(?:/|$)")


class JobLogContext:
    """ASGI middleware: while a request about one job (``/v1/<kind>/<id>...``) is handled, logs carry its id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = _JOB_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        with job_context(found.group(1).lower()):
            await self.app(scope, receive, send)
