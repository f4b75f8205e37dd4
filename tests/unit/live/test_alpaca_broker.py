"""The Alpaca adapter on Alpaca-shaped HTTP exchanges (tests/fixtures/vendors/alpaca_trading, via responses).

Submit, partial fill, cancel, reject, reconnect and positions, as the broker contract asks; credentials come
only from the environment or a secrets file and never show in a message.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from quantfleet.core.errors import ConfigError
from quantfleet.core.orders import OrderStatus, OrderType, Target
from quantfleet.live.alpaca import AlpacaBroker, credentials
from quantfleet.live.broker import BrokerUnavailable, OrderRequest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "vendors" / "alpaca_trading"
API = "https://paper-api.alpaca.markets/v2"
NOW = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)
ENV = {"ALPACA_API_KEY": "PKTESTKEY123", "ALPACA_SECRET_KEY": "s3cr3t-value"}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def order(**changes: Any) -> dict[str, Any]:
    body = fixture("order_accepted.json")
    body.update(changes)
    return body


BY_ID = f"{API}/orders:by_client_order_id"
NOT_FOUND = {"code": 40410000, "message": "order not found for qf-abc-1-1"}


@pytest.fixture
def broker() -> AlpacaBroker:
    return AlpacaBroker.from_env(env=ENV)


@responses.activate
def test_submit_sends_the_client_id_and_reads_partial_fills(broker: AlpacaBroker) -> None:
    responses.get(BY_ID, json=NOT_FOUND, status=404)
    responses.post(f"{API}/orders", json=order())
    placed = broker.submit(OrderRequest(client_id="qf-abc-1-1", symbol="AAPL", quantity=10), now=NOW)
    sent = json.loads(responses.calls[1].request.body)
    assert (sent["client_order_id"], sent["qty"], sent["side"], sent["type"]) == ("qf-abc-1-1", 10.0, "buy", "market")
    assert "PKTESTKEY123" not in str(responses.calls[1].request.url)
    assert placed.status is OrderStatus.OPEN
    assert placed.quantity == 10
    responses.replace(
        responses.GET, BY_ID, json=order(status="partially_filled", filled_qty="4", filled_avg_price="171.05")
    )
    part = broker.get_order("qf-abc-1-1")
    assert part is not None
    assert (part.status, part.filled_quantity, part.average_price) == (OrderStatus.OPEN, 4, 171.05)
    # The same client id again: answered from Alpaca's record, nothing posted.
    posts = sum(1 for c in responses.calls if c.request.method == "POST")
    again = broker.submit(OrderRequest(client_id="qf-abc-1-1", symbol="AAPL", quantity=10), now=NOW)
    assert again.broker_id == placed.broker_id
    assert sum(1 for c in responses.calls if c.request.method == "POST") == posts


@responses.activate
def test_limit_sell_and_cancel(broker: AlpacaBroker) -> None:
    limit = order(
        client_order_id="qf-abc-1-2",
        side="sell",
        qty="3",
        order_type="limit",
        type="limit",
        limit_price="180.5",
        time_in_force="gtc",
    )
    responses.get(BY_ID, json=NOT_FOUND, status=404)
    responses.post(f"{API}/orders", json=limit)
    request = OrderRequest(client_id="qf-abc-1-2", symbol="AAPL", quantity=-3, type=OrderType.LIMIT, limit_price=180.5)
    placed = broker.submit(request, now=NOW)
    assert (placed.quantity, placed.type, placed.limit_price) == (-3, OrderType.LIMIT, 180.5)
    deleted: list[str] = []

    def by_client_id(request: Any) -> tuple[int, dict[str, str], str]:
        body = order(**{**limit, "status": "canceled"}) if deleted else limit
        return 200, {}, json.dumps(body)

    def delete(request: Any) -> tuple[int, dict[str, str], str]:
        deleted.append(request.url)
        return 204, {}, ""

    responses.replace(responses.GET, BY_ID, json=limit)
    responses.remove(responses.GET, BY_ID)
    responses.add_callback(responses.GET, BY_ID, callback=by_client_id)
    responses.add_callback(responses.DELETE, f"{API}/orders/{limit['id']}", callback=delete)
    done = broker.cancel("qf-abc-1-2", now=NOW)
    assert deleted == [f"{API}/orders/{limit['id']}"]
    assert done.status is OrderStatus.CANCELLED
    assert broker.cancel("qf-abc-1-2", now=NOW).status is OrderStatus.CANCELLED
    assert len(deleted) == 1  # a done order is not cancelled again


@responses.activate
def test_a_refusal_is_a_rejected_order_with_alpacas_reason(broker: AlpacaBroker) -> None:
    responses.get(BY_ID, json=NOT_FOUND, status=404)
    responses.post(f"{API}/orders", json={"code": 40310000, "message": "insufficient buying power"}, status=403)
    refused = broker.submit(OrderRequest(client_id="qf-abc-1-3", symbol="AAPL", quantity=10_000), now=NOW)
    assert refused.status is OrderStatus.REJECTED
    assert "insufficient buying power" in refused.reason
    percent = broker.submit(
        OrderRequest(client_id="qf-abc-1-4", symbol="AAPL", target=Target.PERCENT, target_value=0.5), now=NOW
    )
    assert percent.status is OrderStatus.REJECTED
    assert "order_target_quantity" in percent.reason


@responses.activate
def test_a_lost_connection_is_unavailable_and_the_next_call_works(broker: AlpacaBroker) -> None:
    responses.get(f"{API}/account", body=requests.ConnectionError("connection reset"))
    with pytest.raises(BrokerUnavailable, match="cannot reach Alpaca"):
        broker.account()
    responses.replace(responses.GET, f"{API}/account", json=fixture("account.json"))
    assert broker.account().equity == 99_305.0
    responses.get(f"{API}/orders", json={"code": 50010000, "message": "internal error"}, status=500)
    with pytest.raises(BrokerUnavailable, match="500"):
        broker.open_orders()


@responses.activate
def test_positions_reconcile_with_alpacas(broker: AlpacaBroker) -> None:
    responses.get(f"{API}/positions", json=fixture("positions.json"))
    held = broker.positions()
    assert {s: (p.quantity, p.average_cost, p.last_price) for s, p in held.items()} == {
        "AAPL": (10.0, 170.25, 171.2),
        "TSLA": (-3.0, 200.0, 199.0),
    }
    responses.get(f"{API}/orders", json=[order(status="new")])
    assert [o.client_id for o in broker.open_orders()] == ["qf-abc-1-1"]


def test_credentials_come_from_the_environment_or_a_secrets_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ALPACA_API_KEY") as missing:
        credentials({})
    assert "s3cr3t" not in str(missing.value)
    secrets = tmp_path / "alpaca.env"
    secrets.write_text("# paper account\nALPACA_API_KEY=PKFILE\nALPACA_SECRET_KEY=filesecret\nALPACA_PAPER=false\n")
    assert credentials({"QUANTFLEET_ALPACA_SECRETS": str(secrets)}) == ("PKFILE", "filesecret", False)
    broker = AlpacaBroker.from_env(env=ENV)
    assert "PKTESTKEY123" not in repr(broker)
    assert "s3cr3t" not in repr(broker)
