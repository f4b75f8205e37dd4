"""Start a program in the sandbox, watch it, end it, and say how it ended.

One start, outermost layer first: a root shim (``/bin/sh``) is spawned with an
empty environment and waits on its stdin; the worker moves it into the job's
cgroup and sets its resource limits (``prlimit``), then tells it to go. The
shim drops to the slot's uid with ``setpriv`` (no groups, no capabilities,
an empty environment) and execs bubblewrap, which execs the program. Host
folders the slot uids cannot reach (a Python under ``/root``, a private work
folder) are bound read-only onto folders of the sandbox's state directory
(mode 0711, a random name: listable by nobody) once, at start. Everything the program starts
inherits the cgroup and the limits; the end kills the cgroup as a whole.

Cgroups, the job tmpfs and the state folder carry the worker's pid in their
names, so a new :class:`Sandbox` first removes those of a worker that died
without cleaning up (SIGKILL): :func:`~quantfleet.sandbox.isolation.cgroup.sweep_stale_cgroups`
and :func:`~quantfleet.sandbox.isolation.workdir.sweep_stale_mounts`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import resource
import secrets
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from quantfleet.core.errors import InfrastructureError
from quantfleet.sandbox.isolation.bwrap import Bind, PythonRuntime, bwrap_command, reachable_by_others
from quantfleet.sandbox.isolation.cgroup import CgroupLayout, JobCgroup, detect_cgroups, sweep_stale_cgroups
from quantfleet.sandbox.isolation.limits import MIB, SandboxLimits, niceness, rlimits, thread_environment
from quantfleet.sandbox.isolation.seccomp import program_fd, sandbox_program
from quantfleet.sandbox.isolation.verdict import Verdict, classify
from quantfleet.sandbox.isolation.workdir import (
    bind_readonly,
    mount_work,
    sweep_stale_mounts,
    unmount,
    unmount_work,
)

__all__ = ["IsolationConfig", "Sandbox", "SandboxResult", "SandboxedProcess", "sandbox_environment"]

_log = logging.getLogger(__name__)

_SHIM = 'read -r go && [ "$go" = go ] && exec "$@"; exit 111'
"""Wait for the worker's go (after the cgroup and the limits are in place), then exec the rest."""
_PASSED = frozenset({"LANG", "LANGUAGE", "TZ", "PYTHONUNBUFFERED", "PYTHONFAULTHANDLER", "PYTHONHASHSEED"})


def sandbox_environment(env: Mapping[str, str]) -> dict[str, str]:
    """Return what of ``env`` may enter the sandbox: the locale, ``TZ`` and a few interpreter switches."""
    return {k: v for k, v in env.items() if k in _PASSED or k.startswith("LC_")}


@dataclass(frozen=True, kw_only=True)
class IsolationConfig:
    """Where the sandbox's tools are, and the uids of its slots (one uid per concurrently running job)."""

    bwrap: str = "/usr/bin/bwrap"
    setpriv: str = "/usr/bin/setpriv"
    env: str = "/usr/bin/env"
    shell: str = "/bin/sh"
    uid_base: int = 61000
    slots: int = 64
    cgroup_root: Path = Path("/sys/fs/cgroup")
    strict: bool = False
    """Seccomp strict mode: the child entry point forbids exec and fork once started (see :mod:`.seccomp`)."""


@dataclass(frozen=True)
class SandboxResult:
    """A finished sandboxed run: its exit code, verdict and (capped) output."""

    code: int | None
    verdict: Verdict
    output: bytes


