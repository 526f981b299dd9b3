"""An in-memory provider behind the provider port (relaybox/connectors/base.py).

Accounts hold objects and an append-only change log; a cursor is a position in the log
(`<account>:<position>`), so "what changed since" is exact. Access tokens expire by the
injected clock, refresh tokens can be revoked, an account's cursors can be reset, and
faults can be queued for the next calls. Nothing here does I/O: tests drive relaybox's
real pass code (claims, the pass, the index, the outbox) on SQLite with it, and move time
with the clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx

from relaybox.connectors.base import (
    Account,
    Change,
    ChangePage,
    Channel,
    ChannelMessage,
    ChannelPush,
    Connector,
    Kind,
    Tokens,
    Wait,
    WebhookVerifier,
)
from relaybox.core.clock import Clock
from relaybox.core.errors import (
    CursorReset,
    InvalidInput,
    ProviderAuthError,
    ProviderUnavailable,
    TokenExpired,
)

TOKEN_LIFETIME = timedelta(hours=1)


@dataclass
class Stored:
    object_id: str
    kind: Kind
    path: str
    version: str | None


@dataclass
class MemoryAccount:
    account_id: str
    email: str
    objects: dict[str, Stored] = field(default_factory=dict)
    log: list[Change] = field(default_factory=list)
    reset_before: int = 0  # cursors before this log position are void (CursorReset)
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # wakes longpolls

    def append(self, change: Change) -> None:
        self.log.append(change)
        self.changed.set()


class MemoryWebhooks:
    element_key = "memory"
    signature_header = "X-Memory-Signature"

    def well_formed(self, signature: str) -> bool:
        return signature.startswith("ok:")

    def verify(self, app_secret: str, body: bytes, signature: str) -> bool:
        return signature == f"ok:{app_secret}"

    def accounts(self, body: Any) -> list[str]:
        return sorted(set(body.get("accounts", []))) if isinstance(body, dict) else []

    def for_account(self, body: Any, account: str) -> dict[str, Any]:
        return {"accounts": [account]}


@dataclass
class Watch:
    """A push channel as the in-memory provider holds it."""

    account_id: str
    token: str
    expires_at: datetime
    stopped: bool = False


class MemoryChannels:
    """`ChannelPush` in memory: `watches` by channel id; `failures` makes the next calls
    to `watch` fail as a provider outage would; `meanwhile`, if set, runs while the
    provider makes a channel (what another worker does in that moment)."""

    def __init__(self, connector: MemoryConnector) -> None:
        self.connector = connector
        self.watches: dict[str, Watch] = {}
        self.failures = 0
        self.meanwhile: Callable[[], Awaitable[None]] | None = None

    def live(self) -> list[str]:
        now = self.connector.clock.now()
        return [i for i, w in self.watches.items() if not w.stopped and w.expires_at > now]

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
        account_id = self.connector._account_of(access_token)
        if self.failures:
            self.failures -= 1
            raise ProviderUnavailable("the provider answered 503", status=503)
        self.watches[channel_id] = Watch(account_id, token, expires_at)
        if self.meanwhile is not None:
            await self.meanwhile()
        return Channel(channel_id, f"resource-{channel_id}", expires_at)

    async def stop(self, access_token: str, channel: Channel) -> None:
        self.connector._account_of(access_token)
        self.watches[channel.channel_id].stopped = True

    def message(self, headers: Mapping[str, str]) -> ChannelMessage:
        raise InvalidInput("the in-memory provider sends no HTTP notifications")


class MemoryConnector:
    """A `Connector` over in-memory accounts; `calls` counts what relaybox asked."""

    element_key = "memory"
    name = "Memory"
    paths = True
    moves_list_descendants = True
    waits = False
    push: Literal["app", "channel"] | None = "app"
    channels: ChannelPush | None = None

    def __init__(self, clock: Clock, *, page_size: int = 2, push_channels: bool = False) -> None:
        self.clock = clock
        self.page_size = page_size
        self.webhooks: WebhookVerifier | None = MemoryWebhooks()
        self.watches = MemoryChannels(self)
        if push_channels:  # as Google Drive: a watch per account instead of app webhooks
            self.push, self.webhooks, self.channels = "channel", None, self.watches
        self.accounts: dict[str, MemoryAccount] = {}
        self.access: dict[str, tuple[str, Any]] = {}  # token -> (account, expires_at)
        self.refresh_tokens: dict[str, str] = {}  # token -> account
        self.calls: Counter[str] = Counter()
        self.revoked: set[str] = set()  # access tokens of revoked grants
        self._ids = itertools.count(1)

    # --- the world, as a test changes it ----------------------------------------------

    def add_account(self, email: str) -> str:
        account_id = f"acct-{next(self._ids)}"
        self.accounts[account_id] = MemoryAccount(account_id, email)
        return account_id

    def grant(self, account_id: str, lifetime: timedelta = TOKEN_LIFETIME) -> Tokens:
        access, refresh = f"at-{next(self._ids)}", f"rt-{next(self._ids)}"
        expires = self.clock.now() + lifetime
        self.access[access] = (account_id, expires)
        self.refresh_tokens[refresh] = account_id
        return Tokens(access, refresh, expires, account_id)

    def put(self, account_id: str, path: str, kind: Kind = "file") -> str:
        """Create or change the object at `path`; its id."""
        account = self.accounts[account_id]
        found = next((o for o in account.objects.values() if o.path == path), None)
        if found is None:
            found = Stored(f"id:{next(self._ids)}", kind, path, None)
            account.objects[found.object_id] = found
        if kind == "file":
            found.version = f"v{next(self._ids)}"
        self._log(account, found)
        return found.object_id

    def move(self, account_id: str, old: str, new: str) -> None:
        account = self.accounts[account_id]
        found = next(o for o in account.objects.values() if o.path == old)
        found.path = new
        self._log(account, found)

    def remove(self, account_id: str, path: str) -> None:
        account = self.accounts[account_id]
        found = next(o for o in account.objects.values() if o.path == path)
        del account.objects[found.object_id]
        change = Change(None, None, path.lower(), path, removed=True, raw={"removed": path})
        account.append(change)

    def reset(self, account_id: str) -> None:
        """Void every cursor of the account (the next pass relists and reconciles)."""
        account = self.accounts[account_id]
        account.reset_before = len(account.log) + 1  # every cursor handed out so far

    def revoke_grants(self, account_id: str) -> None:
        for token in [t for t, a in self.refresh_tokens.items() if a == account_id]:
            del self.refresh_tokens[token]
        for token in [t for t, (a, _) in self.access.items() if a == account_id]:
            del self.access[token]
            self.revoked.add(token)

    def _log(self, account: MemoryAccount, stored: Stored) -> None:
        account.append(_change(stored))

    # --- the port -------------------------------------------------------------------

    def waiting_on(self, http: httpx.AsyncClient) -> Connector:
        return self

    def authorize_url(self, *, app_key: str, redirect_uri: str | None, state: str | None) -> str:
        return f"https://memory.invalid/authorize?client_id={app_key}&state={state}"

    def consent_origin(self) -> str:
        return "https://memory.invalid"

    async def aclose(self) -> None:
        return None

    async def exchange_code(
        self, *, code: str, app_key: str, app_secret: str, redirect_uri: str | None
    ) -> Tokens:
        self.calls["exchange_code"] += 1
        return self.grant(code)

    async def refresh(self, *, refresh_token: str, app_key: str, app_secret: str) -> Tokens:
        self.calls["refresh"] += 1
        account_id = self.refresh_tokens.get(refresh_token)
        if account_id is None:
            raise ProviderAuthError("invalid_grant: the refresh token was revoked", status=400)
        access = f"at-{next(self._ids)}"
        expires = self.clock.now() + TOKEN_LIFETIME
        self.access[access] = (account_id, expires)
        return Tokens(access, refresh_token, expires, account_id)

    async def revoke(self, access_token: str) -> None:
        self.access.pop(access_token, None)

    async def account(self, access_token: str) -> Account:
        found = self.accounts[self._account_of(access_token)]
        return Account(found.account_id, found.email, found.email.split("@")[0])

    async def list_all(self, access_token: str, cursor: str | None = None) -> ChangePage:
        self.calls["list_all"] += 1
        account = self.accounts[self._account_of(access_token)]
        if cursor is None:
            cursor = f"listing:{account.account_id}:0:{len(account.log)}"
        _, _, offset_text, at_text = cursor.split(":")
        offset, at = int(offset_text), int(at_text)
        objects = sorted(account.objects.values(), key=lambda o: o.path.lower())
        page = objects[offset : offset + self.page_size]
        end = offset + len(page)
        if end < len(objects):
            return ChangePage(
                [_change(o) for o in page], f"listing:{account.account_id}:{end}:{at}", True
            )
        return ChangePage([_change(o) for o in page], f"{account.account_id}:{at}", False)

    async def changes(self, access_token: str, cursor: str) -> ChangePage:
        self.calls["changes"] += 1
        account = self.accounts[self._account_of(access_token)]
        owner, _, position_text = cursor.partition(":")
        position = int(position_text)
        if owner != account.account_id or position < account.reset_before:
            raise CursorReset("cursor reset", status=409)
        page = account.log[position : position + self.page_size]
        end = position + len(page)
        return ChangePage(list(page), f"{account.account_id}:{end}", end < len(account.log))

    async def latest_cursor(self, access_token: str) -> str:
        account = self.accounts[self._account_of(access_token)]
        return f"{account.account_id}:{len(account.log)}"

    async def wait_for_changes(self, cursor: str, seconds: int) -> Wait | None:
        """Held until the account changes past `cursor` (or `seconds` pass), as a
        longpoll is."""
        account_id, _, position = cursor.partition(":")
        account = self.accounts[account_id]
        if len(account.log) <= int(position):
            account.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(account.changed.wait(), seconds)
        return Wait(len(account.log) > int(position))

    async def folders(
        self, access_token: str, account_id: str | None, ids: Sequence[str]
    ) -> list[Change]:
        return []  # its changes carry their paths

    def _account_of(self, access_token: str) -> str:
        held = self.access.get(access_token)
        if held is None:
            said = "the grant was revoked" if access_token in self.revoked else "unknown token"
            raise ProviderAuthError(f"invalid access token: {said}", status=401)
        account_id, expires = held
        if expires <= self.clock.now():
            raise TokenExpired("access token expired", status=401)
        return account_id


def _change(stored: Stored) -> Change:
    raw = {"id": stored.object_id, "path": stored.path, "kind": stored.kind}
    return Change(
        stored.object_id,
        stored.kind,
        stored.path.lower(),
        stored.path,
        version=stored.version,
        raw=raw,
    )
