"""The Google Drive connector: Drive API v3's wire format, behind the provider port.

| Drive                                        | neutral `Change`                            |
|----------------------------------------------|---------------------------------------------|
| file, `mimeType` folder                      | kind folder, its id, name and parent        |
| any other file                               | kind file; `md5Checksum` (or the head       |
|                                              | revision, or `modifiedTime`) as the version |
| change `removed: true`, or `file.trashed`    | removed, named by id                        |

Drive gives a name and parents, not a path: paths are built from the index
(core/normalize.py), and a moved folder's content is not listed again.

A change names its parent folder by id. When a pass can place it by neither its index nor
the folders it read (the folder's own change comes later in the feed, or in a later page
of the first listing), `folders` reads those folders with `files.get`; the account's root
folder is never one of them (its id is read once per account, `files.get("root")`).

Cursors are Drive page tokens. A listing (`files.list`, folders first) has no cursor of
its own: its pages carry `list:["<start page token>", "<next files page>"]`, where the
start page token was read before the first page, so what changes while the account is
listed comes afterwards as changes; the last page's cursor is the start page token itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from relaybox.connectors.base import (
    Account,
    Change,
    ChangePage,
    Channel,
    ChannelMessage,
    ChannelPush,
    Tokens,
    Wait,
    WebhookVerifier,
)
from relaybox.connectors.googledrive.client import FOLDER, DriveClient, authorize_url
from relaybox.core.errors import InvalidInput, ProviderRejected

LISTING = "list:"
ROOT_ALIAS = "root"  # what `files.get` takes for the account's root folder
MAX_HEADER = 512
ROOTS_KEPT = 10_000  # accounts whose root folder id the connector remembers
LOOKUPS_AT_ONCE = 8  # `files.get` calls of one `folders` call in flight together


def change_of(file: Mapping[str, Any]) -> Change:
    """One Drive file resource as a neutral change (a trashed file is removed)."""
    object_id = str(file["id"])
    if file.get("trashed"):
        return removed(object_id, file)
    parents = file.get("parents")
    parent = parents[0] if isinstance(parents, list) and parents else None
    kind: Literal["file", "folder"] = "folder" if file.get("mimeType") == FOLDER else "file"
    version = None
    if kind == "file":
        version = next(
            (
                str(file[k])
                for k in ("md5Checksum", "headRevisionId", "modifiedTime")
                if file.get(k)
            ),
            None,
        )
    return Change(
        object_id,
        kind,
        name=str(file.get("name") or object_id),
        parent_id=str(parent) if parent is not None else None,
        version=version,
        raw=file,
    )


def removed(object_id: str, raw: Mapping[str, Any]) -> Change:
    return Change(object_id, None, removed=True, raw=raw)


def changes_page(answer: Mapping[str, Any]) -> ChangePage:
    """A `changes.list` answer: `nextPageToken` (more now) or `newStartPageToken` (done)."""
    out: list[Change] = []
    for entry in answer.get("changes", []):
        if not isinstance(entry, Mapping) or not entry.get("fileId"):
            continue  # a shared drive's own change: relaybox watches My Drive
        file = entry.get("file")
        if entry.get("removed") or not isinstance(file, Mapping):
            out.append(removed(str(entry["fileId"]), entry))
        else:
            out.append(change_of(file))
    following = answer.get("nextPageToken")
    if following:
        return ChangePage(out, str(following), has_more=True)
    return ChangePage(out, str(answer["newStartPageToken"]), has_more=False)


def listing_cursor(start: str, next_page: str) -> str:
    return LISTING + json.dumps([start, next_page])


def parse_listing_cursor(cursor: str) -> tuple[str, str] | None:
    """(start page token, next files page) of a listing cursor; None for a page token."""
    if not cursor.startswith(LISTING):
        return None
    try:
        start, next_page = json.loads(cursor[len(LISTING) :])
    except (ValueError, TypeError):
        raise InvalidInput("not a Google Drive cursor", field="cursor") from None
    return str(start), str(next_page)


class DriveChannels:
    """`changes.watch` channels and the notifications they POST (headers, empty body)."""

    def __init__(self, client: DriveClient) -> None:
        self.client = client

    async def watch(
        self,
        access_token: str,
        cursor: str,
        *,
        channel_id: str,
        token: str,
        address: str,
        expires_at: datetime,
    ) -> Channel:
        listing = parse_listing_cursor(cursor)
        page_token = listing[0] if listing else cursor
        answer = await self.client.watch(
            access_token,
            page_token,
            channel_id=channel_id,
            channel_token=token,
            address=address,
            expiration=expires_at,
        )
        expiration = answer.get("expiration")
        granted = (
            datetime.fromtimestamp(int(str(expiration)) / 1000, tz=expires_at.tzinfo)
            if str(expiration or "").isdigit()
            else expires_at
        )
        return Channel(str(answer.get("id", channel_id)), str(answer["resourceId"]), granted)

    async def stop(self, access_token: str, channel: Channel) -> None:
        await self.client.stop(access_token, channel.channel_id, channel.resource_id)

    def message(self, headers: Mapping[str, str]) -> ChannelMessage:
        channel_id = headers.get("x-goog-channel-id", "")
        state = headers.get("x-goog-resource-state", "")
        if not channel_id or len(channel_id) > 64:
            raise InvalidInput("X-Goog-Channel-ID is required", field="X-Goog-Channel-ID")
        if not state or len(state) > 32:
            raise InvalidInput("X-Goog-Resource-State is required", field="X-Goog-Resource-State")
        raw = {
            "channelId": channel_id,
            "resourceState": state,
            "messageNumber": headers.get("x-goog-message-number", "")[:32],
            "resourceId": headers.get("x-goog-resource-id", "")[:MAX_HEADER],
            "channelExpiration": headers.get("x-goog-channel-expiration", "")[:64],
        }
        token = headers.get("x-goog-channel-token", "")[:MAX_HEADER]
        return ChannelMessage(channel_id, token, changed=state != "sync", raw=raw)


class GoogleDriveConnector:
    """`Connector` over the Drive API v3 client."""

    element_key = "googledrive"
    name = "Google Drive"
    paths = False
    moves_list_descendants = False
    waits = False
    push: Literal["app", "channel"] | None = "channel"
    webhooks: WebhookVerifier | None = None

    def __init__(self, client: DriveClient) -> None:
        self.client = client
        self.channels: ChannelPush | None = DriveChannels(client)
        self._roots: dict[str, str] = {}  # account -> the id of its My Drive root folder

    def waiting_on(self, http: httpx.AsyncClient) -> GoogleDriveConnector:
        return GoogleDriveConnector(
            DriveClient(self.client.urls, http, retries=0, clock=self.client.clock)
        )

    async def aclose(self) -> None:
        await self.client.http.aclose()

    def authorize_url(self, *, app_key: str, redirect_uri: str | None, state: str | None) -> str:
        return authorize_url(
            self.client.urls, client_id=app_key, redirect_uri=redirect_uri, state=state
        )

    def consent_origin(self) -> str:
        parts = urlsplit(self.client.urls.accounts)
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
        user = (await self.client.about(access_token)).get("user")
        if not isinstance(user, Mapping) or not user.get("permissionId"):
            raise InvalidInput("Google Drive named no user for the token", field="providerData")
        email, name = user.get("emailAddress"), user.get("displayName")
        return Account(
            str(user["permissionId"]),
            email=email if isinstance(email, str) else None,
            display_name=name if isinstance(name, str) else None,
        )

    async def list_all(self, access_token: str, cursor: str | None = None) -> ChangePage:
        if cursor is None:
            start, next_page = await self.client.start_page_token(access_token), None
        else:
            parsed = parse_listing_cursor(cursor)
            if parsed is None:
                raise InvalidInput("not a Google Drive listing cursor", field="cursor")
            start, next_page = parsed
        answer = await self.client.list_files(access_token, next_page)
        files = answer.get("files", [])
        page = [change_of(f) for f in files if isinstance(f, Mapping) and f.get("id")]
        following = answer.get("nextPageToken")
        if following:
            return ChangePage(page, listing_cursor(start, str(following)), has_more=True)
        return ChangePage(page, start, has_more=False)

    async def changes(self, access_token: str, cursor: str) -> ChangePage:
        if parse_listing_cursor(cursor) is not None:  # an account still being indexed
            return await self.list_all(access_token, cursor)
        return changes_page(await self.client.list_changes(access_token, cursor))

    async def latest_cursor(self, access_token: str) -> str:
        return await self.client.start_page_token(access_token)

    async def wait_for_changes(self, cursor: str, seconds: int) -> Wait | None:
        return None  # Drive has no longpoll: webhooks (channels) or polling

    async def folders(
        self, access_token: str, account_id: str | None, ids: Sequence[str]
    ) -> list[Change]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        root = await self._root(access_token, account_id)
        wanted = [i for i in wanted if i not in (root, ROOT_ALIAS)]
        found: list[Change] = []
        for start in range(0, len(wanted), LOOKUPS_AT_ONCE):
            chunk = wanted[start : start + LOOKUPS_AT_ONCE]
            answers = await asyncio.gather(
                *(self._folder(access_token, i) for i in chunk), return_exceptions=True
            )
            for answer in answers:
                if isinstance(answer, BaseException):
                    raise answer
                if answer is not None:
                    found.append(answer)
        return found

    async def _root(self, access_token: str, account_id: str | None) -> str:
        """The id of the account's My Drive folder (what its top-level items name as their
        parent), read once per account."""
        known = self._roots.get(account_id) if account_id else None
        if known is not None:
            return known
        root = str((await self.client.get_file(access_token, ROOT_ALIAS, fields="id"))["id"])
        if account_id:
            if len(self._roots) >= ROOTS_KEPT:
                del self._roots[next(iter(self._roots))]
            self._roots[account_id] = root
        return root

    async def _folder(self, access_token: str, folder_id: str) -> Change | None:
        """The folder as a present change; None when it is gone, trashed or no folder."""
        try:
            file = await self.client.get_file(access_token, folder_id)
        except ProviderRejected as exc:
            if exc.status == 404:
                return None
            raise
        change = change_of(file) if file.get("id") else None
        return change if change is not None and change.kind == "folder" else None
