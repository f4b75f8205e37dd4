"""What a submitter (the CLI, the HTTP API) tells the fleet after it queued a job.

With ``QUANTFLEET_BROKER_URL`` set, the job's id is published to the Celery
fleet at once; without it there is nothing to tell: local workers see the job
on their next claim (a 50 ms idle poll). The Celery modules load only when a
broker is configured, so a local installation needs no ``celery`` extra.
"""

from __future__ import annotations

from collections.abc import Callable

from quantfleet.core.settings import Settings
from quantfleet.jobs import JobId

__all__ = ["submit_notifier"]


def submit_notifier(settings: Settings) -> Callable[[JobId], None] | None:
    """Return the job service's ``notify`` hook for submitters: the Celery dispatcher, or None (local pool)."""
    if not settings.broker_url:
        return None
    from quantfleet.dispatch.celery_app import CeleryDispatcher, app, configure

    return CeleryDispatcher(configure(app, settings))
