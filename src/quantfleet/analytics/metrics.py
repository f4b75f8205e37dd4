"""Performance metrics of a run: returns-based, benchmark-relative and trade-based.

The public entry is :func:`performance`, which returns a :class:`Performance`
with flat, stable keys; :func:`returns_metrics` computes the returns-based
block alone (the benchmark column of a report). Everything is a pure function
over NumPy arrays. The older headline functions (``summary``, ``cagr``, ...)
stay for existing callers.

Conventions (empyrical-reloaded's, unless a difference is said)
------------------------------------------------------------------
- Returns are simple returns between consecutive equity values
  (:func:`returns_from_equity`); the return after a bar whose equity is at or
  below zero is NaN: nothing was left to earn a return on.
- NaN returns are skipped by means and deviations (empyrical's ``nanmean`` /
  ``nanstd``) and count as 0 when compounding (its ``cum_returns``). A period
  counts towards "fewer than two returns" only if its return is known
  (empyrical counts NaNs too; both then give NaN).
- Annualization: ``periods_per_year`` bars a year, see
  :func:`periods_per_year`: 252 for daily bars; intraday bars scale by the
  exchange session, 252 x session minutes / bar minutes (98,280 one-minute
  bars on a 390-minute session). Volatility scales by sqrt(periods_per_year),
  mean returns by periods_per_year. Years of a run are its number of returns
  / periods_per_year, as ``empyrical.annual_return`` counts them, not calendar
  time.
- Deviations are sample deviations (ddof=1). When every return is the same,
  volatility and tracking error are exactly 0 (empyrical's zero-dispersion
  rule) and the ratios that divide by them are None.
- ``risk_free`` is an annual rate, turned into a per-period rate
  (1 + rf) ** (1 / periods_per_year) - 1, the conversion ``empyrical.omega_ratio``
  applies to its ``required_return``; that per-period rate is what empyrical's
  ``sharpe_ratio(risk_free=)``, ``sortino_ratio(required_return=)``,
  ``omega_ratio(risk_free=)`` and ``alpha(risk_free=)`` receive.

Keys of ``Performance.values`` (None where undefined; ``notes`` says why)
---------------------------------------------------------------------------
Fractions are plain numbers (0.05 is 5%); dates are ISO-8601 strings in UTC.

total_return
    Compound growth over the run (fraction), from the returns: equity[-1] /
    equity[0] - 1 while equity stays positive, -1 once it reached zero.
cagr
    (1 + total_return) ** (periods_per_year / returns) - 1 (``annual_return``).
annual_volatility
    Sample deviation of returns x sqrt(periods_per_year).
sharpe
    mean(r - rf) / std(r - rf) x sqrt(periods_per_year).
sortino
    mean(r - rf) x periods_per_year / downside risk, the downside risk being
    sqrt(mean(min(r - rf, 0) ** 2)) x sqrt(periods_per_year), every return
    counting in the mean (``downside_risk``).
calmar
    cagr / |max_drawdown|.
omega
    Sum of returns above rf / sum of the shortfalls below it (threshold 0 over rf).
max_drawdown
    Deepest fall from a running peak of compounded equity (negative fraction, >= -1).
max_drawdown_peak, max_drawdown_trough, max_drawdown_recovery
    Dates of that episode's peak, trough and recovery (first bar back at the
    peak; None while still under water).
max_drawdown_days
    Calendar days from its peak to its recovery, or to the last bar.
avg_drawdown, avg_drawdown_days, longest_drawdown_days
    Mean depth (negative fraction), mean and longest calendar duration of all
    episodes (0 when there is none). Episodes come from
    :mod:`quantfleet.analytics.drawdowns`.
skew, kurtosis
    Sample skewness and *excess* kurtosis as ``scipy.stats.skew`` /
    ``scipy.stats.kurtosis`` compute them by default (biased moment
    estimators, Fisher's definition: 0 for a normal distribution), NaNs
    omitted. pandas' ``Series.skew`` / ``kurt`` apply a small-sample
    correction instead and differ.
tail_ratio
    |95th percentile| / |5th percentile| of returns (``np.percentile``, linear).
var_95, cvar_95
    Historical value at risk: the 5th percentile return; conditional value at
    risk: the mean of the lowest int((n - 1) x 0.05) + 1 returns. Both are
    returns (negative for a loss), as empyrical reports them; var_95 >= cvar_95.
best_day, worst_day, best_month, worst_month, best_year, worst_year
    Best and worst compound return of a calendar day, month, year in UTC. A
    return belongs to the period its bar ends in (``aggregate_returns``).
positive_periods
    Fraction of known returns above zero.
final_equity
    Equity at the last bar (currency).

Benchmark-relative (None, with a note, without a benchmark); pairs of periods
where either return is unknown are dropped:

alpha
    (1 + mean(r - rf - beta (b - rf))) ** periods_per_year - 1 (``alpha``).
beta
    Cov(r, b) / Var(b) (``beta``; None when Var(b) < 1e-30).
correlation
    Pearson correlation of r and b.
information_ratio
    mean(r - b) / std(r - b) x sqrt(periods_per_year): empyrical's
    ``excess_sharpe``, annualized like Sharpe.
tracking_error
    std(r - b) x sqrt(periods_per_year).
up_capture, down_capture
    CAGR of the strategy over CAGR of the benchmark, both over the periods
    where the benchmark rose (fell) (``up_capture`` / ``down_capture``).

Trade-based (closed round trips only):

trades
    Number of closed round trips (None without a trades table).
win_rate
    Fraction of closed trades with P&L > 0.
avg_win, avg_loss
    Mean P&L (currency, net of commission, as the engine reports it) of the
    winning and of the losing trades (avg_loss is negative).
profit_factor
    Gross profit / gross loss (None without a losing trade).
expectancy
    Mean P&L per closed trade (currency).
avg_holding_days
    Mean calendar days from entry to exit.
exposure
    Fraction of bars with gross exposure above zero.
turnover
    traded_value / mean equity / years (years = returns / periods_per_year):
    buys and sells both count, so buying and selling the whole book once a
    year is 2.0.
commission, slippage
    Totals paid over the run (currency), as given.

Where quantfleet deliberately differs from empyrical
------------------------------------------------------
- Non-finite results are None with a reason, never inf: a constant return
  series has no Sharpe (empyrical: +/-inf or NaN); no loss below the
  threshold gives no Sortino or Omega; a zero 5th percentile gives no tail
  ratio; an annualized growth too large for a float is None, not an
  overflow.
- ``value_at_risk`` in empyrical returns NaN when any return is NaN; here
  NaNs are dropped first, as its ``conditional_value_at_risk`` already does.
- A return below -100% (equity turned negative) compounds as -100%: wealth
  stays at zero, the drawdown is -1 and CAGR -1, where empyrical's product
  turns negative (a drawdown beyond -100%, a NaN CAGR).
- The information ratio is annualized (see above); empyrical's
  ``excess_sharpe`` is per period.
- A return that is infinite or beyond +/-1e50 (equity within rounding of
  zero before it) is unknown (NaN), like the return after equity reached
  zero, so that its powers stay finite; compounded growth beyond 1e308 makes
  the growth, drawdown and calendar metrics None rather than inf.

Edge cases return a defined value or None with a note, never an exception
or a warning: fewer than two returns, zero volatility, no trades, an equity
curve that touches zero. Bad arguments (arrays of different lengths, a
non-positive bar frequency) raise ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from quantfleet.analytics._common import MINUTES_PER_DAY, Notes, Values, clean
from quantfleet.analytics.relative import RELATIVE_KEYS, relative_metrics
from quantfleet.analytics.returns import RETURNS_KEYS, returns_metrics
from quantfleet.analytics.trades import TRADE_KEYS, trade_metrics

__all__ = [
    "PERFORMANCE_KEYS",
    "TRADING_DAYS",
    "Performance",
    "annual_volatility",
    "cagr",
    "max_drawdown",
    "performance",
    "periods_per_year",
    "returns_from_equity",
    "returns_metrics",
    "sharpe_ratio",
    "summary",
    "total_return",
]

TRADING_DAYS = 252
"""Trading sessions per year (empyrical's daily annualization factor)."""


PERFORMANCE_KEYS = (*RETURNS_KEYS, "final_equity", *RELATIVE_KEYS, *TRADE_KEYS)
"""Every key of ``Performance.values``, in order."""


def periods_per_year(
    frequency_minutes: float | None, session_minutes: float = 390.0, *, sessions_per_year: float = TRADING_DAYS
) -> float:
    """Return bars per year: sessions per year for daily (or unknown) bars, else that x bars per session.

    ``session_minutes`` is the exchange calendar's session length (390 for a
    US equity day); one-minute bars on it give 252 x 390 = 98,280 a year.
    ``sessions_per_year`` is 252 for an exchange, 365 for a market that never closes.
    """
    if frequency_minutes is None or frequency_minutes >= MINUTES_PER_DAY:
        return float(sessions_per_year)
    if not frequency_minutes > 0 or not session_minutes > 0:
        raise ValueError(
            f"bar frequency ({frequency_minutes!r} min) and session ({session_minutes!r} min) must be positive"
        )
    return float(sessions_per_year * session_minutes / frequency_minutes)


@dataclass(frozen=True)
class Performance:
    """A run's metrics (keys in :data:`PERFORMANCE_KEYS`) and why any of them is None."""

    values: Values
    notes: Notes

    def to_json(self) -> dict[str, Any]:
        """Return the values and a ``notes`` entry as a JSON-safe dict."""
        return {**self.values, "notes": dict(self.notes)}


def performance(
    equity: np.ndarray,
    ts: np.ndarray,
    *,
    periods_per_year: float,
    risk_free: float = 0.0,
    benchmark: np.ndarray | None = None,
    trades: pa.Table | None = None,
    gross_exposure: np.ndarray | None = None,
    traded_value: float | None = None,
    commission: float = 0.0,
    slippage: float = 0.0,
) -> Performance:
    """Return every metric of a run from its equity per bar, timestamps and trades.

    ``ts`` is int64 UTC microseconds per bar; ``benchmark`` an equity or price
    per bar (e.g. a buy-and-hold close); ``trades`` the engine's round trips;
    ``gross_exposure`` the currency value of |positions| per bar;
    ``traded_value`` the sum of |fill quantity x price| over the run.
    """
    e = np.asarray(equity, dtype=np.float64)
    t = np.asarray(ts, dtype=np.int64)
    _check_length("ts", t, e)
    r = returns_from_equity(e)
    values, notes = returns_metrics(r, t, periods_per_year=periods_per_year, risk_free=risk_free)
    final, final_notes = clean(
        {"final_equity": float(e[-1]) if len(e) else math.nan}, {"final_equity": "no bars"} if not len(e) else {}
    )
    bench_r = None
    if benchmark is not None:
        _check_length("benchmark", np.asarray(benchmark), e)
        bench_r = returns_from_equity(benchmark)
    relative, relative_notes = relative_metrics(r, bench_r, periods_per_year=periods_per_year, risk_free=risk_free)
    traded, trade_notes = trade_metrics(
        trades,
        equity=e,
        periods_per_year=periods_per_year,
        gross_exposure=gross_exposure,
        traded_value=traded_value,
        commission=commission,
        slippage=slippage,
    )
    all_notes = {**notes, **final_notes, **relative_notes, **trade_notes}
    return Performance({**values, **final, **relative, **traded}, all_notes)


def _check_length(name: str, x: np.ndarray, equity: np.ndarray) -> None:
    """Raise ValueError unless ``x`` has one value per equity bar."""
    if len(x) != len(equity):
        raise ValueError(f"{name} has {len(x)} values for {len(equity)} equity bars; pass one per bar")


def returns_from_equity(equity: np.ndarray) -> np.ndarray:
    """Return simple period returns; a period after equity hit zero or below is NaN."""
    e = np.asarray(equity, dtype=np.float64)
    if len(e) < 2:
        return np.empty(0)
    prev = e[:-1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
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
