"""The Alpaca broker adapter, through alpaca-py (paper and live endpoints).

Credentials come only from the environment (``ALPACA_API_KEY`` and
``ALPACA_SECRET_KEY``, or ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY``) or from
a secrets file the user points to with ``QUANTFLEET_ALPACA_SECRETS`` (lines of
``NAME=VALUE``). They are never logged, stored in a deployment or a job, or
shown in a message; ``ALPACA_PAPER=false`` selects the live endpoint (paper by
default).

Alpaca sizes orders in units: a target-quantity order is sent as the
distance from the current position; value and percent targets are refused
(a rejected order with the reason). A 4xx answer is a rejected order with
Alpaca's message; a 5xx answer or a lost connection is
:class:`~quantfleet.live.broker.BrokerUnavailable` (retry later).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from quantfleet.core.errors import ConfigError
from quantfleet.core.orders import OrderStatus, OrderType, Position, Target, TimeInForce
from quantfleet.live.broker import Account, BrokerOrder, BrokerUnavailable, OrderRequest

__all__ = ["AlpacaBroker", "credentials"]

_STATUS = {
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "done_for_day": OrderStatus.EXPIRED,
}
_TYPES = {
    "market": OrderType.MARKET,
    "limit": OrderType.LIMIT,
    "stop": OrderType.STOP,
    "stop_limit": OrderType.STOP_LIMIT,
}


def credentials(env: Mapping[str, str] | None = None) -> tuple[str, str, bool]:
    """Return (key, secret, paper) from the environment or the secrets file it names."""
    source = dict(os.environ if env is None else env)
    secrets = source.get("QUANTFLEET_ALPACA_SECRETS")
    if secrets:
        path = Path(secrets).expanduser()
        if not path.is_file():
            raise ConfigError(f"QUANTFLEET_ALPACA_SECRETS names {path}, which is not a file")
        for line in path.read_text().splitlines():
            name, sep, value = line.strip().partition("=")
            if sep and not name.startswith("#"):
                source.setdefault(name.strip(), value.strip())
    key = source.get("ALPACA_API_KEY") or source.get("APCA_API_KEY_ID")
    secret = source.get("ALPACA_SECRET_KEY") or source.get("APCA_API_SECRET_KEY")
    if not key or not secret:
        raise ConfigError(
            "Alpaca credentials are missing: set ALPACA_API_KEY and ALPACA_SECRET_KEY in the environment, "
            "or point QUANTFLEET_ALPACA_SECRETS at a file of NAME=VALUE lines holding them"
        )
    paper = source.get("ALPACA_PAPER", "true").strip().lower() not in ("false", "0", "no")
    return key, secret, paper


def _sdk() -> Any:
    try:
        # alpaca-py's package import pulls in websockets.legacy, which warns; the REST client does not use it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from alpaca.common.exceptions import APIError
            from alpaca.trading import client, enums, requests
    except ImportError as exc:  # pragma: no cover - the vendors extra is in dev
        raise ConfigError("the Alpaca broker needs alpaca-py: pip install 'quantfleet[vendors]'") from exc
    return client, enums, requests, APIError


class AlpacaBroker:
    """A :class:`~quantfleet.live.broker.Broker` over an Alpaca account."""

    def __init__(self, client: Any) -> None:
        """Use an alpaca-py ``TradingClient`` (see :meth:`from_env`)."""
        self._client = client
        _, self._enums, self._requests, self._api_error = _sdk()

    def __repr__(self) -> str:
        return "AlpacaBroker()"  # never the credentials

    @classmethod
    def from_env(cls, *, env: Mapping[str, str] | None = None) -> AlpacaBroker:
        """Return the account the environment's credentials open (paper unless ALPACA_PAPER=false)."""
        key, secret, paper = credentials(env)
        return cls.connect(key, secret, paper=paper)

    @classmethod
    def connect(cls, key: str, secret: str, *, paper: bool = True, url: str | None = None) -> AlpacaBroker:
        """Return the account these keys open; ``url`` replaces Alpaca's endpoint (a proxy, a test server)."""
        client, *_ = _sdk()
        return cls(client.TradingClient(key, secret, paper=paper, url_override=url))

    def _call(self, func: Any, *args: Any) -> Any:
        import requests

        try:
            return func(*args)
        except self._api_error as exc:
            status = exc.status_code
            if status is not None and status < 500:
                raise _Refused(_message(exc), status) from None
            raise BrokerUnavailable(f"Alpaca answered {status}: {_message(exc)}; retry later") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise BrokerUnavailable(f"cannot reach Alpaca ({type(exc).__name__}); retry later") from None

    # -- orders ---------------------------------------------------------------------------------

    def submit(self, request: OrderRequest, *, now: datetime) -> BrokerOrder:
        """Place the order under its client id (a client id seen before returns that order)."""
        known = self.get_order(request.client_id)
        if known is not None:
            return known
        quantity = request.quantity
        if request.target is Target.QUANTITY:
            held = self.positions().get(request.symbol)
            quantity = request.target_value - (held.quantity if held else 0.0)
        elif request.target is not None:
            return BrokerOrder.refused(
                request,
                "Alpaca takes unit quantities: use order_target_quantity or order(), not value or percent targets",
                now=now,
            )
        if quantity == 0:
            return BrokerOrder.refused(request, "already at target", now=now)
        enums, req = self._enums, self._requests
        common: dict[str, Any] = {
            "symbol": request.symbol,
            "qty": abs(quantity),
            "side": enums.OrderSide.BUY if quantity > 0 else enums.OrderSide.SELL,
            "time_in_force": enums.TimeInForce.DAY if request.tif is TimeInForce.DAY else enums.TimeInForce.GTC,
            "client_order_id": request.client_id,
        }
        if request.type is OrderType.LIMIT:
            body = req.LimitOrderRequest(limit_price=request.limit_price, **common)
        elif request.type is OrderType.STOP:
            body = req.StopOrderRequest(stop_price=request.stop_price, **common)
        elif request.type is OrderType.STOP_LIMIT:
            body = req.StopLimitOrderRequest(limit_price=request.limit_price, stop_price=request.stop_price, **common)
        else:
            body = req.MarketOrderRequest(**common)
        try:
            return _order(self._call(self._client.submit_order, body))
        except _Refused as exc:
            return BrokerOrder.refused(request, f"Alpaca refused the order: {exc}", now=now)

    def cancel(self, client_id: str, *, now: datetime) -> BrokerOrder:
        """Cancel an open order; a done order is returned as it is."""
        order = self.get_order(client_id)
        if order is None:
            from quantfleet.live.broker import UnknownOrder

            raise UnknownOrder(f"Alpaca has no order {client_id!r}")
        if order.status is OrderStatus.OPEN:
            with contextlib.suppress(_Refused):  # filled or cancelled meanwhile: read it back
                self._call(self._client.cancel_order_by_id, order.broker_id)
            order = self.get_order(client_id) or order
        return order

    def get_order(self, client_id: str) -> BrokerOrder | None:
        """Return the order placed under ``client_id``, None if Alpaca has none."""
        try:
            return _order(self._call(self._client.get_order_by_client_id, client_id))
        except _Refused as exc:
            if exc.status == 404:
                return None
            raise BrokerUnavailable(f"Alpaca refused to read order {client_id}: {exc}") from None

    def open_orders(self) -> list[BrokerOrder]:
        """Return the open orders."""
        query = self._requests.GetOrdersRequest(status=self._enums.QueryOrderStatus.OPEN)
        return [_order(o) for o in self._call(self._client.get_orders, query)]

    def positions(self) -> dict[str, Position]:
        """Return the positions (short ones negative), marked at Alpaca's current price."""
        out = {}
        for p in self._call(self._client.get_all_positions):
            qty = float(p.qty)
            side = getattr(p.side, "value", p.side)
            qty = -abs(qty) if side == "short" else abs(qty)
            price = float(p.current_price) if p.current_price is not None else float("nan")
            out[p.symbol] = Position(p.symbol, qty, float(p.avg_entry_price), 0.0, price)
        return out

    def account(self) -> Account:
        """Return cash and equity."""
        a = self._call(self._client.get_account)
        return Account(cash=float(a.cash), equity=float(a.equity), currency=a.currency or "USD")


