"""Returns-based metrics of one return series, as empyrical computes them.

See :mod:`quantfleet.analytics.metrics` for the keys, their units and the
conventions; this module holds the arithmetic. Every helper takes the
returns with NaNs dropped (``x``) or the compounded wealth (``w``, one unit
at the start, one more point than there are returns) and fills ``notes``
with the reason for each value it leaves NaN.
"""

from __future__ import annotations

import math

import numpy as np

from quantfleet.analytics._common import (
    US_PER_DAY,
    Notes,
    Values,
    annualize_growth,
    clean,
    days_between,
    iso_utc,
    per_period_rate,
    usable_returns,
    zero_dispersion,
)
from quantfleet.analytics.drawdowns import drawdown_periods, worst_drawdowns

__all__ = ["RETURNS_KEYS", "bar_times", "returns_metrics", "wealth"]

RETURNS_KEYS = (
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe",
    "sortino",
    "calmar",
    "omega",
    "max_drawdown",
    "max_drawdown_peak",
    "max_drawdown_trough",
    "max_drawdown_recovery",
    "max_drawdown_days",
    "avg_drawdown",
    "avg_drawdown_days",
    "longest_drawdown_days",
    "skew",
    "kurtosis",
    "tail_ratio",
    "var_95",
    "cvar_95",
    "best_day",
    "worst_day",
    "best_month",
    "worst_month",
    "best_year",
    "worst_year",
    "positive_periods",
)

_FEWER_THAN_TWO = "fewer than two returns (non-NaN periods)"
_NO_RETURNS = "no returns: the series has fewer than two bars"
_NO_TIMES = "no timestamps given"
_OVERFLOW = "compounded growth is too large for a float64"

_Raw = dict[str, float | str | None]


def returns_metrics(
    returns: np.ndarray,
    ts: np.ndarray | None,
    *,
    periods_per_year: float,
    risk_free: float = 0.0,
) -> tuple[Values, Notes]:
    """Return the returns-based metrics of ``returns`` and a reason for each None.

    ``ts`` (int64 UTC microseconds) dates the bars: either one per equity bar
    (one more than there are returns, as ``returns_from_equity`` gives) or one
    per return, the end of its period. Without it the date-based metrics are
    None. ``risk_free`` is an annual rate.
    """
    r = usable_returns(returns)
    times = bar_times(ts, len(r))
    rf = per_period_rate(risk_free, periods_per_year)
    x = r[~np.isnan(r)]
    w = wealth(r)
    notes: Notes = {}
    out: _Raw = {}
    out.update(_growth(w, len(r), periods_per_year, notes))
    out.update(_dispersion(x, periods_per_year, rf, notes))
    out.update(_drawdowns(w, times, notes))
    out["calmar"] = _calmar(out["cagr"], out["max_drawdown"], notes)
    out["omega"] = _omega(x, rf, notes)
    out.update(_distribution(x, notes))
    out.update(_calendar(w, times, notes))
    out["positive_periods"] = float(np.mean(x > 0)) if len(x) else math.nan
    if not len(x):
        notes["positive_periods"] = "no returns (non-NaN periods)"
    return clean({k: out[k] for k in RETURNS_KEYS}, notes)


def wealth(returns: np.ndarray) -> np.ndarray:
    """Return the value of one unit compounded by ``returns``, starting with the 1.

    As empyrical's ``cum_returns``, a NaN return counts as 0. A return below
    -100% counts as -100%: the money is gone and stays gone (empyrical would
    let the product turn negative and flip sign on the next loss).
    """
    growth = np.clip(1.0 + np.nan_to_num(returns, nan=0.0), 0.0, None)
    # Callers check for inf (and the NaN of inf x 0): an overflow is a result, not an error.
    with np.errstate(over="ignore", invalid="ignore"):
        return np.concatenate([[1.0], np.cumprod(growth)])


def bar_times(ts: np.ndarray | None, n_returns: int) -> np.ndarray | None:
    """Return one timestamp per wealth point (``n_returns + 1``), or None without ``ts``."""
    if ts is None:
        return None
    t = np.asarray(ts, dtype=np.int64)
    if len(t) == n_returns + 1 or (n_returns == 0 and len(t) == 0):
        return t
    if len(t) == n_returns and n_returns:
        # Times of returns: the unit before the first return is dated with it.
        return np.concatenate([t[:1], t])
    raise ValueError(
        f"ts has {len(t)} timestamps for {n_returns} returns; pass one per equity bar ({n_returns + 1}) or per return"
    )


