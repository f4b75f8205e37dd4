"""The event-driven backtest engine: feed, simulated broker, portfolio, loop, results."""

from quantfleet.engine.config import (
    BpsCommission,
    EngineConfig,
    FixedBpsSlippage,
    NoCommission,
    NoSlippage,
    PerShareCommission,
    VolumeShareSlippage,
)
from quantfleet.engine.feed import Event, Feed, load_feed
from quantfleet.engine.loop import run_backtest
from quantfleet.engine.results import BacktestResult

__all__ = [
    "BacktestResult",
    "BpsCommission",
    "EngineConfig",
    "Event",
    "Feed",
    "FixedBpsSlippage",
    "NoCommission",
    "NoSlippage",
    "PerShareCommission",
    "VolumeShareSlippage",
    "load_feed",
    "run_backtest",
]
