"""Small request helpers shared by the routers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Request

from relaybox.api.errors import ApiError
from relaybox.runtime import Runtime

MAX_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]
"""A database id in a URL path: bounded, so a huge number is a 400 and not an overflow."""


def utc(value: datetime | None, field: str) -> datetime | None:
    """A query-string time as aware UTC (naive means UTC); 400 when out of range."""
    if value is None:
        return None
    try:
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC)
    except OverflowError:
        raise ApiError(400, f"{field}: out of range") from None


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise ApiError(400, "body: a JSON object is required")
    try:
        return json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, integers past 4300 digits
        raise ApiError(400, f"body: not valid JSON ({exc})") from None
    except RecursionError:
        raise ApiError(400, "body: JSON nested too deeply") from None
