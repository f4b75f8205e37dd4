"""The metadata schema: SQLAlchemy Core tables, kept equal to the Alembic migrations by a test.

::

    jobs              one row per job: its spec (JSON; JSONB on PostgreSQL), state, current
                      attempt and lease, cancel request, error, metrics summary
    attempts          one row per attempt (job_id, number): worker, lease, how it ended
    job_events        the audit log: every state change (and cancel request), with its time
    artifacts         result objects recorded by the attempt that finished the job
    idempotency_keys  (owner, key) -> the job first submitted with it, and that spec's hash
    users             one row per user: name (= jobs.owner), admin flag, running and queued quotas
    api_tokens        API tokens: a public id, the sha256 of the secret (never the secret), label, use, revocation
    http_idempotency  (owner, Idempotency-Key) of an HTTP POST -> its body's sha256 and the response sent
                      (status NULL while the first request is in flight); kept 24 h
    paper_accounts    the paper broker's accounts: cash, the engine's fill settings (revision 0005)
    paper_positions   (account, symbol) -> signed quantity, average cost, realized P&L, last price
    paper_orders      (account, client order id) -> the order and its state (the paper broker's book)
    paper_fills       every paper execution
    deployments       one row per deployment: strategy version, parameters, broker, trigger, limits,
                      status, the strategy's ctx.state, the risk day's counters
    deployment_runs   (deployment, number) -> one run: its job, when it was due, how it ended
    deployment_orders every order a deployment asked for, with the broker's answer or the limit that refused it
    deployment_equity (deployment, time) -> cash and equity after a run or a bar: the P&L series

``jobs.seq`` (an autoincrement integer) orders submissions; ``jobs.id`` is the
public id (32 hex digits). Timestamps are UTC; SQLite stores them naive, and
:class:`UTCDateTime` hands them back timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

__all__ = [
    "JSONDoc",
    "UTCDateTime",
    "api_tokens",
    "artifacts",
    "attempts",
    "deployment_equity",
    "deployment_orders",
    "deployment_runs",
    "deployments",
    "http_idempotency",
    "idempotency_keys",
    "ingest_schedules",
    "job_events",
    "jobs",
    "metadata",
    "paper_accounts",
    "paper_fills",
    "paper_orders",
    "paper_positions",
    "users",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
"""JSON documents: JSONB on PostgreSQL (indexable, compact), JSON text elsewhere."""


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A UTC timestamp: stored naive on SQLite, as ``timestamptz`` on PostgreSQL; always read back aware."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: quantfleet stores timezone-aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _id(**kw: Any) -> sa.String:
    return sa.String(32, **kw)


jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", _id(), nullable=False, unique=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(200), nullable=False, index=True),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("parent_id", _id(), sa.ForeignKey("jobs.id"), nullable=True, index=True),
    sa.Column("spec", JSONDoc, nullable=False),
    sa.Column("spec_hash", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(200), nullable=True),
    sa.Column("lease_expires_at", UTCDateTime, nullable=True),
    sa.Column("submitted_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("cancel_requested_at", UTCDateTime, nullable=True),
    sa.Column("cancelled_by", sa.String(200), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    # Why the job ended, one of quantfleet.jobs.EndReason (revision 0007; NULL for jobs that ended before it).
    sa.Column("reason", sa.String(32), nullable=True),
    sa.Column("metrics", JSONDoc, nullable=True),
    # What a claim scans: queued jobs by priority, then submission order.
    sa.Index("ix_jobs_claim", "state", "priority", "seq"),
    # What the reaper scans: running jobs by lease expiry.
    sa.Index("ix_jobs_lease", "state", "lease_expires_at"),
    # What a fair claim groups: queued jobs per priority and owner, oldest first (revision 0002).
    sa.Index("ix_jobs_fair", "state", "priority", "owner", "seq"),
    # What quotas count: one owner's queued or running jobs (revision 0002).
    sa.Index("ix_jobs_owner_state", "owner", "state"),
    # Metrics read the jobs that ended since the last scrape.
    sa.Index("ix_jobs_finished_at", "finished_at"),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("job_id", _id(), sa.ForeignKey("jobs.id"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("worker", sa.String(200), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
    sa.Column("lease_expires_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
)

job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", _id(), sa.ForeignKey("jobs.id"), nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("from_state", sa.String(16), nullable=True),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", _id(), sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("job_id", "name", name="uq_artifacts_job_id_name"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("owner", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("job_id", _id(), sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column("spec_hash", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("admin", sa.Boolean, nullable=False),
    # NULL: no limit. A job's owner without a row here has no limits at all (single-user mode).
    sa.Column("max_running", sa.Integer, nullable=True),
    sa.Column("max_queued", sa.Integer, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("user_name", sa.String(64), sa.ForeignKey("users.name"), nullable=False, index=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_used_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
)

http_idempotency = sa.Table(
    "http_idempotency",
    metadata,
    sa.Column("owner", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("body_sha256", sa.String(64), nullable=False),
    # NULL while the first request with this key is being processed.
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("response", JSONDoc, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False, index=True),
)


# -- live and paper trading (revision 0005) --------------------------------------------------

paper_accounts = sa.Table(
    "paper_accounts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("cash", sa.Float, nullable=False),
    sa.Column("starting_cash", sa.Float, nullable=False),
    sa.Column("config", JSONDoc, nullable=False),
    sa.Column("next_order", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

paper_positions = sa.Table(
    "paper_positions",
    metadata,
    sa.Column("account_id", sa.String(64), sa.ForeignKey("paper_accounts.id"), primary_key=True),
    sa.Column("symbol", sa.String(64), primary_key=True),
    sa.Column("quantity", sa.Float, nullable=False),
    sa.Column("average_cost", sa.Float, nullable=False),
    sa.Column("realized_pnl", sa.Float, nullable=False),
    sa.Column("last_price", sa.Float, nullable=True),
)

paper_orders = sa.Table(
    "paper_orders",
    metadata,
    sa.Column("account_id", sa.String(64), sa.ForeignKey("paper_accounts.id"), primary_key=True),
    sa.Column("client_id", sa.String(64), primary_key=True),
    sa.Column("broker_id", sa.String(32), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("quantity", sa.Float, nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("limit_price", sa.Float, nullable=True),
    sa.Column("stop_price", sa.Float, nullable=True),
    sa.Column("tif", sa.String(8), nullable=False),
    sa.Column("target", sa.String(16), nullable=True),
    sa.Column("target_value", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("filled_quantity", sa.Float, nullable=False),
    sa.Column("average_price", sa.Float, nullable=False),
    sa.Column("stop_triggered", sa.Boolean, nullable=False),
    sa.Column("expires_day", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # What a new bar scans: the account's open orders.
    sa.Index("ix_paper_orders_open", "account_id", "status", "seq"),
)

paper_fills = sa.Table(
    "paper_fills",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.String(64), sa.ForeignKey("paper_accounts.id"), nullable=False, index=True),
    sa.Column("client_id", sa.String(64), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("bar_at", UTCDateTime, nullable=False),
    sa.Column("quantity", sa.Float, nullable=False),
    sa.Column("price", sa.Float, nullable=False),
    sa.Column("commission", sa.Float, nullable=False),
    sa.Column("slippage", sa.Float, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("id", _id(), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("owner", sa.String(200), nullable=False, index=True),
    sa.Column("code_sha256", sa.String(64), nullable=False),
    sa.Column("broker", sa.String(32), nullable=False),
    sa.Column("account", sa.String(64), nullable=False),
    # The whole DeploymentSpec (strategy version, parameters, trigger, limits, fill settings).
    sa.Column("spec", JSONDoc, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("state", JSONDoc, nullable=False),
    sa.Column("runs", sa.Integer, nullable=False),
    sa.Column("next_run_at", UTCDateTime, nullable=True),
    sa.Column("last_run_at", UTCDateTime, nullable=True),
    sa.Column("heartbeat_at", UTCDateTime, nullable=True),
    sa.Column("last_bar_at", UTCDateTime, nullable=True),
    sa.Column("risk_day", sa.String(10), nullable=True),
    sa.Column("day_start_equity", sa.Float, nullable=True),
    sa.Column("day_orders", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

deployment_runs = sa.Table(
    "deployment_runs",
    metadata,
    sa.Column("deployment_id", _id(), sa.ForeignKey("deployments.id"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("job_id", _id(), nullable=True),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    # One run per due time: a scheduler restarted at the same minute does not fire it twice.
    sa.UniqueConstraint("deployment_id", "due_at", name="uq_deployment_runs_deployment_id_due_at"),
)

deployment_orders = sa.Table(
    "deployment_orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment_id", _id(), sa.ForeignKey("deployments.id"), nullable=False),
    sa.Column("run", sa.Integer, nullable=False),
    sa.Column("client_id", sa.String(64), nullable=False),
    sa.Column("symbol", sa.String(64), nullable=False),
    sa.Column("request", JSONDoc, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("broker_id", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("deployment_id", "client_id", name="uq_deployment_orders_deployment_id_client_id"),
)

deployment_equity = sa.Table(
    "deployment_equity",
    metadata,
    sa.Column("deployment_id", _id(), sa.ForeignKey("deployments.id"), primary_key=True),
    sa.Column("at", UTCDateTime, primary_key=True),
    sa.Column("cash", sa.Float, nullable=False),
    sa.Column("equity", sa.Float, nullable=False),
)

ingest_schedules = sa.Table(
    "ingest_schedules",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    # The whole IngestJob (vendor, symbols, frequency, cron trigger, window, mode).
    sa.Column("spec", JSONDoc, nullable=False),
    sa.Column("next_at", UTCDateTime, nullable=True),
    sa.Column("last_run_at", UTCDateTime, nullable=True),
    sa.Column("last_snapshot", sa.BigInteger, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
