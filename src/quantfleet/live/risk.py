"""Risk limits in front of the broker, and the kill switch.

:class:`RiskGate` wraps a :class:`~quantfleet.live.broker.Broker` for one
deployment and one run. Before an order leaves it checks, in this order:

1. the deployment is active (a paused or stopped one sends nothing);
2. the day's loss: equity more than ``max_daily_loss`` below the day's first
   equity pauses the deployment and refuses the order;
3. ``max_orders_per_day``;
4. ``max_order_value`` at the newest close (a target order at the quantity it
   would trade now);
5. ``max_position``: the absolute quantity held after the order.

A refused order is a result: an order with ``status == REJECTED`` and the
reason, logged and recorded in the deployment's orders. An order whose
client id was asked for before (a retried run) is answered from the record
and the broker, never checked or sent again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from quantfleet.core.orders import OrderStatus, Position, Target
from quantfleet.live.broker import Account, Broker, BrokerOrder, OrderRequest
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.models import DeploymentStatus

__all__ = ["KillReport", "RiskGate", "kill"]

log = logging.getLogger(__name__)


class RiskGate:
    """A broker seen through one deployment's limits (see the module docstring); a Broker itself."""

    def __init__(
        self,
        broker: Broker,
        service: DeploymentService,
        deployment_id: str,
        *,
        run: int,
        prices: Callable[[str], float],
        day: Callable[[datetime], str],
    ) -> None:
        self.broker = broker
        self.service = service
        self.deployment_id = deployment_id
        self.run = run
        self._prices = prices
        self._day = day
        self._prefix = f"qf-{deployment_id[:12]}-"

    def open_day(self, now: datetime) -> None:
        """Start the risk day at the current equity if ``now`` is on a new day (call before each run or bar)."""
        self.service.risk_day(self.deployment_id, day=self._day(now), equity=self.broker.account().equity)

    def submit(self, request: OrderRequest, *, now: datetime) -> BrokerOrder:
        """Check the limits, then send the order; a refusal comes back as a rejected order."""
        known = self.service.recorded_order(self.deployment_id, request.client_id)
        if known is not None:
            sent = self.broker.get_order(request.client_id) if known["broker_id"] else None
            return sent or BrokerOrder.refused(request, known["reason"], now=now)
        reason = self._refusal(request, now)
        if reason:
            log.warning("deployment %s: order refused: %s: %s", self.deployment_id, request.describe(), reason)
            answer = BrokerOrder.refused(request, reason, now=now)
            self.service.record_order(self.deployment_id, self.run, request, answer, counted=False)
            return answer
        answer = self.broker.submit(request, now=now)
        if answer.status is OrderStatus.REJECTED:
            log.warning(
                "deployment %s: the broker rejected %s: %s", self.deployment_id, request.describe(), answer.reason
            )
        self.service.record_order(self.deployment_id, self.run, request, answer, counted=True)
        return answer

    def _refusal(self, request: OrderRequest, now: datetime) -> str:
        deployment = self.service.get(self.deployment_id)
        if deployment.status is not DeploymentStatus.ACTIVE:
            return (
                f"deployment {deployment.id} is {deployment.status.value} ({deployment.reason}); "
                f"resume it with 'quantfleet deployments resume {deployment.id[:8]}'"
            )
        limits = deployment.spec.risk
        account = self.broker.account()
        start, orders_today = self.service.risk_day(self.deployment_id, day=self._day(now), equity=account.equity)
        if limits.max_daily_loss is not None and start - account.equity > limits.max_daily_loss:
            loss = start - account.equity
            why = f"the day's loss {loss:,.2f} passed max_daily_loss {limits.max_daily_loss:,.2f}"
            self.service.pause(self.deployment_id, reason=why)
            resume = f"quantfleet deployments resume {deployment.id[:8]}"
            return f"{why}; the deployment is paused (resume it with '{resume}')"
        if limits.max_orders_per_day is not None and orders_today >= limits.max_orders_per_day:
            return f"max_orders_per_day {limits.max_orders_per_day} reached today; no more orders until tomorrow"
        price = self._price(request)
        held = self.broker.positions().get(request.symbol)
        quantity = _quantity(request, held, price, account)
        if limits.max_order_value is not None and math.isfinite(price):
            value = abs(quantity) * price
            if value > limits.max_order_value * (1 + 1e-12):
                return (
                    f"order value {value:,.2f} ({abs(quantity):g} {request.symbol} at {price:,.4f}) is over "
                    f"max_order_value {limits.max_order_value:,.2f}"
                )
        after = (held.quantity if held else 0.0) + quantity
        if limits.max_position is not None and abs(after) > limits.max_position * (1 + 1e-12):
            return f"the position in {request.symbol} would be {after:g}, over max_position {limits.max_position:g}"
        return ""

    def _price(self, request: OrderRequest) -> float:
        if request.limit_price is not None:
            return request.limit_price
        return self._prices(request.symbol)

    def cancel(self, client_id: str, *, now: datetime) -> BrokerOrder:
        """Cancel an open order (always allowed, also when paused)."""
        return self.broker.cancel(client_id, now=now)

    def get_order(self, client_id: str) -> BrokerOrder | None:
        """Return the order placed under ``client_id``."""
        return self.broker.get_order(client_id)

    def open_orders(self) -> list[BrokerOrder]:
        """Return this deployment's open orders (others of a shared account are not its to touch)."""
        return [o for o in self.broker.open_orders() if o.client_id.startswith(self._prefix)]

    def positions(self) -> Mapping[str, Position]:
        """Return the account's positions."""
        return self.broker.positions()

    def account(self) -> Account:
        """Return cash and equity."""
        return self.broker.account()


