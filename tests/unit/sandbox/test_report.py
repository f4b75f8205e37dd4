"""A run's report: the benchmark is a total-return buy-and-hold, metrics.json keeps its keys, a tearsheet is written."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from quantfleet.core.errors import DataError
from quantfleet.core.types import Adjustment, Frequency
from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars
from quantfleet.engine import EngineConfig
from quantfleet.engine.feed import Feed
from quantfleet.sandbox import BacktestSpec, run_spec
from quantfleet.sandbox.report import periods_per_year

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

# Keys metrics.json promises (README, "metrics.json"); a rename breaks researchers' scripts.
STABLE_KEYS = {
    "total_return", "cagr", "annual_volatility", "sharpe", "sortino", "calmar", "omega",
    "max_drawdown", "max_drawdown_peak", "max_drawdown_trough", "max_drawdown_recovery", "max_drawdown_days",
    "avg_drawdown", "avg_drawdown_days", "longest_drawdown_days", "skew", "kurtosis", "tail_ratio",
    "var_95", "cvar_95", "best_day", "worst_day", "best_month", "worst_month", "best_year", "worst_year",
    "positive_periods", "final_equity", "alpha", "beta", "correlation", "information_ratio", "tracking_error",
    "up_capture", "down_capture", "trades", "win_rate", "avg_win", "avg_loss", "profit_factor", "expectancy",
    "avg_holding_days", "exposure", "turnover", "commission", "slippage", "notes", "benchmark",
}  # fmt: skip


@pytest.fixture
def market(store: MarketDataStore) -> MarketDataStore:
    data = synthetic_bars(["AAA", "BBB", "CCC"], start=date(2019, 1, 1), end=date(2022, 12, 31))
    store.ingest_bars([data.bars], frequency="1d")
    store.ingest_corporate_actions(data.actions)
    return store


def spec(**kw: object) -> BacktestSpec:
    base: dict[str, object] = dict(
        strategy=EXAMPLES / "sma_crossover.py",
        symbols=("BBB", "AAA"),
        start="2020-01-01",
        end="2022-12-31",
        engine=EngineConfig(warmup=30),
    )
    base.update(kw)
    return BacktestSpec(**base)  # type: ignore[arg-type]


def test_metrics_json_has_the_documented_keys_and_a_tearsheet(market: MarketDataStore, tmp_path: Path) -> None:
    outcome = run_spec(spec(), market, tmp_path / "run")
    metrics = json.loads((outcome.run_dir / "metrics.json").read_text())
    assert set(metrics) >= STABLE_KEYS
    assert metrics["benchmark"]["symbol"] == "BBB"  # the first symbol named, not the first in sort order
    assert metrics["beta"] is not None
    html = (outcome.run_dir / "tearsheet.html").read_text()
    assert outcome.manifest["strategy"]["sha256"] in html
    assert outcome.manifest["benchmark"] == "BBB"


def test_benchmark_is_buy_and_hold_of_total_return_prices(market: MarketDataStore, tmp_path: Path) -> None:
    outcome = run_spec(spec(benchmark="AAA"), market, tmp_path / "run")
    adjusted = market.read_bars("AAA", start="2020-01-01", end="2022-12-31", adjustment=Adjustment.ALL)
    close = adjusted.to_numpy("AAA")["close"]
    bench = outcome.metrics["benchmark"]
    assert bench["symbol"] == "AAA"
    assert bench["total_return"] == pytest.approx(close[-1] / close[0] - 1, rel=1e-12)
    assert bench["final_equity"] == pytest.approx(100_000 * close[-1] / close[0], rel=1e-12)
    # AAA splits 2-for-1 on 2020-06-23: raw closes halve that day, the benchmark does not.
    raw = market.read_bars("AAA", start="2020-06-22", end="2020-06-23").to_numpy("AAA")["close"]
    assert raw[1] / raw[0] - 1 < -0.4
    assert bench["worst_day"] > -0.2


def test_no_benchmark_leaves_relative_metrics_undefined_with_a_reason(
    market: MarketDataStore, tmp_path: Path
) -> None:
    outcome = run_spec(spec(benchmark=""), market, tmp_path / "run")
    assert outcome.metrics["benchmark"] is None
    assert outcome.metrics["alpha"] is None
    assert "benchmark" in outcome.metrics["notes"]["alpha"]


def test_unknown_benchmark_symbol_names_the_fix(market: MarketDataStore, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--benchmark"):
        run_spec(spec(benchmark="ZZZ"), market, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _feed(ts: np.ndarray, frequency: Frequency) -> Feed:
    n = len(ts)
    one = np.ones(n)
    return Feed.from_arrays(
        ["AAA"], ts, {"open": one, "high": one, "low": one, "close": one, "volume": one}, frequency=frequency
    )


def test_annualization_follows_the_calendar() -> None:
    days = np.array([0, 1, 2], dtype=np.int64) * 86_400_000_000 + 19_700 * 86_400_000_000
    assert periods_per_year(_feed(days, Frequency.DAILY), "XNYS") == 252
    assert periods_per_year(_feed(days, Frequency.DAILY), "24/7") == 365
    # XNYS sessions last 390 minutes: 252 x 390 one-minute bars, 252 x 78 five-minute bars a year.
    assert periods_per_year(_feed(days, Frequency.MINUTE_1), "XNYS") == 252 * 390
    assert periods_per_year(_feed(days, Frequency.MINUTE_5), "XNYS") == 252 * 78
    assert periods_per_year(_feed(days, Frequency.MINUTE_1), "XLON") == 252 * 510
    assert periods_per_year(_feed(days, Frequency.HOUR_1), "24/7") == 365 * 24


def test_vectorized_engine_writes_the_same_run_as_the_event_engine(market: MarketDataStore, tmp_path: Path) -> None:
    twin = EXAMPLES / "sma_crossover_signals.py"
    cfg = EngineConfig(warmup=30, adjustment=Adjustment.ALL)
    event = run_spec(spec(strategy=twin, engine=cfg), market, tmp_path / "event")
    fast = run_spec(spec(strategy=twin, engine=cfg, simulator="vectorized"), market, tmp_path / "vec")
    assert fast.manifest["simulator"] == "vectorized"
    assert fast.metrics["trades"] == event.metrics["trades"] > 0
    np.testing.assert_allclose(fast.result.equity, event.result.equity, rtol=1e-9)
    for name in ("equity.parquet", "trades.parquet", "fills.parquet"):
        assert (fast.run_dir / name).read_bytes() == (event.run_dir / name).read_bytes(), name


def test_vectorized_engine_refuses_class_strategies_with_the_fix(market: MarketDataStore, tmp_path: Path) -> None:
    from quantfleet.core.errors import ConfigError

    with pytest.raises(ConfigError, match="--engine event"):
        run_spec(spec(simulator="vectorized"), market, tmp_path / "run")
