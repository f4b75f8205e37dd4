"""The compiled indicators give the reference numbers (pandas, or quantfleet.strategy's) and the documented warm-up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantfleet.engine.vectorized.indicators import (
    atr_nb,
    bollinger_nb,
    crossover_nb,
    ema_nb,
    rolling_mean_nb,
    rolling_std_nb,
    rsi_nb,
)
from quantfleet.strategy import indicators as ref


@pytest.fixture
def prices() -> np.ndarray:
    rng = np.random.default_rng(7)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 500)))


@pytest.mark.parametrize("n", [1, 2, 10, 30, 499, 600])
def test_rolling_mean_is_pandas_to_rounding(prices: np.ndarray, n: int) -> None:
    expected = pd.Series(prices).rolling(n, min_periods=n).mean().to_numpy()
    got = rolling_mean_nb(prices, n)
    np.testing.assert_allclose(got, expected, rtol=1e-13, equal_nan=True)
    assert np.isnan(got[: n - 1]).all()
    assert not np.isnan(got[n - 1 :]).any()


def test_rolling_mean_and_std_skip_windows_with_a_nan(prices: np.ndarray) -> None:
    x = prices.copy()
    x[[50, 51, 200]] = np.nan
    s = pd.Series(x).rolling(10, min_periods=10)
    np.testing.assert_allclose(rolling_mean_nb(x, 10), s.mean().to_numpy(), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(rolling_std_nb(x, 10, 1), s.std().to_numpy(), rtol=1e-9, equal_nan=True)
    assert np.isnan(rolling_mean_nb(x, 10)[50:61]).all()  # a NaN keeps every window holding it empty


@pytest.mark.parametrize(("n", "ddof"), [(2, 1), (20, 1), (20, 0), (100, 0)])
def test_rolling_std_matches_pandas(prices: np.ndarray, n: int, ddof: int) -> None:
    expected = pd.Series(prices).rolling(n, min_periods=n).std(ddof=ddof).to_numpy()
    got = rolling_std_nb(prices, n, ddof)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12, equal_nan=True)
    assert np.isnan(got[: n - 1]).all()


def test_rolling_std_of_a_flat_window_is_exactly_zero() -> None:
    x = np.r_[np.linspace(1.0, 2.0, 30), np.full(30, 1.7)]
    assert (rolling_std_nb(x, 10, 1)[40:] == 0.0).all()


@pytest.mark.parametrize("n", [1, 5, 26])
def test_ema_and_rsi_are_the_strategy_indicators(prices: np.ndarray, n: int) -> None:
    np.testing.assert_allclose(ema_nb(prices, n), ref.ema(prices, n), rtol=1e-14, equal_nan=True)
    np.testing.assert_allclose(rsi_nb(prices, n), ref.rsi(prices, n), rtol=1e-12, equal_nan=True)
    assert np.isnan(ema_nb(prices, n)[: n - 1]).all()
    assert not np.isnan(ema_nb(prices, n)[n - 1])
    assert np.isnan(rsi_nb(prices, n)[:n]).all()
    assert not np.isnan(rsi_nb(prices, n)[n])


def test_ema_follows_pandas_ewm_after_its_seed(prices: np.ndarray) -> None:
    n = 12
    seeded = prices.copy()
    seeded[: n - 1] = np.nan
    seeded[n - 1] = prices[:n].mean()
    expected = pd.Series(seeded).ewm(span=n, adjust=False, ignore_na=True).mean().to_numpy()
    np.testing.assert_allclose(ema_nb(prices, n)[n - 1 :], expected[n - 1 :], rtol=1e-12)


def test_atr_is_wilders_average_of_the_true_range(prices: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    high = prices * (1 + rng.uniform(0, 0.02, len(prices)))
    low = prices * (1 - rng.uniform(0, 0.02, len(prices)))
    n = 14
    prev = np.r_[np.nan, prices[:-1]]
    tr = np.nanmax(np.c_[high - low, np.abs(high - prev), np.abs(low - prev)], axis=1)
    expected = np.full(len(prices), np.nan)
    expected[n - 1] = tr[:n].mean()
    for i in range(n, len(prices)):
        expected[i] = (expected[i - 1] * (n - 1) + tr[i]) / n
    got = atr_nb(high, low, prices, n)
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)
    assert np.isnan(got[: n - 1]).all()


def test_bollinger_bands_are_mean_plus_minus_k_population_deviations(prices: np.ndarray) -> None:
    lower, mid, upper = bollinger_nb(prices, 20, 2.0, 0)
    roll = pd.Series(prices).rolling(20, min_periods=20)
    np.testing.assert_allclose(mid, roll.mean().to_numpy(), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(upper - mid, 2 * roll.std(ddof=0).to_numpy(), rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(mid - lower, upper - mid, rtol=1e-12, equal_nan=True)
    assert np.isnan(lower[:19]).all()
    assert not np.isnan(lower[19])


def test_crossover_is_the_strategy_crossover(prices: np.ndarray) -> None:
    fast, slow = ref.sma(prices, 5), ref.sma(prices, 20)
    got = crossover_nb(fast, slow)
    np.testing.assert_array_equal(got, ref.crossover(fast, slow))
    assert set(np.unique(got)) == {-1.0, 0.0, 1.0}
    # Strict: touching without passing is no cross; NaN never crosses.
    a, b = np.array([1.0, 2.0, 2.0, 3.0, np.nan, 5.0]), np.full(6, 2.0)
    np.testing.assert_array_equal(crossover_nb(a, b), [0, 0, 0, 0, 0, 0])
