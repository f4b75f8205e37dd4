"""The paper broker fills as the backtest does (the engine's own models), and keeps its books in the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from quantfleet.core.orders import OrderStatus, OrderType, Target
from quantfleet.engine import run_backtest
from quantfleet.engine.config import BpsCommission, EngineConfig, FixedBpsSlippage
from quantfleet.live.broker import OrderRequest
from quantfleet.live.paper import Bar, PaperBroker
from quantfleet.store import Database
from quantfleet.testing import ScriptedStrategy, make_feed

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ROWS = [
    (100.0, 102.0, 99.0, 101.0, 1000.0),
    (101.0, 104.0, 100.0, 103.0, 1000.0),
    (103.0, 103.5, 97.0, 98.0, 400.0),
    (98.0, 99.0, 95.0, 96.0, 1000.0),
]


def bar(i: int, symbol: str = "X") -> dict[str, Bar]:
    o, h, low, c, v = ROWS[i]
    return {symbol: Bar(symbol, T0 + timedelta(days=i), o, h, low, c, v)}


CONFIG = EngineConfig(
    cash=10_000.0, commission=BpsCommission(bps=10), slippage=FixedBpsSlippage(bps=20), volume_limit=0.25
)


def test_fills_equal_the_backtests_fills(db: Database) -> None:
    """Market, limit and target orders placed on bars 0 and 1 fill on the paper account exactly as in a backtest."""
    script = {
        0: lambda ctx: ctx.order("X", 50),
        1: lambda ctx: (ctx.order("X", -20, limit_price=98.5), ctx.order_target_percent("X", 0.5)),
    }
    result = run_backtest(ScriptedStrategy(script), make_feed(ROWS), CONFIG)
    expected = [(f.quantity, round(f.price, 9), round(f.commission, 9)) for f in result.fills]

    paper = PaperBroker.open(db, "acct", now=T0, config=CONFIG)
    paper.submit(OrderRequest(client_id="a-1", symbol="X", quantity=50), now=T0)
    paper.process(bar(1), now=T0)
    limit = OrderRequest(client_id="a-2", symbol="X", quantity=-20, type=OrderType.LIMIT, limit_price=98.5)
    paper.submit(limit, now=T0)
    paper.submit(OrderRequest(client_id="a-3", symbol="X", target=Target.PERCENT, target_value=0.5), now=T0)
    for i in (2, 3):
        paper.process(bar(i), now=T0)
    got = [(f.quantity, round(f.price, 9), round(f.commission, 9)) for f in paper.fills()]
    assert got == expected
    assert len(got) >= 3  # the volume limit split an order: a partial fill happened
    assert paper.account().cash == pytest.approx(float(result.cash[-1]), rel=1e-12)
    assert paper.account().equity == pytest.approx(result.final_equity, rel=1e-12)


def test_books_survive_a_new_broker_object(db: Database) -> None:
    """Cash, positions and open orders are read back from the database, not held in memory."""
    paper = PaperBroker.open(db, "acct", now=T0, config=EngineConfig(cash=10_000.0))
    paper.submit(OrderRequest(client_id="b-1", symbol="X", quantity=10), now=T0)
    paper.submit(OrderRequest(client_id="b-2", symbol="X", quantity=5, type=OrderType.LIMIT, limit_price=50.0), now=T0)
    paper.process(bar(0), now=T0)
    again = PaperBroker(db, "acct")
    assert again.positions()["X"].quantity == 10
    assert again.positions()["X"].average_cost == 100.0
    assert again.account().cash == pytest.approx(10_000.0 - 10 * 100.0)
    assert again.account().equity == pytest.approx(10_000.0 - 1000.0 + 10 * 101.0)
    assert [o.client_id for o in again.open_orders()] == ["b-2"]


def test_a_client_id_is_placed_once(db: Database) -> None:
    """Submitting the same client order id twice returns the first order; only one fills."""
    paper = PaperBroker.open(db, "acct", now=T0)
    first = paper.submit(OrderRequest(client_id="c-1", symbol="X", quantity=10), now=T0)
    second = paper.submit(OrderRequest(client_id="c-1", symbol="X", quantity=10), now=T0)
    assert second.broker_id == first.broker_id
    paper.process(bar(0), now=T0)
    assert paper.positions()["X"].quantity == 10


def test_a_rejection_is_a_result_with_the_engines_reason(db: Database) -> None:
    """A fractional quantity on a whole-units account comes back rejected, with the reason; nothing rests."""
    paper = PaperBroker.open(db, "acct", now=T0)
    order = paper.submit(OrderRequest(client_id="d-1", symbol="X", quantity=1.5), now=T0)
    assert order.status is OrderStatus.REJECTED
    assert "fractional" in order.reason
    assert paper.open_orders() == []
    big = paper.submit(OrderRequest(client_id="d-2", symbol="X", quantity=10_000), now=T0)
    paper.process(bar(0), now=T0)
    done = paper.get_order(big.client_id)
    assert done is not None
    assert done.status is OrderStatus.REJECTED
    assert "insufficient buying power" in done.reason


def test_cancel_leaves_nothing_to_fill(db: Database) -> None:
    """A cancelled order does not fill on the next bar; cancelling it again returns it unchanged."""
    paper = PaperBroker.open(db, "acct", now=T0)
    paper.submit(OrderRequest(client_id="e-1", symbol="X", quantity=10), now=T0)
    assert paper.cancel("e-1", now=T0).status is OrderStatus.CANCELLED
    paper.process(bar(0), now=T0)
    assert paper.positions() == {}
    assert paper.cancel("e-1", now=T0).status is OrderStatus.CANCELLED
