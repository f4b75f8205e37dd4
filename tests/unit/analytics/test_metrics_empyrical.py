"""Every metric empyrical also computes, against empyrical's own output, to 1e-9 relative.

Where empyrical's result is not finite (inf from dividing by a zero
deviation, NaN from too few periods), quantfleet reports None with a note:
a JSON report cannot carry inf, and a reader needs the reason. Tests that
compare against something other than plain empyrical say why.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
import scipy.stats

from quantfleet.analytics.metrics import performance, returns_from_equity, returns_metrics
from quantfleet.analytics.relative import relative_metrics

REL = 1e-9
ABS = 1e-14  # empyrical leaves ~1e-18 of rounding residue where the exact answer is 0
DAY_US = 86_400_000_000
MINUTE_US = 60_000_000


@dataclass(frozen=True)
class Case:
    """A return series (one per bar after the first), its bar times, annualization and benchmark."""

    returns: np.ndarray
    ts: np.ndarray  # one per equity bar: len(returns) + 1
    ppy: float
    bench: np.ndarray | None = None
    risk_free: float = 0.0


def _daily_ts(n: int, start: str = "2019-12-30") -> np.ndarray:
    return np.datetime64(start, "us").astype(np.int64) + np.arange(n) * DAY_US


def _case_normal() -> Case:
    r = np.random.default_rng(7).normal(0.0004, 0.012, 800)
    return Case(r, _daily_ts(801), 252.0)


def _case_nans() -> Case:
    r = np.random.default_rng(8).normal(0.0002, 0.01, 400)
    r[[0, 17, 18, 200, 399]] = np.nan
    return Case(r, _daily_ts(401), 252.0)


def _case_all_zero() -> Case:
    return Case(np.zeros(60), _daily_ts(61), 252.0)


def _case_all_negative() -> Case:
    r = -np.random.default_rng(9).uniform(0.0005, 0.03, 300)
    return Case(r, _daily_ts(301), 252.0)


def _case_single() -> Case:
    return Case(np.array([-0.013]), _daily_ts(2), 252.0)


def _case_single_up() -> Case:
    return Case(np.array([0.021]), _daily_ts(2), 252.0)


def _case_trend() -> Case:
    r = 0.003 + np.random.default_rng(10).normal(0, 0.0005, 500)  # every return positive
    return Case(r, _daily_ts(501), 252.0)


def _case_constant() -> Case:
    return Case(np.full(30, 0.001), _daily_ts(31), 252.0)


def _case_risk_free() -> Case:
    r = np.random.default_rng(11).normal(0.0005, 0.01, 500)
    return Case(r, _daily_ts(501), 252.0, risk_free=0.04)


def _case_intraday() -> Case:
    # Minute bars, 390 a session, three sessions a week apart across a month end.
    days = np.array(["2024-01-30", "2024-01-31", "2024-02-01"], dtype="datetime64[us]").astype(np.int64)
    opens = days + (14 * 60 + 30) * MINUTE_US
    ts = (opens[:, None] + np.arange(390) * MINUTE_US).ravel()
    r = np.random.default_rng(12).normal(0.0, 0.0008, len(ts) - 1)
    return Case(r, ts, 252.0 * 390)


def _with_bench(case: Case, seed: int, nan_at: tuple[int, ...] = ()) -> Case:
    rng = np.random.default_rng(seed)
    b = 0.6 * np.nan_to_num(case.returns) + rng.normal(0.0002, 0.008, len(case.returns))
    b[list(nan_at)] = np.nan
    return Case(case.returns, case.ts, case.ppy, b, case.risk_free)


CASES: dict[str, Callable[[], Case]] = {
    "normal": _case_normal,
    "nans": _case_nans,
    "all_zero": _case_all_zero,
    "all_negative": _case_all_negative,
    "single_down": _case_single,
    "single_up": _case_single_up,
    "trend": _case_trend,
    "constant": _case_constant,
    "risk_free": _case_risk_free,
    "intraday": _case_intraday,
}

BENCH_CASES: dict[str, Callable[[], Case]] = {
    "normal": lambda: _with_bench(_case_normal(), 1),
    "nans_both": lambda: _with_bench(_case_nans(), 2, nan_at=(3, 18, 250)),
    "all_negative": lambda: _with_bench(_case_all_negative(), 3),
    "risk_free": lambda: _with_bench(_case_risk_free(), 4),
    "trend": lambda: _with_bench(_case_trend(), 5),
    "intraday": lambda: _with_bench(_case_intraday(), 6),
    "identical": lambda: Case(_case_normal().returns, _case_normal().ts, 252.0, _case_normal().returns),
}


def _rf(case: Case) -> float:
    """Return the per-period risk-free rate, converted as empyrical's omega_ratio converts required_return."""
    return float((1.0 + case.risk_free) ** (1.0 / case.ppy) - 1.0)


