"""Time as relaybox shows it: aware UTC, rendered `%Y-%m-%dT%H:%M:%SZ`."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else iso(value)
