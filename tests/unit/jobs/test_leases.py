"""Claims, leases, the reaper and attempt fencing: a stale worker can change nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from quantfleet.jobs import ArtifactIn, Claim, JobId, JobService, JobSpec, JobState, Outcome
from quantfleet.testing import FrozenClock

SpecFactory = Callable[..., JobSpec]


def _claim(service: JobService, worker: str = "w1") -> Claim:
    claim = service.claim(worker)
    assert claim is not None
    return claim


def test_claim_takes_priority_then_submission_order(service: JobService, new_spec: SpecFactory) -> None:
    low = service.submit(new_spec())
    high = service.submit(new_spec(priority=5))
    low2 = service.submit(new_spec())
    order = [_claim(service).job_id for _ in range(3)]
    assert order == [high.id, low.id, low2.id]
    assert service.claim("w1") is None
    assert service.queue_depth() == 0


def test_claim_starts_attempt_one_with_a_lease(service: JobService, new_spec: SpecFactory, clock: FrozenClock) -> None:
    spec = new_spec()
    job = service.submit(spec)
    claim = _claim(service, "host/slot-0")
    assert (claim.job_id, claim.attempt, claim.spec, claim.worker) == (job.id, 1, spec, "host/slot-0")
    assert claim.lease_expires == clock.now() + timedelta(seconds=30)
    running = service.get(job.id)
    assert (running.state, running.attempt, running.worker, running.started_at) == (
        JobState.RUNNING,
        1,
        "host/slot-0",
        clock.now(),
    )
    [attempt] = service.attempts(job.id)
    assert (attempt.number, attempt.state, attempt.worker) == (1, "running", "host/slot-0")


def test_heartbeat_renews_the_lease(service: JobService, new_spec: SpecFactory, clock: FrozenClock) -> None:
    job = service.submit(new_spec())
    claim = _claim(service)
    clock.advance(20)
    beat = service.heartbeat(claim)
    assert beat.ok
    assert beat.lease_expires == clock.now() + timedelta(seconds=30)
    clock.advance(20)  # 40 s after the claim, 20 s after the heartbeat: still leased
    assert service.reap() == []
    assert service.get(job.id).state is JobState.RUNNING
    assert service.attempts(job.id)[0].heartbeat_at == clock.now() - timedelta(seconds=20)


def test_finish_records_outcome_metrics_and_artifacts_in_one_go(
    service: JobService, new_spec: SpecFactory, clock: FrozenClock
) -> None:
    job = service.submit(new_spec())
    claim = _claim(service)
    art = service.put_artifact(claim, "metrics.json", b'{"sharpe": 1.5}')
    clock.advance(60)
    assert service.finish(claim, Outcome(state=JobState.SUCCEEDED, metrics={"sharpe": 1.5}, artifacts=[art]))
    done = service.get(job.id)
    assert (done.state, done.metrics, done.finished_at, done.lease_expires_at) == (
        JobState.SUCCEEDED,
        {"sharpe": 1.5},
        clock.now(),
        None,
    )
    [recorded] = service.artifacts(job.id)
    assert (recorded.name, recorded.size, recorded.attempt, recorded.sha256) == ("metrics.json", 15, 1, art.sha256)
    assert service.artifact_bytes(job.id, "metrics.json") == b'{"sharpe": 1.5}'
    assert service.attempts(job.id)[0].state == "succeeded"
    # Finishing twice is stale: the job has ended.
    assert not service.finish(claim, Outcome(state=JobState.FAILED, error="late"))
    assert service.get(job.id).state is JobState.SUCCEEDED
    assert not service.heartbeat(claim).ok


def test_a_failed_finish_writes_nothing(
    service: JobService, new_spec: SpecFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = service.submit(new_spec())
    claim = _claim(service)
    art = service.put_artifact(claim, "a.txt", b"a")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the connection dropped after the updates")

    # The audit-log insert is the last write of finish: failing there must undo the others.
    monkeypatch.setattr("quantfleet.jobs._worker.add_event", broken)
    with pytest.raises(RuntimeError, match="dropped"):
        service.finish(claim, Outcome(state=JobState.SUCCEEDED, metrics={"x": 1}, artifacts=[art]))
    monkeypatch.undo()
    after = service.get(job.id)
    assert (after.state, after.metrics, after.finished_at) == (JobState.RUNNING, None, None)
    assert service.artifacts(job.id) == []
    assert service.attempts(job.id)[0].state == "running"
    assert [e.event for e in service.events(job.id)] == ["submitted", "claimed"]
    assert service.finish(claim, Outcome(state=JobState.SUCCEEDED, metrics={"x": 1}, artifacts=[art]))


def test_outcome_refuses_bad_states_and_duplicate_artifacts() -> None:
    with pytest.raises(ValueError, match="cannot finish as 'queued'"):
        Outcome(state=JobState.QUEUED)
    art = ArtifactIn(name="a", url="u", size=1, sha256="0" * 64)
    with pytest.raises(ValueError, match="given twice: a"):
        Outcome(state=JobState.SUCCEEDED, artifacts=[art, art])


def test_user_error_fails_without_retry(service: JobService, new_spec: SpecFactory) -> None:
    job = service.submit(new_spec())
    claim = _claim(service)
    assert service.finish(claim, Outcome(state=JobState.FAILED, error="ZeroDivisionError in on_bar, sma.py:12"))
    failed = service.get(job.id)
    assert (failed.state, failed.error) == (JobState.FAILED, "ZeroDivisionError in on_bar, sma.py:12")
    assert service.claim("w2") is None


def test_expired_lease_is_reaped_and_the_stale_worker_is_fenced(
    service: JobService, new_spec: SpecFactory, clock: FrozenClock, tmp_path: Path, notified: list[JobId]
) -> None:
    job = service.submit(new_spec())
    stale = _claim(service, "w-old")
    stale_art = service.put_artifact(stale, "metrics.json", b"{}")
    clock.advance(30)
    assert service.reap() == []  # expiry is strict: at exactly the lease end the job is still leased
    clock.advance(0.001)
    assert service.reap() == [job.id]
    assert notified == [job.id, job.id]  # re-queued: the dispatcher is told again
    requeued = service.get(job.id)
    assert (requeued.state, requeued.attempt, requeued.worker) == (JobState.QUEUED, 1, None)
    fresh = _claim(service, "w-new")
    assert fresh.attempt == 2

    # The old worker wakes up: everything it tries is refused, nothing changes.
    assert service.heartbeat(stale).ok is False
    assert not service.finish(stale, Outcome(state=JobState.SUCCEEDED, metrics={"old": 1}, artifacts=[stale_art]))
    assert not service.release(stale, reason="late")
    current = service.get(job.id)
    assert (current.state, current.attempt, current.worker, current.metrics) == (JobState.RUNNING, 2, "w-new", None)
    assert service.artifacts(job.id) == []
    assert not (tmp_path / "objects" / "artifacts" / job.id / "1").exists()  # its upload is discarded

    art = service.put_artifact(fresh, "metrics.json", b'{"new": 1}')
    assert service.finish(fresh, Outcome(state=JobState.SUCCEEDED, metrics={"new": 1}, artifacts=[art]))
    assert [a.attempt for a in service.artifacts(job.id)] == [2]
    assert service.get(job.id).metrics == {"new": 1}
    assert [(a.number, a.state, a.worker) for a in service.attempts(job.id)] == [
        (1, "lost", "w-old"),
        (2, "succeeded", "w-new"),
    ]
    events = [(e.event, e.from_state, e.to_state, e.attempt) for e in service.events(job.id)]
    assert events == [
        ("submitted", None, JobState.QUEUED, None),
        ("claimed", JobState.QUEUED, JobState.RUNNING, 1),
        ("lease_expired", JobState.RUNNING, JobState.QUEUED, 1),
        ("claimed", JobState.QUEUED, JobState.RUNNING, 2),
        ("finished", JobState.RUNNING, JobState.SUCCEEDED, 2),
    ]


def test_dead_after_three_lost_attempts_each_kept(
    service: JobService, new_spec: SpecFactory, clock: FrozenClock
) -> None:
    job = service.submit(new_spec())
    for number in (1, 2, 3):
        claim = _claim(service, f"w{number}")
        assert claim.attempt == number
        clock.advance(31)
        assert service.reap() == [job.id]
    dead = service.get(job.id)
    assert (dead.state, dead.reason) == (JobState.DEAD, "infrastructure")
    assert dead.error is not None
    assert "failed 3 times" in dead.error
    assert dead.finished_at == clock.now()
    assert service.claim("w4") is None
    assert [(a.number, a.state, a.worker) for a in service.attempts(job.id)] == [
        (1, "lost", "w1"),
        (2, "lost", "w2"),
        (3, "lost", "w3"),
    ]
    assert service.events(job.id)[-1].to_state is JobState.DEAD


def test_release_requeues_then_dies(service: JobService, new_spec: SpecFactory, notified: list[JobId]) -> None:
    job = service.submit(new_spec())
    for number in (1, 2, 3):
        claim = _claim(service)
        assert service.release(claim, reason=f"data cache unavailable ({number})")
        assert service.get(job.id).state is (JobState.QUEUED if number < 3 else JobState.DEAD)
    assert notified == [job.id, job.id, job.id]  # submit, then two re-queues; no notice for the dead job
    assert [a.state for a in service.attempts(job.id)] == ["released"] * 3
    assert service.attempts(job.id)[2].error == "data cache unavailable (3)"
    assert "data cache unavailable (3)" in (service.get(job.id).error or "")


def test_lost_worker_of_a_cancelled_job_ends_it_cancelled(
    service: JobService, new_spec: SpecFactory, clock: FrozenClock
) -> None:
    job = service.submit(new_spec())
    _claim(service)
    service.cancel(job.id, by="ana")
    clock.advance(31)
    assert service.reap() == [job.id]
    assert service.get(job.id).state is JobState.CANCELLED
    assert service.claim("w2") is None


def test_max_attempts_is_a_setting(db_url: str, tmp_path: Path, new_spec: SpecFactory, service: JobService) -> None:
    once = JobService(service.db, service.objects, clock=service.clock, max_attempts=1, lease_seconds=5)
    job = once.submit(new_spec())
    claim = once.claim("w1")
    assert claim is not None
    assert once.release(claim, reason="disk full")
    assert once.get(job.id).state is JobState.DEAD


def test_counts_by_state_and_finished_since_see_what_metrics_need(
    service: JobService, new_spec: SpecFactory, clock: FrozenClock
) -> None:
    for _ in range(3):
        service.submit(new_spec())
    first = _claim(service)
    _claim(service)
    before = clock.now()
    clock.advance(5)
    assert service.finish(first, Outcome(state=JobState.SUCCEEDED))
    counts = service.counts_by_state()
    assert counts[JobState.QUEUED] == 1
    assert counts[JobState.RUNNING] == 1
    assert counts[JobState.SUCCEEDED] == 1
    assert counts[JobState.DEAD] == 0  # every state is there, zeros included
    assert [j.id for j in service.finished_since(before)] == [first.job_id]
    assert service.finished_since(clock.now()) == []


def test_a_graceful_release_does_not_use_up_a_retry(
    service: JobService, new_spec: SpecFactory, notified: list[JobId]
) -> None:
    job = service.submit(new_spec())
    for _ in range(5):  # more shutdowns than max_attempts
        claim = _claim(service)
        assert service.release(claim, reason="the worker shut down", penalty=False)
        assert service.get(job.id).state is JobState.QUEUED
    assert [a.state for a in service.attempts(job.id)] == ["interrupted"] * 5  # the history stays truthful
    assert "not counted against max_attempts" in (service.events(job.id)[-1].detail or "")
    for number in (1, 2, 3):  # infrastructure failures still count, all three of them
        assert service.release(_claim(service), reason=f"disk full ({number})")
    assert service.get(job.id).state is JobState.DEAD
    assert service.get(job.id).attempt == 8
    assert notified == [job.id] * 8  # submit, then 7 re-queues


def test_a_dead_job_names_how_to_read_its_log_and_rerun_it(service: JobService, new_spec: SpecFactory) -> None:
    job = service.submit(new_spec())
    for _ in range(3):
        assert service.release(_claim(service), reason="disk full")
    error = service.get(job.id).error or ""
    assert "failed 3 times" in error
    assert f"quantfleet jobs logs {job.id} --attempt 3" in error
    assert f"quantfleet jobs rerun {job.id}" in error
