"""Vectorized indicators over whole arrays (NaN during warm-up), for ``ctx.indicator``.

Each takes a float array and returns an array of the same length, whose value
at bar ``i`` uses only bars ``0..i``: computing them once over the whole
series does not look ahead.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from numba import njit

__all__ = ["IndicatorCache", "crossover", "ema", "indicator_cache", "rolling_std", "rsi", "sma"]

_F = TypeVar("_F", bound=Callable[..., np.ndarray])
_CACHE: ContextVar[IndicatorCache | None] = ContextVar("quantfleet_indicator_cache", default=None)


class IndicatorCache(dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]]):
    """Indicator results kept by :func:`indicator_cache`, emptied when they pass ``max_bytes``.

    Results are handed out as read-only views (``copies=False``, the default) or as copies.
    """

    def __init__(self, max_bytes: int = 512 * 2**20, *, copies: bool = False) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.copies = copies

    def keep(self, key: tuple[Any, ...], entry: tuple[np.ndarray, np.ndarray]) -> None:
        """Store ``entry``; start afresh first when it would pass the bound (a sweep's windows fit many times)."""
        if self.nbytes + entry[1].nbytes > self.max_bytes:
            self.clear()
            self.nbytes = 0
        self[key] = entry
        self.nbytes += entry[1].nbytes


@contextlib.contextmanager
def indicator_cache(cache: IndicatorCache | None = None) -> Iterator[IndicatorCache]:
    """Reuse indicator results inside the block: a sweep calls ``sma(close, 20)`` once, not per combination.

    Results are keyed by the input array's identity and the arguments; the
    cache holds a reference to each input, so an identity is never reused for
    another array while it lives. It hands out read-only views, so a strategy
    that writes into a result cannot change what the next combination sees: the
    write raises ``ValueError`` instead (a copy of 100,000 bars costs more than
    the rest of a cached ``sma``; a caller that must run such a strategy passes
    ``IndicatorCache(copies=True)``, as the sweep's evaluator does when it meets
    one). Pass the same ``cache`` to several blocks (one per thread) to keep
    results between them.
    """
    kept = cache if cache is not None else IndicatorCache()
    token = _CACHE.set(kept)
    try:
        yield kept
    finally:
        _CACHE.reset(token)


def _cached(func: _F) -> _F:
    @functools.wraps(func)
    def wrapper(values: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        cache = _CACHE.get()
        if cache is None or not isinstance(values, np.ndarray):
            return func(values, *args, **kwargs)
        key = (func.__name__, id(values), values.shape, args, tuple(sorted(kwargs.items())))
        hit = cache.get(key)
        if hit is None or hit[0] is not values:
            # Its own copy (once per indicator, not per use), read-only: then the views handed out
            # cannot be made writeable again (pandas' results are views of a writeable buffer).
            result = np.array(func(values, *args, **kwargs))
            result.flags.writeable = False
            hit = (values, result)
            cache.keep(key, hit)
        return hit[1].copy() if cache.copies else hit[1].view()

    return wrapper  # type: ignore[return-value]


@_cached
def sma(values: np.ndarray, n: int) -> np.ndarray:
    """Return the simple moving average over ``n`` bars (NaN for the first ``n - 1``).

    pandas' rolling mean (compensated running sums) rather than a plain cumulative
    sum, whose rounding error grows along a long series and flips crossovers
    of nearly equal averages; it is also what backtesting.py uses.
    """
    if n <= 0:
        raise ValueError("sma window must be positive")
    x = pd.Series(np.asarray(values, dtype=np.float64))
    return x.rolling(n, min_periods=n).mean().to_numpy(dtype=np.float64)


@_cached
def ema(values: np.ndarray, n: int) -> np.ndarray:
    """Return the exponential moving average with alpha 2/(n+1), seeded by the first SMA."""
    x = np.asarray(values, dtype=np.float64)
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    alpha = 2.0 / (n + 1)
    out[n - 1] = x[:n].mean()
    for i in range(n, len(x)):
        out[i] = alpha * x[i] + (1 - alpha) * out[i - 1]
    return out


@_cached
def rolling_std(values: np.ndarray, n: int, ddof: int = 1) -> np.ndarray:
    """Return the rolling standard deviation over ``n`` bars."""
    x = pd.Series(np.asarray(values, dtype=np.float64))
    return x.rolling(n, min_periods=n).std(ddof=ddof).to_numpy(dtype=np.float64)


@_cached
def rsi(values: np.ndarray, n: int = 14) -> np.ndarray:
    """Return Wilder's relative strength index."""
    x = np.asarray(values, dtype=np.float64)
    out = np.full(len(x), np.nan)
    if len(x) <= n:
        return out
    delta = np.diff(x)
    gain, loss = np.clip(delta, 0, None), np.clip(-delta, 0, None)
    avg_gain, avg_loss = gain[:n].mean(), loss[:n].mean()
    for i in range(n, len(x)):
        if i > n:
            avg_gain = (avg_gain * (n - 1) + gain[i - 1]) / n
            avg_loss = (avg_loss * (n - 1) + loss[i - 1]) / n
        out[i] = 100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    return out


def crossover(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return +1 where ``a`` crosses above ``b`` at a bar, -1 where below, else 0.

    A cross at bar ``i`` means ``a < b`` at ``i - 1`` and ``a > b`` at ``i``
    (strictly; NaN never crosses), the convention of backtesting.py.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"crossover needs two 1-D arrays of one length, got {a.shape} and {b.shape}")
    out = np.empty(len(a))
    _crossover_nb(a, b, out)
    return out


@njit(cache=True, nogil=True)
def _crossover_nb(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    # One pass, writing every bar (no zeroed array first), the comparisons of bar i kept for bar i + 1:
    # a sweep calls this per combination.
    if len(a) == 0:
        return
    out[0] = 0.0
    below, above = a[0] < b[0], a[0] > b[0]
    for i in range(1, len(a)):
        lt, gt = a[i] < b[i], a[i] > b[i]
        out[i] = (1.0 if below and gt else 0.0) - (1.0 if above and lt else 0.0)
        below, above = lt, gt
