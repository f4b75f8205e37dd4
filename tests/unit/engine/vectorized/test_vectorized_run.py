"""The vectorized engine: the event engine's result on signals() strategies, or a refusal that names the fix."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from quantfleet.core.errors import UserError
from quantfleet.engine import (
    BpsCommission,
    EngineConfig,
    Event,
    Feed,
    FixedBpsSlippage,
    PerShareCommission,
    VolumeShareSlippage,
    run_backtest,
)
from quantfleet.engine.results import BacktestResult
from quantfleet.engine.vectorized import prepare_market, run_vectorized, signal_orders, simulate, spec_of
from quantfleet.strategy.loader import StrategyError, _SignalsStrategy
from quantfleet.testing import make_feed

EXAMPLES = Path(__file__).resolve().parents[4] / "examples"


def market(n: int = 120, m: int = 3, seed: int = 0, gaps: float = 0.0) -> Feed:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.03, (n, m)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.01, (n, m)))
    fields = {
        "open": open_,
        "high": np.maximum(open_, close) * 1.01,
        "low": np.minimum(open_, close) * 0.99,
        "close": close,
        "volume": rng.uniform(500, 5000, (n, m)),
    }
    if gaps:
        missing = rng.random((n, m)) < gaps
        for v in fields.values():
            v[missing] = np.nan
    ts = (np.arange(n, dtype=np.int64) + 18_000) * 86_400_000_000
    return Feed.from_arrays([f"S{j}" for j in range(m)], ts, fields)


def event_run(func: Any, feed: Feed, cfg: EngineConfig, params: dict[str, Any] | None = None) -> BacktestResult:
    return run_backtest(_SignalsStrategy(func, dict(params or {})), feed, cfg)


def assert_same(a: BacktestResult, b: BacktestResult) -> None:
    np.testing.assert_allclose(a.equity, b.equity, rtol=1e-9)
    np.testing.assert_allclose(a.cash, b.cash, rtol=1e-9, atol=1e-6)
    np.testing.assert_array_equal(a.quantity, b.quantity)
    for table in ("fills_table", "orders_table", "trades_table", "equity_table", "positions_table"):
        pd.testing.assert_frame_equal(getattr(a, table)().to_pandas(), getattr(b, table)().to_pandas(), rtol=1e-9)
    assert a.commission == pytest.approx(b.commission, rel=1e-9)
    assert a.slippage == pytest.approx(b.slippage, rel=1e-9)


def flip(close: np.ndarray, every: int = 7) -> np.ndarray:
    """Long, flat, short, half long... on a fixed rhythm: trades often, crosses zero, borrows."""
    phase = (np.arange(len(close)) // every) % 4
    return np.choose(phase, [1.0, 0.0, -1.0, 0.5])


CONFIGS = [
    EngineConfig(),
    EngineConfig(cash=10_000, commission=PerShareCommission(rate=0.01, minimum=1.0), slippage=FixedBpsSlippage(bps=5)),
    EngineConfig(commission=BpsCommission(bps=3), slippage=VolumeShareSlippage(impact=0.2), fractional=True),
    EngineConfig(allow_short=False, max_leverage=2.0),
    EngineConfig(cash=3_000, max_leverage=1.5, commission=PerShareCommission()),
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_position_signals_give_the_event_engines_result(cfg: EngineConfig) -> None:
    feed = market()
    assert_same(run_vectorized(flip, feed, cfg), event_run(flip, feed, cfg))


def test_missing_bars_wait_for_the_next_bar_and_positions_are_marked_at_the_last_close() -> None:
    feed = market(gaps=0.15, seed=3)
    cfg = EngineConfig(commission=PerShareCommission())
    assert_same(run_vectorized(flip, feed, cfg), event_run(flip, feed, cfg))


def test_a_target_order_cash_cannot_cover_keeps_filling_on_later_bars() -> None:
    # Y's buy finds the cash X took and fills in part; once X is sold, Y's open order buys the rest.
    x = np.array([10.0, 10.0, 9.0, 8.0, 7.0, 6.0])
    y = np.full(6, 10.0)
    fields = {k: np.c_[x, y] for k in ("open", "high", "low", "close")} | {"volume": np.full((6, 2), 1e6)}
    feed = Feed.from_arrays(("X", "Y"), (np.arange(6) + 18_000) * 86_400_000_000, fields)

    table = np.full((6, 2), np.nan)
    table[0] = 0.75  # together more than the cash
    table[2, 0] = 0.0
    func = weights_of(table)
    cfg = EngineConfig(cash=1_000)
    ours, theirs = run_vectorized(func, feed, cfg), event_run(func, feed, cfg)
    assert_same(ours, theirs)
    y_fills = [f for f in ours.fills if f.symbol == "Y"]
    assert len(y_fills) == 2
    assert len({f.order_id for f in y_fills}) == 1
    assert ours.orders[1].status.value == "filled"


def test_fill_at_close_warns_and_agrees() -> None:
    feed = market(seed=5)
    cfg = EngineConfig(fill_at="close", commission=BpsCommission(bps=2))
    with pytest.warns(UserWarning, match="fill_at='close'"):
        ours = run_vectorized(flip, feed, cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        theirs = event_run(flip, feed, cfg)
    assert_same(ours, theirs)


def test_warmup_bars_are_seen_but_not_traded() -> None:
    feed = market(seed=2)
    cfg = EngineConfig(warmup=15)
    ours = run_vectorized(flip, feed, cfg)
    assert len(ours.equity) == feed.n_bars - 15
    assert_same(ours, run_backtest(_SignalsStrategy(flip, {}), feed, cfg))


def weights_of(table: np.ndarray) -> Any:
    def signals(close: np.ndarray) -> np.ndarray:
        return table[: len(close)]

    signals.cross_sectional = True  # type: ignore[attr-defined]
    return signals


def test_cross_sectional_weights_place_zero_targets_first_on_both_engines() -> None:
    feed = market(n=60, m=3, seed=9)
    rng = np.random.default_rng(1)
    table = rng.choice([np.nan, 0.0, 0.3, 0.6, -0.4], size=(60, 3), p=[0.4, 0.3, 0.1, 0.1, 0.1])
    func = weights_of(table)
    for cfg in (EngineConfig(), EngineConfig(fractional=True, allow_short=False, commission=BpsCommission())):
        assert_same(run_vectorized(func, feed, cfg), event_run(func, feed, cfg))


def test_momentum_twin_matches_the_run_style_example_and_its_own_event_run() -> None:
    from quantfleet.strategy.loader import load_strategy

    feed = market(n=90, m=4, seed=11)
    cfg = EngineConfig(commission=PerShareCommission(), warmup=20)
    params = {"lookback": 20, "top": 2, "invested": 0.9}
    twin = load_strategy(EXAMPLES / "momentum_signals.py")
    ours = run_vectorized(twin.target, feed, cfg, params=params)
    assert_same(ours, run_backtest(twin.instantiate(params), feed, cfg))
    original = run_backtest(load_strategy(EXAMPLES / "momentum.py").instantiate(params), feed, cfg)
    assert_same(ours, original)


def test_the_kernel_reruns_with_room_when_fills_outnumber_its_guess() -> None:
    feed = market(n=40, m=2, seed=4)
    orders = np.full((40, 2), np.nan)
    orders[1] = 5.0  # far beyond the cash: fills a little on every bar
    _, fills, _, n_fill, n_order = simulate(prepare_market(feed), orders, 0, spec_of(EngineConfig(max_leverage=1.0)))
    assert (n_order == 2 and n_fill > 2 * n_order + 16) or n_fill <= len(fills.order)
    assert n_fill <= len(fills.order)


def test_volume_limits_and_booked_corporate_actions_are_refused_with_the_fix() -> None:
    feed = market()
    with pytest.raises(UserError, match="--engine event"):
        run_vectorized(flip, feed, EngineConfig(volume_limit=0.1))
    rows = [(10.0, 10.0, 10.0, 10.0, 1e3)] * 5
    split = make_feed(rows, events={2: (Event(0, "split", 2.0),)})
    with pytest.raises(UserError, match="--adjustment all"):
        run_vectorized(flip, split, EngineConfig())


def test_look_ahead_and_bad_shapes_are_refused() -> None:
    feed = market(n=50)

    def peeks(close: np.ndarray) -> np.ndarray:
        return np.roll(close, -1) > close

    with pytest.raises(UserError, match="looks ahead"):
        run_vectorized(peeks, feed)

    def short(close: np.ndarray) -> np.ndarray:
        return close[:-1] > 0

    with pytest.raises(UserError, match="shape"):
        run_vectorized(short, feed)

    def fails(close: np.ndarray) -> np.ndarray:
        raise ZeroDivisionError("oops")

    with pytest.raises(StrategyError, match="ZeroDivisionError: oops"):
        run_vectorized(fails, feed)


def test_position_orders_trade_only_on_changes_from_the_first_traded_bar() -> None:
    feed = market(n=10, m=1)

    def steps(close: np.ndarray) -> np.ndarray:
        return np.array([1, 1, 0, 0, 1, 1, 1, -1, -1, 0], dtype=float)[: len(close)]

    orders = signal_orders(steps, feed, first=1)[:, 0]
    expected = [np.nan, 1, 0, np.nan, 1, np.nan, np.nan, -1, np.nan, 0]
    np.testing.assert_array_equal(orders, expected)
