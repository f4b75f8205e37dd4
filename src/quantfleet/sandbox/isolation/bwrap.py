"""The bubblewrap command line of one job, and the read-only binds it needs.

Inside the sandbox the job sees: ``/usr`` (and ``/bin``, ``/lib*`` as links or
binds), ``/etc/ssl``, ``/etc/alternatives``, ``/etc/ld.so.cache`` and a few
name files, the Python runtime (the environment's prefix and the base
interpreter's, plus any source folder on ``sys.path``), the job's data files,
all read-only; its ``/work`` (read-write, capped by the worker), a capped
``/tmp`` and ``/dev/shm``, a fresh ``/proc`` and a minimal ``/dev``. The root
is remounted read-only. Every namespace is new (network: loopback only),
nested user namespaces are disabled, the job is in a new session and dies
with its parent, and the seccomp filter (:mod:`.seccomp`) is loaded last.
Only the variables passed are set: bubblewrap itself starts with an empty
environment (what it holds is readable through ``/proc/1/environ``).

A host folder the job's uid cannot reach (a runtime under ``/root``, a work
folder under a private folder) is *staged*: the worker's start-up shim binds it,
in a private mount namespace, onto a reachable folder of the sandbox's state
directory, and bubblewrap binds that.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from quantfleet.sandbox.isolation.seccomp import STRICT_ENV

__all__ = ["RESERVED", "Bind", "PythonRuntime", "bwrap_command", "reachable_by_others"]

RESERVED = (Path("/work"), Path("/tmp"), Path("/proc"), Path("/dev"), Path("/run/quantfleet"))
"""Sandbox paths the job's own mounts use: host folders under them are bound elsewhere."""

_SYSTEM = ("/usr", "/etc/ssl", "/etc/alternatives", "/etc/ld.so.cache", "/etc/localtime", "/etc/nsswitch.conf")


@dataclass(frozen=True)
class Bind:
    """One bind mount: ``source`` on the host, ``target`` in the sandbox."""

    source: Path
    target: Path
    writable: bool = False


def reachable_by_others(path: Path, *, readable: bool = True) -> bool:
    """Return whether an unprivileged uid can reach ``path``: every folder on the way searchable by others."""
    try:
        resolved = path.resolve()
        for folder in reversed(resolved.parents):
            if not os.stat(folder).st_mode & stat.S_IXOTH:
                return False
        mode = os.stat(resolved).st_mode
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
        return bool(mode & stat.S_IROTH) or not readable
    except OSError:
        return False


def _under(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or root in path.parents for root in roots)


@dataclass(frozen=True)
class PythonRuntime:
    """The interpreter the job runs: the folders to bind read-only and its path inside."""

    binds: tuple[Bind, ...]
    python: str
    """The interpreter inside the sandbox."""
    pythonpath: tuple[str, ...]
    """Source folders on the worker's ``sys.path`` outside the prefixes (an editable install), as seen inside."""

    @classmethod
    def discover(cls) -> PythonRuntime:
        """Return this worker's runtime: ``sys.prefix``, ``sys.base_prefix`` and extra ``sys.path`` folders."""
        prefixes = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()]
        # Only the folder quantfleet itself is imported from (an editable install): never the script's folder,
        # the current folder or a test runner's additions to sys.path, which may hold anything.
        extras: list[Path] = []
        spec = importlib.util.find_spec("quantfleet")
        for location in (spec.submodule_search_locations or []) if spec else []:
            folder = Path(location).resolve().parent
            if not _under(folder, tuple(prefixes)) and folder not in extras:
                extras.append(folder)
        binds: list[Bind] = []
        seen: set[Path] = set()
        for index, folder in enumerate([*prefixes, *extras]):
            if folder in seen:
                continue
            seen.add(folder)
            target = Path(f"/run/quantfleet/rt{index}") if _under(folder, RESERVED) else folder
            binds.append(Bind(folder, target))
        inside = {bind.source: bind.target for bind in binds}
        executable = Path(sys.executable)
        prefix = Path(sys.prefix)
        if prefix in executable.parents:  # the environment's own launcher (a venv's bin/python), not resolved
            python = inside[prefixes[0]] / executable.relative_to(prefix)
        else:
            python = inside[prefixes[1]] / "bin" / executable.name
        return cls(binds=tuple(binds), python=str(python), pythonpath=tuple(str(inside[e]) for e in extras))


def _system_binds() -> list[str]:
    args: list[str] = []
    for name in ("bin", "lib", "lib32", "lib64", "sbin"):
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            args += ["--ro-bind", str(host), str(host)]
    for path in _SYSTEM:
        args += ["--ro-bind-try", path, path]
    return args


def bwrap_command(
    argv: list[str],
    *,
    bwrap: str,
    work: Path,
    binds: list[Bind],
    env: dict[str, str],
    tmp_bytes: int,
    shm_bytes: int,
    seccomp_fd: int,
    strict: bool = False,
) -> list[str]:
    """Return the bubblewrap command that runs ``argv`` in ``/work`` (``work`` on the host) with only ``env``.

    ``seccomp_fd`` holds the BPF program (:func:`~quantfleet.sandbox.isolation.seccomp.sandbox_program`) that
    bubblewrap loads after its set-up, before it execs ``argv``; ``strict`` tells the child entry point to
    enter strict mode (no exec, no fork) once the interpreter has started.
    """
    args = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--new-session",
        "--die-with-parent",
        "--hostname",
        "sandbox",
        *_system_binds(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(shm_bytes),
        "--tmpfs",
        "/dev/shm",
        "--size",
        str(tmp_bytes),
        "--tmpfs",
        "/tmp",
    ]
    for bind in binds:
        args += ["--bind" if bind.writable else "--ro-bind", str(bind.source), str(bind.target)]
    args += ["--bind", str(work), "/work", "--chdir", "/work"]
    for key, value in sorted({**env, **({STRICT_ENV: "1"} if strict else {})}.items()):
        args += ["--setenv", key, value]
    return [*args, "--remount-ro", "/", "--seccomp", str(seccomp_fd), "--", *argv]
