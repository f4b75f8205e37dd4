"""Add ingestion schedules: data pulls from a vendor on a cron schedule, run by the scheduler.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from quantfleet.store.models import JSONDoc, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_schedules",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("spec", JSONDoc, nullable=False),
        sa.Column("next_at", UTCDateTime(), nullable=True),
        sa.Column("last_run_at", UTCDateTime(), nullable=True),
        sa.Column("last_snapshot", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ingest_schedules")),
    )


def downgrade() -> None:
    op.drop_table("ingest_schedules")
