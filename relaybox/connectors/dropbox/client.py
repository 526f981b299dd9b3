"""Async Dropbox API v2 client: one narrow seam (an `httpx.AsyncClient`) for all I/O.

Base URLs come from configuration, so the same client talks to Dropbox or to the sandbox.
Dropbox's answers are mapped onto `relaybox.core.errors` (SPEC section 3):

| answer                                   | raised                         |
|------------------------------------------|--------------------------------|
| 401 `expired_access_token`               | TokenExpired                   |
| 401 other, 400 `invalid_grant` on token  | ProviderAuthError              |
| 409 `reset`                              | CursorReset                    |
| 429                                      | RateLimited(retry_after)       |
| 5xx, timeout, connection error           | ProviderUnavailable            |
| 400 (plain text), other 409              | ProviderRejected               |
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from relaybox.connectors.base import Tokens
from relaybox.connectors.http import (
    OAuth2Client,
    bounded_wait,
    json_or_none,
    retry_after,
)
from relaybox.core.clock import Clock
from relaybox.core.errors import (
    CursorReset,
    ProviderAuthError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    TokenExpired,
)
from relaybox.httpclients import ClientPool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DropboxURLs:
    api: str = "https://api.dropboxapi.com"
    content: str = "https://content.dropboxapi.com"
    notify: str = "https://notify.dropboxapi.com"
    www: str = "https://www.dropbox.com"


def authorize_url(
    urls: DropboxURLs, *, app_key: str, redirect_uri: str | None, state: str | None
) -> str:
    params = {"client_id": app_key, "response_type": "code", "token_access_type": "offline"}
    if redirect_uri:
        params["redirect_uri"] = redirect_uri
    if state:
        params["state"] = state
    return f"{urls.www.rstrip('/')}/oauth2/authorize?{urlencode(params)}"


class DropboxClient(OAuth2Client):
    """Calls Dropbox with a given access token; knows nothing of instances or storage.

    A 5xx answer or a lost connection is retried within the call with jittered exponential
    back-off (`retry_base` seconds, doubled per try, `retries` times) before it is raised as
    `ProviderUnavailable` (connectors/http.py); every other error is raised at once.
    """

    provider = "Dropbox"

    def __init__(
        self,
        urls: DropboxURLs,
        http: httpx.AsyncClient | ClientPool,
        *,
        retry_base: float = 1.0,
        retries: int = 3,
        page_limit: int = 2000,
        rng: random.Random | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(http, retry_base=retry_base, retries=retries, rng=rng, clock=clock)
        self.urls = urls
        self.page_limit = page_limit

    # --- OAuth ---------------------------------------------------------------------

    async def revoke(self, access_token: str) -> None:
        await self.rpc("auth/token/revoke", None, access_token)

    async def token(self, form: dict[str, str], app_key: str, app_secret: str) -> Tokens:
        form = {**form, "client_id": app_key, "client_secret": app_secret}
        response = await self.retrying("POST", f"{self.urls.api}/oauth2/token", data=form)
        if response.status_code == 400:
            body = json_or_none(response)
            error = str(body.get("error", "")) if body else ""
            description = str(body.get("error_description", "")) if body else response.text
            message = f"Dropbox refused the token request: {error or response.text[:200]}"
            said = error or response.text[:200]
            if description and description != error:
                message += f" ({description[:200]})"
                said = f"{error}: {description[:200]}" if error else description[:200]
            raise ProviderAuthError(message, status=400, provider_message=said or None)
        data = self._check(response, "oauth2/token")
        return Tokens(
            access_token=str(data["access_token"]),
            refresh_token=data.get("refresh_token"),
            expires_at=self.expires_at(data.get("expires_in")),
            account_id=data.get("account_id"),
        )

    # --- RPC routes ----------------------------------------------------------------

    async def get_current_account(self, access_token: str) -> dict[str, Any]:
        return await self.rpc("users/get_current_account", None, access_token)

    async def get_latest_cursor(self, access_token: str) -> str:
        args = {"path": "", "recursive": True, "include_deleted": False}
        data = await self.rpc("files/list_folder/get_latest_cursor", args, access_token)
        return str(data["cursor"])

    async def list_folder(self, access_token: str) -> dict[str, Any]:
        args = {"path": "", "recursive": True, "include_deleted": False, "limit": self.page_limit}
        return await self.rpc("files/list_folder", args, access_token)

    async def list_folder_continue(self, access_token: str, cursor: str) -> dict[str, Any]:
        return await self.rpc("files/list_folder/continue", {"cursor": cursor}, access_token)

    async def longpoll(self, cursor: str, wait_seconds: int) -> dict[str, Any]:
        """Wait for changes after `cursor` (notify host, no Authorization header)."""
        return await self._call(
            "files/list_folder/longpoll",
            f"{self.urls.notify}/2/files/list_folder/longpoll",
            json={"cursor": cursor, "timeout": wait_seconds},
            # Dropbox holds a longpoll up to `timeout` plus 90 s of random jitter.
            timeout=wait_seconds + 120,
        )

    async def rpc(
        self, route: str, args: dict[str, Any] | None, access_token: str
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {access_token}"}
        url = f"{self.urls.api}/2/{route}"
        if args is None:
            return await self._call(route, url, headers=headers)
        return await self._call(route, url, headers=headers, json=args)

    async def _call(self, route: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """POST, retrying server errors and lost connections with back-off."""
        return self._check(await self.retrying("POST", url, **kwargs), route)

    # --- plumbing ------------------------------------------------------------------

    def _check(self, response: httpx.Response, route: str) -> dict[str, Any]:
        status = response.status_code
        if status == 200:
            data = json_or_none(response)
            return data if data is not None else {}
        body = json_or_none(response)
        summary = str(body.get("error_summary", "")) if body else ""
        said = summary or response.text[:300] or None  # the provider's words, as it put them
        if status == 401:
            tag = _error_tag(body)
            if tag == "expired_access_token":
                raise TokenExpired(
                    f"{route}: access token expired", status=401, provider_message=said
                )
            raise ProviderAuthError(
                f"{route}: Dropbox refused the credentials ({tag})",
                status=401,
                provider_message=said,
            )
        if status == 409 and summary.startswith("reset"):
            raise CursorReset(f"{route}: cursor reset", status=409, provider_message=said)
        if status == 429:
            raise RateLimited(
                f"{route}: rate limited",
                retry_after=_retry_after(response, body),
                status=429,
                provider_message=said,
            )
        if status >= 500:
            raise ProviderUnavailable(
                f"{route}: Dropbox answered {status}", status=status, provider_message=said
            )
        detail = summary or response.text[:300]
        log.warning("Dropbox rejected %s with %s: %s", route, status, detail)
        raise ProviderRejected(
            f"{route}: Dropbox answered {status}: {detail}", status=status, provider_message=said
        )


def _error_tag(body: dict[str, Any] | None) -> str:
    error = body.get("error") if body else None
    if isinstance(error, dict):
        return str(error.get(".tag", "unknown"))
    return "unknown"


def _retry_after(response: httpx.Response, body: dict[str, Any] | None) -> float:
    """Dropbox puts `retry_after` in a JSON body, or a Retry-After header on plain text."""
    error = body.get("error") if body else None
    if isinstance(error, dict) and isinstance(error.get("retry_after"), int | float):
        return bounded_wait(float(error["retry_after"]))
    return retry_after(response)
