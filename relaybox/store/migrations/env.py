"""Alembic environment: runs on the connection relaybox hands over (see store/db.py)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from relaybox.store.tables import Base

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `relaybox db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
