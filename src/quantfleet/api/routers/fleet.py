"""The fleet at a glance, for the dashboard: jobs of every kind in one list, a job's source, queue and workers.

Read-only: nothing here changes a job. The per-kind routers (``/v1/backtests``
...) stay the place to submit, cancel and rerun; these views only save a
client from merging three lists, scraping ``/metrics`` or downloading code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from quantfleet.api.deps import CurrentUser, Jobs, Principal
from quantfleet.api.errors import Forbidden
from quantfleet.api.schemas import JobPublic
from quantfleet.jobs import Job, JobNotFound, JobService, JobState, parse_job_id

__all__ = ["FleetPublic", "JobRowPublic", "JobRowsPublic", "SourcePublic", "WorkerPublic", "router"]

router = APIRouter(prefix="/v1", tags=["fleet"])
_SCAN_ROUNDS = 20  # pages read per request before answering with what was found and a cursor


class WorkerPublic(BaseModel):
    """A worker seen holding the lease of a running job."""

    name: str
    running: int = Field(description="Jobs it runs now.")
    lease_expires_at: datetime | None = Field(default=None, description="The latest lease it holds.")


class FleetPublic(BaseModel):
    """Queue depth, jobs per state (every state, zeros included) and the workers running jobs now."""

    queue_depth: int
    states: dict[str, int]
    workers: list[WorkerPublic]


class JobRowPublic(JobPublic):
    """A job as the all-kinds list shows it: with its parameters."""

    params: dict[str, Any] = Field(default_factory=dict)


class JobRowsPublic(BaseModel):
    """One page of jobs of every kind, newest first; pass ``next_cursor`` as ``cursor`` for the next (null: no more)."""

    items: list[JobRowPublic]
    next_cursor: str | None


class SourcePublic(BaseModel):
    """The strategy file a job runs: its name, content address and text."""

    job_id: str
    name: str
    sha256: str
    class_name: str | None = None
    text: str


def _visible(job: Job, user: Principal) -> bool:
    return job.owner == user.name or user.admin


def _matches(job: Job, needle: str) -> bool:
    hay = (job.id, job.spec.code.name, job.owner, job.kind, job.state.value)
    return any(needle in value.lower() for value in hay)


@router.get("/fleet", response_model=FleetPublic, summary="Queue depth, jobs per state, workers running jobs")
def fleet(service: Jobs, user: CurrentUser) -> FleetPublic:
    counts = service.counts_by_state()
    workers: dict[str, WorkerPublic] = {}
    cursor: str | None = None
    while True:  # bounded by the fleet's slots
        page = service.list(state=[JobState.RUNNING], limit=500, cursor=cursor)
        for job in page.items:
            if job.worker is None:
                continue
            seen = workers.get(job.worker) or WorkerPublic(name=job.worker, running=0)
            latest = max(filter(None, [seen.lease_expires_at, job.lease_expires_at]), default=None)
            workers[job.worker] = WorkerPublic(name=job.worker, running=seen.running + 1, lease_expires_at=latest)
        cursor = page.next_cursor
        if cursor is None:
            break
    return FleetPublic(
        queue_depth=counts.get(JobState.QUEUED, 0),
        states={state.value: count for state, count in counts.items()},
        workers=sorted(workers.values(), key=lambda w: w.name),
    )


@router.get("/jobs", response_model=JobRowsPublic, summary="List jobs of every kind, newest first")
def list_all(
    service: Jobs,
    user: CurrentUser,
    state: Annotated[list[JobState] | None, Query(description="Only jobs in these states.")] = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Only jobs whose id, strategy, owner, kind or state contain this."),
    ] = None,
    owner: Annotated[str | None, Query(max_length=200, description="Only this owner's (admins only).")] = None,
    include_children: Annotated[bool, Query(description="Include sweeps' child jobs.")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=40, description="A previous page's next_cursor.")] = None,
) -> JobRowsPublic:
    if owner is not None and owner != user.name and not user.admin:
        raise Forbidden("only admins may list other users' jobs; leave out 'owner'")
    who = owner if user.admin else user.name
    needle = (q or "").strip().lower()
    items: list[Job] = []
    next_cursor = cursor
    for _ in range(_SCAN_ROUNDS):
        page = service.list(state=state or None, owner=who, limit=limit - len(items), cursor=next_cursor)
        next_cursor = page.next_cursor
        items.extend(
            job
            for job in page.items
            if (include_children or job.parent is None) and (not needle or _matches(job, needle))
        )
        if next_cursor is None or len(items) >= limit:
            break
    rows = [JobRowPublic(**JobPublic.of(j).model_dump(), params=dict(j.spec.params)) for j in items]
    return JobRowsPublic(items=rows, next_cursor=next_cursor)


def _owned(service: JobService, job_id: str, user: Principal) -> Job:
    job = service.get(parse_job_id(job_id))
    if not _visible(job, user):
        raise JobNotFound(f"no job {job_id}; list yours with GET /v1/jobs")
    return job


@router.get("/jobs/{job_id}/source", response_model=SourcePublic, summary="Show the strategy file a job runs")
def source(job_id: str, service: Jobs, user: CurrentUser) -> SourcePublic:
    job = _owned(service, job_id, user)
    data = service.code(job.id)
    code = job.spec.code
    return SourcePublic(
        job_id=job.id,
        name=code.name,
        sha256=code.sha256,
        class_name=code.class_name,
        text=data.decode("utf-8", errors="replace"),
    )
