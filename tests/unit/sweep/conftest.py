"""Shared sweep fixtures: one small synthetic store (built once) and the SMA-crossover example's spec."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars
from quantfleet.sandbox import BacktestSpec
from quantfleet.strategy.loader import load_strategy
from quantfleet.strategy.params import ParamSpec

ROOT = Path(__file__).resolve().parents[3]
SMA = ROOT / "examples" / "sma_crossover.py"


@pytest.fixture(scope="session")
def sweep_store(tmp_path_factory: pytest.TempPathFactory) -> MarketDataStore:
    """Return a store of 2 symbols of synthetic daily bars, 2019-2022 (snapshot 0)."""
    store = MarketDataStore(str(tmp_path_factory.mktemp("sweep") / "data"))
    data = synthetic_bars(["AAA", "BBB"], start=date(2019, 1, 1), end=date(2022, 12, 31), actions=False)
    store.ingest_bars([data.bars], frequency="1d", source="test")
    return store


@pytest.fixture
def spec() -> BacktestSpec:
    """Return a backtest of the SMA-crossover example on the sweep store's bars."""
    return BacktestSpec(strategy=SMA, symbols=("AAA", "BBB"), start="2019-03-01", end="2022-12-30", snapshot=0)


@pytest.fixture(scope="session")
def sma_params() -> dict[str, ParamSpec]:
    """Return the SMA-crossover example's declared parameters (fast: int, slow: int, weight: float)."""
    return load_strategy(SMA).parameters