def _quantity(request: OrderRequest, held: Position | None, price: float, account: Account) -> float:
    """Return the signed quantity ``request`` would trade now (a target's distance from the position)."""
    have = held.quantity if held is not None else 0.0
    if request.target is None:
        return request.quantity
    if request.target is Target.QUANTITY:
        return request.target_value - have
    if not (math.isfinite(price) and price > 0):
        return 0.0
    value = request.target_value * (account.equity if request.target is Target.PERCENT else 1.0)
    return value / price - have


@dataclass(frozen=True)
class KillReport:
    """What the kill switch did."""

    cancelled: list[str]
    flattened: list[BrokerOrder]


def kill(
    service: DeploymentService, broker: Broker, deployment_id: str, *, now: datetime, flatten: bool = False
) -> KillReport:
    """Pause the deployment first, then cancel its open orders; with ``flatten``, close its positions at market.

    Pausing first means a run still going refuses its next order at once.
    Flattening orders are placed under client ids of their own (``qf-...-kill-N``),
    so a second kill sends no second set of them.
    """
    dep = service.pause(deployment_id, reason="kill switch" + (" (flatten)" if flatten else ""))
    prefix = f"qf-{dep.id[:12]}-"
    cancelled = []
    for order in broker.open_orders():
        if order.client_id.startswith(prefix):
            broker.cancel(order.client_id, now=now)
            cancelled.append(order.client_id)
    flattened = []
    if flatten:
        kills = sum(1 for r in service.orders(dep.id) if "-kill-" in r["client_id"])
        for n, (symbol, pos) in enumerate(sorted(broker.positions().items()), start=kills + 1):
            if symbol not in dep.spec.universe or not pos.quantity:
                continue
            request = OrderRequest(client_id=f"{prefix}kill-{n}", symbol=symbol, quantity=-pos.quantity, tag="kill")
            answer = broker.submit(request, now=now)
            service.record_order(dep.id, 0, request, answer, counted=False)
            flattened.append(answer)
    log.warning("deployment %s killed: %d order(s) cancelled, %d flattening", dep.id, len(cancelled), len(flattened))
    return KillReport(cancelled, flattened)