class _Refused(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _message(exc: Any) -> str:
    try:
        return str(exc.message)
    except (ValueError, KeyError, TypeError):
        return str(exc)[:300]


def _order(o: Any) -> BrokerOrder:
    side = getattr(o.side, "value", o.side)
    sign = -1.0 if side == "sell" else 1.0
    status = getattr(o.status, "value", o.status)
    kind = getattr(o.order_type or o.type, "value", o.order_type or o.type)
    tif = getattr(o.time_in_force, "value", o.time_in_force)
    return BrokerOrder(
        client_id=o.client_order_id,
        broker_id=str(o.id),
        symbol=o.symbol or "",
        quantity=sign * float(o.qty or 0),
        type=_TYPES.get(str(kind), OrderType.MARKET),
        limit_price=float(o.limit_price) if o.limit_price is not None else None,
        stop_price=float(o.stop_price) if o.stop_price is not None else None,
        tif=TimeInForce.DAY if tif == "day" else TimeInForce.GTC,
        status=_STATUS.get(str(status), OrderStatus.OPEN),
        filled_quantity=sign * float(o.filled_qty or 0),
        average_price=float(o.filled_avg_price or 0),
        reason="" if str(status) != "rejected" else "rejected by Alpaca",
        created_at=o.created_at,
        updated_at=o.updated_at,
    )
