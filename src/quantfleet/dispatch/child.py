"""The child process of one job: run the task in its work folder, report through files and the exit code.

Run as ``python -m quantfleet.dispatch.child WORK`` (a fresh interpreter: the
launcher the sandbox will wrap) or forked from the worker's pre-imported fork
server (:func:`forked_entry`; the default, so a job does not pay for importing
pandas, pyarrow and numba). Either way the child

- is the leader of its own session and process group, so the worker can kill
  the whole tree with one ``killpg``;
- has its stdout and stderr on one pipe the worker reads into the job's log,
  and the strategy's logger writes there too;
- applies its resource limits before the strategy file is loaded, and in the
  sandbox's strict mode forbids itself exec and fork then too;
- unpacks a strategy archive (``.zip``) itself, refusing an unsafe one
  (:mod:`quantfleet.sandbox.archive`): in the sandbox, that is inside it;
- watches its stdin: the worker holds the other end, so when the worker dies
  the child kills its own process group instead of running on unobserved (an
  on-bars session's child reads its requests there, and does the same at EOF);
- never imports the job service, the database layer or their settings: no
  database credentials reach it (import-linter checks the imports, and the
  launcher scrubs the environment).

Exit codes: 0 done, 2 user error (the message, user's traceback first, on
stderr and in result.json), 3 (or any other) infrastructure failure.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from quantfleet.core.errors import InfrastructureError, UserError
from quantfleet.dispatch.fanout import expand_sweep, gather_sweep, run_sweep_request
from quantfleet.dispatch.limits import Limits, apply_limits, limit_hit
from quantfleet.dispatch.task import (
    CHILDREN_FILE,
    EXIT_INFRA,
    EXIT_OK,
    EXIT_USER,
    OUT_DIR,
    Task,
    TaskKind,
    TaskResult,
)

# Imported here, not per task: the fork server preloads this module, so children start with them in memory.
from quantfleet.sandbox import BacktestSpec, run_spec
from quantfleet.sandbox.archive import is_archive, unpack_strategy
from quantfleet.sandbox.isolation.seccomp import STRICT_ENV, enter_strict_mode
from quantfleet.sandbox.live import run_live_step
from quantfleet.sandbox.live_session import serve_live_session

__all__ = ["forked_entry", "main", "run_task"]


def _watch_parent(fd: int) -> None:
    """Kill this process group when ``fd`` (the worker's end of a pipe) reaches EOF: the worker is gone."""

    def watch() -> None:
        try:
            while os.read(fd, 4096):
                pass
        except OSError:
            pass
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="quantfleet-parent-watch", daemon=True).start()


def _limit_exceeded(limits: Limits) -> None:
    def on_xcpu(signum: int, frame: Any) -> None:
        sys.stderr.write(f"\nquantfleet: CPU time limit of {limits.cpu_seconds:g}s exceeded\n")
        sys.stderr.flush()
        os._exit(128 + signal.SIGXCPU)

    signal.signal(signal.SIGXCPU, on_xcpu)


def _unpack(task: Task, work: Path) -> Task:
    """Unpack a strategy archive into ``work/code`` (here, in the job's own process); point the task at its file."""
    own = task.kind in (TaskKind.BACKTEST, TaskKind.LIVE, TaskKind.LIVE_SESSION)  # the spec names the strategy itself
    backtest = task.spec if own else task.spec.get("backtest")
    if not isinstance(backtest, dict) or not is_archive(str(backtest.get("strategy", ""))):
        return task
    entry = unpack_strategy(work / backtest["strategy"], work / "code")
    sys.path.insert(0, str(entry.parent))  # the archive's helper modules import as top-level ones
    relative = {**backtest, "strategy": str(entry.relative_to(work))}
    spec = relative if own else {**task.spec, "backtest": relative}
    return dataclasses.replace(task, spec=spec)


