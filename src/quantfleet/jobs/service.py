"""The job service: submit, claim, heartbeat, finish, cancel, reap; the database owns the truth.

A worker's life with the service::

    claim = jobs.claim("host-1/slot-0")          # None when the queue is empty
    log = jobs.log_writer(claim)
    ... run the job; log.write(text); log.flush() now and then ...
    beat = jobs.heartbeat(claim)                 # every lease_seconds / 3
    if not beat.ok: stop, discard everything     # superseded: another attempt owns the job
    if beat.cancel_requested: stop the child; finish as cancelled
    art = jobs.put_artifact(claim, "metrics.json", data)
    log.close()
    jobs.finish(claim, Outcome(state=JobState.SUCCEEDED, metrics=..., artifacts=[art]))
    # or, when the infrastructure failed (not the user's code):
    jobs.release(claim, reason="data cache unavailable")
    # or, when the worker stops on purpose (a graceful shutdown; no retry is used up):
    jobs.release(claim, reason="the worker shut down", penalty=False)

Every worker write is fenced by the claim's attempt number: a worker whose
lease expired and whose job was re-queued (by :meth:`JobService.reap`) can
change nothing. Methods raise :class:`~quantfleet.store.errors.DatabaseUnavailable`
(an ``InfrastructureError``) when the database cannot be reached or is
locked; back off and retry.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from quantfleet.core.errors import ConfigError, StorageUnavailable, UserError
from quantfleet.core.settings import LimitMaxima
from quantfleet.jobs._fair import check_queued_quota
from quantfleet.jobs._records import (
    add_event,
    artifact_from_row,
    attempt_from_row,
    cancel_locked,
    event_from_row,
    job_from_row,
    job_row,
    lock_job,
)
from quantfleet.jobs._worker import WorkerSide
from quantfleet.jobs.clock import Clock, SystemClock
from quantfleet.jobs.errors import CodeNotFound, IdempotencyConflict, JobNotFound, ParentNotActive
from quantfleet.jobs.logs import LogWriter, read_parts
from quantfleet.jobs.models import (
    Artifact,
    Attempt,
    Claim,
    Job,
    JobEvent,
    LogChunk,
    Page,
)
from quantfleet.jobs.spec import CodeRef, JobId, JobSpec, new_job_id, parse_job_id
from quantfleet.jobs.states import TERMINAL, EndReason, JobState
from quantfleet.store import Database, ObjectNotFound, ObjectStore
from quantfleet.store.models import artifacts, attempts, idempotency_keys, job_events, jobs

if TYPE_CHECKING:
    from quantfleet.core.settings import Settings

__all__ = ["JobService", "Notify"]

log = logging.getLogger(__name__)

Notify = Callable[[JobId], None]
"""The dispatcher port: told a job id after the commit that queued the job (ids only, STYLE.md habit 9)."""

_TERMINAL_VALUES = [state.value for state in TERMINAL]


def _code_key(sha256: str) -> str:
    return f"code/{sha256}"


def _not_found(job_id: str) -> JobNotFound:
    return JobNotFound(f"no job {job_id}; list jobs with 'quantfleet jobs ls'")


class JobService(WorkerSide):
    """Jobs' lifecycle over a SQL database (metadata) and an object store (code, logs, artifacts)."""

    def __init__(
        self,
        db: Database,
        objects: ObjectStore,
        *,
        clock: Clock | None = None,
        max_attempts: int = 3,
        lease_seconds: float = 30.0,
        notify: Notify | None = None,
        log_cap_bytes: int | None = None,
        limits_max: LimitMaxima | None = None,
    ) -> None:
        """Use ``db`` (already upgraded) and ``objects``; ``clock`` defaults to the system clock.

        ``log_cap_bytes``: every attempt's log cap (default: the job's ``limits.log_mb``);
        ``limits_max``: the most a submission may ask for (default: :class:`LimitMaxima`'s defaults).
        """
        if max_attempts < 1:
            raise ConfigError(f"max_attempts {max_attempts}: give 1 or more (QUANTFLEET_MAX_ATTEMPTS)")
        if lease_seconds <= 0:
            raise ConfigError(f"lease_seconds {lease_seconds}: give a positive number (QUANTFLEET_LEASE_SECONDS)")
        self.db = db
        self.objects = objects
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.max_attempts = max_attempts
        self.lease = timedelta(seconds=lease_seconds)
        self.log_cap_bytes = log_cap_bytes
        self.limits_max = limits_max or LimitMaxima()
        self._notify = notify

    @classmethod
    def from_settings(
        cls, settings: Settings, *, notify: Notify | None = None, clock: Clock | None = None
    ) -> JobService:
        """Open the database and object store the settings name, upgrading the schema first."""
        from quantfleet.data.storage import StorageOptions

        db = Database(settings.resolved_database_url)
        db.upgrade()
        url = settings.resolved_objects_url
        fs = None
        if "://" in url and not url.startswith("file://"):
            fs = StorageOptions(endpoint_url=settings.s3_endpoint_url, region=settings.s3_region).filesystem(url)
        return cls(
            db,
            ObjectStore(url, fs=fs),
            clock=clock,
            max_attempts=settings.max_attempts,
            lease_seconds=settings.lease_seconds,
            notify=notify,
            limits_max=settings.limits_max,
        )

    def _tell(self, job_ids: Sequence[JobId]) -> None:
        # After the commit: the queue carries ids only, and a lost message only delays a job,
        # which stays queued in the database for the next claim.
        if self._notify is None:
            return
        for job_id in job_ids:
            try:
                self._notify(job_id)
            except Exception:
                log.exception("could not notify the dispatcher of job %s; it stays queued", job_id)

    # -- code -------------------------------------------------------------------------------

    def put_code(self, data: bytes, name: str, *, class_name: str | None = None) -> CodeRef:
        """Store strategy code content-addressed by sha256 (stored once however often uploaded)."""
        sha = hashlib.sha256(data).hexdigest()
        ref = CodeRef(sha256=sha, name=name, class_name=class_name)
        key = _code_key(sha)
        if not self.objects.exists(key):
            self.objects.put(key, data)
        return ref

    def code(self, job_id: JobId) -> bytes:
        """Return the strategy code of a job, checked against its sha256."""
        sha = self.get(job_id).spec.code.sha256
        try:
            data = self.objects.get(_code_key(sha))
        except ObjectNotFound as exc:
            raise StorageUnavailable(
                f"the code of job {job_id} (sha256 {sha}) is missing from the object store at "
                f"{self.objects.root}; was QUANTFLEET_OBJECTS_URL changed?"
            ) from exc
        if hashlib.sha256(data).hexdigest() != sha:
            raise StorageUnavailable(f"the code of job {job_id} in {self.objects.root} is corrupt (sha256 differs)")
        return data

    def _require_code(self, specs: Sequence[JobSpec]) -> None:
        for sha in sorted({spec.code.sha256 for spec in specs}):
            if not self.objects.exists(_code_key(sha)):
                name = next(s.code.name for s in specs if s.code.sha256 == sha)
                raise CodeNotFound(
                    f"strategy code {name} (sha256 {sha[:12]}...) was never uploaded; upload it with "
                    "JobService.put_code first (the CLI does so when you submit a file)"
                )

    # -- submission -------------------------------------------------------------------------

    def submit(self, spec: JobSpec, *, idempotency_key: str | None = None) -> Job:
        """Queue a job; the same ``idempotency_key`` (per owner) with the same spec returns the original job.

        Raises ``CodeNotFound`` if the code was not uploaded with :meth:`put_code`,
        ``IdempotencyConflict`` if the key was used for a different spec,
        ``UserError`` if ``spec.parent`` is set (only :meth:`submit_children`
        makes children; a rerun of a child clears it), ``LimitAboveMaximum`` if
        a limit asked for is above the installation's maximum (a default above one is
        lowered to it), ``QuotaExceeded`` if the
        owner already has as many queued jobs as its ``max_queued`` quota allows
        (a sweep's children, queued by :meth:`submit_children`, are part of an
        accepted job and are never refused; they do count towards the quota).
        """
        if spec.parent is not None:
            raise UserError(
                f"this spec names parent {spec.parent}: only a running sweep adds children to itself "
                "(JobService.submit_children); to run a child's spec on its own, submit "
                "spec.model_copy(update={'parent': None}) ('quantfleet jobs rerun ID' does so)"
            )
        if idempotency_key is not None and not (0 < len(idempotency_key) <= 200):
            raise UserError("an idempotency key must have 1 to 200 characters")
        limits = spec.limits.within(self.limits_max)
        if limits is not spec.limits:  # a default above an admin's lower maximum: the job runs at the maximum
            spec = spec.model_copy(update={"limits": limits})
        self._require_code([spec])
        try:
            job, created = self._submit_once(spec, idempotency_key)
        except sa_exc.IntegrityError:
            # A concurrent submission with the same key won the race (PostgreSQL): answer as it would.
            job, created = self._submit_once(spec, idempotency_key)
        if created:
            self._tell([job.id])
        return job

    def _submit_once(self, spec: JobSpec, key: str | None) -> tuple[Job, bool]:
        fingerprint = spec.fingerprint()
        with self.db.write() as conn:
            if key is not None:
                known = (
                    conn.execute(
                        sa.select(idempotency_keys).where(
                            idempotency_keys.c.owner == spec.owner, idempotency_keys.c.key == key
                        )
                    )
                    .mappings()
                    .first()
                )
                if known is not None:
                    if known["spec_hash"] != fingerprint:
                        raise IdempotencyConflict(
                            f"idempotency key {key!r} was already used by {spec.owner} for job {known['job_id']} "
                            "with a different spec; use a new key to submit a different job, or resubmit the "
                            f"same spec to get job {known['job_id']} back",
                            key=key,
                            job_id=known["job_id"],
                        )
                    return self._get(conn, known["job_id"]), False
            check_queued_quota(conn, spec.owner)
            job = self._insert(conn, spec, key)
            if key is not None:
                conn.execute(
                    sa.insert(idempotency_keys).values(
                        owner=spec.owner, key=key, job_id=job.id, spec_hash=fingerprint, created_at=job.submitted_at
                    )
                )
        return job, True

    def _insert(self, conn: Connection, spec: JobSpec, key: str | None) -> Job:
        now = self.clock.now()
        row = job_row(new_job_id(), spec, now=now, idempotency_key=key)
        conn.execute(sa.insert(jobs).values(**row))
        detail = f"parent {spec.parent}" if spec.parent else None
        add_event(
            conn,
            row["id"],
            at=now,
            event="submitted",
            source=None,
            target=JobState.QUEUED,
            attempt=None,
            actor=spec.owner,
            detail=detail,
        )
        return job_from_row(row)

    def submit_children(self, claim: Claim, specs: Sequence[JobSpec]) -> builtins.list[Job] | None:
        """Queue the children of the claimed sweep job (its fan-out) in one transaction.

        Fenced like :meth:`finish`: returns None (and queues nothing) when
        ``claim`` is not the job's current running attempt (its lease expired
        and the job moved on); the worker should drop the attempt. Each child's
        ``spec.parent`` is set to the claimed job. Idempotent: calling it again
        with the same specs (a retried parent attempt) returns the existing
        children; different specs raise ``IdempotencyConflict``. A parent whose
        cancel was requested takes no children (``ParentNotActive``): finish the
        attempt as cancelled.
        """
        parent = claim.job_id
        children = []
        for spec in specs:
            if spec.parent is not None and spec.parent != parent:
                raise UserError(f"a child spec names parent {spec.parent}, not {parent}; leave parent unset")
            children.append(spec.model_copy(update={"parent": parent}))
        self._require_code(children)
        with self.db.write() as conn:
            row = self._fenced(conn, claim)
            if row is None:
                return None
            if row["cancel_requested_at"] is not None:
                raise ParentNotActive(
                    f"sweep job {parent} was cancelled by {row['cancelled_by']}, so it takes no children; "
                    "finish its attempt as cancelled, and submit the sweep again to run it"
                )
            existing = (
                conn.execute(sa.select(jobs).where(jobs.c.parent_id == parent).order_by(jobs.c.seq)).mappings().all()
            )
            if existing:
                if [r["spec_hash"] for r in existing] != [c.fingerprint() for c in children]:
                    raise IdempotencyConflict(
                        f"job {parent} already has {len(existing)} children with other specs; "
                        "a sweep fans out once (cancel it and submit a new sweep to change the children)",
                        key=f"children of {parent}",
                        job_id=parent,
                    )
                return [job_from_row(r) for r in existing]
            created = [self._insert(conn, child, None) for child in children]
        self._tell([job.id for job in created])
        return created

    # -- reading ----------------------------------------------------------------------------

    def _get(self, conn: Connection, job_id: str) -> Job:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
        if row is None:
            raise _not_found(job_id)
        return job_from_row(row)

    def get(self, job_id: JobId) -> Job:
        """Return a job; ``JobNotFound`` names how to list jobs."""
        with self.db.read() as conn:
            return self._get(conn, job_id)

    def resolve(self, text: str) -> JobId:
        """Return the job id that ``text`` names: a whole id, or a unique prefix of at least 6 digits (as git)."""
        cleaned = text.strip().lower().replace("-", "")
        if len(cleaned) == 32 or not (6 <= len(cleaned) < 32 and all(c in "0123456789abcdef" for c in cleaned)):
            return parse_job_id(text)
        with self.db.read() as conn:
            found = conn.execute(sa.select(jobs.c.id).where(jobs.c.id.like(cleaned + "%")).limit(2)).scalars().all()
        if not found:
            raise _not_found(cleaned)
        if len(found) > 1:
            raise JobNotFound(f"{text!r} names several jobs; give more of the id ('quantfleet jobs ls' lists them)")
        return JobId(found[0])

    def list(
        self,
        *,
        state: JobState | Sequence[JobState] | None = None,
        owner: str | None = None,
        parent: JobId | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Job]:
        """Return jobs newest first, filtered; pass the page's ``next_cursor`` for more."""
        if not 1 <= limit <= 1000:
            raise UserError(f"limit {limit}: give 1 to 1000")
        query = sa.select(jobs).order_by(jobs.c.seq.desc()).limit(limit + 1)
        if state is not None:
            states = [state] if isinstance(state, str) else list(state)
            query = query.where(jobs.c.state.in_([JobState(s).value for s in states]))
        if owner is not None:
            query = query.where(jobs.c.owner == owner)
        if parent is not None:
            query = query.where(jobs.c.parent_id == parent)
        if cursor is not None:
            if not cursor.isdigit():
                raise UserError(f"cursor {cursor!r} is not one this service returned; start without a cursor")
            query = query.where(jobs.c.seq < int(cursor))
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(items=[job_from_row(r) for r in rows], next_cursor=str(rows[-1]["seq"]) if more else None)

    def _rows(self, job_id: str, query: sa.Select[Any]) -> Sequence[Mapping[Any, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
            if not rows and conn.execute(sa.select(jobs.c.seq).where(jobs.c.id == job_id)).first() is None:
                raise _not_found(job_id)
        return rows

    def children(self, parent: JobId) -> builtins.list[Job]:
        """Return the children of a sweep job in submission order."""
        rows = self._rows(parent, sa.select(jobs).where(jobs.c.parent_id == parent).order_by(jobs.c.seq))
        return [job_from_row(r) for r in rows]

    def children_pending(self, parent: JobId) -> int:
        """Return how many children of ``parent`` have not ended (0: gather the leaderboard)."""
        query = sa.select(sa.func.count()).where(jobs.c.parent_id == parent, jobs.c.state.not_in(_TERMINAL_VALUES))
        with self.db.read() as conn:
            self._get(conn, parent)
            return int(conn.execute(query).scalar_one())

    def events(self, job_id: JobId) -> builtins.list[JobEvent]:
        """Return the job's audit log, oldest first."""
        query = sa.select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id)
        return [event_from_row(r) for r in self._rows(job_id, query)]

    def attempts(self, job_id: JobId) -> builtins.list[Attempt]:
        """Return every attempt of the job, first first."""
        query = sa.select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.number)
        return [attempt_from_row(r) for r in self._rows(job_id, query)]

    def with_attempts(self, job_id: JobId) -> tuple[Job, builtins.list[Attempt]]:
        """Return a job and its attempts (first first), read in one transaction (a status call's one round trip)."""
        query = sa.select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.number)
        with self.db.read() as conn:
            job = self._get(conn, job_id)
            rows = conn.execute(query).mappings().all() if job.attempt else []
        return job, [attempt_from_row(r) for r in rows]

    def artifacts(self, job_id: JobId) -> builtins.list[Artifact]:
        """Return the artifacts recorded for the job (by the attempt that finished it), by name."""
        query = sa.select(artifacts).where(artifacts.c.job_id == job_id).order_by(artifacts.c.name)
        return [artifact_from_row(r) for r in self._rows(job_id, query)]

    def artifact_bytes(self, job_id: JobId, name: str) -> bytes:
        """Return the content of one recorded artifact."""
        found = [a for a in self.artifacts(job_id) if a.name == name]
        if not found:
            raise ObjectNotFound(f"job {job_id} has no artifact {name!r}; list them with 'quantfleet jobs show'")
        prefix = self.objects.root + "/"
        if not found[0].url.startswith(prefix):
            raise ObjectNotFound(f"artifact {name!r} of job {job_id} lives outside the object store: {found[0].url}")
        return self.objects.get(found[0].url[len(prefix) :])

    def queue_depth(self) -> int:
        """Return how many jobs are queued."""
        with self.db.read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).where(jobs.c.state == JobState.QUEUED)).scalar_one())

    def counts_by_state(self) -> dict[JobState, int]:
        """Return how many jobs are in each state (every state, zeros included): one GROUP BY."""
        with self.db.read() as conn:
            rows = conn.execute(sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)).all()
        found = {JobState(state): int(count) for state, count in rows}
        return {state: found.get(state, 0) for state in JobState}

    def finished_since(self, since: datetime, *, limit: int = 10_000) -> builtins.list[Job]:
        """Return jobs that ended after ``since``, oldest end first (at most ``limit``)."""
        query = sa.select(jobs).where(jobs.c.finished_at > since).order_by(jobs.c.finished_at, jobs.c.seq).limit(limit)
        with self.db.read() as conn:
            return [job_from_row(row) for row in conn.execute(query).mappings().all()]

    # -- user actions -----------------------------------------------------------------------

    def cancel(self, job_id: JobId, *, by: str) -> Job:
        """Cancel a job: a queued one at once; a running one by request, seen on the worker's next heartbeat.

        A sweep's children that have not ended are cancelled with it. Cancelling
        a cancelled job returns it; cancelling any other ended job raises
        ``IllegalTransition``.
        """
        with self.db.write() as conn:
            row = lock_job(conn, job_id)
            if row is None:
                raise _not_found(job_id)
            cancel_locked(conn, row, by=by, now=self.clock.now(), detail=None)
            return self._get(conn, job_id)

    def withdraw(self, job_id: JobId, *, by: str, reason: str) -> bool:
        """Cancel the job if, and only if, no worker has claimed it yet; return whether it was withdrawn.

        For a submitter that could not tell the fleet of a job it just queued
        (the HTTP API's 503). The state is read and changed in one transaction
        with the row locked, so a worker's claim comes wholly before (the job
        runs and is left alone: False) or wholly after (it finds the job
        cancelled). ``reason`` goes into the job's events.
        """
        with self.db.write() as conn:
            row = lock_job(conn, job_id)
            if row is None or row["state"] != JobState.QUEUED:
                return False
            cancel_locked(conn, row, by=by, now=self.clock.now(), detail=reason, reason=EndReason.WITHDRAWN)
            return True

    # -- logs -------------------------------------------------------------------------------

    def log_writer(self, claim: Claim) -> LogWriter:
        """Return a writer of this attempt's log: ``write`` buffers, ``flush`` stores one part, ``close`` flushes."""
        cap = self.log_cap_bytes if self.log_cap_bytes is not None else int(claim.spec.limits.log_mb * 1024 * 1024)
        return LogWriter(self.objects, claim.job_id, claim.attempt, cap_bytes=cap)

    def read_log(self, job_id: JobId, *, attempt: int | None = None, offset: int = 0) -> LogChunk:
        """Return the log of an attempt (default: the latest) from byte ``offset``; follow with ``next_offset``."""
        # The job first, then the parts: a worker closes its log before it finishes, so once the
        # job is seen ended, every part is already stored and ``complete`` is true.
        job = self.get(job_id)
        number = job.attempt if attempt is None else attempt
        if job.attempt == 0 and attempt is None:
            return LogChunk(text="", next_offset=offset, attempt=0, complete=job.terminal)
        if not 1 <= number <= job.attempt:
            raise UserError(
                f"job {job_id} has no attempt {number}; it has "
                + (f"attempts 1 to {job.attempt}" if job.attempt else "not started yet")
            )
        text, next_offset = read_parts(self.objects, job_id, number, offset)
        complete = not (job.state is JobState.RUNNING and number == job.attempt)
        return LogChunk(text=text, next_offset=next_offset, attempt=number, complete=complete)
