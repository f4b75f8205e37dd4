"""``ctx`` in live and paper trading: the backtest context's calls, talking to a broker instead of the simulator.

The strategy file is the backtest's, unchanged. What differs is underneath:

- data views (``history``, ``indicator``) end at the newest bar received, and
  grow as bars arrive (:class:`BarHistory`); they are read-only, as in a backtest;
- ``order*`` calls become :class:`~quantfleet.engine.live.orders.OrderRequest` values
  sent to the broker, under client order ids derived from the deployment, the
  run and the order's place in the run (duplicates are answered, never re-sent);
- a broker's (or a risk limit's) rejection comes back as an order with
  ``status == REJECTED`` and the reason, as in a backtest;
- ``ctx.state`` is a dictionary kept per deployment and saved after each run
  or bar, so counters and models survive between runs (plain JSON values).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from quantfleet.core.errors import UserError
from quantfleet.core.orders import Order, OrderStatus, OrderType, Position, Target, TimeInForce
from quantfleet.core.types import Frequency
from quantfleet.engine.feed import FIELDS, Feed
from quantfleet.engine.live.orders import Bar, BrokerOrder, OrderRequest
from quantfleet.strategy.context import RiskRule
from quantfleet.strategy.series import Line

__all__ = ["BarHistory", "LiveBars", "LiveContext", "LivePortfolio", "OrderRouter"]


class OrderRouter(Protocol):
    """What the context needs of a broker (a :class:`~quantfleet.engine.live.orders.Broker`, maybe behind limits)."""

    def submit(self, request: OrderRequest, *, now: datetime) -> BrokerOrder: ...
    def cancel(self, client_id: str, *, now: datetime) -> BrokerOrder: ...
    def open_orders(self) -> list[BrokerOrder]: ...
    def positions(self) -> Mapping[str, Position]: ...
    def account(self) -> Any: ...


class BarHistory:
    """Bars of several symbols on one growing timeline, NaN where a symbol has no bar (as a backtest's feed)."""

    def __init__(self, symbols: Sequence[str]) -> None:
        self.symbols = tuple(symbols)
        self.index = {s: j for j, s in enumerate(self.symbols)}
        self.ts: list[int] = []
        self._cols: dict[str, list[list[float]]] = {f: [[] for _ in self.symbols] for f in FIELDS}
        self._arrays: dict[tuple[str, int], np.ndarray] = {}

    @classmethod
    def from_feed(cls, feed: Feed, symbols: Sequence[str]) -> BarHistory:
        """Return a history holding every bar of ``feed`` (e.g. the data store's recent bars)."""
        out = cls(symbols)
        for i in range(feed.n_bars):
            bars = {}
            for s in symbols:
                if s not in feed.symbols:
                    continue
                j = feed.symbols.index(s)
                values = {f: float(feed.fields[f][i, j]) for f in FIELDS}
                if values["close"] == values["close"]:
                    bars[s] = Bar(s, feed.time(i), **values)
            out.append(feed.ts.item(i), bars)
        return out

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def last_ts(self) -> int | None:
        """Return the newest bar's time (UTC microseconds), None before the first."""
        return self.ts[-1] if self.ts else None

    def append(self, ts: int, bars: Mapping[str, Bar]) -> None:
        """Add the bars of timestamp ``ts`` (later than every bar held)."""
        if self.ts and ts <= self.ts[-1]:
            raise UserError(f"bars at {ts} are not newer than the last bar held ({self.ts[-1]}); bars arrive in order")
        self.ts.append(ts)
        for name, columns in self._cols.items():
            for j, s in enumerate(self.symbols):
                bar = bars.get(s)
                columns[j].append(getattr(bar, name) if bar is not None else float("nan"))
        self._arrays.clear()

    def column(self, field: str, symbol: str) -> np.ndarray:
        """Return every value of ``field`` of ``symbol``, read-only."""
        key = (field, self.index[symbol])
        arr = self._arrays.get(key)
        if arr is None:
            arr = np.array(self._cols[field][key[1]], dtype=np.float64)
            arr.flags.writeable = False
            self._arrays[key] = arr
        return arr

    def value(self, field: str, symbol: str) -> float:
        """Return the newest value of ``field`` of ``symbol`` (NaN if it has no bar now)."""
        return self._cols[field][self.index[symbol]][-1] if self.ts else float("nan")

    def last_close(self, symbol: str) -> float:
        """Return the newest known close of ``symbol`` (carried over gaps), NaN if never seen."""
        for v in reversed(self._cols["close"][self.index[symbol]]):
            if v == v:
                return v
        return float("nan")


class LiveBars:
    """The bars of the newest timestamp (the ``bars`` argument of ``on_bar``)."""

    def __init__(self, history: BarHistory) -> None:
        self._history = history
        self.symbols: tuple[str, ...] = ()

    @property
    def ts(self) -> datetime:
        """Return the newest bar's timestamp (UTC)."""
        last = self._history.last_ts
        return datetime.fromtimestamp((last or 0) / 1e6, tz=UTC)

    def refresh(self) -> None:
        """Point at the newest timestamp's symbols."""
        h = self._history
        self.symbols = tuple(s for s in h.symbols if h.value("close", s) == h.value("close", s))

    def open(self, symbol: str) -> float:
        """Return the bar's open."""
        return self._history.value("open", symbol)

    def high(self, symbol: str) -> float:
        """Return the bar's high."""
        return self._history.value("high", symbol)

    def low(self, symbol: str) -> float:
        """Return the bar's low."""
        return self._history.value("low", symbol)

    def close(self, symbol: str) -> float:
        """Return the bar's close."""
        return self._history.value("close", symbol)

    def volume(self, symbol: str) -> float:
        """Return the bar's volume."""
        return self._history.value("volume", symbol)


class LivePortfolio:
    """Cash and positions as the broker reports them, marked at the newest closes."""

    def __init__(self, router: OrderRouter, history: BarHistory) -> None:
        self._router = router
        self._history = history

    def _marked(self) -> tuple[float, dict[str, Position]]:
        cash = float(self._router.account().cash)
        out = {}
        for symbol, pos in self._router.positions().items():
            price = self._history.last_close(symbol) if symbol in self._history.index else float("nan")
            if price != price:
                price = pos.last_price
            out[symbol] = Position(symbol, pos.quantity, pos.average_cost, pos.realized_pnl, price)
        return cash, out

    @property
    def cash(self) -> float:
        """Return cash."""
        return self._marked()[0]

    @property
    def positions(self) -> Mapping[str, Position]:
        """Return open positions, marked at the newest close."""
        return self._marked()[1]

    @property
    def equity(self) -> float:
        """Return cash plus the positions' market value."""
        cash, positions = self._marked()
        return cash + sum(p.market_value for p in positions.values())

    @property
    def gross_exposure(self) -> float:
        """Return the sum of absolute position values."""
        return sum(abs(p.market_value) for p in self._marked()[1].values())

    @property
    def net_exposure(self) -> float:
        """Return the sum of signed position values."""
        return sum(p.market_value for p in self._marked()[1].values())

    @property
    def leverage(self) -> float:
        """Return gross exposure over equity."""
        equity = self.equity
        return self.gross_exposure / equity if equity > 0 else float("inf")


class _LiveLine(Line):
    """An indicator line that grows as bars arrive (recomputed over the history on each bar)."""

    __slots__ = ()

    def last(self, n: int) -> np.ndarray:
        values = np.array(list.__iter__(self), dtype=np.float64)
        values.flags.writeable = False
        return values[max(0, len(values) - n) :]


@dataclass
class _Indicator:
    line: _LiveLine
    func: Callable[..., np.ndarray]
    fields: list[str]
    args: tuple[Any, ...]
    symbol: str


class LiveContext:
    """``ctx`` of a live or paper deployment: see the module docstring."""

    def __init__(
        self,
        router: OrderRouter,
        history: BarHistory,
        *,
        universe: Sequence[str],
        frequency: Frequency,
        client_id: Callable[[], str],
        clock: Callable[[], datetime],
        state: dict[str, Any] | None = None,
        logger: logging.Logger | None = None,
        seed: int = 0,
    ) -> None:
        self._router = router
        self._history = history
        self.universe: tuple[str, ...] = tuple(universe)
        self._frequency = frequency
        self._next_client_id = client_id
        self._clock = clock
        self.state: dict[str, Any] = state if state is not None else {}
        self.random = np.random.default_rng(seed)
        self.log = logger or logging.getLogger("quantfleet.strategy")
        self.subscriptions: dict[str, tuple[str, ...]] = {}
        self._rules: list[RiskRule] = []
        self._indicators: list[_Indicator] = []
        self.placed: dict[str, Order] = {}  # client id -> the strategy's Order object (created_us: its bar)
        self._sequence = 0
        self.portfolio = LivePortfolio(router, history)
        self.sent: list[BrokerOrder] = []  # every order this context placed, as the broker answered

    # -- time -----------------------------------------------------------------------------------

    @property
    def time(self) -> datetime:
        """Return the newest bar's timestamp (UTC)."""
        last = self._history.last_ts
        return datetime.fromtimestamp((last or 0) / 1e6, tz=UTC)

    @property
    def bar_index(self) -> int:
        """Return the index of the newest bar in the history (0 for the first)."""
        return len(self._history) - 1

    def position(self, symbol: str) -> float:
        """Return the signed quantity held of ``symbol``."""
        self._symbol(symbol)
        held = self._router.positions().get(symbol)
        return held.quantity if held is not None else 0.0

    # -- data -----------------------------------------------------------------------------------

    def subscribe(
        self, symbols: Sequence[str] | str, *, frequency: str | None = None, fields: Sequence[str] | None = None
    ) -> None:
        """Declare the symbols (and bar frequency) the strategy trades on; bars of these arrive on ``on_bar``."""
        names = [symbols] if isinstance(symbols, str) else list(symbols)
        for name in names:
            self._symbol(name)
        if frequency is not None and Frequency.parse(frequency) is not self._frequency:
            raise UserError(
                f"the strategy subscribes to {frequency} bars but the deployment runs on {self._frequency.value}; "
                f"deploy it with --frequency {frequency}"
            )
        for name in names:
            self.subscriptions[name] = tuple(fields or FIELDS)

    def _symbol(self, symbol: str) -> int:
        if symbol not in self._history.index:
            raise UserError(f"{symbol!r} is not in this deployment's universe ({', '.join(self.universe[:10])})")
        return self._history.index[symbol]

    def history(self, symbol: str, field: str, n: int) -> np.ndarray:
        """Return the last ``n`` values of ``field`` up to the newest bar (read-only)."""
        if field not in FIELDS:
            raise UserError(f"unknown field {field!r}; use one of {', '.join(FIELDS)}")
        self._symbol(symbol)
        column = self._history.column(field, symbol)
        return column[max(0, len(column) - n) :]

    def indicator(
        self, func: Callable[..., np.ndarray], field: str | Sequence[str] = "close", *args: Any, symbol: str
    ) -> Line:
        """Compute ``func(values, *args)`` over the history and show it up to the newest bar; it grows per bar."""
        self._symbol(symbol)
        fields = [field] if isinstance(field, str) else list(field)
        for name in fields:
            if name not in FIELDS:
                raise UserError(f"unknown field {name!r}; use one of {', '.join(FIELDS)}")
        name = f"{getattr(func, '__name__', 'indicator')}({symbol})"
        values = self._evaluate(func, fields, args, symbol, name)
        line = _LiveLine(values, name=name, shown=len(values))
        self._indicators.append(_Indicator(line, func, fields, args, symbol))
        return line

    def _evaluate(
        self, func: Callable[..., np.ndarray], fields: list[str], args: tuple[Any, ...], symbol: str, name: str
    ) -> np.ndarray:
        n = len(self._history)
        values = np.asarray(func(*[self._history.column(f, symbol) for f in fields], *args), dtype=np.float64)
        if values.shape != (n,):
            raise UserError(f"indicator {name} returned shape {values.shape}; it must return one value per bar ({n})")
        return values

    def advance(self) -> None:
        """Show every indicator's value at the newest bar (called once per bar, after the history grew)."""
        for ind in self._indicators:
            values = self._evaluate(ind.func, ind.fields, ind.args, ind.symbol, ind.line.name)
            list.append(ind.line, float(values[-1]))

    # -- orders ---------------------------------------------------------------------------------

    def _send(self, request: OrderRequest, order: Order) -> Order:
        now = self._clock()
        mark = self._history.last_close(request.symbol)
        if mark == mark:
            for rule in self._rules:
                reason = rule.check(order, price=mark, portfolio=self.portfolio)
                if reason:
                    order.status, order.reason = OrderStatus.REJECTED, reason
                    self.sent.append(BrokerOrder.refused(request, reason, now=now))
                    return order
        answer = self._router.submit(request, now=now)
        self.sent.append(answer)
        _update(order, answer)
        self.placed[request.client_id] = order
        return order

    def _request(
        self,
        symbol: str,
        quantity: float,
        kind: OrderType,
        limit: float | None,
        stop: float | None,
        tif: TimeInForce,
        tag: str,
        target: Target | None = None,
        value: float = 0.0,
    ) -> tuple[OrderRequest, Order]:
        self._symbol(symbol)
        self._sequence += 1
        client_id = self._next_client_id()
        request = OrderRequest(
            client_id=client_id,
            symbol=symbol,
            quantity=float(quantity),
            type=kind,
            limit_price=limit,
            stop_price=stop,
            tif=tif,
            target=target,
            target_value=float(value),
            tag=tag,
        )
        created = self._history.last_ts or 0
        order = Order(
            self._sequence, symbol, float(quantity), kind, limit, stop, tif, created, target, float(value), tag=tag
        )
        return request, order

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
        request, order = self._request(symbol, quantity, kind, limit_price, stop_price, TimeInForce(tif), tag)
        return self._send(request, order)

    def _target(self, symbol: str, target: Target, value: float, kw: dict[str, Any]) -> Order | None:
        limit, stop = kw.pop("limit_price", None), kw.pop("stop_price", None)
        tif, tag = TimeInForce(kw.pop("tif", TimeInForce.GTC)), kw.pop("tag", "")
        if kw:
            raise UserError(f"unknown order option(s) {', '.join(kw)}; use limit_price, stop_price, tif, tag")
        # A new target replaces any open target order for the symbol, as in a backtest.
        for old in self._router.open_orders():
            if old.symbol == symbol and old.target is not None:
                self._router.cancel(old.client_id, now=self._clock())
        request, order = self._request(symbol, 0.0, _kind(limit, stop), limit, stop, tif, tag, target, value)
        return self._send(request, order)

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
        for client_id, mine in self.placed.items():
            if mine is order:
                _update(order, self._router.cancel(client_id, now=self._clock()))
                return
        for known in self._router.open_orders():  # an order of an earlier run, from open_orders()
            if known.broker_id and str(order.id) == known.broker_id:
                _update(order, self._router.cancel(known.client_id, now=self._clock()))
                return

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Return open orders (of every run of the deployment), of one symbol or all."""
        out = []
        for known in self._router.open_orders():
            if symbol is not None and known.symbol != symbol:
                continue
            mine = self.placed.get(known.client_id)
            if mine is None:
                mine = Order(
                    int(known.broker_id) if known.broker_id.isdigit() else 0,
                    known.symbol,
                    known.quantity,
                    known.type,
                    known.limit_price,
                    known.stop_price,
                    known.tif,
                    0,
                    known.target,
                    known.target_value,
                )
            _update(mine, known)
            out.append(mine)
        return out

    def add_risk_rule(self, rule: RiskRule) -> None:
        """Check every later order against ``rule`` (e.g. MaxPosition, MaxLeverage) before it is sent."""
        self._rules.append(rule)


def _update(order: Order, answer: BrokerOrder) -> None:
    order.status, order.reason = answer.status, answer.reason
    order.filled_quantity, order.average_price = answer.filled_quantity, answer.average_price
    if answer.quantity or answer.target is None:
        order.quantity = answer.quantity


def _kind(limit: float | None, stop: float | None) -> OrderType:
    if limit is not None and stop is not None:
        return OrderType.STOP_LIMIT
    if limit is not None:
        return OrderType.LIMIT
    if stop is not None:
        return OrderType.STOP
    return OrderType.MARKET
