"""The DriveSandbox: apps, accounts, their drives, tokens, channels, faults and time.

One object holds everything; routes call its methods. Every change to an account's files
goes through :meth:`DriveSandbox.change`, which persists the state (when a state file is
set) and queues a push message for each live channel of that account.

Time is ``clock() + time_offset``: tokens, channels and timestamps read it, so a test (or
the control API, ``POST /_sandbox/clock``) moves it forward instead of waiting.
"""

import pathlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from relaybox.gdrive_sandbox import ids, persistence
from relaybox.gdrive_sandbox.drive import Drive
from relaybox.gdrive_sandbox.errors import GoogleError, invalid, required
from relaybox.gdrive_sandbox.faults import Faults
from relaybox.gdrive_sandbox.model import Account, App, Channel
from relaybox.gdrive_sandbox.push import PushSender
from relaybox.gdrive_sandbox.tokens import AccessToken, TokenStore
from relaybox.sandbox_kit.statefile import StateFile

T = TypeVar("T")

CHANNEL_DEFAULT_SECONDS = 3600
CHANNEL_MAX_SECONDS = 604800
"""A changes channel lives an hour unless asked otherwise, a week at most (Google's rule)."""
CHANNEL_TYPES = frozenset({"web_hook", "webhook"})
PAGE_TOKEN_STEP = 1_000_000
"""A ``reset`` moves an account's page tokens this far: every token issued before is void."""


@dataclass
class WatchRequest:
    """The ``api#channel`` body of ``changes.watch``, checked."""

    id: str
    address: str
    token: str | None
    expiration_ms: int | None


