"""The provider port: what relaybox needs of a storage provider, in neutral values.

Every provider (`connectors/<provider>/`) implements `Connector`; nothing outside its
folder reads the provider's wire format. The pipeline pages through `ChangePage`s of
neutral `Change`s (connectors/paging.py), normalizes them into CREATED / UPDATED /
DELETED events against the instance's index (core/normalize.py) and never sees HTTP:
a connector raises the neutral errors of `core/errors.py` (TokenExpired, ProviderAuthError,
RateLimited, CursorReset, ProviderUnavailable, ProviderRejected).

What differs between providers is said by capabilities, not by the pipeline asking which
provider it talks to:

| capability               | Dropbox                          | Google Drive                  |
|--------------------------|----------------------------------|-------------------------------|
| `paths`                  | every change names its path      | a name and a parent; the path |
|                          | (`folders` answers [])           | comes from the index, or from |
|                          |                                  | `folders` for a parent the    |
|                          |                                  | index lacks (`files.get`)     |
| `moves_list_descendants` | a moved folder's content is      | only the folder changes       |
|                          | listed again at its new path     |                               |
| `waits`                  | `files/list_folder/longpoll`     | none: webhooks or polling     |
| `push`                   | "app": one webhook per app,      | "channel": a watch per        |
|                          | signed with the app secret       | account, with its own token   |
|                          | (`webhooks`)                     | (`channels`)                  |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import httpx

Kind = Literal["file", "folder"]


@dataclass(frozen=True)
class Change:
    """One object as a provider reports it in a listing or a change page.

    `object_id` is None only for a removal the provider names by path (Dropbox's
    `deleted` entries). `path_lower`/`path_display` are None when the provider gives a
    `name` and a `parent_id` instead (the path is then built from the parent's, through
    the index). `raw` is the provider's own entry, kept for `message.relaybox.entries`.
    """

    object_id: str | None
    kind: Kind | None  # None: a removal (what it was, the index knows)
    path_lower: str | None = None
    path_display: str | None = None
    name: str | None = None
    parent_id: str | None = None
    version: str | None = None  # changes when a file's content does (Dropbox's rev)
    removed: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChangePage:
    """One page of a listing or of changes since a cursor."""

    changes: list[Change]
    cursor: str  # where the next page, or the next pass, starts
    has_more: bool


@dataclass(frozen=True)
class Tokens:
    """An OAuth grant: the access token, the refresh token and when the access ends."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    account_id: str | None = None


@dataclass(frozen=True)
class Account:
    """The provider account behind a grant."""

    account_id: str
    email: str | None = None
    display_name: str | None = None


@dataclass(frozen=True)
class Wait:
    """The end of a wait for changes: whether there are some, and how long the provider
    asked to be left alone before the next wait (seconds)."""

    changes: bool
    backoff: float = 0.0


class WebhookVerifier(Protocol):
    """Checks a provider notification and says which accounts it is about."""

    element_key: str
    signature_header: str

    def well_formed(self, signature: str) -> bool:
        """Whether `signature` has the provider's shape: checked before any HMAC is run."""
        ...

    def verify(self, app_secret: str, body: bytes, signature: str) -> bool: ...

    def accounts(self, body: Any) -> list[str]: ...

    def for_account(self, body: Any, account: str) -> dict[str, Any]:
        """The notification as if it had named only `account` (what its instance keeps)."""
        ...


@dataclass(frozen=True)
class Channel:
    """A push channel the provider made: where its notifications come from, until when."""

    channel_id: str
    resource_id: str
    expires_at: datetime


@dataclass(frozen=True)
class ChannelMessage:
    """One notification of a push channel, as its request headers said it. `token` is the
    channel's secret, checked against the one relaybox made; `changed` is False for the
    provider's hello on a new channel (nothing changed); `raw` is what events carry."""

    channel_id: str
    token: str
    changed: bool
    raw: dict[str, Any]


class ChannelPush(Protocol):
    """Push channels (`push = "channel"`): one watch per account, made, renewed and
    stopped by relaybox (pipeline/channels.py), each with a secret token of its own."""

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
        """Ask the provider to notify `address` of the account's changes after `cursor`
        until about `expires_at` (the provider may end it sooner: `Channel.expires_at`)."""
        ...

    async def stop(self, access_token: str, channel: Channel) -> None: ...

    def message(self, headers: Mapping[str, str]) -> ChannelMessage:
        """A notification's headers (lower-case names) read (InvalidInput when they are
        not a notification of this provider's)."""
        ...


class Connector(Protocol):
    """One provider, as relaybox's pipeline, services and console use it."""

    element_key: str
    name: str  # as users know it ("Dropbox", "Google Drive")
    paths: bool
    moves_list_descendants: bool
    waits: bool  # `wait_for_changes` works: longpoll instances are possible
    push: Literal["app", "channel"] | None
    webhooks: WebhookVerifier | None  # push "app"
    channels: ChannelPush | None  # push "channel"

    def authorize_url(self, *, app_key: str, redirect_uri: str | None, state: str | None) -> str:
        """The provider's consent page for an authorization-code grant with offline access."""
        ...

    def waiting_on(self, http: httpx.AsyncClient) -> Connector:
        """The same connector over another HTTP client and without in-call retries: the
        longpoll hub's own pools (pipeline/longpoll.py), which back off on their own."""
        ...

    def consent_origin(self) -> str:
        """The origin of the consent page (the console's form-action CSP allows it)."""
        ...

    async def exchange_code(
        self, *, code: str, app_key: str, app_secret: str, redirect_uri: str | None
    ) -> Tokens: ...

    async def refresh(self, *, refresh_token: str, app_key: str, app_secret: str) -> Tokens: ...

    async def revoke(self, access_token: str) -> None: ...

    async def account(self, access_token: str) -> Account: ...

    async def list_all(self, access_token: str, cursor: str | None = None) -> ChangePage:
        """The account's objects: the first page (cursor None) or the next one."""
        ...

    async def changes(self, access_token: str, cursor: str) -> ChangePage:
        """What changed since `cursor` (CursorReset: the cursor is void; list again)."""
        ...

    async def latest_cursor(self, access_token: str) -> str:
        """A cursor at the present moment, without listing."""
        ...

    async def folders(
        self, access_token: str, account_id: str | None, ids: Sequence[str]
    ) -> list[Change]:
        """The folders with these ids as they are now, as present changes (name and
        parent), for placing changes whose parent a pass neither read nor holds in its
        index (`paths` False; connectors/paging.with_parents). Left out: the account's
        root (what sits in it stays at `/`) and folders that are trashed or gone. A
        provider whose changes carry their paths answers []."""
        ...

    async def aclose(self) -> None:
        """Close the connector's HTTP clients."""
        ...

    async def wait_for_changes(self, cursor: str, seconds: int) -> Wait | None:
        """Hold until something changes after `cursor`, at most `seconds` (plus the
        provider's jitter); None: this provider cannot wait (poll instead)."""
        ...
