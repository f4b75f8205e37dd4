"""The job state machine: every legal transition, in one place.

::

                          cancel (at once)
         +---------------------------------------------------+
         |                                                   v
      +--------+   claim    +---------+   finish    +-------------+
      | queued | ---------> | running | ----------> | succeeded   |
      +--------+            +---------+             | failed      |
          ^                  |   |   |              | timed_out   |
          |  lease expired / |   |   |              | cancelled   |
          |  released, with  |   |   |              +-------------+
          |  attempts left   |   |   |  lease expired / released after
          +------------------+   |   +------------------------------> dead
                                 |      the last attempt (max_attempts)
                                 |
                                 +--> cancelled  (cancel was requested and the
                                                  worker is lost or released)

      queued --> failed   (at claim: the stored spec cannot be read by this
                           version, e.g. written by a newer quantfleet; the
                           job would otherwise kill every worker that takes it)

``succeeded``, ``failed`` (a user error: an exception in strategy code, a
memory limit), ``timed_out`` (the wall-clock or CPU limit), ``cancelled`` and
``dead`` (the infrastructure failed ``max_attempts`` times) are terminal:
nothing leaves them. :func:`check_transition` refuses anything not drawn here
with :class:`IllegalTransition`, naming both states.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from quantfleet.core.errors import UserError

__all__ = [
    "DEFAULT_REASON",
    "FINISH_STATES",
    "TERMINAL",
    "TRANSITIONS",
    "EndReason",
    "IllegalTransition",
    "JobState",
    "check_transition",
    "is_terminal",
]


class JobState(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    DEAD = "dead"


class EndReason(StrEnum):
    """Why a job ended: finer than its final state, and a bounded set (a metrics label, a filter).

    ``completed`` (succeeded); ``error`` (the strategy raised, or its results
    were refused); the limits ``memory``, ``file_size``, ``work_full``,
    ``open_files``, ``processes`` and ``output`` (stdout and stderr over
    ``limits.log_mb``); ``crash`` (the
    job's own process died of a signal); ``wall`` and ``cpu`` (timed out);
    ``cancelled`` (by a user, or with its parent sweep); ``withdrawn`` (the API
    could not tell the fleet, and answered 503); ``unreadable`` (a spec this
    version cannot read, failed at claim); ``infrastructure`` (dead: the
    infrastructure failed ``max_attempts`` times).
    """

    COMPLETED = "completed"
    ERROR = "error"
    MEMORY = "memory"
    FILE_SIZE = "file_size"
    WORK_FULL = "work_full"
    OPEN_FILES = "open_files"
    PROCESSES = "processes"
    OUTPUT = "output"
    CRASH = "crash"
    WALL = "wall"
    CPU = "cpu"
    CANCELLED = "cancelled"
    WITHDRAWN = "withdrawn"
    UNREADABLE = "unreadable"
    INFRASTRUCTURE = "infrastructure"


DEFAULT_REASON: Mapping[JobState, EndReason] = MappingProxyType(
    {
        JobState.SUCCEEDED: EndReason.COMPLETED,
        JobState.FAILED: EndReason.ERROR,
        JobState.TIMED_OUT: EndReason.WALL,
        JobState.CANCELLED: EndReason.CANCELLED,
        JobState.DEAD: EndReason.INFRASTRUCTURE,
    }
)
"""The reason a job that ends in a state has when nothing finer is known."""


class IllegalTransition(UserError):
    """A job was asked to move between two states the state machine does not connect."""

    def __init__(self, source: JobState, target: JobState, *, job_id: str | None = None) -> None:
        self.source = JobState(source)
        self.target = JobState(target)
        self.job_id = job_id
        who = f"job {job_id}" if job_id else "a job"
        allowed = ", ".join(sorted(TRANSITIONS[self.source])) or "nothing (it is terminal)"
        super().__init__(
            f"{who} cannot go from {self.source.value!r} to {self.target.value!r}; "
            f"from {self.source.value!r} it can go to: {allowed}"
        )


TRANSITIONS: Mapping[JobState, frozenset[JobState]] = MappingProxyType(
    {
        JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
        JobState.RUNNING: frozenset(
            {
                JobState.SUCCEEDED,
                JobState.FAILED,
                JobState.TIMED_OUT,
                JobState.CANCELLED,
                JobState.QUEUED,
                JobState.DEAD,
            }
        ),
        JobState.SUCCEEDED: frozenset(),
        JobState.FAILED: frozenset(),
        JobState.TIMED_OUT: frozenset(),
        JobState.CANCELLED: frozenset(),
        JobState.DEAD: frozenset(),
    }
)

TERMINAL: frozenset[JobState] = frozenset(state for state, targets in TRANSITIONS.items() if not targets)

# The outcomes a worker may report for its attempt in ``JobService.finish``.
FINISH_STATES: frozenset[JobState] = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELLED}
)


def is_terminal(state: JobState | str) -> bool:
    """Return whether nothing can follow ``state``."""
    return JobState(state) in TERMINAL


def check_transition(source: JobState | str, target: JobState | str, *, job_id: str | None = None) -> None:
    """Raise :class:`IllegalTransition` unless the state machine allows ``source -> target``."""
    src, dst = JobState(source), JobState(target)
    if dst not in TRANSITIONS[src]:
        raise IllegalTransition(src, dst, job_id=job_id)
