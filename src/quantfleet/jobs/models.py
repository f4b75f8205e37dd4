"""Value objects the job service returns and takes: jobs, attempts, events, claims, outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from quantfleet.jobs.spec import JobId, JobSpec
from quantfleet.jobs.states import DEFAULT_REASON, FINISH_STATES, EndReason, JobState, is_terminal

__all__ = [
    "Artifact",
    "ArtifactIn",
    "Attempt",
    "AttemptState",
    "Claim",
    "Heartbeat",
    "Job",
    "JobEvent",
    "LogChunk",
    "Outcome",
    "Page",
]

T = TypeVar("T")

AttemptState = str
"""An attempt ends as one of the finish states, or ``lost`` (lease expired), ``released``
(the worker gave it back after an infrastructure failure) or ``interrupted`` (the worker
gave it back on purpose, e.g. a graceful shutdown); ``running`` until then. Only ``lost``
and ``released`` attempts count against ``max_attempts``."""


@dataclass(frozen=True, kw_only=True)
class Job:
    """A job as the database holds it now."""

    id: JobId
    spec: JobSpec
    state: JobState
    attempt: int
    """Number of the current (or last) attempt; 0 before the first claim."""
    submitted_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker: str | None = None
    lease_expires_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    cancelled_by: str | None = None
    error: str | None = None
    reason: EndReason | None = None
    """Why it ended (None while it runs, and for jobs that ended before this was recorded)."""
    metrics: dict[str, Any] | None = None
    idempotency_key: str | None = None

    @property
    def kind(self) -> str:
        """Return the job's kind (backtest, sweep, walk-forward)."""
        return self.spec.kind.value

    @property
    def owner(self) -> str:
        """Return who submitted the job."""
        return self.spec.owner

    @property
    def parent(self) -> JobId | None:
        """Return the sweep job this one is a child of."""
        return self.spec.parent

    @property
    def terminal(self) -> bool:
        """Return whether the job has ended (nothing will change its state again)."""
        return is_terminal(self.state)


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One try at running a job, kept after it ends."""

    job_id: JobId
    number: int
    worker: str
    state: AttemptState
    started_at: datetime
    heartbeat_at: datetime
    lease_expires_at: datetime
    finished_at: datetime | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class JobEvent:
    """One line of a job's audit log: a state change (or a cancel request, which keeps the state)."""

    job_id: JobId
    at: datetime
    event: str
    """submitted, claimed, finished, cancel_requested, cancelled, lease_expired, released, unreadable
    (the spec could not be read at claim)."""
    from_state: JobState | None
    to_state: JobState
    attempt: int | None
    actor: str
    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class ArtifactIn:
    """A result object a worker uploaded, to be recorded by ``finish``."""

    name: str
    url: str
    size: int
    sha256: str


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """A result object recorded for a job (by the attempt that finished it)."""

    job_id: JobId
    attempt: int
    name: str
    url: str
    size: int
    sha256: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A worker's hold on one attempt of a job. Every write the worker makes is fenced by ``attempt``."""

    job_id: JobId
    attempt: int
    spec: JobSpec
    worker: str
    lease_expires: datetime


@dataclass(frozen=True, kw_only=True)
class Heartbeat:
    """The answer to a heartbeat.

    ``ok`` is False when the attempt is stale (superseded, reaped or finished):
    the worker must stop and discard its work. ``cancel_requested``: someone
    cancelled the job; the worker should stop its child and ``finish`` the
    attempt as ``cancelled``.
    """

    ok: bool
    cancel_requested: bool
    lease_expires: datetime | None


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """How an attempt ended, as its worker reports it to ``finish``.

    ``state`` is one of succeeded, failed (a user error), timed_out or
    cancelled. An infrastructure failure is not an outcome: call ``release``.
    """

    state: JobState
    error: str | None = None
    metrics: dict[str, Any] | None = None
    artifacts: Sequence[ArtifactIn] = field(default_factory=tuple)
    reason: EndReason | None = None
    """Why (default: the state's usual reason, e.g. ``error`` for failed, ``wall`` for timed_out)."""

    def __post_init__(self) -> None:
        state = JobState(self.state)
        if state not in FINISH_STATES:
            allowed = ", ".join(sorted(FINISH_STATES))
            raise ValueError(f"an attempt cannot finish as {state.value!r}; choose one of: {allowed}")
        object.__setattr__(self, "state", state)
        object.__setattr__(self, "reason", DEFAULT_REASON[state] if self.reason is None else EndReason(self.reason))
        names = [a.name for a in self.artifacts]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"artifact names given twice: {', '.join(twice)}; each name once")
        object.__setattr__(self, "artifacts", tuple(self.artifacts))


@dataclass(frozen=True, kw_only=True)
class LogChunk:
    """A slice of an attempt's log: read again from ``next_offset`` to follow it.

    ``complete`` is True once the attempt has ended, so nothing more will be
    appended after ``next_offset``.
    """

    text: str
    next_offset: int
    attempt: int
    complete: bool


@dataclass(frozen=True, kw_only=True)
class Page(Generic[T]):
    """One page of a list, newest first; pass ``next_cursor`` to get the next (None: no more)."""

    items: list[T]
    next_cursor: str | None
