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

__all__ = ["crossover", "ema", "indicator_cache", "rolling_std", "rsi", "sma"]

_F = TypeVar("_F", bound=Callable[..., np.ndarray])
_CACHE: ContextVar[dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] | None] = ContextVar(
    "quantfleet_indicator_cache", default=None
)


@contextlib.contextmanager
def indicator_cache() -> Iterator[None]:
    """Reuse indicator results inside the block: a sweep calls ``sma(close, 20)`` once, not per combination.

    Results are keyed by the input array's identity and the arguments; the
    cache holds a reference to each input, so an identity is never reused for
    another array while it lives, and it hands out copies, so a strategy that
    writes into a result cannot change what the next combination sees.
    """
    token = _CACHE.set({})
    try:
        yield
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
            hit = (values, func(values, *args, **kwargs))
            cache[key] = hit
        return hit[1].copy()

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
    out = np.zeros(len(a))
    up = (a[:-1] < b[:-1]) & (a[1:] > b[1:])
    down = (a[:-1] > b[:-1]) & (a[1:] < b[1:])
    out[1:][up] = 1.0
    out[1:][down] = -1.0
    return out
