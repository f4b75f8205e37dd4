"""A child launcher that runs each job's child in the sandbox (:mod:`quantfleet.sandbox.isolation`).

:class:`BubblewrapLauncher` starts the same ``python -m quantfleet.dispatch.child
WORK`` as :class:`~quantfleet.dispatch.launcher.SubprocessLauncher`, wrapped:
the job's cgroup, a capped tmpfs over the work folder (owned by the slot's
uid), resource limits, the uid drop, then bubblewrap with the work folder as
``/work`` and the market data bound read-only. :meth:`BubblewrapLauncher.start`
runs the sandbox self-test and raises InfrastructureError if any layer fails,
so a worker that calls it (``pool.worker_from_settings`` does) takes no jobs.

The child's exit code keeps its meaning (bubblewrap's ``128 + N`` for a signal
is turned back into ``-N``); :meth:`SandboxedChild.verdict` says which limit
ended it (memory, CPU, file size) in words.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from quantfleet.core.errors import InfrastructureError
from quantfleet.dispatch.limits import Limits
from quantfleet.dispatch.task import EXIT_USER, TASK_FILE, Task
from quantfleet.sandbox.isolation import (
    DEFAULT_SANDBOX_LIMITS,
    Bind,
    IsolationConfig,
    Sandbox,
    SandboxedProcess,
    SandboxLimits,
    SelfTestReport,
    Verdict,
    VerdictKind,
    require_sandbox,
    sandbox_self_test,
)
from quantfleet.sandbox.isolation.bwrap import RESERVED
from quantfleet.sandbox.isolation.limits import MIB

__all__ = ["BubblewrapLauncher", "SandboxedChild", "sandbox_limits"]

_log = logging.getLogger(__name__)
CPU_STARTUP_ALLOWANCE_S = 30
"""CPU seconds added to the outer RLIMIT_CPU for the child's imports (the child counts the job's own from start)."""
_DATA_INSIDE = Path("/run/quantfleet/data")


def sandbox_limits(limits: Limits, defaults: SandboxLimits = DEFAULT_SANDBOX_LIMITS) -> SandboxLimits:
    """Return the sandbox's limits for a job's: every one from the job, ``/tmp`` and ``/dev/shm`` from ``defaults``."""
    return replace(
        defaults,
        wall_seconds=limits.wall_seconds,
        cpus=limits.cpus,
        nice=limits.nice,
        memory_bytes=limits.memory_bytes or defaults.memory_bytes,
        pids=limits.processes,
        open_files=limits.open_files or defaults.open_files,
        file_size_bytes=limits.file_size_bytes or defaults.file_size_bytes,
        work_bytes=limits.work_bytes,
        work_inodes=limits.work_files,
        cpu_seconds=None if limits.cpu_seconds is None else limits.cpu_seconds + CPU_STARTUP_ALLOWANCE_S,
    )


class SandboxedChild:
    """A job's child in the sandbox (the ``ChildProcess`` protocol, plus :meth:`verdict`)."""

    def __init__(self, process: SandboxedProcess, on_close: object, *, work: Path | None = None) -> None:
        self._process = process
        self._on_close = on_close
        self._work = work

    @property
    def pid(self) -> int:
        """Return bubblewrap's pid on the host (the job's processes are in their own pid namespace)."""
        return self._process.pid

    @property
    def output(self) -> int:
        """Return the fd of the child's merged stdout and stderr."""
        return self._process.output

    @property
    def input(self) -> int:
        """Return the fd of the child's stdin (an on-bars session's requests go there)."""
        return self._process.input

    def wait(self, timeout: float | None) -> int | None:
        """Return the exit code (negative: killed by that signal), or None if still running after ``timeout``."""
        return self._process.wait(timeout)

    def kill_tree(self, *, grace: float = 1.0) -> None:
        """SIGTERM every process of the job, then kill its whole cgroup after ``grace`` seconds."""
        self._process.kill_tree(grace=grace)

    def verdict(self) -> Verdict:
        """Return how the child ended, naming the limit it hit (call after it ended).

        A child that exited oddly (not 0, not a user error's 2) with its ``/work``
        full filled it: it could not even write its result, so the worker names the limit.
        """
        found = self._process.verdict()
        if found.kind is VerdictKind.EXIT and self._process.wait(0) != EXIT_USER and self._work_full():
            limits = self._process.limits
            return Verdict(
                VerdictKind.WORK_FULL,
                f"the job filled its /work (limits.work_mb = {limits.work_bytes / MIB:,.0f} MiB, "
                f"limits.work_files = {limits.work_inodes:,} files)",
            )
        return found

    def _work_full(self) -> bool:
        if self._work is None:
            return False
        try:
            info = os.statvfs(self._work)
        except OSError:
            return False
        return info.f_bavail * info.f_frsize < 64 * 1024 or info.f_favail == 0

    def close(self) -> None:
        """Kill what is left, check and remove the cgroup, free the slot (the work folder stays for the results)."""
        try:
            self._process.close()
        finally:
            if callable(self._on_close):
                self._on_close()


