"""The sweep report in headless Chromium, offline: no errors, every chart drawn, the top links resolve."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars
from quantfleet.sandbox import BacktestSpec
from quantfleet.strategy.loader import load_strategy
from quantfleet.sweep import Search, SweepJob, WalkForwardSpec, parse_space, run_sweep

OpenOffline = Callable[[Path], Any]  # returns conftest.Opened
SMA = Path(__file__).resolve().parents[2] / "examples" / "sma_crossover.py"


def _job(walkforward: WalkForwardSpec | None = None) -> SweepJob:
    space = parse_space(["fast=5:20:5", "slow=20:60:20"], ["fast < slow"], load_strategy(SMA).parameters)
    spec = BacktestSpec(strategy=SMA, symbols=("AAA", "BBB"), start="2020-03-01", end="2022-12-30", snapshot=0)
    return SweepJob(backtest=spec, search=Search(space=space), top=1, walkforward=walkforward)


def _clean(opened: Any, expected: dict[str, int]) -> None:
    assert opened.errors == []
    assert [u for u in opened.requests if not u.startswith(("file:", "data:", "blob:"))] == []
    state = opened.charts()
    assert {k: v["traces"] for k, v in state.items()} == expected
    assert all(v["svgs"] >= 1 and v["declared"] == v["traces"] for v in state.values()), state


def test_sweep_and_walkforward_reports_open_offline(
    open_offline: OpenOffline, store: MarketDataStore, tmp_path: Path
) -> None:
    data = synthetic_bars(["AAA", "BBB"], start=date(2020, 1, 1), end=date(2022, 12, 31), actions=False)
    store.ingest_bars([data.bars], frequency="1d", source="test")
    sweep = run_sweep(_job(), store, tmp_path / "sweep", workers=1)
    opened = open_offline(sweep.out_dir / "report.html")
    _clean(opened, {"qf-sweep-heatmap": 1})
    assert opened.page.locator("#leaderboard tbody tr").count() == len(sweep.leaderboard)
    opened.page.locator("#leaderboard a", has_text="#1").click()
    opened.page.wait_for_url("**/top/1/tearsheet.html")
    opened.screenshot("sweep-report.png")

    walk = run_sweep(_job(WalkForwardSpec(train="1y", test="6m")), store, tmp_path / "wf", workers=1)
    opened = open_offline(walk.out_dir / "report.html")
    _clean(opened, {"qf-wf-equity": 1, "qf-wf-metric": 2, "qf-wf-params": 2, "qf-sweep-heatmap": 1})
    assert opened.page.locator("#windows tbody tr").count() == len(walk.walkforward.windows) == 4  # type: ignore[union-attr]
    opened.screenshot("walkforward-report.png")
