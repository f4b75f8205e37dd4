"""How a sandboxed job ended, in words that name the limit it hit and its value."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from enum import StrEnum

from quantfleet.sandbox.isolation.limits import MIB, SandboxLimits

__all__ = ["Verdict", "VerdictKind", "classify"]

SHIM_FAILED = 111


class VerdictKind(StrEnum):
    """The kinds of ending: a success, a user failure (not retried), or the sandbox failing to start."""

    OK = "ok"
    EXIT = "exit"
    MEMORY = "memory"
    CPU = "cpu"
    WALL = "wall"
    FILE_SIZE = "file_size"
    WORK_FULL = "work_full"
    SIGNAL = "signal"
    INFRA = "infra"


@dataclass(frozen=True)
class Verdict:
    """The kind of ending, and a message for the job's outcome."""

    kind: VerdictKind
    message: str

    @property
    def user_failure(self) -> bool:
        """Return whether the job itself is to blame (not retried)."""
        return self.kind not in (VerdictKind.OK, VerdictKind.INFRA)


def classify(
    code: int | None, *, limits: SandboxLimits, timed_out: bool, oom_kills: int, pids_refused: int = 0
) -> Verdict:
    """Return the verdict of an ending: exit ``code`` (negative: signal) and what the cgroup counted."""
    note = f" ({pids_refused} process starts were refused at the limit of {limits.pids})" if pids_refused else ""
    if timed_out:
        return Verdict(VerdictKind.WALL, f"the job ran longer than its wall-clock limit of {limits.wall_seconds:g} s")
    if oom_kills:
        return Verdict(
            VerdictKind.MEMORY,
            f"the job exceeded its memory limit of {limits.memory_bytes / MIB:,.0f} MiB (swap included) "
            f"and was killed{note}",
        )
    if code in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        return Verdict(VerdictKind.CPU, f"the job exceeded its CPU-time limit of {limits.cpu_seconds:g} s")
    if code == -signal.SIGXFSZ:
        return Verdict(
            VerdictKind.FILE_SIZE,
            f"the job wrote a file larger than its limit of {limits.file_size_bytes / MIB:,.0f} MiB",
        )
    if code == 0:
        return Verdict(VerdictKind.OK, f"the job succeeded{note}")
    if code == SHIM_FAILED:
        return Verdict(VerdictKind.INFRA, "the sandbox could not be set up (see the job's log)")
    if code is None:
        return Verdict(VerdictKind.SIGNAL, f"the job was stopped before it ended{note}")
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return Verdict(VerdictKind.SIGNAL, f"the job was killed by {name}{note}")
    return Verdict(VerdictKind.EXIT, f"the job exited with code {code}{note}")
