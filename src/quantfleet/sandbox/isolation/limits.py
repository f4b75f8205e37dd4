"""What one sandboxed job may use, and how each limit is applied.

=====================  ==========  ===============================================
limit                  default     applied by
=====================  ==========  ===============================================
wall clock             30 min      the supervisor (kills the whole cgroup)
CPU                    1 core      cgroup ``cpu`` quota; BLAS/OpenMP thread counts
CPU time (per proc.)   none        ``RLIMIT_CPU``, soft below hard (SIGXCPU first)
memory (swap incl.)    2 GiB       cgroup ``memory`` (+ ``memsw`` on v1)
processes              256         cgroup ``pids.max`` and ``RLIMIT_NPROC``
open files             256         ``RLIMIT_NOFILE``
file size              1 GiB       ``RLIMIT_FSIZE``
``/work``              2 GiB       a tmpfs with ``size`` and ``nr_inodes``
``/work`` files        10,000      (same tmpfs)
``/tmp``               256 MiB     bubblewrap ``--size`` tmpfs
``/dev/shm``           64 MiB      bubblewrap ``--size`` tmpfs
core dumps             none        ``RLIMIT_CORE = 0``
network                none        an empty network namespace
=====================  ==========  ===============================================

No ``RLIMIT_AS``: numeric libraries reserve far more address space than they
touch; memory is the cgroup's job.
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass

__all__ = ["DEFAULT_SANDBOX_LIMITS", "GIB", "MIB", "SandboxLimits", "niceness", "rlimits", "thread_environment"]

MIB = 1024**2
GIB = 1024**3
CPU_HARD_GRACE_S = 5
"""CPU seconds between SIGXCPU (the soft limit, a readable verdict) and SIGKILL (the hard one)."""


@dataclass(frozen=True, kw_only=True)
class SandboxLimits:
    """What one sandboxed job may use (see the module docstring); ``None``: not limited."""

    wall_seconds: float | None = 30 * 60
    cpus: float = 1.0
    cpu_seconds: float | None = None
    memory_bytes: int = 2 * GIB
    pids: int = 256
    open_files: int = 256
    file_size_bytes: int = 1 * GIB
    work_bytes: int = 2 * GIB
    work_inodes: int = 10_000
    tmp_bytes: int = 256 * MIB
    shm_bytes: int = 64 * MIB
    nice: int = 10
    """CPU priority (0 to 19): below the worker's and the API's, so jobs wait for the control plane, not it for them."""

    def __post_init__(self) -> None:
        if self.cpus <= 0 or self.memory_bytes <= 0 or self.pids < 8 or self.open_files < 16:
            raise ValueError(
                "sandbox limits too small: cpus > 0, memory_bytes > 0, pids >= 8 and open_files >= 16 "
                "(the interpreter and bubblewrap need a few of each)"
            )


DEFAULT_SANDBOX_LIMITS = SandboxLimits()


def niceness(limits: SandboxLimits) -> int:
    """Return the job's nice value (clamped to 0..19)."""
    return max(0, min(19, limits.nice))


def rlimits(limits: SandboxLimits) -> list[tuple[int, int, int]]:
    """Return ``(resource, soft, hard)`` for every limit set before exec (never ``RLIMIT_AS``)."""
    out = [
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes, limits.file_size_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
        # Per uid: each slot has a uid of its own, so this counts the job's processes (pids.max is the guarantee).
        (resource.RLIMIT_NPROC, limits.pids, limits.pids),
        # 0: an unprivileged process may never lower its nice value, so the job cannot climb back up.
        (resource.RLIMIT_NICE, 0, 0),
    ]
    if limits.cpu_seconds is not None:
        soft = max(1, math.ceil(limits.cpu_seconds))
        out.append((resource.RLIMIT_CPU, soft, soft + CPU_HARD_GRACE_S))
    return out


def thread_environment(limits: SandboxLimits) -> dict[str, str]:
    """Return the thread-count variables of BLAS, OpenMP, numexpr and numba, set to the CPU quota."""
    n = str(max(1, math.floor(limits.cpus)))
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")
    return dict.fromkeys(names, n)
