"""Orders, fills and positions: the values the strategy, the engine and brokers exchange.

Quantities are signed: positive buys, negative sells. A rejected order is a
result (``status == REJECTED`` with a ``reason``), not an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import NamedTuple

__all__ = ["Fill", "Order", "OrderStatus", "OrderType", "Position", "Target", "TimeInForce"]


class OrderType(StrEnum):
    """How an order's price is set."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(StrEnum):
    """How long an unfilled order stays open: until the session ends, or until cancelled."""

    DAY = "day"
    GTC = "gtc"


class OrderStatus(StrEnum):
    """Where an order is in its life."""

    OPEN = "open"
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def is_done(self) -> bool:
        """Return whether the order can no longer fill."""
        return self is not OrderStatus.OPEN


class Target(StrEnum):
    """What an order's size aims at; resolved to a quantity when it fills."""

    QUANTITY = "quantity"
    VALUE = "value"
    PERCENT = "percent"


@dataclass(slots=True, eq=False)
class Order:
    """An order and its state. ``quantity`` is signed; targets resolve at fill time."""

    id: int
    symbol: str
    quantity: float
    type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    tif: TimeInForce = TimeInForce.GTC
    created_us: int = 0  # bar time, UTC microseconds (kept as an int: orders are made on the hot path)
    target: Target | None = None
    target_value: float = 0.0
    status: OrderStatus = OrderStatus.OPEN
    filled_quantity: float = 0.0
    average_price: float = 0.0
    reason: str = ""
    stop_triggered: bool = False
    tag: str = ""

    @property
    def created_at(self) -> datetime:
        """Return the time of the bar the order was placed on (UTC)."""
        return datetime.fromtimestamp(self.created_us / 1e6, tz=UTC)

    @property
    def remaining(self) -> float:
        """Return the signed quantity still to fill."""
        return self.quantity - self.filled_quantity

    @property
    def is_buy(self) -> bool:
        """Return whether the order buys."""
        return self.quantity > 0


class Fill(NamedTuple):
    """One execution: ``quantity`` signed, ``price`` including slippage.

    A named tuple rather than a frozen dataclass: it is as immutable, and the
    engine makes one per fill on its hot path, where tuples are cheaper to build.
    """

    order_id: int
    symbol: str
    time_us: int  # UTC microseconds of the bar it filled in
    quantity: float
    price: float
    commission: float
    slippage: float

    @property
    def ts(self) -> datetime:
        """Return the time of the bar the fill happened in (UTC)."""
        return datetime.fromtimestamp(self.time_us / 1e6, tz=UTC)


@dataclass(slots=True)
class Position:
    """A holding: signed quantity, average cost, realized P&L."""

    symbol: str
    quantity: float = 0.0
    average_cost: float = 0.0
    realized_pnl: float = 0.0
    last_price: float = field(default=float("nan"))

    @property
    def market_value(self) -> float:
        """Return quantity times the last price."""
        return self.quantity * self.last_price

    @property
    def unrealized_pnl(self) -> float:
        """Return the P&L of the open quantity at the last price."""
        return self.quantity * (self.last_price - self.average_cost)
