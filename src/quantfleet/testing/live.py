"""Fakes for live trading: an in-memory broker whose fills a test scripts, bars for a trading day, and a paper
deployment that has traded (for tests of the faces that show deployments)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from quantfleet.core.orders import OrderStatus, Position
from quantfleet.live.broker import Account, BrokerOrder, BrokerUnavailable, OrderRequest, UnknownOrder
from quantfleet.live.paper import Bar

if TYPE_CHECKING:
    from quantfleet.core.settings import Settings

__all__ = ["BUY_EACH_RUN", "FakeBroker", "random_walk_bars", "traded_paper_deployment"]

BUY_EACH_RUN = "def run(ctx):\n    ctx.order('AAA', 10)\n    ctx.order('BBB', 5)\n"
"""A strategy that buys 10 AAA and 5 BBB at each run."""


class FakeBroker:
    """A :class:`~quantfleet.live.broker.Broker` in memory: orders rest until :meth:`fill` or :meth:`reject` says.

    ``outage`` makes every call raise :class:`BrokerUnavailable` until cleared (a lost connection).
    """

    def __init__(self, *, cash: float = 100_000.0) -> None:
        self.cash = cash
        self.orders: dict[str, BrokerOrder] = {}
        self.held: dict[str, Position] = {}
        self.prices: dict[str, float] = {}
        self.outage = False
        self.sent: list[str] = []  # client ids in the order they reached the broker (duplicates not repeated)

    def _up(self) -> None:
        if self.outage:
            raise BrokerUnavailable("the fake broker is unreachable (outage); retry later")

    def submit(self, request: OrderRequest, *, now: datetime) -> BrokerOrder:
        """Rest the order (the same client id returns the first order)."""
        self._up()
        if request.client_id in self.orders:
            return self.orders[request.client_id]
        order = BrokerOrder(
            client_id=request.client_id,
            broker_id=str(len(self.orders) + 1),
            symbol=request.symbol,
            quantity=request.quantity,
            type=request.type,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            tif=request.tif,
            target=request.target,
            target_value=request.target_value,
            created_at=now,
            updated_at=now,
        )
        self.orders[request.client_id] = order
        self.sent.append(request.client_id)
        return order

    def fill(self, client_id: str, quantity: float, price: float) -> BrokerOrder:
        """Execute ``quantity`` (signed) of an open order at ``price``."""
        order = self.orders[client_id]
        filled = order.filled_quantity + quantity
        avg = (order.average_price * order.filled_quantity + price * quantity) / filled
        done = abs(filled - order.quantity) < 1e-9
        order = replace(
            order, filled_quantity=filled, average_price=avg, status=OrderStatus.FILLED if done else OrderStatus.OPEN
        )
        self.orders[client_id] = order
        pos = self.held.get(order.symbol) or Position(order.symbol)
        new = pos.quantity + quantity
        old = pos.quantity
        if old == 0 or (old > 0) == (quantity > 0):
            cost = (old * pos.average_cost + quantity * price) / new
        else:  # reducing keeps the average cost; crossing through zero opens at the fill price
            cost = price if abs(quantity) > abs(old) else pos.average_cost
        self.held[order.symbol] = Position(order.symbol, new, cost, 0.0, price)
        if not new:
            del self.held[order.symbol]
        self.cash -= quantity * price
        self.prices[order.symbol] = price
        return order

    def reject(self, client_id: str, reason: str) -> BrokerOrder:
        """Reject an open order with ``reason``."""
        self.orders[client_id] = self.orders[client_id].rejected(reason)
        return self.orders[client_id]

    def cancel(self, client_id: str, *, now: datetime) -> BrokerOrder:
        """Cancel an open order."""
        self._up()
        if client_id not in self.orders:
            raise UnknownOrder(f"the fake broker has no order {client_id!r}")
        order = self.orders[client_id]
        if order.status is OrderStatus.OPEN:
            order = self.orders[client_id] = replace(order, status=OrderStatus.CANCELLED, reason="cancelled")
        return order

    def get_order(self, client_id: str) -> BrokerOrder | None:
        """Return the order placed under ``client_id``."""
        self._up()
        return self.orders.get(client_id)

    def open_orders(self) -> list[BrokerOrder]:
        """Return the open orders."""
        self._up()
        return [o for o in self.orders.values() if o.status is OrderStatus.OPEN]

    def positions(self) -> Mapping[str, Position]:
        """Return the positions."""
        self._up()
        return dict(self.held)

    def account(self) -> Account:
        """Return cash and equity at the last fill prices."""
        self._up()
        value = sum(p.quantity * self.prices.get(s, p.average_cost) for s, p in self.held.items())
        return Account(cash=self.cash, equity=self.cash + value)


def random_walk_bars(
    symbols: Sequence[str], start: datetime, *, n: int, step: timedelta = timedelta(minutes=1), seed: int = 7
) -> list[dict[str, Bar]]:
    """Return ``n`` timestamps of seeded random-walk OHLCV bars for ``symbols`` (one dict per timestamp)."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, Bar]] = [{} for _ in range(n)]
    for k, symbol in enumerate(symbols):
        close = 100.0 * (1 + k) * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
        opens = np.concatenate([[close[0]], close[:-1]]) * (1 + rng.normal(0, 0.001, n))
        high = np.maximum(opens, close) * (1 + np.abs(rng.normal(0, 0.001, n)))
        low = np.minimum(opens, close) * (1 - np.abs(rng.normal(0, 0.001, n)))
        volume = rng.integers(1_000, 5_000, n).astype(float)
        for i in range(n):
            out[i][symbol] = Bar(
                symbol,
                start + i * step,
                float(opens[i]),
                float(high[i]),
                float(low[i]),
                float(close[i]),
                float(volume[i]),
            )
    return out


