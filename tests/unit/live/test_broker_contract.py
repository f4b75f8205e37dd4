"""One contract every broker adapter passes: submit, partial fill, cancel, reject, reconnect, positions reconcile.

Each adapter comes with a harness that makes the market do things (a bar arrives, a fill happens); the
assertions are the same for every adapter. The paper broker, the shipped fake and the Alpaca adapter pass it.

Alpaca's harness cannot move a market: each test replays a recorded exchange with Alpaca's trading API
(tests/fixtures/vendors/alpaca_trading/contract/<test>.json) from a loopback HTTP server, and alpaca-py's
own client talks to it over real sockets. What the market did (a partial fill, an exchange's rejection)
is in the recorded answers; the server checks that every recorded request is made, in order, and no other.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from quantfleet.core.errors import InfrastructureError
from quantfleet.core.orders import OrderStatus
from quantfleet.engine.config import EngineConfig
from quantfleet.live.alpaca import AlpacaBroker
from quantfleet.live.broker import Broker, OrderRequest
from quantfleet.live.paper import Bar, PaperBroker
from quantfleet.store import Database
from quantfleet.testing.live import FakeBroker
from quantfleet.testing.replay import ReplayServer, replaying

CASSETTES = Path(__file__).resolve().parents[2] / "fixtures" / "vendors" / "alpaca_trading" / "contract"
NOW = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)


class PaperHarness:
    """The paper broker: fills happen when a bar is processed; half a bar's volume at most per order."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.broker = PaperBroker.open(db, "contract", now=NOW, config=EngineConfig(cash=10_000.0, volume_limit=0.5))
        self.bars = 0

    def trade(self, client_id: str, quantity: float, price: float) -> None:
        self.bars += 1
        ts = NOW + timedelta(minutes=self.bars)
        bar = Bar("X", ts, price, price, price, price, abs(quantity) * 2)
        self.broker.process({"X": bar}, now=ts)

    def refusable(self) -> OrderRequest:
        return OrderRequest(client_id="r-1", symbol="X", quantity=0.5)  # whole units only

    def refuse(self, client_id: str) -> None:
        pass  # refused on submission

    def reconnect(self) -> Broker:
        return PaperBroker(self.db, "contract")  # a new process: everything is read back from the database


class FakeHarness:
    """The shipped fake: a test says what fills."""

    def __init__(self) -> None:
        self.broker = FakeBroker(cash=10_000.0)

    def trade(self, client_id: str, quantity: float, price: float) -> None:
        self.broker.fill(client_id, quantity, price)

    def refusable(self) -> OrderRequest:
        return OrderRequest(client_id="r-1", symbol="X", quantity=1)

    def refuse(self, client_id: str) -> None:
        self.broker.reject(client_id, "not shortable")

    def reconnect(self) -> Broker:
        self.broker.outage = True
        with pytest.raises(InfrastructureError):
            self.broker.open_orders()
        self.broker.outage = False
        return self.broker


class AlpacaHarness:
    """The Alpaca adapter against a recorded exchange: the market's doings are in the recorded answers."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        self.broker = self.connect()

    def connect(self) -> Broker:
        return AlpacaBroker.connect("PKCONTRACT", "contract-secret", url=self.server.url)

    def trade(self, client_id: str, quantity: float, price: float) -> None:
        pass  # Alpaca's market fills on its own: the recording's next answers show the fill

    def refusable(self) -> OrderRequest:
        return OrderRequest(client_id="r-1", symbol="X", quantity=1)

    def refuse(self, client_id: str) -> None:
        pass  # accepted, then rejected by the exchange: the recording's next answer says so

    def reconnect(self) -> Broker:
        with pytest.raises(InfrastructureError):
            self.broker.open_orders()  # the recorded connection drops
        return self.connect()  # a new client (a restarted process) reads everything back from Alpaca


@pytest.fixture(params=["paper", "fake", "alpaca"])
def harness(request: pytest.FixtureRequest, db: Database) -> Iterator[Any]:
    """Return each adapter's harness (the paper broker on SQLite and PostgreSQL)."""
    if request.param == "paper":
        yield PaperHarness(db)
        return
    if db.dialect != "sqlite":
        pytest.skip(f"the {request.param} adapter keeps nothing in our database: once is enough")
    if request.param == "fake":
        yield FakeHarness()
        return
    test = request.node.originalname.removeprefix("test_")
    with replaying(CASSETTES / f"{test}.json") as server:
        yield AlpacaHarness(server)


def test_submit_partial_fill_then_fill(harness: Any) -> None:
    broker = harness.broker
    order = broker.submit(OrderRequest(client_id="a-1", symbol="X", quantity=10), now=NOW)
    assert order.status is OrderStatus.OPEN
    assert [o.client_id for o in broker.open_orders()] == ["a-1"]
    harness.trade("a-1", 5, 100.0)
    part = broker.get_order("a-1")
    assert (part.status, part.filled_quantity) == (OrderStatus.OPEN, 5)
    harness.trade("a-1", 5, 100.0)
    done = broker.get_order("a-1")
    assert (done.status, done.filled_quantity, done.average_price) == (OrderStatus.FILLED, 10, 100.0)
    assert broker.open_orders() == []


def test_duplicate_client_id_is_one_order(harness: Any) -> None:
    broker = harness.broker
    first = broker.submit(OrderRequest(client_id="d-1", symbol="X", quantity=2), now=NOW)
    again = broker.submit(OrderRequest(client_id="d-1", symbol="X", quantity=2), now=NOW)
    assert again.broker_id == first.broker_id
    assert len(broker.open_orders()) == 1


def test_cancel(harness: Any) -> None:
    broker = harness.broker
    broker.submit(OrderRequest(client_id="c-1", symbol="X", quantity=4), now=NOW)
    assert broker.cancel("c-1", now=NOW).status is OrderStatus.CANCELLED
    assert broker.open_orders() == []
    assert broker.cancel("c-1", now=NOW).status is OrderStatus.CANCELLED  # cancelling again changes nothing


def test_reject_is_a_result_with_a_reason(harness: Any) -> None:
    broker = harness.broker
    request = harness.refusable()
    broker.submit(request, now=NOW)
    harness.refuse(request.client_id)
    order = broker.get_order(request.client_id)
    assert order.status is OrderStatus.REJECTED
    assert order.reason
    assert broker.positions() == {}


def test_reconnect_keeps_orders_and_positions(harness: Any) -> None:
    broker = harness.broker
    broker.submit(OrderRequest(client_id="k-1", symbol="X", quantity=6), now=NOW)
    harness.trade("k-1", 6, 50.0)
    broker.submit(OrderRequest(client_id="k-2", symbol="X", quantity=-2, limit_price=999.0), now=NOW)
    again = harness.reconnect()
    assert [o.client_id for o in again.open_orders()] == ["k-2"]
    assert again.positions()["X"].quantity == 6


def test_positions_reconcile_with_fills_and_cash(harness: Any) -> None:
    broker = harness.broker
    broker.submit(OrderRequest(client_id="p-1", symbol="X", quantity=8), now=NOW)
    harness.trade("p-1", 8, 25.0)
    broker.submit(OrderRequest(client_id="p-2", symbol="X", quantity=-3), now=NOW)
    harness.trade("p-2", -3, 30.0)
    held = broker.positions()["X"]
    assert held.quantity == 5
    assert held.average_cost == 25.0
    assert broker.account().cash == pytest.approx(10_000.0 - 8 * 25.0 + 3 * 30.0)
