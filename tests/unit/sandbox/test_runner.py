"""A run folder reproduces: the same inputs give byte-identical files, and it records what it ran."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import pytest

from quantfleet.core.types import Frequency
from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars
from quantfleet.engine import EngineConfig, PerShareCommission
from quantfleet.sandbox import BacktestSpec, run_spec
from quantfleet.strategy.loader import StrategyError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
FILES = (
    "manifest.json",
    "metrics.json",
    "equity.parquet",
    "positions.parquet",
    "orders.parquet",
    "fills.parquet",
    "trades.parquet",
    "log.txt",
)


@pytest.fixture
def market(store: MarketDataStore) -> MarketDataStore:
    data = synthetic_bars(["AAA", "BBB", "CCC"], start=date(2019, 1, 1), end=date(2022, 12, 31))
    store.ingest_bars([data.bars], frequency="1d")
    store.ingest_corporate_actions(data.actions)
    return store


def spec(**kw: object) -> BacktestSpec:
    base: dict[str, object] = dict(
        strategy=EXAMPLES / "sma_crossover.py",
        symbols=("AAA", "BBB", "CCC"),
        start="2020-01-01",
        end="2022-12-31",
        frequency=Frequency.DAILY,
        params={"fast": 5},
        engine=EngineConfig(commission=PerShareCommission(), warmup=20),
    )
    base.update(kw)
    return BacktestSpec(**base)  # type: ignore[arg-type]


def test_same_inputs_give_byte_identical_run_folders(market: MarketDataStore, tmp_path: Path) -> None:
    first = run_spec(spec(), market, tmp_path / "a")
    second = run_spec(spec(), MarketDataStore(market.url), tmp_path / "b")
    for name in FILES:
        assert (first.run_dir / name).read_bytes() == (second.run_dir / name).read_bytes(), name
    assert first.metrics["trades"] > 0


def test_manifest_records_what_reproduces_the_run(market: MarketDataStore, tmp_path: Path) -> None:
    outcome = run_spec(spec(), market, tmp_path / "run")
    manifest = json.loads((outcome.run_dir / "manifest.json").read_text())
    assert manifest["strategy"]["sha256"] == hashlib.sha256((EXAMPLES / "sma_crossover.py").read_bytes()).hexdigest()
    assert manifest["parameters"] == {"fast": 5, "slow": 30, "weight": 1.0}
    assert manifest["snapshot"] == 1
    assert manifest["engine"]["commission"] == {"kind": "per_share", "rate": 0.005, "minimum": 1.0}
    assert manifest["engine_version"]
    assert manifest["first_bar"].startswith("2020-01-02")
    metrics = json.loads((outcome.run_dir / "metrics.json").read_text())
    assert set(metrics) >= {"total_return", "cagr", "annual_volatility", "sharpe", "max_drawdown", "trades", "exposure"}


def test_a_pinned_snapshot_reruns_identically_after_new_data(market: MarketDataStore, tmp_path: Path) -> None:
    before = run_spec(spec(snapshot=1, end=None), market, tmp_path / "a")
    later = synthetic_bars(["AAA", "BBB", "CCC"], start=date(2023, 1, 1), end=date(2023, 3, 31), seed=9, actions=False)
    market.ingest_bars([later.bars], frequency="1d")
    pinned = run_spec(spec(snapshot=1, end=None), market, tmp_path / "b")
    newest = run_spec(spec(end=None), market, tmp_path / "c")
    for name in ("equity.parquet", "fills.parquet", "metrics.json"):
        assert (before.run_dir / name).read_bytes() == (pinned.run_dir / name).read_bytes(), name
    assert newest.manifest["last_bar"] > pinned.manifest["last_bar"]


def test_a_failing_strategy_leaves_no_run_folder(market: MarketDataStore, tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def run(ctx):\n    raise RuntimeError('boom')\n")
    with pytest.raises(StrategyError, match="boom"):
        run_spec(spec(strategy=bad, params={}), market, tmp_path / "out" / "run")
    assert list((tmp_path / "out").iterdir()) == []
