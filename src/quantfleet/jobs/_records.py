"""Rows to value objects, and the small SQL pieces the service composes."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from quantfleet.jobs.models import Artifact, Attempt, Job, JobEvent
from quantfleet.jobs.spec import JobId, JobSpec
from quantfleet.jobs.states import TERMINAL, EndReason, JobState, check_transition
from quantfleet.store.models import attempts, job_events, jobs

__all__ = [
    "TERMINAL_VALUES",
    "add_event",
    "artifact_from_row",
    "attempt_from_row",
    "cancel_children",
    "cancel_locked",
    "end_attempt",
    "end_parent",
    "event_from_row",
    "job_from_row",
    "job_row",
    "lock_job",
]

TERMINAL_VALUES = sorted(state.value for state in TERMINAL)


def job_from_row(row: Mapping[Any, Any]) -> Job:
    """Return the :class:`Job` a ``jobs`` row describes."""
    return Job(
        id=JobId(row["id"]),
        spec=readable_spec(row["spec"]),
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
        reason=_reason(row.get("reason")),
        metrics=row["metrics"],
        idempotency_key=row["idempotency_key"],
    )


def readable_spec(raw: Any) -> JobSpec:
    """Return a stored spec for showing it: fields a newer quantfleet added are left out, not an error.

    A job whose spec a newer version wrote must still list and show (it is
    failed at claim as ``unreadable``, and its owner needs to see why); only the
    claim, which would run it, validates strictly. Any other mismatch raises.
    """
    try:
        return JobSpec.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        if not isinstance(raw, dict) or any(e["type"] != "extra_forbidden" for e in errors):
            raise
        trimmed = copy.deepcopy(raw)
        for error in errors:
            *parents, name = error["loc"]
            holder: Any = trimmed
            for part in parents:
                holder = holder[part]
            holder.pop(name, None)
        return JobSpec.model_validate(trimmed)


def _reason(value: str | None) -> EndReason | None:
    """Return a stored reason; None for none, or for one a newer version wrote that this one does not know."""
    try:
        return None if value is None else EndReason(value)
    except ValueError:
        return None


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


def cancel_locked(
    conn: Connection,
    row: Mapping[Any, Any],
    *,
    by: str,
    now: datetime,
    detail: str | None = None,
    reason: EndReason = EndReason.CANCELLED,
) -> None:
    """Cancel the job of a locked row: a queued one at once, a running one by request; then its children.

    Cancelling a cancelled job changes nothing; any other ended job raises
    ``IllegalTransition``. ``by`` and ``detail`` (why) go into the events.
    """
    state = JobState(row["state"])
    job_id = row["id"]
    if state is JobState.QUEUED:
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == job_id, jobs.c.state == JobState.QUEUED)
            .values(
                state=JobState.CANCELLED,
                cancel_requested_at=now,
                cancelled_by=by,
                finished_at=now,
                updated_at=now,
                reason=reason,
            )
        )
        add_event(
            conn, job_id, at=now, event="cancelled", source=state, target=JobState.CANCELLED,
            attempt=row["attempt"] or None, actor=by, detail=detail,
        )  # fmt: skip
    elif state is JobState.RUNNING:
        if row["cancel_requested_at"] is None:
            conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id)
                .values(cancel_requested_at=now, cancelled_by=by, updated_at=now)
            )
            add_event(
                conn, job_id, at=now, event="cancel_requested", source=state, target=state,
                attempt=row["attempt"], actor=by, detail=detail,
            )  # fmt: skip
    elif state is not JobState.CANCELLED:
        check_transition(state, JobState.CANCELLED, job_id=job_id)
    cancel_children(conn, job_id, by=by, now=now, detail=f"the parent sweep {job_id} was cancelled")


def cancel_children(conn: Connection, parent_id: str, *, by: str, now: datetime, detail: str | None) -> None:
    """Cancel every unfinished child of ``parent_id`` (and theirs) in the caller's transaction."""
    query = (
        sa.select(jobs)
        .where(jobs.c.parent_id == parent_id, jobs.c.state.not_in(TERMINAL_VALUES))
        .order_by(jobs.c.seq)
        .with_for_update()
    )
    for child in conn.execute(query).mappings().all():
        cancel_locked(conn, child, by=by, now=now, detail=detail)


def end_parent(conn: Connection, row: Mapping[Any, Any], target: JobState, *, by: str, now: datetime) -> None:
    """Cancel the unfinished children of a job that just ended ``target`` (anything but ``succeeded``).

    A sweep that failed, timed out, died or was cancelled will never gather
    its children's results, so running them would only waste the fleet.
    """
    if target is JobState.SUCCEEDED or target not in TERMINAL:
        return
    detail = f"the parent sweep {row['id']} ended {target.value}"
    cancel_children(conn, row["id"], by=by, now=now, detail=detail)
