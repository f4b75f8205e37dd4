"""Searches: the grid, seeded random draws and Optuna's TPE; the leaderboard agrees with single runs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from quantfleet.core.errors import ConfigError
from quantfleet.data import MarketDataStore
from quantfleet.sandbox import BacktestSpec, run_spec
from quantfleet.strategy.params import ParamSpec
from quantfleet.sweep import EventEvaluator, EventTarget, LocalPool, Method, Search, StoreRef, parse_space, run_search
from quantfleet.sweep.search import Entry, Leaderboard


def _pool(spec: BacktestSpec, store: MarketDataStore, workers: int = 1) -> LocalPool:
    return LocalPool(EventTarget(spec, StoreRef.of(store)), workers=workers, evaluator=EventEvaluator(spec, store))


def test_grid_leaderboard_is_sorted_and_agrees_with_run_spec(
    spec: BacktestSpec, sweep_store: MarketDataStore, sma_params: dict[str, ParamSpec], tmp_path: Path
) -> None:
    space = parse_space(["fast=5:15:5", "slow=20:40:20"], ["fast < slow"], sma_params)
    seen: list[tuple[int, int]] = []
    with _pool(spec, sweep_store) as pool:
        board = run_search(Search(space=space, metric="sharpe"), pool, progress=lambda d, t: seen.append((d, t)))
    assert len(board) == 6
    assert seen[-1] == (6, 6)
    values = [e.metrics["sharpe"] for e in board.entries]
    assert values == sorted(values, reverse=True)  # type: ignore[type-var]
    assert board.to_arrow().column("rank").to_pylist() == [1, 2, 3, 4, 5, 6]
    for entry in board.entries[:2]:
        alone = run_spec(spec.model_copy(update={"params": entry.params}), sweep_store, tmp_path / str(entry.index))
        shared = [k for k, v in entry.metrics.items() if isinstance(alone.metrics.get(k), int | float)]
        assert {"sharpe", "total_return", "max_drawdown", "cagr", "trades", "final_equity"} <= set(shared)
        for key in shared:
            assert entry.metrics[key] == pytest.approx(alone.metrics[key], rel=1e-12, abs=1e-12), key
        assert all(entry.metrics[k] is None for k, v in alone.metrics.items() if v is None and k in entry.metrics)


def test_leaderboard_puts_undefined_last_and_breaks_ties_by_combo() -> None:
    results = {
        0: Entry(0, {"fast": 1}, {"sharpe": None}),
        1: Entry(1, {"fast": 2}, {"sharpe": 0.5}),
        2: Entry(2, {"fast": 3}, {"sharpe": 1.5}),
        3: Entry(3, {"fast": 4}, {"sharpe": 0.5}),
        4: Entry(4, {"fast": 5}, {"sharpe": math.nan}),
    }
    assert [e.index for e in Leaderboard.build(("fast",), "sharpe", results).entries] == [2, 1, 3, 0, 4]
    assert [e.index for e in Leaderboard.build(("fast",), "sharpe", results, minimize=True).entries] == [1, 3, 2, 0, 4]
    with pytest.raises(ConfigError, match="no combination has a defined sharpe"):
        _ = Leaderboard.build(("fast",), "sharpe", {0: results[0]}).best


def test_unknown_metric_lists_the_valid_ones(
    spec: BacktestSpec, sweep_store: MarketDataStore, sma_params: dict[str, ParamSpec]
) -> None:
    space = parse_space(["fast=5,10"], [], sma_params)
    with _pool(spec, sweep_store) as pool, pytest.raises(ConfigError) as info:
        run_search(Search(space=space, metric="sharp"), pool)
    assert "--metric 'sharp' is not a metric of a run; choose one of:" in str(info.value)
    assert "sharpe" in str(info.value)
    assert "alpha" not in str(info.value)  # sweeps run without a benchmark


def test_random_and_optimizer_respect_constraints_and_their_seed(
    spec: BacktestSpec, sweep_store: MarketDataStore, sma_params: dict[str, ParamSpec]
) -> None:
    space = parse_space(["fast=2:40:2", "slow=10:60:10", "weight=0.5:1:0.25"], ["fast * 2 <= slow"], sma_params)
    boards = {}
    with _pool(spec, sweep_store) as pool:
        for method, seed in ((Method.RANDOM, 1), (Method.RANDOM, 1), (Method.OPTIMIZE, 3), (Method.OPTIMIZE, 3)):
            search = Search(space=space, method=method, trials=12, seed=seed, batch=4)
            boards.setdefault(method, []).append(run_search(search, pool))
    for runs in boards.values():
        first, again = runs
        assert [(e.index, e.params, e.metrics) for e in first.entries] == [
            (e.index, e.params, e.metrics) for e in again.entries
        ]
        assert all(space.allows(e.params) for e in first.entries)
        assert all(v in ax.values for e in first.entries for ax, v in zip(space.axes, e.params.values(), strict=True))
    assert len(boards[Method.RANDOM][0]) == 12
    assert 1 <= len(boards[Method.OPTIMIZE][0]) <= 12  # TPE may propose a combination twice: evaluated once


def test_a_process_pool_ranks_exactly_as_one_worker(
    spec: BacktestSpec, sweep_store: MarketDataStore, sma_params: dict[str, ParamSpec]
) -> None:
    space = parse_space(["fast=5:20:5", "slow=20:40:10"], ["fast < slow"], sma_params)
    boards = []
    for workers in (1, 2):
        with LocalPool(EventTarget(spec, StoreRef.of(sweep_store)), workers=workers, chunk=2) as pool:
            search = Search(space=space, method=Method.OPTIMIZE, trials=8, seed=5, batch=4)
            boards.append((run_search(Search(space=space), pool).to_arrow(), run_search(search, pool).to_arrow()))
    assert boards[0][0].equals(boards[1][0])
    assert boards[0][1].equals(boards[1][1])


def test_search_needs_a_budget(sma_params: dict[str, ParamSpec]) -> None:
    space = parse_space(["fast=5,10"], [], sma_params)
    with pytest.raises(ConfigError, match=r"give a positive number of trials, e\.g\. --random 100"):
        Search(space=space, method=Method.RANDOM)
