"""Errors of the job service. Each names the problem and the fix."""

from __future__ import annotations

from quantfleet.core.errors import InfrastructureError, UserError
from quantfleet.jobs.states import IllegalTransition
from quantfleet.store.errors import DatabaseUnavailable, ObjectNotFound

__all__ = [
    "CodeNotFound",
    "DatabaseUnavailable",
    "IdempotencyConflict",
    "IllegalTransition",
    "JobNotFound",
    "LimitAboveMaximum",
    "ObjectNotFound",
    "ParentNotActive",
    "QuotaExceeded",
    "StaleAttempt",
]


class JobNotFound(UserError):
    """No job has this id."""


class CodeNotFound(UserError):
    """A spec names strategy code (by sha256) that was never uploaded."""


class IdempotencyConflict(UserError):
    """An idempotency key was reused with a different spec."""

    def __init__(self, message: str, *, key: str, job_id: str) -> None:
        super().__init__(message)
        self.key = key
        self.job_id = job_id


class StaleAttempt(InfrastructureError):
    """A worker wrote for an attempt that is no longer current (its lease expired and the job moved on).

    The worker should stop working on the job: its results are discarded.
    """


class ParentNotActive(UserError):
    """Children were offered to a sweep job whose cancel was requested; finish its attempt as cancelled."""


class QuotaExceeded(UserError):
    """A user's quota (``max_queued``) refuses the submission; the message names the limit and the fix."""

    def __init__(self, message: str, *, owner: str, limit: int, quota: str) -> None:
        super().__init__(message)
        self.owner = owner
        self.limit = limit
        self.quota = quota


class LimitAboveMaximum(UserError):
    """A job asked for more of a resource than the installation allows; the message names the maximum."""

    def __init__(self, message: str, *, limit: str, value: float, maximum: float) -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value
        self.maximum = maximum
