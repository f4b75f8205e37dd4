"""Run a ``signals()`` strategy on the compiled simulator and return the event engine's result type.

Two shapes of ``signals`` function, both with the field arrays it names
(``open``, ``high``, ``low``, ``close``, ``volume``) and its parameters:

- per symbol (the default): called once per symbol with (n,) arrays; returns a
  target position per bar (True/1 long, 0 flat, -1 short, fractions allowed;
  NaN is flat). Each symbol gets ``1 / len(symbols)`` of equity; on each bar
  where the symbol has a bar and the position changed, the strategy places
  ``order_target_percent(symbol, position / len(symbols))``.
- cross-sectional (``signals.cross_sectional = True``): called once with
  (n, m) arrays, one column per symbol; returns (n, m) target weights (share
  of equity, signed); every finite weight is an ``order_target_percent`` on
  that bar (so a weight repeated on every bar rebalances every bar), NaN is no
  order. On each bar the orders with weight 0 are placed first, so the sales
  they make free cash for the buys that follow at the same open.

Both engines run both shapes the same way (the event engine through
:mod:`quantfleet.strategy.loader`); the tests check they agree to 1e-9.
What the compiled path does not model is refused with a :class:`UserError`
that names the fix: volume limits (partial fills) and corporate actions
booked as events (raw or split-adjusted prices with actions in range).

For sweeps: :func:`prepare_market` once per data set, :func:`spec_of` once
per configuration, then :func:`~quantfleet.engine.vectorized.kernels.simulate_nb`
per parameter set into reused buffers.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from quantfleet.core.errors import InfrastructureError, UserError
from quantfleet.core.orders import Fill, Order, OrderStatus, OrderType, Target, TimeInForce
from quantfleet.engine.config import EngineConfig
from quantfleet.engine.context import SimContext, _check_causal
from quantfleet.engine.feed import FIELDS, Feed
from quantfleet.engine.loop import _marks
from quantfleet.engine.results import BacktestResult
from quantfleet.engine.vectorized.kernels import (
    CANCELLED,
    COMMISSION_KINDS,
    FILLED,
    REASON_AT_TARGET,
    REASON_BY_STRATEGY,
    SLIPPAGE_KINDS,
    Books,
    FillLog,
    OrderLog,
    SimSpec,
    new_books,
    new_fill_log,
    new_order_log,
    position_orders_nb,
    simulate_nb,
)
from quantfleet.strategy.loader import StrategyError, is_cross_sectional, strategy_error
from quantfleet.strategy.signals import as_positions

__all__ = [
    "Market",
    "SignalsPlan",
    "check_supported",
    "prepare_market",
    "run_vectorized",
    "signal_orders",
    "simulate",
    "spec_of",
]

SignalsFn = Callable[..., Any]


class Market(NamedTuple):
    """The arrays the kernel reads, (n, m) each: bars (NaN where missing) and the prices positions are marked at."""

    open: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    open_marks: np.ndarray
    close_marks: np.ndarray


def prepare_market(feed: Feed) -> Market:
    """Return the kernel's view of ``feed`` (marks carried forward over gaps, as the event engine marks them)."""
    open_marks, close_marks = _marks(feed)
    f = feed.fields
    return Market(
        f["open"], f["close"], f["volume"], np.ascontiguousarray(open_marks), np.ascontiguousarray(close_marks)
    )


def check_supported(feed: Feed, config: EngineConfig) -> None:
    """Refuse what the compiled path does not simulate, naming the fix."""
    if config.volume_limit is not None:
        raise UserError(
            f"the vectorized engine does not model volume limits (volume_limit={config.volume_limit:g} "
            "makes partial fills); run with --engine event, or drop --volume-limit"
        )
    if feed.events:
        kinds = sorted({ev.kind for evs in feed.events.values() for ev in evs})
        raise UserError(
            f"the vectorized engine does not book corporate actions ({', '.join(kinds)} in this range with "
            f"--adjustment {config.adjustment.value}); run with --adjustment all, or with --engine event"
        )


def spec_of(config: EngineConfig, *, zero_first: bool = False) -> SimSpec:
    """Return the kernel's settings for ``config`` (``zero_first``: place orders with target 0 first)."""
    commission, slippage = config.commission, config.slippage
    rate = getattr(commission, "rate", getattr(commission, "bps", 0.0))
    return SimSpec(
        cash=float(config.cash),
        max_leverage=float(config.max_leverage),
        fractional=bool(config.fractional),
        allow_short=bool(config.allow_short),
        fill_at_close=config.fill_at == "close",
        zero_first=zero_first,
        commission_kind=COMMISSION_KINDS[commission.kind],
        commission_rate=float(rate),
        commission_minimum=float(getattr(commission, "minimum", 0.0)),
        slippage_kind=SLIPPAGE_KINDS[slippage.kind],
        slippage_value=float(getattr(slippage, "bps", getattr(slippage, "impact", 0.0))),
    )


