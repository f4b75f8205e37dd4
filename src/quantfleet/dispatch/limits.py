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

Processes per user (``RLIMIT_NPROC``) counts every process of the worker's
user, not the job's, so it waits for the sandbox issue (cgroups' pids.max).
"""

from __future__ import annotations

import resource
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DEFAULT_LIMITS", "Limits", "apply_limits"]

MIB = 1024**2
CPU_HARD_GRACE_S = 5
"""Seconds of CPU between SIGXCPU (soft limit) and SIGKILL (hard limit)."""


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one job may use; ``None`` means no limit of that kind."""

    cpu_seconds: float | None = None
    wall_seconds: float | None = None
    memory_bytes: int | None = None
    file_size_bytes: int | None = 2048 * MIB
    open_files: int | None = 1024
    log_bytes: int = 10 * MIB

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


def apply_limits(limits: Limits) -> None:
    """Apply ``limits`` to this process (and what it starts), counting CPU from now."""
    _lower(resource.RLIMIT_CORE, 0)
    if limits.cpu_seconds is not None:
        used = resource.getrusage(resource.RUSAGE_SELF)
        spent = used.ru_utime + used.ru_stime
        soft = int(spent + limits.cpu_seconds + 0.999)
        _lower(resource.RLIMIT_CPU, soft, soft + CPU_HARD_GRACE_S)
    if limits.memory_bytes is not None:
        # Counted beyond what the child already holds (a forked child shares the server's imported libraries).
        _lower(resource.RLIMIT_DATA, _data_bytes() + limits.memory_bytes)
    if limits.file_size_bytes is not None:
        _lower(resource.RLIMIT_FSIZE, limits.file_size_bytes)
    if limits.open_files is not None:
        _lower(resource.RLIMIT_NOFILE, limits.open_files)