class BubblewrapLauncher:
    """Start each job's child in the sandbox (see the module docstring)."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        limits: SandboxLimits = DEFAULT_SANDBOX_LIMITS,
        config: IsolationConfig | None = None,
    ) -> None:
        self._env = dict(env)
        self.limits = limits
        self._config = config
        self._sandbox: Sandbox | None = None
        self._lock = threading.Lock()
        self._mounted: dict[Path, bool] = {}  # work folder -> whether its child was closed
        self.self_test: SelfTestReport | None = None

    @property
    def sandbox(self) -> Sandbox:
        """Return the sandbox (set up on first use)."""
        with self._lock:
            if self._sandbox is None:
                self._sandbox = Sandbox(self._config)
            return self._sandbox

    def start(self) -> None:
        """Run the self-test; raise InfrastructureError (failed layer and fix) if the sandbox is not sound."""
        try:
            sandbox = self.sandbox
        except InfrastructureError as exc:
            self.self_test = SelfTestReport(ok=False, failures=[str(exc)])
            require_sandbox(self.self_test)
            raise
        self.self_test = sandbox_self_test(sandbox)
        require_sandbox(self.self_test)
        _log.info("%s; %s", self.self_test.summary(), sandbox.layout.describe())

    def _data_binds(self, work: Path) -> list[Bind]:
        """Bind the market data read-only; point the task at it as seen inside (no cache: the data is local)."""
        body = json.loads((work / TASK_FILE).read_text())
        url = str(body["data"]["url"])
        if "://" in url and not url.startswith("file://"):
            raise InfrastructureError(
                f"the sandbox has no network, so it cannot read market data at {url}; use a local data folder "
                "(the worker-side prefetch of remote data into the sandbox is not built yet)"
            )
        source = Path(url.removeprefix("file://")).resolve()
        if not source.exists():
            return []
        under_reserved = any(source == r or r in source.parents for r in RESERVED)
        target = _DATA_INSIDE if under_reserved else source
        body["data"] = {**body["data"], "url": str(target), "cache_root": None, "cache_capacity": 0}
        (work / TASK_FILE).write_text(json.dumps(body, indent=2, sort_keys=True))
        return [Bind(source, target)]

    @staticmethod
    def _memory_by_cgroup(work: Path) -> None:
        """Tell the child not to limit its data segment: the cgroup limits memory (a data limit breaks threads)."""
        body = json.loads((work / TASK_FILE).read_text())
        body["limits"] = {**body["limits"], "memory_rlimit": False}
        (work / TASK_FILE).write_text(json.dumps(body, indent=2, sort_keys=True))

    def launch(self, work: Path) -> SandboxedChild:
        """Start the child on ``work`` in the sandbox."""
        self._collect()
        sandbox = self.sandbox
        task = Task.read(work)
        limits = sandbox_limits(task.limits, self.limits)
        binds = self._data_binds(work)
        self._memory_by_cgroup(work)
        slot = sandbox.acquire_slot()
        try:
            sandbox.mount_work(work, limits=limits, slot=slot)
            with self._lock:
                self._mounted[work] = False
            argv = [sandbox.runtime.python, "-m", "quantfleet.dispatch.child", "/work"]
            process = sandbox.spawn(argv, work=work, limits=limits, env=self._env, binds=binds, slot=slot)
        except BaseException:
            sandbox.release_slot(slot)
            raise

        def closed() -> None:
            sandbox.release_slot(slot)
            with self._lock:
                self._mounted[work] = True

        return SandboxedChild(process, closed, work=work)

    def release(self, work: Path) -> None:
        """Remove ``work``'s tmpfs now (the worker read the results); else done once the folder is emptied."""
        with self._lock:
            mounted = self._mounted.pop(work, None) is not None
            sandbox = self._sandbox
        if mounted and sandbox is not None:
            sandbox.unmount_work(work)

    def _collect(self) -> None:
        """Unmount the work tmpfs of every closed child whose folder the worker emptied (its cleanup)."""
        with self._lock:
            done = [w for w, closed in self._mounted.items() if closed and (not w.exists() or not os.listdir(w))]
            for work in done:
                del self._mounted[work]
        for work in done:
            with contextlib.suppress(InfrastructureError):
                self.sandbox.unmount_work(work)

    def close(self) -> None:
        """Unmount every work tmpfs left (kept work folders lose their contents) and remove the state folder."""
        with self._lock:
            left = list(self._mounted)
            self._mounted.clear()
            sandbox, self._sandbox = self._sandbox, None
        if sandbox is None:
            return
        for work in left:
            with contextlib.suppress(InfrastructureError):
                sandbox.unmount_work(work)
        sandbox.close()
