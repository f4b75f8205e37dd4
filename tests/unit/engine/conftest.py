"""A hand-made five-bar market and a runner for scripted strategies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from quantfleet.engine import EngineConfig, Feed, run_backtest
from quantfleet.engine.results import BacktestResult
from quantfleet.testing import ScriptedStrategy, make_feed

#            open  high   low  close  volume
BARS = [
    (10.0, 11.0, 9.0, 10.5, 1000.0),
    (10.6, 12.0, 10.2, 11.8, 1000.0),
    (11.0, 11.5, 9.5, 10.0, 500.0),
    (8.0, 9.0, 7.5, 8.8, 2000.0),  # gaps down
    (9.0, 10.0, 8.5, 9.5, 1000.0),
]

Run = Callable[..., BacktestResult]


@pytest.fixture
def bars() -> list[tuple[float, float, float, float, float]]:
    return list(BARS)


@pytest.fixture
def run() -> Run:
    def _run(actions: dict[int, Callable[[Any], Any]], feed: Feed | None = None, **cfg: Any) -> BacktestResult:
        return run_backtest(ScriptedStrategy(actions), feed or make_feed(BARS), EngineConfig(**cfg))

    return _run
