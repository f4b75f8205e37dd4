"""Walk-forward windows tile the range; the winner is chosen in-sample only; out-of-sample runs stitch."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from quantfleet.core.errors import ConfigError
from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars
from quantfleet.sandbox import BacktestSpec
from quantfleet.strategy.params import ParamSpec
from quantfleet.sweep import EventEvaluator, EventTarget, LocalPool, Search, StoreRef, parse_space, run_walkforward
from quantfleet.sweep.walkforward import make_windows, parse_period, stitch

US = 1_000


def _ts(*days: str) -> np.ndarray:
    return np.array([pd.Timestamp(d).value // US for d in days], dtype=np.int64)


def _daily(start: str, end: str) -> np.ndarray:
    return np.asarray(pd.bdate_range(start, end).as_unit("us").asi8, dtype=np.int64)


def _at(text: str) -> int:
    return int(pd.Timestamp(text).value // US)


def test_rolling_windows_tile_the_range() -> None:
    ts = _daily("2019-01-02", "2021-12-31")
    windows = make_windows(ts, train=parse_period("1y"), test=parse_period("6m"))
    starts = ["2019-01-02", "2019-07-02", "2020-01-02", "2020-07-02"]
    assert [w.train_start for w in windows] == [_at(s) for s in starts]
    assert [w.train_end for w in windows] == [_at(s) for s in ("2020-01-02", "2020-07-02", "2021-01-02", "2021-07-02")]
    assert [w.test_end for w in windows[:-1]] == [w.test_start for w in windows[1:]]  # no gap, no overlap
    assert windows[-1].test_end == int(ts[-1]) + 1  # the last test window ends at the last bar


def test_anchored_windows_grow_from_the_start() -> None:
    ts = _daily("2019-01-02", "2021-12-31")
    windows = make_windows(ts, train=parse_period("1y"), test=parse_period("6m"), anchored=True)
    assert {w.train_start for w in windows} == {_at("2019-01-02")}
    assert [w.train_end for w in windows] == [_at(s) for s in ("2020-01-02", "2020-07-02", "2021-01-02", "2021-07-02")]


def test_windows_that_do_not_fit_and_bad_periods_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="do not fit one training window plus one test window; shorten --train"):
        make_windows(_daily("2020-01-01", "2020-06-30"), train=parse_period("1y"), test=parse_period("3m"))
    for bad in ("2", "y2", "0m", "6 months", ""):
        with pytest.raises(ConfigError, match="2y, 6m, 4w, 90d"):
            parse_period(bad)
    assert parse_period(" 90D ") == pd.DateOffset(days=90)


def test_stitching_chains_returns_without_overlap() -> None:
    ts, eq = stitch([(_ts("2020-01-01", "2020-01-02"), np.array([100.0, 110.0])), (_ts("2020-01-03"), np.array([5.0]))])
    assert ts.tolist() == _ts("2020-01-01", "2020-01-02", "2020-01-03").tolist()
    assert eq.tolist() == [100.0, 110.0, 110.0]
    _, eq = stitch([(_ts("2020-01-01"), np.array([100.0])), (_ts("2020-01-02", "2020-01-03"), np.array([50.0, 75.0]))])
    assert eq.tolist() == [100.0, 100.0, 150.0]


def _perturbed_store(root: str, after: str) -> MarketDataStore:
    """Return a store whose bars from ``after`` on are scaled by a wave: the same past, another future."""
    data = synthetic_bars(["AAA", "BBB"], start=date(2019, 1, 1), end=date(2022, 12, 31), actions=False)
    table = data.bars
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    wave = np.where(ts >= _at(after), 1.0 + 0.25 * np.sin(np.arange(len(ts)) / 7.0), 1.0)
    for name in ("open", "high", "low", "close"):
        i = table.column_names.index(name)
        scaled = pa.array(table.column(name).to_numpy() * wave, table.schema.field(name).type)
        table = table.set_column(i, table.schema.field(name), scaled)
    store = MarketDataStore(root)
    store.ingest_bars([table], frequency="1d", source="test")
    return store


def test_the_future_never_chooses_the_parameters(
    spec: BacktestSpec, sweep_store: MarketDataStore, sma_params: dict[str, ParamSpec], tmp_path: object
) -> None:
    cut = "2021-06-01"
    other = _perturbed_store(str(tmp_path) + "/perturbed", cut)
    space = parse_space(["fast=5:15:5", "slow=20:40:20"], ["fast < slow"], sma_params)
    walks = []
    for store in (sweep_store, other):
        with LocalPool(EventTarget(spec, StoreRef.of(store)), workers=1, evaluator=EventEvaluator(spec, store)) as pool:
            walks.append(run_walkforward(Search(space=space), pool, train="1y", test="6m"))
    base, moved = walks
    assert len(base.windows) == len(moved.windows) == 6
    before = [i for i, w in enumerate(base.windows) if w.window.train_end <= _at(cut)]
    assert before == [0, 1, 2]
    for i in before:  # trained on identical bars: identical winner and in-sample metrics
        assert base.windows[i].params == moved.windows[i].params
        assert base.windows[i].in_sample == moved.windows[i].in_sample
        assert base.boards[i].to_arrow().equals(moved.boards[i].to_arrow())
    assert base.windows[0].out_of_sample == moved.windows[0].out_of_sample  # tested before the cut too
    assert base.windows[2].out_of_sample != moved.windows[2].out_of_sample  # its test window holds the change
    # Out-of-sample segments: inside their test windows, in order, starting from the starting cash.
    ts = base.ts
    assert np.all(np.diff(ts) > 0)
    assert ts[0] >= base.windows[0].window.test_start
    assert ts[-1] < base.windows[-1].window.test_end
    for w in base.windows:
        inside = ts[(ts >= w.window.test_start) & (ts < w.window.test_end)]
        assert len(inside) > 0
    assert base.equity[0] == spec.engine.cash
    assert base.out_of_sample["final_equity"] == pytest.approx(base.equity[-1])
