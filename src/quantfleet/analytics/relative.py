"""Benchmark-relative metrics: alpha, beta, correlation, information ratio, tracking error, capture.

See :mod:`quantfleet.analytics.metrics` for the keys and conventions. Only
periods where both the strategy's and the benchmark's return are known
count, as empyrical pairs them.
"""

from __future__ import annotations

import math

import numpy as np

from quantfleet.analytics._common import (
    Notes,
    Values,
    annualize_growth,
    clean,
    per_period_rate,
    usable_returns,
    zero_dispersion,
)

__all__ = ["RELATIVE_KEYS", "relative_metrics"]

RELATIVE_KEYS = (
    "alpha",
    "beta",
    "correlation",
    "information_ratio",
    "tracking_error",
    "up_capture",
    "down_capture",
)

_FEWER_THAN_TWO = "fewer than two periods with both a strategy and a benchmark return"

# empyrical treats a benchmark variance below this as zero (beta undefined).
_MIN_VARIANCE = 1.0e-30


def relative_metrics(
    returns: np.ndarray | None,
    benchmark_returns: np.ndarray | None,
    *,
    periods_per_year: float,
    risk_free: float = 0.0,
) -> tuple[Values, Notes]:
    """Return the benchmark-relative metrics of ``returns`` and a reason for each None.

    With no benchmark every value is None. ``risk_free`` is an annual rate.
    """
    if returns is None or benchmark_returns is None:
        return clean(dict.fromkeys(RELATIVE_KEYS, None), dict.fromkeys(RELATIVE_KEYS, "no benchmark given"))
    r = usable_returns(returns)
    b = usable_returns(benchmark_returns)
    if r.shape != b.shape:
        raise ValueError(f"returns ({len(r)}) and benchmark returns ({len(b)}) must have the same length")
    paired = ~(np.isnan(r) | np.isnan(b))
    r, b = r[paired], b[paired]
    notes: Notes = {}
    if len(r) < 2:
        return clean(dict.fromkeys(RELATIVE_KEYS, math.nan), dict.fromkeys(RELATIVE_KEYS, _FEWER_THAN_TWO))
    rf = per_period_rate(risk_free, periods_per_year)
    out: dict[str, float | str | None] = {}
    out["alpha"], out["beta"] = _alpha_beta(r, b, rf, periods_per_year, notes)
    out["correlation"] = _correlation(r, b, notes)
    out.update(_active(r - b, periods_per_year, notes))
    out["up_capture"] = _capture(r, b, b > 0, periods_per_year, "up_capture", notes)
    out["down_capture"] = _capture(r, b, b < 0, periods_per_year, "down_capture", notes)
    return clean(out, notes)


def _alpha_beta(r: np.ndarray, b: np.ndarray, rf: float, ppy: float, notes: Notes) -> tuple[float, float]:
    """Return annualized alpha and beta as empyrical's ``alpha_beta_aligned``.

    Beta is Cov(r, b) / Var(b) (population moments; the ddof cancels). Alpha
    is the mean per-period excess return not explained by beta, compounded
    over a year: (1 + mean(r - rf - beta (b - rf))) ** ppy - 1.
    """
    centred = b - np.mean(b)
    variance = float(np.mean(centred**2))
    if variance < _MIN_VARIANCE:
        notes["beta"] = notes["alpha"] = "the benchmark's returns do not vary"
        return math.nan, math.nan
    beta = float(np.mean(centred * r)) / variance
    mean = float(np.mean((r - rf) - beta * (b - rf)))
    alpha = annualize_growth(1.0 + mean, 1.0, ppy)
    if math.isinf(alpha):
        notes["alpha"] = "too large to represent: annualizing the mean excess return overflows"
    return alpha, beta


def _correlation(r: np.ndarray, b: np.ndarray, notes: Notes) -> float:
    """Return the Pearson correlation of the paired returns."""
    if zero_dispersion(r) or zero_dispersion(b):
        notes["correlation"] = "the strategy's or the benchmark's returns do not vary"
        return math.nan
    with np.errstate(all="ignore"):  # deviations that underflow to 0 leave NaN, explained below
        rho = float(np.corrcoef(r, b)[0, 1])
    if not math.isfinite(rho):
        notes["correlation"] = "the returns vary too little to measure"
    return rho


def _active(active: np.ndarray, ppy: float, notes: Notes) -> dict[str, float]:
    """Return the annualized tracking error and information ratio of the active returns.

    The information ratio is empyrical's ``excess_sharpe`` (mean over sample
    deviation of the active return) times sqrt(periods_per_year), so it is
    annualized like Sharpe.
    """
    sd = 0.0 if zero_dispersion(active) else float(np.std(active, ddof=1))
    if not sd > 0:  # constant, or varying only below 1e-154 (the deviation underflows)
        notes["information_ratio"] = "zero tracking error: the active return is constant"
        return {"information_ratio": math.nan, "tracking_error": 0.0}
    root = math.sqrt(ppy)
    return {"information_ratio": float(np.mean(active)) / sd * root, "tracking_error": sd * root}


def _capture(r: np.ndarray, b: np.ndarray, when: np.ndarray, ppy: float, key: str, notes: Notes) -> float:
    """Return the strategy's CAGR over the benchmark's, both over the periods ``when`` selects.

    As empyrical's ``up_capture`` / ``down_capture``: each CAGR counts
    years as the number of selected periods over periods_per_year.
    """
    n = int(when.sum())
    if n == 0:
        notes[key] = f"the benchmark never {'rose' if key == 'up_capture' else 'fell'}"
        return math.nan
    with np.errstate(over="ignore"):  # an overflow is checked below
        mine = annualize_growth(float(np.prod(1.0 + r[when])), n, ppy)
        theirs = annualize_growth(float(np.prod(1.0 + b[when])), n, ppy)
    if not (math.isfinite(mine) and math.isfinite(theirs)) or theirs == 0:
        notes[key] = "an annualized return overflows or the benchmark's is zero"
        return math.nan
    return mine / theirs
