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

The lease is renewed by one heartbeat thread per attempt (:class:`Beat`),
from the claim until the outcome is recorded: uploading a big run folder or
waiting out a locked database after the child ended never lets the lease
lapse (a reaped, finished job would run twice).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from quantfleet.core.errors import InfrastructureError, UserError
from quantfleet.core.logging import bind_job_id
from quantfleet.dispatch.launcher import ChildLauncher, ChildProcess
from quantfleet.dispatch.limits import CPU_HARD_GRACE_S, MIB, Limits
from quantfleet.dispatch.logs import LogPump
from quantfleet.dispatch.task import EXIT_OK, EXIT_USER, OUT_DIR, DataRef, Task, TaskKind, read_result
from quantfleet.jobs import ArtifactIn, Claim, JobService, JobSpec, JobState, Outcome
from quantfleet.jobs.errors import DatabaseUnavailable

__all__ = [
    "Attempt",
    "Beat",
    "End",
    "Ending",
    "artifact_files",
    "backtest_json",
    "fans_out",
    "limits_of",
    "retry",
    "sweep_request",
]

T = TypeVar("T")

_log = logging.getLogger(__name__)


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
    verdict: str | None = None  # a sandboxed child's own account of a user failure (a limit it hit)


def _user_verdict(child: ChildProcess) -> str | None:
    """Return the message of a sandboxed child's user failure (memory, file size, ...), None otherwise."""
    verdict = getattr(child, "verdict", None)
    if verdict is None:
        return None
    found = verdict()
    return str(found.message) if getattr(found, "user_failure", False) else None


