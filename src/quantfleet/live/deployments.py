"""Deployments in the database: create, list, pause, resume, stop; their runs, orders, equity and ``ctx.state``.

The strategy code is stored content-addressed (sha256) in the job system's
object store, exactly as a job's code is, so a deployment names one version
of the file and a rerun months later runs the same bytes.
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from quantfleet.core.errors import ConfigError, UserError
from quantfleet.jobs import JobService
from quantfleet.jobs.clock import Clock, SystemClock
from quantfleet.live.broker import Account, BrokerOrder, OrderRequest
from quantfleet.live.models import CronTrigger, Deployment, DeploymentId, DeploymentSpec, DeploymentStatus, Run
from quantfleet.live.triggers import next_fire
from quantfleet.store import Database, ObjectNotFound
from quantfleet.store.models import deployment_equity, deployment_orders, deployment_runs, deployments

__all__ = ["DeploymentNotFound", "DeploymentService", "IllegalDeploymentChange"]


class DeploymentNotFound(ObjectNotFound):
    """No deployment has this id (an object not found: HTTP 404)."""


class IllegalDeploymentChange(UserError):
    """The change asked for does not apply to the deployment's status (e.g. resuming a stopped one)."""


def _from_row(row: Mapping[Any, Any]) -> Deployment:
    return Deployment(
        id=DeploymentId(row["id"]),
        spec=DeploymentSpec.model_validate(row["spec"]),
        status=DeploymentStatus(row["status"]),
        reason=row["reason"],
        state=row["state"] or {},
        runs=row["runs"],
        next_run_at=row["next_run_at"],
        last_run_at=row["last_run_at"],
        heartbeat_at=row["heartbeat_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _request_json(request: OrderRequest) -> dict[str, Any]:
    return {
        "quantity": request.quantity,
        "type": request.type.value,
        "limit_price": request.limit_price,
        "stop_price": request.stop_price,
        "tif": request.tif.value,
        "target": request.target.value if request.target else None,
        "target_value": request.target_value,
        "tag": request.tag,
    }


class DeploymentService:
    """Deployments' lifecycle and records over the job database and the job system's code store."""

    def __init__(self, jobs: JobService, *, clock: Clock | None = None) -> None:
        self.jobs = jobs
        self.db: Database = jobs.db
        self.clock: Clock = clock if clock is not None else jobs.clock or SystemClock()

    # -- code and creation ------------------------------------------------------------------------

    def put_code(self, data: bytes, name: str) -> str:
        """Store strategy code content-addressed; return its sha256."""
        return self.jobs.put_code(data, name).sha256

    def code(self, deployment: Deployment) -> bytes:
        """Return the deployment's strategy code, checked against its sha256."""
        import hashlib

        data = self.jobs.objects.get(f"code/{deployment.spec.code_sha256}")
        if hashlib.sha256(data).hexdigest() != deployment.spec.code_sha256:
            raise UserError(f"the code of deployment {deployment.id} is corrupt in the object store (sha256 differs)")
        return data

    def create(self, spec: DeploymentSpec) -> Deployment:
        """Record a new, active deployment of code already stored with :meth:`put_code`."""
        if not self.jobs.objects.exists(f"code/{spec.code_sha256}"):
            raise UserError(
                f"strategy code {spec.code_name} (sha256 {spec.code_sha256[:12]}...) was never uploaded; "
                "store it with DeploymentService.put_code first ('quantfleet deploy FILE' does so)"
            )
        now = self.clock.now()
        if isinstance(spec.trigger, CronTrigger) and next_fire(spec.trigger, now) is None:
            raise ConfigError(
                f"the schedule {spec.trigger.cron!r} never fires inside a {spec.trigger.calendar} session in the "
                "next 400 days; pick times within trading hours"
            )
        dep_id = uuid.uuid4().hex
        with self.db.write() as conn:
            conn.execute(
                sa.insert(deployments).values(
                    id=dep_id,
                    name=spec.name,
                    owner=spec.owner,
                    code_sha256=spec.code_sha256,
                    broker=spec.broker,
                    account=spec.account or f"paper-{dep_id}",
                    spec=spec.model_dump(mode="json"),
                    status=DeploymentStatus.ACTIVE.value,
                    reason=None,
                    state={},
                    runs=0,
                    day_orders=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            return self._get(conn, dep_id)

    # -- reading ------------------------------------------------------------------------------------

    def _get(self, conn: Connection, dep_id: str) -> Deployment:
        row = conn.execute(sa.select(deployments).where(deployments.c.id == dep_id)).mappings().first()
        if row is None:
            raise DeploymentNotFound(f"no deployment {dep_id}; list them with 'quantfleet deployments ls'")
        return _from_row(row)

    def get(self, dep_id: str) -> Deployment:
        """Return a deployment; ``DeploymentNotFound`` says how to list them."""
        with self.db.read() as conn:
            return self._get(conn, self.resolve(dep_id, conn))

    def resolve(self, text: str, conn: Connection | None = None) -> str:
        """Return the deployment id ``text`` names: the whole id or a unique prefix of 6 or more digits."""
        cleaned = text.strip().lower()
        if len(cleaned) == 32 or len(cleaned) < 6:
            return cleaned
        query = sa.select(deployments.c.id).where(deployments.c.id.like(cleaned + "%")).limit(2)
        if conn is None:
            with self.db.read() as c:
                found = c.execute(query).scalars().all()
        else:
            found = conn.execute(query).scalars().all()
        if len(found) != 1:
            raise DeploymentNotFound(
                f"{text!r} names {'no' if not found else 'several'} deployment(s); "
                "'quantfleet deployments ls' lists them"
            )
        return str(found[0])

    def list(self, *, owner: str | None = None, status: DeploymentStatus | None = None) -> builtins.list[Deployment]:
        """Return deployments, newest first."""
        query = sa.select(deployments).order_by(deployments.c.created_at.desc(), deployments.c.id)
        if owner is not None:
            query = query.where(deployments.c.owner == owner)
        if status is not None:
            query = query.where(deployments.c.status == DeploymentStatus(status).value)
        with self.db.read() as conn:
            return [_from_row(r) for r in conn.execute(query).mappings().all()]

    # -- status ---------------------------------------------------------------------------------------

    def _set_status(
        self, dep_id: str, status: DeploymentStatus, reason: str | None, *, allowed: set[str]
    ) -> Deployment:
        with self.db.write() as conn:
            current = self._get(conn, self.resolve(dep_id, conn))
            if current.status.value not in allowed:
                raise IllegalDeploymentChange(
                    f"deployment {current.id} is {current.status.value}; it cannot become {status.value}"
                    + (
                        " (a stopped deployment stays stopped: deploy the file again)"
                        if current.status is DeploymentStatus.STOPPED
                        else ""
                    )
                )
            conn.execute(
                sa.update(deployments)
                .where(deployments.c.id == current.id)
                .values(status=status.value, reason=reason, updated_at=self.clock.now())
            )
            return self._get(conn, current.id)

    def pause(self, dep_id: str, *, reason: str = "paused by the user") -> Deployment:
        """Hold a deployment: its runs are skipped and its orders refused until it is resumed."""
        return self._set_status(dep_id, DeploymentStatus.PAUSED, reason, allowed={"active", "paused"})

    def resume(self, dep_id: str) -> Deployment:
        """Let a paused deployment trade again."""
        return self._set_status(dep_id, DeploymentStatus.ACTIVE, None, allowed={"active", "paused"})

    def stop(self, dep_id: str, *, reason: str = "stopped by the user") -> Deployment:
        """End a deployment for good (its records stay)."""
        return self._set_status(dep_id, DeploymentStatus.STOPPED, reason, allowed={"active", "paused", "stopped"})

    # -- state between runs -----------------------------------------------------------------------------

    def save_state(self, dep_id: str, state: Mapping[Any, Any], *, last_bar_at: datetime | None = None) -> None:
        """Store the strategy's ``ctx.state`` (plain JSON values) and the newest bar the deployment saw."""
        try:
            body = json.loads(json.dumps(dict(state), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise UserError(
                f"ctx.state holds a value that is not plain JSON ({exc}); keep str, numbers, bools, None, "
                "lists and dicts in it (store a model's parameters, not the model object)"
            ) from exc
        values: dict[str, Any] = {"state": body, "updated_at": self.clock.now()}
        if last_bar_at is not None:
            values["last_bar_at"] = last_bar_at
        with self.db.write() as conn:
            conn.execute(sa.update(deployments).where(deployments.c.id == dep_id).values(**values))

    def last_bar_at(self, dep_id: str) -> datetime | None:
        """Return the time of the newest bar the deployment has processed."""
        with self.db.read() as conn:
            value: datetime | None = conn.execute(
                sa.select(deployments.c.last_bar_at).where(deployments.c.id == dep_id)
            ).scalar_one()
            return value

    def beat(self, dep_id: str, *, now: datetime) -> None:
        """Record that the deployment's process is alive."""
        with self.db.write() as conn:
            conn.execute(sa.update(deployments).where(deployments.c.id == dep_id).values(heartbeat_at=now))

    def set_next_run(self, dep_id: str, when: datetime | None) -> None:
        """Record when the scheduler will next run the deployment."""
        with self.db.write() as conn:
            conn.execute(sa.update(deployments).where(deployments.c.id == dep_id).values(next_run_at=when))

    # -- runs ---------------------------------------------------------------------------------------------

    def start_run(self, dep_id: str, *, due_at: datetime) -> Run | None:
        """Number a new run due at ``due_at``; None if that run exists already (a restarted scheduler)."""
        with self.db.write() as conn:
            known = conn.execute(
                sa.select(deployment_runs).where(
                    deployment_runs.c.deployment_id == dep_id, deployment_runs.c.due_at == due_at
                )
            ).first()
            if known is not None:
                return None
            row = conn.execute(
                sa.select(deployments.c.runs).where(deployments.c.id == dep_id).with_for_update()
            ).scalar_one()
            number = int(row) + 1
            conn.execute(
                sa.insert(deployment_runs).values(deployment_id=dep_id, number=number, due_at=due_at, status="queued")
            )
            conn.execute(
                sa.update(deployments).where(deployments.c.id == dep_id).values(runs=number, last_run_at=due_at)
            )
        return Run(deployment_id=DeploymentId(dep_id), number=number, due_at=due_at, status="queued")

    def update_run(self, dep_id: str, number: int, **values: Any) -> None:
        """Set fields of a run (job_id, status, started_at, finished_at, error)."""
        with self.db.write() as conn:
            conn.execute(
                sa.update(deployment_runs)
                .where(deployment_runs.c.deployment_id == dep_id, deployment_runs.c.number == number)
                .values(**values)
            )

    def runs(self, dep_id: str, *, limit: int = 100) -> builtins.list[Run]:
        """Return the newest runs first."""
        query = (
            sa.select(deployment_runs)
            .where(deployment_runs.c.deployment_id == dep_id)
            .order_by(deployment_runs.c.number.desc())
            .limit(limit)
        )
        with self.db.read() as conn:
            return [Run.model_validate(dict(r)) for r in conn.execute(query).mappings().all()]

    # -- risk day ---------------------------------------------------------------------------------------

    def risk_day(self, dep_id: str, *, day: str, equity: float) -> tuple[float, int]:
        """Return the day's first equity and its order count, starting a new day at ``equity`` when ``day`` is new."""
        with self.db.write() as conn:
            row = conn.execute(
                sa.select(deployments.c.risk_day, deployments.c.day_start_equity, deployments.c.day_orders).where(
                    deployments.c.id == dep_id
                )
            ).one()
            if row.risk_day != day or row.day_start_equity is None:
                conn.execute(
                    sa.update(deployments)
                    .where(deployments.c.id == dep_id)
                    .values(risk_day=day, day_start_equity=equity, day_orders=0)
                )
                return equity, 0
            return float(row.day_start_equity), int(row.day_orders)

    # -- orders and equity --------------------------------------------------------------------------------

    def recorded_order(self, dep_id: str, client_id: str) -> dict[str, Any] | None:
        """Return the recorded answer to the order ``client_id`` of the deployment, None if it was never asked for."""
        query = sa.select(deployment_orders).where(
            deployment_orders.c.deployment_id == dep_id, deployment_orders.c.client_id == client_id
        )
        with self.db.read() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row is not None else None

    def record_order(self, dep_id: str, run: int, request: OrderRequest, answer: BrokerOrder, *, counted: bool) -> None:
        """Log an order the deployment asked for and the answer (a fill, the broker's or a limit's rejection)."""
        with self.db.write() as conn:
            conn.execute(
                sa.insert(deployment_orders).values(
                    deployment_id=dep_id,
                    run=run,
                    client_id=request.client_id,
                    symbol=request.symbol,
                    request=_request_json(request),
                    status=answer.status.value,
                    reason=answer.reason,
                    broker_id=answer.broker_id,
                    at=self.clock.now(),
                )
            )
            if counted:
                conn.execute(
                    sa.update(deployments)
                    .where(deployments.c.id == dep_id)
                    .values(day_orders=deployments.c.day_orders + 1)
                )

    def orders(self, dep_id: str, *, limit: int = 500) -> builtins.list[dict[str, Any]]:
        """Return the orders the deployment asked for, newest first, with the answers."""
        query = (
            sa.select(deployment_orders)
            .where(deployment_orders.c.deployment_id == dep_id)
            .order_by(deployment_orders.c.id.desc())
            .limit(limit)
        )
        with self.db.read() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    def record_equity(self, dep_id: str, *, at: datetime, account: Account) -> None:
        """Add (or replace) a point of the deployment's P&L series."""
        with self.db.write() as conn:
            conn.execute(
                sa.delete(deployment_equity).where(
                    deployment_equity.c.deployment_id == dep_id, deployment_equity.c.at == at
                )
            )
            conn.execute(
                sa.insert(deployment_equity).values(
                    deployment_id=dep_id, at=at, cash=account.cash, equity=account.equity
                )
            )

    def equity(self, dep_id: str) -> builtins.list[dict[str, Any]]:
        """Return the P&L series, oldest first: at, cash, equity."""
        query = (
            sa.select(deployment_equity.c.at, deployment_equity.c.cash, deployment_equity.c.equity)
            .where(deployment_equity.c.deployment_id == dep_id)
            .order_by(deployment_equity.c.at)
        )
        with self.db.read() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]
