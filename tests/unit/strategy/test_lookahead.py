"""No public route shows a strategy a bar after the current one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from quantfleet.core.errors import UserError
from quantfleet.engine import EngineConfig, run_backtest
from quantfleet.strategy import Strategy, sma
from quantfleet.testing import make_feed

ROWS = [(float(p), p + 1.0, p - 1.0, float(p), 100.0) for p in range(10, 40)]


class Spy(Strategy):
    """Record the latest time and the largest close reachable through every public route."""

    def initialize(self, ctx: Any) -> None:
        self.line = ctx.indicator(sma, "close", 3, symbol="X")
        self.seen: list[tuple[int, float]] = []

    def on_bar(self, ctx: Any, bars: Any) -> None:
        i = ctx.bar_index
        now = bars.close("X")
        reachable = [
            bars.close("X"),
            bars.high("X") - 1.0,
            bars.open("X"),
            float(ctx.history("X", "close", 10**9).max()),
            float(np.nanmax(self.line.last(10**9))) if i >= 2 else now,
            max(self.line[k] for k in range(-len(self.line), 0) if not np.isnan(self.line[k])) if i >= 2 else now,
            float(ctx.portfolio.prices().max()),
        ]
        self.seen.append((i, max(reachable)))
        assert len(ctx.history("X", "close", 10**9)) == i + 1
        assert len(self.line) == i + 1
        with pytest.raises(IndexError):
            _ = self.line[i + 1]
        with pytest.raises(TypeError, match="read-only"):
            self.line[-1] = 0.0
        with pytest.raises(TypeError, match="read-only"):
            self.line.append(1e9)
        with pytest.raises(ValueError, match="read-only"):
            ctx.history("X", "close", 5)[-1] = 0.0


def test_no_route_reaches_a_later_bar() -> None:
    spy = Spy()
    run_backtest(spy, make_feed(ROWS), EngineConfig())
    # Prices rise every bar, so any look-ahead would show a close above the current one.
    assert [seen for _, seen in spy.seen] == [float(p) for p in range(10, 40)]


def test_an_indicator_that_looks_ahead_is_refused() -> None:
    class Peek(Strategy):
        def initialize(self, ctx: Any) -> None:
            ctx.indicator(lambda c: np.roll(c, -1), "close", symbol="X")

        def on_bar(self, ctx: Any, bars: Any) -> None:
            pass

    with pytest.raises(UserError, match="looks ahead"):
        run_backtest(Peek(), make_feed(ROWS), EngineConfig())


def test_a_lagged_indicator_is_fine() -> None:
    class Lag(Strategy):
        def initialize(self, ctx: Any) -> None:
            self.prev = ctx.indicator(lambda c: np.r_[np.nan, c[:-1]], "close", symbol="X")
            self.values: list[float] = []

        def on_bar(self, ctx: Any, bars: Any) -> None:
            self.values.append(self.prev[-1])

    lag = Lag()
    run_backtest(lag, make_feed(ROWS), EngineConfig())
    assert lag.values[1:] == [float(p) for p in range(10, 39)]
