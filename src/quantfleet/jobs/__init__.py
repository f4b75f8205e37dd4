"""Jobs: specs, the state machine, and the service that owns every job's life (the database is the truth)."""

from quantfleet.jobs.clock import Clock, SystemClock
from quantfleet.jobs.errors import (
    CodeNotFound,
    DatabaseUnavailable,
    IdempotencyConflict,
    IllegalTransition,
    JobNotFound,
    QuotaExceeded,
    StaleAttempt,
)
from quantfleet.jobs.logs import LOG_CAP_BYTES, LogWriter
from quantfleet.jobs.models import (
    Artifact,
    ArtifactIn,
    Attempt,
    Claim,
    Heartbeat,
    Job,
    JobEvent,
    LogChunk,
    Outcome,
    Page,
)
from quantfleet.jobs.service import JobService, Notify
from quantfleet.jobs.spec import CodeRef, JobId, JobKind, JobSpec, Limits, new_job_id, parse_job_id
from quantfleet.jobs.states import DEFAULT_REASON, TERMINAL, EndReason, JobState, check_transition, is_terminal

__all__ = [
    "DEFAULT_REASON",
    "LOG_CAP_BYTES",
    "TERMINAL",
    "Artifact",
    "ArtifactIn",
    "Attempt",
    "Claim",
    "Clock",
    "CodeNotFound",
    "CodeRef",
    "DatabaseUnavailable",
    "EndReason",
    "Heartbeat",
    "IdempotencyConflict",
    "IllegalTransition",
    "Job",
    "JobEvent",
    "JobId",
    "JobKind",
    "JobNotFound",
    "JobService",
    "JobSpec",
    "JobState",
    "Limits",
    "LogChunk",
    "LogWriter",
    "Notify",
    "Outcome",
    "Page",
    "QuotaExceeded",
    "StaleAttempt",
    "SystemClock",
    "check_transition",
    "is_terminal",
    "new_job_id",
    "parse_job_id",
]
