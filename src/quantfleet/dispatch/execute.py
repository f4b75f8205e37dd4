"""Run one attempt of a job in a child process and record what happened.

The worker side of one attempt: write the task and the code into a private
work folder, launch the child, pump its output into the job's log, renew the
lease while it runs (killing the child's whole process tree when the job is
cancelled, the lease is lost or the wall-clock limit passes), then upload the
child's results and record the outcome, fenced by the attempt number:

========================================  ==============================================
the child                                 the job
========================================  ==============================================
exits 0                                   ``succeeded``, with metrics and artifacts
exits 2 (a user error)                    ``failed``, the message (user's traceback first)
passes the wall-clock or CPU limit        ``timed_out``
is cancelled                              ``cancelled`` (killed within a second or two)
dies otherwise (a signal, another code)   released: re-queued, ``dead`` after 3 attempts
loses its lease (the heartbeat is stale)  killed; results dropped, nothing recorded
========================================  ==============================================
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from quantfleet.core.errors import InfrastructureError
from quantfleet.dispatch.launcher import ChildLauncher, ChildProcess
from quantfleet.dispatch.limits import MIB, Limits
from quantfleet.dispatch.logs import LogPump
from quantfleet.dispatch.task import EXIT_OK, EXIT_USER, OUT_DIR, DataRef, Task, TaskKind, read_result
from quantfleet.jobs import ArtifactIn, Claim, JobService, JobSpec, JobState, Outcome
from quantfleet.jobs.errors import DatabaseUnavailable

__all__ = ["Attempt", "End", "Ending", "backtest_json", "fans_out", "limits_of", "retry", "sweep_request"]

T = TypeVar("T")


def retry(call: Callable[[], T], *, seconds: float = 60.0, stop: threading.Event | None = None) -> T:
    """Return ``call()``, retrying while the database is unavailable (locked, restarting) for up to ``seconds``."""
    deadline = time.monotonic() + seconds
    pause = 0.05
    while True:
        try:
            return call()
        except DatabaseUnavailable:
            if time.monotonic() + pause > deadline or (stop is not None and stop.is_set()):
                raise
            (stop or threading.Event()).wait(pause)
            pause = min(pause * 2, 1.0)


def backtest_json(spec: JobSpec) -> dict[str, Any]:
    """Return the job's backtest as the child's task holds it (a ``BacktestSpec`` in JSON)."""
    return {
        "strategy": spec.code.name,
        "class_name": spec.code.class_name,
        "symbols": list(spec.universe),
        "start": spec.start.isoformat() if spec.start else None,
        "end": spec.end.isoformat() if spec.end else None,
        "frequency": spec.frequency.value,
        "snapshot": spec.snapshot,
        "params": dict(spec.params),
        "engine": dict(spec.engine),
        "benchmark": spec.benchmark,
        "calendar": spec.calendar,
    }


def sweep_request(spec: JobSpec) -> dict[str, Any]:
    """Return a sweep job's request for :mod:`quantfleet.dispatch.fanout`."""
    settings = dict(spec.sweep or {})
    walk = None
    if spec.kind.value == "walk-forward":
        walk = {
            "train": settings.pop("train"),
            "test": settings.pop("test"),
            "anchored": settings.pop("anchored", False),
        }
    return {**settings, "backtest": backtest_json(spec), "walkforward": walk}


def fans_out(request: dict[str, Any]) -> bool:
    """Return whether a sweep becomes child jobs (grid, random draw) or runs whole in one child."""
    return request.get("walkforward") is None and request.get("method", "grid") in ("grid", "random")


def limits_of(spec: JobSpec, *, log_bytes: int | None = None) -> Limits:
    """Return the child's resource limits from the job's."""
    extra = {"log_bytes": log_bytes} if log_bytes is not None else {}
    return Limits(
        cpu_seconds=spec.limits.cpu_time_s,
        wall_seconds=spec.limits.wall_time_s,
        memory_bytes=spec.limits.memory_mb * MIB,
        **extra,
    )


class Ending(StrEnum):
    """How the supervision of a child ended."""

    EXITED = "exited"
    CANCELLED = "cancelled"
    STALE = "stale"
    TIMED_OUT = "timed_out"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True)
class End:
    """The child's end: why, and its exit code (None when killed by us before it ended)."""

    ending: Ending
    code: int | None


