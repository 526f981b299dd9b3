"""push_channels: Google Drive's change channels, and who is making an instance's next one

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

Google Drive notifies relaybox through `changes.watch` channels: one per instance,
renewed before it expires (pipeline/channels.py). Each channel's id, the hash of its
secret token, the resource id that stops it and its expiry are kept here;
`instances.channel_lease_until` keeps two workers from making a channel each.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel_lease_until", sa.DateTime(), nullable=True))
    op.create_table(
        "push_channels",
        sa.Column("channel_id", sa.String(length=64), nullable=False),
        sa.Column(
            "instance_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("instances.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=200), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("channel_id"),
    )
    op.create_index("ix_push_channels_instance_id", "push_channels", ["instance_id"])


def downgrade() -> None:
    op.drop_index("ix_push_channels_instance_id", table_name="push_channels")
    op.drop_table("push_channels")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("channel_lease_until")
