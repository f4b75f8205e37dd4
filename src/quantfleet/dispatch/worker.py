"""The local worker: N slots that claim jobs and run each in a child process.

One loop claims on behalf of idle slots (so an idle worker asks the database
once per ``poll_seconds``, not once per slot) and hands each claim to a slot
thread, which runs the attempt (:mod:`quantfleet.dispatch.execute`). A job
queued by this process wakes the loop at once (:meth:`Worker.wake` is the job
service's ``notify`` hook); a job queued by another process is seen within
``poll_seconds`` (50 ms by default, so submit-to-running stays well under
100 ms on the local pool).

A sweep job fans out: its first attempt lists the combinations in a child
process, submits one child job per combination, and then waits *without a
slot*: the loop renews its lease and re-checks it as children finish; when
none is pending, one short child ranks them (leaderboard.parquet,
report.html) and the parent finishes. Optimizer and walk-forward sweeps are
sequential and run whole in one slot.

The loop also re-queues jobs whose workers vanished (``reap``, every
``reap_seconds``). Step mode for tests: :meth:`Worker.run_until_empty`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from quantfleet.core.errors import InfrastructureError, UserError
from quantfleet.dispatch.execute import Attempt, Ending, backtest_json, fans_out, retry, sweep_request
from quantfleet.dispatch.launcher import ChildLauncher
from quantfleet.dispatch.task import CHILDREN_FILE, DataRef, TaskKind, read_result
from quantfleet.jobs import Claim, JobId, JobKind, JobService, JobSpec, JobState, Outcome
from quantfleet.jobs.errors import DatabaseUnavailable, ParentNotActive

__all__ = ["Worker", "WorkerConfig", "default_worker_name"]

log = logging.getLogger(__name__)


def default_worker_name() -> str:
    """Return ``host/pid``: unique among the fleet's live workers."""
    return f"{socket.gethostname()}/{os.getpid()}"


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    """How a worker runs: slots, where children work, how often it polls and beats."""

    data: DataRef
    work_root: Path
    name: str = field(default_factory=default_worker_name)
    slots: int = field(default_factory=lambda: os.cpu_count() or 1)
    poll_seconds: float = 0.05
    lease_seconds: float = 30.0
    max_beat_seconds: float = 0.5  # cancel is seen within this (plus the 1 s kill grace): well under 2 s
    reap_seconds: float | None = None  # default: lease / 2
    kill_grace: float = 1.0
    keep_work: bool = False

    @property
    def heartbeat_seconds(self) -> float:
        """Return the heartbeat interval: a third of the lease, at most ``max_beat_seconds``."""
        return min(self.lease_seconds / 3, self.max_beat_seconds)


@dataclass
class _Parent:
    claim: Claim
    next_beat: float
    gathering: bool = False


