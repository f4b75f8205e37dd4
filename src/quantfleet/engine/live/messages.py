"""What a scheduled live run's child is handed, and the order messages it hands back (JSON in its work folder).

The worker writes, before the child starts::

    live.json    the run: deployment, run number, now, universe, frequency, params, engine settings,
                 ctx.state, the account, the positions, the deployment's open orders, the newest bar's fills
    bars.npz     the bar history: ``ts`` (UTC microseconds) and one ``[bars, symbols]`` array per field

The child writes, when the strategy returned::

    orders.json  {"messages": [...], "state": {...}}: the run's order messages in the order they were
                 placed, ``{"op": "submit", "seq": n, "symbol": ..., ...}`` or ``{"op": "cancel",
                 "client_id": ...}``, and the new ``ctx.state``

Everything the child writes is untrusted: :func:`read_messages` checks it
field by field and raises :class:`~quantfleet.core.errors.UserError` naming
the problem, and the worker derives every client order id itself (deployment,
run, ``seq``), so a child cannot reuse or forge another order's id.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from quantfleet.core.errors import UserError
from quantfleet.core.orders import Fill, OrderStatus, OrderType, Position, Target, TimeInForce
from quantfleet.engine.live.orders import Account, BrokerOrder, OrderRequest

__all__ = [
    "BARS_FILE",
    "ORDERS_FILE",
    "RUN_FILE",
    "SESSION_MARK",
    "Cancel",
    "RunOutput",
    "Submit",
    "account_json",
    "check_output",
    "fill_json",
    "order_from_json",
    "order_json",
    "position_json",
    "read_messages",
]

RUN_FILE = "live.json"
BARS_FILE = "bars.npz"
ORDERS_FILE = "orders.json"
SESSION_MARK = "\x1equantfleet-live "
"""What starts an on-bars session child's answer line on its stdout (its other lines are its log)."""
MAX_MESSAGES = 10_000
"""More order messages than this in one run is a runaway loop, not a strategy: the run fails."""


def order_json(order: BrokerOrder) -> dict[str, Any]:
    """Return ``order`` as plain JSON values."""
    body = asdict(order)
    for key in ("created_at", "updated_at"):
        body[key] = body[key].isoformat() if body[key] is not None else None
    return body


def order_from_json(body: Mapping[str, Any]) -> BrokerOrder:
    """Return the order :func:`order_json` wrote."""
    values = dict(body)
    values["type"] = OrderType(values["type"])
    values["tif"] = TimeInForce(values["tif"])
    values["status"] = OrderStatus(values["status"])
    values["target"] = Target(values["target"]) if values.get("target") else None
    for key in ("created_at", "updated_at"):
        values[key] = datetime.fromisoformat(values[key]) if values.get(key) else None
    return BrokerOrder(**values)


def position_json(position: Position) -> dict[str, Any]:
    """Return ``position`` as JSON values (a NaN last price as null)."""
    body = asdict(position)
    if not math.isfinite(body["last_price"]):
        body["last_price"] = None
    return body


def position_from_json(body: Mapping[str, Any]) -> Position:
    """Return the position :func:`position_json` wrote."""
    last = body.get("last_price")
    return Position(
        str(body["symbol"]),
        float(body["quantity"]),
        float(body["average_cost"]),
        float(body["realized_pnl"]),
        float("nan") if last is None else float(last),
    )


def account_json(account: Account) -> dict[str, Any]:
    """Return ``account`` as JSON values."""
    return asdict(account)


def fill_json(fill: Fill) -> dict[str, Any]:
    """Return ``fill`` as JSON values."""
    return dict(fill._asdict())


def fill_from_json(body: Mapping[str, Any]) -> Fill:
    """Return the fill :func:`fill_json` wrote."""
    return Fill(**body)