class SandboxedProcess:
    """A program running in the sandbox: the ``ChildProcess`` shape, plus its verdict and group cleanup."""

    def __init__(
        self, proc: subprocess.Popen[bytes], cgroup: JobCgroup, limits: SandboxLimits, release: object
    ) -> None:
        self._proc = proc
        self._cgroup = cgroup
        self.limits = limits
        self._release = release
        assert proc.stdout is not None
        self._output = proc.stdout.fileno()
        self.timed_out = False
        self.group_emptied: bool | None = None
        """After :meth:`close`: whether every process of the job was gone when the cgroup was removed."""
        self._oom_kills = 0
        self._pids_refused = 0
        self._closed = False

    @property
    def pid(self) -> int:
        """Return bubblewrap's pid (on the host)."""
        return self._proc.pid

    @property
    def output(self) -> int:
        """Return the fd of the merged stdout and stderr."""
        return self._output

    @property
    def input(self) -> int:
        """Return the fd of the program's stdin: after the shim read its go, the program reads the rest."""
        assert self._proc.stdin is not None
        return self._proc.stdin.fileno()

    @property
    def cgroup(self) -> JobCgroup:
        """Return the job's cgroup."""
        return self._cgroup

    def wait(self, timeout: float | None) -> int | None:
        """Return the exit code (negative: killed by that signal), None while running after ``timeout``."""
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if 128 < code < 128 + 65:  # bubblewrap reports a program killed by signal N as 128 + N
            return -(code - 128)
        return code

    def kill_tree(self, *, grace: float = 1.0) -> None:
        """Send SIGTERM to every process of the job, then kill the whole cgroup after ``grace`` seconds."""
        if self.wait(0) is None and grace > 0:
            self._cgroup.signal_all(signal.SIGTERM)
            self.wait(grace)
        self._snapshot()
        self._cgroup.kill()
        self.wait(5)

    def _snapshot(self) -> None:
        self._oom_kills = max(self._oom_kills, self._cgroup.oom_kills())
        self._pids_refused = max(self._pids_refused, self._cgroup.pids_max_hits())

    def verdict(self) -> Verdict:
        """Return how the job ended (call after it ended)."""
        if not self._closed:
            self._snapshot()
        return classify(
            self.wait(0),
            limits=self.limits,
            timed_out=self.timed_out,
            oom_kills=self._oom_kills,
            pids_refused=self._pids_refused,
        )

    def close(self) -> None:
        """Kill what is left of the job, check the cgroup is empty, remove it, free the slot."""
        if self._closed:
            return
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._snapshot()
        self.group_emptied = self._cgroup.kill()
        self.wait(5)
        self._cgroup.remove()
        self._closed = True
        if not self.group_emptied or self._cgroup.dirs:
            _log.error("sandbox: cgroup %s not empty or not removed after the job", self._cgroup.name)
        if callable(self._release):
            self._release()

    def run(self, *, timeout: float | None, output_cap: int = 1 * MIB) -> SandboxResult:
        """Wait for the end (killing the group at ``timeout``), collect the output, close; return the result."""
        chunks: list[bytes] = []
        size = 0

        def pump() -> None:
            nonlocal size
            while chunk := os.read(self._output, 65536):
                if size < output_cap:
                    chunks.append(chunk[: output_cap - size])
                size += len(chunk)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        code = self.wait(timeout)
        if code is None:
            self.timed_out = True
            self.kill_tree(grace=0)
        self._snapshot()
        self._cgroup.kill()
        reader.join(5)
        verdict = self.verdict()
        self.close()
        return SandboxResult(self.wait(0), verdict, b"".join(chunks))


