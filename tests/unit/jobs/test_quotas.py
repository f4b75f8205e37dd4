"""Per-user quotas: max_queued refuses a submission; max_running holds an owner's jobs back at claim."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from quantfleet.core.errors import UserError
from quantfleet.jobs import JobService, JobSpec, JobState, Outcome, QuotaExceeded
from quantfleet.store import Database, DatabaseUnavailable, ObjectStore
from quantfleet.testing import FrozenClock
from quantfleet.users import UserService

SpecFactory = Callable[..., JobSpec]


@pytest.fixture
def users(db: Database, clock: FrozenClock) -> UserService:
    return UserService(db, clock=clock)


def test_the_queued_quota_refuses_a_submission_naming_the_limit_and_the_fix(
    service: JobService, users: UserService, new_spec: SpecFactory, notified: list[str]
) -> None:
    users.add_user("ana", max_queued=2)
    first = service.submit(new_spec(owner="ana", params={"i": 1}), idempotency_key="k1")
    service.submit(new_spec(owner="ana", params={"i": 2}))
    with pytest.raises(QuotaExceeded, match=r"max_queued 2.*quantfleet users quota ana --max-queued N") as caught:
        service.submit(new_spec(owner="ana", params={"i": 3}))
    assert isinstance(caught.value, UserError)
    assert (caught.value.owner, caught.value.limit, caught.value.quota) == ("ana", 2, "max_queued")
    assert len(notified) == 2  # nothing was queued, nothing told
    # the same idempotent submission still answers with the original job
    assert service.submit(new_spec(owner="ana", params={"i": 1}), idempotency_key="k1").id == first.id
    # another owner, and an owner without a users row (single-user mode), are not limited
    for i in range(3):
        service.submit(new_spec(owner="local", params={"i": i}))
    # a started job leaves the queue: there is room again
    assert service.claim("w1") is not None
    service.submit(new_spec(owner="ana", params={"i": 3}))
    users.set_quota("ana", max_queued=None)
    service.submit(new_spec(owner="ana", params={"i": 4}))


def test_a_sweeps_children_are_never_refused(service: JobService, users: UserService, new_spec: SpecFactory) -> None:
    users.add_user("ana", max_queued=1)
    parent = service.submit(new_spec(owner="ana", kind="sweep", sweep={"grid": {"fast": [5, 10]}}))
    claim = service.claim_job("w1", parent.id)
    assert claim is not None
    children = service.submit_children(claim, [new_spec(owner="ana", params={"i": i}) for i in range(5)])
    assert children is not None
    assert len(children) == 5
    with pytest.raises(QuotaExceeded):
        service.submit(new_spec(owner="ana", params={"other": 1}))


def test_the_running_quota_skips_an_owner_at_its_limit(
    service: JobService, users: UserService, new_spec: SpecFactory
) -> None:
    users.add_user("ana", max_running=1)
    users.add_user("bob")  # a row without limits
    ana = [service.submit(new_spec(owner="ana", params={"i": i})).id for i in range(3)]
    bob = service.submit(new_spec(owner="bob")).id
    first = service.claim("w1")
    assert first is not None
    assert first.job_id == ana[0]
    second = service.claim("w2")  # ana is at her limit: bob's job, though ana's are older
    assert second is not None
    assert second.job_id == bob
    assert service.claim("w3") is None  # only ana's jobs are queued, and she may not start another
    assert service.get(ana[1]).state is JobState.QUEUED
    assert service.finish(first, Outcome(state=JobState.SUCCEEDED))
    third = service.claim("w3")
    assert third is not None
    assert third.job_id == ana[1]
    users.set_quota("ana", max_running=None)
    fourth = service.claim("w4")
    assert fourth is not None
    assert fourth.job_id == ana[2]


def test_a_zero_running_quota_holds_every_job(service: JobService, users: UserService, new_spec: SpecFactory) -> None:
    users.add_user("ana", max_running=0)
    service.submit(new_spec(owner="ana"))
    assert service.claim("w1") is None


def test_concurrent_claims_never_pass_the_running_quota(
    db_url: str, service: JobService, users: UserService, new_spec: SpecFactory, tmp_path: Path, clock: FrozenClock
) -> None:
    users.add_user("ana", max_running=2)
    for i in range(20):
        service.submit(new_spec(owner="ana", params={"i": i}))
    workers = 6
    start = threading.Barrier(workers)
    taken: list[str] = []
    errors: list[BaseException] = []

    def work(name: str) -> None:
        db = Database(db_url, busy_timeout_ms=30_000)
        jobs = JobService(db, ObjectStore(str(tmp_path / "objects")), clock=clock)
        try:
            start.wait()
            for _ in range(3):
                try:
                    claim = jobs.claim(name)
                except DatabaseUnavailable:
                    continue
                if claim is not None:
                    taken.append(claim.job_id)
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert 1 <= len(taken) <= 2  # a claim that finds ana's row locked by another claim skips her
    while service.claim("late") is not None:
        pass
    assert len(service.list(state=JobState.RUNNING).items) == 2
