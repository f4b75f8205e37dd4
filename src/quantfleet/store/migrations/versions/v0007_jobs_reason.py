"""Record why each job ended (``jobs.reason``): the metrics count outcomes by reason, not only by final state.

Jobs that ended before this revision keep a NULL reason (shown as ``unknown``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("reason", sa.String(32), nullable=True))  # no table copy, even on SQLite


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("reason")
