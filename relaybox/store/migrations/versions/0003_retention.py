"""retention: an index on notifications(status, delivered_at)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

Delivered and failed notifications are pruned after `RELAYBOX_RETENTION_DAYS`
(`store/retention.py`); this index lets the prune find the oldest delivered ones (and the
failed ones) without reading the whole table.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_notifications_finished", "notifications", ["status", "delivered_at"])


def downgrade() -> None:
    op.drop_index("ix_notifications_finished", table_name="notifications")
