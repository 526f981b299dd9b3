"""Push channels (Google Drive's `changes.watch`): made, renewed before they end, stopped.

Every worker tick (runner.py) the keeper
1. ends the channels nobody wants any more: the instance switched to polling or longpoll,
   turned events off or became invalid, the channel expired, or its row was written by a
   worker that died before the provider answered. Deleting the row is the claim: only
   the worker that deleted it calls `channels.stop`;
2. makes a channel for each instance that wants one and has none lasting longer than
   `RELAYBOX_GOOGLEDRIVE_CHANNEL_RENEW_SECONDS`, holding the instance's channel lease
   meanwhile. The new channel's row (with the hash of its secret token) is written before
   the provider is asked, since its first message may come before the answer; once it is
   confirmed the instance's older channels are stopped and one pass is asked for, which
   reads whatever changed before the channel existed. The two channels overlap, and a
   notification only asks for a pass that reads from the instance's cursor, so nothing
   that changes before or across a renewal is missed. A channel the provider refuses
   shows on the instance (`statusMessage`; a refused grant makes it invalid, as a pass
   does), and one confirmed after its row was taken (the instance stopped wanting it
   meanwhile) is stopped at once.

A deleted instance's channels are stopped by the instance service before its row goes.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from relaybox.connectors.base import Channel, ChannelPush, Connector
from relaybox.core.errors import ProviderAuthError, ProviderError, TokenExpired
from relaybox.crypto import new_secret, secret_hash
from relaybox.runtime import Runtime
from relaybox.services.access import AccessTokens
from relaybox.services.instances import InstanceService, stop_channel
from relaybox.store import channels as stored
from relaybox.store import tables
from relaybox.store.db import transaction
from relaybox.store.passes import request_pass

log = logging.getLogger(__name__)

# A worker making a channel holds the instance this long; after a failure, the next try
# waits as long.
CHANNEL_LEASE = timedelta(seconds=60)
# A channel row the provider never confirmed is given up after this long.
UNCONFIRMED = timedelta(minutes=5)
BATCH = 20


class ChannelKeeper:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.instances = InstanceService(runtime)

    def element_keys(self) -> list[str]:
        return sorted(k for k, c in self.runtime.connectors.items() if c.channels is not None)

    async def tick(self) -> int:
        """End unwanted channels and make the ones due: how many were made."""
        keys = self.element_keys()
        if not keys:
            return 0
        now = self.runtime.clock.now()
        async with transaction(self.runtime.sessions) as session:
            ending = await stored.take(session, stored.unwanted(now, now - UNCONFIRMED))
        for instance_id, channel in ending:
            await self.stop(instance_id, channel)
        renew = timedelta(seconds=self.runtime.settings.googledrive_channel_renew_seconds)
        async with transaction(self.runtime.sessions) as session:
            due = await stored.due(session, keys, now, now + renew, BATCH)
        made = 0
        for instance_id in due:
            made += await self.make(instance_id)
        return made

    async def make(self, instance_id: int) -> bool:
        """A new channel for the instance, replacing its older ones (False: not made)."""
        now = self.runtime.clock.now()
        async with transaction(self.runtime.sessions) as session:
            if not await stored.lease(session, instance_id, now, now + CHANNEL_LEASE):
                return False
            row = await session.get(tables.Instance, instance_id)
            if row is None or not row.cursor:
                return False
            connector = self.runtime.connector(row.element_key)
            creds = self.instances.credentials(row)
            cursor, expires, sealed = row.cursor, row.access_token_expires_at, row.secrets_enc
        push = _push(connector)
        channel_id, token = uuid.uuid4().hex, new_secret()
        lifetime = timedelta(seconds=self.runtime.settings.googledrive_channel_seconds)
        try:
            access = await AccessTokens(self.runtime, instance_id, connector).fresh(creds, expires)
            async with transaction(self.runtime.sessions) as session:
                hashed = secret_hash(token)
                stored.add(session, instance_id, channel_id, hashed, now, now + lifetime)
            channel = await push.watch(
                access,
                cursor,
                channel_id=channel_id,
                token=token,
                address=self.runtime.settings.webhook_uri(row.element_key),
                expires_at=now + lifetime,
            )
        except ProviderError as exc:
            await self.failed(instance_id, channel_id, connector, exc, sealed)
            return False  # tried again once the lease ends (unless the grant is gone)
        replaced: list[tuple[int, Channel]] = []
        async with transaction(self.runtime.sessions) as session:
            confirmed = await stored.confirm(session, channel)
            if confirmed:
                replaced = await stored.take(session, stored.others_of(instance_id, channel_id))
                # What changed before the channel existed (since the listing, or while
                # none was live) was notified to no one: one pass from the cursor reads it.
                await request_pass(session, [instance_id], None, now=self.runtime.clock.now())
            await stored.release(session, instance_id)
        if not confirmed:
            # Its row was taken meanwhile (the instance was deleted or stopped wanting a
            # channel): nobody else knows the provider made it, so it is stopped here.
            log.info("instance %s: channel %s made when no longer wanted", instance_id, channel)
            await stop_channel(push, access, instance_id, channel)
            return False
        self.runtime.wakeups.changes.set()
        log.info(
            "instance %s: push channel %s until %s", instance_id, channel_id, channel.expires_at
        )
        for _, old in replaced:
            await stop_channel(push, access, instance_id, old)
        return True

    async def failed(
        self,
        instance_id: int,
        channel_id: str,
        connector: Connector,
        exc: ProviderError,
        sealed: str,
    ) -> None:
        """A channel the provider did not make: its row goes, and the instance says why
        (the grant is gone: invalid, as after a pass, unless its secrets changed since
        `sealed` was read, as a re-authentication changes them; otherwise tried again
        later)."""
        log.warning("instance %s: making a push channel failed: %s", instance_id, exc.message)
        said = f"{connector.name}: push notifications could not be set up: {exc.message}"
        async with transaction(self.runtime.sessions) as session:
            await stored.take(session, stored.PushChannel.channel_id == channel_id)
            row = await session.get(tables.Instance, instance_id)
            if row is None:
                return
            refused = isinstance(exc, ProviderAuthError) and not isinstance(exc, TokenExpired)
            if refused and row.secrets_enc == sealed:
                row.valid, row.status_message = False, exc.message
            else:
                row.status_message = said

    async def stop(self, instance_id: int, channel: Channel) -> None:
        """Stop a channel taken from the database (best effort: it ends on its own)."""
        async with transaction(self.runtime.sessions) as session:
            row = await session.get(tables.Instance, instance_id)
            if row is None or not channel.resource_id:
                return
            connector = self.runtime.connector(row.element_key)
            creds = self.instances.credentials(row)
            expires = row.access_token_expires_at
        try:
            access = await AccessTokens(self.runtime, instance_id, connector).fresh(creds, expires)
        except ProviderError as exc:
            log.info("instance %s: cannot stop channel %s: %s", instance_id, channel, exc.message)
            return
        await stop_channel(_push(connector), access, instance_id, channel)


def _push(connector: Connector) -> ChannelPush:
    if connector.channels is None:
        raise AssertionError(f"{connector.element_key} has no push channels")
    return connector.channels
