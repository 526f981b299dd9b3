"""The Dropbox connector: Dropbox's wire format, behind the provider port (connectors/base.py).

| Dropbox entry (`.tag`)  | neutral `Change`                                             |
|-------------------------|--------------------------------------------------------------|
| `file`                  | kind file, its id, path, `rev` as the version                |
| `folder`                | kind folder, its id and path                                 |
| `deleted`               | removed, named by path only (Dropbox gives no id)            |
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from relaybox.connectors.base import (
    Account,
    Change,
    ChangePage,
    ChannelPush,
    Tokens,
    Wait,
    WebhookVerifier,
)
from relaybox.connectors.dropbox.client import DropboxClient, authorize_url
from relaybox.connectors.dropbox.webhook import accounts_in, for_account
from relaybox.core.signing import verify_dropbox_signature, well_formed_dropbox_signature


class DropboxWebhooks:
    element_key = "dropbox"
    signature_header = "X-Dropbox-Signature"

    def well_formed(self, signature: str) -> bool:
        return well_formed_dropbox_signature(signature)

    def verify(self, app_secret: str, body: bytes, signature: str) -> bool:
        return verify_dropbox_signature(app_secret, body, signature)

    def accounts(self, body: Any) -> list[str]:
        return accounts_in(body)

    def for_account(self, body: Any, account: str) -> dict[str, Any]:
        return for_account(body, account)


def change_of(entry: Mapping[str, Any]) -> Change:
    """One `list_folder` entry as a neutral change."""
    tag = entry.get(".tag")
    path_lower = str(entry.get("path_lower") or str(entry.get("path_display", "")).lower())
    path_display = str(entry.get("path_display") or path_lower)
    if tag == "deleted":
        return Change(None, None, path_lower, path_display, removed=True, raw=entry)
    kind: Literal["file", "folder"] = "folder" if tag == "folder" else "file"
    object_id = str(entry.get("id") or path_lower)
    version = str(entry["rev"]) if kind == "file" and "rev" in entry else None
    return Change(object_id, kind, path_lower, path_display, version=version, raw=entry)


def page_of(answer: Mapping[str, Any]) -> ChangePage:
    entries = answer.get("entries", [])
    return ChangePage(
        [change_of(entry) for entry in entries if isinstance(entry, Mapping)],
        str(answer["cursor"]),
        bool(answer.get("has_more")),
    )


class DropboxConnector:
    """`Connector` over the Dropbox API v2 client."""

    element_key = "dropbox"
    name = "Dropbox"
    paths = True
    moves_list_descendants = True
    waits = True
    push: Literal["app", "channel"] | None = "app"
    channels: ChannelPush | None = None

    def __init__(self, client: DropboxClient) -> None:
        self.client = client
        self.webhooks: WebhookVerifier | None = DropboxWebhooks()

    def waiting_on(self, http: httpx.AsyncClient) -> DropboxConnector:
        """The same connector over another HTTP client, without in-call retries (the
        longpoll hub's own pools, which back off on their own)."""
        return DropboxConnector(
            DropboxClient(self.client.urls, http, retries=0, clock=self.client.clock)
        )

    async def aclose(self) -> None:
        await self.client.http.aclose()

    def authorize_url(self, *, app_key: str, redirect_uri: str | None, state: str | None) -> str:
        return authorize_url(
            self.client.urls, app_key=app_key, redirect_uri=redirect_uri, state=state
        )

    def consent_origin(self) -> str:
        parts = urlsplit(self.client.urls.www)
        return f"{parts.scheme}://{parts.netloc}"

    async def exchange_code(
        self, *, code: str, app_key: str, app_secret: str, redirect_uri: str | None
    ) -> Tokens:
        return await self.client.exchange_code(
            code=code, app_key=app_key, app_secret=app_secret, redirect_uri=redirect_uri
        )

    async def refresh(self, *, refresh_token: str, app_key: str, app_secret: str) -> Tokens:
        return await self.client.refresh(
            refresh_token=refresh_token, app_key=app_key, app_secret=app_secret
        )

    async def revoke(self, access_token: str) -> None:
        await self.client.revoke(access_token)

    async def account(self, access_token: str) -> Account:
        answer = await self.client.get_current_account(access_token)
        name = answer.get("name")
        display = name.get("display_name") if isinstance(name, dict) else None
        email = answer.get("email")
        return Account(
            str(answer["account_id"]),
            email=str(email) if isinstance(email, str) else None,
            display_name=str(display) if isinstance(display, str) else None,
        )

    async def list_all(self, access_token: str, cursor: str | None = None) -> ChangePage:
        if cursor is None:
            return page_of(await self.client.list_folder(access_token))
        return page_of(await self.client.list_folder_continue(access_token, cursor))

    async def changes(self, access_token: str, cursor: str) -> ChangePage:
        return page_of(await self.client.list_folder_continue(access_token, cursor))

    async def latest_cursor(self, access_token: str) -> str:
        return await self.client.get_latest_cursor(access_token)

    async def wait_for_changes(self, cursor: str, seconds: int) -> Wait | None:
        answer = await self.client.longpoll(cursor, seconds)
        return Wait(bool(answer.get("changes")), _seconds(answer.get("backoff")))

    async def folders(
        self, access_token: str, account_id: str | None, ids: Sequence[str]
    ) -> list[Change]:
        return []  # every Dropbox change names its path


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return 0.0
    return max(0.0, float(value))
