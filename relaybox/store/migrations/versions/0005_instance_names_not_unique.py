"""instances: names not unique; the user who created each instance

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Open Connectors clients give every instance the same name (SPEC section 9), so the
`uq_instances_org_name` constraint goes. `instances.user_id` keeps who created an instance
(the `user` of the instance answer); instances made before it are given their
organization's first user. SQLite alters tables in batch mode (a copy of the table).

The downgrade restores the constraint and fails while two instances of one organization
share a name: rename them first.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_constraint("uq_instances_org_name", type_="unique")
        batch_op.add_column(
            sa.Column(
                "user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.create_foreign_key(
            "fk_instances_user_id", "users", ["user_id"], ["id"], ondelete="SET NULL"
        )
    op.execute(
        "UPDATE instances SET user_id = "
        "(SELECT min(users.id) FROM users WHERE users.org_id = instances.org_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_constraint("fk_instances_user_id", type_="foreignkey")
        batch_op.drop_column("user_id")
        batch_op.create_unique_constraint("uq_instances_org_name", ["org_id", "name"])
