"""The `Authorization` header: `User <secret>` with `Organization <secret>`, `Element <token>`
or both, the parts in any order (SPEC section 9)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select

from relaybox.api.errors import ApiError
from relaybox.api.throttle import FailureLimiter
from relaybox.crypto import same_secret, secret_hash
from relaybox.runtime import Runtime
from relaybox.store import tables
from relaybox.store.db import transaction

MAX_HEADER = 1024
FORMS = (
    frozenset({"User", "Organization"}),
    frozenset({"User", "Element"}),
    frozenset({"User", "Organization", "Element"}),
)
"""The accepted sets of parts; their order in the header does not matter."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: an organization's user, optionally limited to one instance."""

    org_id: int
    user_id: int
    instance_id: int | None = None


def parse_header(value: str) -> dict[str, str]:
    """`User a, Organization b` -> {"User": "a", "Organization": "b"}; {} when malformed."""
    parts: dict[str, str] = {}
    for piece in value.split(","):
        words = piece.strip().split()
        if len(words) != 2 or words[0] in parts:
            return {}
        parts[words[0]] = words[1]
    return parts


def unauthorized(message: str = "missing or invalid Authorization header") -> ApiError:
    return ApiError(401, message, {"WWW-Authenticate": "User, Organization"})


def failure_limiter(request: Request) -> FailureLimiter:
    """The app's failed-authentication limiter (one per app, created on first use)."""
    limiter: FailureLimiter | None = getattr(request.app.state, "auth_failures", None)
    if limiter is None:
        limiter = request.app.state.auth_failures = FailureLimiter()
    return limiter


async def authenticate(request: Request) -> Principal:
    """The caller, or 401; failures past the address's limit answer 429 (throttle.py)."""
    try:
        return await _authenticate(request)
    except ApiError:
        wait = failed_authentication(request) if request.headers.get("authorization") else None
        if wait is not None:
            raise ApiError(
                429, "too many failed authentications; try again later", {"Retry-After": str(wait)}
            ) from None
        raise


def failed_authentication(request: Request) -> int | None:
    """Count a failed authentication from the request's address (the API's, the console's
    sign-in); the seconds to wait when that address is over the limit, else None."""
    address = request.client.host if request.client else "unknown"
    return failure_limiter(request).failure(address)


async def _authenticate(request: Request) -> Principal:
    runtime: Runtime = request.app.state.runtime
    return await principal_for(runtime, request.headers.get("authorization", ""))


async def principal_for(runtime: Runtime, header: str) -> Principal:
    """The caller named by an Authorization value (the API's header, the console's session).

    Every secret given is checked: a wrong Organization secret is refused even beside a
    valid Element token. An Element part limits the caller to that instance, which must
    belong to the user's organization (otherwise the credentials do not belong together:
    401). Secrets are found by their hash and compared in constant time.
    """
    if not header or len(header) > MAX_HEADER:
        raise unauthorized()
    parts = parse_header(header)
    if frozenset(parts) not in FORMS:
        raise unauthorized()
    user_secret = parts["User"]
    async with transaction(runtime.sessions) as session:
        user = await session.scalar(
            select(tables.User).where(tables.User.secret_hash == secret_hash(user_secret))
        )
        if user is None or not same_secret(user_secret, user.secret_hash):
            raise unauthorized("invalid credentials")
        if "Organization" in parts:
            org = await session.get(tables.Organization, user.org_id)
            if org is None or not same_secret(parts["Organization"], org.secret_hash):
                raise unauthorized("invalid credentials")
        if "Element" not in parts:
            return Principal(user.org_id, user.id)
        token = parts["Element"]
        instance = await session.scalar(
            select(tables.Instance).where(tables.Instance.token_hash == secret_hash(token))
        )
        if (
            instance is None
            or instance.org_id != user.org_id
            or not same_secret(token, instance.token_hash)
        ):
            raise unauthorized("invalid credentials")
        return Principal(user.org_id, user.id, instance.id)


Caller = Annotated[Principal, Depends(authenticate)]
"""The authenticated caller, as a route parameter: `principal: Caller`."""
