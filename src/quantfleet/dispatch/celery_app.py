"""The Celery app: a broker (Redis or RabbitMQ) carries job ids to a fleet of workers.

The database stays the truth of every job (DESIGN.md); a message is only a
hint that a job id may be runnable:

- :class:`CeleryDispatcher` is the job service's ``notify`` hook: called after
  the commit that queued a job, it publishes ``run_job(job_id)``, the id and
  nothing else. If the broker is down, the publish fails, the job stays
  ``queued`` in the database, and a worker's sweeper publishes it again later
  (:mod:`quantfleet.dispatch.celery_worker`). The HTTP API publishes through
  :class:`BrokerGate` instead, which raises, so it can answer 503 and withdraw
  the job (:mod:`quantfleet.api.accept`).
- :func:`run_job` begins by claiming in the database: the next job in the
  job system's fair order (so owners share the fleet and quotas hold, whatever
  order the messages arrive in); one message per job means every job is
  claimed, and a duplicate or late delivery finds nothing and does nothing.
  The attempt then runs exactly as a local pool slot runs it (child process,
  heartbeats, fencing).
- Messages are acknowledged late (after the attempt), one prefetched per slot.
  A re-delivery (a worker lost, the visibility timeout passed) is harmless;
  retries and dead jobs are decided by leases and the reaper, never by Celery.

``app`` is importable for Celery's own tools, e.g. Flower::

    celery -A quantfleet.dispatch.celery_app flower --broker=redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery import Celery

from quantfleet.dispatch.notify import BrokerUnavailable
from quantfleet.jobs import JobId, parse_job_id

if TYPE_CHECKING:
    from quantfleet.core.settings import Settings
    from quantfleet.dispatch.celery_worker import CeleryFleet

__all__ = [
    "QUEUE",
    "TASK",
    "BrokerGate",
    "CeleryDispatcher",
    "QuantfleetCelery",
    "app",
    "celery_config",
    "configure",
    "queue_messages",
    "run_job",
]

QUEUE = "quantfleet"
TASK = "quantfleet.run_job"


class QuantfleetCelery(Celery):  # type: ignore[misc]
    """A Celery app that knows the fleet (the worker side) of the process it runs in, if any."""

    fleet: CeleryFleet | None = None


def celery_config(broker_url: str | None, *, visibility_timeout: float) -> dict[str, Any]:
    """Return the Celery settings quantfleet runs with (see the module docstring for why)."""
    return {
        "broker_url": broker_url,
        # Ids only, results in the database: no result backend, JSON only (no pickle from the wire).
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": QUEUE,
        # A message is acknowledged after the attempt; one waits per slot, no more.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Redis re-delivers an unacknowledged message after this long: keep it above the longest job.
        # (and scan for such messages every few seconds: at least 4 times per timeout, at most every 10 s).
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout,
            "unacked_restore_interval": max(1, min(10, int(visibility_timeout // 4))),
            "unacked_restore_throttle": 1 if visibility_timeout < 600 else 10,
        },
        # The worker waits out a broker restart; a running attempt is not cancelled when it drops
        # (the database, not the broker, owns the job; its late ack is simply lost).
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # A publisher (submit, reaper, sweeper) must not hang on a broker that is down: fail fast,
        # the job stays queued and the sweeper publishes it later.
        "broker_connection_timeout": 2.0,
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
    }


def configure(target: Celery, settings: Settings, *, broker_url: str | None = None) -> Celery:
    """Configure ``target`` from the settings (``broker_url`` overrides ``QUANTFLEET_BROKER_URL``); return it."""
    from quantfleet.core.errors import ConfigError

    url = broker_url or settings.broker_url
    if not url:
        raise ConfigError("no broker to dispatch to: set QUANTFLEET_BROKER_URL or pass --broker redis://host:6379/0")
    target.conf.update(celery_config(url, visibility_timeout=settings.visibility_timeout))
    return target


app = QuantfleetCelery("quantfleet", set_as_current=False)
app.conf.update(celery_config(None, visibility_timeout=86400.0))


@app.task(name=TASK, bind=True)  # type: ignore[untyped-decorator]
def run_job(self: Any, job_id: str) -> str:
    """Run the job ``job_id`` if it is still queued (claimed here first); return what happened."""
    fleet = self.app.fleet
    if fleet is None:
        raise RuntimeError(
            "this Celery worker has no quantfleet fleet; start workers with 'quantfleet worker --broker URL'"
        )
    return str(fleet.run_job(parse_job_id(job_id)))


class CeleryDispatcher:
    """The job service's ``notify`` hook: publish ``run_job(job_id)`` after the commit (ids only)."""

    def __init__(self, target: Celery | None = None) -> None:
        self.app = target or app

    def __call__(self, job_id: JobId) -> None:
        """Publish the job's id; raises if the broker is unreachable (the service logs it; the job stays queued)."""
        self.app.send_task(TASK, args=[str(job_id)], queue=QUEUE)


