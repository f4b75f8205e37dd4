"""Invariants of the metrics over arbitrary return series (Hypothesis), with warnings as errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from quantfleet.analytics.metrics import PERFORMANCE_KEYS, performance, returns_metrics
from quantfleet.analytics.relative import relative_metrics

DAY_US = 86_400_000_000

# Returns from a total loss (-1) to a tripling, some unknown (NaN), as returns_from_equity gives them.
returns_arrays = arrays(
    np.float64,
    st.integers(0, 80),
    elements=st.one_of(st.floats(-1.0, 2.0, allow_nan=False), st.just(math.nan)),
)
steps_us = st.sampled_from([60_000_000, 3_600_000_000, DAY_US, 3 * DAY_US])


def _num(values: dict[str, float | str | None], key: str) -> float | None:
    """Return a numeric metric (None stays None), failing on a string."""
    value = values[key]
    assert value is None or isinstance(value, int | float), key
    return None if value is None else float(value)


def _times(n: int, step: int) -> np.ndarray:
    return np.datetime64("2021-12-20", "us").astype(np.int64) + np.arange(n + 1, dtype=np.int64) * step


@settings(max_examples=200, deadline=None)
@given(r=returns_arrays, step=steps_us, ppy=st.sampled_from([252.0, 98_280.0]))
def test_returns_metrics_invariants(r: np.ndarray, step: int, ppy: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, notes = returns_metrics(r, _times(len(r), step), periods_per_year=ppy, risk_free=0.02)
    for key, value in v.items():
        if value is None:
            assert notes.get(key), key
        elif isinstance(value, float):
            assert math.isfinite(value), key
    mdd, avg_dd, var, cvar = (_num(v, k) for k in ("max_drawdown", "avg_drawdown", "var_95", "cvar_95"))
    if mdd is not None:
        assert avg_dd is not None
        assert -1.0 <= mdd <= avg_dd <= 0.0
    if var is not None:
        assert cvar is not None
        assert var >= cvar
    positive, total, tail = (_num(v, k) for k in ("positive_periods", "total_return", "tail_ratio"))
    assert positive is None or 0.0 <= positive <= 1.0
    assert total is None or total >= -1.0
    assert tail is None or tail >= 0.0
    for name in ("day", "month", "year"):
        best, worst = _num(v, f"best_{name}"), _num(v, f"worst_{name}")
        if best is not None:
            assert worst is not None
            assert best >= worst >= -1.0
    longest, avg_days = _num(v, "longest_drawdown_days"), _num(v, "avg_drawdown_days")
    if longest is not None:
        assert avg_days is not None
        assert longest >= avg_days >= 0.0


@settings(max_examples=150, deadline=None)
@given(r=returns_arrays, b=returns_arrays)
def test_relative_metrics_never_warn(r: np.ndarray, b: np.ndarray) -> None:
    n = min(len(r), len(b))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, notes = relative_metrics(r[:n], b[:n], periods_per_year=252.0)
    for key, value in v.items():
        assert value is not None or notes.get(key), key
    rho, te = _num(v, "correlation"), _num(v, "tracking_error")
    assert rho is None or -1.0 - 1e-12 <= rho <= 1.0 + 1e-12
    assert te is None or te >= 0.0


@settings(max_examples=100, deadline=None)
@given(
    equity=arrays(np.float64, st.integers(0, 40), elements=st.floats(-50.0, 1e4, allow_nan=False)),
    exposure=st.floats(0.0, 1e4),
)
def test_performance_on_any_equity_is_defined(equity: np.ndarray, exposure: float) -> None:
    n = len(equity)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        perf = performance(
            equity,
            _times(max(n - 1, 0), DAY_US)[:n],
            periods_per_year=252.0,
            benchmark=np.abs(equity[::-1]) + 1.0,
            gross_exposure=np.full(n, exposure),
            traded_value=exposure,
        )
    assert tuple(perf.values) == PERFORMANCE_KEYS
    for key, value in perf.values.items():
        assert value is not None or perf.notes.get(key), key
    held = _num(perf.values, "exposure")
    assert held is None or 0.0 <= held <= 1.0
