"""Run one attempt of a job in a child process and record what happened.

The worker side of one attempt: write the task and the code into a private
work folder, launch the child, pump its output into the job's log, renew the
lease while it runs (killing the child's whole process tree when the job is
cancelled, the lease is lost or the wall-clock limit passes), then upload the
child's results and record the outcome, fenced by the attempt number:

==============================================  ==============================================
the child                                       the job
==============================================  ==============================================
exits 0                                         ``succeeded``, with metrics and artifacts
exits 2 (a user error)                          ``failed``, the message (user's traceback first)
passes the wall-clock or CPU limit              ``timed_out``
writes more than its output limit               ``failed``: killed at the cap, the log keeps the start
is killed at its memory or file-size limit      ``failed``, naming the limit and its value (sandbox)
dies of a signal nobody of ours sent            ``failed``, naming the signal (sandbox)
is cancelled                                    ``cancelled`` (killed within a second or two)
cannot start, or dies otherwise                 released: re-queued, ``dead`` after 3 attempts
loses its lease (the heartbeat is stale)        killed; results dropped, nothing recorded
==============================================  ==============================================

Failures of the job's own are never retried; infrastructure failures are.
Unsandboxed (a trusted launcher without verdicts), a death by signal counts as
the infrastructure's.

The lease is renewed by one heartbeat thread per attempt (:class:`Beat`),
from the claim until the outcome is recorded: uploading a big run folder or
waiting out a locked database after the child ended never lets the lease
lapse (a reaped, finished job would run twice).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
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
from quantfleet.jobs import ArtifactIn, Claim, EndReason, JobService, JobSpec, JobState, Outcome
from quantfleet.jobs import Limits as JobLimits
from quantfleet.jobs.errors import DatabaseUnavailable
from quantfleet.sandbox.isolation.verdict import VerdictKind

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
    asked = spec.limits
    return Limits(
        cpu_seconds=asked.cpu_time_s,
        wall_seconds=asked.wall_time_s,
        memory_bytes=asked.memory_mb * MIB,
        file_size_bytes=asked.file_size_mb * MIB,
        open_files=asked.open_files,
        log_bytes=log_bytes if log_bytes is not None else int(asked.log_mb * MIB),
        cpus=asked.cpus,
        processes=asked.processes,
        work_bytes=asked.work_mb * MIB,
        work_files=asked.work_files,
        artifact_files=asked.artifact_files,
        artifact_bytes=asked.artifact_mb * MIB,
    )


class Ending(StrEnum):
    """How the supervision of a child ended."""

    EXITED = "exited"
    CANCELLED = "cancelled"
    STALE = "stale"
    TIMED_OUT = "timed_out"
    SHUTDOWN = "shutdown"
    OUTPUT_CAP = "output_cap"


@dataclass(frozen=True)
class End:
    """The child's end: why, and its exit code (None when killed by us before it ended)."""

    ending: Ending
    code: int | None
    verdict: str | None = None
    """A sandboxed child's own account of its end (the limit it hit, the signal that killed it)."""
    kind: VerdictKind | None = None
    """The kind of that verdict; None for an unsandboxed child."""


# The limits a child may report its user error hit. Nothing else: result.json sits in the job's own /work, so
# the job's code could write it, and must not pass its failure off as completed or as the infrastructure's.
_REASONS = frozenset({EndReason.MEMORY, EndReason.FILE_SIZE, EndReason.WORK_FULL, EndReason.OPEN_FILES,
                      EndReason.PROCESSES})  # fmt: skip
_LIMIT_NAMES = {
    VerdictKind.MEMORY: "limits.memory_mb",
    VerdictKind.FILE_SIZE: "limits.file_size_mb",
    VerdictKind.WORK_FULL: "limits.work_mb",
}


def _verdict(child: ChildProcess) -> tuple[str | None, VerdictKind | None]:
    """Return a sandboxed child's verdict (message, kind), or (None, None) for a launcher without verdicts."""
    verdict = getattr(child, "verdict", None)
    if verdict is None:
        return None, None
    found = verdict()
    return str(found.message), VerdictKind(found.kind)


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


