"""Headline metrics in one compiled pass over an equity curve, for sweeps.

A sweep scores thousands of equity curves and keeps only a leaderboard row
each; :func:`quantfleet.analytics.metrics.performance` (calendar periods,
drawdown dates, distribution) costs tens of milliseconds on 100,000 bars,
this a fraction of one. The values are the same as ``performance``'s for the
same keys (same conventions: returns from equity, NaN after equity reached
zero, ddof=1, compounding with NaN as 0 and losses capped at -100%; the tests
check agreement to 1e-9), with no risk-free rate.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from quantfleet.analytics._common import MAX_RETURN

__all__ = ["HEADLINE_KEYS", "headline_metrics", "headline_nb"]

HEADLINE_KEYS = (
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "positive_periods",
    "final_equity",
)
"""What :func:`headline_metrics` returns, in this order; names as in metrics.json."""

_MAX_LOG = 709.0  # exp() above this overflows a float64


@njit(cache=True, nogil=True)
def headline_nb(equity: np.ndarray, periods_per_year: float, out: np.ndarray) -> None:
    """Write the :data:`HEADLINE_KEYS` of ``equity`` into ``out`` (NaN where undefined)."""
    n = len(equity)
    for k in range(len(out)):
        out[k] = np.nan
    if n == 0:
        return
    out[8] = equity[n - 1]
    n_ret = n - 1
    if n_ret == 0:
        return
    # Pass 1: the returns (kept for pass 2), their count and sum, positives, wealth and its drawdown.
    # The sign tests are arithmetic, not branches: returns' signs are random, and mispredicted
    # branches cost more than the rest of the loop.
    rets = np.empty(n_ret)
    count = 0
    total = 0.0
    positive = 0
    wealth = 1.0
    peak = 1.0
    mdd = 0.0
    floor = 1.0  # peak x (1 + mdd): only a wealth below it can deepen the drawdown, so divide only then
    for i in range(1, n):
        prev = equity[i - 1]
        r = equity[i] / prev - 1.0 if prev > 0 else np.nan
        if not abs(r) <= MAX_RETURN:
            rets[i - 1] = np.nan
            continue
        rets[i - 1] = r
        count += 1
        total += r
        positive += 1 if r > 0 else 0
        wealth *= max(1.0 + r, 0.0)
        if wealth > peak:
            peak = wealth
            floor = peak * (1.0 + mdd)
        elif wealth < floor and peak > 0:
            mdd = wealth / peak - 1.0 if wealth > 0 else -1.0
            floor = peak * (1.0 + mdd)
    if not math.isfinite(wealth):
        return
    out[0] = wealth - 1.0
    if wealth <= 0:
        out[1] = -1.0
    else:
        years = n_ret / periods_per_year
        # The same operations as empyrical.annual_return, inf instead of an overflow.
        out[1] = wealth ** (1.0 / years) - 1.0 if math.log(wealth) / years <= _MAX_LOG else np.inf
    out[6] = mdd
    if count:
        out[7] = positive / count
    if out[1] == out[1] and math.isfinite(out[1]) and mdd < 0:
        out[5] = out[1] / abs(mdd)
    if count < 2:
        return
    # Pass 2: deviations around the mean (two passes, as numpy's std, for accuracy).
    mean = total / count
    ss = 0.0
    down = 0.0
    first = np.nan
    same = True
    for k in range(n_ret):
        r = rets[k]
        if r != r:
            continue
        if r != first:
            if first != first:
                first = r
            else:
                same = False
        ss += (r - mean) * (r - mean)
        low = min(r, 0.0)
        down += low * low
    root = math.sqrt(periods_per_year)
    sd = 0.0 if same else math.sqrt(ss / (count - 1))
    out[2] = sd * root
    if sd > 0:
        out[3] = mean / sd * root
    downside = math.sqrt(down / count) * root
    if downside > 0:
        out[4] = mean * periods_per_year / downside


def headline_metrics(equity: np.ndarray, periods_per_year: float) -> dict[str, float | None]:
    """Return the headline metrics of ``equity`` (None where undefined), as ``performance`` gives them."""
    out = np.empty(len(HEADLINE_KEYS))
    headline_nb(np.ascontiguousarray(equity, dtype=np.float64), float(periods_per_year), out)
    return {k: (float(v) if math.isfinite(v) else None) for k, v in zip(HEADLINE_KEYS, out, strict=True)}
