"""One scheduled run of a deployment's strategy, inside the job's sandboxed child: snapshot in, messages out.

The child has no broker, no database and no credential. It reads what the
worker wrote (:mod:`quantfleet.engine.live.messages`: the run, the bar
history, the account, positions, open orders and the newest bar's fills),
loads the strategy file, builds the same ``ctx`` a live deployment sees
(:class:`~quantfleet.engine.live.context.LiveContext`) over a
:class:`SnapshotRouter`, and calls ``initialize``, ``on_fill`` for each of
the newest bar's fills, then ``on_bar`` once. Orders and cancels are not
sent: they are recorded, in order, and written with the new ``ctx.state``
to ``orders.json``. The worker checks each against the deployment's risk
limits and forwards it to the broker (:mod:`quantfleet.live.runner`).

What the strategy sees differs from the broker's answer in one way: an order
placed in this run is ``OPEN`` for the rest of the run (the broker, or a risk
limit, answers only after the run). Positions and cash are the account's at
the run's start.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from quantfleet.core.errors import InfrastructureError, UserError
from quantfleet.core.orders import OrderStatus, Position
from quantfleet.core.types import Frequency
from quantfleet.engine.config import EngineConfig
from quantfleet.engine.feed import FIELDS
from quantfleet.engine.live.context import BarHistory, LiveBars, LiveContext
from quantfleet.engine.live.messages import (
    BARS_FILE,
    ORDERS_FILE,
    RUN_FILE,
    Submit,
    fill_from_json,
    order_from_json,
    position_from_json,
)
from quantfleet.engine.live.orders import Account, Bar, BrokerOrder, OrderRequest, client_order_id
from quantfleet.strategy.base import Strategy
from quantfleet.strategy.loader import StrategyError, load_strategy, strategy_error

__all__ = [
    "SnapshotRouter",
    "live_context",
    "load_history",
    "output_json",
    "run_live_step",
    "strategy_caller",
    "strategy_logger",
]


class SnapshotRouter:
    """The broker as it stood when the run started; orders and cancels are recorded as messages, not sent."""

    def __init__(self, *, account: Account, positions: Mapping[str, Position], open_orders: list[BrokerOrder]) -> None:
        self._account = account
        self._positions = dict(positions)
        self._known = {o.client_id: o for o in open_orders}
        self._seq = 0
        self.messages: list[dict[str, Any]] = []

    def reset(self, *, account: Account, positions: Mapping[str, Position], open_orders: list[BrokerOrder]) -> None:
        """Start a new step of an on-bars session: the broker as the host saw it now, no message recorded yet."""
        self._account = account
        self._positions = dict(positions)
        self._known = {o.client_id: o for o in open_orders}
        self._seq = 0
        self.messages = []

    def submit(self, request: OrderRequest, *, now: datetime) -> BrokerOrder:
        """Record the order; answer it as open (the worker sends it after the run)."""
        self._seq += 1
        self.messages.append(Submit.of(self._seq, request))
        order = replace(BrokerOrder.refused(request, "", now=now), status=OrderStatus.OPEN)
        self._known[request.client_id] = order
        return order

    def cancel(self, client_id: str, *, now: datetime) -> BrokerOrder:
        """Record the cancel; answer the order as cancelled (a done or unknown one as it is)."""
        order = self._known.get(client_id)
        if order is None:
            raise UserError(f"no open order {client_id!r} to cancel; cancel orders from ctx.open_orders()")
        if order.status is not OrderStatus.OPEN:
            return order
        self.messages.append({"op": "cancel", "client_id": client_id})
        done = replace(order, status=OrderStatus.CANCELLED, updated_at=now)
        self._known[client_id] = done
        return done

    def open_orders(self) -> list[BrokerOrder]:
        """Return the deployment's open orders: the broker's at the start, and this run's, less those cancelled."""
        return [o for o in self._known.values() if o.status is OrderStatus.OPEN]

    def positions(self) -> Mapping[str, Position]:
        """Return the positions at the run's start."""
        return self._positions

    def account(self) -> Account:
        """Return cash and equity at the run's start."""
        return self._account


def load_history(work: Path, universe: tuple[str, ...]) -> BarHistory:
    history = BarHistory(universe)
    with np.load(work / BARS_FILE, allow_pickle=False) as data:
        ts = data["ts"]
        fields = {f: data[f] for f in FIELDS}
    for i in range(len(ts)):
        when = datetime.fromtimestamp(int(ts[i]) / 1e6, tz=UTC)
        bars = {}
        for j, symbol in enumerate(universe):
            values = {f: float(fields[f][i, j]) for f in FIELDS}
            if values["close"] == values["close"]:
                bars[symbol] = Bar(symbol, when, **values)
        history.append(int(ts[i]), bars)
    return history


