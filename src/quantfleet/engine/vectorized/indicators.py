"""Compiled indicators over plain arrays, for kernels and sweeps (``*_nb``).

Each takes float64 arrays of one symbol and returns arrays of the same length
whose value at bar ``i`` uses only bars ``0..i``. Warm-up, exactly:

- ``rolling_mean_nb(x, n)``, ``rolling_std_nb(x, n, ddof)``, ``bollinger_nb`` (lower, middle, upper):
  NaN at bar ``i`` unless the ``n`` bars ``i-n+1..i`` are all non-NaN (pandas'
  ``rolling(n, min_periods=n)``), so the first ``n - 1`` bars are NaN;
- ``ema_nb(x, n)``: NaN for the first ``n - 1`` bars; bar ``n - 1`` is the mean of
  the first ``n``; then ``alpha x + (1 - alpha) prev`` with ``alpha = 2 / (n + 1)``
  (NaN inputs propagate);
- ``rsi_nb(x, n)``: NaN for the first ``n`` bars (it needs ``n`` changes); Wilder's
  smoothing seeded by the mean gain and loss of the first ``n`` changes;
- ``atr_nb(high, low, close, n)``: true range ``max(h - l, |h - prev c|, |l - prev c|)``
  (bar 0: ``h - l``); NaN for the first ``n - 1`` bars; bar ``n - 1`` is the mean
  of the first ``n`` true ranges; then Wilder's ``(prev (n - 1) + tr) / n``;
- ``crossover_nb(a, b)``: never NaN; +1 at ``i`` where ``a < b`` at ``i - 1`` and
  ``a > b`` at ``i`` (strictly; NaN never crosses), -1 for the reverse, else 0.

They give the numbers of :mod:`quantfleet.strategy.indicators` and pandas to
rounding (about 1e-13 relative; the tests check it), not always to the last
bit: where two averages are equal to within rounding, a crossover computed
with these may differ from one computed with pandas.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["atr_nb", "bollinger_nb", "crossover_nb", "ema_nb", "rolling_mean_nb", "rolling_std_nb", "rsi_nb"]


@njit(cache=True)
def rolling_mean_nb(x: np.ndarray, n: int) -> np.ndarray:
    """Return the mean of the last ``n`` bars (NaN until ``n`` non-NaN bars fill the window).

    A Kahan-compensated running sum, added and removed as the window slides
    (as pandas' ``rolling().mean()``): a plain cumulative sum drifts along a
    long series and flips crossovers of nearly equal averages.
    """
    size = len(x)
    out = np.full(size, np.nan)
    if n <= 0:
        raise ValueError("window must be positive")
    total = 0.0
    comp = 0.0
    nobs = 0
    neg = 0
    same = 0
    prev = np.nan
    for i in range(size):
        if i >= n:  # remove the bar that left the window, then add the new one (pandas' order)
            w = x[i - n]
            if w == w:
                nobs -= 1
                y = -w - comp
                t = total + y
                comp = t - total - y
                total = t
                if w < 0 or (w == 0 and np.signbit(w)):
                    neg -= 1
        v = x[i]
        if v == v:
            nobs += 1
            y = v - comp
            t = total + y
            comp = t - total - y
            total = t
            if v < 0 or (v == 0 and np.signbit(v)):
                neg += 1
            if v == prev:
                same += 1
            else:
                same = 1
            prev = v
        if nobs >= n:
            result = total / nobs
            if same >= nobs:
                result = prev
            elif (neg == 0 and result < 0) or (neg == nobs and result > 0):
                result = 0.0
            out[i] = result
    return out


@njit(cache=True)
def rolling_std_nb(x: np.ndarray, n: int, ddof: int = 1) -> np.ndarray:
    """Return the standard deviation of the last ``n`` bars (NaN until ``n`` non-NaN bars fill the window).

    Two passes over each window (its mean, then the squared deviations): O(bars x n),
    but free of the cancellation that running sums suffer on prices far from zero.
    """
    size = len(x)
    out = np.full(size, np.nan)
    if n <= 0:
        raise ValueError("window must be positive")
    if n <= ddof:
        return out
    valid = 0  # non-NaN bars in the current window
    for i in range(size):
        if x[i] == x[i]:
            valid += 1
        if i >= n and x[i - n] == x[i - n]:
            valid -= 1
        if valid < n:
            continue
        mean = 0.0
        flat = True
        for k in range(i - n + 1, i + 1):
            mean += x[k]
            flat = flat and x[k] == x[i]
        if flat:  # no spread, exactly (not the rounding residue of the mean)
            out[i] = 0.0
            continue
        mean /= n
        ss = 0.0
        for k in range(i - n + 1, i + 1):
            d = x[k] - mean
            ss += d * d
        out[i] = np.sqrt(ss / (n - ddof))
    return out


@njit(cache=True)
def ema_nb(x: np.ndarray, n: int) -> np.ndarray:
    """Return the exponential moving average with alpha ``2 / (n + 1)``, seeded by the mean of the first ``n``."""
    size = len(x)
    out = np.full(size, np.nan)
    if size < n:
        return out
    alpha = 2.0 / (n + 1)
    out[n - 1] = x[:n].mean()
    for i in range(n, size):
        out[i] = alpha * x[i] + (1 - alpha) * out[i - 1]
    return out


@njit(cache=True)
def rsi_nb(x: np.ndarray, n: int = 14) -> np.ndarray:
    """Return Wilder's relative strength index (100 when there were no losses)."""
    size = len(x)
    out = np.full(size, np.nan)
    if size <= n:
        return out
    avg_gain = 0.0
    avg_loss = 0.0
    for k in range(1, n + 1):
        d = x[k] - x[k - 1]
        avg_gain += max(d, 0.0)
        avg_loss += max(-d, 0.0)
    avg_gain /= n
    avg_loss /= n
    for i in range(n, size):
        if i > n:
            d = x[i] - x[i - 1]
            avg_gain = (avg_gain * (n - 1) + max(d, 0.0)) / n
            avg_loss = (avg_loss * (n - 1) + max(-d, 0.0)) / n
        out[i] = 100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    return out


@njit(cache=True)
def atr_nb(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    """Return Wilder's average true range."""
    size = len(close)
    out = np.full(size, np.nan)
    if size < n:
        return out
    total = 0.0
    avg = 0.0
    for i in range(size):
        tr = high[i] - low[i]
        if i > 0:
            tr = max(tr, abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        if i < n:
            total += tr
            if i == n - 1:
                avg = total / n
                out[i] = avg
        else:
            avg = (avg * (n - 1) + tr) / n
            out[i] = avg
    return out


@njit(cache=True)
def bollinger_nb(
    x: np.ndarray, n: int = 20, k: float = 2.0, ddof: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the (lower, middle, upper) Bollinger bands: mean -/+ ``k`` standard deviations (population by default)."""
    mid = rolling_mean_nb(x, n)
    sd = rolling_std_nb(x, n, ddof)
    return mid - k * sd, mid, mid + k * sd


@njit(cache=True)
def crossover_nb(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return +1 where ``a`` crosses above ``b``, -1 where below, else 0 (strict; NaN never crosses)."""
    size = len(a)
    out = np.zeros(size)
    for i in range(1, size):
        if a[i - 1] < b[i - 1] and a[i] > b[i]:
            out[i] = 1.0
        elif a[i - 1] > b[i - 1] and a[i] < b[i]:
            out[i] = -1.0
    return out