def _growth(w: np.ndarray, n: int, ppy: float, notes: Notes) -> _Raw:
    """Return total return and CAGR; years are periods / periods_per_year, as empyrical counts them."""
    if n == 0:
        notes["total_return"] = notes["cagr"] = _NO_RETURNS
        return {"total_return": math.nan, "cagr": math.nan}
    if not np.isfinite(w).all():
        notes["total_return"] = notes["cagr"] = _OVERFLOW
        return {"total_return": math.nan, "cagr": math.nan}
    cagr = annualize_growth(float(w[-1]), n, ppy)
    if math.isinf(cagr):
        notes["cagr"] = "too large to represent: a short run's growth annualized overflows"
    return {"total_return": float(w[-1] - 1.0), "cagr": cagr}


def _dispersion(x: np.ndarray, ppy: float, rf: float, notes: Notes) -> _Raw:
    """Return annual volatility, Sharpe and Sortino (sample deviation, ddof=1)."""
    keys = ("annual_volatility", "sharpe", "sortino")
    if len(x) < 2:
        notes.update(dict.fromkeys(keys, _FEWER_THAN_TWO))
        return dict.fromkeys(keys, math.nan)
    root = math.sqrt(ppy)
    sd = 0.0 if zero_dispersion(x) else float(np.std(x, ddof=1))
    adj = x - rf
    # sd can also underflow to 0 for returns that differ only below 1e-154.
    sharpe = float(np.mean(adj) / sd * root) if sd > 0 else math.nan
    if not sd > 0:
        notes["sharpe"] = "zero volatility: all returns are equal"
    downside = math.sqrt(float(np.mean(np.square(np.minimum(adj, 0.0))))) * root
    if downside > 0:
        sortino = float(np.mean(adj) * ppy / downside)
    else:
        sortino = math.nan
        notes["sortino"] = "zero downside risk: no return below the risk-free rate"
    return {"annual_volatility": sd * root, "sharpe": sharpe, "sortino": sortino}


def _calmar(cagr: float | str | None, mdd: float | str | None, notes: Notes) -> float:
    """Return CAGR over the depth of the maximum drawdown."""
    if not isinstance(cagr, float) or not isinstance(mdd, float) or not math.isfinite(cagr) or math.isnan(mdd):
        notes["calmar"] = "CAGR or maximum drawdown is undefined"
        return math.nan
    if not mdd < 0:
        notes["calmar"] = "no drawdown"
        return math.nan
    return cagr / abs(mdd)


def _omega(x: np.ndarray, rf: float, notes: Notes) -> float:
    """Return gains over losses relative to the per-period risk-free rate (empyrical's threshold 0)."""
    if len(x) < 2:
        notes["omega"] = _FEWER_THAN_TWO
        return math.nan
    excess = x - rf
    gains = float(excess[excess > 0].sum())
    losses = -float(excess[excess < 0].sum())
    if not losses > 0:
        notes["omega"] = "no return below the risk-free rate"
        return math.nan
    return gains / losses


def _drawdowns(w: np.ndarray, times: np.ndarray | None, notes: Notes) -> _Raw:
    """Return the maximum drawdown with its dates, and the average and longest episode."""
    keys = RETURNS_KEYS[7:15]  # max_drawdown .. longest_drawdown_days
    if len(w) < 2 or not np.isfinite(w).all():
        notes.update(dict.fromkeys(keys, _NO_RETURNS if len(w) < 2 else _OVERFLOW))
        return dict.fromkeys(keys, math.nan)
    episodes = drawdown_periods(w)
    last = len(w) - 1
    out: _Raw = {"max_drawdown": 0.0, "avg_drawdown": 0.0}
    out.update(dict.fromkeys(("max_drawdown_peak", "max_drawdown_trough", "max_drawdown_recovery"), None))
    if episodes:
        worst = worst_drawdowns(w, 1)[0]
        out["max_drawdown"] = worst.depth
        out["avg_drawdown"] = float(np.mean([e.depth for e in episodes]))
    if times is None:
        for key in keys[1:5] + keys[6:]:
            out[key], notes[key] = None, _NO_TIMES
        return out
    if not episodes:
        for key in keys[1:4]:
            notes[key] = "no drawdown"
        out.update(dict.fromkeys(("max_drawdown_days", "avg_drawdown_days", "longest_drawdown_days"), 0.0))
        return out
    out["max_drawdown_peak"] = iso_utc(times[worst.peak])
    out["max_drawdown_trough"] = iso_utc(times[worst.trough])
    if worst.recovery is None:
        notes["max_drawdown_recovery"] = "not recovered by the last bar"
    else:
        out["max_drawdown_recovery"] = iso_utc(times[worst.recovery])
    out["max_drawdown_days"] = days_between(times, worst.peak, last if worst.recovery is None else worst.recovery)
    days = [days_between(times, e.peak, last if e.recovery is None else e.recovery) for e in episodes]
    out["avg_drawdown_days"] = float(np.mean(days))
    out["longest_drawdown_days"] = float(max(days))
    return out


