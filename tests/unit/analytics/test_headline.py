"""The compiled headline metrics agree with performance() on the keys they share."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from quantfleet.analytics.headline import HEADLINE_KEYS, headline_metrics
from quantfleet.analytics.metrics import performance

PPY = 252.0


def reference(equity: np.ndarray) -> dict[str, object]:
    ts = np.arange(len(equity), dtype=np.int64) * 86_400_000_000
    values = performance(equity, ts, periods_per_year=PPY).values
    return {k: values[k] for k in HEADLINE_KEYS}


def assert_same(equity: np.ndarray) -> None:
    fast, slow = headline_metrics(equity, PPY), reference(equity)
    for key in HEADLINE_KEYS:
        a, b = fast[key], slow[key]
        if b is None:
            assert a is None, (key, a)
        else:
            assert a == pytest.approx(b, rel=1e-9, abs=1e-12), key


CURVES = {
    "random walk": 1e5 * np.cumprod(1 + np.random.default_rng(1).normal(3e-4, 0.01, 2_000)),
    "flat": np.full(50, 1e5),
    "only gains": np.linspace(100.0, 200.0, 30),
    "touches zero": np.array([100.0, 80.0, 0.0, 0.0, 10.0, 20.0]),
    "goes negative": np.array([100.0, 50.0, -10.0, 5.0]),
    "one bar": np.array([100.0]),
    "two bars": np.array([100.0, 101.0]),
    "empty": np.array([]),
}


@pytest.mark.parametrize("name", CURVES)
def test_agrees_with_performance(name: str) -> None:
    assert_same(CURVES[name])


@settings(max_examples=200, deadline=None, derandomize=True)
@given(arrays(np.float64, st.integers(0, 60), elements=st.floats(-50, 1e6, allow_nan=False)))
def test_agrees_on_any_curve(equity: np.ndarray) -> None:
    assert_same(equity)


def test_values_by_hand() -> None:
    m = headline_metrics(np.array([100.0, 110.0, 99.0, 108.9]), 3.0)
    assert m["total_return"] == pytest.approx(0.089)
    assert m["cagr"] == pytest.approx(0.089)  # three returns at three a year: one year
    assert m["max_drawdown"] == pytest.approx(-0.1)
    assert m["positive_periods"] == pytest.approx(2 / 3)
    assert m["sharpe"] == pytest.approx(np.mean([0.1, -0.1, 0.1]) / np.std([0.1, -0.1, 0.1], ddof=1) * math.sqrt(3))
