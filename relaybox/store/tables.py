"""The database tables (SQLAlchemy 2 declarative), shared by SQLite and PostgreSQL.

Times are stored as naive UTC and handed out as aware UTC (`UTCDateTime`), so both
backends behave the same.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from relaybox.core.clock import utcnow

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsoleSession(Base):
    """A console sign-in (web/session.py). The cookie carries a random session id; only its
    hash is kept here, and deleting the row ends the session (store/console_sessions.py)."""

    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Instance(Base):
    """A connector instance: one provider account connected by one organization."""

    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # Who created it (the answer's `user`); NULL once that user is gone.
    user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL", name="fk_instances_user_id")
    )
    # Not unique: Open Connectors clients give every instance the same name (SPEC section 9).
    name: Mapped[str] = mapped_column(String(200))
    element_key: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_enc: Mapped[str] = mapped_column(Text)
    # The configuration as given, with every secret removed (those live in secrets_enc).
    configuration: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Fernet-encrypted JSON: app secret, signature key, access and refresh tokens.
    secrets_enc: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    app_key: Mapped[str | None] = mapped_column(String(200))
    account_id: Mapped[str | None] = mapped_column(String(100), index=True)
    # The account's email and display name as the provider last told them (migration 0008).
    account_email: Mapped[str | None] = mapped_column(String(320))
    account_name: Mapped[str | None] = mapped_column(String(200))
    events_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    vendor_type: Mapped[str] = mapped_column(String(20), default="webhooks")
    ordered: Mapped[bool] = mapped_column(Boolean, default=False)
    valid: Mapped[bool] = mapped_column(Boolean, default=True)
    status_message: Mapped[str | None] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    indexing: Mapped[bool] = mapped_column(Boolean, default=False)
    cursor: Mapped[str | None] = mapped_column(Text)
    access_token_expires_at: Mapped[datetime | None]
    # Change passes: a request bumps sync_requested; a finished pass sets sync_done to the
    # value it started from, so requests made during a pass coalesce into one more pass.
    sync_requested: Mapped[int] = mapped_column(Integer, default=0)
    sync_done: Mapped[int] = mapped_column(Integer, default=0)
    sync_notification: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sync_not_before: Mapped[datetime | None]
    # When the oldest pass request not yet taken up by a pass was made: passes are claimed
    # oldest request first, across instances and processes (NULL while a pass runs).
    pass_queued_at: Mapped[datetime | None] = mapped_column(index=True)
    # Consecutive failed passes (provider errors): the back-off before the next one grows.
    sync_failures: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    subscription_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # After a re-activation, notifications up to this one drain strictly in order.
    drain_through_pk: Mapped[int | None] = mapped_column(BigInteger)
    # Polling (pipeline/poller.py): when the next poll is due, when the last one finished.
    next_poll_at: Mapped[datetime | None] = mapped_column(index=True)
    last_poll_at: Mapped[datetime | None]
    # Longpoll (pipeline/longpoll.py): the process holding this instance's longpoll.
    longpoll_owner: Mapped[str | None] = mapped_column(String(64))
    longpoll_until: Mapped[datetime | None]
    # Push channels (pipeline/channels.py): a worker making this instance's next channel
    # holds it until then, so two processes never make one each (migration 0009).
    channel_lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PushChannel(Base):
    """A provider push channel of one instance (Google Drive's `changes.watch`).

    The row is written before the provider is asked for the channel (its first message
    may come before the answer), with no `resource_id`; the answer fills it in. Only the
    token's hash is kept: a notification's `X-Goog-Channel-Token` is hashed and compared.
    """

    __tablename__ = "push_channels"

    channel_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("instances.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(200))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IndexEntry(Base):
    """What relaybox knows of one object in the provider account (for create/update/move)."""

    __tablename__ = "index_entries"
    __table_args__ = (Index("ix_index_entries_path", "instance_id", "path_lower"),)

    instance_id: Mapped[int] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True
    )
    object_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    # The index's key: the lowercased path, or "/id/id/..." for a provider that names
    # parents rather than paths (core/normalize.py says why).
    path_lower: Mapped[str] = mapped_column(Text)
    path_display: Mapped[str] = mapped_column(Text)
    tag: Mapped[str] = mapped_column(String(10))
    rev: Mapped[str | None] = mapped_column(String(64))


class InboxItem(Base):
    """A verified provider notification, kept as received."""

    __tablename__ = "inbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    element_key: Mapped[str] = mapped_column(String(64))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """One POST to a callback URL: the outbox row, written with the events it carries."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_due", "status", "next_attempt_at"),
        Index("ix_notifications_instance", "instance_id", "pk"),
        # Retention (store/retention.py): the oldest delivered ones first, and the failed ones.
        Index("ix_notifications_finished", "status", "delivered_at"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text)
    event_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class Event(Base):
    """A standardized event (CREATED / UPDATED / DELETED) about one provider object."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_instance", "instance_id", "id"),
        Index("ix_events_org", "org_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"))
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    notification_pk: Mapped[int] = mapped_column(
        ForeignKey("notifications.pk", ondelete="CASCADE"), index=True
    )
    event_type: Mapped[str] = mapped_column(String(10))
    object_type: Mapped[str] = mapped_column(String(20))
    object_id: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    new_path: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)


class Attempt(Base):
    """One try at delivering a notification."""

    __tablename__ = "attempts"
    # The console's overview reads the last 24 hours' attempts (migration 0008).
    __table_args__ = (Index("ix_attempts_attempted_at", "attempted_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    notification_pk: Mapped[int] = mapped_column(
        ForeignKey("notifications.pk", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[str | None] = mapped_column(Text)
    # [name, value] pairs, in the order sent and received (migration 0006).
    request_headers: Mapped[list[Any] | None] = mapped_column(JSON)
    response_headers: Mapped[list[Any] | None] = mapped_column(JSON)
