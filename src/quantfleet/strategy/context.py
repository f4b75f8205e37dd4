"""The context a strategy talks to: a port the backtest engine and live brokers implement.

The same strategy code runs against the simulator and, later, a live broker,
because it sees only this interface.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from quantfleet.core.orders import Order, Position, TimeInForce
from quantfleet.strategy.series import Line

__all__ = ["Bars", "Context", "Portfolio", "RiskRule"]


class Bars(Protocol):
    """The bars of the current timestamp."""

    ts: datetime
    symbols: Sequence[str]

    def open(self, symbol: str) -> float: ...
    def high(self, symbol: str) -> float: ...
    def low(self, symbol: str) -> float: ...
    def close(self, symbol: str) -> float: ...
    def volume(self, symbol: str) -> float: ...


class Portfolio(Protocol):
    """Cash, positions and their value at the current bar's close."""

    @property
    def cash(self) -> float: ...
    @property
    def equity(self) -> float: ...
    @property
    def positions(self) -> Mapping[str, Position]: ...
    @property
    def gross_exposure(self) -> float: ...
    @property
    def net_exposure(self) -> float: ...
    @property
    def leverage(self) -> float: ...


class RiskRule(Protocol):
    """A limit checked before an order is accepted; return a reason to reject it, or None."""

    def check(self, order: Order, *, price: float, portfolio: Portfolio) -> str | None: ...


class Context(Protocol):
    """What a strategy may see and do."""

    universe: tuple[str, ...]
    log: logging.Logger
    random: np.random.Generator
    state: dict[str, Any]  # kept between a deployment's runs (plain JSON values); empty at a backtest's start

    @property
    def time(self) -> datetime: ...
    @property
    def bar_index(self) -> int: ...
    @property
    def portfolio(self) -> Portfolio: ...

    def subscribe(
        self, symbols: Sequence[str] | str, *, frequency: str | None = None, fields: Sequence[str] | None = None
    ) -> None: ...
    def history(self, symbol: str, field: str, n: int) -> np.ndarray: ...
    def indicator(
        self, func: Callable[..., np.ndarray], field: str | Sequence[str] = "close", *args: Any, symbol: str
    ) -> Line: ...
    def position(self, symbol: str) -> float: ...
    def order(
        self,
        symbol: str,
        quantity: float,
        *,
        limit_price: float | None = None,
        stop_price: float | None = None,
        tif: TimeInForce | str = TimeInForce.GTC,
        tag: str = "",
    ) -> Order: ...
    def order_target_quantity(self, symbol: str, quantity: float, **kw: Any) -> Order | None: ...
    def order_target_value(self, symbol: str, value: float, **kw: Any) -> Order | None: ...
    def order_target_percent(self, symbol: str, percent: float, **kw: Any) -> Order | None: ...
    def cancel(self, order: Order) -> None: ...
    def open_orders(self, symbol: str | None = None) -> list[Order]: ...
    def add_risk_rule(self, rule: RiskRule) -> None: ...
