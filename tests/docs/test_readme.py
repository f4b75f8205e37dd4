"""The README's examples run as written: data snippets against a demo-like store, strategies as backtests."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars
from quantfleet.engine import EngineConfig
from quantfleet.sandbox import BacktestSpec, run_spec

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
DATA_BLOCKS = [b for b in BLOCKS if "MarketDataStore(" in b or "duckdb" in b]
STRATEGY_BLOCKS = [b for b in BLOCKS if b not in DATA_BLOCKS]


@pytest.fixture
def demo_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MarketDataStore:
    """Build a store like the demo's: five snapshots, AAA and BBB daily bars with actions."""
    monkeypatch.chdir(tmp_path)
    store = MarketDataStore(".quantfleet/data")
    data = synthetic_bars(["AAA", "BBB"], start=date(2023, 1, 1), end=date(2024, 12, 31))
    store.ingest_bars([data.bars], frequency="1d")
    store.ingest_corporate_actions(data.actions)
    assert data.instruments is not None
    store.ingest_instruments(data.instruments)
    store.ingest_bars(
        [synthetic_bars(["AAA"], start=date(2024, 1, 1), end=date(2024, 1, 31), frequency="1m").bars],
        frequency="1m",
    )
    store.ingest_instruments(data.instruments)
    assert store.latest() == 4
    return store


def test_readme_has_the_two_quickstart_commands() -> None:
    quickstart = README.read_text().split("## Quickstart", 1)[1].split("##", 1)[0]
    assert re.findall(r"^make \w+", quickstart, flags=re.M) == ["make demo", "make test"]


@pytest.mark.parametrize("index", range(2))
def test_data_examples_run(demo_layout: MarketDataStore, index: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert len(DATA_BLOCKS) == 2
    exec(compile(DATA_BLOCKS[index], f"README.md data example {index}", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.startswith("4 ") if index == 0 else "AAA" in printed


@pytest.mark.parametrize("index", range(3))
def test_strategy_examples_backtest(demo_layout: MarketDataStore, index: int, tmp_path: Path) -> None:
    assert len(STRATEGY_BLOCKS) == 3
    path = tmp_path / f"readme_strategy_{index}.py"
    path.write_text(STRATEGY_BLOCKS[index])
    spec = BacktestSpec(strategy=path, symbols=("AAA", "BBB"), start="2023-04-03", engine=EngineConfig(warmup=40))
    outcome = run_spec(spec, demo_layout, tmp_path / f"run{index}")
    assert outcome.metrics["final_equity"] is not None
    assert outcome.result.fills, "the example should trade on two years of data"
