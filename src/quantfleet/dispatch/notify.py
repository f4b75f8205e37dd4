"""What a submitter (the CLI, the HTTP API) tells the fleet after it queued a job.

With ``QUANTFLEET_BROKER_URL`` set, the job's id is published to the Celery
fleet at once; without it there is nothing to tell: local workers see the job
on their next claim (a 50 ms idle poll). The Celery modules load only when a
broker is configured, so a local installation needs no ``celery`` extra.

Two kinds of submitter:

- :func:`submit_notifier` is the job service's ``notify`` hook (the CLI): a
  failed publish is logged and the job stays queued for a worker's sweeper.
- :func:`submit_gate` is for the HTTP API, which must answer 503 while the
  broker is down: a :class:`Dispatch` says whether the broker is up (checked at
  most once a second) and publishes with a :class:`BrokerUnavailable` on failure,
  so the API can refuse (and withdraw) a submission the fleet was not told of.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from quantfleet.core.errors import InfrastructureError
from quantfleet.core.settings import Settings
from quantfleet.jobs import JobId

__all__ = ["BrokerUnavailable", "Dispatch", "submit_gate", "submit_notifier"]


class BrokerUnavailable(InfrastructureError):
    """The message broker (Redis, RabbitMQ) cannot be reached: nothing was published; retry later."""


class Dispatch(Protocol):
    """A submitter's port to the fleet's broker: is it up, publish a job id, how many messages wait."""

    @property
    def queue(self) -> str:
        """The name of the broker queue the fleet consumes."""

    def require(self) -> None:
        """Raise :class:`BrokerUnavailable` if the broker is down (a recent answer may be reused)."""

    def check(self) -> int:
        """Ask the broker now; return how many messages wait in the fleet's queue; raise if it is down."""

    def publish(self, job_id: JobId) -> None:
        """Publish the job's id (after the commit that queued it); raise :class:`BrokerUnavailable` on failure."""


def submit_notifier(settings: Settings) -> Callable[[JobId], None] | None:
    """Return the job service's ``notify`` hook for submitters: the Celery dispatcher, or None (local pool)."""
    if not settings.broker_url:
        return None
    from quantfleet.dispatch.celery_app import CeleryDispatcher, app, configure

    return CeleryDispatcher(configure(app, settings))


def submit_gate(settings: Settings, *, ttl: float = 1.0) -> Dispatch | None:
    """Return the broker gate of the settings' Celery fleet (None without a broker: the local pool)."""
    if not settings.broker_url:
        return None
    from quantfleet.dispatch.celery_app import BrokerGate, app, configure

    return BrokerGate(configure(app, settings), ttl=ttl)