def simulate(
    market: Market, orders: np.ndarray, first: int, spec: SimSpec
) -> tuple[Books, FillLog, OrderLog, int, int]:
    """Run the kernel once with logs large enough for every fill and order; return them and the counts."""
    n, m = market.close.shape
    n_orders = int(np.count_nonzero(~np.isnan(orders[first:])))
    capacity = 2 * n_orders + 16
    while True:
        books, fills, log = new_books(n - first, m), new_fill_log(capacity), new_order_log(n_orders)
        n_fill, n_order = simulate_nb(
            market.open, market.close, market.volume, market.open_marks, market.close_marks,
            orders, first, spec, books, fills, log,
        )  # fmt: skip
        if n_fill <= capacity:
            return books, fills, log, n_fill, n_order
        capacity = n_fill  # rare: orders that fill piecemeal over many bars; run again with room for all


def _inputs(signals: SignalsFn) -> list[str]:
    inputs = [name for name in inspect.signature(signals).parameters if name in FIELDS]
    if not inputs:
        raise StrategyError(f"signals() must take at least one of {', '.join(FIELDS)} as an argument")
    return inputs


def _call(signals: SignalsFn, fields: dict[str, np.ndarray], params: Mapping[str, Any], source: Path | None) -> Any:
    try:
        return signals(**fields, **params)
    except (UserError, InfrastructureError):
        raise
    except Exception as exc:
        if source is None:
            raise StrategyError(f"your strategy failed: {type(exc).__name__}: {exc}") from exc
        raise strategy_error(exc, source) from exc


def signal_orders(
    signals: SignalsFn,
    feed: Feed,
    *,
    params: Mapping[str, Any] | None = None,
    first: int = 0,
    source: Path | None = None,
) -> np.ndarray:
    """Return the (n, m) target-percent orders (NaN = none) a ``signals`` function places on ``feed``.

    The function's output is checked as the event engine checks indicators:
    one value per bar (and symbol), and no look-ahead (its past values do not
    change when later bars are removed).
    """
    return SignalsPlan(signals, feed, first=first, source=source).orders(params or {}, check=True)


class SignalsPlan:
    """Call one ``signals`` function on the same bars again and again, as a sweep does.

    The input arrays are built once, read-only, so that within
    :func:`quantfleet.strategy.indicators.indicator_cache` the indicators a
    combination shares with the last one (``sma(close, 20)``) are not computed again.
    """

    def __init__(self, signals: SignalsFn, feed: Feed, *, first: int = 0, source: Path | None = None) -> None:
        self.signals, self.feed, self.first, self.source = signals, feed, first, source
        self.inputs = _inputs(signals)
        self.cross_sectional = is_cross_sectional(signals)
        self.checked = False  # whether a caller has proven, once, that the function does not look ahead
        self._columns: list[list[np.ndarray]] = []
        if not self.cross_sectional:
            for j in range(len(feed.symbols)):
                columns = [np.array(feed.fields[f][:, j], dtype=np.float64) for f in self.inputs]
                for column in columns:
                    column.flags.writeable = False
                self._columns.append(columns)

    def orders(self, params: Mapping[str, Any], *, check: bool = False) -> np.ndarray:
        """Return the (n, m) orders for ``params``; ``check``: also prove the function does not look ahead."""
        feed, params = self.feed, dict(params)
        n, m = feed.n_bars, len(feed.symbols)
        if self.cross_sectional:

            def panel(k: int) -> np.ndarray:
                fields = {f: feed.fields[f][:k] for f in self.inputs}
                out = np.asarray(_call(self.signals, fields, params, self.source), np.float64)
                if out.shape != (k, m):
                    raise UserError(
                        f"signals() returned shape {out.shape}; a cross-sectional signals() must return one "
                        f"weight per bar and symbol ({k}, {m})"
                    )
                return out

            weights = panel(n)
            if check:
                _check_panel_causal(panel, weights)
            orders = weights.copy()
            orders[: self.first] = np.nan
            return orders

        return position_orders_nb(self.positions(params, check=check), feed.fields["close"], self.first, 1.0 / m)

    def positions(self, params: Mapping[str, Any], *, check: bool = False, out: np.ndarray | None = None) -> np.ndarray:
        """Return the (n, m) positions of a per-symbol ``signals`` for ``params`` (written into ``out`` if given).

        The orders are these positions through
        :func:`~quantfleet.engine.vectorized.kernels.position_orders_nb` with weight ``1 / m``.
        """
        n, m = self.feed.n_bars, len(self.feed.symbols)
        positions = np.empty((n, m)) if out is None else out
        for j in range(m):
            positions[:, j] = self.column(params, j, check=check)
        return positions

    def column(self, params: Mapping[str, Any], j: int, *, check: bool = False) -> np.ndarray:
        """Return the (n,) positions of symbol ``j`` for ``params``: one call of a per-symbol ``signals``."""
        if self.cross_sectional:
            raise TypeError("a cross-sectional signals() returns weights, not positions: call orders()")
        params = dict(params)

        def compute(*arrays: np.ndarray) -> np.ndarray:
            fields = dict(zip(self.inputs, arrays, strict=True))
            return as_positions(_call(self.signals, fields, params, self.source))

        columns = self._columns[j]
        name = f"signals({self.feed.symbols[j]})"
        values = SimContext._evaluate(compute, columns, (), name, self.feed.n_bars)
        if check:
            _check_causal(compute, columns, (), values, name, SimContext._evaluate)
        return np.ascontiguousarray(values)


