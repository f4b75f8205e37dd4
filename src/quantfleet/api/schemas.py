"""Request and response schemas: ``*Create`` for what a client sends, ``*Public`` for what it gets back."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from quantfleet.core.types import Frequency
from quantfleet.jobs import Artifact, Attempt, EndReason, Job, JobState, Limits, LogChunk

__all__ = [
    "ArtifactPublic",
    "AttemptPublic",
    "BacktestCreate",
    "JobDetailPublic",
    "JobListPublic",
    "JobPublic",
    "LogChunkPublic",
    "SnapshotPublic",
    "SpecCreate",
    "SweepCreate",
    "SymbolPublic",
    "WalkForwardCreate",
]

_STRICT = ConfigDict(frozen=True, extra="forbid")


class SpecCreate(BaseModel):
    """What every job submission carries in its ``spec`` part (JSON). Limits are checked beyond these types."""

    model_config = _STRICT

    symbols: list[str] = Field(min_length=1, description="The universe, e.g. ['AAA', 'BBB'].")
    start: date | None = Field(default=None, description="First date to trade.")
    end: date | None = Field(default=None, description="Last date (inclusive).")
    frequency: Frequency = Frequency.DAILY
    params: dict[str, Any] = Field(default_factory=dict, description="Strategy parameters (plain JSON values).")
    snapshot: int | str | None = Field(
        default=None, description="Data snapshot id or tag; default: the newest, pinned at submission."
    )
    engine: dict[str, Any] = Field(
        default_factory=dict, description="Engine settings (cash, commission, slippage, ...), checked at submission."
    )
    benchmark: str | None = Field(default=None, description="Benchmark symbol.")
    calendar: str | None = Field(default=None, description="Exchange calendar; default: the server's.")
    limits: Limits = Field(default_factory=Limits)
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher runs first.")
    class_name: str | None = Field(default=None, max_length=200, description="Strategy class, when several.")
    entry: str | None = Field(
        default=None, max_length=300, description="The strategy file inside a zip archive (default: its only .py)."
    )


class BacktestCreate(SpecCreate):
    """A backtest: one strategy, one parameter set."""


class SweepCreate(SpecCreate):
    """A parameter sweep: a grid (optionally filtered, sampled or optimized), ranked by a metric."""

    grid: list[str] = Field(min_length=1, description="Parameters to sweep: 'NAME=START:STOP:STEP' or 'NAME=a,b,c'.")
    where: list[str] = Field(default_factory=list, description="Constraints, e.g. 'fast < slow'.")
    metric: str = Field(default="sharpe", max_length=64)
    minimize: bool = False
    random: int | None = Field(default=None, gt=0, le=100_000, description="Draw N seeded random combinations.")
    optimize: int | None = Field(default=None, gt=0, le=100_000, description="Run N Optuna trials (one job).")
    seed: int = 0


class WalkForwardCreate(SweepCreate):
    """A walk-forward: optimize on each training window, test on the window after it."""

    train: str = Field(pattern=r"^[1-9][0-9]{0,3}[ymwdYMWD]$", description="Training window: 2y, 6m, 4w, 90d.")
    test: str = Field(pattern=r"^[1-9][0-9]{0,3}[ymwdYMWD]$", description="Test window: 6m, 4w, 30d.")
    anchored: bool = Field(default=False, description="Grow the training window from the start instead of rolling.")


class JobPublic(BaseModel):
    """A job as lists show it."""

    id: str
    kind: str
    state: JobState
    owner: str
    strategy: str = Field(description="The strategy file's name.")
    parent: str | None = None
    priority: int
    attempt: int
    submitted_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested: bool = False
    error: str | None = None
    reason: EndReason | None = Field(
        default=None, description="Why it ended (completed, error, memory, wall, cpu, cancelled, ...); null until then."
    )
    metrics: dict[str, Any] | None = None

    @classmethod
    def of(cls, job: Job) -> JobPublic:
        """Return the public view of a job."""
        return cls(**_job_fields(job))


def _job_fields(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "owner": job.owner,
        "strategy": job.spec.code.name,
        "parent": job.parent,
        "priority": job.spec.priority,
        "attempt": job.attempt,
        "submitted_at": job.submitted_at,
        "updated_at": job.updated_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "cancel_requested": job.cancel_requested_at is not None,
        "error": job.error,
        "reason": job.reason,
        "metrics": job.metrics,
    }


class AttemptPublic(BaseModel):
    """One try at running a job."""

    number: int
    worker: str
    state: str
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptPublic:
        """Return the public view of an attempt."""
        return cls(number=attempt.number, worker=attempt.worker, state=attempt.state, started_at=attempt.started_at,
                   finished_at=attempt.finished_at, error=attempt.error)  # fmt: skip


class JobDetailPublic(JobPublic):
    """A job with its spec, attempts and (for sweeps and walk-forwards) children."""

    spec: dict[str, Any]
    attempts: list[AttemptPublic]
    children: list[JobPublic] | None = Field(default=None, description="A sweep's child jobs, in order.")

    @classmethod
    def detail(cls, job: Job, attempts: list[Attempt], children: list[Job] | None) -> JobDetailPublic:
        """Return the detailed public view of a job."""
        return cls(
            **_job_fields(job),
            spec=job.spec.model_dump(mode="json"),
            attempts=[AttemptPublic.of(a) for a in attempts],
            children=None if children is None else [JobPublic.of(c) for c in children],
        )


class JobListPublic(BaseModel):
    """One page of jobs, newest first; pass ``next_cursor`` as ``cursor`` for the next (null: no more)."""

    items: list[JobPublic]
    next_cursor: str | None


class LogChunkPublic(BaseModel):
    """A slice of an attempt's log; read again from ``next_offset`` to follow it (``complete``: it has ended)."""

    text: str
    next_offset: int
    attempt: int
    complete: bool

    @classmethod
    def of(cls, chunk: LogChunk) -> LogChunkPublic:
        """Return the public view of a log chunk."""
        return cls(text=chunk.text, next_offset=chunk.next_offset, attempt=chunk.attempt, complete=chunk.complete)


class ArtifactPublic(BaseModel):
    """A result file of a job."""

    name: str
    size: int
    sha256: str
    content_type: str
    created_at: datetime
    href: str = Field(description="Where to download it.")

    @classmethod
    def of(cls, artifact: Artifact, *, content_type: str, href: str) -> ArtifactPublic:
        """Return the public view of an artifact."""
        return cls(name=artifact.name, size=artifact.size, sha256=artifact.sha256, content_type=content_type,
                   created_at=artifact.created_at, href=href)  # fmt: skip


class SnapshotPublic(BaseModel):
    """A market-data snapshot."""

    id: int
    created: datetime
    operation: str
    source: str
    rows_added: int
    tags: list[str]


class SymbolPublic(BaseModel):
    """What a snapshot holds for one symbol at one frequency."""

    symbol: str
    frequency: Frequency
    first: datetime
    last: datetime
    rows: int


class Ready(BaseModel):
    """Readiness: every check's result."""

    status: Literal["ready"]
    checks: dict[str, str]


class Alive(BaseModel):
    """Liveness."""

    status: Literal["alive"]
