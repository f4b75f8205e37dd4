"""The worker side of the job service: claim, heartbeat, finish, release, reap, artifacts.

Every write a worker makes is fenced by its claim's attempt number: the job
row is locked and compared with the claim first, so a worker whose attempt
was superseded changes nothing.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from quantfleet.core.errors import StorageUnavailable, UserError
from quantfleet.jobs._fair import pick_fair
from quantfleet.jobs._records import add_event, end_attempt, end_parent, lock_job
from quantfleet.jobs.clock import Clock
from quantfleet.jobs.models import ArtifactIn, Claim, Heartbeat, Outcome
from quantfleet.jobs.spec import JobId, JobSpec
from quantfleet.jobs.states import EndReason, JobState, check_transition
from quantfleet.store import Database, ObjectStore
from quantfleet.store.models import artifacts, attempts, jobs

__all__ = ["WorkerSide", "artifact_prefix"]

log = logging.getLogger("quantfleet.jobs.service")

# Attempt endings that count against max_attempts: the infrastructure failed. A finished attempt ends
# the job; an ``interrupted`` one (a graceful shutdown) re-queues it for free.
_COUNTED = frozenset({"lost", "released"})


def _version() -> str:
    try:
        return metadata.version("quantfleet")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "(unknown version)"


_VERSION = _version()

_ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")


def artifact_prefix(job_id: str, attempt: int) -> str:
    """Return the object-key folder of one attempt's artifacts."""
    return f"artifacts/{job_id}/{attempt}"


def _check_worker(worker: str) -> None:
    if not worker or len(worker) > 200:
        raise UserError("a worker needs a name of 1 to 200 characters")


def _first_line(text: str | None, limit: int = 500) -> str | None:
    if not text or not text.strip():
        return None
    return text.strip().splitlines()[0][:limit]


