"""Headline metrics against hand computation, and defined values at the edges."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from quantfleet.analytics.metrics import (
    annual_volatility,
    cagr,
    max_drawdown,
    returns_from_equity,
    sharpe_ratio,
    summary,
    total_return,
)


def test_hand_computed_values() -> None:
    equity = np.array([100.0, 110.0, 99.0, 108.9])
    r = returns_from_equity(equity)
    np.testing.assert_allclose(r, [0.1, -0.1, 0.1])
    assert total_return(equity) == pytest.approx(0.089)
    assert cagr(equity, periods_per_year=3) == pytest.approx(0.089)  # three periods = one year
    assert max_drawdown(equity) == pytest.approx(-0.1)
    sd = np.std([0.1, -0.1, 0.1], ddof=1)
    assert annual_volatility(r, 252) == pytest.approx(sd * math.sqrt(252))
    assert sharpe_ratio(r, 252) == pytest.approx(np.mean([0.1, -0.1, 0.1]) / sd * math.sqrt(252))


def test_edges_are_nan_not_errors() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flat = np.full(10, 100.0)
        assert math.isnan(sharpe_ratio(returns_from_equity(flat), 252))  # zero volatility
        assert math.isnan(annual_volatility(np.array([0.01]), 252))  # one period
        assert math.isnan(cagr(np.array([100.0]), 252))
        assert math.isnan(total_return(np.array([])))
        touched = np.array([100.0, 50.0, 0.0, 10.0])
        assert max_drawdown(touched) == -1.0
        assert cagr(touched[:3], 252) == -1.0
        r = returns_from_equity(touched)
        assert math.isnan(r[2])  # no return is defined after equity reached zero
        stats = summary(flat, periods_per_year=252, trades=0, exposure=np.zeros(10))
        assert stats["trades"] == 0
        assert stats["exposure"] == 0.0
        assert math.isnan(stats["sharpe"])
