"""Claims are atomic: four workers (threads, each with its own connections) take 200 jobs, each exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from quantfleet.jobs import Claim, JobId, JobService, JobSpec, JobState, Outcome
from quantfleet.store import Database, DatabaseUnavailable, ObjectStore
from quantfleet.testing import FrozenClock

SpecFactory = Callable[..., JobSpec]
JOBS = 200
WORKERS = 4


def test_every_job_is_claimed_exactly_once(
    db_url: str, service: JobService, new_spec: SpecFactory, tmp_path: Path, clock: FrozenClock
) -> None:
    specs = [new_spec(params={"i": i}, priority=i % 3) for i in range(JOBS)]
    submitted = {service.submit(spec).id for spec in specs}
    claimed: dict[str, list[tuple[JobId, int]]] = {f"w{i}": [] for i in range(WORKERS)}
    start = threading.Barrier(WORKERS)
    # Every worker holds its first claim until all four hold one: the claims provably
    # overlap, instead of relying on the scheduler to interleave threads (one thread
    # could take all 200 jobs on a loaded machine).
    holding = threading.Barrier(WORKERS, timeout=60)
    errors: list[BaseException] = []

    def work(name: str) -> None:
        # Each worker has its own engine (own connections), as separate processes would.
        db = Database(db_url, busy_timeout_ms=30_000)
        jobs = JobService(db, ObjectStore(str(tmp_path / "objects")), clock=clock)
        try:
            start.wait()
            while True:
                try:
                    claim = jobs.claim(name)
                except DatabaseUnavailable:  # a lock held too long: back off and retry, as a worker does
                    continue
                if claim is None:
                    return
                claimed[name].append((claim.job_id, claim.attempt))
                if len(claimed[name]) == 1:
                    holding.wait()
                assert jobs.finish(claim, Outcome(state=JobState.SUCCEEDED))
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=work, args=(name,)) for name in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    everything = [job_id for got in claimed.values() for job_id, _ in got]
    counts = Counter(everything)
    assert len(everything) == JOBS
    assert set(counts) == submitted
    assert max(counts.values()) == 1
    assert all(attempt == 1 for got in claimed.values() for _, attempt in got)
    assert all(claimed.values()), "every worker held a claim while the others did"
    assert service.queue_depth() == 0
    assert len(service.list(state=JobState.SUCCEEDED, limit=1000).items) == JOBS


def test_a_withdrawal_racing_a_claim_either_takes_the_job_back_or_leaves_it_running(
    db_url: str, service: JobService, new_spec: SpecFactory, tmp_path: Path, clock: FrozenClock
) -> None:
    """The API withdraws a job whose publish failed; a worker may claim it at that very moment.

    Exactly one of the two wins each time: a claimed job is never also cancelled
    (the API would answer 503 for a job that runs, and the client's retry run it again).
    """
    db = Database(db_url, busy_timeout_ms=30_000)
    worker = JobService(db, ObjectStore(str(tmp_path / "objects")), clock=clock)
    try:
        for round_ in range(20):
            job = service.submit(new_spec(params={"round": round_}))
            start = threading.Barrier(2, timeout=30)
            claims: list[Claim | None] = []

            def claim(start: threading.Barrier, claims: list[Claim | None]) -> None:
                start.wait()
                claims.append(worker.claim("w1"))

            thread = threading.Thread(target=claim, args=(start, claims))
            thread.start()
            start.wait()
            withdrawn = service.withdraw(job.id, by="api", reason="the broker is down")
            thread.join(30)
            after = service.get(job.id)
            [got] = claims
            assert withdrawn is (got is None), (withdrawn, got)
            if got is not None:
                assert (after.state, after.cancel_requested_at) == (JobState.RUNNING, None)
                assert worker.finish(got, Outcome(state=JobState.SUCCEEDED))
            else:
                assert after.state is JobState.CANCELLED
    finally:
        db.dispose()