def traded_paper_deployment(
    settings: Settings, *, owner: str, name: str = "buyer", runs: int = 3, code: str = BUY_EACH_RUN
) -> str:
    """Deploy ``code`` on a paper account over the settings' home and run it ``runs`` times; return its id.

    The runs are the scheduler's own (cron ``0 10 * * MON-FRI`` on XNYS, a frozen clock stepping from
    1 March 2024 one session at a time), each strategy call in the job's child under the settings' sandbox
    policy (the tests set ``QUANTFLEET_SANDBOX=trusted``). The data store needs daily bars of AAA and BBB then
    (:func:`quantfleet.testing.jobs.tiny_market`). Each run's market orders fill on the next run's new bar,
    so after three runs the deployment holds positions, has filled and open orders, and a P&L series.
    """
    from quantfleet.data import MarketDataStore
    from quantfleet.jobs import JobService
    from quantfleet.live.deployments import DeploymentService
    from quantfleet.live.models import CronTrigger, DeploymentSpec
    from quantfleet.live.runner import LiveRunner
    from quantfleet.live.scheduler import Scheduler
    from quantfleet.testing.clock import FrozenClock

    clock = FrozenClock(datetime(2024, 3, 1, 13, 0, tzinfo=UTC))
    jobs = JobService.from_settings(settings, clock=clock)
    service = DeploymentService(jobs, clock=clock)
    sha = service.put_code(code.encode(), f"{name}.py")
    spec = DeploymentSpec(
        name=name,
        owner=owner,
        code_sha256=sha,
        code_name=f"{name}.py",
        universe=("AAA", "BBB"),
        trigger=CronTrigger(cron="0 10 * * MON-FRI"),
        engine={"cash": 100_000.0},
    )
    dep = service.create(spec)
    store = MarketDataStore.from_settings(settings)
    runner = LiveRunner.from_settings(service, settings, store=lambda: store, clock=clock)
    scheduler = Scheduler(runner)
    session = datetime(2024, 3, 1, 15, 0, 30, tzinfo=UTC)  # 10:00 New York, before daylight saving time
    fired = 0
    for _ in range(runs * 7):  # weekends and holidays fire nothing
        if fired >= runs:
            break
        clock.set(session)
        fired += sum(1 for f in scheduler.tick(session) if f.startswith(dep.id))
        session += timedelta(days=1)
    runner.close()
    jobs.db.dispose()
    return dep.id
