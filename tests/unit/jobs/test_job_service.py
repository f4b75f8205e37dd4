"""Submitting, reading, cancelling, idempotency and code: the job service on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from quantfleet.core.errors import UserError
from quantfleet.jobs import (
    CodeNotFound,
    CodeRef,
    EndReason,
    IdempotencyConflict,
    IllegalTransition,
    JobId,
    JobKind,
    JobNotFound,
    JobService,
    JobSpec,
    JobState,
    Outcome,
)
from quantfleet.jobs.errors import ParentNotActive
from quantfleet.testing import FrozenClock

SpecFactory = Callable[..., JobSpec]


def test_submit_queues_and_notifies_after_commit(
    service: JobService, new_spec: SpecFactory, notified: list[JobId], clock: FrozenClock
) -> None:
    spec = new_spec()
    job = service.submit(spec)
    assert job.state is JobState.QUEUED
    assert job.attempt == 0
    assert job.submitted_at == clock.now()
    assert notified == [job.id]
    again = service.get(job.id)
    assert again == job
    assert again.spec == spec
    assert service.queue_depth() == 1
    [event] = service.events(job.id)
    assert (event.event, event.from_state, event.to_state, event.actor) == ("submitted", None, JobState.QUEUED, "ana")


def test_unknown_job_names_the_fix(service: JobService) -> None:
    for call in (service.get, service.events, service.attempts, service.artifacts, service.children):
        with pytest.raises(JobNotFound, match="quantfleet jobs ls"):
            call(JobId("0" * 32))


def test_code_is_stored_once_by_content(service: JobService, tmp_path: Path, code_bytes: bytes) -> None:
    first = service.put_code(code_bytes, "hold.py")
    second = service.put_code(code_bytes, "renamed.py", class_name="Hold")
    assert first.sha256 == second.sha256
    stored = list((tmp_path / "objects" / "code").iterdir())
    assert [p.name for p in stored] == [first.sha256]
    other = service.put_code(code_bytes + b"\n# v2\n", "hold.py")
    assert other.sha256 != first.sha256
    assert len(list((tmp_path / "objects" / "code").iterdir())) == 2


def test_code_of_a_job_round_trips(service: JobService, new_spec: SpecFactory, code_bytes: bytes) -> None:
    job = service.submit(new_spec())
    assert service.code(job.id) == code_bytes


def test_submit_refuses_code_never_uploaded(service: JobService, new_spec: SpecFactory) -> None:
    ghost = CodeRef(sha256="f" * 64, name="ghost.py")
    with pytest.raises(CodeNotFound, match=r"ghost\.py.*put_code"):
        service.submit(new_spec(code=ghost))
    assert service.queue_depth() == 0


def test_idempotency_same_spec_returns_the_original(
    service: JobService, new_spec: SpecFactory, notified: list[JobId]
) -> None:
    first = service.submit(new_spec(), idempotency_key="k-1")
    # Key order in dicts does not make a different spec.
    second = service.submit(new_spec(params={"slow": 30, "fast": 10}), idempotency_key="k-1")
    assert second.id == first.id
    assert notified == [first.id]
    assert service.list().items == [first]
    # The key is per owner: another owner's key is another job.
    other = service.submit(new_spec(owner="ben"), idempotency_key="k-1")
    assert other.id != first.id


def test_idempotency_different_spec_is_refused_naming_the_job(service: JobService, new_spec: SpecFactory) -> None:
    first = service.submit(new_spec(), idempotency_key="k-1")
    with pytest.raises(IdempotencyConflict, match=first.id) as caught:
        service.submit(new_spec(snapshot=4), idempotency_key="k-1")
    assert isinstance(caught.value, UserError)
    assert caught.value.job_id == first.id
    assert len(service.list().items) == 1


def test_list_filters_and_pages_newest_first(service: JobService, new_spec: SpecFactory, clock: FrozenClock) -> None:
    ids = []
    for i in range(7):
        ids.append(service.submit(new_spec(owner="ana" if i % 2 else "ben")).id)
        clock.advance(1)
    page = service.list(limit=3)
    assert [j.id for j in page.items] == ids[::-1][:3]
    seen = [j.id for j in page.items]
    while page.next_cursor:
        page = service.list(limit=3, cursor=page.next_cursor)
        seen += [j.id for j in page.items]
    assert seen == ids[::-1]
    assert [j.id for j in service.list(owner="ana").items] == [ids[5], ids[3], ids[1]]
    service.cancel(ids[0], by="ben")
    assert [j.id for j in service.list(state=JobState.CANCELLED).items] == [ids[0]]
    assert len(service.list(state=[JobState.QUEUED, JobState.CANCELLED]).items) == 7
    with pytest.raises(UserError, match="cursor"):
        service.list(cursor="x")


def test_cancel_queued_is_immediate_and_recorded(
    service: JobService, new_spec: SpecFactory, clock: FrozenClock
) -> None:
    job = service.submit(new_spec())
    clock.advance(5)
    cancelled = service.cancel(job.id, by="ben")
    assert cancelled.state is JobState.CANCELLED
    assert (cancelled.cancelled_by, cancelled.cancel_requested_at, cancelled.finished_at) == (
        "ben",
        clock.now(),
        clock.now(),
    )
    assert service.claim("w1") is None
    assert service.cancel(job.id, by="carl").cancelled_by == "ben"  # cancelling again changes nothing
    last = service.events(job.id)[-1]
    assert (last.event, last.from_state, last.to_state, last.actor, last.at) == (
        "cancelled",
        JobState.QUEUED,
        JobState.CANCELLED,
        "ben",
        clock.now(),
    )


def test_cancel_running_is_a_request_seen_on_heartbeat(
    service: JobService, new_spec: SpecFactory, clock: FrozenClock
) -> None:
    job = service.submit(new_spec())
    claim = service.claim("w1")
    assert claim is not None
    assert service.heartbeat(claim).cancel_requested is False
    clock.advance(3)
    requested = service.cancel(job.id, by="ben")
    assert requested.state is JobState.RUNNING
    assert (requested.cancelled_by, requested.cancel_requested_at) == ("ben", clock.now())
    beat = service.heartbeat(claim)
    assert beat.ok
    assert beat.cancel_requested
    assert service.finish(claim, Outcome(state=JobState.CANCELLED, error="cancelled by ben"))
    done = service.get(job.id)
    assert done.state is JobState.CANCELLED
    assert done.cancelled_by == "ben"
    assert [e.event for e in service.events(job.id)] == ["submitted", "claimed", "cancel_requested", "finished"]


def test_cancel_of_an_ended_job_names_the_states(service: JobService, new_spec: SpecFactory) -> None:
    job = service.submit(new_spec())
    claim = service.claim("w1")
    assert claim is not None
    service.finish(claim, Outcome(state=JobState.SUCCEEDED, metrics={"sharpe": 1.2}))
    with pytest.raises(IllegalTransition, match="'succeeded' to 'cancelled'"):
        service.cancel(job.id, by="ben")


def test_withdraw_cancels_only_a_job_no_worker_claimed(service: JobService, new_spec: SpecFactory) -> None:
    queued = service.submit(new_spec())
    assert service.withdraw(queued.id, by="api", reason="the broker is down")
    withdrawn = service.get(queued.id)
    assert (withdrawn.state, withdrawn.cancelled_by, withdrawn.reason) == (JobState.CANCELLED, "api", "withdrawn")
    assert service.events(queued.id)[-1].detail == "the broker is down"
    assert not service.withdraw(queued.id, by="api", reason="again")  # already withdrawn: nothing changes

    running = service.submit(new_spec(params={"fast": 1}))
    claim = service.claim("w1")
    assert claim is not None
    assert claim.job_id == running.id
    assert not service.withdraw(running.id, by="api", reason="the broker is down")
    kept = service.get(running.id)
    assert (kept.state, kept.cancel_requested_at) == (JobState.RUNNING, None)  # it runs on, not cancelled
    assert service.finish(claim, Outcome(state=JobState.SUCCEEDED))
    assert not service.withdraw(running.id, by="api", reason="the broker is down")  # ended: no error either
    assert (service.get(running.id).state, service.get(running.id).reason) == (JobState.SUCCEEDED, "completed")


def test_children_fan_out_once_and_report_progress(
    service: JobService, new_spec: SpecFactory, notified: list[JobId]
) -> None:
    parent = service.submit(new_spec(kind=JobKind.SWEEP, sweep={"grid": {"fast": [5, 10]}}))
    claim = service.claim_job("w1", parent.id)
    assert claim is not None
    specs = [new_spec(params={"fast": f, "slow": 30}) for f in (5, 10)]
    kids = service.submit_children(claim, specs)
    assert kids is not None
    assert [k.parent for k in kids] == [parent.id, parent.id]
    assert notified == [parent.id, *[k.id for k in kids]]
    # A retried parent attempt fans out again: the same children come back, nothing new is queued.
    assert [k.id for k in service.submit_children(claim, specs) or []] == [k.id for k in kids]
    with pytest.raises(IdempotencyConflict, match=parent.id):
        service.submit_children(claim, specs[:1])
    assert [k.id for k in service.children(parent.id)] == [k.id for k in kids]
    assert [j.id for j in service.list(parent=parent.id).items] == [k.id for k in kids][::-1]
    assert service.children_pending(parent.id) == 2
    service.cancel(kids[0].id, by="ana")
    assert service.children_pending(parent.id) == 1


def test_cancelling_a_sweep_cancels_its_children(service: JobService, new_spec: SpecFactory) -> None:
    parent = service.submit(new_spec(kind=JobKind.SWEEP, sweep={"grid": {"fast": [5, 10]}}))
    claim = service.claim("w1")
    assert claim is not None
    assert claim.job_id == parent.id
    kids = service.submit_children(claim, [new_spec(params={"fast": f}) for f in (5, 10)])
    assert kids is not None
    child_claim = service.claim("w2")
    assert child_claim is not None
    service.cancel(parent.id, by="ana")
    assert service.get(kids[1].id).state is JobState.CANCELLED
    assert service.get(kids[0].id).cancel_requested_at is not None
    assert service.heartbeat(child_claim).cancel_requested
    assert service.heartbeat(claim).cancel_requested


def test_a_cancelled_parent_takes_no_children(service: JobService, new_spec: SpecFactory) -> None:
    parent = service.submit(new_spec(kind=JobKind.SWEEP, sweep={"grid": {"fast": [5, 10]}}))
    claim = service.claim_job("w1", parent.id)
    assert claim is not None
    service.cancel(parent.id, by="ana")
    with pytest.raises(ParentNotActive, match=r"cancelled by ana.*finish its attempt as cancelled.*submit the sweep"):
        service.submit_children(claim, [new_spec()])
    assert service.children(parent.id) == []


def test_a_stale_parent_attempt_adds_no_children(
    service: JobService, new_spec: SpecFactory, clock: FrozenClock
) -> None:
    parent = service.submit(new_spec(kind=JobKind.SWEEP, sweep={"grid": {"fast": [5, 10]}}))
    stale = service.claim_job("w1", parent.id)
    assert stale is not None
    clock.advance(31)
    assert service.reap() == [parent.id]
    assert service.submit_children(stale, [new_spec()]) is None  # re-queued: the old attempt is fenced out
    current = service.claim_job("w2", parent.id)
    assert current is not None
    assert service.submit_children(stale, [new_spec()]) is None  # another attempt owns the sweep now
    assert service.children(parent.id) == []
    kids = service.submit_children(current, [new_spec()])
    assert kids is not None
    assert [k.parent for k in kids] == [parent.id]
    service.finish(current, Outcome(state=JobState.FAILED, error="boom"))
    assert service.submit_children(current, [new_spec()]) is None  # ended: fenced out too


def test_submit_refuses_a_spec_with_a_parent(service: JobService, new_spec: SpecFactory) -> None:
    parent = service.submit(new_spec())
    with pytest.raises(UserError, match=r"names parent .*only a running sweep adds children.*parent': None"):
        service.submit(new_spec(parent=parent.id))
    assert service.children(parent.id) == []


@pytest.mark.parametrize("how", ["failed", "timed_out", "cancelled", "released_dead", "reaped_dead", "cancel"])
def test_a_sweep_that_ends_badly_cancels_its_children(
    service: JobService, new_spec: SpecFactory, clock: FrozenClock, how: str
) -> None:
    jobs = JobService(service.db, service.objects, clock=clock, max_attempts=1, lease_seconds=30)
    parent = jobs.submit(new_spec(kind=JobKind.SWEEP, sweep={"grid": {"fast": [5, 10]}})).id
    claim = jobs.claim_job("w1", parent)
    assert claim is not None
    kids = jobs.submit_children(claim, [new_spec(params={"fast": f}) for f in (5, 10)])
    assert kids is not None
    running, queued = kids[0].id, kids[1].id
    clock.advance(20)
    assert jobs.claim_job("w2", running) is not None  # its lease outlives the parent's
    actor, ended = "w1", JobState.DEAD
    if how in ("failed", "timed_out", "cancelled"):
        ended = JobState(how)
        assert jobs.finish(claim, Outcome(state=ended, error="boom"))
    elif how == "released_dead":
        assert jobs.release(claim, reason="disk full")
    elif how == "reaped_dead":
        clock.advance(15)
        assert jobs.reap() == [parent]
        actor = "reaper"
    else:
        jobs.cancel(parent, by="ana")
        actor, ended = "ana", JobState.RUNNING  # a cancel request: the parent's worker ends it
    assert jobs.get(parent).state is ended
    detail = f"the parent sweep {parent} " + ("was cancelled" if how == "cancel" else f"ended {ended.value}")
    assert jobs.get(queued).state is JobState.CANCELLED
    assert jobs.get(queued).cancelled_by == actor
    assert jobs.get(running).state is JobState.RUNNING
    assert jobs.get(running).cancel_requested_at is not None
    for kid, event in ((queued, "cancelled"), (running, "cancel_requested")):
        last = jobs.events(kid)[-1]
        assert (last.event, last.actor, last.detail) == (event, actor, detail)
    assert jobs.children_pending(parent) == 1


def test_a_succeeded_sweep_leaves_its_children_alone(service: JobService, new_spec: SpecFactory) -> None:
    parent = service.submit(new_spec(kind=JobKind.SWEEP, sweep={"grid": {"fast": [5, 10]}})).id
    claim = service.claim_job("w1", parent)
    assert claim is not None
    kids = service.submit_children(claim, [new_spec()])
    assert kids is not None
    assert service.finish(claim, Outcome(state=JobState.SUCCEEDED))
    assert service.get(kids[0].id).state is JobState.QUEUED


def test_a_failing_dispatcher_does_not_undo_the_submission(
    db_url: str, service: JobService, new_spec: SpecFactory
) -> None:
    def down(job_id: JobId) -> None:
        raise ConnectionError("broker down")

    flaky = JobService(service.db, service.objects, clock=service.clock, notify=down)
    job = flaky.submit(new_spec())
    assert flaky.get(job.id).state is JobState.QUEUED
    claim = flaky.claim("w1")
    assert claim is not None
    assert claim.job_id == job.id


def test_a_unique_prefix_names_a_job(service: JobService, new_spec: SpecFactory) -> None:
    job = service.submit(new_spec())
    assert service.resolve(job.id[:8]) == job.id
    assert service.resolve(job.id.upper()) == job.id
    with pytest.raises(JobNotFound, match="no job"):
        service.resolve("0" * 8 if not job.id.startswith("0" * 8) else "f" * 8)
    with pytest.raises(JobNotFound, match="not a job id"):
        service.resolve("12ab")  # too short to be a prefix


def test_every_way_a_job_ends_records_why(service: JobService, new_spec: SpecFactory) -> None:
    reasons = {}
    for n, outcome in enumerate([
        Outcome(state=JobState.SUCCEEDED),
        Outcome(state=JobState.FAILED, error="ValueError: boom"),  # a failure's usual reason
        Outcome(state=JobState.FAILED, error="out of memory", reason=EndReason.MEMORY),
        Outcome(state=JobState.TIMED_OUT, error="over its CPU limit", reason=EndReason.CPU),
        Outcome(state=JobState.TIMED_OUT, error="over its wall-clock limit"),
    ]):  # fmt: skip
        job = service.submit(new_spec(params={"fast": n}))
        claim = service.claim("w1")
        assert claim is not None
        assert claim.job_id == job.id
        assert service.get(job.id).reason is None  # nothing yet while it runs
        assert service.finish(claim, outcome)
        reasons[n] = service.get(job.id).reason
    assert reasons == {0: "completed", 1: "error", 2: "memory", 3: "cpu", 4: "wall"}
    queued = service.submit(new_spec(params={"fast": 99}))
    service.cancel(queued.id, by="ben")
    assert service.get(queued.id).reason is EndReason.CANCELLED
    with pytest.raises(ValueError, match="'sideways' is not a valid EndReason"):
        Outcome(state=JobState.FAILED, reason="sideways")  # type: ignore[arg-type]
