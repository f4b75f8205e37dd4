"""The strategy API: what a researcher's file imports and implements."""

from quantfleet.strategy.base import Strategy
from quantfleet.strategy.context import Bars, Context, Portfolio, RiskRule
from quantfleet.strategy.indicators import crossover, ema, rolling_std, rsi, sma
from quantfleet.strategy.series import Line
from quantfleet.strategy.signals import hold
from quantfleet.strategy.sizing import EqualWeight, FixedFraction, FixedQuantity, MaxLeverage, MaxPosition

__all__ = [
    "Bars",
    "Context",
    "EqualWeight",
    "FixedFraction",
    "FixedQuantity",
    "Line",
    "MaxLeverage",
    "MaxPosition",
    "Portfolio",
    "RiskRule",
    "Strategy",
    "crossover",
    "ema",
    "hold",
    "rolling_std",
    "rsi",
    "sma",
]
