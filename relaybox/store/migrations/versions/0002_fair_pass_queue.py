"""fair pass queue: instances.pass_queued_at

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04

Change passes are claimed oldest request first (`pass_queued_at`), not lowest id first,
so a busy instance no longer delays the others.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("pass_queued_at", sa.DateTime(), nullable=True))
    op.create_index("ix_instances_pass_queued_at", "instances", ["pass_queued_at"])


def downgrade() -> None:
    op.drop_index("ix_instances_pass_queued_at", table_name="instances")
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("pass_queued_at")
