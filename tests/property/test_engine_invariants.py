"""Invariants of the books under random markets and random orders (Hypothesis)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantfleet.core.types import US_PER_DAY
from quantfleet.engine import EngineConfig, PerShareCommission, run_backtest
from quantfleet.testing import ScriptedStrategy, make_feed


@st.composite
def markets(draw: Any) -> list[tuple[float, float, float, float, float]]:
    n = draw(st.integers(5, 40))
    closes = draw(st.lists(st.floats(5.0, 200.0), min_size=n, max_size=n))
    rows = []
    prev = closes[0]
    for c in closes:
        o = prev
        hi = max(o, c) * (1 + draw(st.floats(0.0, 0.05)))
        lo = min(o, c) * (1 - draw(st.floats(0.0, 0.05)))
        rows.append((o, hi, lo, c, draw(st.floats(100.0, 10_000.0))))
        prev = c
    return rows


orders = st.lists(
    st.tuples(
        st.integers(0, 39),
        st.sampled_from(["market", "limit", "stop", "target"]),
        st.integers(-50, 50),
        st.floats(0.8, 1.2),
    ),
    max_size=15,
)


def place(ctx: Any, kind: str, qty: int, factor: float) -> None:
    close = ctx.portfolio.prices()[0]
    if kind == "target":
        ctx.order_target_percent("X", qty / 50)
    elif qty == 0:
        return
    elif kind == "market":
        ctx.order("X", qty)
    elif kind == "limit":
        ctx.order("X", qty, limit_price=close * factor)
    else:
        ctx.order("X", qty, stop_price=close * factor)


@settings(max_examples=40, deadline=None)
@given(market=markets(), plan=orders, volume_limit=st.sampled_from([None, 0.05]))
def test_cash_plus_positions_is_equity_and_fills_stay_in_the_bar(
    market: list[tuple[float, float, float, float, float]],
    plan: list[tuple[int, str, int, float]],
    volume_limit: float | None,
) -> None:
    actions: dict[int, Any] = {}
    for bar, kind, qty, factor in plan:
        previous = actions.get(bar)

        def act(ctx: Any, previous: Any = previous, kind: str = kind, qty: int = qty, factor: float = factor) -> None:
            if previous:
                previous(ctx)
            place(ctx, kind, qty, factor)

        actions[bar] = act
    feed = make_feed(market)
    cfg = EngineConfig(cash=10_000.0, commission=PerShareCommission(rate=0.01, minimum=1.0), volume_limit=volume_limit)
    result = run_backtest(ScriptedStrategy(actions), feed, cfg)

    closes = np.array([row[3] for row in market])
    np.testing.assert_allclose(result.equity, result.cash + result.quantity[:, 0] * closes, rtol=1e-12)
    lows = {int(t // US_PER_DAY): row[2] for t, row in zip(feed.ts, market, strict=True)}
    highs = {int(t // US_PER_DAY): row[1] for t, row in zip(feed.ts, market, strict=True)}
    for fill in result.fills:
        day = fill.time_us // US_PER_DAY
        assert lows[day] - 1e-9 <= fill.price <= highs[day] + 1e-9
        if volume_limit is not None:
            assert abs(fill.quantity) <= volume_limit * market[list(lows).index(day)][4] + 1e-9
    # Every share bought or sold is in the final position, and no order fills beyond its quantity.
    assert sum(f.quantity for f in result.fills) == result.quantity[-1, 0]
    for order in result.orders:
        assert abs(order.filled_quantity) <= abs(order.quantity) + 1e-9
    # Leverage is checked when an order fills (prices may move it later: there are no margin calls): the books
    # right after each fill, in the order the broker made them (two fills of one bar each see their own books).
    cash, held = cfg.cash, 0.0
    for fill in result.fills:
        before = held
        cash -= fill.quantity * fill.price + fill.commission
        held += fill.quantity
        equity_then = cash + held * fill.price
        assert abs(held) * fill.price <= max(equity_then, 0) * (1 + 1e-9) + 1e-6 or abs(held) < abs(before)
    assert cash == pytest.approx(result.cash[-1], rel=1e-12, abs=1e-9)  # the replay is the engine's books
