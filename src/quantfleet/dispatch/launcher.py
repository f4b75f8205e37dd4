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
  interpreter, spawned once with the scrubbed environment below (passed to
  ``posix_spawn``: the worker's own ``os.environ`` is never modified, since
  other threads read it), and every child replaces its environment with the
  one the launch hands it, right after the fork and before any user code.
- :class:`SubprocessLauncher` runs ``python -m quantfleet.dispatch.child WORK``
  fresh each time: the form the sandbox issue wraps in ``bwrap`` (its
  ``command`` is the one thing to change).

Both give the child an environment built from a whitelist
(:func:`child_environment`): locale, PATH, the thread counts, the
``QUANTFLEET_*`` settings of the market data, and nothing else; ``HOME`` is
the job's private work folder. No database URL, broker URL or object-store
key reaches it (AWS credentials only when the market data is on S3, for the
cache to fetch files: the sandbox issue is to replace them with a read-only,
data-only credential).
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

from quantfleet.core.errors import ConfigError

__all__ = [
    "ChildLauncher",
    "ChildProcess",
    "ForkServerLauncher",
    "SubprocessLauncher",
    "child_environment",
    "default_launcher",
]

_KEEP = frozenset({"PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT"})
_DATA_SETTINGS = frozenset(
    {
        # What locates and caches the market data; nothing else of QUANTFLEET_* (database, objects,
        # broker, home, keys) may reach a job's child.
        "QUANTFLEET_DATA_URL",
        "QUANTFLEET_CACHE_DIR",
        "QUANTFLEET_CACHE_CAPACITY_GB",
        "QUANTFLEET_CACHE_THRESHOLD",
        "QUANTFLEET_S3_ENDPOINT_URL",
        "QUANTFLEET_S3_REGION",
    }
)
_AWS_DATA = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"}
)
_SINGLE_THREADED = {
    # One job per slot, one core per job: numeric libraries must not each start a thread per core.
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}


def child_environment(environ: Mapping[str, str], *, remote_data: bool = False) -> dict[str, str]:
    """Return the environment of a job's child: a whitelist, so no secret reaches it.

    Kept: ``PATH``, the locale (``LANG``, ``LC_*``), ``TZ``, the interpreter's
    paths, the thread counts (forced to one) and the ``QUANTFLEET_*`` settings
    of the market data; the ``AWS_*`` credentials only when ``remote_data``
    (the child's data cache reads S3). ``HOME`` is set per launch to the job's
    work folder.
    """
    env: dict[str, str] = {}
    for key, value in environ.items():
        if key in _KEEP or key.startswith("LC_") or key in _DATA_SETTINGS or (remote_data and key in _AWS_DATA):
            env[key] = value
    env.update(_SINGLE_THREADED)
    return env


def _for_launch(env: Mapping[str, str], work: Path) -> dict[str, str]:
    """Return ``env`` with the job's private ``HOME`` (its work folder)."""
    return {**env, "HOME": str(work)}


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


def _killpg(pid: int, sig: int, *, reaped: bool) -> None:
    """Signal the child's process group; the child alone only while it is not reaped.

    Once reaped, its pid may belong to an unrelated process: only the group
    (which the pid names as long as any member lives) is signalled then.
    """
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        if not reaped:  # not (yet) a group leader: the child itself, whose pid is still ours
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    except PermissionError:  # pragma: no cover - the group id was reused by a process we do not own
        pass


def _kill_tree(child: ChildProcess, grace: float) -> None:
    if child.wait(0) is None:
        _killpg(child.pid, signal.SIGTERM, reaped=False)
        child.wait(grace)
    # The child, and anything it left behind in its group; os.kill only while the child is unreaped.
    _killpg(child.pid, signal.SIGKILL, reaped=child.wait(0) is not None)


class _ForkedChild:
    """A child forked by the fork server; only its own :meth:`wait` ever reads its exit code.

    The fork server sends a child's exit code once, as four bytes on the
    child's sentinel pipe, and multiprocessing's ``poll`` is not thread-safe:
    when two threads poll at once, one reads the code and the other finds the
    pipe at its end and records 255 ("the fork server died") over it. Every
    ``Process.start()`` in the process polls every child it knows of first, so
    a slot's launch would race another slot's wait on a child that just ended,
    and a job that succeeded was retried as an infrastructure failure (run
    twice). So the launcher takes its children out of multiprocessing's own
    list (:func:`_unlist`), and one lock per child serializes its waits.
    """

    def __init__(self, process: multiprocessing.process.BaseProcess, output: int, life: int) -> None:
        self._process = process
        self._output = output
        self._life = life
        self._wait_lock = threading.Lock()

    @property
    def pid(self) -> int:
        pid = self._process.pid
        assert pid is not None
        return pid

    @property
    def output(self) -> int:
        return self._output

    def wait(self, timeout: float | None) -> int | None:
        with self._wait_lock:  # one reader of the exit code at a time (see the class docstring)
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


def _unlist(process: multiprocessing.process.BaseProcess) -> None:
    """Take ``process`` out of the children every ``Process.start()`` and ``active_children()`` poll.

    Their poll would read its exit code behind the back of the thread that
    waits for it (see :class:`_ForkedChild`). Call with ``_server_lock`` held,
    right after ``start()``: launches poll under that lock, so nothing polls the
    new child between the two. The list is private to multiprocessing; on a
    Python without it, nothing is done (and the race is back).
    """
    children = getattr(multiprocessing.process, "_children", None)
    if isinstance(children, set):
        children.discard(process)


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


