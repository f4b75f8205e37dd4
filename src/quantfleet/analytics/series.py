"""Series derived from an equity curve for charts, and downsampling for display.

Charts show at most a few thousand points per trace so a 20-year minute run
still opens at once; the exact data stays in the run's Parquet artifacts.
Downsampling keeps the minimum and the maximum of each bucket, so drawdown
troughs and equity peaks stay visible. Timestamps are int64 UTC microseconds;
calendar grouping (days, months, years) is in UTC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantfleet.core.types import US_PER_DAY

__all__ = [
    "MonthlyTable",
    "bar_returns",
    "daily_last",
    "histogram",
    "minmax_indices",
    "month_names",
    "monthly_table",
    "rolling_sharpe_vol",
    "to_ms",
]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def to_ms(ts: np.ndarray) -> np.ndarray:
    """Return UTC microseconds as float milliseconds, the number Plotly reads on a date axis."""
    return np.asarray(ts, dtype=np.int64).astype(np.float64) / 1000.0


def minmax_indices(y: np.ndarray, max_points: int) -> np.ndarray:
    """Return sorted indices of ``y`` to plot: all of them, or the first, last, min and max per bucket.

    NaN counts as neither min nor max; a bucket of NaN keeps its first index.
    """
    values = np.asarray(y, dtype=np.float64)
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, (max_points - 2) // 2)
    size = math.ceil(n / buckets)
    rows = math.ceil(n / size)
    padded = np.full(rows * size, np.nan)
    padded[:n] = values
    grid = padded.reshape(rows, size)
    low = np.argmin(np.where(np.isnan(grid), np.inf, grid), axis=1)
    high = np.argmax(np.where(np.isnan(grid), -np.inf, grid), axis=1)
    starts = np.arange(rows) * size
    picked = np.concatenate([[0, n - 1], starts + low, starts + high])
    return np.unique(np.minimum(picked, n - 1))


def bar_returns(equity: np.ndarray) -> np.ndarray:
    """Return simple returns between consecutive bars; NaN after equity at or below zero."""
    e = np.asarray(equity, dtype=np.float64)
    if len(e) < 2:
        return np.empty(0)
    prev = e[:-1]
    out = np.full(len(prev), np.nan)
    np.divide(e[1:], prev, out=out, where=prev > 0)
    return out - 1.0


def _last_of_groups(keys: np.ndarray) -> np.ndarray:
    """Return the index of the last element of each run of equal ``keys`` (sorted input)."""
    if len(keys) == 0:
        return np.empty(0, dtype=np.int64)
    return np.concatenate([np.flatnonzero(np.diff(keys) != 0), [len(keys) - 1]]).astype(np.int64)


def daily_last(ts: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (timestamps, values) of the last bar of each UTC day."""
    t = np.asarray(ts, dtype=np.int64)
    idx = _last_of_groups(t // US_PER_DAY)
    return t[idx], np.asarray(values, dtype=np.float64)[idx]


@dataclass(frozen=True, slots=True)
class MonthlyTable:
    """Monthly returns (years x 12, NaN where no data) and the year totals."""

    years: list[int]
    months: np.ndarray
    yearly: np.ndarray


def _period_returns(equity: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (key, return) per period: last equity over the previous period's last (the first bar for the first)."""
    idx = _last_of_groups(keys)
    closes = equity[idx]
    base = np.r_[equity[0], closes[:-1]]
    out = np.full(len(closes), np.nan)
    np.divide(closes, base, out=out, where=base > 0)
    return keys[idx], out - 1.0


def monthly_table(ts: np.ndarray, equity: np.ndarray) -> MonthlyTable:
    """Return compounded returns per calendar month and per year (UTC)."""
    e = np.asarray(equity, dtype=np.float64)
    if len(e) == 0:
        return MonthlyTable([], np.empty((0, 12)), np.empty(0))
    months = np.asarray(ts, dtype=np.int64).astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
    month_keys, month_ret = _period_returns(e, months)
    year_keys, year_ret = _period_returns(e, months // 12)
    first_year = int(year_keys[0])
    years = [1970 + int(y) for y in year_keys]
    grid = np.full((len(years), 12), np.nan)
    grid[month_keys // 12 - first_year, month_keys % 12] = month_ret
    return MonthlyTable(years, grid, year_ret)


def month_names() -> tuple[str, ...]:
    """Return the twelve month abbreviations, January first."""
    return _MONTHS


def rolling_sharpe_vol(returns: np.ndarray, window: int, periods_per_year: float) -> tuple[np.ndarray, np.ndarray]:
    """Return annualized rolling Sharpe ratio and volatility over ``window`` periods (NaN until full).

    Sample standard deviation (ddof=1), risk-free rate zero, as in the metrics.
    A window with no variation has no Sharpe ratio (NaN), not an infinite one.
    """
    r = pd.Series(np.asarray(returns, dtype=np.float64))
    if window < 2 or len(r) < window:
        nan = np.full(len(r), np.nan)
        return nan, nan.copy()
    roll = r.rolling(window, min_periods=window)
    std = roll.std(ddof=1).to_numpy()
    mean = roll.mean().to_numpy()
    scale = math.sqrt(periods_per_year)
    vol = std * scale
    sharpe = np.full(len(r), np.nan)
    ok = np.isfinite(std) & (std > 1e-12)
    sharpe[ok] = mean[ok] / std[ok] * scale
    return sharpe, vol


def histogram(returns: np.ndarray, *, max_bins: int = 60) -> tuple[np.ndarray, np.ndarray, float]:
    """Return (bin centres, counts, bin width) over the finite ``returns``; empty when there are none."""
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    if len(r) == 0:
        return np.empty(0), np.empty(0, dtype=np.int64), 0.0
    bins = int(min(max_bins, max(5, math.ceil(math.sqrt(len(r))))))
    lo, hi = float(r.min()), float(r.max())
    if hi - lo < 1e-15:
        lo, hi = lo - 0.0005, hi + 0.0005
    counts, edges = np.histogram(r, bins=bins, range=(lo, hi))
    return (edges[:-1] + edges[1:]) / 2.0, counts, float(edges[1] - edges[0])