def _describe(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Beat:
    """Renew one attempt's lease on a thread, from the claim until the outcome is recorded.

    ``stale`` is set when the lease was lost (nothing may be recorded any
    more), ``cancel`` when someone cancelled the job; ``changed`` wakes the
    supervisor at once on either.
    """

    def __init__(self, service: JobService, claim: Claim, *, every: float) -> None:
        self._service = service
        self._claim = claim
        self._every = every
        self._stop = threading.Event()
        self.stale = threading.Event()
        self.cancel = threading.Event()
        self.changed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"quantfleet-beat-{claim.job_id[:8]}", daemon=True)

    def start(self) -> Beat:
        """Start beating."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating (after the attempt was finished or released)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                beat = self._service.heartbeat(self._claim)
            except DatabaseUnavailable:
                continue  # try again at the next beat; a lease lost meanwhile shows up as stale
            except Exception:  # never let a beat failure end the thread: the lease would lapse silently
                _log.warning("job %s: heartbeat failed", self._claim.job_id, exc_info=True)
                continue
            if not beat.ok:
                self.stale.set()
                self.changed.set()
                return
            if beat.cancel_requested and not self.cancel.is_set():
                self.cancel.set()
                self.changed.set()


_ARTIFACT_PART = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}$")
_ARTIFACT_NAME_MAX = 512


def _check_artifact_name(name: str) -> None:
    parts = name.split("/")
    if len(name) > _ARTIFACT_NAME_MAX or any(not _ARTIFACT_PART.match(p) or p in (".", "..") for p in parts):
        raise UserError(
            f"the job wrote an output file named {name[:200]!r}; name files under out/ with letters, digits, "
            f"'_', '-' and '.' (not first), at most {_ARTIFACT_NAME_MAX} characters in all"
        )


def artifact_files(out: Path) -> list[tuple[str, int]]:
    """Return ``(name, fd)`` of every regular file under ``out``, opened without following any symlink.

    Symlinks (to files or folders) and special files are skipped: the child
    controls ``out/`` and must not make the worker read a file of its own.
    Every folder and file is opened relative to its parent's descriptor with
    ``O_NOFOLLOW``, so nothing swapped in meanwhile is followed either. Raise
    UserError on a name that is not a safe relative path; the caller closes the fds.
    """
    found: list[tuple[str, int]] = []
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        root = os.open(out, flags | os.O_DIRECTORY)
    except OSError:
        return found  # no out/ (or it is a symlink): nothing to upload

    def walk(dir_fd: int, prefix: str) -> None:
        with os.scandir(dir_fd) as entries:
            names = sorted(e.name for e in entries)
        for entry in names:
            name = f"{prefix}{entry}"
            try:
                fd = os.open(entry, flags | os.O_NONBLOCK, dir_fd=dir_fd)
            except OSError:
                continue  # a symlink (ELOOP), gone, or unreadable: skipped
            kind = os.fstat(fd).st_mode
            if stat.S_ISDIR(kind):
                try:
                    walk(fd, f"{name}/")
                finally:
                    os.close(fd)
            elif stat.S_ISREG(kind):
                found.append((name, fd))
                _check_artifact_name(name)
            else:
                os.close(fd)

    try:
        walk(root, "")
    except BaseException:
        for _, fd in found:
            os.close(fd)
        raise
    finally:
        os.close(root)
    return found


def _cpu_seconds(pid: int) -> float | None:
    """Return the CPU time a live process has used (Linux /proc), None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


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
        bind_job_id(claim.job_id)  # this slot thread's log lines carry the job id (until its next attempt)
        self.launcher = launcher
        self.work = work_root / f"{claim.job_id}-{claim.attempt}"
        self.data = data
        self.heartbeat_every = heartbeat_every
        self.kill_grace = kill_grace
        self.shutdown = shutdown or threading.Event()
        self.keep_work = keep_work
        self.pid: int | None = None
        self.cpu_used: float | None = None  # the child's CPU seconds, last seen while it ran
        self.log_note: str | None = None  # set when the attempt's log could not be stored whole
        self.beat = Beat(service, claim, every=heartbeat_every)

    def begin(self) -> Attempt:
        """Start renewing the lease (call right after the claim; :meth:`end` stops it)."""
        self.beat.start()
        return self

    def end(self) -> None:
        """Stop renewing the lease (after the outcome was recorded or the attempt released)."""
        self.beat.stop()

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
            self._close_log(log, pump)
        return end

    def _close_log(self, log: Any, pump: LogPump) -> None:
        """Store the rest of the log; if any of it was lost, say so in the log (if possible) and the outcome."""
        lost = pump.lost
        if lost:
            with contextlib.suppress(Exception):
                log.write(f"\n[quantfleet: part of this log was lost: the log store failed ({pump.error})]\n")
        error: BaseException | None = None
        deadline = time.monotonic() + 10
        while True:
            try:
                log.close()
                break
            except Exception as exc:  # the log store is down: try a little longer, then give up on the rest
                error = exc
                if time.monotonic() > deadline or self.shutdown.wait(0.5):
                    lost = True
                    break
        if lost:
            self.log_note = f"the job's log is incomplete: the log store failed ({error or pump.error})"

    def _supervise(self, child: ChildProcess) -> End:
        wall = self.claim.spec.limits.wall_time_s
        started = time.monotonic()
        tick = min(0.1, self.heartbeat_every)
        while True:
            now = time.monotonic()
            code = child.wait(max(0.0, min(tick, started + wall - now)))
            if code is not None:
                return End(Ending.EXITED, code, _user_verdict(child))
            self.cpu_used = _cpu_seconds(child.pid) or self.cpu_used
            now = time.monotonic()
            if now >= started + wall:
                child.kill_tree(grace=self.kill_grace)
                return End(Ending.TIMED_OUT, child.wait(0))
            if self.shutdown.is_set():
                child.kill_tree(grace=self.kill_grace)
                return End(Ending.SHUTDOWN, child.wait(0))
            if self.beat.stale.is_set():
                child.kill_tree(grace=0)
                return End(Ending.STALE, child.wait(0))
            if self.beat.cancel.is_set():
                child.kill_tree(grace=self.kill_grace)
                return End(Ending.CANCELLED, child.wait(0))

    # -- recording ----------------------------------------------------------------------------

    def upload(self) -> list[ArtifactIn]:
        """Upload every regular file the child wrote under out/, named by its path there.

        Symlinks and special files are skipped (see :func:`artifact_files`);
        each file is copied from its descriptor into a folder of the worker's
        before the upload, so what is uploaded is what was opened. A file name
        that is not a safe relative path fails the job (UserError).
        """
        files = artifact_files(self.work / OUT_DIR)
        put = self.service.put_artifact_file
        uploaded: list[ArtifactIn] = []
        try:
            with tempfile.TemporaryDirectory(prefix=f".upload-{self.work.name}-", dir=self.work.parent) as staging:
                for index, (name, fd) in enumerate(files):
                    copy = Path(staging) / str(index)
                    with os.fdopen(os.dup(fd), "rb") as src, open(copy, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    uploaded.append(retry(functools.partial(put, self.claim, name, copy)))
                    copy.unlink()
        finally:
            for _, fd in files:
                os.close(fd)
        return uploaded

    def finish(self, outcome: Outcome) -> bool:
        """Record the outcome; False when the attempt was stale."""
        return retry(lambda: self.service.finish(self.claim, outcome), stop=None)

    def release(self, reason: str, *, penalty: bool = True) -> bool:
        """Give the attempt back (infrastructure failure): re-queued, or dead after the last attempt.

        ``penalty=False`` (the worker shuts down on purpose) re-queues without using up a retry.
        """
        return retry(lambda: self.service.release(self.claim, reason=reason, penalty=penalty), stop=None)

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
            self.release("the worker shut down before the job ended", penalty=False)
            return None
        elif end.code == EXIT_OK and (result := read_result(self.work)) is not None:
            outcome = Outcome(state=JobState.SUCCEEDED, metrics=result.metrics, artifacts=self.upload())
        elif end.code == EXIT_USER:
            result = read_result(self.work)
            outcome = Outcome(state=JobState.FAILED, error=(result.message if result else None) or "the job failed")
        elif end.code in (-signal.SIGXCPU, 128 + signal.SIGXCPU) or self._killed_at_cpu_limit(end):
            outcome = Outcome(
                state=JobState.TIMED_OUT,
                error=f"the job used more than its CPU-time limit of {limits.cpu_time_s:g} s; raise the limit",
            )
        elif end.verdict is not None:  # the sandbox saw the job hit a limit: the job's failure, not retried
            outcome = Outcome(state=JobState.FAILED, error=f"{end.verdict}; raise the limit or use less")
        else:
            result = read_result(self.work)
            detail = f": {result.message}" if result and result.message else ""
            self.release(f"the job's process ended unexpectedly ({_describe(end.code)}){detail}")
            return None
        if self.log_note:
            error = f"{outcome.error}\n{self.log_note}" if outcome.error else self.log_note
            outcome = dataclasses.replace(outcome, error=error)
        self.finish(outcome)
        return outcome

    def _killed_at_cpu_limit(self, end: End) -> bool:
        """Return whether the child died of SIGKILL at its hard CPU limit (it ignored or outlived SIGXCPU)."""
        limit = self.claim.spec.limits.cpu_time_s
        if end.code != -signal.SIGKILL or limit is None or self.cpu_used is None:
            return False
        # Last seen within a supervision tick of the kill, which comes CPU_HARD_GRACE_S past the soft limit.
        return self.cpu_used >= limit + CPU_HARD_GRACE_S / 2

    def fail(self, message: str) -> bool:
        """Finish the attempt ``failed`` with ``message`` (a user error found by the worker, not the child)."""
        return self.finish(Outcome(state=JobState.FAILED, error=message))

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
