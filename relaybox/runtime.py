"""The shared runtime of one relaybox process: settings, database, secrets, HTTP clients.

Built once by `Runtime.start` (the app lifespan, the worker command or a test) and
handed to the API and the workers; nothing here is a module-level global.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from relaybox import __version__
from relaybox.config import Settings
from relaybox.connectors.base import Connector
from relaybox.connectors.dropbox import DropboxConnector
from relaybox.connectors.dropbox.client import DropboxClient, DropboxURLs
from relaybox.connectors.googledrive import GoogleDriveConnector
from relaybox.connectors.googledrive.client import DriveClient, GoogleURLs
from relaybox.core.clock import Clock, SystemClock
from relaybox.core.errors import InvalidInput
from relaybox.crypto import SecretBox
from relaybox.httpclients import ClientPool
from relaybox.services.callbacks import GuardedBackend
from relaybox.services.webhook_secrets import WebhookSecrets
from relaybox.store import db
from relaybox.store.groups import GroupCommit
from relaybox.store.inbox import Received, Stored, inbox_writer

USER_AGENT = f"relaybox/{__version__}"


def callback_tls(settings: Settings) -> ssl.SSLContext | bool:
    """What HTTPS callbacks are verified against: `RELAYBOX_CALLBACK_CA_BUNDLE`, or the defaults."""
    if settings.callback_ca_bundle is None:
        return True
    return ssl.create_default_context(cafile=settings.callback_ca_bundle)


@dataclass
class Wakeups:
    """In-process nudges so a worker starts at once instead of at its next poll."""

    changes: asyncio.Event = field(default_factory=asyncio.Event)
    delivery: asyncio.Event = field(default_factory=asyncio.Event)
    # An instance was created, switched or deleted: longpolls to start or stop.
    sources: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    box: SecretBox
    # The providers, by element key (connectors/base.py); `connector` looks one up.
    connectors: dict[str, Connector]
    http: ClientPool
    wakeups: Wakeups
    inbox: GroupCommit[Received, Stored]
    webhook_secrets: WebhookSecrets
    clock: Clock = field(default_factory=SystemClock)

    def connector(self, element_key: str) -> Connector:
        """The connector of an element (InvalidInput when relaybox has none by that key)."""
        found = self.connectors.get(element_key)
        if found is None:
            known = ", ".join(sorted(self.connectors))
            raise InvalidInput(f"unknown element {element_key!r} (known: {known})", field="element")
        return found

    @classmethod
    async def start(
        cls, settings: Settings, *, migrate: bool = True, clock: Clock | None = None
    ) -> Runtime:
        clock = clock or SystemClock()
        engine = db.create_engine(settings.resolved_database_url)
        if migrate:
            await db.upgrade(engine)
        options: dict[str, Any] = {
            "timeout": httpx.Timeout(30.0, connect=10.0),
            "headers": {"User-Agent": USER_AGENT},
            "follow_redirects": False,
        }
        # Callbacks (one client per instance key, connecting through the SSRF guard) and
        # Dropbox calls (in turn), each sized for the requests the workers have in flight.
        # No proxy from the environment for callbacks: a proxy would resolve and connect to
        # their hosts itself, past the guard.
        http = ClientPool(
            settings.delivery_concurrency,
            verify=callback_tls(settings),
            network_backend=GuardedBackend(allow_private=settings.allow_private_callbacks),
            **{**options, "trust_env": False},
        )
        dropbox_http = ClientPool(settings.pass_concurrency, **options)
        google_http = ClientPool(settings.pass_concurrency, **options)
        urls = DropboxURLs(
            api=settings.dropbox_api_url.rstrip("/"),
            content=settings.dropbox_content_url.rstrip("/"),
            notify=settings.dropbox_notify_url.rstrip("/"),
            www=settings.dropbox_www_url.rstrip("/"),
        )
        sessions = db.session_factory(engine)
        box = SecretBox.load(settings.secret_key, settings.data_dir)
        webhook_secrets = WebhookSecrets(sessions, box)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            box=box,
            connectors={
                "dropbox": DropboxConnector(
                    DropboxClient(
                        urls,
                        dropbox_http,
                        retry_base=settings.dropbox_retry_base,
                        page_limit=settings.dropbox_page_limit,
                        clock=clock,
                    )
                ),
                "googledrive": GoogleDriveConnector(
                    DriveClient(
                        GoogleURLs(
                            api=settings.googledrive_api_url.rstrip("/"),
                            oauth=settings.googledrive_oauth_url.rstrip("/"),
                            accounts=settings.googledrive_accounts_url.rstrip("/"),
                        ),
                        google_http,
                        retry_base=settings.dropbox_retry_base,
                        page_size=settings.googledrive_page_size,
                        clock=clock,
                    )
                ),
            },
            http=http,
            wakeups=Wakeups(),
            inbox=inbox_writer(engine, sessions, webhook_secrets.secret_of, clock),
            webhook_secrets=webhook_secrets,
            clock=clock,
        )

    async def close(self) -> None:
        await self.inbox.close()
        await self.http.aclose()
        for connector in self.connectors.values():
            await connector.aclose()
        await self.engine.dispose()
