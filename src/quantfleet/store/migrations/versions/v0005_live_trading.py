"""Add live and paper trading: paper accounts (cash, positions, orders, fills) and deployments (runs, orders, equity).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from quantfleet.store.models import JSONDoc, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("code_sha256", sa.String(length=64), nullable=False),
        sa.Column("broker", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("spec", JSONDoc, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("state", JSONDoc, nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("next_run_at", UTCDateTime(), nullable=True),
        sa.Column("last_run_at", UTCDateTime(), nullable=True),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
        sa.Column("last_bar_at", UTCDateTime(), nullable=True),
        sa.Column("risk_day", sa.String(length=10), nullable=True),
        sa.Column("day_start_equity", sa.Float(), nullable=True),
        sa.Column("day_orders", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
    )
    op.create_index(op.f("ix_deployments_owner"), "deployments", ["owner"], unique=False)
    op.create_table(
        "paper_accounts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("cash", sa.Float(), nullable=False),
        sa.Column("starting_cash", sa.Float(), nullable=False),
        sa.Column("config", JSONDoc, nullable=False),
        sa.Column("next_order", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_accounts")),
    )
    op.create_table(
        "deployment_equity",
        sa.Column("deployment_id", sa.String(length=32), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("cash", sa.Float(), nullable=False),
        sa.Column("equity", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_deployment_equity_deployment_id_deployments")
        ),
        sa.PrimaryKeyConstraint("deployment_id", "at", name=op.f("pk_deployment_equity")),
    )
    op.create_table(
        "deployment_orders",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deployment_id", sa.String(length=32), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("request", JSONDoc, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("broker_id", sa.String(length=64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_deployment_orders_deployment_id_deployments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_orders")),
        sa.UniqueConstraint("deployment_id", "client_id", name="uq_deployment_orders_deployment_id_client_id"),
    )
    op.create_table(
        "deployment_runs",
        sa.Column("deployment_id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_deployment_runs_deployment_id_deployments")
        ),
        sa.PrimaryKeyConstraint("deployment_id", "number", name=op.f("pk_deployment_runs")),
        sa.UniqueConstraint("deployment_id", "due_at", name="uq_deployment_runs_deployment_id_due_at"),
    )
    op.create_table(
        "paper_fills",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("bar_at", UTCDateTime(), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("commission", sa.Float(), nullable=False),
        sa.Column("slippage", sa.Float(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["paper_accounts.id"], name=op.f("fk_paper_fills_account_id_paper_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_fills")),
    )
    op.create_index(op.f("ix_paper_fills_account_id"), "paper_fills", ["account_id"], unique=False)
    op.create_table(
        "paper_orders",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("broker_id", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("limit_price", sa.Float(), nullable=True),
        sa.Column("stop_price", sa.Float(), nullable=True),
        sa.Column("tif", sa.String(length=8), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=True),
        sa.Column("target_value", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("filled_quantity", sa.Float(), nullable=False),
        sa.Column("average_price", sa.Float(), nullable=False),
        sa.Column("stop_triggered", sa.Boolean(), nullable=False),
        sa.Column("expires_day", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["paper_accounts.id"], name=op.f("fk_paper_orders_account_id_paper_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "client_id", name=op.f("pk_paper_orders")),
    )
    op.create_index("ix_paper_orders_open", "paper_orders", ["account_id", "status", "seq"], unique=False)
    op.create_table(
        "paper_positions",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Float(), nullable=False),
        sa.Column("average_cost", sa.Float(), nullable=False),
        sa.Column("realized_pnl", sa.Float(), nullable=False),
        sa.Column("last_price", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["paper_accounts.id"], name=op.f("fk_paper_positions_account_id_paper_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "symbol", name=op.f("pk_paper_positions")),
    )


def downgrade() -> None:
    op.drop_table("paper_positions")
    op.drop_index("ix_paper_orders_open", table_name="paper_orders")
    op.drop_table("paper_orders")
    op.drop_index(op.f("ix_paper_fills_account_id"), table_name="paper_fills")
    op.drop_table("paper_fills")
    op.drop_table("deployment_runs")
    op.drop_table("deployment_orders")
    op.drop_table("deployment_equity")
    op.drop_table("paper_accounts")
    op.drop_index(op.f("ix_deployments_owner"), table_name="deployments")
    op.drop_table("deployments")