_SHORT_PROBE = 2048


def _check_panel_causal(panel: Callable[[int], np.ndarray], values: np.ndarray) -> None:
    n = len(values)
    for k in sorted({min(n - 1, _SHORT_PROBE), n // 2}):
        if k < 2:
            continue
        same = np.isclose(panel(k), values[:k], rtol=1e-9, atol=1e-12, equal_nan=True)
        if not same.all():
            bad = int(np.flatnonzero(~same.all(axis=1))[0])
            raise UserError(
                f"signals() looks ahead: its value at bar {bad} changes when bars after {k - 1} are removed. "
                "A value at a bar may use only that bar and earlier ones (np.roll(x, -1) looks ahead)"
            )


def run_vectorized(
    signals: SignalsFn,
    feed: Feed,
    config: EngineConfig | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    start: int | None = None,
    source: Path | None = None,
) -> BacktestResult:
    """Run ``signals`` over ``feed`` on the compiled simulator; the same result the event engine gives.

    ``params`` are the function's keyword parameters (defaults apply to the
    rest); ``start`` is the first bar that trades (default ``config.warmup``);
    ``source`` is the strategy file, to show the user's traceback on errors.
    """
    cfg = config or EngineConfig()
    check_supported(feed, cfg)
    if cfg.fill_at == "close":
        warnings.warn(
            "fill_at='close' fills market orders at the close of the bar the strategy just saw, "
            "which overstates what could be traded; the default is the next bar's open",
            UserWarning,
            stacklevel=2,
        )
    first = cfg.warmup if start is None else start
    n = feed.n_bars
    if n == 0 or first >= n:
        raise StrategyError(f"nothing to run: {n} bar(s), warm-up {first}; widen the date range")
    orders = signal_orders(signals, feed, params=params, first=first, source=source)
    market = prepare_market(feed)
    spec = spec_of(cfg, zero_first=is_cross_sectional(signals))
    books, fills, log, n_fill, n_order = simulate(market, orders, first, spec)
    return _result(feed, cfg, first, market, books, fills, log, n_fill, n_order)


_STATUS = {0: OrderStatus.OPEN, FILLED: OrderStatus.FILLED, CANCELLED: OrderStatus.CANCELLED}
_REASON = {0: "", REASON_AT_TARGET: "already at target", REASON_BY_STRATEGY: "cancelled by the strategy"}


def _result(
    feed: Feed,
    cfg: EngineConfig,
    first: int,
    market: Market,
    books: Books,
    fills: FillLog,
    log: OrderLog,
    n_fill: int,
    n_order: int,
) -> BacktestResult:
    symbols, ts = feed.symbols, feed.ts
    orders = [
        Order(
            id=k + 1,
            symbol=symbols[log.asset[k]],
            quantity=float(log.quantity[k]),
            type=OrderType.MARKET,
            tif=TimeInForce.GTC,
            created_us=int(ts[log.bar[k]]),
            target=Target.PERCENT,
            target_value=float(log.target[k]),
            status=_STATUS[int(log.status[k])],
            filled_quantity=float(log.filled[k]),
            average_price=float(log.average_price[k]),
            reason=_REASON[int(log.reason[k])],
        )
        for k in range(n_order)
    ]
    fill_list = [
        Fill(
            int(fills.order[k]) + 1,
            symbols[fills.asset[k]],
            int(ts[fills.bar[k]]),
            float(fills.quantity[k]),
            float(fills.price[k]),
            float(fills.commission[k]),
            float(fills.slippage[k]),
        )
        for k in range(n_fill)
    ]
    commission = slippage = 0.0
    for f in fill_list:  # added up fill by fill, as the event books do (not sum(): it compensates on 3.12+)
        commission += f.commission
        slippage += f.slippage
    # Equity as the event engine's ledger computes it (numpy sums), so both agree to the last bit.
    cash, qty = books.cash, books.quantity
    value = qty * market.close_marks[first:]
    if len(symbols) == 1:
        net = value[:, 0]
        gross = np.abs(net)
    else:
        net, gross = value.sum(axis=1), np.abs(value).sum(axis=1)
    return BacktestResult(
        symbols=symbols,
        ts=ts[first:],
        cash=cash,
        quantity=qty,
        equity=cash + net,
        gross=gross,
        net=net,
        orders=orders,
        fills=fill_list,
        splits=[],
        config=cfg,
        commission=commission,
        slippage=slippage,
        dividends=0.0,
    )
