"""`/elements/api-v2/events/{elementKey}`: the URL providers send their webhooks to.

GET echoes the verification challenge. POST verifies the signature against the app secrets
of the element's instances BEFORE anything is stored, stores the notification and asks for
a change pass on every matching instance in one transaction, and answers 200 at once: the
fetching happens afterwards, in the workers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import func, select

from relaybox.api.deps import runtime_of
from relaybox.api.errors import ApiError
from relaybox.connectors.base import WebhookVerifier
from relaybox.connectors.dropbox import DropboxWebhooks
from relaybox.core.errors import InvalidInput
from relaybox.metrics import WEBHOOKS
from relaybox.runtime import Runtime
from relaybox.store import tables
from relaybox.store.db import transaction
from relaybox.store.passes import request_pass

log = logging.getLogger(__name__)

router = APIRouter(prefix="/elements/api-v2/events", tags=["receiver"])

VERIFIERS: dict[str, WebhookVerifier] = {"dropbox": DropboxWebhooks()}
MAX_CHALLENGE = 1024
APP_SECRET_CACHE = 10_000


def verifier_for(element_key: str) -> WebhookVerifier:
    verifier = VERIFIERS.get(element_key)
    if verifier is None:
        raise ApiError(404, f"no element {element_key!r}")
    return verifier


@router.get("/{element_key}")
async def challenge(
    element_key: str, challenge: str | None = Query(default=None, max_length=MAX_CHALLENGE)
) -> Response:
    verifier_for(element_key)
    if challenge is None:
        raise ApiError(400, "challenge: query parameter is required")
    return Response(
        content=challenge,
        headers={"Content-Type": "text/plain", "X-Content-Type-Options": "nosniff"},
    )


@router.post("/{element_key}")
async def receive(element_key: str, request: Request) -> Response:
    verifier = verifier_for(element_key)
    runtime = runtime_of(request)
    body = await request.body()
    signature = request.headers.get(verifier.signature_header, "")
    notification = _parse(body)
    named = _named_accounts(verifier, notification)
    matched = await _matching_instances(runtime, verifier, body, signature, named)
    if not matched:
        WEBHOOKS.labels(element_key, "forbidden").inc()
        raise ApiError(403, f"{verifier.signature_header}: signature does not match")
    if notification is None:
        WEBHOOKS.labels(element_key, "invalid").inc()
        raise ApiError(400, "body: not valid JSON")
    try:
        accounts = set(verifier.accounts(notification))
    except InvalidInput:
        WEBHOOKS.labels(element_key, "invalid").inc()
        raise
    # Polling and longpoll instances fetch on their own schedule, not on webhooks.
    targets = [
        instance_id
        for instance_id, (account, source) in matched.items()
        if account in accounts and source == "webhooks"
    ]
    async with transaction(runtime.sessions) as session:
        session.add(
            tables.InboxItem(
                element_key=element_key, body=notification, instance_count=len(targets)
            )
        )
        await request_pass(session, targets, notification)
    WEBHOOKS.labels(element_key, "accepted").inc()
    if targets:
        runtime.wakeups.changes.set()
    return Response(status_code=200)


def _parse(body: bytes) -> Any:
    """The JSON body, or None when it is not JSON (decided only after the signature check)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # ValueError covers JSONDecodeError and huge ints
        return None


def _named_accounts(verifier: WebhookVerifier, notification: Any) -> list[str]:
    """The accounts the (not yet verified) body names: only a hint of where to look."""
    try:
        return verifier.accounts(notification)
    except InvalidInput:
        return []


async def _matching_instances(
    runtime: Runtime, verifier: WebhookVerifier, body: bytes, signature: str, named: list[str]
) -> dict[int, tuple[str | None, str]]:
    """The instances (id -> account, event source) whose app secret signed this body.

    Only the instances of the accounts the body names are checked. When none of those
    match (an account relaybox no longer serves, or a body that names none), one instance
    per app key is checked, so a genuine notification is still answered 200: Dropbox
    disables a webhook that keeps failing.
    """
    if not signature or len(signature) > 256:
        return {}
    instance = tables.Instance
    columns = (instance.id, instance.account_id, instance.vendor_type, instance.secrets_enc)
    of_element = instance.element_key == verifier.element_key
    async with transaction(runtime.sessions) as session:
        rows: list[Any] = []
        for chunk in (named[i : i + 500] for i in range(0, len(named), 500)):
            query = select(*columns).where(of_element, instance.account_id.in_(chunk))
            rows.extend((await session.execute(query)).all())
        matched = _verified(runtime, verifier, body, signature, rows)
        if matched:
            return matched
        one_per_app = select(func.min(instance.id)).where(of_element).group_by(instance.app_key)
        query = select(*columns).where(instance.id.in_(one_per_app))
        rows = list((await session.execute(query)).all())
    return {
        instance_id: (None, source)
        for instance_id, (_, source) in _verified(runtime, verifier, body, signature, rows).items()
    }


def _verified(
    runtime: Runtime, verifier: WebhookVerifier, body: bytes, signature: str, rows: Sequence[Any]
) -> dict[int, tuple[str | None, str]]:
    matched: dict[int, tuple[str | None, str]] = {}
    checked: dict[str, bool] = {}
    for instance_id, account_id, vendor_type, secrets_enc in rows:
        app_secret = _app_secret(runtime, secrets_enc)
        if app_secret is None:
            continue
        if app_secret not in checked:
            checked[app_secret] = verifier.verify(app_secret, body, signature)
        if checked[app_secret]:
            matched[instance_id] = (account_id, vendor_type)
    return matched


def _app_secret(runtime: Runtime, secrets_enc: str) -> str | None:
    """The decrypted app secret of one instance, cached by its ciphertext (bounded LRU)."""
    cache = runtime.app_secrets
    if secrets_enc in cache:
        cache.move_to_end(secrets_enc)
        return cache[secrets_enc]
    try:
        secret = runtime.box.decrypt_json(secrets_enc).get("oauth.api.secret")
    except ValueError:
        log.error("an instance's secrets cannot be decrypted with the configured key")
        secret = None
    cache[secrets_enc] = str(secret) if secret else None
    if len(cache) > APP_SECRET_CACHE:
        cache.popitem(last=False)
    return cache[secrets_enc]
