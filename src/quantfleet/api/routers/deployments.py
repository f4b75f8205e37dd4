"""``/v1/deployments``: list deployments, read one (status, next run, positions, orders, P&L), pause/resume/stop/kill.

A caller sees their own deployments (an admin sees all); another user's
deployment does not exist for them (404). POSTs honour ``Idempotency-Key``.
Creating a deployment is the CLI's (``quantfleet deploy``) for now.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from quantfleet.api.deps import Context, CurrentUser, Principal
from quantfleet.api.idempotency import idempotent
from quantfleet.live.broker import Broker
from quantfleet.live.brokers import open_broker
from quantfleet.live.deployments import DeploymentNotFound, DeploymentService
from quantfleet.live.models import Deployment
from quantfleet.live.risk import kill

__all__ = ["router"]

router = APIRouter(prefix="/v1/deployments", tags=["deployments"])

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Replaying the same request with this key returns the first response."),
]


class DeploymentPublic(BaseModel):
    """A deployment as listed."""

    id: str
    name: str
    owner: str
    status: str
    reason: str | None
    broker: str
    account: str
    trigger: dict[str, Any]
    universe: list[str]
    runs: int
    next_run_at: datetime | None
    last_run_at: datetime | None
    heartbeat_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, dep: Deployment) -> DeploymentPublic:
        """Return the public view of ``dep``."""
        spec = dep.spec
        return cls(
            id=dep.id,
            name=spec.name,
            owner=spec.owner,
            status=dep.status.value,
            reason=dep.reason,
            broker=spec.broker,
            account=dep.account,
            trigger=spec.trigger.model_dump(mode="json"),
            universe=list(spec.universe),
            runs=dep.runs,
            next_run_at=dep.next_run_at,
            last_run_at=dep.last_run_at,
            heartbeat_at=dep.heartbeat_at,
            created_at=dep.created_at,
        )


class PositionPublic(BaseModel):
    """A holding."""

    symbol: str
    quantity: float
    average_cost: float
    last_price: float | None


class OrderPublic(BaseModel):
    """An order the deployment asked for and where it is now (``reason`` for a rejection).

    ``status`` is the broker's current answer for an order that was still open
    when sent (filled, cancelled, ...), with the quantity filled so far and its
    average price; a rejection keeps the answer it was given.
    """

    client_id: str
    run: int
    symbol: str
    request: dict[str, Any]
    status: str
    reason: str
    at: datetime
    filled_quantity: float | None = None
    average_price: float | None = None


class EquityPoint(BaseModel):
    """A point of the P&L series."""

    at: datetime
    cash: float
    equity: float


class DeploymentDetail(DeploymentPublic):
    """A deployment with its books: positions, orders, the P&L series and ``ctx.state``."""

    positions: list[PositionPublic]
    cash: float
    equity: float
    orders: list[OrderPublic]
    pnl: list[EquityPoint]
    state: dict[str, Any]


def _service(ctx: Any) -> DeploymentService:
    return DeploymentService(ctx.service)


def _owned(service: DeploymentService, dep_id: str, user: Principal) -> Deployment:
    dep = service.get(dep_id)
    if dep.spec.owner != user.name and not user.admin:
        raise DeploymentNotFound(f"no deployment {dep_id}; list yours with GET /v1/deployments")
    return dep


@router.get("", response_model=list[DeploymentPublic], summary="List deployments")
def list_deployments(ctx: Context, user: CurrentUser) -> list[DeploymentPublic]:
    owner = None if user.admin else user.name
    return [DeploymentPublic.of(d) for d in _service(ctx).list(owner=owner)]


@router.get("/{dep_id}", response_model=DeploymentDetail, summary="Read a deployment and its books")
def get_deployment(dep_id: str, ctx: Context, user: CurrentUser) -> DeploymentDetail:
    service = _service(ctx)
    dep = _owned(service, dep_id, user)
    broker = open_broker(dep, service.db, now=service.clock.now())
    account = broker.account()
    positions = [
        PositionPublic(
            symbol=s,
            quantity=p.quantity,
            average_cost=p.average_cost,
            last_price=p.last_price if p.last_price == p.last_price else None,
        )
        for s, p in broker.positions().items()
    ]
    return DeploymentDetail(
        **DeploymentPublic.of(dep).model_dump(),
        positions=positions,
        cash=account.cash,
        equity=account.equity,
        orders=[_order_now(broker, r) for r in service.orders(dep.id, limit=200)],
        pnl=[EquityPoint.model_validate(r) for r in service.equity(dep.id)],
        state=dep.state,
    )


def _order_now(broker: Broker, record: dict[str, Any]) -> OrderPublic:
    """Return a recorded order with the broker's current status when it was open as sent."""
    order = OrderPublic.model_validate(record)
    if order.status != "open":
        return order
    now = broker.get_order(order.client_id)
    if now is None:
        return order
    return order.model_copy(
        update={
            "status": now.status.value,
            "reason": now.reason or order.reason,
            "filled_quantity": now.filled_quantity,
            "average_price": now.average_price if now.filled_quantity else None,
        }
    )


def _change(
    request: Request, ctx: Any, user: Principal, key: str | None, dep_id: str, action: str, flatten: bool = False
) -> JSONResponse:
    def act() -> tuple[int, DeploymentPublic, dict[str, str]]:
        service = _service(ctx)
        dep = _owned(service, dep_id, user)
        if action == "pause":
            changed = service.pause(dep.id, reason=f"paused by {user.name}")
        elif action == "resume":
            changed = service.resume(dep.id)
        elif action == "stop":
            changed = service.stop(dep.id, reason=f"stopped by {user.name}")
        else:
            now = service.clock.now()
            kill(service, open_broker(dep, service.db, now=now), dep.id, now=now, flatten=flatten)
            changed = service.get(dep.id)
        return 200, DeploymentPublic.of(changed), {}

    return idempotent(request, ctx, user, key, {"action": action, "flatten": flatten}, act)


@router.post("/{dep_id}/pause", response_model=DeploymentPublic, summary="Pause a deployment")
def pause(
    dep_id: str, request: Request, ctx: Context, user: CurrentUser, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    return _change(request, ctx, user, idempotency_key, dep_id, "pause")


@router.post("/{dep_id}/resume", response_model=DeploymentPublic, summary="Resume a paused deployment")
def resume(
    dep_id: str, request: Request, ctx: Context, user: CurrentUser, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    return _change(request, ctx, user, idempotency_key, dep_id, "resume")


@router.post("/{dep_id}/stop", response_model=DeploymentPublic, summary="Stop a deployment for good")
def stop(
    dep_id: str, request: Request, ctx: Context, user: CurrentUser, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    return _change(request, ctx, user, idempotency_key, dep_id, "stop")


@router.post("/{dep_id}/kill", response_model=DeploymentPublic, summary="Kill switch: pause, cancel, flatten")
def kill_deployment(
    dep_id: str,
    request: Request,
    ctx: Context,
    user: CurrentUser,
    idempotency_key: IdempotencyKey = None,
    flatten: bool = Query(False, description="Also close the deployment's positions at market."),
) -> JSONResponse:
    return _change(request, ctx, user, idempotency_key, dep_id, "kill", flatten)
