"""The error answers of the platform API: `{"requestId", "message"}` with the status, and
`providerMessage` (the provider's own words) when the provider refused (SPEC section 9)."""

from __future__ import annotations

import json
import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from relaybox.core.errors import Conflict, InvalidInput, NotFound, ProviderRefused

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error_content(message: str, provider_message: str | None = None) -> dict[str, str]:
    content = {"requestId": uuid.uuid4().hex, "message": message}
    if provider_message:
        content["providerMessage"] = provider_message
    return content


def error_body(message: str) -> bytes:
    """An error answer's body, for handlers that write ASGI messages themselves."""
    return json.dumps(error_content(message)).encode()


def error_response(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    provider_message: str | None = None,
) -> JSONResponse:
    content = error_content(message, provider_message)
    return JSONResponse(content, status_code=status, headers=headers)


def input_message(exc: InvalidInput) -> str:
    if exc.field and not exc.message.startswith(exc.field):
        return f"{exc.field}: {exc.message}"
    return exc.message


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        said = exc.provider_message if isinstance(exc, ProviderRefused) else None
        return error_response(400, input_message(exc), provider_message=said)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return error_response(404, exc.message)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return error_response(409, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return error_response(400, f"{where or 'request'}: {first.get('msg', 'invalid input')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return error_response(500, "internal error")
