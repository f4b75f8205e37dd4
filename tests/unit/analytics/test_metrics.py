"""Metrics against hand computation, the performance() contract, and defined values at the edges."""

from __future__ import annotations

import json
import math
import warnings
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from quantfleet.analytics.metrics import (
    PERFORMANCE_KEYS,
    annual_volatility,
    cagr,
    max_drawdown,
    performance,
    periods_per_year,
    returns_from_equity,
    returns_metrics,
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


# --- performance(): the contract other code depends on -------------------------------------------

DAY_US = 86_400_000_000


def _ts(n: int) -> np.ndarray:
    return np.datetime64("2024-01-01", "us").astype(np.int64) + np.arange(n, dtype=np.int64) * DAY_US


def _trades(rows: list[dict[str, object]]) -> pa.Table:
    schema = pa.schema(
        [
            ("symbol", pa.string()),
            ("direction", pa.string()),
            ("quantity", pa.float64()),
            ("entry_time", pa.timestamp("us", tz="UTC")),
            ("exit_time", pa.timestamp("us", tz="UTC")),
            ("entry_price", pa.float64()),
            ("exit_price", pa.float64()),
            ("pnl", pa.float64()),
            ("return", pa.float64()),
            ("commission", pa.float64()),
            ("open", pa.bool_()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def _trade(pnl: float, entry: str, exit_: str | None, *, open_: bool = False) -> dict[str, object]:
    return {
        "symbol": "AAA",
        "direction": "long",
        "quantity": 10.0,
        "entry_time": datetime.fromisoformat(entry).replace(tzinfo=UTC),
        "exit_time": datetime.fromisoformat(exit_).replace(tzinfo=UTC) if exit_ else None,
        "entry_price": 10.0,
        "exit_price": None if open_ else 11.0,
        "pnl": math.nan if open_ else pnl,
        "return": math.nan if open_ else pnl / 100.0,
        "commission": 1.0,
        "open": open_,
    }


@pytest.mark.parametrize(
    ("minutes", "session", "expected"),
    [
        (None, 390.0, 252.0),
        (1440.0, 390.0, 252.0),
        (1.0, 390.0, 98_280.0),
        (5.0, 390.0, 19_656.0),
        (60.0, 420.0, 1764.0),
    ],
)
def test_periods_per_year(minutes: float | None, session: float, expected: float) -> None:
    assert periods_per_year(minutes, session) == expected


def test_periods_per_year_rejects_a_non_positive_frequency() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        periods_per_year(0.0)


def test_keys_are_stable_and_in_order() -> None:
    # Reports, the tearsheet and stored metrics.json files read these keys: change them on purpose only.
    expected = [
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
        "final_equity",
        "alpha",
        "beta",
        "correlation",
        "information_ratio",
        "tracking_error",
        "up_capture",
        "down_capture",
        "trades",
        "win_rate",
        "avg_win",
        "avg_loss",
        "profit_factor",
        "expectancy",
        "avg_holding_days",
        "exposure",
        "turnover",
        "commission",
        "slippage",
    ]
    assert tuple(expected) == PERFORMANCE_KEYS
    perf = performance(np.array([100.0, 101.0, 99.0]), _ts(3), periods_per_year=252)
    assert tuple(perf.values) == PERFORMANCE_KEYS


def test_drawdown_dates_and_durations_by_hand() -> None:
    equity = np.array([100.0, 110.0, 99.0, 121.0, 100.0, 100.0])
    perf = performance(equity, _ts(6), periods_per_year=252)
    v = perf.values
    # Two episodes: 110 -> 99 -> 121 (recovered, days 1..3) and 121 -> 100 (not recovered, day 3 .. last).
    assert v["max_drawdown"] == pytest.approx(100 / 121 - 1)
    assert v["max_drawdown_peak"] == "2024-01-04T00:00:00+00:00"
    assert v["max_drawdown_trough"] == "2024-01-05T00:00:00+00:00"
    assert v["max_drawdown_recovery"] is None
    assert perf.notes["max_drawdown_recovery"] == "not recovered by the last bar"
    assert v["max_drawdown_days"] == 2.0
    assert v["avg_drawdown"] == pytest.approx(((99 / 110 - 1) + (100 / 121 - 1)) / 2)
    assert v["avg_drawdown_days"] == 2.0
    assert v["longest_drawdown_days"] == 2.0
    assert v["final_equity"] == 100.0
    assert v["positive_periods"] == pytest.approx(2 / 5)


def test_trade_metrics_by_hand() -> None:
    trades = _trades(
        [
            _trade(100.0, "2024-01-01", "2024-01-03"),
            _trade(-50.0, "2024-01-02", "2024-01-03"),
            _trade(30.0, "2024-01-03", "2024-01-06"),
            _trade(0.0, "2024-01-04", "2024-01-05", open_=True),
        ]
    )
    equity = np.full(253, 1000.0)
    gross = np.r_[np.zeros(53), np.full(200, 500.0)]
    perf = performance(
        equity,
        _ts(253),
        periods_per_year=252,
        trades=trades,
        gross_exposure=gross,
        traded_value=3000.0,
        commission=4.0,
        slippage=2.5,
    )
    v = perf.values
    assert v["trades"] == 3  # the open one does not count
    assert v["win_rate"] == pytest.approx(2 / 3)
    assert v["avg_win"] == pytest.approx(65.0)
    assert v["avg_loss"] == pytest.approx(-50.0)
    assert v["profit_factor"] == pytest.approx(130 / 50)
    assert v["expectancy"] == pytest.approx(80 / 3)
    assert v["avg_holding_days"] == pytest.approx((2 + 1 + 3) / 3)
    assert v["exposure"] == pytest.approx(200 / 253)
    assert v["turnover"] == pytest.approx(3.0)  # 3000 traded on 1000 of equity over exactly one year
    assert (v["commission"], v["slippage"]) == (4.0, 2.5)


def test_no_trades_and_no_losses_are_none_with_reasons() -> None:
    equity = np.array([100.0, 101.0, 102.0])
    none = performance(equity, _ts(3), periods_per_year=252, trades=_trades([]))
    assert none.values["trades"] == 0
    assert none.values["win_rate"] is None
    assert none.notes["win_rate"] == "no closed trades"
    winners = performance(
        equity, _ts(3), periods_per_year=252, trades=_trades([_trade(5.0, "2024-01-01", "2024-01-02")])
    )
    assert winners.values["win_rate"] == 1.0
    assert winners.values["profit_factor"] is None
    assert "no losing trades" in winners.notes["profit_factor"]
    assert winners.values["avg_loss"] is None


def test_no_benchmark_leaves_relative_metrics_none() -> None:
    perf = performance(np.array([100.0, 101.0, 102.0]), _ts(3), periods_per_year=252)
    for key in ("alpha", "beta", "correlation", "information_ratio", "tracking_error", "up_capture", "down_capture"):
        assert perf.values[key] is None
        assert perf.notes[key] == "no benchmark given"


def test_benchmark_of_itself_has_beta_one() -> None:
    equity = 100 * np.cumprod(1 + np.random.default_rng(3).normal(0, 0.01, 300))
    perf = performance(equity, _ts(300), periods_per_year=252, benchmark=equity * 3)
    assert perf.values["beta"] == pytest.approx(1.0)
    assert perf.values["alpha"] == pytest.approx(0.0, abs=1e-12)
    assert perf.values["correlation"] == pytest.approx(1.0)
    assert perf.values["tracking_error"] == pytest.approx(0.0, abs=1e-12)
    assert perf.values["up_capture"] == pytest.approx(1.0)


def test_risk_free_lowers_sharpe() -> None:
    equity = 100 * np.cumprod(1 + np.random.default_rng(4).normal(0.0005, 0.01, 300))
    base = performance(equity, _ts(300), periods_per_year=252).values["sharpe"]
    taxed = performance(equity, _ts(300), periods_per_year=252, risk_free=0.05).values["sharpe"]
    assert isinstance(base, float)
    assert isinstance(taxed, float)
    assert taxed < base


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="one per bar"):
        performance(np.ones(3), _ts(2), periods_per_year=252)
    with pytest.raises(ValueError, match="one per bar"):
        performance(np.ones(3), _ts(3), periods_per_year=252, benchmark=np.ones(4))


EDGE_EQUITY = {
    "empty": np.array([]),
    "one_bar": np.array([100.0]),
    "two_bars": np.array([100.0, 101.0]),
    "flat": np.full(20, 100.0),
    "touches_zero": np.array([100.0, 50.0, 0.0, 0.0, 10.0]),
    "goes_negative": np.array([100.0, 40.0, -20.0, 10.0]),
    "starts_at_zero": np.array([0.0, 10.0, 20.0]),
    "all_down": np.array([100.0, 90.0, 80.0, 70.0]),
    "all_up": np.array([100.0, 110.0, 121.0, 133.1]),
    "huge_jump": np.array([1.0, 1e6, 1e12]),
}


@pytest.mark.parametrize("name", EDGE_EQUITY)
@pytest.mark.parametrize("ppy", [252.0, 98_280.0])
def test_edges_give_values_or_reasons_never_errors(name: str, ppy: float) -> None:
    equity = EDGE_EQUITY[name]
    n = len(equity)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        perf = performance(
            equity,
            _ts(n),
            periods_per_year=ppy,
            risk_free=0.03,
            benchmark=equity[::-1].copy(),
            trades=_trades([]),
            gross_exposure=np.zeros(n),
            traded_value=0.0,
        )
        doc = json.dumps(perf.to_json(), allow_nan=False)
    assert tuple(perf.values) == PERFORMANCE_KEYS
    for key, value in perf.values.items():
        assert value is None or isinstance(value, int | float | str), key
        if isinstance(value, float):
            assert math.isfinite(value), key
        if value is None:
            assert perf.notes.get(key), f"{key} is None without a reason"
    assert set(perf.notes) <= set(PERFORMANCE_KEYS)
    assert json.loads(doc)["notes"] == perf.notes


def test_equity_touching_zero_counts_as_total_loss() -> None:
    perf = performance(EDGE_EQUITY["touches_zero"], _ts(5), periods_per_year=252)
    assert perf.values["max_drawdown"] == -1.0
    assert perf.values["total_return"] == -1.0  # nothing is left to earn the later 10 on
    assert perf.values["final_equity"] == 10.0


def test_huge_short_run_growth_is_none_not_overflow() -> None:
    perf = performance(EDGE_EQUITY["huge_jump"], _ts(3), periods_per_year=98_280.0)
    assert perf.values["cagr"] is None
    assert "overflow" in perf.notes["cagr"]


def test_returns_metrics_accepts_times_per_return() -> None:
    r = np.array([0.01, -0.02, 0.03])
    per_bar, _ = returns_metrics(r, _ts(4), periods_per_year=252)
    per_return, _ = returns_metrics(r, _ts(4)[1:], periods_per_year=252)
    assert per_bar["best_month"] == per_return["best_month"]
    with pytest.raises(ValueError, match="timestamps"):
        returns_metrics(r, _ts(7), periods_per_year=252)


def test_compounding_beyond_a_float_is_none_with_a_reason() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, notes = returns_metrics(np.full(800, 2.0), _ts(801), periods_per_year=252)  # 3 ** 800 > 1e308
    assert v["total_return"] is None
    assert v["max_drawdown"] is None
    assert v["best_year"] is None
    assert notes["total_return"] == "compounded growth is too large for a float64"
    assert v["annual_volatility"] == 0.0  # what does not compound is still defined


def test_absurd_returns_from_equity_near_zero_count_as_unknown() -> None:
    # 1e-300 of equity is zero but for rounding: the 1e300 "return" after it is unknown, as after a zero,
    # so the run is ruined from then on and nothing overflows.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        perf = performance(np.array([100.0, 1e-300, 1.0, 1.1]), _ts(4), periods_per_year=252)
    assert perf.values["total_return"] == -1.0
    assert perf.values["max_drawdown"] == -1.0
    assert perf.values["best_day"] == -1.0  # the later days start from nothing: no return is defined
    assert perf.values["worst_day"] == -1.0
    assert perf.values["final_equity"] == 1.1