def _refuse(name: str, why: str) -> UserError:
    return UserError(
        f"the job left out/{name}, {why}; the worker collects regular files only (one link each, never "
        "following a link), so the job fails: write the results as plain files under out/"
    )


def artifact_files(out: Path, *, max_files: int = 100, max_bytes: int = 1024 * MIB) -> list[tuple[str, int]]:
    """Return ``(name, fd)`` of every file under ``out``, opened without ever following a link.

    The child controls ``out/``: a symlink (``metrics.json -> /etc/shadow``),
    a hard link (a second name of a file elsewhere), a device or a FIFO among
    its files fails the job (UserError naming it), as do more than
    ``max_files`` files or more than ``max_bytes`` in all. Every folder and
    file is opened relative to its parent's descriptor with ``O_NOFOLLOW``, so
    nothing swapped in meanwhile is followed either, and checked on the opened
    descriptor (``fstat``). No ``out/`` at all: nothing. The caller closes the fds.
    """
    found: list[tuple[str, int]] = []
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        root = os.open(out, flags | os.O_DIRECTORY)
    except FileNotFoundError:
        return found
    except OSError as exc:
        raise _refuse("", f"which is not a folder ({exc.strerror})") from exc
    total = 0

    def walk(dir_fd: int, prefix: str) -> None:
        nonlocal total
        with os.scandir(dir_fd) as entries:
            names = sorted(e.name for e in entries)
        for entry in names:
            name = f"{prefix}{entry}"
            try:
                fd = os.open(entry, flags, dir_fd=dir_fd)
            except OSError as exc:
                kind = "a symbolic link" if exc.errno in (errno.ELOOP, errno.EMLINK) else exc.strerror
                raise _refuse(name, f"which is {kind}") from exc
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                try:
                    walk(fd, f"{name}/")
                finally:
                    os.close(fd)
                continue
            found.append((name, fd))
            if not stat.S_ISREG(info.st_mode):
                raise _refuse(name, "which is not a regular file (a device, FIFO or socket)")
            if info.st_nlink != 1:
                raise _refuse(name, f"which has {info.st_nlink} links (a hard link to another file)")
            _check_artifact_name(name)
            total += info.st_size
            if len(found) > max_files:
                raise UserError(
                    f"the job left more than its limit of {max_files} result files in out/; write fewer "
                    "(combine them), or raise limits.artifact_files"
                )
            if total > max_bytes:
                raise UserError(
                    f"the job's result files in out/ pass its limit of {max_bytes / MIB:,.0f} MiB in all; "
                    "write less, or raise limits.artifact_mb"
                )

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
            end = self._supervise(child, pump)
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

    def _supervise(self, child: ChildProcess, pump: LogPump) -> End:
        wall = self.claim.spec.limits.wall_time_s
        output_cap = limits_of(self.claim.spec).log_bytes
        started = time.monotonic()
        tick = min(0.1, self.heartbeat_every)
        while True:
            now = time.monotonic()
            code = child.wait(max(0.0, min(tick, started + wall - now)))
            if pump.bytes_read > output_cap:  # an unbounded stdout: stopped at the cap, whether it ended or not
                child.kill_tree(grace=0)
                return End(Ending.OUTPUT_CAP, child.wait(0))
            if code is not None:
                return End(Ending.EXITED, code, *_verdict(child))
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

        A symlink, hard link or special file fails the job (see :func:`artifact_files`);
        each file is copied from its descriptor into a folder of the worker's
        before the upload, so what is uploaded is what was opened. A file name
        that is not a safe relative path fails the job (UserError).
        """
        limits = limits_of(self.claim.spec)
        files = artifact_files(self.work / OUT_DIR, max_files=limits.artifact_files, max_bytes=limits.artifact_bytes)
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

    def record(self, end: End, *, on_success: Callable[[Outcome], Outcome] | None = None) -> Outcome | None:
        """Record how the child ended (see the module docstring); return the outcome, None when released/dropped.

        ``on_success``: called with a succeeded outcome before it is recorded (a live run forwards its
        orders here), returning the outcome to record; its UserError fails the job, its
        InfrastructureError releases it for a retry.
        """
        limits = self.claim.spec.limits
        if end.ending is Ending.STALE:
            return None
        if end.ending is Ending.SHUTDOWN:
            self.release("the worker shut down before the job ended", penalty=False)
            return None
        outcome = self._judge(end, limits)
        if outcome is None:
            result = read_result(self.work)
            detail = f": {result.message}" if result and result.message else ""
            if end.kind is VerdictKind.INFRA and end.verdict:
                detail = f": {end.verdict}{detail}"
            self.release(f"the job's process ended unexpectedly ({_describe(end.code)}){detail}")
            return None
        if on_success is not None and outcome.state is JobState.SUCCEEDED:
            try:
                outcome = on_success(outcome)
            except UserError as exc:
                outcome = Outcome(state=JobState.FAILED, error=str(exc))
            except InfrastructureError as exc:
                self.release(f"the job's results could not be applied: {exc}")
                return None
        if self.log_note:
            error = f"{outcome.error}\n{self.log_note}" if outcome.error else self.log_note
            outcome = dataclasses.replace(outcome, error=error)
        self.finish(outcome)
        return outcome

    def _judge(self, end: End, limits: JobLimits) -> Outcome | None:
        """Return the outcome of an ending that is the job's (success or user failure); None: infrastructure."""
        if end.ending is Ending.CANCELLED:
            return Outcome(state=JobState.CANCELLED, error="cancelled while running", reason=EndReason.CANCELLED)
        if end.ending is Ending.TIMED_OUT or end.kind is VerdictKind.WALL:
            return Outcome(
                state=JobState.TIMED_OUT,
                reason=EndReason.WALL,
                error=f"the job ran longer than its wall-clock limit of {limits.wall_time_s:g} s; "
                "raise limits.wall_time_s or shorten the backtest",
            )
        if end.ending is Ending.OUTPUT_CAP:
            return Outcome(
                state=JobState.FAILED,
                reason=EndReason.OUTPUT,
                error=f"the job wrote more than its output limit of {limits.log_mb:g} MiB to stdout and stderr, "
                "so it was stopped (its log keeps the first part); print less, or raise limits.log_mb",
            )
        if end.kind in _LIMIT_NAMES:  # the sandbox saw it hit a limit
            return Outcome(
                state=JobState.FAILED,
                reason=EndReason(end.kind.value),
                error=f"{end.verdict}; raise {_LIMIT_NAMES[end.kind]} or use less",
            )
        cpu_kill = end.code in (-signal.SIGXCPU, 128 + signal.SIGXCPU) or self._killed_at_cpu_limit(end)
        if end.kind is VerdictKind.CPU or (cpu_kill and limits.cpu_time_s is not None):
            return Outcome(
                state=JobState.TIMED_OUT,
                reason=EndReason.CPU,
                error=f"the job used more than its CPU-time limit of {limits.cpu_time_s:g} s; raise limits.cpu_time_s",
            )
        if end.code == EXIT_OK and (result := read_result(self.work)) is not None:
            return Outcome(state=JobState.SUCCEEDED, metrics=result.metrics, artifacts=self.upload())
        if end.code == EXIT_USER:
            result = read_result(self.work)
            reason = result.reason if result is not None and result.reason in _REASONS else None
            error = (result.message if result else None) or "the job failed"
            return Outcome(state=JobState.FAILED, error=error, reason=EndReason(reason) if reason else None)
        if end.kind is VerdictKind.SIGNAL:  # the job's own process died of a signal nobody of ours sent
            crashed = f"{end.verdict}; the job's code (or a library) crashed"
            return Outcome(state=JobState.FAILED, reason=EndReason.CRASH, error=crashed)
        return None

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
        """Delete the work folder (unless kept for debugging), and the sandbox's tmpfs under it at once."""
        if self.keep_work:
            return
        release = getattr(self.launcher, "release", None)
        if callable(release):
            with contextlib.suppress(InfrastructureError):
                release(self.work)
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
