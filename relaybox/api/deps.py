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


def utc(value: datetime | None) -> datetime | None:
    """A query-string time as aware UTC (naive means UTC). A time whose UTC form falls
    outside years 1-9999 (`0001-01-01T00:00:00+01:00`) is the nearest one that does not:
    it is a valid date-time, and every stored time is after or before it alike."""
    if value is None:
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return aware.astimezone(UTC)
    except OverflowError:
        limit = datetime.min if aware.year == datetime.min.year else datetime.max
        return limit.replace(tzinfo=UTC)


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
