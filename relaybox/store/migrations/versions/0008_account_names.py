"""instances: the account's email and display name; attempts found by time

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-05

The console lists each instance by the Dropbox account's email and display name (from
`users/get_current_account`, read on create and on re-authentication) rather than its
`dbid:` id. Instances made before this revision have neither until they are
re-authenticated; the console shows their account id meanwhile.

`ix_attempts_attempted_at`: the console's overview counts the attempts of the last 24
hours, delivered and failed, hour by hour; the index lets it read only those.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_email", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("account_name", sa.String(length=200), nullable=True))
    op.create_index("ix_attempts_attempted_at", "attempts", ["attempted_at"])


def downgrade() -> None:
    op.drop_index("ix_attempts_attempted_at", table_name="attempts")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("account_name")
        batch_op.drop_column("account_email")