class Sandbox:
    """The parent side of the isolation: checks the host once, then starts sandboxed programs."""

    def __init__(self, config: IsolationConfig | None = None, *, runtime: PythonRuntime | None = None) -> None:
        self.config = config or IsolationConfig()
        self._check_host()
        self.layout: CgroupLayout = detect_cgroups(self.config.cgroup_root)
        self.swept = self._sweep()
        # The worker's pid in the name: a later worker's sweep finds the mounts of a dead one.
        self.state = Path(tempfile.mkdtemp(prefix=f"quantfleet-sandbox-{os.getpid()}-"))
        os.chmod(self.state, 0o711)  # the slot uids traverse it to the staged folders, list nothing
        self._free = list(range(self.config.slots))
        self._lock = threading.Lock()
        self._count = itertools.count()
        self._stages: dict[Path, Path] = {}  # host folder -> its read-only stage
        self._work_stages: dict[Path, Path] = {}  # job work folder -> its tmpfs stage
        found = runtime or PythonRuntime.discover()
        try:
            binds = tuple(Bind(self._reachable(b.source), b.target) for b in found.binds)
        except InfrastructureError:
            self.close()
            raise
        self.runtime = PythonRuntime(binds=binds, python=found.python, pythonpath=found.pythonpath)

    def _check_host(self) -> None:
        tools = {
            "bubblewrap": (self.config.bwrap, "install bubblewrap: apt-get install bubblewrap"),
            "setpriv": (self.config.setpriv, "install util-linux (setpriv): apt-get install util-linux"),
        }
        for layer, (path, fix) in tools.items():
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                raise InfrastructureError(f"sandbox layer '{layer}': {path} not found; {fix}")
        if os.geteuid() != 0:
            raise InfrastructureError(
                "sandbox layer 'uid drop': the sandboxed worker must start as root (it creates cgroups, mounts "
                "each job's /work and drops to a per-slot uid); run it as root in its container"
            )

    def _sweep(self) -> list[str]:
        """Remove the cgroups and mounts a SIGKILLed worker left behind (before taking any job)."""
        swept = [f"cgroup {name}" for name in sweep_stale_cgroups(self.layout)]
        try:
            swept += [f"mount {target}" for target in sweep_stale_mounts(Path(tempfile.gettempdir()))]
        except OSError as exc:
            raise InfrastructureError(f"sandbox: cannot sweep the mounts of dead workers ({exc})") from exc
        if swept:
            _log.warning("sandbox: removed what a dead worker left behind: %s", "; ".join(swept))
        return swept

    def slot_uid(self, slot: int) -> int:
        """Return the uid of ``slot``."""
        return self.config.uid_base + slot

    def acquire_slot(self) -> int:
        """Take a free slot (its uid runs one job at a time)."""
        with self._lock:
            if not self._free:
                raise InfrastructureError(f"sandbox: all {self.config.slots} slots busy; raise IsolationConfig.slots")
            return self._free.pop(0)

    def release_slot(self, slot: int) -> None:
        """Give ``slot`` back."""
        with self._lock:
            if slot not in self._free:
                self._free.append(slot)

    def _reachable(self, source: Path) -> Path:
        """Return ``source``, or a read-only stage of it the slot uids can reach (bound once, kept)."""
        if reachable_by_others(source):
            return source
        with self._lock:
            stage = self._stages.get(source)
            if stage is None:
                stage = self.state / f"ro-{secrets.token_hex(8)}"  # unguessable: the state folder is not listable
                stage.mkdir(mode=0o711)
                bind_readonly(source, stage)
                self._stages[source] = stage
        return stage

    def spawn(
        self,
        argv: Sequence[str],
        *,
        work: Path,
        limits: SandboxLimits,
        env: Mapping[str, str] | None = None,
        binds: Sequence[Bind] = (),
        slot: int | None = None,
    ) -> SandboxedProcess:
        """Start ``argv`` in the sandbox with ``work`` as ``/work`` (owned by the slot's uid already)."""
        own_slot = slot is None
        slot = self.acquire_slot() if slot is None else slot
        uid = self.slot_uid(slot)
        cgroup: JobCgroup | None = None
        proc: subprocess.Popen[bytes] | None = None
        seccomp_fd: int | None = None
        try:
            work_stage = self._work_stages.get(work, work)
            if not reachable_by_others(work_stage.parent, readable=False):
                raise InfrastructureError(
                    f"sandbox: {work} is not reachable by the slot uids; mount it with mount_work"
                )
            staged = [Bind(self._reachable(b.source), b.target, b.writable) for b in binds]
            inner_env = {
                **sandbox_environment(env or {}),
                **thread_environment(limits),
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "HOME": "/work",
                "TMPDIR": "/tmp",
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONNOUSERSITE": "1",
                "MPLCONFIGDIR": "/tmp",
            }
            inner_env.setdefault("LANG", "C.UTF-8")
            if self.runtime.pythonpath:
                inner_env["PYTHONPATH"] = ":".join(self.runtime.pythonpath)
            seccomp_fd = program_fd(sandbox_program())
            inner = bwrap_command(
                list(argv),
                bwrap=self.config.bwrap,
                work=work_stage,
                binds=[*self.runtime.binds, *staged],
                env=inner_env,
                tmp_bytes=limits.tmp_bytes,
                shm_bytes=limits.shm_bytes,
                seccomp_fd=seccomp_fd,
                strict=self.config.strict,
            )
            drop = [
                self.config.env,
                "-i",
                self.config.setpriv,
                f"--reuid={uid}",
                f"--regid={uid}",
                "--clear-groups",
                "--inh-caps=-all",
            ]
            command = [self.config.shell, "-c", _SHIM, "quantfleet-shim", *drop, *inner]
            cgroup = JobCgroup(self.layout, f"quantfleet-{os.getpid()}-{slot}-{next(self._count)}", limits)
            proc = subprocess.Popen(
                command,
                env={},  # nothing of the worker's: bubblewrap's own environment is readable inside
                cwd="/",
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                pass_fds=(seccomp_fd,),
            )
            cgroup.add(proc.pid)
            for kind, soft, hard in rlimits(limits):
                resource.prlimit(proc.pid, kind, (soft, hard))
            # Before "go", so all it starts inherits it; never above the worker's own priority (that needs a privilege).
            os.setpriority(os.PRIO_PROCESS, proc.pid, max(niceness(limits), os.getpriority(os.PRIO_PROCESS, 0)))
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
        except BaseException as exc:
            if proc is not None:
                with contextlib.suppress(OSError):
                    proc.kill()
                proc.wait()
            if cgroup is not None:
                cgroup.kill()
                cgroup.remove()
            if own_slot:
                self.release_slot(slot)
            if isinstance(exc, OSError):
                raise InfrastructureError(f"sandbox: cannot start the job's process ({exc})") from exc
            raise
        finally:
            if seccomp_fd is not None:
                os.close(seccomp_fd)
        release = (lambda: self.release_slot(slot)) if own_slot else None
        return SandboxedProcess(proc, cgroup, limits, release)

    def mount_work(self, work: Path, *, limits: SandboxLimits, slot: int) -> None:
        """Put ``work`` on a capped tmpfs owned by ``slot``'s uid (what is in it is kept)."""
        (self.state / "work").mkdir(mode=0o711, exist_ok=True)
        stage = self.state / "work" / f"{slot}-{next(self._count)}-{secrets.token_hex(8)}"
        mount_work(work, stage=stage, size=limits.work_bytes, inodes=limits.work_inodes, uid=self.slot_uid(slot))
        with self._lock:
            self._work_stages[work] = stage

    def unmount_work(self, work: Path) -> None:
        """Remove ``work``'s tmpfs and the folder."""
        with self._lock:
            stage = self._work_stages.pop(work, None)
        if stage is not None:
            unmount_work(work, stage=stage)

    def run(self, argv: Sequence[str], *, work: Path, limits: SandboxLimits, **kwargs: object) -> SandboxResult:
        """Run ``argv`` to its end (wall clock from ``limits``); return the result."""
        process = self.spawn(argv, work=work, limits=limits, **kwargs)  # type: ignore[arg-type]
        return process.run(timeout=limits.wall_seconds)

    def close(self) -> None:
        """Unmount every stage and work tmpfs left, then remove the state folder (never recursively)."""
        with self._lock:
            works, stages = dict(self._work_stages), list(self._stages.values())
            self._work_stages.clear()
            self._stages.clear()
        for work, stage in works.items():
            with contextlib.suppress(InfrastructureError):
                unmount_work(work, stage=stage)
        for stage in stages:
            with contextlib.suppress(InfrastructureError):
                unmount(stage)
        for folder in [*stages, self.state / "work", self.state]:
            with contextlib.suppress(OSError):
                folder.rmdir()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_empty(cgroup: JobCgroup, timeout: float = 2.0) -> bool:
    """Return True once ``cgroup`` has no members (polling up to ``timeout``)."""
    deadline = time.monotonic() + timeout
    while cgroup.members():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
