"""A control group per job: memory (swap included), processes and CPU limits, and a kill of the whole group.

Detected once, at start (:func:`detect_cgroups`):

- **v2** (``/sys/fs/cgroup/cgroup.controllers`` exists): one folder under the
  worker's own cgroup with ``memory.max``, ``memory.swap.max = 0``,
  ``pids.max``, ``cpu.max``; the group ends with ``cgroup.kill``.
- **v1** (one mount per controller, optionally with a v2 ``unified`` mount):
  one folder in each of ``memory`` (``limit_in_bytes``, then
  ``memsw.limit_in_bytes`` when swap accounting is on), ``pids`` and ``cpu``
  (CFS quota), under the worker's own path in each hierarchy. The group ends
  by SIGKILL to every member, repeated until none is left: the job's
  processes live in their own pid namespace, so the kill of its init (one of
  the members) takes every process of the namespace with it at once, and
  ``pids.max`` bounds a fork bomb meanwhile. (A v1 ``freezer`` or a v2
  ``unified`` group for ``cgroup.kill`` would cost one more cgroup migration,
  milliseconds each, at every start; they are used only with
  ``JobCgroup(..., kill_group=True)``.)

Either way the end is checked: every member gone, then the folders removed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from quantfleet.core.errors import InfrastructureError
from quantfleet.sandbox.isolation.limits import SandboxLimits

__all__ = ["CgroupLayout", "JobCgroup", "detect_cgroups", "sweep_stale_cgroups"]

_V1_CONTROLLERS = ("memory", "pids", "cpu")
_CFS_PERIOD_US = 100_000


@dataclass(frozen=True)
class CgroupLayout:
    """Where this worker's job cgroups go: the parent folders, per controller (v1) or one (v2)."""

    version: int
    parents: dict[str, Path] = field(default_factory=dict)
    """v1: controller -> the worker's own folder in that hierarchy; v2: ``{"unified": folder}``."""
    kill_parent: Path | None = None
    """A v2 folder whose children have ``cgroup.kill`` (the v2 parent, or v1's ``unified`` mount)."""
    freezer_parent: Path | None = None

    def describe(self) -> str:
        """Return a one-line description for logs and the self-test."""
        ending = "cgroup.kill" if self.version == 2 else "SIGKILL to every member until empty"
        return f"cgroup v{self.version} ({', '.join(sorted(self.parents))}; group kill by {ending})"


def _own_paths() -> dict[str, str]:
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
        if controllers:
            paths[controllers] = path
    return paths


def detect_cgroups(root: Path = Path("/sys/fs/cgroup")) -> CgroupLayout:
    """Return the cgroup layout of this machine; raise InfrastructureError naming the fix if unusable."""
    fix = (
        "run the worker as root (or in a delegated cgroup) on a host with the memory, pids and cpu controllers "
        "(cgroup v1 mounts under /sys/fs/cgroup, or cgroup v2 with them enabled)"
    )
    try:
        own = _own_paths()
    except OSError as exc:
        raise InfrastructureError(f"sandbox layer 'cgroup': cannot read /proc/self/cgroup ({exc}); {fix}") from exc
    if (root / "cgroup.controllers").exists():
        parent = root / own.get("", "/").lstrip("/")
        available = set((parent / "cgroup.controllers").read_text().split())
        missing = {"memory", "pids", "cpu"} - available
        if missing:
            raise InfrastructureError(f"sandbox layer 'cgroup': v2 controllers {sorted(missing)} unavailable; {fix}")
        return CgroupLayout(version=2, parents={"unified": parent}, kill_parent=parent)
    parents: dict[str, Path] = {}
    for name in _V1_CONTROLLERS:
        mount = next((root / c for c in (name, f"{name},cpuacct", f"cpuacct,{name}") if (root / c).is_dir()), None)
        if mount is None or name not in own:
            raise InfrastructureError(f"sandbox layer 'cgroup': no v1 '{name}' controller under {root}; {fix}")
        parents[name] = mount / own[name].lstrip("/")
    unified = root / "unified"
    kill_parent = None
    if (unified / "cgroup.controllers").exists() and "" in own:
        kill_parent = unified / own[""].lstrip("/")
    freezer = root / "freezer" / own.get("freezer", "/").lstrip("/") if (root / "freezer").is_dir() else None
    return CgroupLayout(version=1, parents=parents, kill_parent=kill_parent, freezer_parent=freezer)


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