class WorkerSide:
    """What workers call; mixed into :class:`~quantfleet.jobs.service.JobService`."""

    db: Database
    objects: ObjectStore
    clock: Clock
    lease: timedelta
    max_attempts: int

    def _tell(self, job_ids: Sequence[JobId]) -> None:
        raise NotImplementedError

    def claim(self, worker: str) -> Claim | None:
        """Take the next queued job fairly and atomically; None if none is queued (or none may start).

        Order: highest priority; then the owner with the fewest running jobs
        (ties: the owner whose oldest queued job is oldest); then that owner's
        oldest job. Owners at their running quota are skipped (see
        :mod:`quantfleet.jobs._fair`). PostgreSQL: ``SELECT ... FOR UPDATE SKIP
        LOCKED``, so workers never wait on each other's row; SQLite: the write
        transaction is ``BEGIN IMMEDIATE``, so claims run one at a time. Either
        way the update is guarded by ``state = 'queued'``. A job whose stored
        spec this version cannot read ends ``failed`` in the same transaction,
        and the next job is taken instead (see :meth:`_take`).
        """
        _check_worker(worker)
        with self.db.write() as conn:
            while (row := pick_fair(conn)) is not None:
                claim = self._take(conn, row, worker)
                if claim is not None:
                    return claim
        return None

    def claim_job(self, worker: str, job_id: JobId) -> Claim | None:
        """Take this one job if it is still queued; None if it is running, ended or unknown.

        The claim of a dispatcher that names jobs (a Celery message carries the
        id): a duplicate or late delivery finds the job already taken and takes
        nothing. The row is locked first (``FOR UPDATE`` on PostgreSQL; SQLite's
        write transaction is ``BEGIN IMMEDIATE``) and the update is guarded by
        ``state = 'queued'``, as in :meth:`claim`. A spec this version cannot
        read ends the job ``failed`` and returns None.
        """
        _check_worker(worker)
        with self.db.write() as conn:
            row = lock_job(conn, job_id)
            if row is None or row["state"] != JobState.QUEUED:
                return None
            return self._take(conn, row, worker)

    def _take(self, conn: Connection, row: Mapping[Any, Any], worker: str) -> Claim | None:
        """Start the next attempt of the locked queued job ``row``; None if its spec cannot be read.

        The spec is read before the state changes: a spec written by a newer
        quantfleet (an unknown field) would otherwise fail after the job was
        marked running, be reaped, retried, and take down each worker in turn.
        """
        now = self.clock.now()
        try:
            spec = JobSpec.model_validate(row["spec"])
        except ValidationError as exc:
            self._fail_unreadable(conn, row, now=now, worker=worker, exc=exc)
            return None
        number = row["attempt"] + 1
        lease = now + self.lease
        done = conn.execute(
            sa.update(jobs)
            .where(jobs.c.seq == row["seq"], jobs.c.state == JobState.QUEUED)
            .values(
                state=JobState.RUNNING,
                attempt=number,
                worker=worker,
                lease_expires_at=lease,
                started_at=sa.func.coalesce(jobs.c.started_at, now),
                updated_at=now,
            )
        )
        if done.rowcount != 1:  # pragma: no cover - the row is locked; defensive
            return None
        conn.execute(
            sa.insert(attempts).values(
                job_id=row["id"], number=number, worker=worker, state=JobState.RUNNING.value,
                started_at=now, heartbeat_at=now, lease_expires_at=lease,
            )
        )  # fmt: skip
        add_event(
            conn, row["id"], at=now, event="claimed", source=JobState.QUEUED, target=JobState.RUNNING,
            attempt=number, actor=worker,
        )  # fmt: skip
        return Claim(job_id=JobId(row["id"]), attempt=number, spec=spec, worker=worker, lease_expires=lease)

    def _fail_unreadable(
        self, conn: Connection, row: Mapping[Any, Any], *, now: datetime, worker: str, exc: ValidationError
    ) -> None:
        """End a queued job whose spec this version cannot read ``failed`` (no attempt is started)."""
        check_transition(JobState.QUEUED, JobState.FAILED, job_id=row["id"])
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or 'spec'}: {err['msg']}" for err in exc.errors()
        )
        error = (
            f"this job's spec cannot be read by quantfleet {_VERSION} ({problems}); it was probably submitted "
            "by a newer quantfleet: upgrade the workers, or resubmit the job from this version"
        )
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.seq == row["seq"], jobs.c.state == JobState.QUEUED)
            .values(
                state=JobState.FAILED,
                error=error,
                finished_at=now,
                updated_at=now,
                lease_expires_at=None,
                reason=EndReason.UNREADABLE,
            )
        )
        add_event(
            conn, row["id"], at=now, event="unreadable", source=JobState.QUEUED, target=JobState.FAILED,
            attempt=None, actor=worker, detail=_first_line(error),
        )  # fmt: skip
        end_parent(conn, row, JobState.FAILED, by=worker, now=now)
        log.error("job %s failed at claim: %s", row["id"], error)

    def _fenced(self, conn: Connection, claim: Claim) -> Mapping[Any, Any] | None:
        """Return the job's row, locked, if ``claim`` is its current running attempt; else None (stale)."""
        row = lock_job(conn, claim.job_id)
        if row is None or row["attempt"] != claim.attempt or row["state"] != JobState.RUNNING:
            return None
        return row

    def heartbeat(self, claim: Claim) -> Heartbeat:
        """Renew the claim's lease; the answer says whether it is stale and whether cancel was requested.

        A lease that expired but was not reaped yet is renewed: the attempt is
        still current.
        """
        with self.db.write() as conn:
            row = self._fenced(conn, claim)
            if row is None:
                return Heartbeat(ok=False, cancel_requested=False, lease_expires=None)
            now = self.clock.now()
            lease = now + self.lease
            conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == claim.job_id, jobs.c.attempt == claim.attempt)
                .values(lease_expires_at=lease, updated_at=now)
            )
            conn.execute(
                sa.update(attempts)
                .where(attempts.c.job_id == claim.job_id, attempts.c.number == claim.attempt)
                .values(heartbeat_at=now, lease_expires_at=lease)
            )
        return Heartbeat(ok=True, cancel_requested=row["cancel_requested_at"] is not None, lease_expires=lease)

    def finish(self, claim: Claim, outcome: Outcome) -> bool:
        """Record how the attempt ended, with its metrics and artifacts, in one transaction.

        Returns False (and records nothing; the attempt's uploaded artifacts are
        deleted) when the claim is stale. Close the attempt's log writer first,
        so a reader that sees the job ended has seen all of its log.
        """
        with self.db.write() as conn:
            row = self._fenced(conn, claim)
            if row is not None:
                self._record_outcome(conn, row, claim, outcome)
        if row is None:
            self._discard(claim)
            return False
        return True

    def _record_outcome(self, conn: Connection, row: Mapping[Any, Any], claim: Claim, outcome: Outcome) -> None:
        check_transition(JobState.RUNNING, outcome.state, job_id=claim.job_id)
        now = self.clock.now()
        values: dict[str, Any] = {
            "state": outcome.state,
            "finished_at": now,
            "updated_at": now,
            "lease_expires_at": None,
            "error": outcome.error,
            "reason": outcome.reason,
            "metrics": outcome.metrics,
        }
        if outcome.state is JobState.CANCELLED and row["cancelled_by"] is None:
            values["cancelled_by"] = claim.worker
        conn.execute(sa.update(jobs).where(jobs.c.id == claim.job_id, jobs.c.attempt == claim.attempt).values(**values))
        end_attempt(conn, claim.job_id, claim.attempt, state=outcome.state.value, at=now, error=outcome.error)
        for art in outcome.artifacts:
            conn.execute(
                sa.insert(artifacts).values(
                    job_id=claim.job_id,
                    attempt=claim.attempt,
                    name=art.name,
                    url=art.url,
                    size=art.size,
                    sha256=art.sha256,
                    created_at=now,
                )
            )
        add_event(
            conn,
            claim.job_id,
            at=now,
            event="finished",
            source=JobState.RUNNING,
            target=outcome.state,
            attempt=claim.attempt,
            actor=claim.worker,
            detail=_first_line(outcome.error),
        )
        end_parent(conn, row, outcome.state, by=claim.worker, now=now)

    def _discard(self, claim: Claim) -> None:
        try:
            self.objects.delete_prefix(artifact_prefix(claim.job_id, claim.attempt))
        except StorageUnavailable:
            log.warning("could not delete the discarded artifacts of job %s attempt %s", claim.job_id, claim.attempt)

    def release(self, claim: Claim, *, reason: str, penalty: bool = True) -> bool:
        """Give the attempt back: re-queue the job, or end it ``dead`` after its last counted attempt.

        ``penalty=True`` (an infrastructure failure: the data cache is down, the
        child crashed) counts the attempt against ``max_attempts``; its attempt
        ends ``released``. ``penalty=False`` (the worker stops on purpose, as in
        a graceful shutdown) re-queues the job without using up a retry; its
        attempt ends ``interrupted``. A job whose cancel was requested ends
        ``cancelled`` instead. Returns False when the claim is stale (nothing
        changes).
        """
        with self.db.write() as conn:
            row = self._fenced(conn, claim)
            if row is None:
                return False
            target = self._end_lost(
                conn,
                row,
                now=self.clock.now(),
                attempt_state="released" if penalty else "interrupted",
                event="released",
                actor=claim.worker,
                reason=reason if penalty else f"{reason} (not counted against max_attempts)",
            )
        if target is JobState.QUEUED:
            self._tell([claim.job_id])
        return True

    def _end_lost(
        self,
        conn: Connection,
        row: Mapping[Any, Any],
        *,
        now: datetime,
        attempt_state: str,
        event: str,
        actor: str,
        reason: str,
    ) -> JobState:
        """End an attempt the infrastructure lost (or a worker gave back): re-queue the job, or end it dead/cancelled.

        Only attempts that ended ``lost`` or ``released`` count towards
        ``max_attempts``; ``interrupted`` ones (a graceful shutdown) do not.
        """
        job_id = row["id"]
        number = row["attempt"]
        values: dict[str, Any] = {"updated_at": now, "lease_expires_at": None, "worker": None}
        failures = self._failures(conn, job_id) + (attempt_state in _COUNTED)
        if row["cancel_requested_at"] is not None:
            target = JobState.CANCELLED
            values.update(finished_at=now, reason=EndReason.CANCELLED)
        elif attempt_state in _COUNTED and failures >= self.max_attempts:
            target = JobState.DEAD
            values.update(
                finished_at=now,
                reason=EndReason.INFRASTRUCTURE,
                error=f"the infrastructure failed {failures} times; the last time (attempt {number}): {reason}. "
                f"Read that attempt's log with 'quantfleet jobs logs {job_id} --attempt {number}', fix the cause, "
                f"then run the job again with 'quantfleet jobs rerun {job_id}'",
            )
        else:
            target = JobState.QUEUED
        check_transition(JobState.RUNNING, target, job_id=job_id)
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == job_id, jobs.c.attempt == number, jobs.c.state == JobState.RUNNING)
            .values(state=target, **values)
        )
        end_attempt(conn, job_id, number, state=attempt_state, at=now, error=reason)
        add_event(
            conn, job_id, at=now, event=event, source=JobState.RUNNING, target=target,
            attempt=number, actor=actor, detail=reason,
        )  # fmt: skip
        end_parent(conn, row, target, by=actor, now=now)
        return target

    @staticmethod
    def _failures(conn: Connection, job_id: str) -> int:
        """Return how many of the job's ended attempts count against ``max_attempts``."""
        query = sa.select(sa.func.count()).where(attempts.c.job_id == job_id, attempts.c.state.in_(sorted(_COUNTED)))
        return int(conn.execute(query).scalar_one())

    def reap(self) -> builtins.list[JobId]:
        """Re-queue (or mark dead) running jobs whose lease expired; return their ids."""
        now = self.clock.now()
        query = (
            sa.select(jobs)
            .where(jobs.c.state == JobState.RUNNING, jobs.c.lease_expires_at < now)
            .order_by(jobs.c.seq)
            .with_for_update(skip_locked=True)
        )
        reaped: builtins.list[JobId] = []
        requeued: builtins.list[JobId] = []
        with self.db.write() as conn:
            for found in conn.execute(query).mappings().all():
                # Read the row again: reaping a sweep earlier in this loop may have cancelled this child.
                row = lock_job(conn, found["id"])
                if row is None or row["state"] != JobState.RUNNING:  # pragma: no cover - defensive
                    continue
                reason = f"lease expired at {row['lease_expires_at'].isoformat()} (worker {row['worker']} lost)"
                target = self._end_lost(
                    conn, row, now=now, attempt_state="lost", event="lease_expired", actor="reaper", reason=reason
                )
                reaped.append(JobId(row["id"]))
                if target is JobState.QUEUED:
                    requeued.append(JobId(row["id"]))
        self._tell(requeued)
        return reaped

    def put_artifact(self, claim: Claim, name: str, data: bytes) -> ArtifactIn:
        """Upload one result object of this attempt; pass the answer to :meth:`finish`."""
        key = self._artifact_key(claim, name)
        url = self.objects.put(key, data)
        return ArtifactIn(name=name, url=url, size=len(data), sha256=hashlib.sha256(data).hexdigest())

    def put_artifact_file(self, claim: Claim, name: str, path: Path) -> ArtifactIn:
        """Upload one result file of this attempt; pass the answer to :meth:`finish`."""
        digest = hashlib.sha256()
        size = 0
        with open(path, "rb") as src:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        url = self.objects.put_file(self._artifact_key(claim, name), Path(path))
        return ArtifactIn(name=name, url=url, size=size, sha256=digest.hexdigest())

    @staticmethod
    def _artifact_key(claim: Claim, name: str) -> str:
        if not _ARTIFACT_NAME.match(name) or any(part in (".", "..") for part in name.split("/")):
            raise UserError(f"artifact name {name!r}: use a relative path of letters, digits, '_', '-', '.'")
        return f"{artifact_prefix(claim.job_id, claim.attempt)}/{name}"