class DriveSandbox:
    def __init__(
        self,
        *,
        push_delay: float = 0.2,
        state_file: pathlib.Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.time_offset = 0.0
        self.apps: dict[str, App] = {}
        self.accounts: dict[str, Account] = {}
        self.drives: dict[str, Drive] = {}
        self.page_token_base: dict[str, int] = {}
        """Per account: what is added to a log position to make its page token."""
        self.channels: dict[str, Channel] = {}
        """By resource id."""
        self.tokens = TokenStore(self.now)
        self.faults = Faults()
        self.state_file = StateFile(state_file, lambda: persistence.dump(self))
        self.push = PushSender(self.now, self.save, push_delay)
        saved = self.state_file.read()
        if saved is not None:
            persistence.load(self, saved)

    def now(self) -> float:
        return self.clock() + self.time_offset

    def advance(self, seconds: float) -> float:
        """Move the sandbox's time forward; answers the new time."""
        self.time_offset += seconds
        self.save()
        return self.now()

    # --------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start deferred background work (the ASGI lifespan calls this)."""
        self.push.start()

    async def aclose(self) -> None:
        await self.push.aclose()
        self.state_file.flush()

    def save(self) -> None:
        """Persist the state (when a state file is set), coalesced inside a running loop."""
        self.state_file.save()

    # ------------------------------------------------------ apps and accounts

    def register_app(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        name: str | None = None,
        redirect_uris: Iterable[str] | None = None,
    ) -> App:
        """Register an OAuth client (ids generated when not given), or update one."""
        key = client_id or ids.new_client_id()
        app = self.apps.get(key)
        if app is None:
            app = App(key, client_secret or ids.new_client_secret())
            self.apps[key] = app
        if client_secret:
            app.client_secret = client_secret
        if name:
            app.name = name
        if redirect_uris is not None:
            app.redirect_uris = list(redirect_uris)
        self.save()
        return app

    def create_account(self, email: str, display_name: str | None = None) -> Account:
        """Create an account, or answer the one that has ``email`` already."""
        for account in self.accounts.values():
            if account.email.lower() == email.lower():
                return account
        name = display_name or email.split("@")[0].replace(".", " ").title()
        permission_id = ids.new_permission_id()
        while permission_id in self.accounts:
            permission_id = ids.new_permission_id()
        account = Account(permission_id, email, name, ids.new_root_id())
        self.accounts[permission_id] = account
        self.drives[permission_id] = Drive(account.root_id, self.now())
        self.page_token_base[permission_id] = 0
        self.save()
        return account

    def account(self, permission_id: str) -> Account:
        """The account, or KeyError."""
        return self.accounts[permission_id]

    def authorize(
        self,
        client_id: str,
        permission_id: str,
        redirect_uri: str,
        scopes: list[str],
        *,
        offline: bool,
        consent_shown: bool = True,
    ) -> str:
        """Record consent of the account to the client; answers a code (KeyError if unknown)."""
        if client_id not in self.apps:
            raise KeyError(client_id)
        self.account(permission_id)
        code = self.tokens.issue_code(
            client_id,
            permission_id,
            redirect_uri,
            scopes,
            offline=offline,
            consent_shown=consent_shown,
        )
        self.save()
        return code

    # ------------------------------------------------------------------ files

    def change(self, permission_id: str, operation: Callable[[Drive], T]) -> T:
        """Apply ``operation`` to the account's drive and announce what changed."""
        drive = self.drives[permission_id]
        before = drive.latest()
        try:
            return operation(drive)
        finally:
            if drive.latest() != before:
                self.save()
                for channel in self.live_channels(permission_id):
                    self.push.change(channel)

    # ------------------------------------------------------------ page tokens

    def start_page_token(self, permission_id: str) -> str:
        return self.page_token(permission_id, self.drives[permission_id].latest())

    def page_token(self, permission_id: str, position: int) -> str:
        """Decimal, as Drive's: the log position, moved by the account's resets."""
        return str(self.page_token_base[permission_id] + position + 1)

    def position(self, permission_id: str, token: str) -> int:
        """The log position of a page token (400 ``invalid`` if this account did not issue it)."""
        if not token:
            raise required("pageToken")
        if not token.isdigit() or len(token) > 18:
            raise invalid("pageToken")
        position = int(token) - self.page_token_base[permission_id] - 1
        if not 0 <= position <= self.drives[permission_id].latest():
            raise invalid("pageToken")
        return position

    def reset_page_tokens(self, permission_id: str | None = None) -> None:
        """Void every page token issued so far (of one account, or all)."""
        for key in [permission_id] if permission_id else list(self.accounts):
            self.account(key)
            self.page_token_base[key] += PAGE_TOKEN_STEP
        self.save()

    # --------------------------------------------------------------- channels

    def live_channels(self, permission_id: str) -> list[Channel]:
        now = self.now()
        return [
            c for c in self.channels.values() if c.permission_id == permission_id and c.live(now)
        ]

    def watch(self, token: AccessToken, request: WatchRequest, resource_uri: str) -> Channel:
        """A new channel for ``token``'s account; its ``sync`` message is queued."""
        for channel in self.channels.values():
            if channel.client_id == token.client_id and channel.id == request.id:
                raise GoogleError(400, f"Channel id {request.id} not unique", "channelIdNotUnique")
        now_ms = int(self.now() * 1000)
        longest = now_ms + CHANNEL_MAX_SECONDS * 1000
        expiration = request.expiration_ms or now_ms + CHANNEL_DEFAULT_SECONDS * 1000
        if expiration <= now_ms:
            raise invalid("expiration", "Expiration must be in the future.")
        channel = Channel(
            request.id,
            ids.new_resource_id(),
            token.client_id,
            token.permission_id,
            request.address,
            min(expiration, longest),
            resource_uri,
            request.token,
        )
        self.channels[channel.resource_id] = channel
        self.push.sync(channel)
        self.save()
        return channel

    def stop_channel(self, token: AccessToken, channel_id: str, resource_id: str) -> None:
        channel = self.channels.get(resource_id)
        if (
            channel is None
            or channel.stopped
            or channel.id != channel_id
            or channel.client_id != token.client_id
            or channel.permission_id != token.permission_id
        ):
            project = ids.project_number(token.client_id)
            raise GoogleError(
                404, f"Channel '{channel_id}' not found for project '{project}'", "notFound"
            )
        channel.stopped = True
        self.push.forget(channel)
        self.save()

    # ------------------------------------------------------------------ faults

    def expire_tokens(self) -> None:
        self.tokens.expire_all()
        self.save()

    def revoke_account_tokens(self, permission_id: str) -> None:
        self.account(permission_id)
        self.tokens.revoke_account(permission_id)
        self.save()
