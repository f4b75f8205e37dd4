"""A vectorized sweep scores each combination as the event engine and a run folder do, in one kernel call each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quantfleet.core.errors import ConfigError
from quantfleet.core.types import Adjustment
from quantfleet.data import MarketDataStore
from quantfleet.engine import EngineConfig
from quantfleet.sandbox import BacktestSpec, run_spec
from quantfleet.strategy.indicators import ema, indicator_cache
from quantfleet.strategy.loader import load_strategy
from quantfleet.sweep import Search, SweepJob, parse_space, run_sweep
from quantfleet.sweep.evaluator import VECTOR_KEYS, EventEvaluator, VectorizedEvaluator

ROOT = Path(__file__).resolve().parents[3]
TWIN = ROOT / "examples" / "sma_crossover_signals.py"
MOMENTUM = ROOT / "examples" / "momentum_signals.py"


def twin_spec(strategy: Path = TWIN, **kw: object) -> BacktestSpec:
    base: dict[str, object] = dict(
        strategy=strategy,
        symbols=("AAA", "BBB"),
        start="2019-06-03",
        end="2022-12-30",
        snapshot=0,
        engine=EngineConfig(warmup=60, adjustment=Adjustment.ALL, commission={"kind": "bps", "bps": 2.0}),
    )
    base.update(kw)
    return BacktestSpec(**base)  # type: ignore[arg-type]


COMBOS = [{"fast": f, "slow": s} for f in (3, 5, 12) for s in (20, 30, 45)]


def test_chunk_metrics_equal_the_event_engines(sweep_store: MarketDataStore) -> None:
    fast = VectorizedEvaluator(twin_spec(simulator="vectorized"), sweep_store).evaluate_chunk(COMBOS)
    event = EventEvaluator(twin_spec(), sweep_store).evaluate_chunk(COMBOS)
    assert any(m["trades"] for m in fast)
    for combo, a, b in zip(COMBOS, fast, event, strict=True):
        for key in VECTOR_KEYS:
            if b[key] is None:
                assert a[key] is None, (combo, key)
            else:
                assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), (combo, key)


def test_cross_sectional_chunks_agree_too(sweep_store: MarketDataStore) -> None:
    combos = [{"lookback": k, "top": 1} for k in (10, 40)]
    spec = twin_spec(MOMENTUM, start="2019-09-03")
    fast = VectorizedEvaluator(spec.model_copy(update={"simulator": "vectorized"}), sweep_store).evaluate_chunk(combos)
    event = EventEvaluator(spec, sweep_store).evaluate_chunk(combos)
    for a, b in zip(fast, event, strict=True):
        assert a["final_equity"] == pytest.approx(b["final_equity"], rel=1e-9)
        assert a["trades"] == b["trades"]


def test_leaderboard_rows_equal_run_folders(sweep_store: MarketDataStore, tmp_path: Path) -> None:
    spec = twin_spec(simulator="vectorized")
    space = parse_space(["fast=4:10:3", "slow=25,40"], [], load_strategy(TWIN).parameters)
    out = run_sweep(SweepJob(backtest=spec, search=Search(space=space), top=1), sweep_store, tmp_path / "s", workers=2)
    board = out.leaderboard
    assert len(board) == 6
    best = board.best
    alone = run_spec(spec.model_copy(update={"params": best.params}), sweep_store, tmp_path / "alone")
    for key in VECTOR_KEYS:
        assert best.metrics[key] == pytest.approx(alone.metrics[key], rel=1e-9), key
    top = (out.out_dir / "top" / "1" / "equity.parquet").read_bytes()
    assert top == (alone.run_dir / "equity.parquet").read_bytes()


def test_unsupported_settings_name_the_fix(sweep_store: MarketDataStore) -> None:
    with pytest.raises(ConfigError, match="--engine event"):
        VectorizedEvaluator(twin_spec(ROOT / "examples" / "sma_crossover.py", simulator="vectorized"), sweep_store)
    volume = twin_spec(engine=EngineConfig(volume_limit=0.1, adjustment=Adjustment.ALL), simulator="vectorized")
    with pytest.raises(Exception, match="--volume-limit"):
        VectorizedEvaluator(volume, sweep_store)


def test_indicator_cache_reuses_results_read_only_or_as_copies() -> None:
    close = np.arange(50, dtype=np.float64)
    with indicator_cache() as cache:
        a = ema(close, 5)
        with pytest.raises(ValueError, match="read-only"):
            a[:] = -1.0  # a strategy scribbling on its result cannot reach the next combination's
        with pytest.raises(ValueError, match="WRITEABLE"):
            a.flags.writeable = True
        assert ema(close, 5) is not a
        cache.copies = True
        b = ema(close, 5)
        b[:] = -1.0  # a copy: harmless
        c = ema(close, 5)
        other = ema(close + 1.0, 5)  # another array: never confused with close
    np.testing.assert_allclose(c[4:], np.arange(2, 48))
    np.testing.assert_allclose(other[4:], np.arange(3, 49))


SCRIBBLER = """
import numpy as np
from quantfleet.strategy import crossover, ema, hold


def signals(close, fast: int = 10, slow: int = 30):
    a = ema(close, fast)
    a[np.isnan(a)] = 0.0  # writes into its indicator (writeable in a backtest, read-only from the sweep's cache)
    cross = crossover(a, ema(close, slow))
    return hold(cross > 0, cross < 0)
"""


def test_a_strategy_that_writes_into_its_indicators_sweeps_as_it_backtests(
    sweep_store: MarketDataStore, tmp_path: Path
) -> None:
    path = tmp_path / "scribbler.py"
    path.write_text(SCRIBBLER)
    spec = twin_spec(path, symbols=("AAA",))
    fast = VectorizedEvaluator(spec.model_copy(update={"simulator": "vectorized"}), sweep_store)
    got = fast.evaluate_chunk(COMBOS)
    assert fast._cache().copies  # it met the write and switched to copies
    event = EventEvaluator(spec, sweep_store).evaluate_chunk(COMBOS)
    assert any(m["trades"] for m in got)
    for combo, a, b in zip(COMBOS, got, event, strict=True):
        assert a["final_equity"] == pytest.approx(b["final_equity"], rel=1e-9), combo
        assert a["trades"] == b["trades"], combo