class Worker:
    """Claim jobs and run them on ``config.slots`` slots, each job in a child process."""

    def __init__(self, service: JobService, config: WorkerConfig, *, launcher: ChildLauncher) -> None:
        self.service = service
        self.config = config
        self.launcher = launcher
        self._pool = ThreadPoolExecutor(max_workers=config.slots, thread_name_prefix="quantfleet-slot")
        self._running: dict[Future[None], Claim] = {}
        self._parents: dict[JobId, _Parent] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop_claiming = threading.Event()
        self._shutdown = threading.Event()  # kill running children and release their jobs
        self._next_reap = 0.0
        self._only: set[JobId] | None = None  # run only these jobs (and their sweep children): run_jobs
        self.completed = 0
        config.work_root.mkdir(parents=True, exist_ok=True)

    # -- hooks ----------------------------------------------------------------------------------

    def wake(self, job_id: JobId | None = None) -> None:
        """Wake the claim loop now (the job service's ``notify`` hook for jobs queued in this process)."""
        self._wake.set()

    @property
    def busy(self) -> int:
        """Return how many slots run an attempt."""
        with self._lock:
            return len(self._running)

    # -- the loop -------------------------------------------------------------------------------

    def tick(self) -> bool:
        """Claim for idle slots, tend waiting sweep parents, reap lost jobs; return whether a job was claimed.

        No step's failure ends the worker: a poison job, a bug or a database
        hiccup is logged, and the next tick tries again.
        """
        now = time.monotonic()
        if now >= self._next_reap:
            self._next_reap = now + (self.config.reap_seconds or self.config.lease_seconds / 2)
            try:
                self.service.reap()
            except DatabaseUnavailable:
                pass  # the database is locked or restarting: reap on a later tick
            except Exception:
                log.exception("reaping lost jobs failed; trying again in %g s", self.config.lease_seconds / 2)
        try:
            self._tend_parents()
        except Exception:
            log.exception("tending the waiting sweeps failed; trying again on the next tick")
        claimed = False
        while not self._stop_claiming.is_set() and self.busy < self.config.slots:
            try:
                claim = self._claim_next()
            except DatabaseUnavailable:
                break  # the database is locked or restarting: try again on the next tick
            except Exception:
                log.exception("claiming a job failed; trying again on the next tick")
                break
            if claim is None:
                break
            claimed = True
            self._start(claim, self._execute)
        return claimed

    def _claim_next(self) -> Claim | None:
        """Return the next claim: any queued job, or only the jobs this worker was told to run."""
        if self._only is None:
            return self.service.claim(self.config.name)
        for job_id in list(self._only):
            claim = self.service.claim_job(self.config.name, job_id)
            if claim is not None:
                return claim
        return None

    def _start(self, claim: Claim, target: Any) -> None:
        with self._lock:
            future = self._pool.submit(target, claim)
            self._running[future] = claim
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._running.pop(future, None)
        if future.exception() is not None:
            log.error("a worker slot failed", exc_info=future.exception())
        self._wake.set()

    def serve(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set (then :meth:`shutdown` decides what happens to running jobs)."""
        while not stop.is_set():
            if not self.tick():
                self._wake.wait(self.config.poll_seconds)
                self._wake.clear()

    def run_until_empty(self, *, timeout: float = 300.0) -> int:
        """Step mode: claim and run jobs (children, sweeps) until none is queued, running or waiting.

        Return how many attempts ended here. Raise TimeoutError after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        before = self.completed
        while True:
            claimed = self.tick()
            with self._lock:
                idle = not self._running and not self._parents
            if idle and not claimed:
                try:
                    if self.service.queue_depth() == 0:
                        return self.completed - before
                except DatabaseUnavailable:
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs still queued or running after {timeout:g} s")
            if not claimed:
                self._wake.wait(self.config.poll_seconds)
                self._wake.clear()

    def run_jobs(self, job_ids: list[JobId], *, timeout: float = 300.0) -> int:
        """Step mode for ``--local``: run only these jobs (and a sweep's children) until each has ended.

        Other queued jobs (other users', other submissions) are left to the
        pool. Return how many attempts ended here; raise TimeoutError after
        ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        before = self.completed
        self._only = set(job_ids)
        try:
            while True:
                claimed = self.tick()
                with self._lock:
                    idle = not self._running and not self._parents
                if idle and not claimed:
                    try:
                        if self._all_ended(job_ids):
                            return self.completed - before
                    except DatabaseUnavailable:
                        pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"jobs still queued or running after {timeout:g} s")
                if not claimed:
                    self._wake.wait(self.config.poll_seconds)
                    self._wake.clear()
        finally:
            self._only = None

    def _all_ended(self, job_ids: list[JobId]) -> bool:
        """Return whether every job has ended; add a sweep's queued children to the jobs to run."""
        assert self._only is not None
        ended = True
        for job_id in job_ids:
            job = self.service.get(job_id)
            ended = ended and job.terminal
            if job.kind != JobKind.BACKTEST.value:
                children = self.service.children(job_id)
                self._only.update(JobId(c.id) for c in children if not c.terminal)
                ended = ended and all(c.terminal for c in children)
        return ended

    def abandon(self) -> None:
        """Kill running children now and re-queue their jobs (a second Ctrl-C)."""
        self._stop_claiming.set()
        self._shutdown.set()

    def shutdown(self, *, grace: float = 30.0) -> None:
        """Stop claiming; let running jobs finish for up to ``grace`` seconds, then kill and re-queue the rest."""
        self._stop_claiming.set()
        deadline = time.monotonic() + grace
        while self.busy and time.monotonic() < deadline and not self._shutdown.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
        self._shutdown.set()
        self._pool.shutdown(wait=True)
        for parent in list(self._parents.values()):
            with contextlib.suppress(InfrastructureError):
                release = functools.partial(
                    self.service.release, parent.claim, reason="the worker shut down", penalty=False
                )
                retry(release, seconds=5)
        self._parents.clear()
        self.launcher.close()

    # -- one attempt ----------------------------------------------------------------------------

    def _attempt(self, claim: Claim) -> Attempt:
        return Attempt(
            self.service,
            claim,
            launcher=self.launcher,
            work_root=self.config.work_root,
            data=self.config.data,
            heartbeat_every=self.config.heartbeat_seconds,
            kill_grace=self.config.kill_grace,
            shutdown=self._shutdown,
            keep_work=self.config.keep_work,
        )

    def _execute(self, claim: Claim) -> None:
        attempt = self._attempt(claim).begin()
        try:
            spec = claim.spec
            if spec.kind is JobKind.BACKTEST:
                end = attempt.run(TaskKind.BACKTEST, backtest_json(spec))
                attempt.record(end)
            elif fans_out(sweep_request(spec)):
                self._expand(attempt)
            else:
                attempt.record(attempt.run(TaskKind.SWEEP, sweep_request(spec)))
        except BaseException as exc:
            self._end_badly(attempt, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            attempt.end()
            attempt.cleanup()
            with self._lock:
                self.completed += 1

    def _end_badly(self, attempt: Attempt, exc: BaseException) -> None:
        """End an attempt that raised: a user error fails the job, anything else gives the attempt back."""
        claim = attempt.claim
        if isinstance(exc, InfrastructureError):
            log.warning("job %s attempt %s: %s", claim.job_id, claim.attempt, exc)
            with contextlib.suppress(Exception):
                attempt.release(f"the worker could not run the job: {exc}")  # stale (already released): no-op
            return
        if isinstance(exc, UserError | ValidationError | KeyError):  # the job's own spec or output is wrong
            message = str(exc) if isinstance(exc, UserError) else f"the job's spec is invalid: {exc!r}"
            log.info("job %s attempt %s failed: %s", claim.job_id, claim.attempt, message)
            try:
                attempt.fail(message)
                return
            except Exception:
                log.exception("job %s: could not record its failure; releasing it", claim.job_id)
        else:
            log.exception("job %s attempt %s: the worker failed", claim.job_id, claim.attempt, exc_info=exc)
        with contextlib.suppress(Exception):
            attempt.release(f"the worker failed while running the job: {type(exc).__name__}: {exc}")

    # -- sweeps as jobs ---------------------------------------------------------------------------

    def _expand(self, attempt: Attempt) -> None:
        claim = attempt.claim
        end = attempt.run(TaskKind.EXPAND, sweep_request(claim.spec))
        result = read_result(attempt.work) if end.ending is Ending.EXITED and end.code == 0 else None
        if result is None or result.combos is None:
            attempt.record(end)  # failed, timed out, cancelled or released, as any attempt
            return
        base = claim.spec
        children = [
            JobSpec.model_validate({**base.model_dump(), "kind": JobKind.BACKTEST, "sweep": None,
                                    "params": {**base.params, **combo}, "parent": None})
            for combo in result.combos
        ]  # fmt: skip
        try:
            jobs = retry(lambda: self.service.submit_children(claim, children), stop=self._shutdown)
        except ParentNotActive:  # cancelled while expanding: no children, and the sweep ends cancelled
            attempt.finish(Outcome(state=JobState.CANCELLED, error="cancelled before its children were queued"))
            return
        if jobs is None:  # stale: the lease expired and another attempt owns the sweep now
            return
        with self._lock:
            only = self._only
            if only is not None and claim.job_id in only:
                only.update(JobId(j.id) for j in jobs)  # run_jobs: a sweep's children are its own
            self._parents[claim.job_id] = _Parent(claim, time.monotonic() + self.config.heartbeat_seconds)
        self._wake.set()

    def _tend_parents(self) -> None:
        now = time.monotonic()
        for job_id, parent in list(self._parents.items()):
            if parent.gathering:
                continue
            try:
                if now >= parent.next_beat:
                    parent.next_beat = now + self.config.heartbeat_seconds
                    beat = self.service.heartbeat(parent.claim)
                    if not beat.ok:
                        self._parents.pop(job_id, None)
                        continue
                    if beat.cancel_requested:
                        self._parents.pop(job_id, None)
                        retry(functools.partial(self.service.finish, parent.claim, Outcome(state=JobState.CANCELLED)))
                        continue
                pending = self.service.children_pending(job_id)
            except DatabaseUnavailable:
                continue
            if pending == 0 and self.busy < self.config.slots:
                parent.gathering = True
                self._start(parent.claim, self._gather)

    def _gather(self, claim: Claim) -> None:
        attempt = self._attempt(claim).begin()
        try:
            children = retry(lambda: self.service.children(claim.job_id))
            rows = [
                {"index": i, "params": c.spec.params, "metrics": c.metrics, "state": c.state.value, "job_id": c.id}
                for i, c in enumerate(children)
            ]
            if children and not any(c.state is JobState.SUCCEEDED for c in children):
                first = children[0]
                attempt.finish(
                    Outcome(
                        state=JobState.FAILED,
                        error=f"every combination failed; the first ({first.id}) with: {first.error}",
                    )
                )
                return
            attempt.record(attempt.run(TaskKind.GATHER, sweep_request(claim.spec), extra={CHILDREN_FILE: rows}))
        except BaseException as exc:
            self._end_badly(attempt, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            attempt.end()
            with self._lock:
                self._parents.pop(claim.job_id, None)
            attempt.cleanup()
            with self._lock:
                self.completed += 1