def queue_messages(target: Celery, *, timeout: float = 2.0) -> int:
    """Connect to the broker now and return how many messages wait in the fleet's queue (0: none, or no queue).

    Raises whatever the transport raises when the broker cannot be reached.
    """
    from kombu.exceptions import ChannelError

    with target.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        try:
            ok = conn.default_channel.queue_declare(queue=QUEUE, passive=True)
        except ChannelError:  # Redis: the list is gone when empty
            return 0
        except Exception as exc:  # RabbitMQ: a passive declare of a queue no worker declared yet is a 404
            if getattr(exc, "code", None) == 404:
                return 0
            raise
        return int(ok.message_count)


class BrokerGate:
    """The HTTP API's port to the broker (:class:`~quantfleet.dispatch.notify.Dispatch`).

    :meth:`require` answers from the last check for ``ttl`` seconds (one probe at
    a time, so a broker that is down costs one connection attempt per second,
    not one per request); :meth:`publish` raises :class:`BrokerUnavailable`
    instead of leaving the job to the sweeper, and marks the broker down.
    """

    def __init__(self, target: Celery, *, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = target
        self.ttl = ttl
        self.publisher = CeleryDispatcher(target)
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at = -math.inf
        self._down: str | None = None

    @property
    def queue(self) -> str:
        """The broker queue the fleet consumes."""
        return QUEUE

    def describe(self) -> str:
        """Return the broker's URL with any password hidden."""
        return str(self.app.connection_for_write().as_uri())

    def _unavailable(self, reason: str) -> BrokerUnavailable:
        return BrokerUnavailable(
            f"the job broker at {self.describe()} is unreachable ({reason}); the submission was not accepted. "
            "Retry in a few seconds with the same Idempotency-Key; if it persists, check that the broker runs "
            "and that QUANTFLEET_BROKER_URL is right"
        )

    def _record(self, down: str | None) -> None:
        self._down = down
        self._checked_at = self._clock()

    def check(self) -> int:
        """Ask the broker now; return how many messages wait in the fleet's queue; raise BrokerUnavailable."""
        try:
            count = queue_messages(self.app)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc)[:200]}"
            self._record(reason)
            raise self._unavailable(reason) from exc
        self._record(None)
        return count

    def require(self) -> None:
        """Raise BrokerUnavailable if the broker did not answer its last check (re-asked every ``ttl`` seconds)."""
        with self._lock:
            if self._clock() - self._checked_at >= self.ttl:
                self.check()
            elif self._down is not None:
                raise self._unavailable(self._down)

    def publish(self, job_id: JobId) -> None:
        """Publish ``run_job(job_id)``; raise BrokerUnavailable if the broker did not take it."""
        try:
            self.publisher(job_id)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc)[:200]}"
            with self._lock:
                self._record(reason)
            raise self._unavailable(reason) from exc