def _spawn_server(env: Mapping[str, str]) -> None:
    """Start multiprocessing's fork server with ``env``, leaving this process's environment alone.

    :func:`multiprocessing.forkserver.ensure_running` spawns the server with
    the caller's environment; this does what it does with ``posix_spawn`` and
    an explicit environment instead, so the server (which imports numpy with
    one thread, and whose exec-time environment every child shares) never
    holds the worker's secrets. Falls back to the stock start if the private
    attributes it relies on are not there (another Python version).
    """
    import socket
    from multiprocessing import resource_tracker, spawn, util

    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    needed = ("_lock", "_forkserver_pid", "_forkserver_address", "_forkserver_alive_fd", "_preload_modules")
    if server is None or not all(hasattr(server, name) for name in needed):  # pragma: no cover - other Pythons
        multiprocessing.forkserver.ensure_running()
        return
    with server._lock:
        resource_tracker.ensure_running()
        if server._forkserver_pid is not None:
            pid, _ = os.waitpid(server._forkserver_pid, os.WNOHANG)
            if not pid:
                return  # still running
            os.close(server._forkserver_alive_fd)
            server._forkserver_address = server._forkserver_alive_fd = server._forkserver_pid = None
        data: dict[str, object] = {}
        if server._preload_modules:
            prepared = spawn.get_preparation_data("ignore")
            data = {k: v for k, v in prepared.items() if k == "sys_path"}  # never the worker's __main__
        with socket.socket(socket.AF_UNIX) as listener:
            address = multiprocessing.connection.arbitrary_address("AF_UNIX")  # type: ignore[attr-defined]
            listener.bind(address)
            if not util.is_abstract_socket_namespace(address):
                os.chmod(address, 0o600)
            listener.listen()
            alive_r, alive_w = os.pipe()
            try:
                preload = server._preload_modules
                fds = f"{listener.fileno()}, {alive_r}"
                cmd = f"from multiprocessing.forkserver import main; main({fds}, {preload!r}, **{data!r})"
                exe = spawn.get_executable()
                args = [exe, *util._args_from_interpreter_flags(), "-c", cmd]  # type: ignore[attr-defined]
                for fd in (listener.fileno(), alive_r):
                    os.set_inheritable(fd, True)  # private fds: only this spawn inherits them
                pid = os.posix_spawn(exe, args, dict(env))
            except BaseException:
                os.close(alive_w)
                raise
            finally:
                os.close(alive_r)
            server._forkserver_address = address
            server._forkserver_alive_fd = alive_w
            server._forkserver_pid = pid


class ForkServerLauncher:
    """Fork each child from a server that imported the engine once (see the module docstring)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._ctx = multiprocessing.get_context("forkserver")
        self._env = dict(env)

    def start(self) -> None:
        """Start the fork server now (else on the first launch), with the child's environment.

        Never touches ``os.environ``: the worker's other threads read it. One
        server serves the whole process (multiprocessing keeps one); each child
        applies its own environment after the fork anyway (see ``forked_entry``).
        """
        with _server_lock:
            multiprocessing.forkserver.set_forkserver_preload(["quantfleet.dispatch.child", "quantfleet.dispatch.warm"])
            _spawn_server(self._env)

    def launch(self, work: Path) -> ChildProcess:
        """Fork a child that runs the task in ``work``, in the environment of this launcher."""
        from quantfleet.dispatch.child import forked_entry  # the server imports it; this process only names it

        self.start()
        out_r, out_w = os.pipe()
        life_r, life_w = os.pipe()
        out_conn = multiprocessing.connection.Connection(out_w, readable=False)
        life_conn = multiprocessing.connection.Connection(life_r, writable=False)
        env = _for_launch(self._env, work)
        process = self._ctx.Process(
            target=forked_entry, args=(str(work), out_conn, life_conn, env), name="quantfleet-job", daemon=True
        )
        try:
            with _server_lock, _without_main():
                process.start()
                _unlist(process)
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

    @property
    def input(self) -> int:
        """Return the fd of the child's stdin (an on-bars session's requests go there)."""
        assert self._proc.stdin is not None
        return self._proc.stdin.fileno()

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
            env=_for_launch(self._env, work),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
        return _SpawnedChild(proc)

    def close(self) -> None:
        """Nothing runs between jobs."""


LAUNCHERS = ("forkserver", "subprocess", "bubblewrap")
"""The child launchers a worker can use (``QUANTFLEET_WORKER_LAUNCHER`` or ``--launcher``)."""


def default_launcher(env: Mapping[str, str], *, kind: str = "forkserver", strict: bool = False) -> ChildLauncher:
    """Return the launcher named ``kind``: ``forkserver`` (default), ``subprocess`` or ``bubblewrap`` (sandboxed).

    ``strict``: the sandbox's seccomp strict mode (no exec or fork once the child started; bubblewrap only).
    """
    if kind == "subprocess":
        return SubprocessLauncher(env)
    if kind == "forkserver":
        return ForkServerLauncher(env)
    if kind == "bubblewrap":
        from quantfleet.dispatch.sandboxed import BubblewrapLauncher  # it builds on this module
        from quantfleet.sandbox.isolation import IsolationConfig

        return BubblewrapLauncher(env, config=IsolationConfig(strict=strict))
    raise ConfigError(f"unknown launcher {kind!r}; use one of {', '.join(LAUNCHERS)}")
