"""A run's report: its metrics (strategy and benchmark) and the tearsheet's inputs.

The benchmark is a buy-and-hold of one symbol (the first of the universe
unless the spec names another), valued on prices adjusted for splits and
dividends whatever prices the strategy traded on, so a split is not a crash
and dividends count, as in a total-return index. It starts with the run's
cash on the first tradable bar and holds through the last.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from quantfleet.analytics.metrics import (
    TRADING_DAYS,
    Performance,
    performance,
    returns_from_equity,
    returns_metrics,
)
from quantfleet.analytics.metrics import periods_per_year as bars_per_year
from quantfleet.analytics.tearsheet import TearsheetData
from quantfleet.core.errors import DataError
from quantfleet.core.types import Adjustment
from quantfleet.data import MarketDataStore
from quantfleet.data.calendars import ALWAYS_OPEN, session_minutes
from quantfleet.engine.feed import Feed
from quantfleet.engine.results import BacktestResult

__all__ = ["Benchmark", "RunReport", "build_report", "periods_per_year"]

CALENDAR_DAYS = 365
"""Sessions per year of a market that never closes."""


@dataclass(frozen=True)
class Benchmark:
    """A buy-and-hold benchmark valued per bar of the run."""

    symbol: str
    equity: np.ndarray


@dataclass(frozen=True)
class RunReport:
    """What the run folder's metrics.json holds, and what the tearsheet shows."""

    performance: Performance
    benchmark: Benchmark | None
    benchmark_metrics: dict[str, Any] | None
    benchmark_notes: dict[str, str]
    periods_per_year: float

    def metrics_json(self) -> dict[str, Any]:
        """Return metrics.json: flat strategy metrics, their notes, and the benchmark's metrics."""
        out = self.performance.to_json()
        if self.benchmark is not None and self.benchmark_metrics is not None:
            out["benchmark"] = {"symbol": self.benchmark.symbol, **self.benchmark_metrics}
            out["benchmark"]["notes"] = dict(self.benchmark_notes)
        else:
            out["benchmark"] = None
        return out


def periods_per_year(feed: Feed, calendar: str) -> float:
    """Return bars per year: sessions per year x bars per session.

    Daily bars: 252 (365 on a calendar that never closes). Intraday bars scale
    by the calendar's session length, e.g. 252 x 390 = 98,280 one-minute bars a
    year on XNYS, as empyrical annualizes intraday returns.
    """
    days = CALENDAR_DAYS if calendar == ALWAYS_OPEN else TRADING_DAYS
    if not feed.frequency.is_intraday or feed.n_bars == 0:
        return bars_per_year(None, sessions_per_year=days)
    first = pd.Timestamp(int(feed.ts[0]), unit="us")
    last = pd.Timestamp(int(feed.ts[-1]), unit="us")
    minutes = session_minutes(calendar, first, last)
    return bars_per_year(feed.frequency.step.total_seconds() / 60, minutes, sessions_per_year=days)


def _benchmark(store: MarketDataStore, feed: Feed, ts: np.ndarray, symbol: str, cash: float) -> Benchmark:
    """Return buy-and-hold of ``symbol`` on total-return prices, aligned to ``ts`` (carried forward)."""
    start = datetime.fromtimestamp(int(ts[0]) / 1e6, tz=UTC)
    end = datetime.fromtimestamp(int(ts[-1]) / 1e6, tz=UTC)
    try:
        bars = store.read_bars(
            [symbol],
            start=start,
            end=end,
            frequency=feed.frequency,
            snapshot=feed.snapshot,
            adjustment=Adjustment.ALL,
        )
    except DataError as exc:
        fix = "name another with --benchmark SYMBOL, or --benchmark none"
        raise DataError(f"benchmark {symbol}: {exc} ({fix})") from exc
    cols = bars.to_numpy(symbol)
    bench_ts = np.asarray(cols["ts"], dtype="datetime64[us]").astype(np.int64)
    close = np.asarray(cols["close"], dtype=np.float64)
    at = np.searchsorted(bench_ts, ts, side="right") - 1
    price = np.where(at >= 0, close[np.maximum(at, 0)], np.nan)
    held = ~np.isnan(price)
    equity = np.full(len(ts), cash)
    if held.any():
        base = price[np.argmax(held)]
        equity[held] = cash * price[held] / base
    return Benchmark(symbol, equity)


def build_report(
    result: BacktestResult,
    feed: Feed,
    store: MarketDataStore,
    *,
    calendar: str,
    benchmark: str | None,
) -> RunReport:
    """Compute the run's metrics, against ``benchmark`` (a symbol; None for no benchmark)."""
    ppy = periods_per_year(feed, calendar)
    fills = result.fills
    traded = float(sum(abs(f.quantity * f.price) for f in fills))
    bench = _benchmark(store, feed, result.ts, benchmark, result.config.cash) if benchmark else None
    perf = performance(
        result.equity,
        result.ts,
        periods_per_year=ppy,
        benchmark=bench.equity if bench else None,
        trades=result.trades_table(),
        gross_exposure=result.gross,
        traded_value=traded,
        commission=result.commission,
        slippage=result.slippage,
    )
    bench_values: dict[str, Any] | None = None
    bench_notes: dict[str, str] = {}
    if bench is not None:
        values, bench_notes = returns_metrics(returns_from_equity(bench.equity), result.ts, periods_per_year=ppy)
        bench_values = {k: _finite(v) for k, v in values.items()}
        bench_values["final_equity"] = float(bench.equity[-1])
    return RunReport(perf, bench, bench_values, dict(bench_notes), ppy)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def tearsheet_data(
    report: RunReport, result: BacktestResult, feed: Feed, first: int, manifest: Mapping[str, Any]
) -> TearsheetData:
    """Return the tearsheet's inputs: the books per bar, trades, and the closes of traded symbols."""
    trades: pa.Table = result.trades_table()
    counts: dict[str, int] = {}
    for symbol in trades.column("symbol").to_pylist():
        counts[symbol] = counts.get(symbol, 0) + 1
    order = sorted(counts, key=lambda s: (-counts[s], s))
    close = feed.fields["close"]
    prices = {s: np.asarray(close[first:, feed.symbols.index(s)]) for s in order if s in feed.symbols}
    bench = report.benchmark
    return TearsheetData(
        manifest=manifest,
        ts=result.ts,
        equity=result.equity,
        gross_exposure=result.gross,
        net_exposure=result.net,
        metrics=report.performance.values,
        benchmark_metrics=report.benchmark_metrics,
        benchmark=bench.equity if bench else None,
        benchmark_name=f"{bench.symbol} buy & hold" if bench else None,
        trades=trades,
        prices=prices,
        periods_per_year=report.periods_per_year,
        notes=report.performance.notes,
    )
