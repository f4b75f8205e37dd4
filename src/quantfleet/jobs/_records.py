"""Rows to value objects, and the small SQL pieces the service composes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from quantfleet.jobs.models import Artifact, Attempt, Job, JobEvent
from quantfleet.jobs.spec import JobId, JobSpec
from quantfleet.jobs.states import JobState
from quantfleet.store.models import attempts, job_events, jobs

__all__ = [
    "add_event",
    "artifact_from_row",
    "attempt_from_row",
    "end_attempt",
    "event_from_row",
    "job_from_row",
    "job_row",
    "lock_job",
]


def job_from_row(row: Mapping[Any, Any]) -> Job:
    """Return the :class:`Job` a ``jobs`` row describes."""
    return Job(
        id=JobId(row["id"]),
        spec=JobSpec.model_validate(row["spec"]),
        state=JobState(row["state"]),
        attempt=row["attempt"],
        submitted_at=row["submitted_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        worker=row["worker"],
        lease_expires_at=row["lease_expires_at"],
        cancel_requested_at=row["cancel_requested_at"],
        cancelled_by=row["cancelled_by"],
        error=row["error"],
        metrics=row["metrics"],
        idempotency_key=row["idempotency_key"],
    )


def attempt_from_row(row: Mapping[Any, Any]) -> Attempt:
    """Return the :class:`Attempt` an ``attempts`` row describes."""
    return Attempt(
        job_id=JobId(row["job_id"]),
        number=row["number"],
        worker=row["worker"],
        state=row["state"],
        started_at=row["started_at"],
        heartbeat_at=row["heartbeat_at"],
        lease_expires_at=row["lease_expires_at"],
        finished_at=row["finished_at"],
        error=row["error"],
    )


def event_from_row(row: Mapping[Any, Any]) -> JobEvent:
    """Return the :class:`JobEvent` a ``job_events`` row describes."""
    return JobEvent(
        job_id=JobId(row["job_id"]),
        at=row["at"],
        event=row["event"],
        from_state=JobState(row["from_state"]) if row["from_state"] else None,
        to_state=JobState(row["to_state"]),
        attempt=row["attempt"],
        actor=row["actor"],
        detail=row["detail"],
    )


def artifact_from_row(row: Mapping[Any, Any]) -> Artifact:
    """Return the :class:`Artifact` an ``artifacts`` row describes."""
    return Artifact(
        job_id=JobId(row["job_id"]),
        attempt=row["attempt"],
        name=row["name"],
        url=row["url"],
        size=row["size"],
        sha256=row["sha256"],
        created_at=row["created_at"],
    )


def job_row(job_id: JobId, spec: JobSpec, *, now: datetime, idempotency_key: str | None) -> dict[str, Any]:
    """Return the ``jobs`` row of a newly queued job."""
    return {
        "id": job_id,
        "kind": spec.kind.value,
        "state": JobState.QUEUED.value,
        "owner": spec.owner,
        "priority": spec.priority,
        "parent_id": spec.parent,
        "spec": spec.model_dump(mode="json"),
        "spec_hash": spec.fingerprint(),
        "idempotency_key": idempotency_key,
        "attempt": 0,
        "worker": None,
        "lease_expires_at": None,
        "submitted_at": now,
        "updated_at": now,
        "started_at": None,
        "finished_at": None,
        "cancel_requested_at": None,
        "cancelled_by": None,
        "error": None,
        "metrics": None,
    }


def add_event(
    conn: Connection,
    job_id: str,
    *,
    at: datetime,
    event: str,
    source: JobState | None,
    target: JobState,
    attempt: int | None,
    actor: str,
    detail: str | None = None,
) -> None:
    """Append one line to a job's audit log (inside the caller's transaction)."""
    conn.execute(
        sa.insert(job_events).values(
            job_id=job_id,
            at=at,
            event=event,
            from_state=source.value if source else None,
            to_state=target.value,
            attempt=attempt,
            actor=actor,
            detail=detail,
        )
    )


def lock_job(conn: Connection, job_id: str) -> Mapping[Any, Any] | None:
    """Return a job's row, locked for update on PostgreSQL (SQLite's write transaction already is)."""
    row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id).with_for_update()).mappings().first()
    return row


def end_attempt(conn: Connection, job_id: str, number: int, *, state: str, at: datetime, error: str | None) -> None:
    """Record how an attempt ended."""
    conn.execute(
        sa.update(attempts)
        .where(attempts.c.job_id == job_id, attempts.c.number == number)
        .values(state=state, finished_at=at, error=error)
    )