@dataclass(frozen=True)
class Submit:
    """The child asked to place an order: its place in the run (``seq``, from 1) and the order, without an id."""

    seq: int
    symbol: str
    quantity: float
    type: OrderType
    limit_price: float | None
    stop_price: float | None
    tif: TimeInForce
    target: Target | None
    target_value: float
    tag: str

    def request(self, client_id: str) -> OrderRequest:
        """Return the order as a request under ``client_id`` (the worker derives it)."""
        return OrderRequest(
            client_id=client_id,
            symbol=self.symbol,
            quantity=self.quantity,
            type=self.type,
            limit_price=self.limit_price,
            stop_price=self.stop_price,
            tif=self.tif,
            target=self.target,
            target_value=self.target_value,
            tag=self.tag,
        )

    @staticmethod
    def of(seq: int, request: OrderRequest) -> dict[str, Any]:
        """Return the message of ``request``, the ``seq``-th order of the run."""
        return {
            "op": "submit",
            "seq": seq,
            "symbol": request.symbol,
            "quantity": request.quantity,
            "type": request.type.value,
            "limit_price": request.limit_price,
            "stop_price": request.stop_price,
            "tif": request.tif.value,
            "target": request.target.value if request.target is not None else None,
            "target_value": request.target_value,
            "tag": request.tag,
        }


@dataclass(frozen=True)
class Cancel:
    """The child asked to cancel the order placed under ``client_id``."""

    client_id: str


@dataclass(frozen=True)
class RunOutput:
    """What a run's child handed back: its order messages, in order, and the new ``ctx.state``."""

    messages: list[Submit | Cancel]
    state: dict[str, Any]


def _number(body: Mapping[str, Any], key: str, *, optional: bool = False) -> float | None:
    value = body.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} is {value!r}, not a finite number")
    return float(value)


def _submit(body: Mapping[str, Any], expected_seq: int) -> Submit:
    seq = body.get("seq")
    if seq != expected_seq or isinstance(seq, bool):
        raise ValueError(f"seq is {seq!r} where {expected_seq} comes next (orders are numbered 1, 2, 3, ...)")
    symbol, tag = body.get("symbol"), body.get("tag", "")
    if not isinstance(symbol, str) or not isinstance(tag, str) or len(tag) > 200:
        raise ValueError("symbol and tag must be strings (a tag of at most 200 characters)")
    target = body.get("target")
    return Submit(
        seq=expected_seq,
        symbol=symbol,
        quantity=_number(body, "quantity") or 0.0,
        type=OrderType(str(body.get("type"))),
        limit_price=_number(body, "limit_price", optional=True),
        stop_price=_number(body, "stop_price", optional=True),
        tif=TimeInForce(str(body.get("tif"))),
        target=Target(target) if target is not None else None,
        target_value=_number(body, "target_value") or 0.0,
        tag=tag,
    )


def read_messages(work: Path) -> RunOutput:
    """Return the child's orders.json, checked; UserError naming the first bad message (the run fails)."""
    try:
        body = json.loads((work / ORDERS_FILE).read_text())
    except FileNotFoundError as exc:
        raise UserError(f"the live run's child wrote no {ORDERS_FILE}; it ended without reporting its orders") from exc
    except (OSError, ValueError) as exc:
        raise UserError(f"the live run's {ORDERS_FILE} is not JSON ({exc}); the run's orders were not sent") from exc
    return check_output(body)


def check_output(body: Any) -> RunOutput:
    """Return a child's answer (``{"messages": [...], "state": {...}}``), checked; UserError naming the first bad part.

    For a scheduled run's orders.json and an on-bars session's answer to each step alike.
    """
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("messages"), list)
        or not isinstance(body.get("state"), dict)
    ):
        raise UserError(
            f"the strategy's answer (a scheduled run's {ORDERS_FILE}, an on-bars step's line) lacks its messages "
            "list or state; none of its orders was sent"
        )
    raw = body["messages"]
    if len(raw) > MAX_MESSAGES:
        raise UserError(
            f"the run placed or cancelled {len(raw):,} orders, more than {MAX_MESSAGES:,}; none was sent "
            "(a strategy placing orders in a loop without end?)"
        )
    messages: list[Submit | Cancel] = []
    for index, item in enumerate(raw):
        try:
            if not isinstance(item, dict):
                raise ValueError("not an object")
            if item.get("op") == "submit":
                messages.append(_submit(item, sum(isinstance(m, Submit) for m in messages) + 1))
            elif item.get("op") == "cancel" and isinstance(item.get("client_id"), str):
                messages.append(Cancel(item["client_id"]))
            else:
                raise ValueError(f"op {item.get('op')!r} is neither submit nor cancel (with a client_id)")
        except (ValueError, TypeError) as exc:
            raise UserError(
                f"order message {index + 1} of the live run is malformed ({exc}); none of the run's orders was sent"
            ) from exc
    return RunOutput(messages, body["state"])
