"""The targeted claim: take THIS job if it is still queued (a Celery message names it); duplicates take nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from importlib import metadata
from pathlib import Path

import pytest
import sqlalchemy as sa

from quantfleet.core.errors import UserError
from quantfleet.jobs import JobId, JobService, JobSpec, JobState, Outcome, new_job_id
from quantfleet.store import Database, DatabaseUnavailable, ObjectStore
from quantfleet.store.models import jobs
from quantfleet.testing import FrozenClock

SpecFactory = Callable[..., JobSpec]


def test_claim_job_takes_the_named_job_not_the_next_in_line(
    service: JobService, new_spec: SpecFactory, clock: FrozenClock
) -> None:
    first = service.submit(new_spec(priority=5))
    second = service.submit(new_spec())
    claim = service.claim_job("celery/1", second.id)
    assert claim is not None
    assert (claim.job_id, claim.attempt, claim.worker) == (second.id, 1, "celery/1")
    assert claim.lease_expires == clock.now() + timedelta(seconds=30)
    running = service.get(second.id)
    assert (running.state, running.attempt, running.worker) == (JobState.RUNNING, 1, "celery/1")
    assert [(a.number, a.state) for a in service.attempts(second.id)] == [(1, "running")]
    assert [e.event for e in service.events(second.id)] == ["submitted", "claimed"]
    assert service.get(first.id).state is JobState.QUEUED


def test_a_duplicate_delivery_claims_nothing(service: JobService, new_spec: SpecFactory) -> None:
    job = service.submit(new_spec())
    claim = service.claim_job("w1", job.id)
    assert claim is not None
    assert service.claim_job("w2", job.id) is None  # running
    assert service.finish(claim, Outcome(state=JobState.SUCCEEDED))
    assert service.claim_job("w2", job.id) is None  # ended
    assert service.get(job.id).attempt == 1


def test_claim_job_of_an_unknown_or_cancelled_job_is_none(service: JobService, new_spec: SpecFactory) -> None:
    assert service.claim_job("w1", new_job_id()) is None
    job = service.submit(new_spec())
    service.cancel(job.id, by="ana")
    assert service.claim_job("w1", job.id) is None
    assert service.get(job.id).state is JobState.CANCELLED


def test_a_reaped_job_is_claimed_again_as_the_next_attempt(
    service: JobService, new_spec: SpecFactory, clock: FrozenClock
) -> None:
    job = service.submit(new_spec())
    stale = service.claim_job("w1", job.id)
    assert stale is not None
    clock.advance(31)
    assert service.reap() == [job.id]
    fresh = service.claim_job("w2", job.id)
    assert fresh is not None
    assert fresh.attempt == 2
    assert not service.heartbeat(stale).ok  # the first attempt is fenced out
    assert service.heartbeat(fresh).ok


def test_claim_job_needs_a_worker_name(service: JobService, new_spec: SpecFactory) -> None:
    job = service.submit(new_spec())
    with pytest.raises(UserError, match="worker needs a name"):
        service.claim_job("", job.id)


def test_concurrent_deliveries_of_one_id_claim_it_once(
    db_url: str, service: JobService, new_spec: SpecFactory, tmp_path: Path, clock: FrozenClock
) -> None:
    jobs = [service.submit(new_spec(params={"i": i})).id for i in range(10)]
    won: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def deliver(name: str) -> None:
        db = Database(db_url, busy_timeout_ms=30_000)  # own connections, as separate worker processes
        side = JobService(db, ObjectStore(str(tmp_path / "objects")), clock=clock)
        try:
            start.wait()
            for job_id in jobs:
                while True:
                    try:
                        claim = side.claim_job(name, job_id)
                        break
                    except DatabaseUnavailable:
                        continue
                if claim is not None:
                    with lock:
                        won.append(claim.job_id)
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=deliver, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sorted(won) == sorted(jobs)  # each job exactly once
    assert all(service.get(j).attempt == 1 for j in jobs)


def _poison(service: JobService, job_id: JobId) -> None:
    """Store a spec this version cannot read, as a newer quantfleet with an extra field would write it."""
    with service.db.write() as conn:
        spec = conn.execute(sa.select(jobs.c.spec).where(jobs.c.id == job_id)).scalar_one()
        conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(spec={**spec, "gpu": {"count": 1}}))


def _assert_failed_unread(service: JobService, job_id: JobId) -> None:
    with service.db.read() as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().one()
    assert row["state"] == JobState.FAILED
    assert row["reason"] == "unreadable"
    assert row["attempt"] == 0
    assert row["finished_at"] is not None
    error = row["error"] or ""
    assert f"cannot be read by quantfleet {metadata.version('quantfleet')}" in error
    assert "gpu" in error
    assert "upgrade the workers" in error
    assert "resubmit" in error
    assert service.attempts(job_id) == []
    assert [(e.event, e.from_state, e.to_state) for e in service.events(job_id)][-1] == (
        "unreadable",
        JobState.QUEUED,
        JobState.FAILED,
    )


def test_claim_fails_an_unreadable_spec_and_takes_the_next_job(service: JobService, new_spec: SpecFactory) -> None:
    poisoned = service.submit(new_spec(priority=5)).id
    good = service.submit(new_spec()).id
    _poison(service, poisoned)
    claim = service.claim("w1")
    assert claim is not None
    assert claim.job_id == good
    _assert_failed_unread(service, poisoned)
    assert service.claim("w2") is None  # the failed job is never taken again


def test_claim_job_fails_an_unreadable_spec(service: JobService, new_spec: SpecFactory) -> None:
    poisoned = service.submit(new_spec()).id
    _poison(service, poisoned)
    assert service.claim_job("w1", poisoned) is None
    _assert_failed_unread(service, poisoned)


def test_a_job_a_newer_version_wrote_still_lists_and_shows_why_it_failed(
    service: JobService, new_spec: SpecFactory
) -> None:
    poisoned = service.submit(new_spec()).id
    _poison(service, poisoned)
    assert service.get(poisoned).state is JobState.QUEUED  # shown before any claim, the unknown field left out
    assert service.claim("w1") is None  # but never run
    shown = service.get(poisoned)
    assert (shown.state, shown.reason) == (JobState.FAILED, "unreadable")
    assert "upgrade the workers" in (shown.error or "")
    assert [job.id for job in service.list().items] == [poisoned]
