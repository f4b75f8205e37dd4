"""A sweep folder: whole, deterministic whatever the worker count, with the top N's full runs."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from quantfleet.core.errors import ConfigError
from quantfleet.data import MarketDataStore
from quantfleet.sandbox import BacktestSpec
from quantfleet.strategy.params import ParamSpec
from quantfleet.sweep import Method, Search, SweepJob, WalkForwardSpec, parse_space, run_sweep, sweep_dir_name

FILES = ("sweep.json", "leaderboard.parquet", "report.html")


def test_sweep_folder_is_the_same_bytes_with_one_worker_or_two(
    spec: BacktestSpec, sweep_store: MarketDataStore, sma_params: dict[str, ParamSpec], tmp_path: Path
) -> None:
    space = parse_space(["fast=5:15:5", "slow=20:40:10"], ["fast < slow"], sma_params)
    job = SweepJob(backtest=spec, search=Search(space=space, method=Method.RANDOM, trials=7, seed=3), top=2)
    one = run_sweep(job, sweep_store, tmp_path / "one", workers=1)
    two = run_sweep(job, sweep_store, tmp_path / "two", workers=2)
    for name in FILES:
        assert (one.out_dir / name).read_bytes() == (two.out_dir / name).read_bytes(), name
    board = pq.read_table(one.out_dir / "leaderboard.parquet")
    assert board.num_rows == 7
    assert board.column_names[:4] == ["rank", "combo", "fast", "slow"]
    sharpe = board.column("sharpe").to_pylist()
    assert sharpe == sorted(sharpe, reverse=True)
    summary = json.loads((one.out_dir / "sweep.json").read_text())
    assert summary["search"]["constraints"] == ["fast < slow"]
    assert summary["search"]["seed"] == 3
    assert summary["strategy_sha256"] == one.summary["strategy_sha256"]
    assert summary["best"]["params"] == {
        "fast": board.column("fast")[0].as_py(),
        "slow": board.column("slow")[0].as_py(),
    }
    for rank in (1, 2):
        run = one.out_dir / "top" / str(rank)
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["parameters"]["fast"] == board.column("fast")[rank - 1].as_py()
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["sharpe"] == pytest.approx(sharpe[rank - 1], rel=1e-12)
        assert (run / "tearsheet.html").is_file()
    assert not (one.out_dir / "top" / "3").exists()
    html = (one.out_dir / "report.html").read_text()
    assert 'id="qf-sweep-heatmap"' in html
    assert 'href="top/1/tearsheet.html"' in html
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folder left behind


def test_walkforward_folder_records_windows_and_the_stitched_equity(
    spec: BacktestSpec, sweep_store: MarketDataStore, sma_params: dict[str, ParamSpec], tmp_path: Path
) -> None:
    space = parse_space(["fast=5,10", "slow=20,40"], [], sma_params)
    wf = WalkForwardSpec(train="18m", test="6m", anchored=True)
    out = run_sweep(SweepJob(backtest=spec, search=Search(space=space), walkforward=wf), sweep_store, tmp_path / "wf")
    windows = pq.read_table(out.out_dir / "windows.parquet")
    assert windows.num_rows == len(out.walkforward.windows) == 5  # type: ignore[union-attr]
    assert {"in_sample.sharpe", "out_of_sample.sharpe", "fast", "slow"} <= set(windows.column_names)
    board = pq.read_table(out.out_dir / "leaderboard.parquet")
    assert board.column("window").to_pylist() == [i for i in range(5) for _ in range(4)]
    equity = pq.read_table(out.out_dir / "oos_equity.parquet")
    assert equity.num_rows == len(out.walkforward.ts)  # type: ignore[union-attr]
    summary = json.loads((out.out_dir / "sweep.json").read_text())
    assert summary["walkforward"] == {"train": "18m", "test": "6m", "anchored": True}
    assert len(summary["walkforward_result"]["windows"]) == 5
    html = (out.out_dir / "report.html").read_text()
    for chart in ("qf-wf-equity", "qf-wf-metric", "qf-wf-params", "qf-sweep-heatmap"):
        assert f'id="{chart}"' in html


def test_job_checks_and_folder_name(spec: BacktestSpec, sma_params: dict[str, ParamSpec]) -> None:
    space = parse_space(["fast=5,10", "slow=20,40"], [], sma_params)
    with pytest.raises(ConfigError, match="--heatmap 'weight' is not swept; choose two of: fast, slow"):
        SweepJob(backtest=spec, search=Search(space=space), heatmap=("fast", "weight"))
    fixed = spec.model_copy(update={"params": {"fast": 3}})
    with pytest.raises(ConfigError, match="fast is both swept"):
        SweepJob(backtest=fixed, search=Search(space=space))
    name = sweep_dir_name(SweepJob(backtest=spec, search=Search(space=space)))
    assert name.startswith("sma_crossover-")
    assert name == sweep_dir_name(SweepJob(backtest=spec, search=Search(space=space)))
    assert name != sweep_dir_name(SweepJob(backtest=spec, search=Search(space=space, metric="cagr")))
