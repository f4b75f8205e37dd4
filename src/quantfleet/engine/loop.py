"""The event loop: one pass over the bars, the strategy called once per timestamp.

Per bar ``i``: corporate actions of that date touch the books; open orders
are matched against the bar; the strategy's ``on_bar`` runs (from the first
bar after the warm-up); with ``fill_at="close"`` market orders then fill at
this bar's close. The books are recorded only when they change, and the
equity curve is rebuilt vectorized at the end, so the per-bar path allocates
nothing and touches no pandas.
"""

from __future__ import annotations

import gc
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from quantfleet.core.errors import InfrastructureError
from quantfleet.core.orders import Fill
from quantfleet.engine.broker import SimBroker
from quantfleet.engine.config import EngineConfig
from quantfleet.engine.context import SimBars, SimContext
from quantfleet.engine.feed import Feed
from quantfleet.engine.portfolio import SimPortfolio
from quantfleet.engine.results import BacktestResult, Ledger
from quantfleet.strategy.base import Strategy
from quantfleet.strategy.loader import StrategyError, strategy_error

__all__ = ["run_backtest"]

ProgressFn = Callable[[int, int], None]
_CHUNK = 1 << 14


def _marks(feed: Feed) -> tuple[np.ndarray, np.ndarray]:
    """Return prices to mark positions at each bar's open and close (carried forward over gaps)."""
    close = feed.fields["close"]
    opens = feed.fields["open"]
    if not (np.isnan(close).any() or np.isnan(opens).any()):
        return opens, close  # every symbol has every bar: nothing to carry forward
    valid = ~np.isnan(close)
    idx = np.where(valid, np.arange(len(close))[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    close_ff = np.take_along_axis(close, idx, axis=0)
    prev = np.vstack([np.full((1, close.shape[1]), np.nan), close_ff[:-1]])
    open_ff = np.where(np.isnan(opens), prev, opens)
    # Before a symbol's first bar nothing is held, so a zero mark values nothing.
    return np.nan_to_num(open_ff, nan=0.0), np.nan_to_num(close_ff, nan=0.0)


def run_backtest(
    strategy: Any,
    feed: Feed,
    config: EngineConfig | None = None,
    *,
    start: int | None = None,
    source: Path | None = None,
    logger: logging.Logger | None = None,
    progress: ProgressFn | None = None,
    universe: tuple[str, ...] | None = None,
    fields: tuple[str, ...] | None = None,
) -> BacktestResult:
    """Run ``strategy`` (initialize/on_bar/on_fill/on_end) over ``feed`` and return the result.

    ``start`` is the first bar the strategy trades on (default: ``config.warmup``).
    ``universe`` is ``ctx.universe`` (default: every symbol of the feed); with
    ``fields``, the strategy sees only those fields (the broker still fills on OHLCV).
    Errors raised by strategy code become :class:`StrategyError` showing the
    user's traceback (``source`` is the strategy file).
    """
    cfg = config or EngineConfig()
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
    cursor = [-1]  # -1 during initialize: no bar is current yet
    open_marks, close_marks = _marks(feed)
    book = SimPortfolio(feed.symbols, cfg.cash, close_marks, cursor)
    ledger = Ledger(feed, cfg.cash)
    ctx_holder: list[SimContext] = []
    user_on_fill = getattr(strategy, "on_fill", None)
    if getattr(user_on_fill, "__func__", None) is Strategy.on_fill:
        user_on_fill = None  # the base class does nothing: skip the call per fill

    def on_fill(fill: Fill) -> None:
        if user_on_fill is not None:
            user_on_fill(ctx_holder[0], fill)

    broker = SimBroker(
        feed, cfg, book, on_fill=on_fill, record=ledger.record, open_marks=open_marks, close_marks=close_marks
    )
    ctx = SimContext(
        feed,
        cursor,
        book,
        broker,
        seed=cfg.seed,
        logger=logger or logging.getLogger("quantfleet.strategy"),
        close_marks=close_marks,
        universe=universe,
        fields=fields,
    )
    ctx_holder.append(ctx)
    bars = SimBars(feed, cursor)
    # The loop makes few reference cycles; the collector's full passes over the
    # large indicator lists would cost more than the whole loop, so pause it.
    collecting = gc.isenabled()
    gc.disable()
    try:
        strategy.initialize(ctx)
        _loop(strategy.on_bar, ctx, bars, broker, book, ledger, feed, cfg, first, progress, cursor)
        strategy.on_end(ctx)
    except InfrastructureError:
        raise
    except Exception as exc:  # the strategy's own errors, and its misuse of ctx (UserError)
        where = f" on bar {feed.time(cursor[0]):%Y-%m-%d %H:%M}" if n else ""
        if source is None:
            raise StrategyError(f"your strategy failed{where}: {type(exc).__name__}: {exc}") from exc
        raise strategy_error(exc, source, where) from exc
    finally:
        if collecting:
            gc.enable()
    return ledger.result(book, broker, cfg, first)


def _loop(
    on_bar: Callable[[Any, Any], None],
    ctx: SimContext,
    bars: SimBars,
    broker: SimBroker,
    book: SimPortfolio,
    ledger: Ledger,
    feed: Feed,
    cfg: EngineConfig,
    first: int,
    progress: ProgressFn | None,
    cursor: list[int],
) -> None:
    events = feed.events
    pending = broker.open  # the same list object for the whole run
    feeders = ctx.feeders  # grows if the strategy adds indicators later
    at_close = cfg.fill_at == "close"
    n = feed.n_bars
    full = feed.symbols
    gaps = np.flatnonzero(np.isnan(feed.fields["close"]).any(axis=1)).tolist()
    # Bars that need more than the common path: corporate actions, symbols without a
    # bar, and the bar after a gap (to restore the full symbol list).
    special = set(events) | set(gaps) | {i + 1 for i in gaps}
    gap_set = set(gaps)
    append = list.append

    def handle(i: int) -> None:
        bars.symbols = bars.present(i) if i in gap_set else full
        if i in events:
            for ev in events[i]:
                if ev.kind == "split":
                    book.split(ev.symbol, ev.value)
                    broker.split(ev.symbol, ev.value)
                    ledger.split(i, ev.symbol, ev.value)
                else:
                    book.dividend(ev.symbol, ev.value)
            ledger.record(i, book)

    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        warm = min(max(first, lo), hi)
        for i in range(lo, warm):  # warm-up: indicators advance, nothing trades
            cursor[0] = i
            for line, values in feeders:
                append(line, values[i])
            if i in special:
                handle(i)
        for i in range(warm, hi):
            cursor[0] = i
            for line, values in feeders:
                append(line, values[i])
            if i in special:
                handle(i)
            if pending:
                broker.process(i)
            on_bar(ctx, bars)
            if at_close and pending:
                broker.process(i, at_close=True)
        if progress is not None:
            progress(hi, n)
