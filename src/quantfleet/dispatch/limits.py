"""Resource limits of one job's child process, and applying them (in the child, before user code runs).

Set with ``setrlimit`` in the child itself after its imports and before the
strategy file is loaded:

- ``RLIMIT_CPU`` from the job's CPU seconds, counted from the moment the job
  starts (the child's import time is added to the soft limit). The soft limit
  sends ``SIGXCPU`` (the job ends ``timed_out``); the hard limit, a few seconds
  later, ``SIGKILL``.
- ``RLIMIT_DATA`` when the job names a memory limit, counted beyond the
  child's data segment at start (``RLIMIT_AS`` is never used: numeric
  libraries reserve far more address space than they touch).
- ``RLIMIT_FSIZE`` (largest file the job may write), ``RLIMIT_NOFILE`` (open
  files) and ``RLIMIT_CORE = 0`` (no core dumps filling the disk).
- A CPU priority below the worker's (``nice`` 10 by default, ``RLIMIT_NICE``
  so it cannot be raised again): on a machine the API, the scheduler or the
  worker's own heartbeats share with jobs, the jobs' number crunching waits
  for them, not the other way round. It changes no result, only who runs
  first when the cores are busy.

Processes per user (``RLIMIT_NPROC``) counts every process of the worker's
user, not the job's: only the sandbox (one uid per slot, and the cgroup's
``pids.max``) limits processes.

:func:`limit_hit` names the limit behind an error the job's code raised
(a file too large, ``/work`` full, too many open files or processes).
"""

from __future__ import annotations

import errno
import os
import resource
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DEFAULT_LIMITS", "Limits", "apply_limits", "limit_hit"]

MIB = 1024**2
CPU_HARD_GRACE_S = 5
"""Seconds of CPU between SIGXCPU (soft limit) and SIGKILL (hard limit)."""


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one job may use; ``None`` means no limit of that kind.

    The child applies the per-process ones itself (:func:`apply_limits`); the
    sandbox applies them all from outside (its cgroup, tmpfs and rlimits), and
    then turns ``memory_rlimit`` off: memory is the cgroup's job there.
    """

    cpu_seconds: float | None = None
    wall_seconds: float | None = None
    memory_bytes: int | None = None
    memory_rlimit: bool = True
    """Apply ``memory_bytes`` as ``RLIMIT_DATA`` (without a cgroup, the only memory limit there is)."""
    file_size_bytes: int | None = 2048 * MIB
    open_files: int | None = 1024
    log_bytes: int = 10 * MIB
    cpus: float = 1.0
    processes: int = 256
    work_bytes: int = 2048 * MIB
    work_files: int = 10_000
    artifact_files: int = 100
    artifact_bytes: int = 1024 * MIB
    nice: int = 10
    """The job's CPU priority (0 to 19, higher yields more): below the control plane's, see the module docstring."""

    def to_json(self) -> dict[str, Any]:
        """Return the limits as the child's job.json holds them."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Limits:
        """Return limits from job.json (unknown keys ignored, so old children read new files)."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


DEFAULT_LIMITS = Limits()


def _lower(kind: int, soft: int, hard: int | None = None) -> None:
    """Set a limit, never above the hard limit already in force (an unprivileged process cannot raise it)."""
    _, cur_hard = resource.getrlimit(kind)
    hard = soft if hard is None else hard
    if cur_hard != resource.RLIM_INFINITY:
        hard = min(hard, cur_hard)
        soft = min(soft, hard)
    resource.setrlimit(kind, (soft, hard))


def _data_bytes() -> int:
    """Return this process's data segment (VmData), 0 where /proc is not available."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _yield_cpu(nice: int) -> None:
    """Lower this process's CPU priority to ``nice`` (never raise it) and forbid raising it again."""
    nice = max(0, min(19, nice))
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice > current:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    # 0: an unprivileged process may never lower its nice value again (root keeps CAP_SYS_NICE regardless).
    _lower(resource.RLIMIT_NICE, 0)


def apply_limits(limits: Limits) -> None:
    """Apply ``limits`` to this process (and what it starts), counting CPU from now."""
    _lower(resource.RLIMIT_CORE, 0)
    _yield_cpu(limits.nice)
    if limits.cpu_seconds is not None:
        used = resource.getrusage(resource.RUSAGE_SELF)
        spent = used.ru_utime + used.ru_stime
        soft = int(spent + limits.cpu_seconds + 0.999)
        _lower(resource.RLIMIT_CPU, soft, soft + CPU_HARD_GRACE_S)
    if limits.memory_bytes is not None and limits.memory_rlimit:
        # Counted beyond what the child already holds (a forked child shares the server's imported libraries).
        _lower(resource.RLIMIT_DATA, _data_bytes() + limits.memory_bytes)
    if limits.file_size_bytes is not None:
        _lower(resource.RLIMIT_FSIZE, limits.file_size_bytes)
    if limits.open_files is not None:
        _lower(resource.RLIMIT_NOFILE, limits.open_files)


def _mib(n: int | None) -> str:
    return "none" if n is None else f"{n / MIB:,.0f} MiB"


def limit_hit(exc: BaseException, limits: Limits) -> tuple[str, str] | None:
    """Return the limit an error of the job's code (or its cause) shows it hit: (words, reason); None if none.

    The reason is one of ``quantfleet.jobs.EndReason``'s values (file_size, work_full, open_files, processes).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError):
            code = current.errno
            if code == errno.EFBIG:
                return (
                    f"the job wrote a file larger than its file-size limit of {_mib(limits.file_size_bytes)} "
                    "(limits.file_size_mb)",
                    "file_size",
                )
            if code in (errno.ENOSPC, errno.EDQUOT):
                return (
                    f"the job filled its /work (limits.work_mb = {_mib(limits.work_bytes)}, "
                    f"limits.work_files = {limits.work_files:,} files)",
                    "work_full",
                )
            if code in (errno.EMFILE, errno.ENFILE):
                opened = f"the job opened more files than its limit of {limits.open_files} (limits.open_files)"
                return opened, "open_files"
        if isinstance(current, RuntimeError) and "can't start new thread" in str(current):
            return f"the job started more threads than its limit of {limits.processes} (limits.processes)", "processes"
        current = current.__cause__ or current.__context__
    return None
