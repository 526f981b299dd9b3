"""Errors in the shapes Dropbox answers them, and the JSON response they all use.

Every JSON answer carries ``Content-Type: application/json`` exactly: the
official SDK rejects ``; charset=utf-8``.
"""

import json
from typing import Any

from starlette.responses import PlainTextResponse, Response

from relaybox.sandbox.types import JSON


def json_response(
    data: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(json.dumps(data), status_code, headers=headers, media_type="application/json")


def error_summary(error: JSON) -> str:
    """``path/not_found/..`` from ``{".tag": "path", "path": {".tag": "not_found"}}``."""
    parts: list[str] = []
    current: Any = error
    while isinstance(current, dict) and ".tag" in current:
        tag = current[".tag"]
        parts.append(tag)
        inner = current.get(tag)
        if not isinstance(inner, dict):  # a struct member: its fields sit beside ".tag"
            inner = next(
                (v for k, v in current.items() if k != ".tag" and isinstance(v, dict)), None
            )
        current = inner
    return "/".join(parts) + "/.."


class DropboxHTTPError(Exception):
    """An error answer; ``response()`` renders it."""

    def response(self) -> Response:
        raise NotImplementedError


class BadRequest(DropboxHTTPError):
    """400 with a plain-text message (bad arguments, missing auth header)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def response(self) -> Response:
        return PlainTextResponse(self.message, 400)


class AuthFailure(DropboxHTTPError):
    """401 with an ``AuthError`` (``invalid_access_token``, ``expired_access_token``)."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag

    def response(self) -> Response:
        error = {".tag": self.tag}
        return json_response({"error_summary": error_summary(error), "error": error}, 401)


class RouteError(DropboxHTTPError):
    """409 with the route's error union."""

    def __init__(self, error: JSON) -> None:
        super().__init__(error.get(".tag"))
        self.error = error

    def response(self) -> Response:
        summary = error_summary(self.error)
        return json_response({"error_summary": summary, "error": self.error}, 409)


class RateLimited(DropboxHTTPError):
    """429 with ``Retry-After`` and a ``RateLimitError``."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after

    def response(self) -> Response:
        error = {"reason": {".tag": "too_many_requests"}, "retry_after": self.retry_after}
        body = {"error_summary": "too_many_requests/...", "error": error}
        return json_response(body, 429, headers={"Retry-After": str(self.retry_after)})


class ServerFault(DropboxHTTPError):
    """Any other status, plain text (5xx, or an injected odd code)."""

    def __init__(self, status: int, retry_after: int | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.retry_after = retry_after

    def response(self) -> Response:
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        return PlainTextResponse(f"Sandbox fault: HTTP {self.status}", self.status, headers)
