"""Running one Dropbox route: faults, authentication, arguments, error shapes."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relaybox.sandbox.errors import (
    AuthFailure,
    BadRequest,
    DropboxHTTPError,
    RateLimited,
    RouteError,
    ServerFault,
    json_response,
)
from relaybox.sandbox.faults import Fault
from relaybox.sandbox.model import Account
from relaybox.sandbox.state import Sandbox
from relaybox.sandbox.tokens import AccessToken, TokenRejected
from relaybox.sandbox.types import JSON

UPLOAD_LIMIT = 150 * 1024 * 1024


@dataclass
class Call:
    """What a route handler gets."""

    sandbox: Sandbox
    route: str
    arg: JSON
    token: AccessToken | None = None
    body: bytes = b""
    fault: Fault | None = None
    """A fault that asks for no error (``backoff``)."""

    @property
    def account(self) -> Account:
        assert self.token is not None
        return self.sandbox.account(self.token.account_id)

    def bad(self, message: str) -> BadRequest:
        return BadRequest(f'Error in call to API function "{self.route}": {message}')

    def text(self, name: str, default: str | None = None) -> str:
        value = self.arg.get(name, default)
        if not isinstance(value, str):
            raise self.bad(f"request body: {name}: expected a string")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.arg.get(name, default)
        if not isinstance(value, bool):
            raise self.bad(f"request body: {name}: expected a boolean")
        return value

    def number(self, name: str, default: int, low: int, high: int) -> int:
        value = self.arg.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.bad(f"request body: {name}: expected an integer from {low} to {high}")
        return value


Handler = Callable[[Call], Awaitable[Any]]


def fault_error(fault: Fault) -> DropboxHTTPError | None:
    """The error an injected fault answers with (None: delay only, or ``backoff``)."""
    status = fault.status
    if not isinstance(status, int) or status == 200:
        return None
    if status == 429:
        return RateLimited(fault.retry_after or 1)
    if status == 401:
        return AuthFailure("invalid_access_token")
    if status == 409:
        return RouteError({".tag": "other"})
    if status == 400:
        return BadRequest("Error in call to API function: sandbox fault")
    return ServerFault(status, fault.retry_after)


async def apply_fault(sandbox: Sandbox, route: str) -> Fault | None:
    """Consume a fault for ``route``: sleep its delay, raise its error."""
    fault = sandbox.faults.take(route)
    if fault is None:
        return None
    if fault.delay_ms:
        await asyncio.sleep(fault.delay_ms / 1000)
    error = fault_error(fault)
    if error is not None:
        raise error
    return fault


def authenticate(sandbox: Sandbox, request: Request, route: str) -> AccessToken:
    header = request.headers.get("authorization")
    prefix = f'Error in call to API function "{route}": '
    if not header:
        raise BadRequest(
            prefix + 'Must provide HTTP header "Authorization" or URL parameter "authorization".'
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BadRequest(
            prefix + 'Invalid authorization value in HTTP header "Authorization": '
            f'"{header[:20]}". Expecting "Bearer <oauth2-access-token>".'
        )
    try:
        found = sandbox.tokens.check(token.strip())
    except TokenRejected as rejected:
        raise AuthFailure(rejected.tag) from None
    if found.account_id not in sandbox.accounts:
        raise AuthFailure("invalid_access_token")
    return found


def _parse_arg(route: str, raw: str | bytes, where: str) -> JSON:
    if not raw or raw in ("null", b"null"):
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise BadRequest(
            f'Error in call to API function "{route}": {where}: could not decode input as JSON'
        ) from None
    if not isinstance(value, dict):
        raise BadRequest(f'Error in call to API function "{route}": {where}: expected an object')
    return value


CORS_HACK = "text/plain; charset=dropbox-cors-hack"
RPC_TYPES = ("application/json", "application/json; charset=utf-8", CORS_HACK)
UPLOAD_TYPES = ("application/octet-stream", CORS_HACK)


def check_content_type(request: Request, route: str, body: bytes, upload: bool) -> None:
    """400 unless the body comes with a ``Content-Type`` Dropbox accepts for the route.

    An RPC call without a body (a route without arguments) needs none.
    """
    given = request.headers.get("content-type")
    if given is None and not body and not upload:
        return
    normalized = ";".join(part.strip() for part in (given or "").lower().split(";"))
    allowed = UPLOAD_TYPES if upload else RPC_TYPES
    if normalized.replace(";", "; ") in allowed:
        return
    expected = ", ".join(f'"{t}"' for t in allowed)
    raise BadRequest(
        f'Error in call to API function "{route}": Bad HTTP "Content-Type" header: '
        f'"{given or ""}".  Expecting one of {expected}.'
    )


def endpoint(
    sandbox: Sandbox, route: str, handler: Handler, *, auth: bool = True, upload: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """An ASGI endpoint for Dropbox route ``route`` (e.g. ``files/list_folder``)."""

    async def run(request: Request) -> Response:
        sandbox.webhooks.start()
        try:
            fault = await apply_fault(sandbox, route)
            token = authenticate(sandbox, request, route) if auth else None
            body = await request.body()
            check_content_type(request, route, body, upload)
            if upload:
                if len(body) > UPLOAD_LIMIT:
                    raise RouteError({".tag": "payload_too_large"})
                header = request.headers.get("dropbox-api-arg")
                if header is None:
                    raise BadRequest(
                        f'Error in call to API function "{route}": '
                        'Missing "Dropbox-API-Arg" HTTP header.'
                    )
                arg = _parse_arg(route, header, 'HTTP header "Dropbox-API-Arg"')
            else:
                arg = _parse_arg(route, body, "request body")
            result = await handler(Call(sandbox, route, arg, token, body if upload else b"", fault))
        except DropboxHTTPError as error:
            return error.response()
        return json_response(result)

    return run
