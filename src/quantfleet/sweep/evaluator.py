"""The evaluator port: one parameter combination in, its metrics (and optionally its equity) out.

A sweep evaluates thousands of combinations; writing a run folder for each
would be waste, so an evaluator runs the engine in-process and keeps only what
the leaderboard needs. Two implementations fit the port:

- :class:`EventEvaluator` runs the event-driven engine, one combination at a
  time, on a feed loaded once when the evaluator is built (once per worker
  process in a pool).
- :class:`VectorizedEvaluator` is the slot for the compiled kernel of
  ``signals``-style strategies: it evaluates a whole chunk of combinations
  over plain arrays at once.

Windows are half-open ``[start, end)`` in UTC microseconds over the bars the
evaluator loaded; ``None`` means the first or the past-the-end bar. A window
evaluation is exactly the backtest ``run_spec`` would run with that window's
first and last bar as ``--start`` and ``--end``: the engine's warm-up bars (or
``lookback`` bars, if more) come from before the window, untraded; the
strategy never sees a bar after it.

Metrics are the run folder's metrics (``sandbox.report.build_report``)
without a benchmark, so a leaderboard row equals the run folder of the same
combination, except for benchmark-relative metrics (alpha, beta, ...).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np

from quantfleet.analytics.relative import RELATIVE_KEYS
from quantfleet.core.errors import ConfigError, UserError
from quantfleet.data import MarketDataStore
from quantfleet.data.cache import FileCache
from quantfleet.data.storage import StorageOptions
from quantfleet.engine import Feed, load_feed, run_backtest
from quantfleet.engine.probe import probe_subscriptions
from quantfleet.engine.results import BacktestResult
from quantfleet.engine.vectorized import (
    Market,
    SignalsPlan,
    check_supported,
    prepare_market,
    run_vectorized,
    spec_of,
)
from quantfleet.engine.vectorized.kernels import Books, FillLog, OrderLog, new_books, new_fill_log, new_order_log
from quantfleet.sandbox import BacktestSpec
from quantfleet.sandbox.report import build_report, periods_per_year
from quantfleet.strategy.indicators import IndicatorCache, indicator_cache
from quantfleet.strategy.loader import (
    LoadedStrategy,
    StrategyError,
    StrategyKind,
    is_cross_sectional,
    load_strategy,
    strategy_error,
)
from quantfleet.strategy.params import resolve_params
from quantfleet.sweep.scoring import SCORE_KEYS, score_one_nb, score_orders_nb, score_positions_nb

__all__ = [
    "VECTOR_KEYS",
    "EvalResult",
    "Evaluator",
    "EvaluatorFactory",
    "EventEvaluator",
    "Metrics",
    "StoreRef",
    "VectorizedEvaluator",
    "make_evaluator",
    "metrics_of",
    "slice_feed",
]

Metrics = dict[str, float | None]


@dataclass(frozen=True)
class EvalResult:
    """What one evaluation measured; ``ts``/``equity`` only when asked for (walk-forward stitching)."""

    metrics: Metrics
    ts: np.ndarray | None = None
    equity: np.ndarray | None = None


class Evaluator(Protocol):
    """Evaluate parameter combinations of one strategy on data loaded once."""

    @property
    def ts(self) -> np.ndarray:
        """Return the timestamps (UTC microseconds) of the tradable bars."""
        ...

    @property
    def periods_per_year(self) -> float:
        """Return the bars per year that annualize the metrics."""
        ...

    def evaluate(
        self,
        params: Mapping[str, Any],
        *,
        start: int | None = None,
        end: int | None = None,
        equity: bool = False,
        lookback: int = 0,
    ) -> EvalResult:
        """Return the metrics of ``params`` over ``[start, end)`` (and the equity curve when ``equity``).

        The strategy sees at least ``lookback`` bars before ``start`` (and the engine's warm-up), untraded.
        """
        ...

    def evaluate_chunk(
        self,
        combos: Sequence[Mapping[str, Any]],
        *,
        start: int | None = None,
        end: int | None = None,
        lookback: int = 0,
    ) -> list[Metrics]:
        """Return the metrics of each combination in ``combos``, in order; keep no equity curve."""
        ...


class EvaluatorFactory(Protocol):
    """A picklable recipe that builds an evaluator (in the parent, or once in each worker process)."""

    def build(self) -> Evaluator:
        """Return a ready evaluator: strategy loaded, data read."""
        ...


@dataclass(frozen=True)
class StoreRef:
    """A picklable reference to a market-data store: a worker process reopens it from this."""

    url: str
    storage: StorageOptions | None = None
    cache_root: str | None = None
    cache_capacity: int = 0
    cache_threshold: float = 0.8

    @classmethod
    def of(cls, store: MarketDataStore) -> StoreRef:
        """Return the reference of an open store."""
        cache = store.cache
        if cache is None:
            return cls(store.url, store.storage)
        return cls(store.url, store.storage, str(cache.root), cache.capacity_bytes, cache.threshold)

    def open(self) -> MarketDataStore:
        """Return the store, opened afresh."""
        cache = None
        if self.cache_root is not None:
            cache = FileCache(Path(self.cache_root), capacity_bytes=self.cache_capacity, threshold=self.cache_threshold)
        return MarketDataStore(self.url, storage=self.storage, cache=cache)


def slice_feed(feed: Feed, lo: int, hi: int) -> Feed:
    """Return bars ``[lo, hi)`` of ``feed``; corporate actions re-indexed, those on the new first bar dropped.

    A corporate action on the first bar touches nothing (nothing is held yet),
    which is also what :func:`quantfleet.engine.load_feed` does at a range's start.
    """
    events = {i - lo: evs for i, evs in feed.events.items() if lo < i < hi}
    fields = {k: v[lo:hi] for k, v in feed.fields.items()}
    return Feed(feed.symbols, feed.ts[lo:hi], fields, feed.frequency, events, feed.snapshot)


def metrics_of(result: BacktestResult, feed: Feed, store: MarketDataStore, *, calendar: str) -> Metrics:
    """Return a run's flat numeric metrics, computed as the run folder's metrics.json is.

    Sweeps run without a benchmark, so benchmark-relative metrics (alpha, beta, ...) are left out.
    """
    report = build_report(result, feed, store, calendar=calendar, benchmark=None)
    out: Metrics = {}
    for key, value in report.metrics_json().items():
        if key in RELATIVE_KEYS:
            continue
        if value is None:
            out[key] = None
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value) if np.isfinite(value) else None
    return out


def _quiet_logger(name: str) -> logging.Logger:
    # The strategy's log lines are not kept for sweep evaluations (the top N's run folders keep them).
    logger = logging.getLogger(f"quantfleet.strategy.sweep.{name}")
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


class EventEvaluator:
    """Run the event-driven engine in-process, without writing a run folder.

    The strategy file is loaded and the data read once, here; each evaluation
    instantiates a fresh strategy with the combination applied on top of
    ``spec.params``. Subscriptions are probed once, with ``spec.params``: a
    strategy whose subscriptions depend on a swept parameter is not supported.
    """

    def __init__(self, spec: BacktestSpec, store: MarketDataStore) -> None:
        self.spec = spec
        self.store = store
        self.loaded: LoadedStrategy = load_strategy(spec.strategy, class_name=spec.class_name)
        try:
            subs = probe_subscriptions(self.loaded.instantiate(spec.params), spec.symbols)
        except (UserError, StrategyError):
            raise
        except Exception as exc:
            raise strategy_error(exc, self.loaded.path, " in initialize") from exc
        cfg = spec.engine
        self.feed, self.first = load_feed(
            store,
            subs.symbols or list(spec.symbols),
            start=spec.start,
            end=spec.end,
            frequency=subs.frequency or spec.frequency,
            snapshot=spec.snapshot,
            adjustment=cfg.adjustment,
            warmup=cfg.warmup,
        )
        self._universe = tuple(s for s in spec.symbols if s in self.feed.symbols) or self.feed.symbols
        self._fields = tuple(sorted(subs.fields)) or None
        self._logger = _quiet_logger(self.loaded.sha256[:12])

    @property
    def ts(self) -> np.ndarray:
        """Return the timestamps (UTC microseconds) of the tradable bars (after the warm-up)."""
        return self.feed.ts[self.first :]

    @functools.cached_property
    def periods_per_year(self) -> float:
        """Return the bars per year that annualize the metrics (as a run folder's; asked of the calendar once)."""
        return periods_per_year(self.feed, self.spec.calendar)

    def _bounds(self, start: int | None, end: int | None) -> tuple[int, int]:
        ts = self.feed.ts
        lo = self.first if start is None else max(self.first, int(np.searchsorted(ts, start, side="left")))
        hi = self.feed.n_bars if end is None else int(np.searchsorted(ts, end, side="left"))
        if hi <= lo:
            raise ConfigError("an evaluation window holds no bars; widen the window or the date range")
        return lo, hi

    def _window(self, start: int | None, end: int | None, lookback: int) -> tuple[int, int, int]:
        """Return the first and past-the-end bars of a window, and the first bar the strategy sees (warm-up)."""
        lo, hi = self._bounds(start, end)
        return lo, hi, max(0, lo - max(self.spec.engine.warmup, lookback))

    def _sliced(self, cut: int, hi: int) -> Feed:
        return slice_feed(self.feed, cut, hi) if (cut, hi) != (0, self.feed.n_bars) else self.feed

    def run(
        self, params: Mapping[str, Any], *, start: int | None = None, end: int | None = None, lookback: int = 0
    ) -> tuple[BacktestResult, Feed]:
        """Return the engine's result for ``params`` over ``[start, end)``, and the bars it ran on."""
        lo, hi, cut = self._window(start, end, lookback)
        feed = self._sliced(cut, hi)
        strategy = self.loaded.instantiate({**self.spec.params, **params})
        result = run_backtest(
            strategy,
            feed,
            self.spec.engine,
            start=lo - cut,
            source=self.loaded.path,
            logger=self._logger,
            universe=self._universe,
            fields=self._fields,
        )
        return result, feed

    def evaluate(
        self,
        params: Mapping[str, Any],
        *,
        start: int | None = None,
        end: int | None = None,
        equity: bool = False,
        lookback: int = 0,
    ) -> EvalResult:
        """Return the metrics of ``params`` over ``[start, end)`` (and the equity curve when ``equity``)."""
        result, feed = self.run(params, start=start, end=end, lookback=lookback)
        metrics = metrics_of(result, feed, self.store, calendar=self.spec.calendar)
        if equity:
            return EvalResult(metrics, np.asarray(result.ts).copy(), np.asarray(result.equity).copy())
        return EvalResult(metrics)

    def evaluate_chunk(
        self,
        combos: Sequence[Mapping[str, Any]],
        *,
        start: int | None = None,
        end: int | None = None,
        lookback: int = 0,
    ) -> list[Metrics]:
        """Return the metrics of each combination, one engine run after another."""
        return [self.evaluate(p, start=start, end=end, lookback=lookback).metrics for p in combos]


@dataclass(frozen=True)
class EventTarget:
    """Build the evaluator of ``spec.simulator`` (picklable: a worker process builds its own)."""

    spec: BacktestSpec
    store: StoreRef

    def build(self) -> Evaluator:
        """Return the evaluator: strategy loaded and data read once."""
        return make_evaluator(self.spec, self.store.open())


def make_evaluator(spec: BacktestSpec, store: MarketDataStore) -> EventEvaluator:
    """Return the evaluator ``spec.simulator`` names: event-driven, or compiled for ``signals`` strategies."""
    return VectorizedEvaluator(spec, store) if spec.simulator == "vectorized" else EventEvaluator(spec, store)


class VectorizedEvaluator(EventEvaluator):
    """Run a ``signals`` strategy on the compiled engine; a chunk of combinations costs one kernel call each.

    Data loading, windows and single evaluations are the event evaluator's
    (single evaluations build the full result through
    :func:`~quantfleet.engine.vectorized.run_vectorized`, which gives the same
    fills and equity as the event engine). :meth:`evaluate_chunk` is the fast
    path: the signals function runs on input arrays built once, inside an
    indicator cache (a combination reuses the ``sma(close, 20)`` of the last);
    then one compiled call (:mod:`quantfleet.sweep.scoring`) turns its positions
    into orders, simulates into scratch arrays reused from combination to
    combination, and scores :data:`VECTOR_KEYS` (equal to a run folder's values);
    on one symbol that call is a single pass over the bars. Memory stays at one
    equity curve per process whatever the number of combinations. Look-ahead is
    checked on the first combination of each window.
    """

    def __init__(self, spec: BacktestSpec, store: MarketDataStore) -> None:
        super().__init__(spec, store)
        if self.loaded.kind is not StrategyKind.SIGNALS:
            raise ConfigError(
                f"{self.loaded.path.name} is in {self.loaded.kind} style; the vectorized engine runs signals() "
                "strategies only: sweep with --engine event"
            )
        check_supported(self.feed, spec.engine)
        self._sim = spec_of(spec.engine, zero_first=is_cross_sectional(self.loaded.target))
        self._plans: dict[tuple[int, int], _Plan] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def run(
        self, params: Mapping[str, Any], *, start: int | None = None, end: int | None = None, lookback: int = 0
    ) -> tuple[BacktestResult, Feed]:
        """Return the compiled engine's result for ``params`` over ``[start, end)``, and the bars it ran on."""
        lo, hi, cut = self._window(start, end, lookback)
        feed = self._sliced(cut, hi)
        values = resolve_params(self.loaded.parameters, {**self.spec.params, **params})
        result = run_vectorized(
            self.loaded.target, feed, self.spec.engine, params=values, start=lo - cut, source=self.loaded.path
        )
        return result, feed

    def _cache(self) -> IndicatorCache:
        """Return this thread's indicator cache: kept across chunks, so each SMA is computed once per window."""
        cache = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = IndicatorCache()
        return cache

    def _first_of(self, plan: SignalsPlan) -> bool:
        """Return True once per window: its first combination proves the function does not look ahead.

        The proof recomputes the signals on prefixes of the bars, which the indicator cache
        cannot serve; doing it for every chunk would cost more than the chunk.
        """
        with self._lock:
            first, plan.checked = not plan.checked, True
            return first

    def _plan(self, lo: int, hi: int, cut: int) -> _Plan:
        with self._lock:  # evaluate_chunk runs on several threads at once
            return self._plan_locked(lo, hi, cut)

    def _plan_locked(self, lo: int, hi: int, cut: int) -> _Plan:
        key = (cut, hi)
        if key not in self._plans:
            self._plans.clear()  # one window at a time: a walk-forward moves on and never comes back
            feed = self._sliced(cut, hi)
            plan = SignalsPlan(self.loaded.target, feed, first=lo - cut, source=self.loaded.path)
            market = prepare_market(feed)
            # One symbol: its (n,) columns for the one-pass kernel, copied once per window (not per chunk).
            single = Market(*(np.ascontiguousarray(a[:, 0]) for a in market)) if market.close.shape[1] == 1 else None
            finite = bool(np.isfinite(market.close_marks).all())
            self._plans[key] = _Plan(feed, plan, market, single, finite)
        return self._plans[key]

    def _buffers(self, shape: tuple[int, int], first: int) -> _Buffers:
        """Return this thread's scratch arrays for a window of ``shape`` bars x symbols trading from ``first``."""
        buffers: _Buffers | None = getattr(self._local, "buffers", None)
        if buffers is None or buffers.key != (shape, first):
            n, m = shape
            buffers = self._local.buffers = _Buffers(
                (shape, first),
                np.empty(shape),
                np.empty(shape),
                new_books(n - first, m),
                new_fill_log(0),
                new_order_log(0),
                np.empty(len(SCORE_KEYS)),
                np.empty(max(n - first, 0)),
            )
        return buffers

    def evaluate_chunk(
        self,
        combos: Sequence[Mapping[str, Any]],
        *,
        start: int | None = None,
        end: int | None = None,
        lookback: int = 0,
    ) -> list[Metrics]:
        """Return the headline metrics of each combination: its ``signals()``, then one compiled call."""
        lo, hi, cut = self._window(start, end, lookback)
        feed, plan, market, single, finite_marks = self._plan(lo, hi, cut)
        first = lo - cut
        b = self._buffers(market.close.shape, first)
        ppy = float(self.periods_per_year)
        weight = 1.0 / len(feed.symbols)
        out: list[Metrics] = []
        cache = self._cache()
        with indicator_cache(cache):
            for combo in combos:
                values = resolve_params(self.loaded.parameters, {**self.spec.params, **combo})
                check = self._first_of(plan)
                try:
                    signal = self._signals(plan, values, check, b.positions, single is not None)
                except StrategyError as exc:
                    if cache.copies or not _wrote_read_only(exc):
                        raise
                    # The strategy writes into its indicators, which the cache hands out read-only:
                    # from now on it gets copies, as it would outside a sweep.
                    cache.copies = True
                    signal = self._signals(plan, values, check, b.positions, single is not None)
                if plan.cross_sectional:
                    score_orders_nb(
                        market.open, market.close, market.volume, market.open_marks, market.close_marks,
                        signal, first, self._sim, b.books, b.fills, b.log, ppy, b.scores,
                    )  # fmt: skip
                elif single is not None:
                    score_one_nb(
                        signal, weight, single.open, single.close, single.volume,
                        single.open_marks, single.close_marks, first, self._sim, ppy, b.rets, b.scores, finite_marks,
                    )  # fmt: skip
                else:
                    score_positions_nb(
                        signal, weight, b.orders,
                        market.open, market.close, market.volume, market.open_marks, market.close_marks,
                        first, self._sim, b.books, b.fills, b.log, ppy, b.scores,
                    )  # fmt: skip
                scores = zip(SCORE_KEYS, b.scores.tolist(), strict=True)
                out.append({k: (v if math.isfinite(v) else None) for k, v in scores})
        return out

    @staticmethod
    def _signals(plan: SignalsPlan, values: Mapping[str, Any], check: bool, out: np.ndarray, one: bool) -> np.ndarray:
        """Return the combination's orders (cross-sectional), its one symbol's positions, or all positions."""
        if plan.cross_sectional:
            return plan.orders(values, check=check)
        if one:
            return plan.column(values, 0, check=check)
        return plan.positions(values, check=check, out=out)


def _wrote_read_only(exc: StrategyError) -> bool:
    """Return whether the strategy failed writing into a read-only array (an indicator the cache handed out)."""
    cause = exc.__cause__
    return isinstance(cause, ValueError) and "read-only" in str(cause)


class _Plan(NamedTuple):
    """One window's bars, signals plan and kernel arrays, built once and shared by the chunks that evaluate it."""

    feed: Feed
    plan: SignalsPlan
    market: Market
    single: Market | None  # the one symbol's (n,) columns, when there is one symbol
    finite_marks: bool  # every close mark finite: score_one_nb may count flat stretches without reading them


class _Buffers(NamedTuple):
    """One thread's scratch arrays for one window, reused from combination to combination."""

    key: tuple[tuple[int, int], int]
    positions: np.ndarray
    orders: np.ndarray
    books: Books
    fills: FillLog
    log: OrderLog
    scores: np.ndarray
    rets: np.ndarray  # the single-symbol kernel's returns


VECTOR_KEYS = SCORE_KEYS
"""The metrics a vectorized sweep scores (a leaderboard's columns)."""
