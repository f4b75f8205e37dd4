"""The host's end of an on-bars session's sandboxed child: start it, send it a request, read its answer.

The child (:mod:`quantfleet.sandbox.live_session`) is started with the job
launcher's machinery (bubblewrap and seccomp unless ``QUANTFLEET_SANDBOX=trusted``:
no network, no host files, an environment without the broker's keys) and
lives as long as the session. Requests go to its stdin, one JSON line each;
its stdout and stderr come back on one pipe, where the lines starting with
:data:`~quantfleet.engine.live.messages.SESSION_MARK` are its answers and
every other line is the strategy's log. Each answer is checked like a
scheduled run's orders.json (:func:`~quantfleet.engine.live.messages.check_output`).

A child that ends without answering raises :class:`ChildLost` (the session
starts another), or :class:`~quantfleet.strategy.loader.StrategyError` when it
ended on the strategy's own error (exit code 2: the message is the user's
traceback, as in a backtest).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from quantfleet.core.errors import InfrastructureError
from quantfleet.core.settings import Settings
from quantfleet.dispatch.launcher import (
    ChildLauncher,
    ChildProcess,
    ForkServerLauncher,
    SubprocessLauncher,
    child_environment,
)
from quantfleet.dispatch.limits import Limits
from quantfleet.dispatch.task import EXIT_USER, DataRef, Task, TaskKind, read_result
from quantfleet.dispatch.trusted import TrustedLauncher, launcher_from_settings
from quantfleet.engine.feed import FIELDS
from quantfleet.engine.live.context import BarHistory
from quantfleet.engine.live.messages import BARS_FILE, RUN_FILE, SESSION_MARK, RunOutput, check_output
from quantfleet.jobs import JobService
from quantfleet.strategy.loader import StrategyError

__all__ = ["ChildLost", "StrategyChild", "session_launcher"]

log = logging.getLogger(__name__)

READY_TIMEOUT = 120.0
"""Seconds a new child may take to import, load the strategy and run initialize."""
STEP_TIMEOUT = 300.0
"""Seconds one step (on_fill and on_bar) may take before the child counts as hung and is replaced."""
SESSION_LIMITS = Limits(cpu_seconds=None, wall_seconds=None, memory_bytes=2048 * 1024 * 1024, work_bytes=256 * 1024**2)
"""A session lives for days: no CPU or wall-clock limit; memory and /work are capped as a job's."""


class ChildLost(InfrastructureError):
    """The strategy's child ended (or hung) without answering a request."""


def session_launcher(settings: Settings, service: JobService) -> ChildLauncher:
    """Return the launcher a session's child starts with: the workers' (sandbox policy and all), started.

    A fork server's children read no requests on stdin, so under ``QUANTFLEET_SANDBOX=trusted`` the
    session's child is a fresh interpreter instead (still with the scrubbed environment).
    """
    env = child_environment(os.environ)
    launcher = launcher_from_settings(settings, env, service=service)
    if isinstance(launcher, TrustedLauncher) and isinstance(launcher.inner, ForkServerLauncher):
        launcher = TrustedLauncher(SubprocessLauncher(env))
    start = getattr(launcher, "start", None)
    if start is not None:
        start()  # the sandbox's self-test: fails closed before any strategy runs
    return launcher


def _write_history(history: BarHistory, universe: tuple[str, ...], path: Path) -> None:
    n = len(history)
    arrays: dict[str, Any] = {
        f: np.column_stack([history.column(f, s) for s in universe]) if n else np.zeros((0, len(universe)))
        for f in FIELDS
    }
    arrays["ts"] = np.asarray(history.ts, dtype=np.int64)
    np.savez(path, **arrays)


class StrategyChild:
    """One running child of a session (see the module docstring)."""

    def __init__(
        self,
        launcher: ChildLauncher,
        work: Path,
        *,
        code: bytes,
        code_name: str,
        class_name: str | None,
        start: Mapping[str, Any],
        history: BarHistory,
        logger: logging.Logger,
    ) -> None:
        self.launcher = launcher
        self.work = work
        self.logger = logger
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        (work / code_name).write_bytes(code)
        (work / RUN_FILE).write_text(json.dumps(dict(start), sort_keys=True, default=str))
        _write_history(history, tuple(start["universe"]), work / BARS_FILE)
        spec = {"strategy": code_name, "class_name": class_name}
        # The child reads no market data (the host hands it its bars): point it at nothing to mount.
        data = DataRef(url=str(work.parent / "no-market-data"))
        Task(kind=TaskKind.LIVE_SESSION, spec=spec, data=data, limits=SESSION_LIMITS).write(work)
        self._closed = False
        self.process: ChildProcess = launcher.launch(work)
        fd = getattr(self.process, "input", None)
        if fd is None:
            self.process.kill_tree(grace=0)
            self.process.close()
            raise InfrastructureError(
                f"the {type(launcher).__name__} gives its children no stdin, so an on-bars session cannot talk to "
                "its strategy; use the bubblewrap launcher (or the subprocess one under QUANTFLEET_SANDBOX=trusted)"
            )
        self._input = os.fdopen(os.dup(fd), "wb")
        self._answers: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="quantfleet-session-output", daemon=True)
        self._reader.start()
        self._wait(READY_TIMEOUT, "start (load the strategy and run initialize)")

    @property
    def pid(self) -> int:
        """Return the child's pid on the host (bubblewrap's, in the sandbox)."""
        return self.process.pid

    def _read(self) -> None:
        with open(self.process.output, "rb", closefd=False) as stream:
            for raw in stream:
                line = raw.decode("utf-8", errors="backslashreplace").rstrip("\n")
                if line.startswith(SESSION_MARK):
                    self._answers.put(line[len(SESSION_MARK) :])
                else:
                    self.logger.info("%s", line)
        self._answers.put(None)

    def _wait(self, timeout: float, what: str) -> str:
        try:
            line = self._answers.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise ChildLost(f"the strategy's child did not {what} within {timeout:g} s; it was killed") from None
        if line is not None:
            return line
        code = self.process.wait(10)
        result = read_result(self.work)
        if result is not None and result.message and (code == EXIT_USER or result.status == "user_error"):
            self.close()
            raise StrategyError(result.message)
        self.close()
        detail = f": {result.message}" if result is not None and result.message else ""
        raise ChildLost(f"the strategy's child ended (exit code {code}) before it could {what}{detail}")

    def request(self, body: Mapping[str, Any], *, timeout: float = STEP_TIMEOUT) -> RunOutput:
        """Send one request; return the child's checked answer (ChildLost, StrategyError, or UserError)."""
        try:
            self._input.write(json.dumps(dict(body), allow_nan=False).encode() + b"\n")
            self._input.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # it is gone: its end (and why) is read below
        line = self._wait(timeout, "answer")
        try:
            answer = json.loads(line)
        except ValueError as exc:
            self.close()
            raise ChildLost(f"the strategy's child answered with a line that is not JSON ({exc})") from exc
        return check_output(answer)

    def close(self) -> None:
        """Kill the child (its whole tree), free its sandbox slot and remove its work folder."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError, ValueError):
            self._input.close()
        self.process.kill_tree(grace=0)
        self.process.wait(10)  # reaped: no zombie, and its exit code is known
        self._reader.join(5)
        self.process.close()
        release = getattr(self.launcher, "release", None)
        if callable(release):
            with contextlib.suppress(InfrastructureError):
                release(self.work)
        shutil.rmtree(self.work, ignore_errors=True)
