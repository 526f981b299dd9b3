"""The Sandbox: apps, accounts, their files, tokens, faults and change wake-ups.

One object holds everything; routes call its methods. Every change to an
account goes through :meth:`Sandbox.change`, which persists the state (when a
state file is set), wakes longpoll waiters and queues webhook notifications
for every app the account has authorized.
"""

import asyncio
import pathlib
import random
from collections.abc import Callable
from typing import TypeVar

from relaybox.sandbox import ids, persistence
from relaybox.sandbox.faults import FaultRegistry
from relaybox.sandbox.model import Account, App
from relaybox.sandbox.tokens import TokenStore
from relaybox.sandbox.tree import FileTree
from relaybox.sandbox.webhooks import WebhookSender
from relaybox.sandbox_kit.statefile import StateFile

T = TypeVar("T")


class Sandbox:
    def __init__(self, webhook_delay: float = 0.2, state_file: pathlib.Path | None = None) -> None:
        self.apps: dict[str, App] = {}
        self.accounts: dict[str, Account] = {}
        self.trees: dict[str, FileTree] = {}
        self.tokens = TokenStore()
        self.faults = FaultRegistry()
        self.cursor_epoch = 0
        """Raised by a ``reset`` fault: cursors of an older epoch answer ``reset``."""
        self.longpoll_time_scale = 1.0
        """Multiplies longpoll timeouts (tests shrink it; Dropbox's minimum is 30 s)."""
        self.state_file = StateFile(state_file, lambda: persistence.dump(self))
        self.webhooks = WebhookSender(self.apps.get, self.save, webhook_delay)
        self._wakeups: dict[str, asyncio.Event] = {}
        self._closing = False
        saved = self.state_file.read()
        if saved is not None:
            persistence.load(self, saved)

    # --------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start deferred background work (the ASGI lifespan calls this).

        Mounted inside another app, the sandbox needs no call: background
        tasks start on first use on the running loop.
        """
        self._closing = False
        self.webhooks.start()

    def stop_waiting(self) -> None:
        """Answer every waiting longpoll now (`changes: false` unless there are changes),
        and any later one at once: the server is shutting down."""
        self._closing = True
        for event in self._wakeups.values():
            event.set()
        self._wakeups.clear()

    async def aclose(self) -> None:
        """Stop background work and answer every waiting longpoll."""
        self.stop_waiting()
        await self.webhooks.aclose()
        self.state_file.flush()

    def save(self) -> None:
        """Persist the state (when a state file is set), coalesced inside a running
        loop; :meth:`aclose` writes what is pending."""
        self.state_file.save()

    # ------------------------------------------------------ apps and accounts

    def register_app(self, app_key: str, app_secret: str, webhook_uri: str | None) -> None:
        """Register (or update) an app; a webhook URI is challenged in the background."""
        existing = self.apps.get(app_key)
        if existing is not None and (existing.secret, existing.webhook_uri) == (
            app_secret,
            webhook_uri,
        ):
            if webhook_uri and not existing.webhook_verified:
                self.webhooks.challenge(existing)
            return
        app = App(app_key, app_secret, webhook_uri or None)
        self.apps[app_key] = app
        self.save()
        if app.webhook_uri:
            self.webhooks.challenge(app)

    def create_account(self, email: str, display_name: str | None = None) -> Account:
        """Create an account, or answer the one that has ``email`` already."""
        for account in self.accounts.values():
            if account.email.lower() == email.lower():
                return account
        uids = {a.uid for a in self.accounts.values()}
        uid = random.randint(10_000_000, 999_999_999)
        while uid in uids:
            uid += 1
        name = display_name or email.split("@")[0].replace(".", " ").title()
        account = Account(ids.new_account_id(), uid, email, name)
        self.accounts[account.account_id] = account
        self.trees[account.account_id] = FileTree()
        self.save()
        return account

    def account(self, account_id: str) -> Account:
        """The account, or KeyError."""
        return self.accounts[account_id]

    def authorize(
        self,
        app_key: str,
        account_id: str,
        redirect_uri: str | None,
        token_access_type: str | None = None,
    ) -> str:
        """Record consent of ``account_id`` to ``app_key``; answers a code (KeyError if unknown)."""
        if app_key not in self.apps:
            raise KeyError(app_key)
        account = self.account(account_id)
        account.authorized_apps.add(app_key)
        code = self.tokens.issue_code(app_key, account_id, redirect_uri, token_access_type)
        self.save()
        return code

    def set_report_descendant_deletes(self, account_id: str, value: bool) -> None:
        self.account(account_id).report_descendant_deletes = value
        self.save()

    def set_collapse_changes(self, account_id: str, value: bool) -> None:
        self.account(account_id).collapse_changes = value
        self.save()

    # ------------------------------------------------------------------ files

    def change(self, account_id: str, operation: Callable[[FileTree], T]) -> T:
        """Apply ``operation`` to the account's files and announce what changed."""
        tree = self.trees[account_id]
        before = len(tree.log)
        try:
            return operation(tree)
        finally:
            if len(tree.log) != before:
                self._announce(account_id)

    def _announce(self, account_id: str) -> None:
        self.save()
        event = self._wakeups.pop(account_id, None)
        if event is not None:
            event.set()
        account = self.accounts[account_id]
        for key in sorted(account.authorized_apps):
            app = self.apps.get(key)
            if app is not None and app.webhook_uri:
                self.webhooks.notify(app, account_id, account.uid)

    async def wait_for_change(
        self, account_id: str, has_changes: Callable[[], bool], seconds: float
    ) -> bool:
        """True as soon as ``has_changes()`` holds, False after ``seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            if has_changes():
                return True
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing:
                return False
            event = self._wakeups.setdefault(account_id, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return has_changes()

    # ------------------------------------------------------- faults and tokens

    def reset_cursors(self) -> None:
        self.cursor_epoch += 1
        self.save()

    def expire_tokens(self) -> None:
        self.tokens.expire_all()
        self.save()

    def revoke_account_tokens(self, account_id: str) -> None:
        self.account(account_id)
        self.tokens.revoke_account(account_id)
        self.save()
