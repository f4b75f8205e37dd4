"""Add http_idempotency: the responses of HTTP POSTs by (owner, Idempotency-Key), kept 24 h.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from quantfleet.store.models import JSONDoc, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "http_idempotency",
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("response", JSONDoc, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("owner", "key", name="pk_http_idempotency"),
    )
    op.create_index("ix_http_idempotency_created_at", "http_idempotency", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_http_idempotency_created_at", table_name="http_idempotency")
    op.drop_table("http_idempotency")
