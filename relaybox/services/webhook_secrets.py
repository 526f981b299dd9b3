"""Which app signed a provider webhook, answered without the database on the hot path.

Each process keeps, per element, one decrypted app secret per app key, reloaded every
`ttl` seconds and at most once a second when a signature matches none of them. A cached
secret only decides whether a body is genuine at all; the instances asked for a pass are
read from the database at commit time (`store.inbox`), and only those whose own app secret
signed the body are asked, so a stale cache cannot reach an instance that was deleted,
switched to polling or given another secret, and one tenant's secret never reaches another
tenant's instances. The worst a stale entry does is accept, for up to `ttl` seconds, a
body signed with an app secret that was just replaced: the instances that still hold it
get one more pass, fetched with their own tokens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaybox.crypto import SecretBox
from relaybox.store import tables
from relaybox.store.db import transaction

log = logging.getLogger(__name__)

TTL_SECONDS = 30.0
CIPHERTEXT_CACHE = 10_000
MIN_RELOAD_SECONDS = 1.0
# Checking a body against several secrets costs one HMAC over the body each: past this
# many bytes in all, it runs in a thread (hashlib releases the GIL), not on the event loop.
INLINE_HMAC_BYTES = 256 * 1024
# The slow path (a body none of the cached secrets signed) tries at most this many more.
MAX_FALLBACK_SECRETS = 8

Verify = Callable[[str], bool]


@dataclass
class _Secrets:
    loaded_at: float
    # app secret -> the app keys that use it
    apps: dict[str, set[str]] = field(default_factory=dict)


class WebhookSecrets:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        *,
        ttl: float = TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.box = box
        self.ttl = ttl
        self.clock = clock
        self._by_element: dict[str, _Secrets] = {}
        self._by_ciphertext: OrderedDict[str, str | None] = OrderedDict()

    async def signers(self, element_key: str, verify: Verify, size: int) -> list[str]:
        """The app secrets `verify` accepts (`size`: the bytes it hashes per secret); []
        when none of the element's does."""
        cached = self._by_element.get(element_key)
        now = self.clock()
        if cached is None or now - cached.loaded_at > self.ttl:
            cached = await self._load(element_key)
        found = await _matching(list(cached.apps), verify, size)
        if not found and now - cached.loaded_at > MIN_RELOAD_SECONDS:
            reloaded = await self._load(element_key)
            untried = [secret for secret in reloaded.apps if secret not in cached.apps]
            found = await _matching(untried, verify, size)
        return found

    async def signers_among(
        self, element_key: str, accounts: Sequence[str], verify: Verify, size: int
    ) -> list[str]:
        """The app secrets, among the named accounts' instances, that `verify` accepts.

        The slow path for an app key whose instances do not all share one secret. It
        tries at most MAX_FALLBACK_SECRETS secrets that `signers` did not already try:
        the accounts a body names are not verified yet, so they bound nothing.
        """
        instance = tables.Instance
        rows: list[tuple[str | None, str]] = []
        async with transaction(self.sessions) as session:
            for start in range(0, len(accounts), 500):
                query = select(instance.app_key, instance.secrets_enc).where(
                    instance.element_key == element_key,
                    instance.account_id.in_(list(accounts[start : start + 500])),
                )
                rows.extend((app_key, enc) for app_key, enc in (await session.execute(query)))
        secrets = _Secrets(self.clock())
        self._add(secrets, rows)
        tried = self._by_element.get(element_key, _Secrets(0.0)).apps
        untried = sorted(secret for secret in secrets.apps if secret not in tried)
        return await _matching(untried[:MAX_FALLBACK_SECRETS], verify, size)

    async def _load(self, element_key: str) -> _Secrets:
        instance = tables.Instance
        one_per_app = (
            select(func.min(instance.id))
            .where(instance.element_key == element_key)
            .group_by(instance.app_key)
        )
        async with transaction(self.sessions) as session:
            rows = (
                await session.execute(
                    select(instance.app_key, instance.secrets_enc).where(
                        instance.id.in_(one_per_app)
                    )
                )
            ).all()
        secrets = _Secrets(self.clock())
        self._add(secrets, ((app_key, enc) for app_key, enc in rows))
        self._by_element[element_key] = secrets
        return secrets

    def secret_of(self, secrets_enc: str) -> str | None:
        """The app secret sealed in an instance's secrets (cached by ciphertext, bounded)."""
        cache = self._by_ciphertext
        if secrets_enc in cache:
            cache.move_to_end(secrets_enc)
            return cache[secrets_enc]
        try:
            secret = self.box.decrypt_json(secrets_enc).get("oauth.api.secret")
        except ValueError:
            log.error("an instance's secrets cannot be decrypted with the configured key")
            secret = None
        cache[secrets_enc] = str(secret) if secret else None
        if len(cache) > CIPHERTEXT_CACHE:
            cache.popitem(last=False)
        return cache[secrets_enc]

    def _add(self, secrets: _Secrets, rows: Iterable[tuple[str | None, str]]) -> None:
        for app_key, secrets_enc in rows:
            secret = self.secret_of(secrets_enc)
            if secret:
                # "" stands for instances without an app key (apiKey instances).
                secrets.apps.setdefault(secret, set()).add(app_key or "")


async def _matching(secrets: list[str], verify: Verify, size: int) -> list[str]:
    """The secrets `verify` accepts, sorted; in a thread when that is a lot of hashing."""

    def check() -> list[str]:
        return sorted(secret for secret in secrets if verify(secret))

    if size * len(secrets) > INLINE_HMAC_BYTES:
        return await asyncio.to_thread(check)
    return check()
