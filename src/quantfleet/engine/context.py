"""The simulator's side of the strategy contract: what ``ctx`` and ``bars`` are in a backtest."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from quantfleet.core.errors import UserError
from quantfleet.core.orders import Order, OrderType, Target, TimeInForce
from quantfleet.engine.broker import SimBroker
from quantfleet.engine.feed import FIELDS, Feed
from quantfleet.engine.portfolio import SimPortfolio
from quantfleet.strategy.context import RiskRule
from quantfleet.strategy.series import Cursor, Line

__all__ = ["SimBars", "SimContext"]


class SimBars:
    """The bars of the current timestamp; values are read from the feed, nothing is copied.

    ``symbols`` lists the symbols that have a bar now; the loop keeps it current.
    """

    __slots__ = ("_cursor", "_feed", "_index", "_lists", "symbols")

    def __init__(self, feed: Feed, cursor: Cursor) -> None:
        self._feed = feed
        self._cursor = cursor
        self._index = {s: j for j, s in enumerate(feed.symbols)}
        self.symbols: tuple[str, ...] = feed.symbols
        self._lists: dict[str, list[list[float]]] = {}

    def present(self, i: int) -> tuple[str, ...]:
        """Return the symbols with a bar at ``i``."""
        row = self._feed.fields["close"][i]
        return tuple(s for s, v in zip(self._feed.symbols, row.tolist(), strict=True) if v == v)

    @property
    def ts(self) -> datetime:
        """Return the current bar's timestamp (UTC)."""
        return self._feed.time(self._cursor[0])

    def _get(self, field: str, symbol: str) -> float:
        columns = self._lists.get(field)
        if columns is None:
            # Python lists index faster than NumPy scalars; built once, on first use.
            columns = self._lists[field] = [col.tolist() for col in self._feed.fields[field].T]
        value: float = columns[self._index[symbol]][self._cursor[0]]
        return value

    def open(self, symbol: str) -> float:
        """Return the current bar's open of ``symbol`` (NaN if it has no bar now)."""
        return self._get("open", symbol)

    def high(self, symbol: str) -> float:
        """Return the current bar's high."""
        return self._get("high", symbol)

    def low(self, symbol: str) -> float:
        """Return the current bar's low."""
        return self._get("low", symbol)

    def close(self, symbol: str) -> float:
        """Return the current bar's close."""
        return self._get("close", symbol)

    def volume(self, symbol: str) -> float:
        """Return the current bar's volume."""
        return self._get("volume", symbol)


class _BarLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefix strategy log lines with the bar's time, so logs are reproducible."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        ctx: Any = self.extra["ctx"]  # type: ignore[index]
        return f"[{ctx.time:%Y-%m-%d %H:%M}] {msg}", kwargs