def _describe(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Attempt:
    """One attempt of one job: prepare, launch, supervise, record (see the module docstring)."""

    def __init__(
        self,
        service: JobService,
        claim: Claim,
        *,
        launcher: ChildLauncher,
        work_root: Path,
        data: DataRef,
        heartbeat_every: float,
        kill_grace: float = 1.0,
        shutdown: threading.Event | None = None,
        keep_work: bool = False,
    ) -> None:
        self.service = service
        self.claim = claim
        self.launcher = launcher
        self.work = work_root / f"{claim.job_id}-{claim.attempt}"
        self.data = data
        self.heartbeat_every = heartbeat_every
        self.kill_grace = kill_grace
        self.shutdown = shutdown or threading.Event()
        self.keep_work = keep_work
        self.pid: int | None = None

    # -- the child ----------------------------------------------------------------------------

    def prepare(self, kind: TaskKind, spec: dict[str, Any], *, extra: dict[str, Any] | None = None) -> None:
        """Write the task, the code and ``extra`` JSON files into a fresh work folder."""
        import json

        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        code = retry(lambda: self.service.code(self.claim.job_id), stop=self.shutdown)
        (self.work / self.claim.spec.code.name).write_bytes(code)
        for name, body in (extra or {}).items():
            (self.work / name).write_text(json.dumps(body, sort_keys=True, default=str))
        Task(kind=kind, spec=spec, data=self.data, limits=limits_of(self.claim.spec)).write(self.work)

    def run_child(self) -> End:
        """Launch the child, pump its log, supervise it to its end."""
        log = retry(lambda: self.service.log_writer(self.claim), stop=self.shutdown)
        child = self.launcher.launch(self.work)
        self.pid = child.pid
        pump = LogPump(child.output, log).start()
        try:
            end = self._supervise(child)
        finally:
            child.kill_tree(grace=self.kill_grace)  # whatever it left in its group
            pump.join(timeout=10)
            child.close()
            with contextlib.suppress(Exception):
                log.close()
        return end

    def _supervise(self, child: ChildProcess) -> End:
        wall = self.claim.spec.limits.wall_time_s
        started = time.monotonic()
        next_beat = started + self.heartbeat_every
        while True:
            now = time.monotonic()
            code = child.wait(max(0.0, min(next_beat, started + wall) - now))
            if code is not None:
                return End(Ending.EXITED, code)
            now = time.monotonic()
            if now >= started + wall:
                child.kill_tree(grace=self.kill_grace)
                return End(Ending.TIMED_OUT, child.wait(0))
            if self.shutdown.is_set():
                child.kill_tree(grace=self.kill_grace)
                return End(Ending.SHUTDOWN, child.wait(0))
            if now >= next_beat:
                next_beat = now + self.heartbeat_every
                try:
                    beat = self.service.heartbeat(self.claim)
                except DatabaseUnavailable:
                    continue  # try again at the next beat; a lease lost meanwhile shows up as stale
                if not beat.ok:
                    child.kill_tree(grace=0)
                    return End(Ending.STALE, child.wait(0))
                if beat.cancel_requested:
                    child.kill_tree(grace=self.kill_grace)
                    return End(Ending.CANCELLED, child.wait(0))

    # -- recording ----------------------------------------------------------------------------

    def upload(self) -> list[ArtifactIn]:
        """Upload every file the child wrote under out/, named by its path there."""
        out = self.work / OUT_DIR
        files = sorted(p for p in out.rglob("*") if p.is_file()) if out.is_dir() else []
        put = self.service.put_artifact_file
        return [retry(functools.partial(put, self.claim, p.relative_to(out).as_posix(), p)) for p in files]

    def finish(self, outcome: Outcome) -> bool:
        """Record the outcome; False when the attempt was stale."""
        return retry(lambda: self.service.finish(self.claim, outcome), stop=None)

    def release(self, reason: str) -> bool:
        """Give the attempt back (infrastructure failure): re-queued, or dead after the last attempt."""
        return retry(lambda: self.service.release(self.claim, reason=reason), stop=None)

    def record(self, end: End) -> Outcome | None:
        """Record how the child ended (see the module docstring); return the outcome, None when released/dropped."""
        limits = self.claim.spec.limits
        if end.ending is Ending.STALE:
            return None
        if end.ending is Ending.CANCELLED:
            outcome = Outcome(state=JobState.CANCELLED, error="cancelled while running")
        elif end.ending is Ending.TIMED_OUT:
            outcome = Outcome(
                state=JobState.TIMED_OUT,
                error=f"the job ran longer than its wall-clock limit of {limits.wall_time_s:g} s; "
                "raise the limit or shorten the backtest",
            )
        elif end.ending is Ending.SHUTDOWN:
            self.release("the worker shut down before the job ended")
            return None
        elif end.code == EXIT_OK and (result := read_result(self.work)) is not None:
            outcome = Outcome(state=JobState.SUCCEEDED, metrics=result.metrics, artifacts=self.upload())
        elif end.code == EXIT_USER:
            result = read_result(self.work)
            outcome = Outcome(state=JobState.FAILED, error=(result.message if result else None) or "the job failed")
        elif end.code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            outcome = Outcome(
                state=JobState.TIMED_OUT,
                error=f"the job used more than its CPU-time limit of {limits.cpu_time_s:g} s; raise the limit",
            )
        else:
            result = read_result(self.work)
            detail = f": {result.message}" if result and result.message else ""
            self.release(f"the job's process ended unexpectedly ({_describe(end.code)}){detail}")
            return None
        self.finish(outcome)
        return outcome

    def cleanup(self) -> None:
        """Delete the work folder (unless kept for debugging)."""
        if not self.keep_work:
            shutil.rmtree(self.work, ignore_errors=True)

    def run(self, kind: TaskKind, spec: dict[str, Any], *, extra: dict[str, Any] | None = None) -> End:
        """Prepare and run the child; an infrastructure failure of ours releases the attempt."""
        try:
            self.prepare(kind, spec, extra=extra)
            return self.run_child()
        except InfrastructureError as exc:
            with contextlib.suppress(InfrastructureError):
                self.release(f"the worker could not run the job: {exc}")
            raise