def strategy_logger(stream: TextIO | None, name: str) -> logging.Logger:
    logger = logging.getLogger(f"quantfleet.strategy.live.{name}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger


def live_context(
    router: SnapshotRouter,
    history: Any,
    universe: tuple[str, ...],
    start: Mapping[str, Any],
    *,
    client_id: Callable[[], str],
    clock: Callable[[], datetime],
    log_stream: TextIO | None,
) -> LiveContext:
    """Return the strategy's ``ctx`` over the host's snapshot ``start`` (a run's or a session's first message)."""
    return LiveContext(
        router,
        history,
        universe=universe,
        frequency=Frequency.parse(start["frequency"]),
        client_id=client_id,
        clock=clock,
        state=dict(start["state"]),
        logger=strategy_logger(log_stream, str(start["deployment"])[:12]),
        seed=EngineConfig.model_validate(start["engine"]).seed,
    )


def strategy_caller(ctx: LiveContext, path: Path) -> Callable[..., None]:
    """Return ``call(func, where, *args)``: ``func(ctx, *args)``, the strategy's errors shown as in a backtest."""

    def call(func: Callable[..., Any], where: str, *args: Any) -> None:
        try:
            func(ctx, *args)
        except (InfrastructureError, StrategyError):
            raise
        except Exception as exc:  # the strategy's own errors and its misuse of ctx
            raise strategy_error(exc, path, where) from exc

    return call


def run_live_step(spec: Mapping[str, Any], work: Path, *, log_stream: TextIO | None = None) -> dict[str, Any]:
    """Run the strategy once over the snapshot in ``work``; write orders.json; return the run's counts."""
    run = json.loads((work / RUN_FILE).read_text())
    universe = tuple(str(s) for s in run["universe"])
    history = load_history(work, universe)
    if history.last_ts is None:
        raise StrategyError(
            f"no bars of {', '.join(universe)} in the data store to run on; "
            "ingest some ('quantfleet data ingest') or schedule an ingestion before the deployment"
        )
    router = SnapshotRouter(
        account=Account(**run["account"]),
        positions={p["symbol"]: position_from_json(p) for p in run["positions"]},
        open_orders=[order_from_json(o) for o in run["open_orders"]],
    )
    path = work / str(spec["strategy"])
    loaded = load_strategy(path, class_name=spec.get("class_name"))
    strategy: Any = loaded.instantiate(run["params"])
    deployment, number, now = str(run["deployment"]), int(run["run"]), datetime.fromisoformat(run["now"])
    sequence = iter(range(1, 1_000_000_000))
    ctx = live_context(
        router,
        history,
        universe,
        run,
        client_id=lambda: client_order_id(deployment, number, next(sequence)),
        clock=lambda: now,
        log_stream=log_stream,
    )
    call = strategy_caller(ctx, path)
    call(strategy.initialize, " in initialize")
    user_on_fill = getattr(strategy, "on_fill", None)
    if getattr(user_on_fill, "__func__", None) is not Strategy.on_fill and user_on_fill is not None:
        for fill in (fill_from_json(f) for f in run["fills"]):
            call(lambda c, f: user_on_fill(c, f), " in on_fill", fill)
    bars = LiveBars(history)
    bars.refresh()
    call(strategy.on_bar, f" on bar {ctx.time:%Y-%m-%d %H:%M}", bars)
    _write_output(work, router.messages, ctx.state)
    return {"messages": len(router.messages)}


def _write_output(work: Path, messages: list[dict[str, Any]], state: dict[str, Any]) -> None:
    """Write orders.json: the run's order messages and ``ctx.state`` (aside, then renamed: never half a file)."""
    staged = work / f".{ORDERS_FILE}.tmp"
    staged.write_text(output_json(messages, state))
    staged.replace(work / ORDERS_FILE)


def output_json(messages: list[dict[str, Any]], state: dict[str, Any]) -> str:
    """Return a run's (or a session step's) answer as JSON; UserError if an order or ctx.state is not plain JSON."""
    try:
        sent = json.dumps(messages, allow_nan=False)
    except ValueError as exc:
        raise UserError(
            f"an order of this run has a quantity or price that is not a finite number ({exc}); none was sent"
        ) from exc
    try:
        kept = json.dumps(state, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UserError(
            f"ctx.state holds a value that is not plain JSON ({exc}); keep str, numbers, bools, None, "
            "lists and dicts in it (store a model's parameters, not the model object)"
        ) from exc
    return f'{{"messages": {sent}, "state": {kept}}}'
