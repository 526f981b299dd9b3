"""What an Open Connectors client does, written from the public record, not from relaybox.

Sources (see docs/compatibility.md):
* devportal: github.com/cloud-elements/devportal (the Cloud Elements developer docs)
* churros: github.com/varunpal72/churros (a copy of cloud-elements/churros, the platform
  test suite Cloud Elements ran against its own API)
* sample-app-ui: github.com/cloud-elements/sample-app-ui
* ezra: github.com/CloudElementsOpenLabs/ezra-sample-app
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support.stack import (
    APP_KEY,
    APP_SECRET,
    OAUTH_CALLBACK,
    ORG_SECRET,
    USER_SECRET,
    Stack,
)

SIGNATURE_KEY = "MySecretEventSignatureKey"
"""The key devportal docs/guides/event-management/security.md uses in its samples."""

MASK = "********"


def authorization(*parts: str, **secrets: str) -> dict[str, str]:
    """The ``Authorization`` header with the named parts in the given order.

    ``authorization("Element", "User", Element=token)`` -> ``Element <token>, User <user>``;
    User and Organization default to the bootstrap organization's secrets.
    """
    values = {"User": USER_SECRET, "Organization": ORG_SECRET, **secrets}
    return {"Authorization": ", ".join(f"{part} {values[part]}" for part in parts)}


PLATFORM = authorization("User", "Organization")
"""What churros src/core/defaults.js sends for platform calls."""


def instance_body(
    code: str,
    name: str = "API Instance",
    *,
    events_to: str | None = None,
    signature_key: str | None = SIGNATURE_KEY,
    tags: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The create body of devportal _includes/Elements/dropbox/authenticate.md, with the
    event keys of _includes/Elements/dropbox/events.md when `events_to` is given."""
    configuration: dict[str, Any] = {
        "oauth.api.key": APP_KEY,
        "oauth.api.secret": APP_SECRET,
        "oauth.callback.url": OAUTH_CALLBACK,
    }
    if events_to is not None:
        configuration["event.notification.enabled"] = True
        configuration["event.notification.callback.url"] = events_to
        if signature_key is not None:
            configuration["event.notification.signature.key"] = signature_key
    configuration.update(extra)
    return {
        "element": {"key": "dropbox"},
        "providerData": {"code": code},
        "configuration": configuration,
        "tags": ["Test"] if tags is None else tags,
        "name": name,
    }


async def create(
    stack: Stack,
    account: str,
    name: str = "API Instance",
    *,
    path: str = "/instances",
    headers: dict[str, str] | None = None,
    **options: Any,
) -> httpx.Response:
    """Get a code the way a user's browser does, then POST the documented body."""
    code = await stack.authorize_in_browser(account)
    body = instance_body(code, name, **options)
    return await stack.http.post(f"{stack.api}{path}", json=body, headers=headers or PLATFORM)


async def created(stack: Stack, account: str, name: str = "API Instance", **options: Any) -> Any:
    answer = await create(stack, account, name, **options)
    assert answer.status_code == 200, answer.text
    return answer.json()


def elements_signature(key: str, body: bytes) -> str:
    """The receiver's check, as devportal docs/guides/event-management/security.md shows it
    (Node: ``createHmac('sha256', key).update(body).digest('base64')``, prefixed ``sha256=``)
    and as churros src/test/platform/events/events.js asserts it."""
    return (
        "sha256=" + base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
    )


@dataclass
class BearerLog:
    """Wraps the sandbox and records the bearer token of each Dropbox API call by path."""

    app: ASGIApp
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            bearer = headers.get("authorization", "")
            if bearer.startswith("Bearer "):
                self.calls.append((scope["path"], bearer.removeprefix("Bearer ")))
        await self.app(scope, receive, send)


def bearer_log() -> tuple[Callable[[ASGIApp], ASGIApp], Callable[[], BearerLog]]:
    """A `wrap_sandbox` for running_stack, and a getter for the log it made."""
    holder: list[BearerLog] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        holder.append(BearerLog(app))
        return holder[0]

    return wrap, lambda: holder[0]


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    """Await `check()` until it returns something truthy."""

    async def loop() -> Any:
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.1)

    return await asyncio.wait_for(loop(), timeout)