def _distribution(x: np.ndarray, notes: Notes) -> _Raw:
    """Return skew, excess kurtosis, tail ratio, VaR and CVaR (historical, 95%)."""
    keys = ("skew", "kurtosis", "tail_ratio", "var_95", "cvar_95")
    if not len(x):
        notes.update(dict.fromkeys(keys, "no returns (non-NaN periods)"))
        return dict.fromkeys(keys, math.nan)
    out: _Raw = {}
    out["skew"], out["kurtosis"] = _moments(x, notes)
    low, high = (float(v) for v in np.percentile(x, [5, 95]))
    if low == 0:
        out["tail_ratio"] = math.nan
        notes["tail_ratio"] = "the 5th percentile return is zero"
    else:
        out["tail_ratio"] = abs(high) / abs(low)
    out["var_95"] = low
    # empyrical's CVaR: the mean of the lowest int((n - 1) * 5%) + 1 returns.
    cut = int((len(x) - 1) * 0.05)
    out["cvar_95"] = float(np.mean(np.partition(x, cut)[: cut + 1]))
    return out


def _moments(x: np.ndarray, notes: Notes) -> tuple[float, float]:
    """Return biased skew and excess kurtosis as scipy.stats computes them (its defaults)."""
    mean = float(np.mean(x))
    dev = x - mean
    m2 = float(np.mean(dev**2))
    # scipy's test for a variance lost to rounding: below (eps * mean)^2 it returns NaN.
    if m2 <= (np.finfo(np.float64).eps * mean) ** 2:
        notes["skew"] = notes["kurtosis"] = "zero variance: all returns are equal"
        return math.nan, math.nan
    if not m2**2 > 0:  # a variance below ~1e-162 underflows when squared
        notes["skew"] = notes["kurtosis"] = "the returns vary too little to measure"
        return math.nan, math.nan
    m3 = float(np.mean(dev**3))
    m4 = float(np.mean(dev**4))
    return m3 / m2**1.5, m4 / m2**2 - 3.0


_PERIODS = (("day", "D"), ("month", "M"), ("year", "Y"))


def _calendar(w: np.ndarray, times: np.ndarray | None, notes: Notes) -> _Raw:
    """Return the best and worst compound return per calendar day, month and year (UTC)."""
    out: _Raw = {}
    for name, unit in _PERIODS:
        best, worst = f"best_{name}", f"worst_{name}"
        if times is None or len(w) < 2 or not np.isfinite(w).all():
            out[best] = out[worst] = math.nan
            notes[best] = notes[worst] = _NO_TIMES if times is None else _NO_RETURNS if len(w) < 2 else _OVERFLOW
            continue
        rets = _period_returns(w, times, unit)
        if np.isnan(rets).all():
            out[best] = out[worst] = math.nan
            notes[best] = notes[worst] = "everything was lost: no period starts with positive equity"
            continue
        out[best], out[worst] = float(np.nanmax(rets)), float(np.nanmin(rets))
    return out


def _period_returns(w: np.ndarray, times: np.ndarray, unit: str) -> np.ndarray:
    """Return the compound return of each calendar period holding at least one return.

    A return belongs to the period its bar ends in, as empyrical's
    ``aggregate_returns`` groups a return series by its own index.
    """
    ends = times[1:]
    if unit == "D":
        keys = ends // US_PER_DAY
    else:
        keys = ends.astype("datetime64[us]").astype(f"datetime64[{unit}]").astype(np.int64)
    last = np.flatnonzero(np.r_[keys[1:] != keys[:-1], True])  # last return of each period
    close = w[last + 1]
    opening = np.concatenate([w[:1], close[:-1]])
    out = np.full(len(close), np.nan)
    np.divide(close, opening, out=out, where=opening > 0)
    return np.where(opening > 0, out - 1.0, np.nan)
