"""Chart series behind the tearsheet: downsampling, calendar returns, rolling statistics, formats."""

from __future__ import annotations

import numpy as np
import pytest

from quantfleet.analytics.display import METRICS, best_indices, format_value, metric_rows
from quantfleet.analytics.series import (
    bar_returns,
    daily_last,
    histogram,
    minmax_indices,
    monthly_table,
    rolling_sharpe_vol,
)
from quantfleet.core.types import US_PER_DAY


def test_short_series_are_kept_whole() -> None:
    assert minmax_indices(np.arange(10.0), 10).tolist() == list(range(10))


def test_downsampling_keeps_the_extremes_and_the_ends() -> None:
    rng = np.random.default_rng(0)
    y = np.cumsum(rng.normal(size=100_000))
    y[12_345] = -1e6
    y[54_321] = np.nan
    idx = minmax_indices(y, 5_000)
    assert len(idx) <= 5_000
    assert np.all(np.diff(idx) > 0)
    assert {0, 99_999, 12_345, int(np.nanargmax(y))} <= set(idx.tolist())


def test_all_nan_buckets_do_not_fail() -> None:
    idx = minmax_indices(np.full(1_000, np.nan), 100)
    assert 0 < len(idx) <= 100


def test_bar_returns_stop_after_ruin() -> None:
    r = bar_returns(np.array([100.0, 110.0, 0.0, 10.0]))
    assert r[:2] == pytest.approx([0.1, -1.0])
    assert np.isnan(r[2])
    assert len(bar_returns(np.array([1.0]))) == 0


def test_daily_last_takes_each_days_last_bar() -> None:
    ts = np.array([0, 1, US_PER_DAY, US_PER_DAY + 5, 3 * US_PER_DAY], dtype=np.int64)
    days, values = daily_last(ts, np.arange(5.0))
    assert days.tolist() == [1, US_PER_DAY + 5, 3 * US_PER_DAY]
    assert values.tolist() == [1.0, 3.0, 4.0]


def test_monthly_table_compounds_months_and_years() -> None:
    # 2019-12-31, 2020-01-31, 2020-02-29, 2021-01-04 (UTC midnights)
    days = np.array(["2019-12-31", "2020-01-31", "2020-02-29", "2021-01-04"], dtype="datetime64[D]")
    ts = days.astype("datetime64[us]").astype(np.int64)
    table = monthly_table(ts, np.array([100.0, 110.0, 99.0, 118.8]))
    assert table.years == [2019, 2020, 2021]
    assert table.months[1, 0] == pytest.approx(0.1)
    assert table.months[1, 1] == pytest.approx(-0.1)
    assert np.isnan(table.months[1, 2])
    assert table.yearly.tolist() == pytest.approx([0.0, -0.01, 0.2])


def test_rolling_statistics_annualize_and_skip_flat_windows() -> None:
    r = np.tile([0.01, -0.01], 100)
    sharpe, vol = rolling_sharpe_vol(r, 10, 252.0)
    assert np.isnan(sharpe[8])
    assert vol[9] == pytest.approx(np.std(r[:10], ddof=1) * np.sqrt(252))
    flat_sharpe, flat_vol = rolling_sharpe_vol(np.zeros(50), 10, 252.0)
    assert np.isnan(flat_sharpe).all()
    assert flat_vol[20] == 0.0
    short, _ = rolling_sharpe_vol(np.zeros(5), 10, 252.0)
    assert len(short) == 5
    assert np.isnan(short).all()


def test_histogram_handles_constant_and_empty_returns() -> None:
    _centres, counts, width = histogram(np.zeros(30))
    assert counts.sum() == 30
    assert width > 0
    assert len(histogram(np.array([np.nan]))[0]) == 0


@pytest.mark.parametrize(
    ("value", "fmt", "text"),
    [
        (0.12345, "pct", "12.35%"),
        (1.5, "ratio", "1.50"),
        (1234567.891, "money", "1,234,567.89"),
        (12.0, "int", "12"),
        (3.25, "days", "3.2 d"),
        (123.4, "days", "123 d"),
        ("2020-03-23T00:00:00+00:00", "date", "2020-03-23"),
        ("2020-03-23T14:30:00+00:00", "date", "2020-03-23 14:30:00"),
        (None, "pct", "n/a"),
        (float("nan"), "ratio", "n/a"),
        (3.14159, "num", "3.142"),
        ("text", "num", "text"),
    ],
)
def test_values_are_formatted(value: object, fmt: str, text: str) -> None:
    assert format_value(value, fmt) == text


def test_better_direction_per_metric() -> None:
    assert best_indices([1.0, 2.0, None], METRICS["sharpe"].better) == {1}
    assert best_indices([-0.3, -0.1, -0.5], METRICS["max_drawdown"].better) == {1}
    assert best_indices([0.2, 0.1], METRICS["annual_volatility"].better) == {1}
    assert best_indices([1.0, 1.0], "higher") == set()
    assert best_indices([1.0], "higher") == set()
    assert best_indices([1.0, 2.0], METRICS["beta"].better) == set()


def test_unknown_keys_come_last_in_sorted_order() -> None:
    rows = metric_rows({"zeta": 1, "sharpe": 1.0}, {"alpha_custom": 2})
    assert [r.key for r in rows[-2:]] == ["alpha_custom", "zeta"]
    assert rows[-1].section == "Other"
