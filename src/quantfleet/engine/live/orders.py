"""The broker port: what a deployment needs from a broker, and the values it exchanges with one.

A :class:`Broker` takes :class:`OrderRequest` values and answers with
:class:`BrokerOrder` values. Every request carries a ``client_id`` chosen by
the caller (see :func:`client_order_id`): submitting the same ``client_id``
twice returns the first order instead of sending a second one, so a run
retried after a worker failure never trades twice. A rejected order is a
result (``status == REJECTED`` with a ``reason``), not an exception; broker
adapters raise :class:`BrokerUnavailable` (an ``InfrastructureError``) only
when the broker cannot be reached, and a retry may succeed.

Time is a port: every call that changes state is given ``now``; no adapter
calls ``datetime.now()``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from quantfleet.core.errors import InfrastructureError, UserError
from quantfleet.core.orders import OrderStatus, OrderType, Position, Target, TimeInForce

__all__ = [
    "Account",
    "Bar",
    "Broker",
    "BrokerOrder",
    "BrokerUnavailable",
    "OrderRequest",
    "UnknownOrder",
    "client_order_id",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Bar:
    """One symbol's bar: its opening time (UTC) and OHLCV."""

    symbol: str
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float

    @property
    def ts_us(self) -> int:
        """Return the bar's time in UTC microseconds."""
        return (self.ts - _EPOCH) // timedelta(microseconds=1)


_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,48}$")


class BrokerUnavailable(InfrastructureError):
    """The broker could not be reached or answered with a server error; retry later."""


class UnknownOrder(UserError):
    """An order id the broker does not know."""


def client_order_id(deployment: str, run: int, sequence: int) -> str:
    """Return the client order id of the ``sequence``-th order of run ``run`` of ``deployment``.

    Derived, never random: a retried run places its orders under the same ids,
    and the broker answers the duplicates with the orders it already has.
    """
    return f"qf-{deployment[:12]}-{run}-{sequence}"


@dataclass(frozen=True, kw_only=True)
class OrderRequest:
    """An order to place. ``quantity`` is signed (negative sells); a target order sizes itself at fill time."""

    client_id: str
    symbol: str
    quantity: float = 0.0
    type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    tif: TimeInForce = TimeInForce.GTC
    target: Target | None = None
    target_value: float = 0.0
    tag: str = ""

    def __post_init__(self) -> None:
        if not _CLIENT_ID.match(self.client_id):
            raise UserError(
                f"client order id {self.client_id!r} is not 1-48 letters, digits, '_', '-' or '.'; "
                "derive it with client_order_id(deployment, run, sequence)"
            )

    def describe(self) -> str:
        """Return the order in words, for logs and reasons."""
        if self.target is not None:
            size = f"target {self.target.value} {self.target_value:g}"
        else:
            size = f"{'buy' if self.quantity > 0 else 'sell'} {abs(self.quantity):g}"
        price = f" limit {self.limit_price:g}" if self.limit_price is not None else ""
        price += f" stop {self.stop_price:g}" if self.stop_price is not None else ""
        return f"{size} {self.symbol}{price} ({self.type.value}, {self.client_id})"


@dataclass(frozen=True, kw_only=True)
class BrokerOrder:
    """An order as the broker knows it. ``quantity`` is the signed size (resolved, for a filled target order)."""

    client_id: str
    broker_id: str
    symbol: str
    quantity: float
    type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    tif: TimeInForce = TimeInForce.GTC
    target: Target | None = None
    target_value: float = 0.0
    status: OrderStatus = OrderStatus.OPEN
    filled_quantity: float = 0.0
    average_price: float = 0.0
    reason: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def remaining(self) -> float:
        """Return the signed quantity still to fill."""
        return self.quantity - self.filled_quantity

    def rejected(self, reason: str) -> BrokerOrder:
        """Return this order rejected with ``reason``."""
        return replace(self, status=OrderStatus.REJECTED, reason=reason)

    @classmethod
    def refused(cls, request: OrderRequest, reason: str, *, now: datetime) -> BrokerOrder:
        """Return ``request`` as an order rejected before it reached a broker (e.g. by a risk limit)."""
        return cls(
            client_id=request.client_id,
            broker_id="",
            symbol=request.symbol,
            quantity=request.quantity,
            type=request.type,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            tif=request.tif,
            target=request.target,
            target_value=request.target_value,
            status=OrderStatus.REJECTED,
            reason=reason,
            created_at=now,
            updated_at=now,
        )


@dataclass(frozen=True, kw_only=True)
class Account:
    """Cash and equity (cash plus positions at their last price) of a broker account."""

    cash: float
    equity: float
    currency: str = "USD"


@runtime_checkable
class Broker(Protocol):
    """A broker account: place and cancel orders, read orders, positions and cash."""

    def submit(self, request: OrderRequest, *, now: datetime) -> BrokerOrder:
        """Place an order; the same ``client_id`` again returns the first order, unchanged."""
        ...

    def cancel(self, client_id: str, *, now: datetime) -> BrokerOrder:
        """Cancel an open order (a done order is returned as it is)."""
        ...

    def get_order(self, client_id: str) -> BrokerOrder | None:
        """Return the order placed under ``client_id``, None if there is none."""
        ...

    def open_orders(self) -> list[BrokerOrder]:
        """Return the orders that can still fill."""
        ...

    def positions(self) -> Mapping[str, Position]:
        """Return the open positions by symbol."""
        ...

    def account(self) -> Account:
        """Return cash and equity."""
        ...
