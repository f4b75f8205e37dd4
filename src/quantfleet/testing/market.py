"""A market built by hand and a strategy that does what it is told, for tests computed by hand."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from quantfleet.core.orders import Fill
from quantfleet.core.types import US_PER_DAY
from quantfleet.engine.feed import Event, Feed
from quantfleet.strategy import Strategy

__all__ = ["DAY_US", "ScriptedStrategy", "make_feed"]

DAY_US = US_PER_DAY
_FIRST_DAY = 19_723  # 2024-01-01


def make_feed(
    bars: Sequence[tuple[float, float, float, float, float]],
    symbols: Sequence[str] = ("X",),
    *,
    events: Mapping[int, tuple[Event, ...]] | None = None,
    first_day: int = _FIRST_DAY,
) -> Feed:
    """Return a daily feed from (open, high, low, close, volume) rows, the same for every symbol."""
    arr = np.array(bars, dtype=float)
    ts = (np.arange(len(bars), dtype=np.int64) + first_day) * DAY_US
    names = ("open", "high", "low", "close", "volume")
    fields = {name: np.repeat(arr[:, k : k + 1], len(symbols), axis=1) for k, name in enumerate(names)}
    return Feed.from_arrays(tuple(symbols), ts, fields, events=events)


class ScriptedStrategy(Strategy):
    """Run ``actions[bar_index](ctx)`` on the bars named; remember every fill."""

    def __init__(self, actions: Mapping[int, Callable[[Any], Any]]) -> None:
        super().__init__()
        self.actions = dict(actions)
        self.fills: list[Fill] = []

    def on_bar(self, ctx: Any, bars: Any) -> None:
        action = self.actions.get(ctx.bar_index)
        if action is not None:
            action(ctx)

    def on_fill(self, ctx: Any, fill: Fill) -> None:
        self.fills.append(fill)
