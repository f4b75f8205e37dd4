"""Performance metrics: pure functions over equity and return arrays.

Conventions follow empyrical (the library behind pyfolio): simple returns
between consecutive equity values; annualization by periods per year (252
trading days; intraday bars scale by bars per session); volatility and
Sharpe use the sample standard deviation (ddof=1); the risk-free rate is
zero unless given (per period). Where a value is undefined (fewer than two
periods, zero volatility) it is NaN, never an exception or a warning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

__all__ = [
    "TRADING_DAYS",
    "annual_volatility",
    "cagr",
    "max_drawdown",
    "returns_from_equity",
    "sharpe_ratio",
    "summary",
    "total_return",
]

TRADING_DAYS = 252


def returns_from_equity(equity: np.ndarray) -> np.ndarray:
    """Return simple period returns; a period after equity hit zero or below is NaN."""
    e = np.asarray(equity, dtype=np.float64)
    if len(e) < 2:
        return np.empty(0)
    prev = e[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(prev > 0, e[1:] / prev - 1.0, np.nan)
    return out


def total_return(equity: np.ndarray) -> float:
    """Return the growth of equity over the whole run."""
    e = np.asarray(equity, dtype=np.float64)
    if len(e) == 0 or not e[0] > 0:
        return math.nan
    return float(e[-1] / e[0] - 1.0)


def cagr(equity: np.ndarray, periods_per_year: float) -> float:
    """Return the compound annual growth rate, years being (periods) / periods_per_year."""
    e = np.asarray(equity, dtype=np.float64)
    if len(e) < 2 or not e[0] > 0:
        return math.nan
    years = (len(e) - 1) / periods_per_year
    growth = e[-1] / e[0]
    if growth <= 0:
        return -1.0
    return float(growth ** (1.0 / years) - 1.0)


def annual_volatility(returns: np.ndarray, periods_per_year: float) -> float:
    """Return the annualized sample standard deviation of returns (NaN with fewer than two)."""
    r = np.asarray(returns, dtype=np.float64)
    r = r[~np.isnan(r)]
    if len(r) < 2:
        return math.nan
    return float(r.std(ddof=1) * math.sqrt(periods_per_year))


def sharpe_ratio(returns: np.ndarray, periods_per_year: float, risk_free: float = 0.0) -> float:
    """Return the annualized Sharpe ratio of per-period returns (NaN when volatility is zero)."""
    r = np.asarray(returns, dtype=np.float64) - risk_free
    r = r[~np.isnan(r)]
    if len(r) < 2:
        return math.nan
    sd = r.std(ddof=1)
    if not sd > 0:
        return math.nan
    return float(r.mean() / sd * math.sqrt(periods_per_year))


def max_drawdown(equity: np.ndarray) -> float:
    """Return the deepest fall from a running peak, as a negative fraction (0 if none)."""
    e = np.asarray(equity, dtype=np.float64)
    if len(e) == 0:
        return math.nan
    peak = np.maximum.accumulate(e)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, e / peak - 1.0, np.nan)
    return float(np.nanmin(dd)) if np.isfinite(dd).any() else math.nan


def summary(
    equity: np.ndarray,
    *,
    periods_per_year: float,
    trades: int,
    exposure: np.ndarray | None = None,
) -> Mapping[str, float]:
    """Return the headline metrics of a run, with stable keys."""
    r = returns_from_equity(equity)
    invested = float(np.mean(np.asarray(exposure) > 0)) if exposure is not None and len(exposure) else math.nan
    return {
        "total_return": total_return(equity),
        "cagr": cagr(equity, periods_per_year),
        "annual_volatility": annual_volatility(r, periods_per_year),
        "sharpe": sharpe_ratio(r, periods_per_year),
        "max_drawdown": max_drawdown(equity),
        "trades": float(trades),
        "exposure": invested,
        "final_equity": float(equity[-1]) if len(equity) else math.nan,
    }
