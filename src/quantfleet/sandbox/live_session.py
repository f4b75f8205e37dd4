"""An on-bars deployment's strategy in a long-lived sandboxed child: a bar in on stdin, order messages out on stdout.

The host (``quantfleet deployments run``, :mod:`quantfleet.live.session`)
holds the broker, the database and the MQTT subscription; this child holds
none of them, nor any credential. It reads the session's start (``live.json``:
deployment, run, universe, frequency, params, engine settings, ``ctx.state``;
``bars.npz``: the bars the host had already handled), loads the strategy once,
calls ``initialize``, and answers ``ready``. Then, one line of JSON per request
on stdin (:mod:`quantfleet.engine.live.messages` names the fields)::

    {"op": "step", "now": ..., "base": n, "bar": {"ts": ..., "bars": {...}} | null,
     "fills": [...], "account": {...}, "positions": [...], "open_orders": [...]}
    {"op": "end"}

a step appends the bar to the history, calls ``on_fill`` for each fill, then
``on_bar`` (when there is a bar), on the same strategy object every time: its
attributes live from bar to bar, as in a backtest. Its orders and cancels are
recorded, not sent, and the answer is one line on stdout, after
:data:`~quantfleet.engine.live.messages.SESSION_MARK`: the step's messages
and the new ``ctx.state``. Client ids are numbered from the host's ``base``,
so a restarted child names the orders of a step it repeats as the dead one did.

The strategy's own output (print, ``ctx.log``) goes to stderr, which the host
logs. When stdin reaches its end (the host is gone) the child kills its own
process group, as every job's child does.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from quantfleet.engine.live.context import LiveBars
from quantfleet.engine.live.messages import (
    RUN_FILE,
    SESSION_MARK,
    fill_from_json,
    order_from_json,
    position_from_json,
)
from quantfleet.engine.live.orders import Account, Bar, client_order_id
from quantfleet.sandbox.live import SnapshotRouter, live_context, load_history, output_json, strategy_caller
from quantfleet.strategy.base import Strategy
from quantfleet.strategy.loader import load_strategy

__all__ = ["serve_live_session"]


def _requests(fd: int) -> queue.Queue[bytes | None]:
    """Read request lines in a thread; at EOF (the host gone) kill this process group, mid-call or not.

    Raw reads of the fd, not ``sys.stdin``: a thread blocked in a buffered read holds the stream's lock,
    and the interpreter would abort at exit (a strategy error's exit code 2 would become SIGABRT).
    """
    lines: queue.Queue[bytes | None] = queue.Queue()

    def read() -> None:
        pending = b""
        try:
            while chunk := os.read(fd, 65536):
                pending += chunk
                *done, pending = pending.split(b"\n")
                for line in done:
                    lines.put(line)
        except OSError:
            pass
        lines.put(None)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=read, name="quantfleet-session-input", daemon=True).start()
    return lines


def serve_live_session(
    spec: Mapping[str, Any],
    work: Path,
    *,
    requests: int = 0,
    answers: TextIO | None = None,
    log_stream: TextIO | None = None,
) -> dict[str, Any]:
    """Serve the session's steps until ``end`` (see the module docstring); return how many steps ran."""
    answers = answers or os.fdopen(os.dup(1), "w", encoding="utf-8")
    sys.stdout = sys.stderr  # the strategy's prints join its log, never the answers' stream
    start = json.loads((work / RUN_FILE).read_text())
    universe = tuple(str(s) for s in start["universe"])
    history = load_history(work, universe)
    router = SnapshotRouter(account=Account(cash=0.0, equity=0.0), positions={}, open_orders=[])
    path = work / str(spec["strategy"])
    strategy: Any = load_strategy(path, class_name=spec.get("class_name")).instantiate(start["params"])
    deployment, number = str(start["deployment"]), int(start["run"])
    now = datetime.fromisoformat(start["now"])
    seq = 0

    def next_id() -> str:
        nonlocal seq
        seq += 1
        return client_order_id(deployment, number, seq)

    ctx = live_context(router, history, universe, start, client_id=next_id, clock=lambda: now, log_stream=log_stream)
    call = strategy_caller(ctx, path)

    def answer(body: str) -> None:
        answers.write(f"{SESSION_MARK}{body}\n")
        answers.flush()

    user_on_fill = getattr(strategy, "on_fill", None)
    if getattr(user_on_fill, "__func__", None) is Strategy.on_fill:
        user_on_fill = None
    call(strategy.initialize, " in initialize")
    answer('{"op": "ready"}')
    bars = LiveBars(history)
    lines = _requests(requests)
    steps = 0
    while (line := lines.get()) is not None:
        request = json.loads(line)
        if request.get("op") == "end":
            call(strategy.on_end, " in on_end")
            answer(output_json([], ctx.state))
            break
        now = datetime.fromisoformat(request["now"])
        seq = int(request["base"])
        router.reset(
            account=Account(**request["account"]),
            positions={p["symbol"]: position_from_json(p) for p in request["positions"]},
            open_orders=[order_from_json(o) for o in request["open_orders"]],
        )
        bar = request.get("bar")
        if bar is not None:
            ts, when = int(bar["ts"]), datetime.fromtimestamp(int(bar["ts"]) / 1e6, tz=UTC)
            if history.last_ts is None or ts > history.last_ts:  # a replacement child has it already
                history.append(ts, {s: Bar(s, when, **v) for s, v in bar["bars"].items()})
            ctx.advance()
        if user_on_fill is not None:
            for fill in (fill_from_json(f) for f in request["fills"]):
                call(lambda c, f: user_on_fill(c, f), " in on_fill", fill)
        if bar is not None:
            bars.refresh()
            call(strategy.on_bar, f" on bar {ctx.time:%Y-%m-%d %H:%M}", bars)
        answer(output_json(router.messages, ctx.state))
        steps += 1
    return {"steps": steps}
