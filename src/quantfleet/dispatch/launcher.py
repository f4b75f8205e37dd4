"""Start a job's child process: the one place the sandbox plugs in.

A :class:`ChildLauncher` starts ``quantfleet.dispatch.child`` on a prepared
work folder and returns a :class:`ChildProcess`: its pid (the leader of its
own process group), one pipe carrying its stdout and stderr, its exit code,
and a way to kill its whole process tree. Two launchers ship:

- :class:`ForkServerLauncher` (the default) forks children from a server
  process that has imported pandas, pyarrow, numba and the engine once (the
  ``forkserver`` start method of :mod:`multiprocessing`). A child starts in a
  few milliseconds instead of the ~1.5 s a fresh interpreter spends importing,
  and still shares no state with the worker: the server is a fresh
  interpreter, started with the scrubbed environment below.
- :class:`SubprocessLauncher` runs ``python -m quantfleet.dispatch.child WORK``
  fresh each time: the form the sandbox issue wraps in ``bwrap`` (its
  ``command`` is the one thing to change).

Both give the child an environment scrubbed of secrets: no database URL or
credentials reach it (object-store credentials only when the market data is
remote, for the cache to fetch files).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import os
import signal
import subprocess
import sys
import threading
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

__all__ = [
    "ChildLauncher",
    "ChildProcess",
    "ForkServerLauncher",
    "SubprocessLauncher",
    "child_environment",
    "default_launcher",
]

_KEEP = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT")
_SECRET_WORDS = ("DATABASE", "DB_", "PASSWORD", "SECRET", "TOKEN", "CREDENTIAL", "API_KEY", "APCA_")
_SINGLE_THREADED = {
    # One job per slot, one core per job: numeric libraries must not each start a thread per core.
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}


def child_environment(environ: Mapping[str, str], *, remote_data: bool = False) -> dict[str, str]:
    """Return the environment of a job's child: locale and paths, no secrets.

    ``QUANTFLEET_*`` settings pass unless they name a database or a secret;
    ``AWS_*`` passes only when ``remote_data`` (the child's data cache reads S3).
    """
    env: dict[str, str] = {}
    for key, value in environ.items():
        upper = key.upper()
        setting = upper.startswith("QUANTFLEET_") and not any(w in upper for w in _SECRET_WORDS)
        if key in _KEEP or upper.startswith("LC_") or setting or (remote_data and upper.startswith("AWS_")):
            env[key] = value
    env.update(_SINGLE_THREADED)
    return env


class ChildProcess(Protocol):
    """A running child: its pid, its output pipe, its exit code, and how to kill its whole tree."""

    @property
    def pid(self) -> int:
        """Return the child's pid (also its process group id)."""
        ...

    @property
    def output(self) -> int:
        """Return the file descriptor to read the child's merged stdout and stderr from (EOF when it ends)."""
        ...

    def wait(self, timeout: float | None) -> int | None:
        """Return the exit code (negative: killed by that signal), or None if still running after ``timeout``."""
        ...

    def kill_tree(self, *, grace: float = 1.0) -> None:
        """Send SIGTERM to the child's process group, then SIGKILL after ``grace`` seconds."""
        ...

    def close(self) -> None:
        """Release the worker's ends of the pipes (after the child ended)."""
        ...


class ChildLauncher(Protocol):
    """Start a job's child on a prepared work folder (task.json and the code already written)."""

    def launch(self, work: Path) -> ChildProcess:
        """Start the child; it runs the task in ``work``."""
        ...

    def close(self) -> None:
        """Stop whatever the launcher keeps running between jobs."""
        ...


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        # Not (yet) a group leader, or the group is gone: the child itself, if still there.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    except PermissionError:  # pragma: no cover - the pid was reused by a process we do not own
        pass


def _kill_tree(child: ChildProcess, grace: float) -> None:
    if child.wait(0) is None:
        _killpg(child.pid, signal.SIGTERM)
        child.wait(grace)
    _killpg(child.pid, signal.SIGKILL)  # the child, and anything it left behind in its group


class _ForkedChild:
    def __init__(self, process: multiprocessing.process.BaseProcess, output: int, life: int) -> None:
        self._process = process
        self._output = output
        self._life = life

    @property
    def pid(self) -> int:
        pid = self._process.pid
        assert pid is not None
        return pid

    @property
    def output(self) -> int:
        return self._output

    def wait(self, timeout: float | None) -> int | None:
        self._process.join(timeout)
        return self._process.exitcode

    def kill_tree(self, *, grace: float = 1.0) -> None:
        _kill_tree(self, grace)

    def close(self) -> None:
        for fd in (self._output, self._life):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._output = self._life = -1
        with contextlib.suppress(ValueError):
            self._process.close()


_server_lock = threading.Lock()


@contextlib.contextmanager
def _without_main() -> Iterator[None]:
    """Hide ``__main__`` while a child starts: multiprocessing would import it in the child.

    The worker's main module (the ``quantfleet`` script, pytest, a user's
    script) has no business in a job's child: importing it there costs time,
    pulls in the database layer, and re-runs an unguarded script.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class ForkServerLauncher:
    """Fork each child from a server that imported the engine once (see the module docstring)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._ctx = multiprocessing.get_context("forkserver")
        self._env = dict(env)

    def start(self) -> None:
        """Start the fork server now (else on the first launch), with the child's environment."""
        with _server_lock:
            multiprocessing.forkserver.set_forkserver_preload(["quantfleet.dispatch.child", "quantfleet.dispatch.warm"])
            saved = dict(os.environ)
            os.environ.clear()
            os.environ.update(self._env)
            try:
                multiprocessing.forkserver.ensure_running()
            finally:
                os.environ.clear()
                os.environ.update(saved)

    def launch(self, work: Path) -> ChildProcess:
        """Fork a child that runs the task in ``work``."""
        from quantfleet.dispatch.child import forked_entry  # the server imports it; this process only names it

        self.start()
        out_r, out_w = os.pipe()
        life_r, life_w = os.pipe()
        out_conn = multiprocessing.connection.Connection(out_w, readable=False)
        life_conn = multiprocessing.connection.Connection(life_r, writable=False)
        process = self._ctx.Process(
            target=forked_entry, args=(str(work), out_conn, life_conn), name="quantfleet-job", daemon=True
        )
        try:
            with _server_lock, _without_main():
                process.start()
        finally:
            out_conn.close()
            life_conn.close()
        return _ForkedChild(process, out_r, life_w)

    def close(self) -> None:
        """Leave the fork server running: it exits with this process."""


class _SpawnedChild:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        assert proc.stdout is not None
        self._output = proc.stdout.fileno()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def output(self) -> int:
        return self._output

    def wait(self, timeout: float | None) -> int | None:
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill_tree(self, *, grace: float = 1.0) -> None:
        _kill_tree(self, grace)

    def close(self) -> None:
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class SubprocessLauncher:
    """Start ``python -m quantfleet.dispatch.child WORK`` fresh for each job (the sandbox wraps ``command``)."""

    def __init__(self, env: Mapping[str, str], *, python: str = sys.executable) -> None:
        self._env = dict(env)
        self.python = python

    def command(self, work: Path) -> list[str]:
        """Return the child's command line (the sandbox prepends bwrap and its mounts here)."""
        return [self.python, "-m", "quantfleet.dispatch.child", str(work)]

    def launch(self, work: Path) -> ChildProcess:
        """Start the child process in its own session."""
        proc = subprocess.Popen(
            self.command(work),
            cwd=work,
            env=self._env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
        return _SpawnedChild(proc)

    def close(self) -> None:
        """Nothing runs between jobs."""


def default_launcher(env: Mapping[str, str], *, kind: str = "forkserver") -> ChildLauncher:
    """Return the launcher named ``kind``: ``forkserver`` (default) or ``subprocess``."""
    if kind == "subprocess":
        return SubprocessLauncher(env)
    if kind == "forkserver":
        return ForkServerLauncher(env)
    raise ValueError(f"unknown launcher {kind!r}; use forkserver or subprocess")