def run_task(work: Path) -> int:
    """Run the task in ``work``; write result.json; return the exit code."""
    task = Task.read(work)
    apply_limits(task.limits)
    if task.limits.cpu_seconds is not None:
        _limit_exceeded(task.limits)
    try:
        if os.environ.get(STRICT_ENV) == "1":  # the sandbox's strict mode: imports done, the job's code not loaded
            enter_strict_mode()
        task = _unpack(task, work)
        result = _dispatch(task, work)
    except UserError as exc:
        hit = limit_hit(exc, task.limits)
        if hit is None:
            return _user_error(str(exc), work)
        return _user_error(f"{hit[0]}; raise the limit or use less:\n{exc}", work, reason=hit[1])
    except ValidationError as exc:  # the job's own settings (engine, backtest) are invalid: the user's to fix
        return _user_error(f"the job's settings are invalid; fix them and submit again:\n{exc}", work)
    except SystemExit as exc:
        return _user_error(
            f"the strategy called sys.exit({exc.code!r}); return from run()/on_bar instead of exiting", work
        )
    except MemoryError:
        limit = task.limits.memory_bytes
        message = "the job ran out of memory" + (
            f" (its limit is {limit / 1024**2:,.0f} MiB); ask for more memory or use less data" if limit else ""
        )
        sys.stderr.write(f"\n{message}\n")
        TaskResult(status="user_error", message=message, reason="memory").write(work)
        return EXIT_USER
    except InfrastructureError as exc:
        sys.stderr.write(f"\n{exc}\n")
        TaskResult(status="infra_error", message=str(exc)).write(work)
        return EXIT_INFRA
    except Exception as exc:  # a bug of ours, or a library failing: not the user's fault, retry
        text = "".join(traceback.format_exception(exc))
        sys.stderr.write(text)
        TaskResult(status="infra_error", message=f"{type(exc).__name__}: {exc}").write(work)
        return EXIT_INFRA
    result.write(work)
    return EXIT_OK


def _user_error(message: str, work: Path, *, reason: str | None = None) -> int:
    sys.stderr.write(f"\n{message}\n")
    TaskResult(status="user_error", message=message, reason=reason).write(work)
    return EXIT_USER


def _dispatch(task: Task, work: Path) -> TaskResult:
    if task.kind is TaskKind.LIVE:  # the worker handed it its bars: no market-data store is opened
        return TaskResult(status="ok", metrics=run_live_step(task.spec, work, log_stream=sys.stderr))
    if task.kind is TaskKind.LIVE_SESSION:  # stdin carries the host's requests: it watches the host itself
        return TaskResult(status="ok", metrics=serve_live_session(task.spec, work, log_stream=sys.stderr))
    store = task.data.open()
    out = work / OUT_DIR
    if task.kind is TaskKind.BACKTEST:
        spec = BacktestSpec.model_validate({**task.spec, "strategy": str(work / task.spec["strategy"])})
        outcome = run_spec(spec, store, out, log_stream=sys.stderr)
        return TaskResult(status="ok", metrics=outcome.metrics)
    if task.kind is TaskKind.EXPAND:
        return TaskResult(status="ok", combos=expand_sweep(task.spec, work))
    if task.kind is TaskKind.GATHER:
        children = json.loads((work / CHILDREN_FILE).read_text())
        return TaskResult(status="ok", metrics=gather_sweep(task.spec, children, work, out))
    return TaskResult(status="ok", metrics=run_sweep_request(task.spec, work, store, out))


def _line_buffered() -> None:
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True, errors="backslashreplace")


def forked_entry(work: str, out_fd: Any, life_fd: Any, env: dict[str, str] | None = None) -> None:
    """Run in a child forked by the fork server: own environment and session, output on the pipe, then the task.

    The environment is replaced first, before any user code: the fork server's
    is not the job's (the worker never changes its own to start children).
    """
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    os.setsid()
    out, life = out_fd.fileno(), life_fd.fileno()
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.dup2(life, 0)
    for fd in {out, life} - {0, 1, 2}:
        os.close(fd)
    code = EXIT_INFRA
    try:
        # Fresh streams over the new fds: the server's own may wrap a file (a test runner's capture).
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.chdir(work)
        _watch_parent(0)
        code = run_task(Path(work))
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m quantfleet.dispatch.child WORK`` (the launcher already made this a session leader)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m quantfleet.dispatch.child WORK\n")
        return EXIT_INFRA
    _line_buffered()
    work = Path(args[0]).resolve()
    if Task.read(work).kind is not TaskKind.LIVE_SESSION:  # a session reads its requests from stdin
        _watch_parent(0)
    return run_task(work)


if __name__ == "__main__":  # pragma: no cover - run as a process
    sys.exit(main())
