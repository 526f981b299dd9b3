"""attempts: the request headers sent and the response headers received

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

The console's delivery page shows each attempt exactly as it went: every header of the
request (both signatures included; never the signature key) and the callback's answer
headers (at most about 2 KiB of them, like the body excerpt). Attempts made before this
revision have neither.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_headers", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("response_headers", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_column("response_headers")
        batch_op.drop_column("request_headers")
