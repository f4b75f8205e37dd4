"""The event loop: one pass over the bars, the strategy called once per timestamp.

Per bar ``i``: corporate actions of that date touch the books; open orders
are matched against the bar; the strategy's ``on_bar`` runs (from the first
bar after the warm-up); with ``fill_at="close"`` market orders then fill at
this bar's close. The books are recorded only when they change, and the
equity curve is rebuilt vectorized at the end, so the per-bar path allocates
nothing and touches no pandas.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from quantfleet.core.errors import QuantfleetError
from quantfleet.core.orders import Fill
from quantfleet.engine.broker import SimBroker
from quantfleet.engine.config import EngineConfig
from quantfleet.engine.context import SimBars, SimContext
from quantfleet.engine.feed import Feed
from quantfleet.engine.portfolio import SimPortfolio
from quantfleet.engine.results import BacktestResult, Ledger
from quantfleet.strategy.loader import StrategyError, strategy_error

__all__ = ["run_backtest"]

ProgressFn = Callable[[int, int], None]
_CHUNK = 1 << 14


def _marks(feed: Feed) -> tuple[np.ndarray, np.ndarray]:
    """Return prices to mark positions at each bar's open and close (carried forward over gaps)."""
    close = feed.fields["close"]
    valid = ~np.isnan(close)
    idx = np.where(valid, np.arange(len(close))[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    close_ff = np.take_along_axis(close, idx, axis=0)
    prev = np.vstack([np.full((1, close.shape[1]), np.nan), close_ff[:-1]])
    opens = feed.fields["open"]
    open_ff = np.where(np.isnan(opens), prev, opens)
    return open_ff, close_ff


def run_backtest(
    strategy: Any,
    feed: Feed,
    config: EngineConfig | None = None,
    *,
    start: int | None = None,
    source: Path | None = None,
    logger: logging.Logger | None = None,
    progress: ProgressFn | None = None,
) -> BacktestResult:
    """Run ``strategy`` (initialize/on_bar/on_fill/on_end) over ``feed`` and return the result.

    ``start`` is the first bar the strategy trades on (default: ``config.warmup``).
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
    cursor = [0]
    open_marks, close_marks = _marks(feed)
    book = SimPortfolio(feed.symbols, cfg.cash, close_marks, cursor)
    ledger = Ledger(feed, cfg.cash)
    ctx_holder: list[SimContext] = []

    def on_fill(fill: Fill) -> None:
        strategy.on_fill(ctx_holder[0], fill)

    broker = SimBroker(feed, cfg, book, on_fill=on_fill, time=feed.time, open_marks=open_marks, close_marks=close_marks)
    ctx = SimContext(
        feed,
        cursor,
        book,
        broker,
        seed=cfg.seed,
        logger=logger or logging.getLogger("quantfleet.strategy"),
        close_marks=close_marks,
    )
    ctx_holder.append(ctx)
    bars = SimBars(feed, cursor)
    try:
        strategy.initialize(ctx)
        _loop(strategy.on_bar, ctx, bars, broker, book, ledger, feed, cfg, first, progress, cursor)
        strategy.on_end(ctx)
    except QuantfleetError:
        raise
    except Exception as exc:
        where = f" on bar {feed.time(cursor[0]):%Y-%m-%d %H:%M}" if n else ""
        if source is None:
            raise StrategyError(f"your strategy failed{where}: {type(exc).__name__}: {exc}") from exc
        raise strategy_error(exc, source, where) from exc
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
    fills = broker.fills
    at_close = cfg.fill_at == "close"
    n = feed.n_bars
    seen = 0
    for lo in range(0, n, _CHUNK):
        for i in range(lo, min(lo + _CHUNK, n)):
            cursor[0] = i
            if i in events:
                for ev in events[i]:
                    if ev.kind == "split":
                        book.split(ev.symbol, ev.value)
                        broker.split(ev.symbol, ev.value)
                        ledger.split(i, ev.symbol, ev.value)
                    else:
                        book.dividend(ev.symbol, ev.value)
                ledger.record(i, book)
            if pending:
                broker.process(i)
            if i >= first:
                on_bar(ctx, bars)
                if at_close and pending:
                    broker.process(i, at_close=True)
            if len(fills) != seen:
                seen = len(fills)
                ledger.record(i, book)
        if progress is not None:
            progress(min(lo + _CHUNK, n), n)
