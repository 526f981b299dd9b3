"""The plumbing of a control API under ``/_sandbox``: reading JSON bodies and fields,
answering ``{"error": "..."}``, and routes from a table.

Each sandbox keeps its own endpoints and its own JSON rendering (the two providers'
sandboxes render JSON differently); a handler answers a JSON-able value or a Response,
or raises :class:`ControlError` (rendered ``{"error": message}`` with its status) or an
error its sandbox knows how to answer (``failure``).
"""

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaybox.sandbox_kit.types import JSON

Handler = Callable[[Request], Awaitable[Any]]
Endpoint = Callable[[Request], Awaitable[Response]]
Render = Callable[[Any, int], Response]
"""A sandbox's JSON response: ``render(data, status)``."""
Failure = Callable[[Exception], Response | None]
"""The answer to a sandbox's own error, or None for an error it does not answer."""


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def no_failure(error: Exception) -> Response | None:
    return None


def guard(handler: Handler, render: Render, failure: Failure = no_failure) -> Endpoint:
    async def run(request: Request) -> Response:
        try:
            result = await handler(request)
        except ControlError as error:
            return render({"error": error.message}, error.status)
        except Exception as error:
            answer = failure(error)
            if answer is None:
                raise
            return answer
        return result if isinstance(result, Response) else render(result, 200)

    return run


def routes(
    table: Iterable[tuple[str, Handler, str]], render: Render, failure: Failure = no_failure
) -> list[Route]:
    """``(path, handler, method)`` rows as guarded routes."""
    return [
        Route(path, guard(handler, render, failure), methods=[method])
        for path, handler, method in table
    ]


async def body(request: Request) -> JSON:
    """The request's JSON object (``{}`` when empty)."""
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        raise ControlError(400, "body: not JSON") from None
    if not isinstance(data, dict):
        raise ControlError(400, "body: expected a JSON object")
    return data


def text(data: JSON, name: str, required: bool = True) -> str | None:
    """A string field; a required one must be non-empty."""
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise ControlError(400, f"{name}: required string")
    return value


def flag(data: JSON, name: str) -> bool | None:
    """A boolean field, or None when absent."""
    value = data.get(name)
    if value is not None and not isinstance(value, bool):
        raise ControlError(400, f"{name}: expected a boolean")
    return value


def count(data: JSON, name: str, default: int | None) -> int | None:
    """A non-negative integer field (``default`` when absent; null stays None)."""
    value = data.get(name, default)
    if value is not None and (type(value) is not int or value < 0):
        raise ControlError(400, f"{name}: expected a non-negative integer")
    return value
