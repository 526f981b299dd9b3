"""An instance's provider access token: used while fresh, refreshed (and stored) when not.

Change passes (pipeline/changes.py), push channels (pipeline/channels.py) and the
goodbye of a deleted instance (services/instances.py: stop its channels, revoke the
grant) call the provider for an instance; all read its token here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from relaybox.connectors.base import Connector, Tokens
from relaybox.core.errors import ProviderAuthError
from relaybox.core.instance_config import InstanceConfig
from relaybox.runtime import Runtime
from relaybox.store import tables
from relaybox.store.db import transaction

# Refresh an access token this long before the provider says it expires.
REFRESH_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class Credentials:
    """An instance's decrypted secrets."""

    config: InstanceConfig
    access_token: str | None
    refresh_token: str | None


class AccessTokens:
    """The access token of one instance, for one piece of work."""

    def __init__(self, runtime: Runtime, instance_id: int, connector: Connector) -> None:
        self.runtime = runtime
        self.instance_id = instance_id
        self.connector = connector

    async def fresh(self, creds: Credentials, expires_at: datetime | None) -> str:
        """The stored token, or a refreshed one when it ends within `REFRESH_MARGIN`."""
        if creds.config.auth_type == "apiKey":
            return creds.config.access_token or ""
        soon = self.runtime.clock.now() + REFRESH_MARGIN
        if creds.access_token and (expires_at is None or expires_at > soon):
            return creds.access_token
        return await self.refresh(creds)

    async def refresh(self, creds: Credentials) -> str:
        """A new access token from the refresh token, stored before it is returned
        (ProviderAuthError: the grant is gone, or there is nothing to refresh with)."""
        if not creds.refresh_token or creds.config.auth_type != "oauth2":
            raise ProviderAuthError("the access token expired and cannot be refreshed")
        tokens = await self.connector.refresh(
            refresh_token=creds.refresh_token,
            app_key=creds.config.app_key or "",
            app_secret=creds.config.app_secret or "",
        )
        await self._store(tokens)
        return tokens.access_token

    async def _store(self, tokens: Tokens) -> None:
        async with transaction(self.runtime.sessions) as session:
            # Locked: a re-authentication writing new secrets meanwhile is not undone.
            row = await session.get(tables.Instance, self.instance_id, with_for_update=True)
            if row is None:
                return
            secrets = self.runtime.box.decrypt_json(row.secrets_enc)
            secrets["access_token"] = tokens.access_token
            if tokens.refresh_token:
                secrets["refresh_token"] = tokens.refresh_token
            row.secrets_enc = self.runtime.box.encrypt_json(secrets)
            row.access_token_expires_at = tokens.expires_at