class JobCgroup:
    """One job's cgroup folders (one per v1 hierarchy, or one v2 folder)."""

    def __init__(self, layout: CgroupLayout, name: str, limits: SandboxLimits, *, kill_group: bool = False) -> None:
        self.layout = layout
        self.kill_group = kill_group
        self.name = name
        self.limits = limits
        self.dirs: dict[str, Path] = {}
        try:
            self._create()
        except OSError as exc:
            self.remove()
            raise InfrastructureError(
                f"sandbox layer 'cgroup': cannot create the job's cgroup {name} ({exc}); "
                "run the worker as root or give it a delegated cgroup subtree"
            ) from exc

    @classmethod
    def adopt(cls, layout: CgroupLayout, name: str, dirs: dict[str, Path]) -> JobCgroup:
        """Return a handle on an existing group's folders (a stale one, to kill and remove); creates nothing."""
        group = cls.__new__(cls)
        group.layout, group.kill_group, group.name, group.limits = layout, False, name, SandboxLimits()
        group.dirs = dict(dirs)
        return group

    def _create(self) -> None:
        limits = self.limits
        for controller, parent in self.layout.parents.items():
            folder = parent / self.name
            folder.mkdir()
            self.dirs[controller] = folder
        quota = int(limits.cpus * _CFS_PERIOD_US)
        if self.layout.version == 2:
            folder = self.dirs["unified"]
            _write(folder / "memory.max", str(limits.memory_bytes))
            if (folder / "memory.swap.max").exists():
                _write(folder / "memory.swap.max", "0")
            _write(folder / "pids.max", str(limits.pids))
            _write(folder / "cpu.max", f"{quota} {_CFS_PERIOD_US}")
            return
        memory = self.dirs["memory"]
        _write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
        if (memory / "memory.memsw.limit_in_bytes").exists():  # swap accounting on: memory + swap together
            _write(memory / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
        _write(self.dirs["pids"] / "pids.max", str(limits.pids))
        _write(self.dirs["cpu"] / "cpu.cfs_period_us", str(_CFS_PERIOD_US))
        _write(self.dirs["cpu"] / "cpu.cfs_quota_us", str(quota))
        for key, base in (("kill", self.layout.kill_parent), ("freezer", self.layout.freezer_parent)):
            if self.kill_group and base is not None and (key == "kill" or self.layout.kill_parent is None):
                extra = base / self.name
                extra.mkdir()
                self.dirs[key] = extra

    def add(self, pid: int) -> None:
        """Move ``pid`` into every folder of the group (before it runs anything of the job's)."""
        try:
            for folder in self.dirs.values():
                _write(folder / "cgroup.procs", str(pid))
        except OSError as exc:
            raise InfrastructureError(
                f"sandbox layer 'cgroup': cannot move the job's process into {self.name} ({exc})"
            ) from exc

    def members(self) -> set[int]:
        """Return the pids in the group (the union over its hierarchies)."""
        pids: set[int] = set()
        for folder in self.dirs.values():
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
        return pids

    def signal_all(self, sig: int) -> None:
        """Send ``sig`` to every member (host pids: the folders are read from the worker's side)."""
        for pid in self.members():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill(self, *, timeout: float = 5.0) -> bool:
        """Kill every member at once; return True when the group is empty within ``timeout``."""
        deadline = time.monotonic() + timeout
        kill_dir = self.dirs.get("kill") or (self.dirs.get("unified") if self.layout.version == 2 else None)
        freezer = self.dirs.get("freezer")
        while True:
            if not self.members():
                return True
            if kill_dir is not None and (kill_dir / "cgroup.kill").exists():
                _write(kill_dir / "cgroup.kill", "1")
            elif freezer is not None:  # frozen, nothing can fork between the listing and the kill
                _write(freezer / "freezer.state", "FROZEN")
                self.signal_all(signal.SIGKILL)
                _write(freezer / "freezer.state", "THAWED")
            else:
                self.signal_all(signal.SIGKILL)
            if time.monotonic() > deadline:
                return not self.members()
            time.sleep(0.01)

    def _counter(self, controller: str, filename: str, key: str) -> int:
        folder = self.dirs.get(controller) or self.dirs.get("unified")
        if folder is None:
            return 0
        with contextlib.suppress(OSError, ValueError):
            for line in (folder / filename).read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
        return 0

    def oom_kills(self) -> int:
        """Return how many of the group's processes the kernel killed at its memory limit."""
        return self._counter(
            "memory", "memory.events" if self.layout.version == 2 else "memory.oom_control", "oom_kill"
        )

    def pids_max_hits(self) -> int:
        """Return how many forks the process limit refused."""
        return self._counter("pids", "pids.events", "max")

    def remove(self) -> None:
        """Remove the folders (the group must be empty: call :meth:`kill` first)."""
        for key in list(self.dirs):
            folder = self.dirs[key]
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
            else:
                continue  # still busy: left for the caller's error report
            del self.dirs[key]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_cgroups(layout: CgroupLayout, *, prefix: str = "quantfleet-") -> list[str]:
    """Kill and remove the job cgroups a dead worker left behind; return their names.

    A job cgroup is named ``quantfleet-<worker pid>-<slot>-<n>``: one whose
    worker is no longer alive is stale (its worker was SIGKILLed before it
    could clean up). Its members, if any, are killed first.
    """
    parents = {**layout.parents, "kill": layout.kill_parent, "freezer": layout.freezer_parent}
    stale: dict[str, dict[str, Path]] = {}
    for key, parent in parents.items():
        if parent is None or (key in ("kill", "freezer") and parent in layout.parents.values()):
            continue
        for folder in parent.glob(f"{prefix}*"):
            parts = folder.name.split("-")
            if len(parts) == 4 and parts[1].isdigit() and folder.is_dir() and not _alive(int(parts[1])):
                stale.setdefault(folder.name, {})[key] = folder
    for name, dirs in stale.items():
        group = JobCgroup.adopt(layout, name, dirs)
        group.kill()
        group.remove()
    return sorted(stale)
