"""``/v1/deployments``: create a deployment, list them, read one (status, next run, books), pause/resume/stop/kill.

A caller sees their own deployments (an admin sees all); another user's
deployment does not exist for them (404). POSTs honour ``Idempotency-Key``.
Creating one is a multipart upload like a backtest submission: the strategy
file (or a zip and its ``entry``) and a ``spec`` part, a
:class:`DeploymentCreate` as JSON. The code is never imported here; it is
checked for syntax, stored content-addressed, and the scheduler (or the
event supervisor) runs it in the sandbox.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quantfleet.api.deps import Context, CurrentUser, Principal
from quantfleet.api.errors import Forbidden, SpecInvalid
from quantfleet.api.idempotency import idempotent
from quantfleet.api.submission import check_common, engine_settings, parse_spec
from quantfleet.api.uploads import strategy_code
from quantfleet.core.errors import CalendarError, ConfigError
from quantfleet.core.types import Frequency
from quantfleet.live.broker import Broker
from quantfleet.live.brokers import open_broker
from quantfleet.live.deployments import DeploymentNotFound, DeploymentService
from quantfleet.live.models import Deployment, DeploymentSpec, RiskLimits, Trigger
from quantfleet.live.risk import kill
from quantfleet.live.triggers import next_fire

__all__ = ["router"]

router = APIRouter(prefix="/v1/deployments", tags=["deployments"])

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Replaying the same request with this key returns the first response."),
]


class DeploymentCreate(BaseModel):
    """What creating a deployment carries in its ``spec`` part (JSON); the strategy file is the other part."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbols: list[str] = Field(min_length=1, description="The symbols it trades, e.g. ['AAPL', 'MSFT'].")
    trigger: Trigger = Field(
        description="When it runs: {'kind': 'cron', 'cron': '*/15 9-16 * * MON-FRI', 'calendar': 'XNYS'} "
        "or {'kind': 'bars'} (each bar on the MQTT feed)."
    )
    name: str | None = Field(default=None, max_length=64, description="A short name (default: the file's stem).")
    broker: Literal["paper", "alpaca"] = Field(default="paper", description="alpaca: admins only.")
    account: str = Field(
        default="",
        max_length=40,
        pattern=r"^[A-Za-z0-9_.\-]*$",
        description="Paper: a name of your own account, shared by your deployments that name it (stored as "
        "'owner:name'); default: the deployment's own.",
    )
    frequency: Frequency = Frequency.DAILY
    params: dict[str, Any] = Field(default_factory=dict, description="Strategy parameters (plain JSON values).")
    risk: RiskLimits = Field(default_factory=RiskLimits)
    engine: dict[str, Any] = Field(
        default_factory=dict, description="Paper fill settings (cash, commission, slippage, ...), checked here."
    )
    history_bars: int = Field(default=500, ge=1, le=100_000, description="Bars of history a scheduled run sees.")
    class_name: str | None = Field(default=None, max_length=200, description="Strategy class, when several.")
    entry: str | None = Field(
        default=None, max_length=300, description="The strategy file inside a zip archive (default: its only .py)."
    )


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


def _spec_of(create: DeploymentCreate, *, code_name: str, sha256: str, owner: str, now: datetime) -> DeploymentSpec:
    """Return the deployment spec of a checked request; a field that does not fit is named in ``errors``."""
    trigger = create.trigger
    if trigger.kind == "cron":
        try:
            first = next_fire(trigger, now)  # the cron and the calendar, checked before storing
        except (ConfigError, CalendarError) as exc:
            field = "calendar" if isinstance(exc, CalendarError) else "cron"
            loc = ["body", "spec", "trigger", field]
            raise SpecInvalid(
                f"the trigger is invalid: {exc}", [{"loc": loc, "msg": str(exc), "type": "value_error"}]
            ) from None
        if first is None:
            msg = (
                f"{trigger.cron!r} never fires inside a {trigger.calendar} session in the next 400 days; "
                "pick times within trading hours, or set sessions_only to false"
            )
            loc = ["body", "spec", "trigger", "cron"]
            raise SpecInvalid(f"the trigger is invalid: {msg}", [{"loc": loc, "msg": msg, "type": "value_error"}])
    account = create.account
    if account and create.broker == "paper":
        # A paper account named over HTTP is the caller's own: "main" is "alice:main", never another user's.
        account = f"{owner}:{account}"
        if len(account) > 64:
            msg = f"with your user name the account is {len(account)} characters; name it in {63 - len(owner)} or fewer"
            raise SpecInvalid(msg, [{"loc": ["body", "spec", "account"], "msg": msg, "type": "too_long"}])
    body = {
        "name": create.name or code_name.removesuffix(".py").replace(" ", "_")[:64],
        "owner": owner,
        "code_sha256": sha256,
        "code_name": code_name,
        "class_name": create.class_name,
        "params": dict(create.params),
        "universe": tuple(s.strip().upper() for s in create.symbols),
        "frequency": create.frequency,
        "broker": create.broker,
        "account": account,
        "trigger": trigger,
        "risk": create.risk,
        "engine": engine_settings(create.engine),
        "history_bars": create.history_bars,
    }
    try:
        return DeploymentSpec.model_validate(body)
    except ValidationError as exc:
        where = {"universe": "symbols"}
        errors = [
            {**e, "loc": ["body", "spec", *(where.get(str(p), p) for p in e["loc"])]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise SpecInvalid("the spec is invalid; see 'errors'", errors) from None


@router.post("", status_code=201, response_model=DeploymentPublic, summary="Create a deployment")
async def create_deployment(
    request: Request,
    ctx: Context,
    user: CurrentUser,
    strategy: Annotated[UploadFile, File(description="The strategy: a .py file, or a zip with an entry file.")],
    spec: Annotated[str, Form(description="The deployment's spec as JSON: a DeploymentCreate object.")],
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    limits = ctx.settings
    if len(spec.encode()) > limits.max_spec_bytes:
        raise SpecInvalid(f"the spec part passes the limit (max_spec_bytes) of {limits.max_spec_bytes} bytes", [
            {"loc": ["body", "spec"], "msg": "too large", "type": "too_long"}])  # fmt: skip
    data = await strategy.read(limits.max_upload_bytes + 1)
    parsed = parse_spec(spec, DeploymentCreate)
    check_common(symbols=parsed.symbols, params=parsed.params, engine=parsed.engine, limits=limits)
    code = strategy_code(strategy.filename, data, entry=parsed.entry, limits=limits)
    sha = hashlib.sha256(code.data).hexdigest()
    content = {"spec": parsed.model_dump(mode="json"), "code": code.name, "sha256": sha}

    if parsed.broker == "alpaca" and not user.admin:
        raise Forbidden(
            "an Alpaca deployment trades the server's Alpaca account (its credentials); only an admin may create "
            "one over HTTP: deploy to 'paper', or ask an admin"
        )

    def act() -> tuple[int, DeploymentPublic, dict[str, str]]:
        service = _service(ctx)
        deployment_spec = _spec_of(parsed, code_name=code.name, sha256=sha, owner=user.name, now=service.clock.now())
        service.put_code(code.data, code.name)
        dep = service.create(deployment_spec)
        return 201, DeploymentPublic.of(dep), {"Location": f"/v1/deployments/{dep.id}"}

    # As submissions do: the writes run on the API's writer threads, not on the threads reads are served on.
    call = contextvars.copy_context().run
    answer = functools.partial(idempotent, request, ctx, user, idempotency_key, content, act)
    return await asyncio.get_running_loop().run_in_executor(ctx.writers, call, answer)


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