class SimContext:
    """``ctx`` in a backtest: data views that end at the current bar, the books, order entry."""

    def __init__(
        self,
        feed: Feed,
        cursor: Cursor,
        portfolio: SimPortfolio,
        broker: SimBroker,
        *,
        seed: int,
        logger: logging.Logger,
        close_marks: np.ndarray,
        universe: tuple[str, ...] | None = None,
        fields: tuple[str, ...] | None = None,
    ) -> None:
        self._feed = feed
        self._cursor = cursor
        self._book = portfolio
        self._broker = broker
        self._index = {s: j for j, s in enumerate(feed.symbols)}
        self._close_marks = close_marks
        self.universe: tuple[str, ...] = universe or feed.symbols
        self._fields = frozenset(fields or FIELDS)
        self.random = np.random.default_rng(seed)
        # A deployment keeps this between runs; a backtest is one run, so it starts empty.
        self.state: dict[str, Any] = {}
        self.log = _BarLog(logger, {"ctx": self})
        self.subscriptions: dict[str, Any] = {}
        # Each line and its values; the loop appends one value per bar to every line.
        self.feeders: list[tuple[Line, list[float]]] = []
        self._history: dict[str, np.ndarray] = {}

    # -- time and state --------------------------------------------------------

    @property
    def time(self) -> datetime:
        """Return the current bar's timestamp (UTC); during initialize, the first bar's."""
        return self._feed.time(max(0, self._cursor[0]))

    def _now(self) -> int:
        return self._feed.ts.item(max(0, self._cursor[0]))  # type: ignore[no-any-return]

    @property
    def bar_index(self) -> int:
        """Return the index of the current bar."""
        return self._cursor[0]

    @property
    def portfolio(self) -> SimPortfolio:
        """Return the books, marked at the current close."""
        return self._book

    def position(self, symbol: str) -> float:
        """Return the signed quantity held of ``symbol``."""
        return self._book.position(self._symbol(symbol))

    # -- data ------------------------------------------------------------------

    def subscribe(
        self, symbols: Sequence[str] | str, *, frequency: str | None = None, fields: Sequence[str] | None = None
    ) -> None:
        """Declare the data the strategy needs; a run loads only the symbols and frequency subscribed.

        Call it first in ``initialize``: the run learns the subscriptions before it
        loads data (see :mod:`quantfleet.engine.probe`). Without a call, the whole
        universe is loaded at the run's frequency.
        """
        names = [symbols] if isinstance(symbols, str) else list(symbols)
        for name in names:
            self._symbol(name)
        if frequency is not None and frequency != self._feed.frequency.value:
            raise UserError(
                f"the strategy subscribes to {frequency} bars but the run loads {self._feed.frequency.value}; "
                f"run it with --frequency {frequency}"
            )
        for name in names:
            self.subscriptions[name] = tuple(fields or FIELDS)

    def _symbol(self, symbol: str) -> int:
        try:
            return self._index[symbol]
        except KeyError:
            raise UserError(f"{symbol!r} is not in this run's universe ({', '.join(self.universe[:10])})") from None

    def history(self, symbol: str, field: str, n: int) -> np.ndarray:
        """Return the last ``n`` values of ``field`` up to the current bar: a read-only view, no copy."""
        if field not in FIELDS:
            raise UserError(f"unknown field {field!r}; use one of {', '.join(FIELDS)}")
        column = self._column(field, self._symbol(symbol))
        i = self._cursor[0] + 1
        return column[max(0, i - n) : i]

    def indicator(
        self, func: Callable[..., np.ndarray], field: str | Sequence[str] = "close", *args: Any, symbol: str
    ) -> Line:
        """Compute ``func(values, *args)`` once over the whole series and show it bar by bar.

        ``func`` must use only bars ``0..i`` for its value at bar ``i`` (every
        indicator in :mod:`quantfleet.strategy.indicators` does).
        """
        j = self._symbol(symbol)
        fields = [field] if isinstance(field, str) else list(field)
        for name in fields:
            if name not in FIELDS:
                raise UserError(f"unknown field {name!r}; use one of {', '.join(FIELDS)}")
        inputs = [self._column(name, j) for name in fields]
        name = f"{getattr(func, '__name__', 'indicator')}({symbol})"
        values = self._evaluate(func, inputs, args, name, self._feed.n_bars)
        _check_causal(func, inputs, args, values, name, self._evaluate)
        line = Line(values, name=name, shown=self._cursor[0] + 1)
        self.feeders.append((line, line.source))
        return line

    @staticmethod
    def _evaluate(
        func: Callable[..., np.ndarray], inputs: list[np.ndarray], args: tuple[Any, ...], name: str, n: int
    ) -> np.ndarray:
        values = np.asarray(func(*inputs, *args), dtype=np.float64)
        if values.shape != (n,):
            raise UserError(f"indicator {name} returned shape {values.shape}; it must return one value per bar ({n})")
        return values

    def _column(self, field: str, j: int) -> np.ndarray:
        if field not in self._fields:
            raise UserError(
                f"field {field!r} is not among the subscribed fields ({', '.join(sorted(self._fields))}); "
                "add it to ctx.subscribe(..., fields=[...])"
            )
        key = f"{field}:{j}"
        column = self._history.get(key)
        if column is None:
            column = self._history[key] = np.ascontiguousarray(self._feed.fields[field][:, j])
            column.flags.writeable = False
        return column

    # -- orders ----------------------------------------------------------------

    def _submit(self, order: Order) -> Order:
        i = self._cursor[0]
        mark = self._close_marks.item(i, self._index.get(order.symbol, 0)) if i >= 0 else float("nan")
        return self._broker.submit(order, self._cursor[0], mark)

    def order(
        self,
        symbol: str,
        quantity: float,
        *,
        limit_price: float | None = None,
        stop_price: float | None = None,
        tif: TimeInForce | str = TimeInForce.GTC,
        tag: str = "",
    ) -> Order:
        """Place an order for ``quantity`` units (negative sells): market, limit, stop or stop-limit."""
        kind = _kind(limit_price, stop_price)
        return self._submit(
            Order(0, symbol, float(quantity), kind, limit_price, stop_price, TimeInForce(tif), self._now(), tag=tag)
        )

    def _target(self, symbol: str, target: Target, value: float, kw: dict[str, Any]) -> Order | None:
        if kw:
            limit, stop = kw.pop("limit_price", None), kw.pop("stop_price", None)
            tif, tag = TimeInForce(kw.pop("tif", TimeInForce.GTC)), kw.pop("tag", "")
            if kw:
                raise UserError(f"unknown order option(s) {', '.join(kw)}; use limit_price, stop_price, tif, tag")
            kind = _kind(limit, stop)
        else:
            limit = stop = None
            tif, tag, kind = TimeInForce.GTC, "", OrderType.MARKET
        # A new target replaces any open target order for the symbol.
        pending = self._broker.open
        if pending:
            for old in [o for o in pending if o.symbol == symbol and o.target is not None]:
                self._broker.cancel(old)
        order = Order(0, symbol, 0.0, kind, limit, stop, tif, self._now(), target, float(value), tag=tag)
        return self._submit(order)

    def order_target_quantity(self, symbol: str, quantity: float, **kw: Any) -> Order | None:
        """Move the position in ``symbol`` to ``quantity`` units (resolved when the order fills)."""
        return self._target(symbol, Target.QUANTITY, quantity, kw)

    def order_target_value(self, symbol: str, value: float, **kw: Any) -> Order | None:
        """Move the position in ``symbol`` to ``value`` in cash terms (resolved at the fill price)."""
        return self._target(symbol, Target.VALUE, value, kw)

    def order_target_percent(self, symbol: str, percent: float, **kw: Any) -> Order | None:
        """Move the position in ``symbol`` to ``percent`` of equity (1.0 = 100%, resolved at the fill price)."""
        return self._target(symbol, Target.PERCENT, percent, kw)

    def cancel(self, order: Order) -> None:
        """Cancel an open order."""
        self._broker.cancel(order)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Return open orders, of one symbol or all."""
        return [o for o in self._broker.open if symbol is None or o.symbol == symbol]

    def add_risk_rule(self, rule: RiskRule) -> None:
        """Check every later order against ``rule`` (e.g. MaxPosition, MaxLeverage)."""
        self._broker.rules.append(rule)


_SHORT_PROBE = 2048


def _check_causal(
    func: Callable[..., np.ndarray],
    inputs: list[np.ndarray],
    args: tuple[Any, ...],
    values: np.ndarray,
    name: str,
    evaluate: Callable[..., np.ndarray],
) -> None:
    """Refuse an indicator whose value at a bar changes when later bars are removed (it looks ahead).

    Computing an indicator over the whole series is safe only if the value at
    bar ``i`` depends on bars ``0..i``; recomputing on prefixes checks that.
    """
    n = len(values)
    # A short prefix catches leads (a value that uses the next bars) cheaply; half the
    # series catches look-ahead that only shows over longer spans (a global max, say).
    for k in sorted({min(n - 1, _SHORT_PROBE), n // 2}):
        if k < 2:
            continue
        prefix = evaluate(func, [x[:k] for x in inputs], args, name, k)
        if not np.allclose(prefix, values[:k], rtol=1e-9, atol=1e-12, equal_nan=True):
            bad = int(np.flatnonzero(~np.isclose(prefix, values[:k], rtol=1e-9, atol=1e-12, equal_nan=True))[0])
            raise UserError(
                f"indicator {name} looks ahead: its value at bar {bad} changes when bars after {k - 1} are "
                "removed. An indicator's value at a bar may use only that bar and earlier ones "
                "(a lag uses the past: np.roll(x, 1); a lead, np.roll(x, -1), looks ahead)"
            )


def _kind(limit: float | None, stop: float | None) -> OrderType:
    if limit is not None and stop is not None:
        return OrderType.STOP_LIMIT
    if limit is not None:
        return OrderType.LIMIT
    if stop is not None:
        return OrderType.STOP
    return OrderType.MARKET