def _quiet(fn: Callable[[], object]) -> float:
    """Call empyrical with its own warnings silenced (degrees of freedom, 0/0): the test compares results."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return float(fn())  # type: ignore[arg-type]


def _expected(case: Case) -> dict[str, float]:
    """Return empyrical's (or scipy's, where empyrical delegates to it) value per quantfleet key."""
    r, ppy, rf = case.returns, case.ppy, _rf(case)
    x = r[~np.isnan(r)]
    return {
        "total_return": _quiet(lambda: ep.cum_returns_final(r)),
        "cagr": _quiet(lambda: ep.annual_return(r, annualization=ppy)),
        "annual_volatility": _quiet(lambda: ep.annual_volatility(r, annualization=ppy)),
        "sharpe": _quiet(lambda: ep.sharpe_ratio(r, risk_free=rf, annualization=ppy)),
        "sortino": _quiet(lambda: ep.sortino_ratio(r, required_return=rf, annualization=ppy)),
        "calmar": _quiet(lambda: ep.calmar_ratio(r, annualization=ppy)),
        # The annual rate through empyrical's own conversion checks ours.
        "omega": _quiet(lambda: ep.omega_ratio(r, required_return=case.risk_free, annualization=ppy)),
        "max_drawdown": _quiet(lambda: ep.max_drawdown(r)),
        # empyrical lists scipy.stats.skew / kurtosis (defaults) among its stats; it has no NaN policy of its own.
        "skew": _quiet(lambda: scipy.stats.skew(x)) if len(x) else math.nan,
        "kurtosis": _quiet(lambda: scipy.stats.kurtosis(x)) if len(x) else math.nan,
        "tail_ratio": _quiet(lambda: ep.tail_ratio(r)),
        # Differs on purpose: empyrical's value_at_risk is NaN if any return is; quantfleet drops NaNs first.
        "var_95": _quiet(lambda: ep.value_at_risk(x)),
        "cvar_95": _quiet(lambda: ep.conditional_value_at_risk(r)),
    }


def _assert_matches(key: str, ours: object, theirs: float) -> None:
    if math.isfinite(theirs):
        assert isinstance(ours, float), f"{key}: quantfleet gave {ours!r}, empyrical {theirs!r}"
        assert ours == pytest.approx(theirs, rel=REL, abs=ABS), key
    else:
        # Not finite in empyrical (inf or NaN): None in quantfleet, by design.
        assert ours is None, f"{key}: empyrical gave {theirs!r}, quantfleet {ours!r}"


@pytest.mark.parametrize("name", CASES)
def test_returns_metrics_match_empyrical(name: str) -> None:
    case = CASES[name]()
    values, notes = returns_metrics(case.returns, case.ts, periods_per_year=case.ppy, risk_free=case.risk_free)
    for key, theirs in _expected(case).items():
        _assert_matches(key, values[key], theirs)
        if values[key] is None:
            assert notes[key], key


@pytest.mark.parametrize("name", CASES)
def test_calendar_periods_match_empyrical_aggregate_returns(name: str) -> None:
    case = CASES[name]()
    values, _ = returns_metrics(case.returns, case.ts, periods_per_year=case.ppy)
    index = pd.DatetimeIndex(case.ts[1:].astype("datetime64[us]"), tz="UTC")
    series = pd.Series(case.returns, index=index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monthly = ep.aggregate_returns(series, "monthly")
        yearly = ep.aggregate_returns(series, "yearly")
    assert values["best_month"] == pytest.approx(monthly.max(), rel=REL, abs=ABS)
    assert values["worst_month"] == pytest.approx(monthly.min(), rel=REL, abs=ABS)
    assert values["best_year"] == pytest.approx(yearly.max(), rel=REL, abs=ABS)
    assert values["worst_year"] == pytest.approx(yearly.min(), rel=REL, abs=ABS)
    # empyrical aggregates no finer than a week; days compound the same way (NaN counts as 0).
    daily = series.fillna(0.0).groupby(index.floor("D")).apply(lambda s: float(np.prod(1.0 + s) - 1.0))
    assert values["best_day"] == pytest.approx(daily.max(), rel=REL, abs=ABS)
    assert values["worst_day"] == pytest.approx(daily.min(), rel=REL, abs=ABS)


@pytest.mark.parametrize("name", BENCH_CASES)
def test_relative_metrics_match_empyrical(name: str) -> None:
    case = BENCH_CASES[name]()
    assert case.bench is not None
    r, b, ppy, rf = case.returns, case.bench, case.ppy, _rf(case)
    values, notes = relative_metrics(r, b, periods_per_year=ppy, risk_free=case.risk_free)
    paired = ~(np.isnan(r) | np.isnan(b))
    expected = {
        "alpha": _quiet(lambda: ep.alpha(r, b, risk_free=rf, annualization=ppy)),
        "beta": _quiet(lambda: ep.beta(r, b, risk_free=rf)),
        # Differs on purpose: annualized like Sharpe; empyrical's excess_sharpe is per period.
        "information_ratio": _quiet(lambda: ep.excess_sharpe(r, b)) * math.sqrt(ppy),
        # empyrical has no tracking error or correlation; pandas computes them over the paired periods.
        "tracking_error": float(pd.Series(r[paired] - b[paired]).std(ddof=1)) * math.sqrt(ppy),
        "correlation": float(pd.Series(r).corr(pd.Series(b))),
    }
    if ppy == 252.0:  # empyrical's capture takes only a period name, not an annualization factor
        expected["up_capture"] = _quiet(lambda: ep.up_capture(r, b))
        expected["down_capture"] = _quiet(lambda: ep.down_capture(r, b))
    if name == "identical":
        expected["tracking_error"] = 0.0  # exact, where pandas leaves nothing to compare but 0 too
    for key, theirs in expected.items():
        _assert_matches(key, values[key], theirs)
        if values[key] is None:
            assert notes[key], key


def test_capture_intraday_annualizes_by_periods_per_year() -> None:
    # empyrical.capture cannot take an intraday factor: compute its formula with ours.
    case = BENCH_CASES["intraday"]()
    assert case.bench is not None
    r, b = case.returns, case.bench
    values, _ = relative_metrics(r, b, periods_per_year=case.ppy)
    up = b > 0
    expected = ep.annual_return(r[up], annualization=case.ppy) / ep.annual_return(b[up], annualization=case.ppy)
    assert values["up_capture"] == pytest.approx(expected, rel=REL)


@pytest.mark.parametrize("name", ["normal", "all_negative", "trend", "risk_free"])
def test_performance_on_equity_matches_empyrical_on_its_returns(name: str) -> None:
    case = CASES[name]()
    equity = 1000.0 * np.concatenate([[1.0], np.cumprod(1.0 + case.returns)])
    bench = 500.0 * np.concatenate([[1.0], np.cumprod(1.0 + np.roll(case.returns, 3))])
    perf = performance(equity, case.ts, periods_per_year=case.ppy, risk_free=case.risk_free, benchmark=bench)
    r = returns_from_equity(equity)
    for key, theirs in _expected(Case(r, case.ts, case.ppy, risk_free=case.risk_free)).items():
        _assert_matches(key, perf.values[key], theirs)
    _assert_matches("beta", perf.values["beta"], _quiet(lambda: ep.beta(r, returns_from_equity(bench))))


def test_value_at_risk_differs_from_empyrical_with_nans_on_purpose() -> None:
    r = np.array([0.01, np.nan, -0.02, 0.005, -0.01])
    values, _ = returns_metrics(r, None, periods_per_year=252)
    assert math.isnan(_quiet(lambda: ep.value_at_risk(r)))  # empyrical: any NaN poisons the percentile
    assert values["var_95"] == pytest.approx(np.percentile(r[~np.isnan(r)], 5))


def test_returns_below_minus_one_compound_as_total_loss_on_purpose() -> None:
    # Equity went negative (-20 from 100): empyrical's drawdown goes past -100% and its CAGR is NaN.
    r = returns_from_equity(np.array([100.0, -20.0, 10.0]))
    values, _ = returns_metrics(r, None, periods_per_year=252)
    assert _quiet(lambda: ep.max_drawdown(r)) < -1.0
    assert values["max_drawdown"] == -1.0
    assert values["total_return"] == -1.0
    assert values["cagr"] == -1.0
